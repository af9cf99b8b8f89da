package daemon

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// postUpdate posts a small body to /api/update with the given
// Authorization (none when empty).
func postUpdate(t *testing.T, p *inproc, auth string) (int, string) {
	t.Helper()
	return post(t, p.url("/api/update"), auth, "", []byte("not a bundle"))
}

// asABImage points the daemon's update panel at a booted A/B layout in a
// temporary directory, so that an upload that passes the owner check
// gets as far as the bundle check.
func asABImage(t *testing.T, p *inproc) {
	t.Helper()
	dir := t.TempDir()
	p.d.update.BootPath = filepath.Join(dir, "sensord-boot")
	if err := os.WriteFile(p.d.update.BootPath, []byte("slot=A\nmode=committed\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p.d.update.SpoolDir = filepath.Join(dir, "spool")
	p.d.update.KeyPath = filepath.Join(dir, "missing-key.pem")
}

func TestWritingIsOffWithoutAnOwnerToken(t *testing.T) {
	t.Parallel()
	p := newInproc(t)
	asABImage(t, p)
	code, body := postUpdate(t, p, "")
	if code != http.StatusForbidden || !strings.Contains(body, "writing is off") || !strings.Contains(body, "SENSORD_OWNER_TOKEN") {
		t.Errorf("an upload from anyone with default settings: %d %s, want 403 saying how to turn writing on", code, body)
	}
	if _, err := os.Stat(p.d.update.SpoolDir); err == nil {
		t.Error("the refused upload reached the spool")
	}
	if _, body := get(t, nil, p.url("/metrics")); !strings.Contains(body, "sensord_writes_off_total 1\n") {
		t.Errorf("metrics lack the refused write:\n%s", body)
	}
}

func TestOwnerTokenGuardsWritesAndIsNeverShown(t *testing.T) {
	t.Parallel()
	const read, owner = "reader-token", "0wner-s3cret-token"
	p := newInproc(t, "-token", read, "-owner-token", owner)
	p.runPoller()
	asABImage(t, p)
	if code, body := postUpdate(t, p, "Bearer "+read); code != http.StatusUnauthorized || !strings.Contains(body, "owner token") {
		t.Errorf("an upload with the read token: %d %s, want 401 asking for the owner token", code, body)
	}
	if code, body := postUpdate(t, p, "Bearer wrong-guess"); code != http.StatusUnauthorized {
		t.Errorf("an upload with a wrong token: %d %s, want 401", code, body)
	}
	// Past the owner check the upload meets the bundle check (here: the
	// key file is missing), not a refusal of the credential.
	if code, body := postUpdate(t, p, "Bearer "+owner); code == http.StatusUnauthorized || code == http.StatusForbidden {
		t.Errorf("an upload with the owner token: %d %s, want past the owner check", code, body)
	}
	// The owner token reads too.
	for _, path := range []string{"/healthz", "/metrics", "/api/history", "/api/update"} {
		resp, body := get(t, nil, p.url(path), "Authorization", "Bearer "+owner)
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s with the owner token: %d", path, resp.StatusCode)
		}
		if strings.Contains(body, owner) {
			t.Errorf("%s shows the owner token", path)
		}
	}
	_, metrics := get(t, nil, p.url("/metrics"), "Authorization", "Bearer "+read)
	if !strings.Contains(metrics, "sensord_owner_token_wrong_total 1\n") {
		t.Errorf("metrics lack the one wrong guess:\n%s", metrics)
	}
	if strings.Contains(p.log.String(), owner) {
		t.Errorf("the log shows the owner token:\n%s", p.log.String())
	}
}

func TestOwnerTokenFlagIsCheckedAtStart(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"a short one", []string{"-owner-token", "short"}},
		{"one with a space", []string{"-owner-token", "has a space in it"}},
		{"the read token again", []string{"-token", "same-token-1", "-owner-token", "same-token-1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := ParseConfig(tc.args, func(string) (string, bool) { return "", false }, nil)
			if err == nil || !strings.Contains(err.Error(), "-owner-token") || strings.Contains(err.Error(), "same-token-1") {
				t.Errorf("%v, want an error naming -owner-token without showing it", err)
			}
		})
	}
	cfg, _, err := ParseConfig(nil, func(k string) (string, bool) {
		if k == "SENSORD_OWNER_TOKEN" {
			return "from-sensord-conf", true
		}
		return "", false
	}, nil)
	if err != nil || cfg.OwnerToken != "from-sensord-conf" {
		t.Errorf("SENSORD_OWNER_TOKEN: %v %q", err, cfg.OwnerToken)
	}
}
