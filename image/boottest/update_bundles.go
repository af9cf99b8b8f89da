package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"sensord/image/paths"
	"sensord/image/update"
)

type bundles struct {
	n, next, bad, hang, older, breaks string
	// kernel (R+5) is good's root with boot files of its own: an
	// initramfs that says it is kernel's (a build stamp), not N's.
	kernel string
	// broken are trials whose boot files cannot boot (R+6 on).
	broken              []brokenTrial
	release             uint64 // the image's release (R)
	goodBytes, badBytes int64
	badPath             string // on the host: the dashboard upload sends it
	olderPath           string // on the host: an upload that must be refused
}

// bundleMaker makes the update test's bundles from the image's own.
type bundleMaker struct {
	*rig
	ctx    context.Context
	v      bundles
	key    ed25519.PrivateKey // the key the image trusts
	kernel string             // the image's bundle's kernel release
	// work holds the payloads and the unpacked root (tree, with sensord
	// at bin); stickDir what goes on the stick's filesystem.
	work, stickDir, tree, bin string
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
	m := &bundleMaker{rig: t, ctx: ctx, work: filepath.Join(t.dir, "bundles"), stickDir: filepath.Join(t.dir, "stick")}
	m.tree = filepath.Join(m.work, "tree")
	m.bin = filepath.Join(m.tree, "usr/local/bin/sensord")
	defer os.RemoveAll(m.work)
	for _, step := range []func() error{m.unpack, m.good, m.copies, m.kernelBundle, m.brokenBundles, m.breaks, m.bad, m.stickDisk} {
		if err := step(); err != nil {
			return m.v, err
		}
	}
	v := m.v
	t.Logf("bundles: N=%s (release %d), N+1=%s (%d bytes), never healthy=%s, hangs=%s, breaks the sensor=%s, older=%s (release %d), same, tampered, foreign key",
		v.n, v.release, v.next, v.goodBytes, v.bad, v.hang, v.breaks, v.older, v.release-1)
	return v, nil
}

