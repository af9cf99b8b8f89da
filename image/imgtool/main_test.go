package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSettingsCommandMatchesGolden(t *testing.T) {
	var b bytes.Buffer
	if err := run([]string{"settings"}, &b); err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(filepath.Join("..", "testdata", "sensord.conf"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b.Bytes(), want) {
		t.Error("imgtool settings differs from image/testdata/sensord.conf")
	}
}

func TestLayoutCommandWritesBothFiles(t *testing.T) {
	sf := filepath.Join(t.TempDir(), "table")
	var b bytes.Buffer
	if err := run([]string{"layout", "-root-bytes", "1048576000", "-sfdisk", sf}, &b); err != nil {
		t.Fatal(err)
	}
	for _, f := range []struct{ got, golden string }{{b.String(), "layout.sh"}, {read(t, sf), "layout.sfdisk"}} {
		if want := read(t, filepath.Join("..", "testdata", f.golden)); f.got != want {
			t.Errorf("got %q, want image/testdata/%s %q", f.got, f.golden, want)
		}
	}
}

func TestBadArgumentsAreErrors(t *testing.T) {
	for name, args := range map[string][]string{
		"no command":         nil,
		"an unknown command": {"mkfs"},
		"a -set without =":   {"settings", "-set", "SENSORD_PERIOD"},
		"an unknown setting": {"settings", "-set", "SENSORD_NOPE=1"},
		"no root size":       {"layout"},
	} {
		t.Run(name, func(t *testing.T) {
			if err := run(args, &bytes.Buffer{}); err == nil {
				t.Errorf("run(%q) = nil", args)
			}
		})
	}
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b)) + "\n"
}
