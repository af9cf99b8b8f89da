package main

import (
	"context"
	"errors"
	"os/exec"
	"strings"
	"time"

	"sensord/image/boottest/harness"
	"sensord/image/boottest/vm"
	"sensord/image/settings"
)

// checkHostname proves HOSTNAME: sensord-settings set it before the network
// came up, in the kernel and in /etc/hostname.
func (t *rig) checkHostname(ctx context.Context) {
	r, ok := t.guest(ctx, "hostname; cat /etc/hostname")
	if !ok {
		return
	}
	l := r.Lines()
	want := settings.BootTestHostname
	t.Check(len(l) == 2 && l[0] == want && l[1] == want, "hostname and /etc/hostname are HOSTNAME=%s from sensord.conf: %q", want, strings.Join(l, " | "))

	// The name a browser uses: avahi must announce the set name, not the
	// image's, so it must have started after sensord-settings set it (or
	// followed the change). Asked over avahi's own D-Bus interface; qemu's
	// user network carries no multicast to ask over mDNS from outside.
	if r, ok = t.guest(ctx, "busctl call org.freedesktop.Avahi / org.freedesktop.Avahi.Server GetHostNameFqdn"); !ok {
		return
	}
	fqdn := `s "` + want + `.local"`
	t.Check(r.Has(fqdn), "avahi announces %s.local: %q", want, strings.Join(r.Lines(), " | "))
}

// sshSteps prove SSH_PUBKEY: sensord-settings put the key in root's
// authorized_keys and started sshd, which lets that key in, refuses any
// other and offers no passwords. qemuStart is when the boot began.
func (t *rig) sshSteps(qemuStart func() time.Time) harness.Step {
	return harness.Checks("SSH_PUBKEY",
		t.checkSSHService,
		t.checkSSHDConfig,
		func(ctx context.Context) { t.login(ctx, qemuStart(), t.machineID(ctx)) },
		t.checkSecondKey,
		t.refused,
	)
}

// checkSSHService: ssh.service active, started (not enabled) for the key.
func (t *rig) checkSSHService(ctx context.Context) {
	// sshd starts late on purpose: after sensord is READY and, on the first
	// boot, after sensord-sshkeys.service made the host keys (Nice=19, RSA
	// among them, on an emulated CPU).
	if err := t.waitActive(ctx, "ssh.service", 4*time.Minute); err != nil {
		t.Logf("ssh.service: %v", err)
	}
	r, ok := t.guest(ctx, "systemctl is-enabled ssh.service; systemctl is-active ssh.service")
	l := r.Lines()
	t.Check(ok && len(l) == 2 && l[0] == "disabled" && l[1] == "active",
		"ssh.service is active, started by sensord-settings for SSH_PUBKEY (not enabled, so a card without a key has none): %q", strings.Join(l, " | "))
	if !ok || len(l) != 2 || l[1] != "active" {
		t.explain(ctx, "systemctl status ssh.service sensord-sshkeys.service --no-pager -l | head -n 30; journalctl -b -o cat --no-pager -u sensord-settings | tail -n 10")
	}
}

// checkSSHDConfig: what image/rootfs/etc/ssh/sshd_config.d/sensord.conf
// promises, as the running sshd's own configuration sees it (Debian's
// sshd_config could override a drop-in only by coming first).
func (t *rig) checkSSHDConfig(ctx context.Context) {
	r, ok := t.guest(ctx, "sshd -T 2>&1 | grep -E '^(passwordauthentication|kbdinteractiveauthentication|permitrootlogin|pubkeyauthentication) '")
	cfg := map[string]string{}
	for _, l := range r.Lines() {
		if k, v, found := strings.Cut(l, " "); found {
			cfg[k] = v
		}
	}
	root := cfg["permitrootlogin"] // sshd -T spells prohibit-password "without-password"
	t.Check(ok && cfg["passwordauthentication"] == "no" && cfg["kbdinteractiveauthentication"] == "no" &&
		cfg["pubkeyauthentication"] == "yes" && (root == "without-password" || root == "prohibit-password"),
		"sshd -T: keys only, root by key only: %q", strings.Join(r.Lines(), " | "))
}

// machineID is the guest's, as the console reads it ("" if it cannot).
func (t *rig) machineID(ctx context.Context) string {
	r, _ := t.guest(ctx, "cat /etc/machine-id")
	if l := r.Lines(); len(l) > 0 {
		return l[len(l)-1]
	}
	return ""
}

// checkSecondKey: the second of Imager's keys logs in too (image-test).
func (t *rig) checkSecondKey(ctx context.Context) {
	if t.key2 == "" {
		return
	}
	out, errOut, err := t.ssh(ctx, t.key2, "id -un")
	t.Check(err == nil && strings.TrimSpace(out) == "root", "the second of Imager's keys logs in as root too: %v %q %q", err, out, errOut)
}

// login logs in from outside with SSH_PUBKEY's key and checks that the
// shell it gets is the appliance's: the same machine ID as on the console.
func (t *rig) login(ctx context.Context, qemuStart time.Time, machineID string) {
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
		t.Logf("ssh try %d: %v: %s", tries, err, errOut)
		select {
		case <-wctx.Done():
		case <-time.After(3 * time.Second):
		}
	}
	if !t.Check(err == nil, "ssh -i <SSH_PUBKEY's key> -p %d root@127.0.0.1 logs in (try %d)", t.sshPort, tries) {
		t.Logf("ssh: %v: %s", err, errOut)
		return
	}
	t.Number("qemu start to ssh login with SSH_PUBKEY's key: %.0f s", time.Since(qemuStart).Seconds())
	l := vm.Result{Out: out}.Lines()
	t.Check(len(l) == 4 && l[0] == settings.BootTestHostname && l[1] == "active" && machineID != "" && l[2] == machineID && l[3] == "root",
		"over ssh: hostname, sensord active, the console's machine ID (%s), root: %q", machineID, strings.Join(l, " | "))
}

// refused checks that an unrelated key cannot log in, and that the server
// names public keys as its only method (no password to fall back to).
func (t *rig) refused(ctx context.Context) {
	_, errOut, err := t.ssh(ctx, t.otherKey, "true")
	var ee *exec.ExitError
	t.Check(errors.As(err, &ee) && ee.ExitCode() == 255 && strings.Contains(errOut, "Permission denied (publickey)"),
		"ssh with another key is refused, public keys the only method offered: %v: %q", err, errOut)
}
