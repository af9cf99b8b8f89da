package testutil

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// SmallDisk mounts a tmpfs with the mount options opts (for example
// "size=2m") on a new directory and unmounts it when the test ends: a real
// file system that really fills, for the tests of what happens when a disk
// is full. Mounting needs root, as `make test` runs; without it the test
// fails rather than skips, so a run that cannot prove it says so.
func SmallDisk(t testing.TB, opts string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "small")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", opts, "sensord-test", dir).CombinedOutput(); err != nil {
		t.Fatalf("mounting a tmpfs with %s (the test needs root): %v: %s", opts, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", "-l", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}
