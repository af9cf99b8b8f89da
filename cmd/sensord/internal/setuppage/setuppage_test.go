package setuppage

import (
	"bytes"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"sensord/cmd/sensord/internal/promtext"
	"sensord/image/setupap"
)

// apAddr stands for the access point's address: a second loopback
// address, so one server has an "access point" listener and another.
const apAddr = "127.0.0.2"

// rig is a Portal in front of a stand-in dashboard, served on two real
// listeners: ap (the access point's address) and lan (any other).
type rig struct {
	p         *Portal
	ap, lan   string // base URLs
	dashboard atomic.Int64
	state     string
	now       atomic.Int64 // the Portal's clock, in ns since the epoch
}

func newRig(t *testing.T, st setupap.State) *rig {
	t.Helper()
	dir := t.TempDir()
	r := &rig{state: filepath.Join(dir, "state")}
	r.now.Store(time.Now().UnixNano())
	r.p = &Portal{StatePath: r.state, SpoolPath: filepath.Join(dir, "setup-request"), Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Now: func() time.Time { return time.Unix(0, r.now.Load()) }}
	r.setState(t, st)
	h := r.p.Front(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		r.dashboard.Add(1)
		io.WriteString(w, "dashboard")
	}))
	for _, addr := range []string{apAddr, "127.0.0.1"} {
		ln, err := net.Listen("tcp", addr+":0")
		if err != nil {
			t.Skipf("cannot listen on %s: %v", addr, err)
		}
		srv := &http.Server{Handler: h}
		go srv.Serve(ln)
		t.Cleanup(func() { srv.Close() })
		if addr == apAddr {
			r.ap = "http://" + ln.Addr().String()
		} else {
			r.lan = "http://" + ln.Addr().String()
		}
	}
	return r
}

// setState writes st as the root side would and moves the Portal's
// clock past its refresh, so the next request reads it.
func (r *rig) setState(t *testing.T, st setupap.State) {
	t.Helper()
	if err := setupap.WriteState(r.state, st); err != nil {
		t.Fatal(err)
	}
	r.now.Add(int64(2 * stateRefresh))
}

func setupState() setupap.State {
	return setupap.State{Phase: setupap.PhaseSetup, Active: true, Interface: "wlan0", Address: apAddr, SSID: "sensord-ABCD",
		Reason:   "no Wi-Fi network is set up and no cable is connected",
		Networks: []setupap.Network{{SSID: "Home", Signal: -40, Secured: true}, {SSID: "Café", Signal: -70}}}
}

var noFollow = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }, Timeout: 10 * time.Second}

