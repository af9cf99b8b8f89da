package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"sensord/image/boottest/harness"
	"sensord/image/boottest/mosquitto"
	"sensord/image/boottest/vm"
	"sensord/image/settings"
)

// prepareSteps make the disk copy with the test's settings file and the
// virt board's kernel command line on its boot partition. With
// imager, sensord.conf sets only the SENSORD_* lines and the host name,
// Wi-Fi and SSH keys come from Raspberry Pi Imager's files (imager.go),
// with cmdline.txt changed as Imager changes it; without, sensord.conf
// sets them all (settings.BootTest).
func (t *rig) prepareSteps(imager bool) []harness.Step {
	steps := []harness.Step{{Name: "copy the image onto a bigger card", Run: t.copyDisk}}
	// A card of an earlier release (make field-test) has that release's.
	if !t.opts.update.field {
		steps = append(steps, harness.Step{Name: "the image's sensord.conf is image/settings'", Run: t.checkImageConf})
	}
	steps = append(steps,
		harness.Step{Name: "the test's settings and the host's broker", Run: func(ctx context.Context) error { return t.writeSettings(ctx, imager) }},
		harness.Step{Name: "the boot partition's boot.scr and cmdline.txt", Run: func(ctx context.Context) error { return t.bootFiles(ctx, imager) }},
	)
	if imager {
		steps = append(steps, harness.Step{Name: "the phone's helper on the FAT (setupap.go)", Run: t.putPhone})
	}
	return steps
}

// putPhone builds the setup checks' phone (image/boottest/phone) for the
// guest and puts it on the boot partition.
func (t *rig) putPhone(ctx context.Context) error {
	out := filepath.Join(t.dir, phoneBinary)
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", out, "./image/boottest/phone")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=arm64")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build the phone: %v: %s", err, b)
	}
	return t.disk.FAT().Put(ctx, out, phoneBinary)
}

// copyDisk copies the image (sparse) and grows the copy by 1 GiB, as a
// bigger card would be: the first boot must grow the data partition.
func (t *rig) copyDisk(ctx context.Context) error {
	d, err := vm.CopyImage(ctx, t.opts.image, filepath.Join(t.dir, "disk.img"))
	if err != nil {
		return err
	}
	size, err := d.Size()
	if err != nil {
		return err
	}
	if err := d.Resize(size + 1<<30); err != nil {
		return err
	}
	if err := vm.CheckABLayout(d.Parts); err != nil {
		return err
	}
	t.disk, t.dataBytes = d, d.Parts[3].Length
	p := d.Parts
	t.Pass("MBR: FAT32 boot partition at %d MiB, root slots A and B %d MiB each, data partition %d MiB", p[0].Start>>20, p[1].Length>>20, p[3].Length>>20)
	return nil
}

func (t *rig) checkImageConf(ctx context.Context) error {
	orig, err := t.disk.FAT().Read(ctx, "sensord.conf")
	if err != nil {
		return err
	}
	var want strings.Builder
	if err := settings.Render(&want, settings.Appliance(), nil); err != nil {
		return err
	}
	t.Check(string(orig) == want.String(), "the image's sensord.conf is the one image/settings renders")
	return nil
}

