package settings

import "time"

// BootTestHostname is the HOSTNAME the boot test's image copy sets: not the
// default, so a boot that ignored the setting would show.
const BootTestHostname = "sensord-boottest"

// The Wi-Fi network the boot test's image copy joins: the test makes an
// access point for it inside the guest (two simulated radios). The SSID
// has a space and a quote, which sensord-settings must carry through to
// wpa_supplicant (as hex); the passphrase has spaces.
const (
	BootTestWiFiCountry    = "GB"
	BootTestWiFiSSID       = "sensord boottest's Wi-Fi"
	BootTestWiFiPassphrase = "correct horse battery staple"
)

// BootTestOwnerToken is the owner token (SENSORD_OWNER_TOKEN) of the boot
// test's image copy: the update test uploads bundles on the dashboard
// with it, as an owner would.
const BootTestOwnerToken = "boottest-owner-token"

// BootTest is what `make image-test` (image/boottest) sets in its copy of
// the image's sensord.conf: the simulated sensor, hanging after hangAfter so
// the watchdog has something to catch, BootTestHostname, the BootTestWiFi
// network, and sshPubkey as SSH_PUBKEY (a key pair made fresh for each
// run). It lives here, next to the golden file
// TestBootTestSettingsMatchGolden compares its rendering with, so the test
// and the golden cannot drift apart.
func BootTest(hangAfter time.Duration, sshPubkey string) map[string]string {
	m := BootTestSensord(hangAfter)
	m["HOSTNAME"] = BootTestHostname
	m["WIFI_COUNTRY"] = BootTestWiFiCountry
	m["WIFI_SSID"] = BootTestWiFiSSID
	m["WIFI_PASSPHRASE"] = BootTestWiFiPassphrase
	m["SSH_PUBKEY"] = sshPubkey
	return m
}

// BootTestSensord is BootTest's SENSORD_* part alone: `make image-test`
// leaves the appliance's own settings (host name, Wi-Fi, SSH keys) at
// their defaults and gives them to the appliance the way Raspberry Pi
// Imager does (image/boottest/imager.go).
func BootTestSensord(hangAfter time.Duration) map[string]string {
	return map[string]string{
		"SENSORD_SENSOR":         "sim",
		"SENSORD_SIM_HANG_AFTER": hangAfter.String(),
		"SENSORD_OWNER_TOKEN":    BootTestOwnerToken,
	}
}