func do(t *testing.T, method, base, path, host string, body string, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	if method == http.MethodPost {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := noFollow.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// TestCaptiveChecksAreRedirected: every phone's "am I online?" check on
// the access point gets a redirect to the page, never its "online"
// answer; so does any other host or path.
func TestCaptiveChecksAreRedirected(t *testing.T) {
	r := newRig(t, setupState())
	for _, tc := range []struct{ name, host, path string }{
		{"Android", "connectivitycheck.gstatic.com", "/generate_204"},
		{"Android on the Pi's own address", apAddr, "/generate_204"},
		{"Apple", "captive.apple.com", "/hotspot-detect.html"},
		{"Windows", "www.msftconnecttest.com", "/connecttest.txt"},
		{"older Windows", "www.msftncsi.com", "/ncsi.txt"},
		{"any other site", "example.org", "/"},
		{"the setup page under another host", "example.org", PagePath},
		{"the Pi's dashboard", apAddr, "/"},
		{"a POST to an owner's endpoint", apAddr, "/api/send"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			method := http.MethodGet
			if strings.HasPrefix(tc.path, "/api/") {
				method = http.MethodPost
			}
			resp, body := do(t, method, r.ap, tc.path, tc.host, "", nil)
			if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "http://"+apAddr+PagePath {
				t.Fatalf("got %d Location %q (%q), want 302 to the setup page", resp.StatusCode, resp.Header.Get("Location"), body)
			}
			if strings.Contains(body, "Success") {
				t.Errorf("the answer carries Apple's online page: %q", body)
			}
		})
	}
	if r.dashboard.Load() != 0 {
		t.Errorf("the dashboard served %d requests on the access point", r.dashboard.Load())
	}
}

// TestSetupOnlyOnTheAccessPointInSetupMode: off the access point's
// address, or with setup mode off, /setup is not found and the rest is
// the dashboard.
func TestSetupOnlyOnTheAccessPointInSetupMode(t *testing.T) {
	r := newRig(t, setupState())
	resp, body := do(t, http.MethodGet, r.ap, PagePath, apAddr, "", nil)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "Set up your sensord") {
		t.Fatalf("on the access point: %d %.60q, want the page", resp.StatusCode, body)
	}
	for _, path := range []string{PagePath, StatusPath} {
		if resp, _ := do(t, http.MethodGet, r.lan, path, "", "", nil); resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s on another interface: %d, want 404", path, resp.StatusCode)
		}
	}
	if resp, _ := do(t, http.MethodPost, r.lan, PagePath, "", "ssid=Home", nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("POST /setup on another interface: %d, want 404", resp.StatusCode)
	}
	if resp, body := do(t, http.MethodGet, r.lan, "/", "", "", nil); resp.StatusCode != http.StatusOK || body != "dashboard" {
		t.Errorf("/ on another interface: %d %q, want the dashboard", resp.StatusCode, body)
	}
	st := setupState()
	st.Active, st.Phase = false, setupap.PhaseStation
	r.setState(t, st)
	for _, base := range []string{r.ap, r.lan} {
		if resp, _ := do(t, http.MethodGet, base, PagePath, "", "", nil); resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET /setup with setup mode off: %d, want 404", resp.StatusCode)
		}
		if resp, _ := do(t, http.MethodPost, base, PagePath, "", "ssid=Home", nil); resp.StatusCode != http.StatusNotFound {
			t.Errorf("POST /setup with setup mode off: %d, want 404", resp.StatusCode)
		}
		if resp, body := do(t, http.MethodGet, base, "/generate_204", "", "", nil); resp.StatusCode != http.StatusOK || body != "dashboard" {
			t.Errorf("/generate_204 with setup mode off: %d %q, want the dashboard's answer", resp.StatusCode, body)
		}
	}
	if _, err := os.Stat(r.p.SpoolPath); err == nil {
		t.Error("a request was spooled outside setup mode")
	}
	if got := r.p.refused[0].Load(); got < 7 {
		t.Errorf("refused not_setup %d, want the 7 requests counted", got)
	}
}

// TestSubmitRefusesHostileInput: what the form refuses, in words, with
// nothing passed on, and counted.
func TestSubmitRefusesHostileInput(t *testing.T) {
	r := newRig(t, setupState())
	big := "ssid=Home&passphrase=" + strings.Repeat("p", setupap.MaxRequestBytes)
	for _, tc := range []struct {
		name, body string
		hdr        map[string]string
		code       int
		words      string
	}{
		{"a body over the bound", big, nil, http.StatusRequestEntityTooLarge, "larger than"},
		{"no network", "passphrase=12345678", nil, http.StatusBadRequest, "choose a network"},
		{"a short passphrase", "ssid=Home&passphrase=1234", nil, http.StatusBadRequest, "8 to 63"},
		{"a quote in the network name", "ssid=" + url.QueryEscape(`a"b`), nil, http.StatusBadRequest, "double quotes"},
		{"a line break smuggled into the name", "ssid=Home&name=" + url.QueryEscape("x\nSENSORD_TOKEN=y"), nil, http.StatusBadRequest, "letters, digits and dashes"},
		{"a bad country", "ssid=Home&country=Narnia", nil, http.StatusBadRequest, "two-letter"},
		{"a form that does not parse", "ssid=%zz", nil, http.StatusBadRequest, "does not parse"},
		{"another site's page", "ssid=Home", map[string]string{"Origin": "http://evil.example"}, http.StatusForbidden, "setup page itself"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := do(t, http.MethodPost, r.ap, PagePath, apAddr, tc.body, tc.hdr)
			if resp.StatusCode != tc.code || !strings.Contains(body, tc.words) {
				t.Fatalf("got %d %q, want %d saying %q", resp.StatusCode, body, tc.code, tc.words)
			}
			if _, err := os.Stat(r.p.SpoolPath); err == nil {
				t.Fatal("a refused request was passed on")
			}
		})
	}
	var m bytes.Buffer
	r.p.Metrics(promtext.New(&m))
	for _, want := range []string{`sensord_setup_refused_total{reason="input"} 7`, `sensord_setup_refused_total{reason="origin"} 1`, "sensord_setup_active 1"} {
		if !strings.Contains(m.String(), want) {
			t.Errorf("/metrics lacks %q:\n%s", want, m.String())
		}
	}
}

