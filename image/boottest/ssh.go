package main

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"sensord/image/settings"
)

// newKeyPair makes a fresh ed25519 key pair in dir with OpenSSH's own
// ssh-keygen and returns the private key's path (the public key is
// path + ".pub"). No passphrase: the client runs in batch mode.
func newKeyPair(ctx context.Context, dir, name string) (string, error) {
	path := filepath.Join(dir, name)
	out, err := exec.CommandContext(ctx, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "sensord-boottest-"+name, "-f", path).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("ssh-keygen %s: %v: %s", name, err, out)
	}
	return path, nil
}

// ssh runs cmd on the guest as root through the forwarded port, with the
// real OpenSSH client and only the private key at key: -F /dev/null and
// IdentitiesOnly keep the host's ssh config and agent out of it, and the
// guest's host keys are new on every run, so none is remembered.
func (t *test) ssh(ctx context.Context, key, cmd string) (stdout, stderr string, err error) {
	// A login under emulation takes seconds (sshd execs a session process
	// per connection, the key exchange runs on an emulated CPU); a minute
	// and a half bounds a stuck one without failing a slow one.
	return t.sshWithin(ctx, 90*time.Second, key, cmd)
}

// sshWithin is ssh with room for a longer command (an install).
func (t *test) sshWithin(ctx context.Context, d time.Duration, key, cmd string) (stdout, stderr string, err error) {
	cctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	c := exec.CommandContext(cctx, "ssh", "-F", "/dev/null", "-i", key, "-p", strconv.Itoa(t.sshPort),
		"-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-o", "ConnectTimeout=30",
		"-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
		"root@127.0.0.1", cmd)
	var out, errOut strings.Builder
	c.Stdout, c.Stderr = &out, &errOut
	err = c.Run()
	if err != nil && cctx.Err() != nil {
		err = fmt.Errorf("%w (%v)", err, cctx.Err())
	}
	return out.String(), strings.TrimSpace(errOut.String()), err
}

// checkHostname proves HOSTNAME: sensord-settings set it before the network
// came up, in the kernel and in /etc/hostname.
func (t *test) checkHostname(ctx context.Context) {
	r, ok := t.guest(ctx, "hostname; cat /etc/hostname")
	if !ok {
		return
	}
	l := r.Lines()
	want := settings.BootTestHostname
	t.check(len(l) == 2 && l[0] == want && l[1] == want, "hostname and /etc/hostname are HOSTNAME=%s from sensord.conf: %q", want, strings.Join(l, " | "))

	// The name a browser uses: avahi must announce the set name, not the
	// image's, so it must have started after sensord-settings set it (or
	// followed the change). Asked over avahi's own D-Bus interface; qemu's
	// user network carries no multicast to ask over mDNS from outside.
	if r, ok = t.guest(ctx, "busctl call org.freedesktop.Avahi / org.freedesktop.Avahi.Server GetHostNameFqdn"); !ok {
		return
	}
	fqdn := `s "` + want + `.local"`
	t.check(r.Has(fqdn), "avahi announces %s.local: %q", want, strings.Join(r.Lines(), " | "))
}

// checkSSH proves SSH_PUBKEY: sensord-settings put the key in root's
// authorized_keys and started sshd, which lets that key in, refuses any
// other and offers no passwords.
func (t *test) checkSSH(ctx context.Context, qemuStart time.Time) {
	// sshd starts late on purpose: after sensord is READY and, on the first
	// boot, after sensord-sshkeys.service made the host keys (Nice=19, RSA
	// among them, on an emulated CPU).
	if err := t.waitActive(ctx, "ssh.service", 4*time.Minute); err != nil {
		t.logf("ssh.service: %v", err)
	}
	r, ok := t.guest(ctx, "systemctl is-enabled ssh.service; systemctl is-active ssh.service")
	l := r.Lines()
	t.check(ok && len(l) == 2 && l[0] == "disabled" && l[1] == "active",
		"ssh.service is active, started by sensord-settings for SSH_PUBKEY (not enabled, so a card without a key has none): %q", strings.Join(l, " | "))
	if !ok || len(l) != 2 || l[1] != "active" {
		t.explain(ctx, "systemctl status ssh.service sensord-sshkeys.service --no-pager -l | head -n 30; journalctl -b -o cat --no-pager -u sensord-settings | tail -n 10")
	}

	// What image/rootfs/etc/ssh/sshd_config.d/sensord.conf promises, as the
	// running sshd's own configuration sees it (Debian's sshd_config could
	// override a drop-in only by coming first).
	r, ok = t.guest(ctx, "sshd -T 2>&1 | grep -E '^(passwordauthentication|kbdinteractiveauthentication|permitrootlogin|pubkeyauthentication) '")
	cfg := map[string]string{}
	for _, l := range r.Lines() {
		if k, v, found := strings.Cut(l, " "); found {
			cfg[k] = v
		}
	}
	root := cfg["permitrootlogin"] // sshd -T spells prohibit-password "without-password"
	t.check(ok && cfg["passwordauthentication"] == "no" && cfg["kbdinteractiveauthentication"] == "no" &&
		cfg["pubkeyauthentication"] == "yes" && (root == "without-password" || root == "prohibit-password"),
		"sshd -T: keys only, root by key only: %q", strings.Join(r.Lines(), " | "))

	r, _ = t.guest(ctx, "cat /etc/machine-id")
	machineID := ""
	if l := r.Lines(); len(l) > 0 {
		machineID = l[len(l)-1]
	}
	t.login(ctx, qemuStart, machineID)
	if t.key2 != "" {
		out, errOut, err := t.ssh(ctx, t.key2, "id -un")
		t.check(err == nil && strings.TrimSpace(out) == "root", "the second of Imager's keys logs in as root too: %v %q %q", err, out, errOut)
	}
	t.refused(ctx)
}

