package main

import (
	"archive/zip"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// The image has no tzdata package (adding it would change the cached base
// image), yet TIMEZONE in sensord.conf must be applied. Go ships the IANA
// time zone database as a zip of TZif files (GOROOT/lib/time/zoneinfo.zip,
// the same data its time/tzdata package embeds); the build unpacks it into
// the root slot's /usr/share/zoneinfo, where sensord-settings and
// timedatectl look for a zone.
const (
	// maxZoneFile bounds one zone file: the largest TZif file in the
	// database is under 4 KiB; anything near this is not a zone.
	maxZoneFile = 64 << 10
	// maxZones bounds the entries: the database has about 600 zones.
	maxZones = 5000
)

// errBadZoneArchive marks an archive that is not a time zone database.
var errBadZoneArchive = errors.New("not a time zone database")

// zoneinfoCmd: imgtool zoneinfo -from ZIP DIR.
func zoneinfoCmd(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("zoneinfo", flag.ContinueOnError)
	from := fs.String("from", "", "the zip of TZif files (GOROOT/lib/time/zoneinfo.zip)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *from == "" || fs.NArg() != 1 {
		return errors.New("usage: imgtool zoneinfo -from ZIP DIR")
	}
	n, err := unpackZoneinfo(*from, fs.Arg(0))
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "zoneinfo: %d zones from %s\n", n, *from)
	return err
}

// unpackZoneinfo writes every zone of the zip at from into dir and
// returns how many it wrote. It refuses names that would leave dir and
// files that are not TZif, so a wrong file given as the archive cannot
// write elsewhere or fill the image.
func unpackZoneinfo(from, dir string) (int, error) {
	zr, err := zip.OpenReader(from)
	if err != nil {
		return 0, fmt.Errorf("zoneinfo: %w", err)
	}
	defer zr.Close()
	if len(zr.File) > maxZones {
		return 0, fmt.Errorf("zoneinfo: %s: %d entries, at most %d: %w", from, len(zr.File), maxZones, errBadZoneArchive)
	}
	n := 0
	for _, f := range zr.File {
		if strings.HasSuffix(f.Name, "/") {
			continue
		}
		if err := unpackZone(f, dir); err != nil {
			return n, fmt.Errorf("zoneinfo: %s: %w", from, err)
		}
		n++
	}
	if n == 0 {
		return 0, fmt.Errorf("zoneinfo: %s holds no zone: %w", from, errBadZoneArchive)
	}
	return n, nil
}

func unpackZone(f *zip.File, dir string) error {
	name := f.Name
	if name == "" || path.IsAbs(name) || path.Clean(name) != name || name == ".." || strings.HasPrefix(name, "../") {
		return fmt.Errorf("entry %q is not a zone name: %w", name, errBadZoneArchive)
	}
	if f.UncompressedSize64 > maxZoneFile {
		return fmt.Errorf("%s: %d bytes, at most %d: %w", name, f.UncompressedSize64, maxZoneFile, errBadZoneArchive)
	}
	rc, err := f.Open()
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, maxZoneFile+1))
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if len(b) > maxZoneFile || !strings.HasPrefix(string(b), "TZif") {
		return fmt.Errorf("%s is not a TZif file: %w", name, errBadZoneArchive)
	}
	dst := filepath.Join(dir, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	return os.WriteFile(dst, b, 0o644)
}
