package atomicfile

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func TestWriteFileReplacesTheFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "state")
	for _, want := range []string{"first", "second"} {
		if err := WriteFile(p, []byte(want), 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(p)
		if err != nil || string(got) != want {
			t.Fatalf("got %q, %v; want %q", got, err, want)
		}
	}
	if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", fi.Mode())
	}
	if ents, _ := os.ReadDir(filepath.Dir(p)); len(ents) != 1 {
		t.Fatalf("left behind: %v", ents)
	}
}

// A write the disk refuses (here: over the file size limit, as a full
// disk refuses it) is an error and leaves the old content.
func TestWriteFileReportsAFailedWriteAndKeepsTheOldContent(t *testing.T) {
	p := filepath.Join(t.TempDir(), "state")
	if err := WriteFile(p, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_FSIZE, &old); err != nil {
		t.Fatal(err)
	}
	lim := old
	lim.Cur = 1024
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &lim); err != nil {
		t.Fatal(err)
	}
	err := WriteFile(p, make([]byte, 64<<10), 0o644)
	syscall.Setrlimit(syscall.RLIMIT_FSIZE, &old)
	if !errors.Is(err, syscall.EFBIG) {
		t.Fatalf("got %v, want the write's EFBIG", err)
	}
	if got, _ := os.ReadFile(p); string(got) != "old" {
		t.Fatalf("the file holds %q, want the old content", got)
	}
}
