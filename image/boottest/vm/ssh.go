package vm

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// NewKeyPair makes a fresh ed25519 key pair in dir with OpenSSH's own
// ssh-keygen and returns the private key's path (the public key is
// path + ".pub"). No passphrase: the client runs in batch mode.
func NewKeyPair(ctx context.Context, dir, name string) (string, error) {
	path := filepath.Join(dir, name)
	out, err := exec.CommandContext(ctx, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "sensord-boottest-"+name, "-f", path).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("ssh-keygen %s: %v: %s", name, err, out)
	}
	return path, nil
}

// SSH runs cmd as root on the guest whose port 22 is forwarded to the
// host's 127.0.0.1:port, with the real OpenSSH client and only the private
// key at key: -F /dev/null and IdentitiesOnly keep the host's ssh config
// and agent out of it, and the guest's host keys are new on every run, so
// none is remembered. ctx bounds it.
func SSH(ctx context.Context, port int, key, cmd string) (stdout, stderr string, err error) {
	c := exec.CommandContext(ctx, "ssh", "-F", "/dev/null", "-i", key, "-p", strconv.Itoa(port),
		"-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-o", "ConnectTimeout=30",
		"-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
		"root@127.0.0.1", cmd)
	var out, errOut strings.Builder
	c.Stdout, c.Stderr = &out, &errOut
	err = c.Run()
	if err != nil && ctx.Err() != nil {
		err = fmt.Errorf("%w (%v)", err, ctx.Err())
	}
	return out.String(), strings.TrimSpace(errOut.String()), err
}
