package daemon

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sensord/image/setupap"
	"sensord/internal/testutil"
)

// TestSetupPostIsTheOneWriteWithoutTheOwner: through the daemon's whole
// front door (-token and -owner-token set), the setup POST is taken
// without either, only while the root side says setup mode is on and
// only on the access point's address (here the test server's own,
// 127.0.0.1); every other write there is redirected to the page, never
// run; with setup mode off, /setup is not found and writes need the
// owner again.
func TestSetupPostIsTheOneWriteWithoutTheOwner(t *testing.T) {
	t.Parallel()
	p := newInproc(t, "-token", "read-token-1", "-owner-token", "owner-token-1")
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	p.d.setup.StatePath, p.d.setup.SpoolPath = state, filepath.Join(dir, "setup-request")
	st := setupap.State{Phase: setupap.PhaseSetup, Active: true, Interface: "wlan0", Address: "127.0.0.1", SSID: "sensord-ABCD"}
	if err := setupap.WriteState(state, st); err != nil {
		t.Fatal(err)
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	post := func(path, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, p.url(path), strings.NewReader(body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Host = "127.0.0.1"
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("Location") + string(b)
	}
	if code, body := post("/setup", "ssid=Home&passphrase=correct+horse"); code != http.StatusAccepted {
		t.Fatalf("setup POST without a credential in setup mode: %d %q, want 202", code, body)
	}
	if _, err := os.Stat(p.d.setup.SpoolPath); err != nil {
		t.Fatalf("the request was not passed on: %v", err)
	}
	if code, body := post("/api/send", `{"topic":"x","payload":1}`); code != http.StatusFound || !strings.HasPrefix(body, "http://127.0.0.1/setup") {
		t.Fatalf("another write on the access point: %d %q, want a redirect to the page", code, body)
	}
	st.Active, st.Phase = false, setupap.PhaseStation
	if err := setupap.WriteState(state, st); err != nil {
		t.Fatal(err)
	}
	os.Remove(p.d.setup.SpoolPath)
	// The page re-reads the root side's state within stateRefresh.
	testutil.Until(t, 10*time.Second, func() bool {
		resp, err := http.Get(p.url("/setup/status"))
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusNotFound
	}, func() string { return "/setup still served after setup mode ended" })
	if code, _ := post("/setup", "ssid=Home"); code != http.StatusNotFound {
		t.Errorf("setup POST after setup mode ended: %d, want 404", code)
	}
	if code, _ := post("/api/send", `{"topic":"x","payload":1}`); code != http.StatusUnauthorized && code != http.StatusForbidden {
		t.Errorf("a write without the owner after setup: %d, want refused", code)
	}
	if _, err := os.Stat(p.d.setup.SpoolPath); err == nil {
		t.Error("a request was passed on outside setup mode")
	}
}