// writeSettings replaces the copy's sensord.conf with the image's own plus
// the simulated sensor (hanging after -hang-after) and the host's
// Mosquitto, which it starts; with imager, Imager's files go beside it.
func (t *rig) writeSettings(ctx context.Context, imager bool) error {
	t.wifiSSID = settings.BootTestWiFiSSID
	pub, err := os.ReadFile(t.key + ".pub")
	if err != nil {
		return err
	}
	set := settings.BootTest(t.opts.hangAfter, strings.TrimSpace(string(pub)))
	var seed map[string][]byte
	if imager {
		set = settings.BootTestSensord(t.opts.hangAfter)
		if seed, err = t.imagerFiles(string(pub)); err != nil {
			return err
		}
	}
	if t.pastClock {
		// The only time server, answered later by checkClock (clock.go).
		set["NTP_SERVER"] = qemuHost
	}
	if t.mqtt, err = mosquitto.Start(t.T, t.dir); err != nil {
		return err
	}
	set["SENSORD_MQTT_URL"] = t.mqttURL()
	t.Logf("the guest's SENSORD_MQTT_URL is %s", set["SENSORD_MQTT_URL"])
	var conf strings.Builder
	if err := settings.Render(&conf, settings.Appliance(), set); err != nil {
		return err
	}
	if err := t.putFAT(ctx, "sensord.conf", []byte(conf.String())); err != nil {
		return err
	}
	t.Logf("settings: SENSORD_SENSOR=sim SENSORD_SIM_HANG_AFTER=%s HOSTNAME=%s WIFI_COUNTRY=%s WIFI_SSID=%q SSH_PUBKEY=%s",
		t.opts.hangAfter, set["HOSTNAME"], set["WIFI_COUNTRY"], set["WIFI_SSID"], set["SSH_PUBKEY"])
	for name, b := range seed {
		if err := t.putFAT(ctx, name, b); err != nil {
			return err
		}
	}
	return nil
}

// imagerFiles are Imager's files with the run's two public keys, pub and
// key2's; the Wi-Fi to join becomes Imager's hidden one, and Imager's
// additions to cmdline.txt are kept for bootFiles.
func (t *rig) imagerFiles(pub string) (map[string][]byte, error) {
	pub2, err := os.ReadFile(t.key2 + ".pub")
	if err != nil {
		return nil, err
	}
	seed, additions, err := imagerSeed(t.opts.imagerSeed, strings.TrimSpace(pub), strings.TrimSpace(string(pub2)))
	if err != nil {
		return nil, err
	}
	t.wifiSSID, t.wifiHidden, t.imagerCmdline = imagerSSID, true, additions
	return seed, nil
}

// putFAT writes b to the work directory (kept for a person to read after
// a failure) and copies it onto the boot partition as name.
func (t *rig) putFAT(ctx context.Context, name string, b []byte) error {
	p := filepath.Join(t.dir, name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		return err
	}
	return t.disk.FAT().Put(ctx, p, name)
}

// bootFiles checks that the copy boots through U-Boot (boot.scr, slot
// A's kernel and initramfs on the FAT) and writes the virt board's
// command line (vm.GuestCmdline) into its cmdline.txt, which boot.scr
// hands the kernel: the test's only change to how the card boots. With
// imager, cmdline.txt first gets Imager's additions, as Imager writes them.
func (t *rig) bootFiles(ctx context.Context, imager bool) error {
	fat := t.disk.FAT()
	list, err := fat.List(ctx)
	if err != nil {
		return err
	}
	// A card of an earlier release (make field-test) boots the firmware's way.
	if !t.opts.update.field {
		for _, f := range []string{"boot.scr", "slot-a/vmlinuz", "slot-a/initrd.img", "slot-a/sizes"} {
			if !strings.Contains(list, "::/"+f+"\n") {
				return fmt.Errorf("the boot partition has no /%s: not a card that boots through U-Boot", f)
			}
		}
	}
	cl, err := fat.Read(ctx, "cmdline.txt")
	if err != nil {
		return err
	}
	if imager {
		cl = []byte(imagerCmdline(string(cl), t.imagerCmdline))
		t.Logf("Raspberry Pi Imager 2.0.11's files on the boot partition (%s, the run's two keys in place of the golden's); sensord.conf sets no HOSTNAME, WIFI_* or SSH_PUBKEY", t.opts.imagerSeed)
	}
	card := strings.TrimSpace(string(cl))
	guest := vm.GuestCmdline(card)
	if err := t.putFAT(ctx, "cmdline.txt", []byte(guest+"\n")); err != nil {
		return err
	}
	t.Logf("boot partition: boot.scr, slot-a/; cmdline.txt %q, for the virt board %q", card, guest)
	return nil
}
