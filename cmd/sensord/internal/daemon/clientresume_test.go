package daemon

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"sensord/cmd/sensord/internal/health"
	"sensord/internal/link"
	"sensord/internal/testutil"
)

// remote is the server client mode sends to, stopped and started again
// on the same address, keeping every frame it got.
type remote struct {
	addr  string
	srv   *http.Server
	mu    sync.Mutex
	got   []string
	conns []*websocket.Conn // upgraded: http.Server.Close does not close them
}

func (r *remote) start(t *testing.T) {
	t.Helper()
	ln, err := net.Listen("tcp", r.addr)
	if err != nil {
		t.Fatal(err)
	}
	r.addr = ln.Addr().String()
	up := websocket.Upgrader{}
	r.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		c, err := up.Upgrade(w, req, nil)
		if err != nil {
			return
		}
		defer c.Close()
		r.mu.Lock()
		r.conns = append(r.conns, c)
		r.mu.Unlock()
		for {
			_, b, err := c.ReadMessage()
			if err != nil {
				return
			}
			r.mu.Lock()
			r.got = append(r.got, string(b))
			r.mu.Unlock()
		}
	})}
	go func() {
		if err := r.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("remote: %v", err)
		}
	}()
}

func (r *remote) stop() {
	r.srv.Close()
	r.mu.Lock()
	for _, c := range r.conns {
		c.Close()
	}
	r.conns = nil
	r.mu.Unlock()
}

func (r *remote) frames() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.got...)
}

// TestClientModeBackFillsEveryReadingTheBufferDroppedFromHistory stops the
// remote for longer than client mode's buffer (256 readings) lasts at
// -period 20ms; once it is back, every stored reading of the outage has
// reached it, once, in order.
func TestClientModeBackFillsEveryReadingTheBufferDroppedFromHistory(t *testing.T) {
	t.Parallel()
	rem := &remote{addr: "127.0.0.1:0"}
	rem.start(t)
	p := start(t, nil, "-mode", "client", "-url", fmt.Sprintf("ws://%s/ws/in", rem.addr), "-period", "20ms",
		"-history-dir", t.TempDir(), "-history-commit-interval", "1s")
	testutil.Until(t, 30*time.Second, func() bool { return len(rem.frames()) >= 10 }, func() string { return "no 10 readings before the outage" })

	rem.stop()
	// Readings written as the remote went were taken by the socket and
	// never read: WebSocket has no acknowledgement, so they are lost at
	// the link, not by the buffer. From the moment /healthz says the link
	// is down (under load, later than the remote's exit) every one must
	// arrive.
	var stopped int64
	var h health.Report
	testutil.Until(t, 60*time.Second, func() bool {
		h = health.Report{}
		getJSON(t, "http://"+p.addr+"/healthz", &h)
		if stopped == 0 && h.Client != nil && h.Client.State != link.Connected {
			stopped = time.Now().UnixMilli()
		}
		return h.Client != nil && h.Client.Dropped >= 100
	}, func() string { return fmt.Sprintf("the buffer dropped no 100 readings: %+v", h.Client) })
	rem.start(t)
	restarted := time.Now().UnixMilli()
	var got []string
	testutil.Until(t, 90*time.Second, func() bool {
		got = rem.frames()
		return len(got) > 0 && timestampOf(t, got[len(got)-1]) > restarted+1000
	}, func() string { return fmt.Sprintf("no live reading after the outage (%d frames)", len(got)) })

	first, last := timestampOf(t, got[0]), timestampOf(t, got[len(got)-1])
	seen := map[int64]int{}
	prev := int64(0)
	for _, f := range got {
		ts := timestampOf(t, f)
		seen[ts]++
		if ts < prev {
			t.Errorf("reading %d after %d: out of order", ts, prev)
		}
		prev = ts
	}
	var stored []struct{ Timestamp int64 }
	u := fmt.Sprintf("http://%s/api/history?from=%d&to=%d", p.addr, first, last+1)
	if code := getJSON(t, u, &stored); code != http.StatusOK {
		t.Fatalf("%s: %d", u, code)
	}
	missing, doubled, atStop := 0, 0, 0
	for _, r := range stored {
		switch seen[r.Timestamp] {
		case 0:
			if r.Timestamp <= stopped {
				atStop++
				continue
			}
			missing++
		case 1:
		default:
			doubled++
		}
	}
	h = health.Report{}
	getJSON(t, "http://"+p.addr+"/healthz", &h)
	if h.Client == nil || h.Client.Backfilled == 0 {
		t.Errorf("/healthz client %+v: no readings counted as back-filled", h.Client)
	}
	t.Logf("%d readings stored from the first the remote got to the last, %d frames received, %d missing, %d doubled, %d lost at the link as it went",
		len(stored), len(got), missing, doubled, atStop)
	if len(stored) < 300 || missing > 0 || doubled > 0 || len(got)+atStop != len(stored) {
		t.Fatalf("want every one of the %d stored readings (at least 300) once: %d missing, %d doubled, %d received",
			len(stored), missing, doubled, len(got))
	}
}
