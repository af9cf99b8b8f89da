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
//	imgtool imager-manifest -version V -url URL -date YYYY-MM-DD
//	        -img FILE -download FILE -sha256 FILE
//	                                             Raspberry Pi Imager's
//	                                             manifest to stdout (package
//	                                             image/rpimanifest); sizes
//	                                             from the files, hashes from
//	                                             the build's sha256sum list
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"sensord/image/boards"
	"sensord/image/rpimanifest"
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
		return errors.New("usage: imgtool settings|dtbs|bootfiles|layout-ab|pubkey|bundle|imager-manifest|zoneinfo [flags]")
	}
	if ok, err := runAB(args[0], args[1:], stdout); ok {
		return err
	}
	switch args[0] {
	case "imager-manifest":
		return imagerManifest(args[1:], stdout)
	case "zoneinfo":
		return zoneinfoCmd(args[1:], stdout)
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
	return fmt.Errorf("unknown command %q (settings, dtbs, bootfiles, layout-ab, pubkey, bundle, state, imager-manifest, zoneinfo)", args[0])
}

// imagerManifest writes the Imager manifest of the files the build wrote.
func imagerManifest(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("imager-manifest", flag.ContinueOnError)
	var img rpimanifest.Image
	fs.StringVar(&img.Version, "version", "", "the image's version")
	fs.StringVar(&img.URL, "url", "", "where Imager downloads the image (file:// or https://)")
	fs.StringVar(&img.ReleaseDate, "date", "", "release date, YYYY-MM-DD")
	imgFile := fs.String("img", "", "the .img")
	dl := fs.String("download", "", "the file at -url (the .img.xz, or the .img)")
	sums := fs.String("sha256", "", "sha256sum's list of both files")
	if err := fs.Parse(args); err != nil {
		return err
	}
	list, err := os.ReadFile(*sums)
	if err != nil {
		return err
	}
	hash := map[string]string{}
	for _, l := range strings.Split(string(list), "\n") {
		if h, name, ok := strings.Cut(l, "  "); ok {
			hash[name] = h
		}
	}
	for _, f := range []struct {
		path string
		size *int64
		sum  *string
	}{{*imgFile, &img.ExtractSize, &img.ExtractSHA256}, {*dl, &img.DownloadSize, &img.DownloadSHA256}} {
		fi, err := os.Stat(f.path)
		if err != nil {
			return err
		}
		*f.size = fi.Size()
		if *f.sum = hash[filepath.Base(f.path)]; *f.sum == "" {
			return fmt.Errorf("imager-manifest: %s lists no hash of %s", *sums, filepath.Base(f.path))
		}
	}
	return rpimanifest.Write(stdout, img)
}
