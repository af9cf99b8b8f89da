package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// restampInitramfs changes one file of the first archive, as cpio itself
// reads it back, and keeps the bytes after that archive.
func TestRestampInitramfs(t *testing.T) {
	dir := t.TempDir()
	tree := filepath.Join(dir, "tree")
	for name, data := range map[string]string{"etc/sensord-initramfs": "1.0\n", "scripts/a": "abc", "scripts/b": "12345"} {
		p := filepath.Join(tree, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command("sh", "-c", "find . | sort | cpio -o -H newc --quiet")
	cmd.Dir = tree
	early, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	rest := []byte("\x28\xb5\x2f\xfd the compressed archive after it")
	out, err := restampInitramfs(append(early, rest...), "etc/sensord-initramfs", []byte("1.0+kernel\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasSuffix(out, rest) {
		t.Error("the bytes after the first archive were not kept")
	}
	x := filepath.Join(dir, "x")
	os.Mkdir(x, 0o755)
	cmd = exec.Command("cpio", "-i", "-d", "--quiet")
	cmd.Dir, cmd.Stdin = x, bytes.NewReader(out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cpio -i: %v: %s", err, b)
	}
	for name, want := range map[string]string{"etc/sensord-initramfs": "1.0+kernel\n", "scripts/a": "abc", "scripts/b": "12345"} {
		if got, err := os.ReadFile(filepath.Join(x, name)); err != nil || string(got) != want {
			t.Errorf("%s: %q (%v), want %q", name, got, err, want)
		}
	}
	if _, err := restampInitramfs(early, "etc/other", nil); err == nil {
		t.Error("a file the archive lacks: no error")
	}
}

// newcArchive writes what cpio reads: files, directories and device nodes.
func TestNewcArchive(t *testing.T) {
	a := newcArchive([]newcEntry{
		{name: "dev", mode: 0o40755},
		{name: "dev/console", mode: 0o20600, rdevMajor: 5, rdevMinor: 1},
		{name: "init", mode: 0o100755, data: []byte("#!/bin/sh\nexit 1\n")},
	})
	cmd := exec.Command("cpio", "-t", "-v", "--quiet")
	cmd.Stdin = bytes.NewReader(a)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("cpio -t: %v: %s", err, out)
	}
	for _, want := range []string{"drwxr-xr-x", "crw-------", "5,   1", "dev/console", "-rwxr-xr-x", " 17 ", "init"} {
		if !bytes.Contains(out, []byte(want)) {
			t.Errorf("cpio -tv lacks %q:\n%s", want, out)
		}
	}
}
