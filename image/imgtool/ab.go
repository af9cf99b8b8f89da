package main

import (
	"crypto/ed25519"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"sensord/image/layout"
	"sensord/image/update"
)

// runAB handles the A/B commands:
//
//	imgtool layout-ab -root-image-bytes N -disk-id ID -sfdisk FILE
//	imgtool pubkey -key PRIVATE.pem                 public key PEM to stdout
//	imgtool bundle -key PRIVATE.pem -version V -release R -kernel K -out FILE SQUASHFS
//	imgtool state -version V -release R            the image's first slot state to stdout
func runAB(cmd string, args []string, stdout io.Writer) (bool, error) {
	switch cmd {
	case "layout-ab":
		fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
		root := fs.Int64("root-image-bytes", 0, "size of the root slot's squashfs image")
		id := fs.Uint64("disk-id", 0x5e450d00, "MBR disk identifier")
		sf := fs.String("sfdisk", "", "write the sfdisk script to this file")
		if err := fs.Parse(args); err != nil {
			return true, err
		}
		p, err := layout.MakeAB(layout.SpecAB{RootImageBytes: *root, DiskID: uint32(*id)})
		if err != nil {
			return true, err
		}
		if *sf != "" {
			f, err := os.Create(*sf)
			if err != nil {
				return true, err
			}
			if err := p.WriteSfdisk(f); err != nil {
				f.Close()
				return true, err
			}
			if err := f.Close(); err != nil {
				return true, err
			}
		}
		return true, p.WriteShell(stdout)
	case "pubkey":
		fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
		keyPath := fs.String("key", "", "ed25519 private key (PKCS#8 PEM)")
		if err := fs.Parse(args); err != nil {
			return true, err
		}
		key, err := update.ReadPrivateKey(*keyPath)
		if err != nil {
			return true, err
		}
		b, err := update.MarshalPublicKey(key.Public().(ed25519.PublicKey))
		if err != nil {
			return true, err
		}
		_, err = stdout.Write(b)
		return true, err
	case "bundle":
		fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
		keyPath := fs.String("key", "", "ed25519 private key (PKCS#8 PEM)")
		version := fs.String("version", "", "the version the root holds")
		release := fs.Uint64("release", 0, "the release number (image/README.md, \"Release numbers\"); 0 writes none, for cards from before release numbers")
		kernel := fs.String("kernel", "", "the kernel release whose modules the root holds")
		out := fs.String("out", "", "bundle file to write")
		if err := fs.Parse(args); err != nil {
			return true, err
		}
		given := false
		fs.Visit(func(f *flag.Flag) { given = given || f.Name == "release" })
		if fs.NArg() != 1 || *version == "" || !given || *kernel == "" || *out == "" {
			return true, errors.New("usage: imgtool bundle -key K -version V -release R -kernel K -out FILE SQUASHFS")
		}
		return true, writeBundle(*keyPath, update.Manifest{Compatible: update.Compatible, Version: *version, Release: *release, Kernel: *kernel}, *out, fs.Arg(0))
	case "slotboot":
		fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
		fat := fs.String("fat", "", "the boot partition's directory")
		slot := fs.String("slot", "", "the slot, A or B")
		if err := fs.Parse(args); err != nil {
			return true, err
		}
		if *fat == "" || !update.ValidSlot(*slot) || fs.NArg() != 1 {
			return true, errors.New("usage: imgtool slotboot -fat DIR -slot A|B SRC (SRC: vmlinuz, initrd.img, dtbs/)")
		}
		return true, update.WriteSlotBoot(*fat, *slot, fs.Arg(0))
	case "boots":
		if len(args) != 1 {
			return true, errors.New("usage: imgtool boots FILE (the boot script's counter)")
		}
		n, err := update.ReadBoots(args[0])
		if err != nil {
			return true, err
		}
		_, err = fmt.Fprintf(stdout, "%d\n", n)
		return true, err
	case "state":
		fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
		version := fs.String("version", "", "the version slot A holds")
		release := fs.Uint64("release", 0, "its release number")
		trial := fs.String("trial", "", "a slot on trial (tests of the boot chooser)")
		tries := fs.Int("tries", update.TrialTries, "the trial's boots")
		if err := fs.Parse(args); err != nil {
			return true, err
		}
		if *version == "" || *release == 0 {
			return true, errors.New("usage: imgtool state -version V -release R [-trial SLOT -tries N]")
		}
		st := update.SlotState{Committed: update.SlotA, A: update.SlotInfo{Version: *version, Release: *release}}
		if *trial != "" {
			if !update.ValidSlot(*trial) {
				return true, fmt.Errorf("imgtool state: -trial %q is neither A nor B", *trial)
			}
			st.Trial, st.Tries = *trial, *tries
		}
		b, err := st.Marshal()
		if err != nil {
			return true, err
		}
		_, err = stdout.Write(b)
		return true, err
	}
	return false, nil
}

func writeBundle(keyPath string, m update.Manifest, out, payload string) error {
	key, err := update.ReadPrivateKey(keyPath)
	if err != nil {
		return err
	}
	in, err := os.Open(payload)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp := out + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	if err := update.Write(f, m, in, key); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, out); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "imgtool: %s: version %s, release %d, signed by key %s\n", out, m.Version, m.Release, update.KeyID(key.Public().(ed25519.PublicKey)))
	return nil
}
