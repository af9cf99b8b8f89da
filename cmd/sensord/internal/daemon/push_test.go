package daemon

// Messages from outside: POST /api/send to every client of a path or to
// one client's _session, GET /api/clients, and their refusals, against
// real WebSocket clients.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"sensord/cmd/sensord/internal/push"
	"sensord/internal/testutil"
)

// alertExample is Node-RED's documented alert, a flow's msg as JSON.
const alertExample = `{"payload":{"alert":"System maintenance in 5 minutes"}}`

// alertFrame is the text frame websocket-out sends for it.
const alertFrame = `{"alert":"System maintenance in 5 minutes"}`

const testOwner = "0wner-s3cret-token"

// post sends body to url with contentType and the Authorization auth
// (each none when empty).
func post(t *testing.T, url, auth, contentType string, body []byte) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// pushTo posts msg as the owner to /api/send?path=path and wants a 200
// that went to want clients.
func pushTo(t *testing.T, base, path, msg string, want int) {
	t.Helper()
	code, body := post(t, base+"/api/send?path="+path, "Bearer "+testOwner, "application/json", []byte(msg))
	var got push.Sent
	if err := json.Unmarshal([]byte(body), &got); code != http.StatusOK || err != nil || got.Clients != want || got.Path != path {
		t.Fatalf("push %s to %s: %d %s, want 200 with %d clients", msg, path, code, body, want)
	}
}

// clients is GET /api/clients?path=path as the owner.
func clients(t *testing.T, base, path string) []push.Client {
	t.Helper()
	resp, body := get(t, nil, base+"/api/clients?path="+path, "Authorization", "Bearer "+testOwner)
	var list []push.Client
	if err := json.Unmarshal([]byte(body), &list); resp.StatusCode != http.StatusOK || err != nil {
		t.Fatalf("GET /api/clients?path=%s: %d %s", path, resp.StatusCode, body)
	}
	return list
}

// readFrame reads one frame within (scaled).
func readFrame(t *testing.T, c *websocket.Conn, within time.Duration) (int, []byte) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(testutil.Scale(within)))
	typ, b, err := c.ReadMessage()
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return typ, b
}

