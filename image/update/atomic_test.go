package update

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"sensord/internal/testutil"
)

// entries lists dir's names, so a leftover temporary file shows.
func entries(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

func TestWriteFileAtomicRefusalsKeepTheOldFile(t *testing.T) {
	old := []byte("committed=A\nversion_A=v1\n")
	for _, tc := range []struct {
		name string
		opts string
		// prepare runs after the old file is written, to make the write fail.
		prepare func(t *testing.T, dir, path string)
		data    []byte
		want    []error // the error is one of these
	}{
		{"a write larger than the free space is refused (ENOSPC)", "size=64k", nil,
			bytes.Repeat([]byte("x"), 256<<10), []error{syscall.ENOSPC}},
		{"no inode left for the temporary file is refused", "size=64k,nr_inodes=2",
			// The root directory and the old file take both inodes.
			nil, []byte("committed=B\n"), []error{syscall.ENOSPC}},
		{"a read-only filesystem is refused", "size=64k",
			func(t *testing.T, dir, path string) {
				if out, err := exec.Command("mount", "-o", "remount,ro", dir).CombinedOutput(); err != nil {
					t.Fatalf("remount ro: %v: %s", err, out)
				}
			}, []byte("committed=B\n"), []error{syscall.EROFS}},
		// The target is a directory holding the old file: the rename fails.
		{"a rename onto a non-empty directory is refused", "size=64k", nil,
			[]byte("committed=B\n"), []error{syscall.ENOTEMPTY, syscall.EEXIST}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := testutil.SmallDisk(t, tc.opts)
			path := filepath.Join(dir, "state")
			target := path
			if errors.Is(tc.want[0], syscall.ENOTEMPTY) {
				if err := os.Mkdir(path, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(path, "inside"), old, 0o644); err != nil {
					t.Fatal(err)
				}
				path = filepath.Join(path, "inside")
			} else if err := WriteFileAtomic(path, old); err != nil {
				t.Fatalf("writing the old file: %v", err)
			}
			before := entries(t, dir)
			if tc.prepare != nil {
				tc.prepare(t, dir, path)
			}
			err := WriteFileAtomic(target, tc.data)
			if err == nil {
				t.Fatal("the write was reported good")
			}
			if !isOneOf(err, tc.want) {
				t.Errorf("got %v, want an error that is one of %v", err, tc.want)
			}
			got, rerr := os.ReadFile(path)
			if rerr != nil || !bytes.Equal(got, old) {
				t.Errorf("the old file is now %q (%v), want %q", got, rerr, old)
			}
			if after := entries(t, dir); len(after) != len(before) {
				t.Errorf("files after the refusal %q, before %q: a temporary file was left", after, before)
			}
		})
	}
}

func isOneOf(err error, targets []error) bool {
	for _, t := range targets {
		if errors.Is(err, t) {
			return true
		}
	}
	return false
}