// login logs in from outside with SSH_PUBKEY's key and checks that the
// shell it gets is the appliance's: the same machine ID as on the console.
func (t *test) login(ctx context.Context, qemuStart time.Time, machineID string) {
	// ssh.service active means sshd listens, but a connection can still be
	// lost while the guest is busy: retry for a bounded time. A refusal is
	// an answer, not a hiccup, and ends the wait.
	wctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	const cmd = "hostname; systemctl is-active sensord; cat /etc/machine-id; id -un"
	var out, errOut string
	var err error
	tries := 0
	for {
		tries++
		out, errOut, err = t.ssh(wctx, t.key, cmd)
		if err == nil || strings.Contains(errOut, "Permission denied") || wctx.Err() != nil {
			break
		}
		t.logf("ssh try %d: %v: %s", tries, err, errOut)
		select {
		case <-wctx.Done():
		case <-time.After(3 * time.Second):
		}
	}
	if !t.check(err == nil, "ssh -i <SSH_PUBKEY's key> -p %d root@127.0.0.1 logs in (try %d)", t.sshPort, tries) {
		t.logf("ssh: %v: %s", err, errOut)
		return
	}
	t.number("qemu start to ssh login with SSH_PUBKEY's key: %.0f s", time.Since(qemuStart).Seconds())
	l := Result{Out: out}.Lines()
	t.check(len(l) == 4 && l[0] == settings.BootTestHostname && l[1] == "active" && machineID != "" && l[2] == machineID && l[3] == "root",
		"over ssh: hostname, sensord active, the console's machine ID (%s), root: %q", machineID, strings.Join(l, " | "))
}

// refused checks that an unrelated key cannot log in, and that the server
// names public keys as its only method (no password to fall back to).
func (t *test) refused(ctx context.Context) {
	_, errOut, err := t.ssh(ctx, t.otherKey, "true")
	var ee *exec.ExitError
	t.check(errors.As(err, &ee) && ee.ExitCode() == 255 && strings.Contains(errOut, "Permission denied (publickey)"),
		"ssh with another key is refused, public keys the only method offered: %v: %q", err, errOut)
}

// guest runs cmd on the console, bounded by 90 s; a console error is a
// failed check (the guest or the console is in trouble).
func (t *test) guest(ctx context.Context, cmd string) (Result, bool) {
	cctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	r, err := t.console.Run(cctx, cmd)
	if err != nil {
		t.fail("console: %s: %v", cmd, err)
	}
	return r, err == nil
}

// explain runs cmd on the console and logs its output, to explain a failed
// check.
func (t *test) explain(ctx context.Context, cmd string) {
	r, _ := t.guest(ctx, cmd)
	for _, l := range r.Lines() {
		t.logf("guest: %s", l)
	}
}

// waitActive polls until unit is active, has failed, or d has passed.
func (t *test) waitActive(ctx context.Context, unit string, d time.Duration) error {
	wctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	start := time.Now()
	for {
		r, err := t.console.Run(wctx, "systemctl is-active "+unit)
		if err != nil {
			return fmt.Errorf("not active after %.0f s: %w", time.Since(start).Seconds(), err)
		}
		if r.Has("active") {
			t.logf("%s active after %.0f s more", unit, time.Since(start).Seconds())
			return nil
		}
		if r.Has("failed") {
			return errors.New("failed")
		}
		select {
		case <-wctx.Done():
			return fmt.Errorf("not active after %.0f s: %q", time.Since(start).Seconds(), r.Out)
		case <-time.After(3 * time.Second):
		}
	}
}
