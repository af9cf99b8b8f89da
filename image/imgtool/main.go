// Command imgtool is the image build's pure helper: it renders the settings
// file and plans the partition table, so build.sh stays a list of steps and
// the logic is tested Go (packages image/settings and image/layout).
//
//	imgtool settings [-set KEY=value]...        sensord.conf to stdout
//	imgtool layout -root-bytes N -sfdisk FILE    shell assignments to stdout,
//	                                             the sfdisk script to FILE
//	imgtool dtbs                                 "SRC DST" per device tree
//	                                             to copy to the FAT
//	imgtool bootfiles [-check DIR]               the files the FAT must hold;
//	                                             -check: fail naming those
//	                                             DIR lacks (package image/boards)
//	imgtool layout-ab|pubkey|bundle ...           the A/B image (ab.go)
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"sensord/image/boards"
	"sensord/image/layout"
	"sensord/image/settings"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "imgtool:", err)
		os.Exit(2)
	}
}

// setFlags collects repeated -set KEY=value flags.
type setFlags map[string]string

func (s setFlags) String() string { return fmt.Sprint(map[string]string(s)) }
func (s setFlags) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		return fmt.Errorf("-set %q: want KEY=value", v)
	}
	s[k] = val
	return nil
}

func run(args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return errors.New("usage: imgtool settings|layout|dtbs|bootfiles|layout-ab|pubkey|bundle [flags]")
	}
	if ok, err := runAB(args[0], args[1:], stdout); ok {
		return err
	}
	switch args[0] {
	case "settings":
		fs := flag.NewFlagSet("settings", flag.ContinueOnError)
		set := setFlags{}
		fs.Var(set, "set", "KEY=value to write uncommented (repeatable)")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		return settings.Render(stdout, settings.Appliance(), set)
	case "layout":
		fs := flag.NewFlagSet("layout", flag.ContinueOnError)
		root := fs.Int64("root-bytes", 0, "space the root tree uses, in bytes")
		free := fs.Int64("root-free-bytes", 0, "free space to leave in the root filesystem (0: 25 % + 64 MiB)")
		boot := fs.Int64("boot-bytes", 0, "boot partition size (0: 256 MiB)")
		id := fs.Uint64("disk-id", 0x5e450d00, "MBR disk identifier")
		sf := fs.String("sfdisk", "", "write the sfdisk script to this file")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		p, err := layout.Make(layout.Spec{RootUsedBytes: *root, RootFreeBytes: *free, BootBytes: *boot, DiskID: uint32(*id)})
		if err != nil {
			return err
		}
		if *sf != "" {
			f, err := os.Create(*sf)
			if err != nil {
				return err
			}
			if err := p.WriteSfdisk(f); err != nil {
				f.Close()
				return err
			}
			if err := f.Close(); err != nil {
				return err
			}
		}
		return p.WriteShell(stdout)
	case "dtbs":
		for _, c := range boards.DTBs() {
			if _, err := fmt.Fprintln(stdout, c.Src, c.Dst); err != nil {
				return err
			}
		}
		return nil
	case "bootfiles":
		fs := flag.NewFlagSet("bootfiles", flag.ContinueOnError)
		check := fs.String("check", "", "fail naming the files this directory lacks")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		if *check != "" {
			return boards.CheckDir(*check)
		}
		_, err := fmt.Fprintln(stdout, strings.Join(boards.Files(), "\n"))
		return err
	}
	return fmt.Errorf("unknown command %q (settings, layout, dtbs, bootfiles)", args[0])
}
