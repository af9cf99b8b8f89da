package main

import (
	"archive/zip"
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// goZoneinfo is the zip the build unpacks: Go's own copy of the database.
func goZoneinfo(t *testing.T) string {
	t.Helper()
	root, err := exec.Command("go", "env", "GOROOT").Output()
	if err != nil {
		t.Fatalf("go env GOROOT: %v", err)
	}
	p := filepath.Join(strings.TrimSpace(string(root)), "lib", "time", "zoneinfo.zip")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("Go's time zone database: %v", err)
	}
	return p
}

func TestZoneinfoUnpacksZonesTheClockCanUse(t *testing.T) {
	dir := t.TempDir()
	var out bytes.Buffer
	if err := run([]string{"zoneinfo", "-from", goZoneinfo(t), dir}, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "zoneinfo: ") {
		t.Errorf("output %q", out.String())
	}
	for _, tc := range []struct {
		zone string
		at   time.Time
		abbr string
	}{
		{"Europe/London", time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC), "GMT"},
		{"Europe/London", time.Date(2026, 7, 1, 12, 0, 0, 0, time.UTC), "BST"},
		{"America/Argentina/Buenos_Aires", time.Date(2026, 7, 1, 12, 0, 0, 0, time.UTC), "-03"},
		{"Asia/Kolkata", time.Date(2026, 7, 1, 12, 0, 0, 0, time.UTC), "IST"},
	} {
		b, err := os.ReadFile(filepath.Join(dir, tc.zone))
		if err != nil {
			t.Fatal(err)
		}
		loc, err := time.LoadLocationFromTZData(tc.zone, b)
		if err != nil {
			t.Fatalf("%s: %v", tc.zone, err)
		}
		if abbr, _ := tc.at.In(loc).Zone(); abbr != tc.abbr {
			t.Errorf("%s at %s: %s, want %s", tc.zone, tc.at, abbr, tc.abbr)
		}
	}
}

// writeZip writes a zip of name → content.
func writeZip(t *testing.T, files map[string][]byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "z.zip")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	zw := zip.NewWriter(f)
	for name, b := range files {
		w, err := zw.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestZoneinfoRefusesWhatIsNotAZoneDatabase(t *testing.T) {
	tzif := append([]byte("TZif2"), make([]byte, 40)...)
	for _, tc := range []struct {
		name  string
		files map[string][]byte
	}{
		{"a name that leaves the directory", map[string][]byte{"../../etc/passwd": tzif}},
		{"an absolute name", map[string][]byte{"/etc/passwd": tzif}},
		{"a file that is not TZif", map[string][]byte{"Europe/London": []byte("#!/bin/sh\n")}},
		{"a zone larger than any zone", map[string][]byte{"Big/Zone": append(tzif, make([]byte, maxZoneFile)...)}},
		{"no zone at all", map[string][]byte{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "zoneinfo")
			if _, err := unpackZoneinfo(writeZip(t, tc.files), dir); !errors.Is(err, errBadZoneArchive) {
				t.Fatalf("err = %v, want %v", err, errBadZoneArchive)
			}
		})
	}
	if _, err := unpackZoneinfo(filepath.Join(t.TempDir(), "missing.zip"), t.TempDir()); err == nil {
		t.Error("a missing archive gave no error")
	}
}
