package daemon

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"sensord/cmd/sensord/internal/guard"
	"sensord/cmd/sensord/internal/promtext"
	"sensord/image/update"
	"sensord/internal/testutil"
)

// updateFixture is an A/B appliance's files in a temporary directory: the
// initramfs's boot note, the slot state, the last outcome, the trusted key
// and sensord's spool, behind the real token middleware.
type updateFixture struct {
	panel *updatePanel
	srv   *httptest.Server
	key   ed25519.PrivateKey
}

const (
	updateTestToken = "s3cret"
	updateTestOwner = "0wner-s3cret"
)

func newUpdateFixture(t *testing.T, booted bool) *updateFixture {
	t.Helper()
	dir := t.TempDir()
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pem, err := update.MarshalPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	p := newUpdatePanel(slog.New(slog.NewTextHandler(io.Discard, nil)))
	p.BootPath = filepath.Join(dir, "sensord-boot")
	if booted {
		write("sensord-boot", "slot=B\nmode=rolled-back\npartuuid=1234abcd\nfailed=A\n")
	}
	p.StatePath = write("state", "committed=B\nversion_A=1.1\nrelease_A=11\nversion_B=1.0\nrelease_B=10\n")
	p.LastPath = write("last", "outcome=rolled-back\nversion=1.1\nrelease=11\nslot=A\ntime=2026-12-01T10:00:00Z\nrule=sensor-broken\ndetail=the sensor read well at install but not within 10m0s of the trial\n")
	p.KeyPath = write("key.pem", string(pem))
	p.SpoolDir = filepath.Join(dir, "spool")
	p.VerdictPath = filepath.Join(dir, "verdict") // none until a test writes it
	mux := http.NewServeMux()
	p.register(mux)
	owner := guard.NewOwner(updateTestOwner, updateTestToken, p.Log, time.Now)
	p.Writable = owner.Writable()
	srv := httptest.NewServer(guard.Token(updateTestToken, owner, owner.Writes(mux)))
	t.Cleanup(srv.Close)
	return &updateFixture{panel: p, srv: srv, key: key}
}

// bundleBytes is a bundle of release 20, newer than the fixture's slots.
func bundleBytes(t *testing.T, key ed25519.PrivateKey, version string, payload []byte) []byte {
	return bundleRelease(t, key, version, 20, payload)
}

