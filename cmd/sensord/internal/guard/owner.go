package guard

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"sensord/cmd/sensord/internal/httpjson"
)

// Limits of the owner credential's guessing defence.
const (
	// FreeGuesses is how many wrong owner tokens an address may send
	// before it is slowed: a person who mistypes a few times is not.
	FreeGuesses = 5
	// MaxGuessDelay is the longest an address waits between two guesses
	// once slowed. The wait doubles from a second up to it, so 10,000
	// guesses from one address take over 80 hours.
	MaxGuessDelay = 30 * time.Second
	// MaxTrackedAddrs bounds the table of addresses that guessed wrong
	// (a few dozen bytes each). When it is full, new addresses share one
	// entry, so a peer with many addresses gains nothing by filling it.
	MaxTrackedAddrs = 4096
	// ForgetAfter is how long an address must stay quiet before its
	// wrong guesses are forgotten.
	ForgetAfter = time.Hour
	// LogEvery bounds the log lines about wrong guesses: one a minute at
	// most, saying how many came since the last one.
	LogEvery = time.Minute
)

// Messages of the refusals, saying how to get past them.
const (
	msgWritesOff     = "writing is off: this sensord has no owner token. Set -owner-token (SENSORD_OWNER_TOKEN=... in sensord.conf) and restart it to allow updates and pushes"
	msgForeignOrigin = "a page on another site cannot change this appliance: open its own dashboard, or send the request without an Origin header (curl, scripts)"
	msgNeedOwner     = "this changes the appliance and needs the owner token: send Authorization: Bearer <owner token> (the one set with -owner-token or SENSORD_OWNER_TOKEN in sensord.conf)"
	msgSlowDown      = "too many wrong owner tokens from this address: wait and try again"
)

// Owner is the owner credential (-owner-token): what every request that
// changes the appliance needs, and what also grants everything the read
// token (-token) does. Without one, writing is off. Guesses are compared
// in constant time, counted, logged at most once per LogEvery and slowed
// per address.
//
// # Concurrency
//
// Safe for concurrent use; Guard's handlers may run on any goroutine.
type Owner struct {
	sum     [sha256.Size]byte // of the token; compared, never the token itself
	set     bool              // an owner token is configured
	readSum [sha256.Size]byte // of the read token, which is no owner guess
	log     *slog.Logger
	now     func() time.Time

	wrong     atomic.Uint64 // wrong owner tokens presented
	throttled atomic.Uint64 // requests refused for coming too soon after wrong ones
	off       atomic.Uint64 // writes refused because writing is off
	foreign   atomic.Uint64 // writes refused for coming from another site's page

	mu       sync.Mutex // guards what follows
	addrs    map[string]*strikes
	shared   strikes   // for new addresses while addrs is full
	lastLog  time.Time // of the last wrong-guess log line
	unlogged uint64    // wrong guesses since that line
}

// strikes is one address's record of wrong guesses.
type strikes struct {
	n    int       // wrong guesses in a row
	last time.Time // of the last one
	next time.Time // no guess is checked before this
}

// NewOwner returns the owner gate for token ("" turns writing off);
// readToken is -token, which a request may carry without it counting as
// a wrong owner guess. now is the clock (time.Now outside tests).
func NewOwner(token, readToken string, log *slog.Logger, now func() time.Time) *Owner {
	o := &Owner{set: token != "", log: log, now: now, addrs: map[string]*strikes{}}
	o.sum = sha256.Sum256([]byte(token))
	if readToken != "" {
		o.readSum = sha256.Sum256([]byte(readToken))
	}
	return o
}

// Writable reports whether an owner token is configured.
func (o *Owner) Writable() bool { return o.set }

// Wrong counts the wrong owner tokens presented.
func (o *Owner) Wrong() uint64 { return o.wrong.Load() }

// Throttled counts the requests refused for coming from an address that
// must wait after wrong guesses.
func (o *Owner) Throttled() uint64 { return o.throttled.Load() }

// Off counts the writes refused because no owner token is configured.
func (o *Owner) Off() uint64 { return o.off.Load() }

// Foreign is the number of writes refused for coming from another site's
// page.
func (o *Owner) Foreign() uint64 { return o.foreign.Load() }

// verdict is what a request's credential turned out to be.
type verdict int

const (
	absent   verdict = iota // no bearer, the read token, or writing off
	granted                 // the owner token
	wrongTok                // another token: a guess
	tooSoon                 // not checked: the address must wait
)

// checked carries a request's verdict from Token to Guard, so that one
// wrong guess counts once.
type checked struct{}

// verifyOnce is verify, remembered in the request it returns.
func (o *Owner) verifyOnce(r *http.Request) (*http.Request, verdict, time.Duration) {
	if v, ok := r.Context().Value(checked{}).(verdict); ok {
		return r, v, 0
	}
	v, after := o.verify(r)
	return r.WithContext(context.WithValue(r.Context(), checked{}, v)), v, after
}