// unpack opens the image's bundle, names the versions, unpacks its root
// and builds sensord into it as version N+next.
func (m *bundleMaker) unpack() error {
	var err error
	if m.key, err = update.ReadPrivateKey(m.opts.update.key); err != nil {
		return err
	}
	f, err := os.Open(m.opts.update.bundle)
	if err != nil {
		return err
	}
	defer f.Close()
	b, err := update.Open(f, m.key.Public().(ed25519.PublicKey))
	if err != nil {
		return err
	}
	v := &m.v
	v.n, v.release, m.kernel = b.Manifest.Version, b.Manifest.Release, b.Manifest.Kernel
	if v.release < 2 {
		return fmt.Errorf("the image's bundle has release %d: want 2 or more, so an older one can be made", v.release)
	}
	v.next, v.bad, v.hang, v.older, v.breaks = v.n+"+next", v.n+"+broken", v.n+"+hangs", v.n+"-older", v.n+"+nosensor"
	v.kernel = v.n + "+kernel"
	for _, d := range []string{m.work, m.stickDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	orig := filepath.Join(m.work, "orig.squashfs")
	if err := copyTo(orig, b.Payload()); err != nil {
		return err
	}
	if err := m.run(nil, "unsquashfs", "-q", "-n", "-d", m.tree, orig); err != nil {
		return err
	}
	return m.run([]string{"CGO_ENABLED=0", "GOOS=linux", "GOARCH=arm64"}, "go", "build", "-trimpath",
		"-ldflags", "-s -w -X main.version="+m.v.next, "-o", m.bin, "./cmd/sensord")
}

func (m *bundleMaker) run(env []string, args ...string) error {
	cmd := exec.CommandContext(m.ctx, args[0], args[1:]...)
	cmd.Env = append(os.Environ(), env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s: %v: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

// squash packs the tree as it is now into the payload out.
func (m *bundleMaker) squash(out string) error { return m.squashDir(m.tree, out) }

// squashDir packs dir into the payload out.
func (m *bundleMaker) squashDir(dir, out string) error {
	// zstd at a low level: the test's bundles need speed, not size.
	return m.run([]string{"SOURCE_DATE_EPOCH=0"}, "mksquashfs", dir, out, "-noappend", "-comp", "zstd", "-Xcompression-level", "3", "-quiet", "-no-progress")
}

// squashSigned packs dir into a payload, signs it with the card's key as
// the stick's file (version, release) and removes the payload: only the
// bundle is kept.
func (m *bundleMaker) squashSigned(dir, file, version string, release uint64) error {
	payload := filepath.Join(m.work, strings.TrimSuffix(file, ".update")+".squashfs")
	if err := m.squashDir(dir, payload); err != nil {
		return err
	}
	if err := m.sign(payload, filepath.Join(m.stickDir, file), version, release, m.key); err != nil {
		return err
	}
	return os.Remove(payload)
}

// sign writes the bundle out: payload, named version and release, signed
// with k.
func (m *bundleMaker) sign(payload, out, version string, release uint64, k ed25519.PrivateKey) error {
	p, err := os.Open(payload)
	if err != nil {
		return err
	}
	defer p.Close()
	o, err := os.Create(out)
	if err != nil {
		return err
	}
	man := update.Manifest{Compatible: update.Compatible, Version: version, Release: release, Kernel: m.kernel}
	if err := update.Write(o, man, p, k); err != nil {
		o.Close()
		return err
	}
	return o.Close()
}

func (m *bundleMaker) goodPayload() string { return filepath.Join(m.work, "good.squashfs") }

// good is N+1 (R+1), and the same root as hang (R+3): its trial is the
// one the test hangs (pid1stop, built for the guest, on the stick too).
func (m *bundleMaker) good() error {
	good, v := m.goodPayload(), m.v
	if err := m.squash(good); err != nil {
		return err
	}
	if err := m.sign(good, filepath.Join(m.stickDir, "good.update"), v.next, v.release+1, m.key); err != nil {
		return err
	}
	if err := m.sign(good, filepath.Join(m.stickDir, "hang.update"), v.hang, v.release+3, m.key); err != nil {
		return err
	}
	return m.run([]string{"CGO_ENABLED=0", "GOOS=linux", "GOARCH=arm64"}, "go", "build", "-trimpath",
		"-o", filepath.Join(m.stickDir, "pid1stop"), "./image/boottest/pid1stop")
}

// copies are good's root under other names: an older release (what counts
// is the signed release), the image's own bundle (the release that runs),
// good signed by a foreign key, and good with a byte flipped.
func (m *bundleMaker) copies() error {
	good, v := m.goodPayload(), &m.v
	v.olderPath = filepath.Join(m.dir, "older.update")
	if err := m.sign(good, v.olderPath, v.older, v.release-1, m.key); err != nil {
		return err
	}
	if err := m.run(nil, "cp", "--sparse=always", v.olderPath, filepath.Join(m.stickDir, "older.update")); err != nil {
		return err
	}
	if err := m.run(nil, "cp", "--sparse=always", m.opts.update.bundle, filepath.Join(m.stickDir, "same.update")); err != nil {
		return err
	}
	_, foreign, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	if err := m.sign(good, filepath.Join(m.stickDir, "foreign.update"), v.next, v.release+1, foreign); err != nil {
		return err
	}
	gb, err := os.ReadFile(filepath.Join(m.stickDir, "good.update"))
	if err != nil {
		return err
	}
	v.goodBytes = int64(len(gb))
	gb[len(gb)/2] ^= 0x20
	return os.WriteFile(filepath.Join(m.stickDir, "tampered.update"), gb, 0o644)
}

// initramfsStamp is where image/ab.sh writes the build's version into the
// initramfs (etc/sensord-initramfs, in its first archive).
const initramfsStamp = "etc/sensord-initramfs"

// kernelBundle is good's root whose slot boot files are its own: the
// initramfs says it is version kernel's, and the boot that runs it says
// so in /run/sensord-boot (initramfs=).
func (m *bundleMaker) kernelBundle() error {
	rd := filepath.Join(m.tree, paths.SlotBoot, update.InitrdName)
	orig, err := os.ReadFile(rd)
	if err != nil {
		return err
	}
	stamped, err := restampInitramfs(orig, initramfsStamp, []byte(m.v.kernel+"\n"))
	if err != nil {
		return err
	}
	if err := os.WriteFile(rd, stamped, 0o644); err != nil {
		return err
	}
	if err := m.squashSigned(m.tree, "kernel.update", m.v.kernel, m.v.release+5); err != nil {
		return err
	}
	return os.WriteFile(rd, orig, 0o644)
}

// breaks is a release that breaks the sensor: sensord runs, its simulated
// sensor no longer answers (the settings file sets no
// SENSORD_SIM_NO_RESPONSE, so the unit's Environment= holds).
func (m *bundleMaker) breaks() error {
	dropin := filepath.Join(m.tree, "etc/systemd/system/sensord.service.d/update-test-break-sensor.conf")
	if err := os.MkdirAll(filepath.Dir(dropin), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(dropin, []byte("[Service]\nEnvironment=SENSORD_SIM_NO_RESPONSE=true\n"), 0o644); err != nil {
		return err
	}
	if err := m.squashSigned(m.tree, "breaks.update", m.v.breaks, m.v.release+4); err != nil {
		return err
	}
	return os.Remove(dropin)
}

// bad is a release whose sensord exits at once: it never becomes healthy.
func (m *bundleMaker) bad() error {
	broken := "#!/bin/sh\necho 'sensord (update test): this build never becomes healthy' >&2\nexit 1\n"
	if err := os.WriteFile(m.bin, []byte(broken), 0o755); err != nil {
		return err
	}
	return m.squashSigned(m.tree, "bad.update", m.v.bad, m.v.release+2)
}

// writeStick makes the stick: an ext4 disk image of stickDir's files,
// with room for them, which qemu attaches as a second, read-only disk.
func (m *bundleMaker) writeStick() error {
	m.rig.stick = filepath.Join(m.dir, "stick.img")
	var size int64 = 64 << 20 // the filesystem's own
	files, err := os.ReadDir(m.stickDir)
	if err != nil {
		return err
	}
	for _, f := range files {
		if fi, err := f.Info(); err == nil {
			size += fi.Size() + fi.Size()/16
		}
	}
	if err := m.run(nil, "truncate", "-s", strconv.FormatInt(size, 10), m.rig.stick); err != nil {
		return err
	}
	return m.run(nil, "mkfs.ext4", "-q", "-F", "-d", m.stickDir, m.rig.stick)
}

// stickDisk makes the stick, an ext4 disk image of every bundle but bad,
// which the dashboard's upload sends from the host.
func (m *bundleMaker) stickDisk() error {
	v := &m.v
	if err := m.writeStick(); err != nil {
		return err
	}
	v.badPath = filepath.Join(m.dir, "bad.update")
	if err := os.Rename(filepath.Join(m.stickDir, "bad.update"), v.badPath); err != nil {
		return err
	}
	if fi, err := os.Stat(v.badPath); err == nil {
		v.badBytes = fi.Size()
	}
	return os.RemoveAll(m.stickDir)
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

// brokenTrial is a bundle whose boot files cannot boot, and what the
// console shows of its one trial boot.
type brokenTrial struct {
	name, version string
	release       uint64
	// onCard: the boot files are made broken on the card after the
	// install, over the serial console (a command run in the guest).
	onCard string
	// console is the line of the trial boot that shows why it failed.
	console string
}

func (b brokenTrial) file() string { return b.name + ".update" }

// brokenBundles are trials that never reach the root (R+6 on), each a
// root holding only the slot's boot files:
//   - zeros: the kernel's bytes all zero (U-Boot's booti refuses it);
//   - x86: a kernel for another architecture (booti refuses it);
//   - panics: the real kernel with an initramfs whose /init exits (the
//     kernel panics and reboots after cmdline.txt's panic=);
//   - stuck: the real kernel and initramfs, with hanginit where the
//     slot chooser was: a task stuck in the kernel for good, which only
//     the trial boot's hung-task panic (boot.cmd, trial_args) ends;
//   - truncated: the real files, the kernel on the card cut short after
//     the install (a torn copy: the boot script's sizes check refuses it).
func (m *bundleMaker) brokenBundles() error {
	if m.opts.update.x86Kernel == "" {
		return fmt.Errorf("-x86-kernel: no kernel for another architecture given")
	}
	src := filepath.Join(m.tree, paths.SlotBoot)
	bt := filepath.Join(m.work, "broken")
	boot := filepath.Join(bt, paths.SlotBoot)
	if err := os.MkdirAll(filepath.Dir(boot), 0o755); err != nil {
		return err
	}
	if err := m.run(nil, "cp", "-a", src, boot); err != nil {
		return err
	}
	kernel, err := os.ReadFile(filepath.Join(src, update.KernelName))
	if err != nil {
		return err
	}
	initrd, err := os.ReadFile(filepath.Join(src, update.InitrdName))
	if err != nil {
		return err
	}
	x86, err := os.ReadFile(m.opts.update.x86Kernel)
	if err != nil {
		return err
	}
	panicInit := filepath.Join(m.work, "testinit")
	if err := m.run([]string{"CGO_ENABLED=0", "GOOS=linux", "GOARCH=arm64"}, "go", "build", "-trimpath", "-o", panicInit, "./image/uboot/testinit"); err != nil {
		return err
	}
	initBin, err := os.ReadFile(panicInit)
	if err != nil {
		return err
	}
	panics := newcArchive([]newcEntry{
		{name: "dev", mode: 0o40755},
		{name: "dev/console", mode: 0o20600, rdevMajor: 5, rdevMinor: 1},
		{name: "init", mode: 0o100755, data: initBin},
	})
	stuck, err := m.hangingInitramfs(initrd)
	if err != nil {
		return err
	}
	const cut = "f=/boot/firmware/slot-a/vmlinuz; truncate -s $(( $(stat -c %s $f) * 9 / 10 )) $f && sync"
	for i, c := range []struct {
		brokenTrial
		kernel, initrd []byte
	}{
		{brokenTrial{name: "zeros", console: "sensord-boot: slot A (/slot-a) did not boot: resetting"}, make([]byte, len(kernel)), initrd},
		{brokenTrial{name: "x86", console: "sensord-boot: slot A (/slot-a) did not boot: resetting"}, x86, initrd},
		{brokenTrial{name: "panics", console: "Kernel panic - not syncing: Attempted to kill init!"}, kernel, panics},
		{brokenTrial{name: "stuck", console: "blocked for more than " + hanginitTimeout + " seconds"}, kernel, stuck},
		{brokenTrial{name: "truncated", onCard: cut, console: "/slot-a/vmlinuz is 0x"}, kernel, initrd},
	} {
		b := c.brokenTrial
		if b.name != brokenTrialNames[i] {
			return fmt.Errorf("broken trial %d is %s, the steps expect %s", i, b.name, brokenTrialNames[i])
		}
		b.version, b.release = m.v.n+"+"+b.name, m.v.release+6+uint64(i)
		if err := os.WriteFile(filepath.Join(boot, update.KernelName), c.kernel, 0o644); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(boot, update.InitrdName), c.initrd, 0o644); err != nil {
			return err
		}
		if err := m.squashSigned(bt, b.file(), b.version, b.release); err != nil {
			return err
		}
		m.v.broken = append(m.v.broken, b)
	}
	return os.RemoveAll(bt)
}

// hanginitTimeout is hanginit's hungAfter: the kernel reports a task
// stuck this many seconds.
const hanginitTimeout = "30"

// hangingInitramfs is initrd whose slot chooser (its first archive's
// scripts/local-top/sensord-slot, which the real initramfs runs before it
// mounts the root) runs hanginit instead; an archive before it holds
// hanginit, as /sensord-hang, and the small ext4 image it freezes.
func (m *bundleMaker) hangingInitramfs(initrd []byte) ([]byte, error) {
	bin := filepath.Join(m.work, "hanginit")
	if err := m.run([]string{"CGO_ENABLED=0", "GOOS=linux", "GOARCH=arm64"}, "go", "build", "-trimpath", "-o", bin, "./image/boottest/hanginit"); err != nil {
		return nil, err
	}
	fs := filepath.Join(m.work, "hang.ext4")
	if err := m.run(nil, "mkfs.ext4", "-q", "-F", "-O", "^has_journal", fs, "2M"); err != nil {
		return nil, err
	}
	hang, err := os.ReadFile(bin)
	if err != nil {
		return nil, err
	}
	img, err := os.ReadFile(fs)
	if err != nil {
		return nil, err
	}
	chooserless, err := restampInitramfs(initrd, "scripts/local-top/sensord-slot", []byte("#!/bin/sh\n/sensord-hang\n"))
	if err != nil {
		return nil, err
	}
	ours := newcArchive([]newcEntry{
		{name: "hang.ext4", mode: 0o100644, data: img},
		{name: "sensord-hang", mode: 0o100755, data: hang},
	})
	return append(ours, chooserless...), errors.Join(os.Remove(bin), os.Remove(fs))
}