// TestSubmitPassesOnOnce: a good form is left for the root side as a
// request it accepts; a second while the first waits, or outside the
// setup phase, is refused; the status never shows the passphrase.
func TestSubmitPassesOnOnce(t *testing.T) {
	r := newRig(t, setupState())
	form := "ssid=" + url.QueryEscape("Café") + "&passphrase=" + url.QueryEscape("correct horse") + "&country=gb&name=kitchen"
	resp, body := do(t, http.MethodPost, r.ap, PagePath, apAddr, form, map[string]string{"Origin": "http://" + apAddr})
	if resp.StatusCode != http.StatusAccepted || !strings.Contains(body, `"name":"kitchen"`) {
		t.Fatalf("got %d %q, want 202 naming the device", resp.StatusCode, body)
	}
	b, err := os.ReadFile(r.p.SpoolPath)
	if err != nil {
		t.Fatal(err)
	}
	req, err := setupap.ParseRequest(b)
	if err != nil || req != (setupap.Request{SSID: "Café", Passphrase: "correct horse", Country: "GB", Name: "kitchen"}) {
		t.Fatalf("spooled %+v, %v", req, err)
	}
	if resp, body := do(t, http.MethodPost, r.ap, PagePath, apAddr, "ssid=Home", nil); resp.StatusCode != http.StatusConflict {
		t.Errorf("a second request while one waits: %d %q, want 409", resp.StatusCode, body)
	}
	os.Remove(r.p.SpoolPath)
	st := setupState()
	st.Phase, st.Trying = setupap.PhaseJoined, "Café"
	st.Joined = &setupap.Joined{SSID: "Café", Name: "kitchen", Address: "192.168.77.50"}
	r.setState(t, st)
	if resp, _ := do(t, http.MethodPost, r.ap, PagePath, apAddr, "ssid=Home", nil); resp.StatusCode != http.StatusConflict {
		t.Errorf("a request after joining: %d, want 409", resp.StatusCode)
	}
	resp, body = do(t, http.MethodGet, r.ap, StatusPath, apAddr, "", nil)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `"address":"192.168.77.50"`) || !strings.Contains(body, `"name":"kitchen"`) {
		t.Fatalf("status: %d %q, want where the Pi went", resp.StatusCode, body)
	}
	if strings.Contains(body, "correct horse") {
		t.Fatalf("status shows the passphrase: %q", body)
	}
	if r.p.passedOn.Load() != 1 {
		t.Errorf("passed on %d, want 1", r.p.passedOn.Load())
	}
}

// TestBadStateFileTurnsThePageOff: a state file that does not parse
// (or is huge) means "not in setup mode", counted.
func TestBadStateFileTurnsThePageOff(t *testing.T) {
	r := newRig(t, setupState())
	if err := os.WriteFile(r.state, bytes.Repeat([]byte("{"), setupap.MaxStateBytes+10), 0o644); err != nil {
		t.Fatal(err)
	}
	r.now.Add(int64(2 * stateRefresh))
	if resp, _ := do(t, http.MethodGet, r.ap, PagePath, apAddr, "", nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("with a broken state file: %d, want 404", resp.StatusCode)
	}
	if r.p.stateFails.Load() == 0 {
		t.Error("the unreadable state was not counted")
	}
}
