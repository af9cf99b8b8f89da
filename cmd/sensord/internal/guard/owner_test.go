package guard

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeClock is a clock the test moves.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type ownerFixture struct {
	o     *Owner
	clock *fakeClock
	log   *bytes.Buffer
	h     http.Handler
}

func newOwnerFixture(owner, read string) *ownerFixture {
	f := &ownerFixture{clock: &fakeClock{t: time.Date(2026, 12, 6, 4, 0, 0, 0, time.UTC)}, log: &bytes.Buffer{}}
	f.o = NewOwner(owner, read, slog.New(slog.NewTextHandler(f.log, nil)), f.clock.now)
	ok := func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }
	mux := http.NewServeMux()
	mux.HandleFunc("/api/update", ok)
	mux.HandleFunc("GET /healthz", ok)
	f.h = f.o.Writes(mux)
	if read != "" {
		f.h = Token(read, f.o, f.h)
	}
	return f
}

func (f *ownerFixture) do(method, remote, auth string) *httptest.ResponseRecorder {
	return f.doPath(method, "/api/update", remote, auth)
}

func (f *ownerFixture) doPath(method, path, remote, auth string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, nil)
	req.RemoteAddr = remote
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	rec := httptest.NewRecorder()
	f.h.ServeHTTP(rec, req)
	return rec
}

func TestOwnerGuardsWritesAndGrantsReads(t *testing.T) {
	f := newOwnerFixture("0wner-token", "reader")
	for _, tc := range []struct {
		name, method, auth string
		want               int
	}{
		{"a read with the read token passes", "GET", "Bearer reader", http.StatusNoContent},
		{"a read with the owner token passes", "GET", "Bearer 0wner-token", http.StatusNoContent},
		{"a read without a token is refused", "GET", "", http.StatusUnauthorized},
		{"a write with the owner token passes", "POST", "Bearer 0wner-token", http.StatusNoContent},
		{"a write with the read token is refused", "POST", "Bearer reader", http.StatusUnauthorized},
		{"a PUT with the read token is refused", "PUT", "Bearer reader", http.StatusUnauthorized},
		{"a write without a token is refused", "POST", "", http.StatusUnauthorized},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if rec := f.do(tc.method, "192.0.2.1:1234", tc.auth); rec.Code != tc.want {
				t.Errorf("%d %s, want %d", rec.Code, rec.Body, tc.want)
			}
		})
	}
	if f.o.Wrong() != 0 {
		t.Errorf("the read token counted as %d wrong owner guesses", f.o.Wrong())
	}
	if strings.Contains(f.log.String(), "0wner-token") {
		t.Errorf("the log shows the owner token:\n%s", f.log)
	}
}

func TestOwnerOffRefusesEveryWriteSayingHowToTurnItOn(t *testing.T) {
	f := newOwnerFixture("", "")
	rec := f.do("POST", "192.0.2.1:1", "Bearer anything")
	if rec.Code != http.StatusForbidden || !strings.Contains(rec.Body.String(), "SENSORD_OWNER_TOKEN") || !strings.Contains(rec.Body.String(), "-owner-token") {
		t.Errorf("%d %s, want 403 naming -owner-token and SENSORD_OWNER_TOKEN", rec.Code, rec.Body)
	}
	if rec := f.do("GET", "192.0.2.1:1", ""); rec.Code != http.StatusNoContent {
		t.Errorf("a read with writing off: %d", rec.Code)
	}
	if rec := f.doPath("POST", "/healthz", "192.0.2.1:1", ""); rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("a POST to a read-only route: %d, want 405", rec.Code)
	}
	if f.o.Off() != 1 || f.o.Writable() {
		t.Errorf("off %d, writable %v; want 1, false", f.o.Off(), f.o.Writable())
	}
}

// TestOwnerGuessingTakesHoursFromOneAddressAndSlowsNoOtherClient plays a
// brute-force run of 10,000 guesses on the fake clock, each sent as soon
// as the address may send again, while another address uses the right
// token.
func TestOwnerGuessingTakesHoursFromOneAddressAndSlowsNoOtherClient(t *testing.T) {
	const guesses = 10000
	f := newOwnerFixture("0wner-token", "")
	start := f.clock.now()
	tried := 0
	for tried < guesses {
		rec := f.do("POST", "198.51.100.7:5555", fmt.Sprintf("Bearer guess-%d", tried))
		switch rec.Code {
		case http.StatusUnauthorized:
			tried++
		case http.StatusTooManyRequests:
			secs := rec.Header().Get("Retry-After")
			d, err := time.ParseDuration(secs + "s")
			if err != nil || d <= 0 || d > MaxGuessDelay+time.Second {
				t.Fatalf("Retry-After %q", secs)
			}
			f.clock.advance(d)
		default:
			t.Fatalf("guess %d: %d %s", tried, rec.Code, rec.Body)
		}
		if tried%1000 == 0 {
			if rec := f.do("POST", "192.0.2.50:1", "Bearer 0wner-token"); rec.Code != http.StatusNoContent {
				t.Fatalf("the owner from another address after %d guesses: %d %s", tried, rec.Code, rec.Body)
			}
		}
	}
	took := f.clock.now().Sub(start)
	t.Logf("%d guesses from one address took %s", guesses, took)
	if took < 10*time.Hour {
		t.Errorf("%d guesses took %s, want hours", guesses, took)
	}
	if f.o.Wrong() != guesses {
		t.Errorf("wrong = %d, want %d", f.o.Wrong(), guesses)
	}
	if f.o.Throttled() == 0 {
		t.Error("no request was throttled")
	}
	// At most one log line a minute: the run took `took`.
	lines := strings.Count(f.log.String(), "wrong owner token")
	if max := int(took/LogEvery) + 1; lines > max || lines == 0 {
		t.Errorf("%d log lines over %s, want 1 to %d", lines, took, max)
	}
	// The right token from the guessing address waits its turn too, then
	// passes and clears the record.
	f.clock.advance(MaxGuessDelay)
	if rec := f.do("POST", "198.51.100.7:5555", "Bearer 0wner-token"); rec.Code != http.StatusNoContent {
		t.Errorf("the owner token after the wait: %d", rec.Code)
	}
	if rec := f.do("POST", "198.51.100.7:5555", "Bearer wrong-again"); rec.Code != http.StatusUnauthorized {
		t.Errorf("a guess after a success: %d, want 401 (record cleared)", rec.Code)
	}
}

