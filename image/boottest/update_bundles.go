package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"sensord/image/update"
)

type bundles struct {
	n, next, bad, hang, older, breaks string
	release                           uint64 // the image's release (R)
	goodBytes, badBytes               int64
	badPath                           string // on the host: the dashboard upload sends it
	olderPath                         string // on the host: an upload that must be refused
}

// makeBundles writes the test's bundles onto a second disk (a stick), each
// with its release number, R being the image's: good (R+1: the image's
// root with sensord built as version N+next), bad (R+2: sensord replaced
// by a program that exits at once), hang (R+3: good's root), breaks (R+4:
// good's root with a drop-in that stops the simulated sensor answering),
// older (R-1: good's root), same (the image's own bundle, R), tampered
// (good with one payload byte flipped) and foreign (good's payload signed
// by a new key).
func (t *rig) makeBundles(ctx context.Context) (bundles, error) {
	var v bundles
	key, err := update.ReadPrivateKey(t.opts.update.key)
	if err != nil {
		return v, err
	}
	f, err := os.Open(t.opts.update.bundle)
	if err != nil {
		return v, err
	}
	defer f.Close()
	b, err := update.Open(f, key.Public().(ed25519.PublicKey))
	if err != nil {
		return v, err
	}
	v.n, v.release = b.Manifest.Version, b.Manifest.Release
	if v.release < 2 {
		return v, fmt.Errorf("the image's bundle has release %d: want 2 or more, so an older one can be made", v.release)
	}
	v.next, v.bad, v.hang, v.older, v.breaks = v.n+"+next", v.n+"+broken", v.n+"+hangs", v.n+"-older", v.n+"+nosensor"
	work := filepath.Join(t.dir, "bundles")
	stick := filepath.Join(t.dir, "stick")
	for _, d := range []string{work, stick} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return v, err
		}
	}
	defer os.RemoveAll(work)
	orig := filepath.Join(work, "orig.squashfs")
	if err := copyTo(orig, b.Payload()); err != nil {
		return v, err
	}
	run := func(env []string, args ...string) error {
		cmd := exec.CommandContext(ctx, args[0], args[1:]...)
		cmd.Env = append(os.Environ(), env...)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("%s: %v: %s", strings.Join(args, " "), err, out)
		}
		return nil
	}
	tree := filepath.Join(work, "tree")
	if err := run(nil, "unsquashfs", "-q", "-n", "-d", tree, orig); err != nil {
		return v, err
	}
	bin := filepath.Join(tree, "usr/local/bin/sensord")
	if err := run([]string{"CGO_ENABLED=0", "GOOS=linux", "GOARCH=arm64"}, "go", "build", "-trimpath",
		"-ldflags", "-s -w -X main.version="+v.next, "-o", bin, "./cmd/sensord"); err != nil {
		return v, err
	}
	squash := func(out string) error {
		// zstd at a low level: the test's bundles need speed, not size.
		return run([]string{"SOURCE_DATE_EPOCH=0"}, "mksquashfs", tree, out, "-noappend", "-comp", "zstd", "-Xcompression-level", "3", "-quiet", "-no-progress")
	}
	sign := func(payload, out, version string, release uint64, k ed25519.PrivateKey) error {
		p, err := os.Open(payload)
		if err != nil {
			return err
		}
		defer p.Close()
		o, err := os.Create(out)
		if err != nil {
			return err
		}
		m := update.Manifest{Compatible: update.Compatible, Version: version, Release: release, Kernel: b.Manifest.Kernel}
		if err := update.Write(o, m, p, k); err != nil {
			o.Close()
			return err
		}
		return o.Close()
	}
	good := filepath.Join(work, "good.squashfs")
	if err := squash(good); err != nil {
		return v, err
	}
	if err := sign(good, filepath.Join(stick, "good.update"), v.next, v.release+1, key); err != nil {
		return v, err
	}
	// The same root as good, named otherwise: its trial is the one the
	// test hangs (pid1stop, built for the guest, on the stick too).
	if err := sign(good, filepath.Join(stick, "hang.update"), v.hang, v.release+3, key); err != nil {
		return v, err
	}
	// An older release (good's root again: what counts is the signed
	// release) and the image's own bundle, the release that runs.
	v.olderPath = filepath.Join(t.dir, "older.update")
	if err := sign(good, v.olderPath, v.older, v.release-1, key); err != nil {
		return v, err
	}
	if err := run(nil, "cp", "--sparse=always", v.olderPath, filepath.Join(stick, "older.update")); err != nil {
		return v, err
	}
	if err := run(nil, "cp", "--sparse=always", t.opts.update.bundle, filepath.Join(stick, "same.update")); err != nil {
		return v, err
	}
	if err := run([]string{"CGO_ENABLED=0", "GOOS=linux", "GOARCH=arm64"}, "go", "build", "-trimpath",
		"-o", filepath.Join(stick, "pid1stop"), "./image/boottest/pid1stop"); err != nil {
		return v, err
	}
	_, foreign, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return v, err
	}
	if err := sign(good, filepath.Join(stick, "foreign.update"), v.next, v.release+1, foreign); err != nil {
		return v, err
	}
	gb, err := os.ReadFile(filepath.Join(stick, "good.update"))
	if err != nil {
		return v, err
	}
	v.goodBytes = int64(len(gb))
	gb[len(gb)/2] ^= 0x20
	if err := os.WriteFile(filepath.Join(stick, "tampered.update"), gb, 0o644); err != nil {
		return v, err
	}
	gb = nil
	// A release that breaks the sensor: sensord runs, its simulated sensor
	// no longer answers (the settings file sets no SENSORD_SIM_NO_RESPONSE,
	// so the unit's Environment= holds).
	dropin := filepath.Join(tree, "etc/systemd/system/sensord.service.d/update-test-break-sensor.conf")
	if err := os.MkdirAll(filepath.Dir(dropin), 0o755); err != nil {
		return v, err
	}
	if err := os.WriteFile(dropin, []byte("[Service]\nEnvironment=SENSORD_SIM_NO_RESPONSE=true\n"), 0o644); err != nil {
		return v, err
	}
	breaks := filepath.Join(work, "breaks.squashfs")
	if err := squash(breaks); err != nil {
		return v, err
	}
	if err := sign(breaks, filepath.Join(stick, "breaks.update"), v.breaks, v.release+4, key); err != nil {
		return v, err
	}
	if err := os.Remove(dropin); err != nil {
		return v, err
	}
	broken := "#!/bin/sh\necho 'sensord (update test): this build never becomes healthy' >&2\nexit 1\n"
	if err := os.WriteFile(bin, []byte(broken), 0o755); err != nil {
		return v, err
	}
	bad := filepath.Join(work, "bad.squashfs")
	if err := squash(bad); err != nil {
		return v, err
	}
	if err := sign(bad, filepath.Join(stick, "bad.update"), v.bad, v.release+2, key); err != nil {
		return v, err
	}
	t.stick = filepath.Join(t.dir, "stick.img")
	if err := run(nil, "truncate", "-s", strconv.FormatInt(9*v.goodBytes+64<<20, 10), t.stick); err != nil {
		return v, err
	}
	if err := run(nil, "mkfs.ext4", "-q", "-F", "-d", stick, t.stick); err != nil {
		return v, err
	}
	v.badPath = filepath.Join(t.dir, "bad.update")
	if err := os.Rename(filepath.Join(stick, "bad.update"), v.badPath); err != nil {
		return v, err
	}
	if fi, err := os.Stat(v.badPath); err == nil {
		v.badBytes = fi.Size()
	}
	os.RemoveAll(stick)
	t.Logf("bundles: N=%s (release %d), N+1=%s (%d bytes), never healthy=%s, hangs=%s, breaks the sensor=%s, older=%s (release %d), same, tampered, foreign key",
		v.n, v.release, v.next, v.goodBytes, v.bad, v.hang, v.breaks, v.older, v.release-1)
	return v, nil
}

func copyTo(path string, r io.Reader) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
