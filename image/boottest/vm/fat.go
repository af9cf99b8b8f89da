package vm

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Disk is the copy of the image a scenario boots: a sparse file and its
// partition table.
type Disk struct {
	Path  string
	Parts [4]Partition
}

// CopyImage copies image to path (sparse, as cp --sparse=always) and
// reads the copy's partition table.
func CopyImage(ctx context.Context, image, path string) (*Disk, error) {
	if out, err := exec.CommandContext(ctx, "cp", "--sparse=always", image, path).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("copy image: %v: %s", err, out)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	parts, err := ReadMBR(f)
	if err != nil {
		return nil, err
	}
	return &Disk{Path: path, Parts: parts}, nil
}

// Size is the copy's size in bytes.
func (d *Disk) Size() (int64, error) {
	st, err := os.Stat(d.Path)
	if err != nil {
		return 0, err
	}
	return st.Size(), nil
}

// Resize makes the copy size bytes long, as a bigger card would be.
func (d *Disk) Resize(size int64) error { return os.Truncate(d.Path, size) }

// FAT is the copy's boot partition, the first.
func (d *Disk) FAT() FAT { return FAT{spec: fmt.Sprintf("%s@@%d", d.Path, d.Parts[0].Start)} }

// FAT reads and writes a FAT partition inside a disk image with mtools.
type FAT struct {
	spec string // mtools' image@@offset
}

func (f FAT) mtools(ctx context.Context, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1")
	out, err := cmd.Output()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		err = fmt.Errorf("%s: %v: %s", strings.Join(args, " "), err, ee.Stderr)
	}
	return out, err
}

// Read returns the file name's bytes.
func (f FAT) Read(ctx context.Context, name string) ([]byte, error) {
	return f.mtools(ctx, "mtype", "-i", f.spec, "::/"+name)
}

// Get copies the file name out to the host's path.
func (f FAT) Get(ctx context.Context, name, path string) error {
	_, err := f.mtools(ctx, "mcopy", "-i", f.spec, "::/"+name, path)
	return err
}

// Put writes the host file at path as name, replacing any file there.
func (f FAT) Put(ctx context.Context, path, name string) error {
	_, err := f.mtools(ctx, "mcopy", "-o", "-i", f.spec, path, "::/"+name)
	return err
}

// List is `mdir -/ -b`: every path, one "::/path" per line.
func (f FAT) List(ctx context.Context) (string, error) {
	b, err := f.mtools(ctx, "mdir", "-/", "-b", "-i", f.spec, "::/")
	return string(b), err
}

// Hash is the SHA-256 of every file on the partition, names and contents,
// and how many files there are. Not the partition's raw bytes: Linux marks
// a FAT volume dirty while it is mounted and a reset leaves the mark,
// which the next boot's fsck clears. scratch is a directory to copy into;
// files for which skip (if not nil) says true, by their slash-separated
// path on the partition, are left out.
func (f FAT) Hash(ctx context.Context, scratch string, skip func(rel string) bool) (string, int, error) {
	dir, err := os.MkdirTemp(scratch, "fat-")
	if err != nil {
		return "", 0, err
	}
	defer os.RemoveAll(dir)
	if _, err := f.mtools(ctx, "mcopy", "-s", "-n", "-i", f.spec, "::/", dir); err != nil {
		return "", 0, fmt.Errorf("mcopy the boot partition: %w", err)
	}
	h := sha256.New()
	n := 0
	err = filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		if skip != nil && skip(filepath.ToSlash(rel)) {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s %d\n", rel, len(b))
		h.Write(b)
		n++
		return nil
	})
	if err != nil {
		return "", 0, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}