func bundleRelease(t *testing.T, key ed25519.PrivateKey, version string, release uint64, payload []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	m := update.Manifest{Compatible: update.Compatible, Version: version, Release: release, Kernel: "7.3.4+deb13-arm64"}
	if err := update.Write(&b, m, bytes.NewReader(payload), key); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func (f *updateFixture) post(t *testing.T, body []byte, hdr map[string]string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, f.srv.URL+"/api/update", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+updateTestOwner)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (f *updateFixture) spooled() ([]byte, error) {
	return os.ReadFile(filepath.Join(f.panel.SpoolDir, updateSpoolName))
}

func TestUpdatePanelShowsSlotVersionAndLastOutcome(t *testing.T) {
	f := newUpdateFixture(t, true)
	got := f.get(t)
	if !got.Available || got.Slot != "B" || got.Mode != "rolled-back" || got.Version != "1.0" || got.Release != 10 || got.Committed != "B" || got.Pending {
		t.Errorf("got %+v, want slot B rolled back, running 1.0 (release 10), nothing pending", got)
	}
	if got.Last == nil || got.Last.Outcome != "rolled-back" || got.Last.Version != "1.1" || got.Last.Slot != "A" || got.Last.Rule != "sensor-broken" {
		t.Errorf("last = %+v, want the rollback of 1.1 in slot A by the sensor-broken rule", got.Last)
	}
}

func TestUpdatePanelOffTheABImageSaysUnavailable(t *testing.T) {
	f := newUpdateFixture(t, false)
	if got := f.panel.info(); got.Available || got.Slot != "" {
		t.Errorf("info() = %+v, want unavailable and empty", got)
	}
	status, body := f.post(t, bundleBytes(t, f.key, "2.0", []byte("root")), nil)
	if status != http.StatusNotImplemented {
		t.Errorf("upload off the A/B image: %d %s, want 501", status, body)
	}
}

func TestUpdateUploadSpoolsAGoodBundleForTheUpdater(t *testing.T) {
	f := newUpdateFixture(t, true)
	good := bundleBytes(t, f.key, "2.0", bytes.Repeat([]byte("squashfs"), 4096))
	status, body := f.post(t, good, nil)
	if status != http.StatusAccepted {
		t.Fatalf("upload: %d %s, want 202", status, body)
	}
	got, err := f.spooled()
	if err != nil || !bytes.Equal(got, good) {
		t.Fatalf("spooled file: %d bytes, %v; want the %d uploaded bytes", len(got), err, len(good))
	}
	if !f.panel.info().Pending {
		t.Error("info() does not show the pending upload")
	}
	// The updater has not taken it yet: a second upload must wait.
	if status, body := f.post(t, good, nil); status != http.StatusConflict {
		t.Errorf("second upload while one is pending: %d %s, want 409", status, body)
	}
	entries, _ := os.ReadDir(f.panel.SpoolDir)
	if len(entries) != 1 {
		t.Errorf("spool holds %d files, want only %s", len(entries), updateSpoolName)
	}
	if f.panel.accepted.Load() != 1 || f.panel.refused.Load() != 1 {
		t.Errorf("counted %d accepted, %d refused; want 1 and 1", f.panel.accepted.Load(), f.panel.refused.Load())
	}
}

func TestUpdateUploadRefusesBadBundlesAndSpoolsNothing(t *testing.T) {
	f := newUpdateFixture(t, true)
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	payload := bytes.Repeat([]byte{0x5a}, 8192)
	good := bundleBytes(t, f.key, "2.0", payload)
	tampered := bytes.Clone(good)
	tampered[len(tampered)-100] ^= 1
	for _, c := range []struct {
		name   string
		body   []byte
		hdr    map[string]string
		status int
		want   string
	}{
		{"a file that is not a bundle", []byte("<html>not an update</html>"), nil, http.StatusUnprocessableEntity, "SENSORD-BUNDLE-1"},
		{"a bundle signed by another key", bundleBytes(t, other, "2.0", payload), nil, http.StatusUnprocessableEntity, "this appliance trusts"},
		{"a tampered payload", tampered, nil, http.StatusUnprocessableEntity, "SHA-256 differs"},
		{"a truncated bundle", good[:len(good)-1], nil, http.StatusUnprocessableEntity, "the manifest says"},
		{"a post from another site's page", good, map[string]string{"Origin": "http://evil.example"}, http.StatusForbidden, "another site"},
		{"an older release", bundleRelease(t, f.key, "0.9", 9, payload), nil, http.StatusConflict,
			"bundle release 9 (version 0.9) is not newer than the committed slot B's release 10 (version 1.0)"},
		{"the running release", bundleRelease(t, f.key, "1.0", 10, payload), nil, http.StatusConflict,
			"is the release already running in slot B (release 10, version 1.0)"},
		{"a bundle without a release number", bundleRelease(t, f.key, "0.1", 0, payload), nil, http.StatusConflict,
			"carries no release number"},
	} {
		t.Run(c.name, func(t *testing.T) {
			status, body := f.post(t, c.body, c.hdr)
			if status != c.status || !strings.Contains(body, c.want) {
				t.Errorf("got %d %s, want %d naming %q", status, body, c.status, c.want)
			}
			entries, _ := os.ReadDir(f.panel.SpoolDir)
			if len(entries) != 0 {
				t.Errorf("spool holds %d files after a refused upload, want none", len(entries))
			}
		})
	}
}

func TestUpdateUploadOverTheLimitIsRefused(t *testing.T) {
	f := newUpdateFixture(t, true)
	f.panel.MaxBytes = 1024
	status, body := f.post(t, bundleBytes(t, f.key, "2.0", make([]byte, 4096)), nil)
	if status != http.StatusRequestEntityTooLarge {
		t.Errorf("got %d %s, want 413", status, body)
	}
	if _, err := f.spooled(); err == nil {
		t.Error("an oversized upload was spooled")
	}
}

func TestUpdateUploadNeedsTheOwnerToken(t *testing.T) {
	f := newUpdateFixture(t, true)
	body := bundleBytes(t, f.key, "2.0", []byte("x"))
	for _, tc := range []struct {
		name, auth, say string
	}{
		{"no token at all is refused", "", "token"},
		{"the read token alone is refused", "Bearer " + updateTestToken, "needs the owner token"},
		{"a wrong owner token is refused", "Bearer 0wner-wrong", "token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, msg := f.post(t, body, map[string]string{"Authorization": tc.auth})
			if code != http.StatusUnauthorized || !strings.Contains(msg, tc.say) {
				t.Errorf("%d %s, want 401 saying %q", code, msg, tc.say)
			}
			if _, err := f.spooled(); err == nil {
				t.Error("spooled")
			}
		})
	}
}

