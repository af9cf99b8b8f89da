package main

import (
	"context"
	"encoding/json"
	"flag"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"sensord/image/settings"
	"sensord/image/update"
)

// updateOptions are the flags of the A/B update test (make update-test).
type updateOptions struct {
	on     bool
	bundle string // the image's own bundle (version N)
	key    string // the key it is signed with (the repository's test key)
	// x86Kernel is a kernel for another architecture (Debian's amd64
	// one, make kernel-test's cache) for a trial whose kernel cannot run.
	x86Kernel string
	// field: the image is a card of an earlier release, which takes
	// bundle (this version's) and moves itself to U-Boot (field.go).
	field bool
}

func (u *updateOptions) flags() {
	flag.BoolVar(&u.on, "update", false, "run the A/B update test instead of the boot test")
	flag.StringVar(&u.bundle, "bundle", "", "with -update: the image's update bundle")
	flag.StringVar(&u.key, "key", "image/keys/TEST-ONLY-update-key.pem", "with -update: the key the image trusts")
	flag.StringVar(&u.x86Kernel, "x86-kernel", "", "with -update: an x86_64 kernel image, for a trial whose kernel is for another architecture")
	flag.BoolVar(&u.field, "field", false, "with -update: -image is a card of an earlier release, -bundle this version's: install it with the card's own sensorctl, commit it, and the card moves to U-Boot (make field-test)")
}

func (t *rig) expectBoot(ctx context.Context, slot, mode string) {
	r, _ := t.guest(ctx, "cat /run/sensord-boot")
	t.Check(r.Has("slot="+slot) && r.Has("mode="+mode), "initramfs booted slot %s (%s): %q", slot, mode, strings.Join(r.Lines(), " "))
}

func (t *rig) expectVersion(ctx context.Context, want string) {
	var h struct {
		Version string `json:"version"`
	}
	req, _ := http.NewRequestWithContext(ctx, "GET", t.url("/healthz"), nil)
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err == nil {
		err = json.NewDecoder(resp.Body).Decode(&h)
		resp.Body.Close()
	}
	t.Check(err == nil && h.Version == want, "sensord's /healthz shows version %q (got %q, %v)", want, h.Version, err)
}

// expectRolledBack checks that the journal says version was rolled back
// by rule.
func (t *rig) expectRolledBack(ctx context.Context, version, rule, format string) {
	r, _ := t.guest(ctx, "journalctl -b -u sensord-update -o cat --no-pager | grep 'rolled back'")
	t.Check(strings.Contains(r.Out, "version "+version+" rolled back by rule "+rule), format, strings.Join(r.Lines(), " | "))
}

// bootPartitionHash is the hash of every file on the disk's boot partition
// (vm.FAT.Hash): what the Pi's firmware loads (kernel, initrd, device
// trees, config.txt, cmdline.txt) and the settings file.
// updatedByInstall: what an install writes on the boot partition, the
// slots' boot files and the slot state with the boot script's count.
func updatedByInstall(rel string) bool {
	for _, d := range []string{update.ChooserDir, update.SlotBootDir("", update.SlotA), update.SlotBootDir("", update.SlotB)} {
		if strings.HasPrefix(rel, strings.TrimPrefix(filepath.ToSlash(d), "/")+"/") {
			return true
		}
	}
	return false
}

func (t *rig) bootPartitionHash(ctx context.Context) (string, error) {
	h, n, err := t.disk.FAT().Hash(ctx, t.dir, updatedByInstall)
	if err != nil {
		return "", err
	}
	t.Logf("boot partition: %d files hashed", n)
	return h, nil
}

// dataFingerprint hashes what the data partition must keep: the
// machine ID, the SSH host key, sensord's history.
func (t *rig) dataFingerprint(ctx context.Context) string {
	if err := t.waitGuest(ctx, 5*time.Minute, "test -s /etc/ssh/ssh_host_ed25519_key.pub && echo keys", "keys"); err != nil {
		t.Fail("no SSH host key: %v", err)
	}
	r, _ := t.guest(ctx, "cat /etc/machine-id /etc/ssh/ssh_host_ed25519_key.pub /var/lib/sensord/update-test-history | sha256sum")
	t.Logf("data fingerprint: %s", strings.TrimSpace(r.Out))
	return strings.TrimSpace(r.Out)
}

// updatePanel is what the dashboard's GET /api/update answers.
type updatePanel struct {
	Available bool   `json:"available"`
	Slot      string `json:"slot"`
	Mode      string `json:"mode"`
	Version   string `json:"version"`
	Release   uint64 `json:"release"`
	Committed string `json:"committed"`
	Last      struct {
		Outcome, Version, Slot, Rule string
	} `json:"last"`
}

// expectPanel checks the dashboard's update panel (the JSON its device
// panel shows) with ok.
func (t *rig) expectPanel(ctx context.Context, when string, ok func(updatePanel) bool) {
	var in updatePanel
	req, _ := http.NewRequestWithContext(ctx, "GET", t.url("/api/update"), nil)
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err == nil {
		err = json.NewDecoder(resp.Body).Decode(&in)
		resp.Body.Close()
	}
	t.Check(err == nil && in.Available && ok(in), "the dashboard's update panel %s: %+v (%v)", when, in, err)
}

// upload posts the bundle at path to the dashboard's /api/update, as the
// page's upload form does.
func (t *rig) upload(ctx context.Context, path string) (int, string, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, "", err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, "", err
	}
	req, err := http.NewRequestWithContext(ctx, "POST", t.url("/api/update"), f)
	if err != nil {
		return 0, "", err
	}
	req.ContentLength = fi.Size()
	req.Header.Set("Content-Type", "application/octet-stream")
	req.Header.Set("Authorization", "Bearer "+settings.BootTestOwnerToken)
	resp, err := (&http.Client{Timeout: 15 * time.Minute}).Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return resp.StatusCode, strings.TrimSpace(string(b)), nil
}
