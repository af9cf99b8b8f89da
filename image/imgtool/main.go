// Command imgtool is the image build's pure helper: it renders the settings
// file and plans the partition table, so build.sh stays a list of steps and
// the logic is tested Go (packages image/settings and image/layout).
//
//	imgtool settings [-set KEY=value]...        sensord.conf to stdout
//	imgtool dtbs                                 "SRC DST" per device tree
//	                                             to copy to the FAT
//	imgtool bootfiles [-check DIR]               the files the FAT must hold;
//	                                             -check: fail naming those
//	                                             DIR lacks (package image/boards)
//	imgtool layout-ab|pubkey|bundle ...          the A/B image: partition
//	                                             table, key, bundle (ab.go)
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"sensord/image/boards"
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
		return errors.New("usage: imgtool settings|dtbs|bootfiles|layout-ab|pubkey|bundle [flags]")
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