func TestOwnerMistypesAFewTimesWithoutWaiting(t *testing.T) {
	f := newOwnerFixture("0wner-token", "")
	for i := range FreeGuesses - 1 {
		if rec := f.do("POST", "192.0.2.9:1", "Bearer typo"); rec.Code != http.StatusUnauthorized {
			t.Fatalf("typo %d: %d", i, rec.Code)
		}
	}
	if rec := f.do("POST", "192.0.2.9:1", "Bearer 0wner-token"); rec.Code != http.StatusNoContent {
		t.Errorf("after %d typos: %d, want through", FreeGuesses-1, rec.Code)
	}
}

func TestOwnerTableStaysBoundedAndManyAddressesGainNothing(t *testing.T) {
	f := newOwnerFixture("0wner-token", "")
	for i := range MaxTrackedAddrs + 500 {
		ip := fmt.Sprintf("10.%d.%d.%d:1", i>>16&255, i>>8&255, i&255)
		f.do("POST", ip, "Bearer x")
	}
	f.o.mu.Lock()
	n := len(f.o.addrs)
	f.o.mu.Unlock()
	if n > MaxTrackedAddrs {
		t.Errorf("%d addresses tracked, want at most %d", n, MaxTrackedAddrs)
	}
	// The 500 over the bound share one record: they are slowed together.
	if rec := f.do("POST", "10.200.0.1:1", "Bearer x"); rec.Code != http.StatusTooManyRequests {
		t.Errorf("a new address while the table is full, after 500 shared guesses: %d, want 429", rec.Code)
	}
	// IPv6 addresses of one /64 are one guesser.
	f.clock.advance(2 * ForgetAfter) // the old records are forgotten
	for i := range FreeGuesses + 1 {
		f.do("POST", fmt.Sprintf("[2001:db8::%x]:1", i+1), "Bearer x")
	}
	if rec := f.do("POST", "[2001:db8::ffff]:1", "Bearer x"); rec.Code != http.StatusTooManyRequests {
		t.Errorf("another address of the same /64: %d, want 429", rec.Code)
	}
}

// A write from another site's page is refused whatever it carries; the
// appliance's own page and clients without Origin (curl) pass.
func TestAWriteFromAnotherSitesPageIsRefused(t *testing.T) {
	f := newOwnerFixture("0wner-token", "")
	for _, tc := range []struct {
		origin string
		want   int
	}{
		{"", http.StatusNoContent},
		{"http://example.com", http.StatusNoContent}, // httptest's Host
		{"http://evil.example", http.StatusForbidden},
		{"null", http.StatusForbidden},
	} {
		req := httptest.NewRequest("POST", "/api/update", nil)
		req.RemoteAddr = "192.0.2.1:1234"
		req.Header.Set("Authorization", "Bearer 0wner-token")
		if tc.origin != "" {
			req.Header.Set("Origin", tc.origin)
		}
		rec := httptest.NewRecorder()
		f.h.ServeHTTP(rec, req)
		if rec.Code != tc.want {
			t.Errorf("Origin %q: %d %s, want %d", tc.origin, rec.Code, rec.Body, tc.want)
		}
		if tc.want == http.StatusForbidden && !strings.Contains(rec.Body.String(), "another site") {
			t.Errorf("Origin %q: %s does not say why", tc.origin, rec.Body)
		}
	}
	if n := f.o.Foreign(); n != 2 {
		t.Errorf("Foreign() = %d, want 2", n)
	}
	// A read from another site's page is the browser's business (CORS):
	// nothing here changes.
	req := httptest.NewRequest("GET", "/healthz", nil)
	req.Header.Set("Origin", "http://evil.example")
	rec := httptest.NewRecorder()
	f.h.ServeHTTP(rec, req)
	if rec.Code != http.StatusNoContent {
		t.Errorf("a read with a foreign Origin: %d", rec.Code)
	}
}