func TestUpdateUploadIsOffWithoutAnOwnerToken(t *testing.T) {
	f := newUpdateFixture(t, true)
	owner := guard.NewOwner("", updateTestToken, f.panel.Log, time.Now)
	f.panel.Writable = owner.Writable()
	mux := http.NewServeMux()
	f.panel.register(mux)
	srv := httptest.NewServer(guard.Token(updateTestToken, owner, owner.Writes(mux)))
	defer srv.Close()
	for _, auth := range []string{"Bearer " + updateTestToken} {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/api/update", bytes.NewReader(bundleBytes(t, f.key, "2.0", []byte("x"))))
		req.Header.Set("Authorization", auth)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(b), "SENSORD_OWNER_TOKEN") || !strings.Contains(string(b), "writing is off") {
			t.Errorf("%s: %d %s, want 403 saying writing is off and how to turn it on", auth, resp.StatusCode, b)
		}
	}
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/api/update", nil)
	req.Header.Set("Authorization", "Bearer "+updateTestToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var in updateInfo
	json.NewDecoder(resp.Body).Decode(&in)
	resp.Body.Close()
	if in.Writable {
		t.Error("GET /api/update says writable without an owner token")
	}
	if _, err := f.spooled(); err == nil {
		t.Error("spooled")
	}
}

func TestUpdatePanelMetricsCountUploads(t *testing.T) {
	f := newUpdateFixture(t, true)
	f.post(t, []byte("junk"), nil)
	var b bytes.Buffer
	f.panel.writeMetrics(promtext.New(&b))
	if !strings.Contains(b.String(), `sensord_update_uploads_total{result="refused"} 1`) {
		t.Errorf("metrics:\n%s\nwant one refused upload", b.String())
	}
}

// TestATrickleUploadIsBrokenOffAndFreesTheSlot: a peer sends a bundle a
// byte at a time; on the panel's clock ten seconds pass per read, far
// below the minimum rate. The upload must be broken off and the owner's
// next upload accepted, not refused as busy.
func TestATrickleUploadIsBrokenOffAndFreesTheSlot(t *testing.T) {
	f := newUpdateFixture(t, true)
	var mu sync.Mutex
	clock := time.Now()
	f.panel.Now = func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		clock = clock.Add(10 * time.Second)
		return clock
	}
	good := bundleBytes(t, f.key, "2.0", []byte("root"))
	pr, pw := io.Pipe()
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		defer pw.Close()
		for i := 0; i < len(good) && i < 1000; i++ { // bounded: 10 s at most
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
			if _, err := pw.Write(good[i : i+1]); err != nil {
				return
			}
		}
	}()
	req, _ := http.NewRequest(http.MethodPost, f.srv.URL+"/api/update", pr)
	req.Header.Set("Authorization", "Bearer "+updateTestOwner)
	req.ContentLength = int64(len(good))
	go func() {
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	testutil.Until(t, 5*time.Second, func() bool { return f.panel.refused.Load() == 1 },
		func() string { return "the trickle upload still holds the slot" })
	if code, body := f.post(t, good, nil); code != http.StatusAccepted {
		t.Errorf("the owner's upload after the trickle: %d %s, want 202", code, body)
	}
}
