package main

import (
	"strings"
	"testing"

	"sensord/image/cloudinit"
)

func TestImagerSeedCarriesTheRunsKeysAndImagersCmdline(t *testing.T) {
	const pub1, pub2 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIONE run-1", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAITWO run-2"
	files, add, err := imagerSeed("../cloudinit/testdata/imager-2.0.11/hidden", pub1, pub2)
	if err != nil {
		t.Fatal(err)
	}
	ud := string(files[cloudinit.UserDataFile])
	if !strings.Contains(ud, `- "`+pub1+`"`) || !strings.Contains(ud, `- "`+pub2+`"`) || strings.Contains(ud, "me@laptop") {
		t.Errorf("user-data:\n%s", ud)
	}
	if add != "cfg80211.ieee80211_regdom=GB ds=nocloud;i=rpi-imager-1765000000000" {
		t.Errorf("additions %q", add)
	}
	if got := imagerCmdline(" console=tty0 root=x ro panic=10\n", add); got != "console=tty0 root=x ro panic=10 "+add {
		t.Errorf("cmdline %q", got)
	}
	// The reader sees the run's keys and the network the access point makes.
	st, err := cloudinit.Parse(cloudinit.Seed{UserData: files[cloudinit.UserDataFile], NetworkConfig: files[cloudinit.NetworkConfigFile]})
	if err != nil {
		t.Fatal(err)
	}
	if len(st.SSHKeys) != 2 || st.SSHKeys[0] != pub1 || st.WiFi == nil || st.WiFi.SSID != imagerSSID || st.WiFi.PSK != imagerPSK() {
		t.Errorf("parsed %+v %+v", st, st.WiFi)
	}
	if got := wpaEscape(imagerSSID); got != `sensord Caf\xc3\xa9 \xe2\x98\x95 Wi-Fi` {
		t.Errorf("wpaEscape = %q", got)
	}
}