// verify checks r's bearer token against the owner token, keeping the
// address's record; after is the wait of a tooSoon.
func (o *Owner) verify(r *http.Request) (v verdict, after time.Duration) {
	tok, ok := BearerToken(r.Header.Get("Authorization"))
	if !ok || !o.set {
		return absent, 0
	}
	got := sha256.Sum256([]byte(tok))
	if subtle.ConstantTimeCompare(got[:], o.readSum[:]) == 1 {
		return absent, 0
	}
	addr := addrKey(r.RemoteAddr)
	now := o.now()
	o.mu.Lock()
	defer o.mu.Unlock()
	s := o.record(addr, now, false)
	if s != nil && now.Before(s.next) {
		o.throttled.Add(1)
		return tooSoon, s.next.Sub(now)
	}
	if subtle.ConstantTimeCompare(got[:], o.sum[:]) == 1 {
		if s != nil && s != &o.shared {
			delete(o.addrs, addr)
		}
		return granted, 0
	}
	o.wrong.Add(1)
	s = o.record(addr, now, true)
	s.n++
	s.last = now
	if s.n >= FreeGuesses {
		s.next = now.Add(guessDelay(s.n - FreeGuesses))
	}
	o.unlogged++
	if now.Sub(o.lastLog) >= LogEvery {
		o.log.Warn("wrong owner token", "remote", addr, "wrong_since_last_line", o.unlogged, "wrong_total", o.wrong.Load())
		o.lastLog, o.unlogged = now, 0
	}
	return wrongTok, 0
}

// guessDelay is the wait after the k-th guess beyond the free ones: one
// second, doubling, at most MaxGuessDelay.
func guessDelay(k int) time.Duration {
	if k >= 16 {
		return MaxGuessDelay
	}
	return min(time.Second<<k, MaxGuessDelay)
}

// record returns addr's strikes (nil if it has none and create is
// false), forgetting addresses quiet for ForgetAfter; a new address
// while the table is full gets the shared entry. Called with mu held.
func (o *Owner) record(addr string, now time.Time, create bool) *strikes {
	if s, ok := o.addrs[addr]; ok {
		if now.Sub(s.last) < ForgetAfter || now.Before(s.next) {
			return s
		}
		delete(o.addrs, addr)
	}
	if len(o.addrs) >= MaxTrackedAddrs {
		for a, s := range o.addrs {
			if now.Sub(s.last) >= ForgetAfter && !now.Before(s.next) {
				delete(o.addrs, a)
			}
		}
	}
	if len(o.addrs) >= MaxTrackedAddrs {
		if now.Sub(o.shared.last) >= ForgetAfter && !now.Before(o.shared.next) {
			o.shared = strikes{}
		}
		if create || o.shared.n > 0 {
			return &o.shared
		}
		return nil
	}
	if !create {
		return nil
	}
	s := &strikes{}
	o.addrs[addr] = s
	return s
}

// addrKey is the address a request's guesses are counted under: the IPv4
// address, or the IPv6 /64 (one host commonly holds a whole /64).
func addrKey(remote string) string {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return host
	}
	if v4 := ip.To4(); v4 != nil {
		return v4.String()
	}
	return ip.Mask(net.CIDRMask(64, 128)).String() + "/64"
}

// Guard lets a request through to next only with the owner token. With
// none configured it answers 403 saying how to turn writing on; without
// the token (or with the read token alone) 401 saying what to send; from
// an address that guessed wrong too often, 429 with Retry-After.
func (o *Owner) Guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !o.set {
			o.off.Add(1)
			httpjson.WriteError(w, http.StatusForbidden, msgWritesOff)
			return
		}
		r, v, after := o.verifyOnce(r)
		switch v {
		case granted:
			next.ServeHTTP(w, r)
		case tooSoon:
			o.refuseSoon(w, after)
		default:
			w.Header().Set("WWW-Authenticate", `Bearer realm="sensord owner"`)
			httpjson.WriteError(w, http.StatusUnauthorized, msgNeedOwner)
		}
	})
}

// Writes puts Guard in front of every request to mux that may change
// something (any method but GET, HEAD and OPTIONS) and that mux has a
// route for, so that a writing endpoint added to mux is guarded without
// a word; a request mux has no route for gets mux's 404 or 405. A write
// that a browser sends from another site's page (its Origin is not this
// Host) is refused with 403 before the credential is even looked at.
func (o *Owner) Writes(mux *http.ServeMux) http.Handler {
	guarded := o.Guard(mux)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodGet, http.MethodHead, http.MethodOptions:
			mux.ServeHTTP(w, r)
			return
		}
		if _, pattern := mux.Handler(r); pattern == "" {
			mux.ServeHTTP(w, r)
			return
		}
		if !SameOrigin(r) {
			o.foreign.Add(1)
			httpjson.WriteError(w, http.StatusForbidden, msgForeignOrigin)
			return
		}
		guarded.ServeHTTP(w, r)
	})
}

func (o *Owner) refuseSoon(w http.ResponseWriter, after time.Duration) {
	secs := int((after + time.Second - 1) / time.Second)
	w.Header().Set("Retry-After", strconv.Itoa(max(secs, 1)))
	httpjson.WriteError(w, http.StatusTooManyRequests, fmt.Sprintf("%s (%d s)", msgSlowDown, max(secs, 1)))
}