func TestPushGoesToEveryClientOfThePathOrToOneSession(t *testing.T) {
	t.Parallel()
	p := newInproc(t, "-owner-token", testOwner)
	// The upgrade answers before the client joins the path, so a must
	// have joined before b dials for a to be the oldest.
	a := dial(t, p.ws("/ws/dashboard"))
	testutil.Until(t, 5*time.Second, func() bool { return p.d.dash.Clients() == 1 },
		func() string { return "the first client did not join" })
	b := dial(t, p.ws("/ws/dashboard?topic=notice/%23"))
	other := dial(t, p.ws("/ws/sensors"))
	testutil.Until(t, 5*time.Second, func() bool { return p.d.dash.Clients() == 2 && p.d.sensors.Clients() == 1 },
		func() string { return "clients did not join" })

	// The client list names each client's _session, address, port,
	// since and filters.
	list := clients(t, p.srv.URL, "/ws/dashboard")
	if len(list) != 2 {
		t.Fatalf("clients %+v, want 2", list)
	}
	for _, c := range list {
		if c.Session.Type != "websocket" || len(c.Session.ID) != 16 || strings.Trim(c.Session.ID, "0123456789abcdef") != "" ||
			c.Address != "127.0.0.1" || c.Port == 0 || time.Since(time.UnixMilli(c.Since)) > time.Minute {
			t.Errorf("client %+v", c)
		}
	}
	if len(list[0].Filters) != 0 || len(list[1].Filters) != 1 || list[1].Filters[0] != "notice/#" {
		t.Errorf("filters %v and %v, want none and [notice/#]", list[0].Filters, list[1].Filters)
	}
	if a.LocalAddr().String() != fmt.Sprintf("127.0.0.1:%d", list[0].Port) {
		t.Errorf("the oldest client is %s, listed at port %d", a.LocalAddr(), list[0].Port)
	}

	// Broadcast: both clients of the path, as websocket-out sends it.
	pushTo(t, p.srv.URL, "/ws/dashboard", `{"topic":"notice/maintenance","payload":{"alert":"System maintenance in 5 minutes"}}`, 2)
	for _, c := range []*websocket.Conn{a, b} {
		if got := readText(t, c, 5*time.Second); got != alertFrame {
			t.Errorf("got %s, want %s", got, alertFrame)
		}
	}
	// A topic a client's filter skips does not reach it, and is not
	// counted for it.
	pushTo(t, p.srv.URL, "/ws/dashboard", `{"topic":"other","payload":"for a only"}`, 1)
	if got := readText(t, a, 5*time.Second); got != "for a only" {
		t.Errorf("a got %q", got)
	}

	// One session: that client only.
	one := fmt.Sprintf(`{"payload":"just you","topic":"x","_session":{"type":"websocket","id":%q}}`, list[1].Session.ID)
	pushTo(t, p.srv.URL, "/ws/dashboard", one, 1)
	if got := readText(t, b, 5*time.Second); got != "just you" {
		t.Errorf("b got %q", got)
	}
	// Binary, to a session, from a raw body.
	code, body := post(t, p.srv.URL+"/api/send?path=/ws/dashboard&session="+list[0].Session.ID, "Bearer "+testOwner,
		"application/octet-stream", []byte{0, 1, 2, 0xff})
	if code != http.StatusOK || !strings.Contains(body, `"clients":1`) {
		t.Fatalf("binary push: %d %s", code, body)
	}
	if typ, got := readFrame(t, a, 5*time.Second); typ != websocket.BinaryMessage || !bytes.Equal(got, []byte{0, 1, 2, 0xff}) {
		t.Errorf("a got frame %d %v, want binary 00 01 02 ff", typ, got)
	}
	// Neither saw what went to the other: the next broadcast is the
	// next frame each reads, and /ws/sensors got none of it.
	pushTo(t, p.srv.URL, "/ws/dashboard", `{"topic":"notice/x","payload":"next"}`, 2)
	pushTo(t, p.srv.URL, "/ws/sensors", `{"payload":"sensors"}`, 1)
	for name, c := range map[string]*websocket.Conn{"a": a, "b": b} {
		if got := readText(t, c, 5*time.Second); got != "next" {
			t.Errorf("%s got %q, want next", name, got)
		}
	}
	if got := readText(t, other, 5*time.Second); got != "sensors" {
		t.Errorf("/ws/sensors got %q", got)
	}

	// A client that joins later is not sent what was pushed before.
	late := dial(t, p.ws("/ws/dashboard"))
	testutil.Until(t, 5*time.Second, func() bool { return p.d.dash.Clients() == 3 }, func() string { return "late client" })
	pushTo(t, p.srv.URL, "/ws/dashboard", `{"payload":"after"}`, 2) // b's filter skips it
	if got := readText(t, late, 5*time.Second); got != "after" {
		t.Errorf("the late joiner got %q first, want after", got)
	}

	// A session that has gone: 400, dropped, counted, never broadcast.
	gone := list[0].Session.ID
	a.Close()
	testutil.Until(t, 5*time.Second, func() bool { return !p.d.dash.HasSession(gone) }, func() string { return "a did not leave" })
	code, body = post(t, p.srv.URL+"/api/send?path=/ws/dashboard", "Bearer "+testOwner, "application/json",
		[]byte(fmt.Sprintf(`{"payload":"lost","_session":{"type":"websocket","id":%q}}`, gone)))
	if code != http.StatusBadRequest || !strings.Contains(body, "has gone") {
		t.Errorf("a push to a gone session: %d %s, want 400 saying it has gone", code, body)
	}
	pushTo(t, p.srv.URL, "/ws/dashboard", `{"payload":"still here"}`, 1)
	if got := readText(t, late, 5*time.Second); got != "still here" {
		t.Errorf("the gone session's push reached another client: %q", got)
	}
	_, metrics := get(t, nil, p.url("/metrics"))
	for _, want := range []string{`sensord_pushes_refused_total{reason="session"} 1`, "sensord_pushes_total 8",
		`sensord_replies_dropped_total{path="/ws/dashboard"} 1`} {
		if !strings.Contains(metrics, want+"\n") {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func TestPushRefusesBadInputWithTheReason(t *testing.T) {
	t.Parallel()
	p := newInproc(t, "-owner-token", testOwner, "-token", "reader")
	c := dial(t, p.ws("/ws/dashboard?access_token=reader"))
	s := dial(t, p.ws("/ws/sensors?access_token=reader"))
	testutil.Until(t, 5*time.Second, func() bool { return p.d.dash.Clients() == 1 && p.d.sensors.Clients() == 1 },
		func() string { return "clients did not join" })
	sensorsSession := p.d.sensors.ClientList()[0].Session
	owner := "Bearer " + testOwner
	big := `{"payload":"` + strings.Repeat("x", push.MaxFrame+1) + `"}`
	for _, tt := range []struct {
		name, auth, path, ctype, body string
		code                          int
		want                          string
	}{
		{"without a credential", "", "/ws/dashboard", "application/json", alertExample, 401, "token"},
		{"with the read token", "Bearer reader", "/ws/dashboard", "application/json", alertExample, 401, "owner token"},
		{"JSON that does not parse", owner, "/ws/dashboard", "application/json", `{"payload":`, 400, "does not parse"},
		{"not an object", owner, "/ws/dashboard", "application/json", `"hello"`, 400, "JSON object"},
		{"without a payload", owner, "/ws/dashboard", "application/json", `{"topic":"t"}`, 400, `no "payload"`},
		{"an empty payload", owner, "/ws/dashboard", "application/json", `{"payload":""}`, 400, "empty"},
		{"a payload over the frame limit", owner, "/ws/dashboard", "application/json", big, 400, "at most 65536"},
		{"a body over the body limit", owner, "/ws/dashboard", "application/json", big + strings.Repeat(" ", push.MaxBody), 400, "over"},
		{"a binary body over the frame limit", owner, "/ws/dashboard", "application/octet-stream", strings.Repeat("x", push.MaxFrame+1), 400, "at most 65536"},
		{"an unknown path", owner, "/ws/nothing", "application/json", alertExample, 400, "unknown path"},
		{"no path", owner, "", "application/json", alertExample, 400, "name the WebSocket path"},
		{"a topic that is not a string", owner, "/ws/dashboard", "application/json", `{"payload":1,"topic":2}`, 400, `"topic" must be a string`},
		{"a session of another kind", owner, "/ws/dashboard", "application/json", `{"payload":1,"_session":{"type":"tcp","id":"1"}}`, 400, `"type":"websocket"`},
		{"a session on another path", owner, "/ws/dashboard", "application/json", `{"payload":1,"_session":{"type":"websocket","id":"` + sensorsSession + `"}}`, 400, "is a client of /ws/sensors"},
		{"a session that never was", owner, "/ws/dashboard", "application/json", `{"payload":1,"_session":{"type":"websocket","id":"0123456789abcdef"}}`, 400, "no client"},
	} {
		code, body := post(t, p.srv.URL+"/api/send?path="+tt.path, tt.auth, tt.ctype, []byte(tt.body))
		var e struct{ Error string }
		if err := json.Unmarshal([]byte(body), &e); err != nil || code != tt.code || !strings.Contains(e.Error, tt.want) {
			t.Errorf("%s: %d %.200s, want %d saying %q", tt.name, code, body, tt.code, tt.want)
		}
	}
	// The client list is the owner's: a read, but not for the read token.
	if resp, body := get(t, nil, p.url("/api/clients?path=/ws/sensors"), "Authorization", "Bearer reader"); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("/api/clients with the read token: %d %s, want 401", resp.StatusCode, body)
	}
	if resp, _ := get(t, nil, p.url("/api/clients?path=/ws/sensors")); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("/api/clients with no token: %d, want 401", resp.StatusCode)
	}
	if resp, body := get(t, nil, p.url("/api/clients?path=/ws/else"), "Authorization", owner); resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "unknown path") {
		t.Errorf("/api/clients of an unknown path: %d %s", resp.StatusCode, body)
	}
	// Nothing reached the clients: the first frame each reads is the
	// next good push.
	pushTo(t, p.srv.URL, "/ws/dashboard", alertExample, 1)
	pushTo(t, p.srv.URL, "/ws/sensors", alertExample, 1)
	for _, ws := range []*websocket.Conn{c, s} {
		if got := readText(t, ws, 5*time.Second); got != alertFrame {
			t.Errorf("got %q first, want the good push", got)
		}
	}
	_, metrics := get(t, nil, p.url("/metrics"), "Authorization", "Bearer reader")
	for _, want := range []string{`sensord_pushes_refused_total{reason="invalid"} 11`, `sensord_pushes_refused_total{reason="session"} 2`, "sensord_pushes_total 2"} {
		if !strings.Contains(metrics, want+"\n") {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func TestPushesAreOffWithoutAnOwnerToken(t *testing.T) {
	t.Parallel()
	p := newInproc(t)
	if code, body := post(t, p.url("/api/send?path=/ws/dashboard"), "", "application/json", []byte(alertExample)); code != http.StatusForbidden || !strings.Contains(body, "writing is off") {
		t.Errorf("a push with default settings: %d %s, want 403", code, body)
	}
	if resp, _ := get(t, nil, p.url("/api/clients?path=/ws/dashboard")); resp.StatusCode != http.StatusForbidden {
		t.Errorf("the client list with default settings: %d, want 403", resp.StatusCode)
	}
}

// TestAPushStormIsBoundedAndSlowsNoClient: many pushes at once are cut
// to the rate bound (429, counted), every one let through reaches the
// clients, and a reading client keeps getting its readings on time.
func TestAPushStormIsBoundedAndSlowsNoClient(t *testing.T) {
	t.Parallel()
	p := newInproc(t, "-owner-token", testOwner)
	dash := dial(t, p.ws("/ws/dashboard?topic=notice"))
	readings := dial(t, p.ws("/ws/sensors"))
	testutil.Until(t, 5*time.Second, func() bool { return p.d.dash.Clients() == 1 && p.d.sensors.Clients() == 1 },
		func() string { return "clients did not join" })
	p.runPoller()
	readText(t, readings, 5*time.Second)

	const senders, each = 8, 60
	var ok, refused atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	for range senders {
		wg.Go(func() {
			for range each {
				code, _ := post(t, p.url("/api/send?path=/ws/dashboard"), "Bearer "+testOwner, "application/json", []byte(`{"topic":"notice","payload":{"alert":"System maintenance in 5 minutes"}}`))
				switch code {
				case http.StatusOK:
					ok.Add(1)
				case http.StatusTooManyRequests:
					refused.Add(1)
				default:
					t.Errorf("storm push: %d", code)
				}
			}
		})
	}
	// Meanwhile the reading client gets every reading, none late: the
	// period is 100 ms; a second apart would be a client slowed down.
	gaps := 0
	for deadline := time.Now().Add(testutil.Scale(2 * time.Second)); time.Now().Before(deadline); gaps++ {
		if got := readText(t, readings, time.Second); !readingRE.MatchString(got) {
			t.Fatalf("reading client got %q", got)
		}
	}
	wg.Wait()
	elapsed := time.Since(start)
	if n := ok.Load() + refused.Load(); n != senders*each {
		t.Fatalf("%d answers, want %d", n, senders*each)
	}
	if maxOK := int64(push.MaxBurst + push.MaxRate*elapsed.Seconds() + 1); ok.Load() > maxOK || refused.Load() == 0 {
		t.Errorf("%d let through and %d refused in %s, want at most %d through", ok.Load(), refused.Load(), elapsed, maxOK)
	}
	for range ok.Load() {
		if got := readText(t, dash, 5*time.Second); got != alertFrame {
			t.Fatalf("dashboard got %q", got)
		}
	}
	_, metrics := get(t, nil, p.url("/metrics"))
	if want := fmt.Sprintf("sensord_pushes_refused_total{reason=\"rate\"} %d\n", refused.Load()); !strings.Contains(metrics, want) {
		t.Errorf("metrics lack %s", want)
	}
	t.Logf("%d pushes let through, %d refused in %s; the reading client read %d readings meanwhile", ok.Load(), refused.Load(), elapsed, gaps)
}
