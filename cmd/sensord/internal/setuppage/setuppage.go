// Package setuppage is sensord's side of the setup access point (package
// image/setupap): while the root side says setup mode is on, every
// request that arrives at the access point's address gets the setup
// page, its status, or a redirect to it; every other request goes on to
// the dashboard as ever, and /setup there is not found.
//
// The page's POST is the one write sensord takes without the owner's
// credential: only in setup mode, only on the access point's address. It
// is checked (setupap.Request.Check) and left in sensord's runtime
// directory for the root side (sensord-setup-request.path), which checks
// it again, tries the network and writes sensord.conf.
//
// Captive-portal checks (Android's /generate_204, Apple's
// /hotspot-detect.html, Windows' /connecttest.txt and /ncsi.txt) and any
// other path or Host get a redirect to the page, never the answer that
// means "online", so a phone opens the page by itself.
//
// # Concurrency
//
// Front's handler may serve any number of requests at once; the state
// is re-read at most every stateRefresh under a mutex; counters are
// atomic.
package setuppage

import (
	_ "embed"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"sensord/cmd/sensord/internal/httpjson"
	"sensord/cmd/sensord/internal/promtext"
	"sensord/image/setupap"
	"sensord/internal/atomicfile"
)

// Paths of the setup surface.
const (
	PagePath   = "/setup"
	StatusPath = "/setup/status"
)

// stateRefresh bounds how stale the root side's state may be when a
// request is served, and how often a flood of requests reads the file.
const stateRefresh = 500 * time.Millisecond

//go:embed page.html
var page []byte

// Refusal reasons, as /metrics labels them.
const (
	refusedNotSetup = "not_setup" // /setup outside setup mode or off the access point
	refusedInput    = "input"     // a form that does not pass Check, or too large
	refusedBusy     = "busy"      // a try is already under way
	refusedOrigin   = "origin"    // another site's page, or another Host
	refusedSpool    = "spool"     // the request could not be passed on
)

var refusalKinds = [...]string{refusedNotSetup, refusedInput, refusedBusy, refusedOrigin, refusedSpool}

// Portal serves the setup page; the zero value with StatePath "" is off.
type Portal struct {
	// StatePath is the root side's state (paths.SetupState); "" turns the
	// portal off (sensord outside the image).
	StatePath string
	// SpoolPath is where a request is left for the root side
	// (paths.SetupRequest).
	SpoolPath string
	Log       *slog.Logger
	Now       func() time.Time

	mu     sync.Mutex // guards st and read
	st     setupap.State
	read   time.Time
	logged bool // a bad state file was logged (once)

	refused    [len(refusalKinds)]atomic.Uint64 // by refusalKinds' index
	redirects  atomic.Uint64
	pages      atomic.Uint64
	passedOn   atomic.Uint64
	stateFails atomic.Uint64
}

// state is the root side's state, re-read at most every stateRefresh.
// A state that cannot be read is "not in setup mode".
func (p *Portal) state() setupap.State {
	if p.StatePath == "" {
		return setupap.State{Phase: setupap.PhaseStation}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.Now()
	if !p.read.IsZero() && now.Sub(p.read) < stateRefresh && now.After(p.read) {
		return p.st
	}
	st, err := setupap.ReadState(p.StatePath)
	if err != nil {
		p.stateFails.Add(1)
		if !p.logged {
			p.Log.Warn("setup access point's state unreadable: setup page off", "err", err)
			p.logged = true
		}
		st = setupap.State{Phase: setupap.PhaseStation}
	}
	p.st, p.read = st, now
	return st
}

// onAP reports whether r arrived at the access point's address while
// setup mode is on.
func onAP(st setupap.State, r *http.Request) bool {
	if !st.Active || st.Address == "" {
		return false
	}
	a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	if !ok {
		return false
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return false
	}
	// An IPv4 address on a dual-stack socket comes as ::ffff:a.b.c.d.
	return strings.TrimPrefix(host, "::ffff:") == st.Address
}

// Front puts the setup surface in front of next.
func (p *Portal) Front(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st := p.state()
		if !onAP(st, r) {
			if r.URL.Path == PagePath || strings.HasPrefix(r.URL.Path, PagePath+"/") {
				p.refuse(refusedNotSetup)
				http.NotFound(w, r)
				return
			}
			next.ServeHTTP(w, r)
			return
		}
		home := "http://" + st.Address + PagePath
		if hostOnly(r.Host) != st.Address {
			// A captive check or any page the phone asked for by name.
			p.redirect(w, r, home)
			return
		}
		switch {
		case r.URL.Path == PagePath && (r.Method == http.MethodGet || r.Method == http.MethodHead):
			p.pages.Add(1)
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.Header().Set("Cache-Control", "no-store")
			w.Header().Set("Content-Security-Policy", "default-src 'self'; script-src 'unsafe-inline' 'self'; style-src 'unsafe-inline'")
			_, _ = w.Write(page)
		case r.URL.Path == StatusPath && r.Method == http.MethodGet:
			w.Header().Set("Cache-Control", "no-store")
			httpjson.Write(w, http.StatusOK, newStatus(st))
		case r.URL.Path == PagePath && r.Method == http.MethodPost:
			p.submit(w, r, st)
		default:
			p.redirect(w, r, home)
		}
	})
}

func hostOnly(h string) string {
	if host, _, err := net.SplitHostPort(h); err == nil {
		return host
	}
	return h
}

// redirect sends a captive check (or anything else) to the page: a 302,
// never 204 or Apple's "Success" page, so the phone shows the page.
func (p *Portal) redirect(w http.ResponseWriter, r *http.Request, to string) {
	p.redirects.Add(1)
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, to, http.StatusFound)
}

func (p *Portal) refuse(kind string) {
	for i, k := range refusalKinds {
		if k == kind {
			p.refused[i].Add(1)
		}
	}
}

// status is GET /setup/status: the state without anything a person
// did not see on the air already (no secrets are ever in it).
type status struct {
	Phase    setupap.Phase     `json:"phase"`
	AP       string            `json:"ap"`
	Secured  bool              `json:"secured"`
	Reason   string            `json:"reason,omitempty"`
	Failure  setupap.Failure   `json:"failure,omitempty"`
	Trying   string            `json:"trying,omitempty"`
	Joined   *setupap.Joined   `json:"joined,omitempty"`
	Networks []setupap.Network `json:"networks"`
}

func newStatus(st setupap.State) status {
	s := status{Phase: st.Phase, AP: st.SSID, Secured: st.Secured, Reason: st.Reason, Failure: st.Failure, Trying: st.Trying, Joined: st.Joined, Networks: st.Networks}
	if s.Networks == nil {
		s.Networks = []setupap.Network{}
	}
	return s
}

// answer is the POST's reply.
type answer struct {
	Message string `json:"message"`
	Name    string `json:"name,omitempty"`
}

// submit is POST /setup: a form (ssid, passphrase, country, name),
// bounded, checked, left for the root side.
func (p *Portal) submit(w http.ResponseWriter, r *http.Request, st setupap.State) {
	if o := r.Header.Get("Origin"); o != "" && o != "http://"+st.Address {
		p.refuse(refusedOrigin)
		httpjson.WriteError(w, http.StatusForbidden, "the setup form is only taken from the setup page itself")
		return
	}
	if st.Phase != setupap.PhaseSetup {
		p.refuse(refusedBusy)
		httpjson.WriteError(w, http.StatusConflict, "the Pi is not waiting for a setup now ("+string(st.Phase)+"); reload the page")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, setupap.MaxRequestBytes))
	if err != nil {
		p.refuse(refusedInput)
		httpjson.WriteError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("the form is larger than %d bytes", setupap.MaxRequestBytes))
		return
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		p.refuse(refusedInput)
		httpjson.WriteError(w, http.StatusBadRequest, "the form does not parse: "+err.Error())
		return
	}
	req := setupap.Request{
		SSID:       form.Get("ssid"),
		Passphrase: form.Get("passphrase"),
		Country:    strings.ToUpper(strings.TrimSpace(form.Get("country"))),
		Name:       strings.TrimSpace(form.Get("name")),
	}
	if err := req.Check(); err != nil {
		p.refuse(refusedInput)
		httpjson.WriteError(w, http.StatusBadRequest, strings.TrimPrefix(err.Error(), setupap.ErrRequest.Error()+": "))
		return
	}
	if p.SpoolPath == "" {
		p.refuse(refusedSpool)
		httpjson.WriteError(w, http.StatusServiceUnavailable, "this sensord runs without the image's setup helper")
		return
	}
	if _, err := os.Lstat(p.SpoolPath); err == nil {
		p.refuse(refusedBusy)
		httpjson.WriteError(w, http.StatusConflict, "a network is already being tried; wait for the page to say how it went")
		return
	}
	if err := atomicfile.WriteFile(p.SpoolPath, req.Encode(), 0o600); err != nil {
		p.refuse(refusedSpool)
		httpjson.WriteError(w, http.StatusInternalServerError, "could not pass the request on: "+err.Error())
		return
	}
	p.passedOn.Add(1)
	p.Log.Info("setup page: network asked for, passed to the root side", "ssid", req.SSID, "name", req.Name, "country", req.Country, "open", req.Passphrase == "")
	name := req.Name
	if name == "" {
		name, _ = os.Hostname()
	}
	httpjson.Write(w, http.StatusAccepted, answer{Name: name, Message: fmt.Sprintf("trying %q: this access point closes while the Pi joins it", req.SSID)})
}

// Metrics writes the portal's counters.
func (p *Portal) Metrics(m *promtext.Writer) {
	m.Family("sensord_setup_refused_total", promtext.Counter, "Setup page requests refused, by reason (not_setup: /setup outside setup mode or off the access point).")
	for i, k := range refusalKinds {
		m.Sample("sensord_setup_refused_total", promtext.Label("reason", k), float64(p.refused[i].Load()))
	}
	m.One("sensord_setup_requests_total", promtext.Counter, "Setup requests passed to the root side.", float64(p.passedOn.Load()))
	m.One("sensord_setup_redirects_total", promtext.Counter, "Requests on the setup access point redirected to the setup page (captive-portal checks, other hosts).", float64(p.redirects.Load()))
	m.One("sensord_setup_pages_total", promtext.Counter, "Setup pages served.", float64(p.pages.Load()))
	m.One("sensord_setup_state_unreadable_total", promtext.Counter, "Reads of the setup access point's state file that failed (the page stays off).", float64(p.stateFails.Load()))
	active := 0.0
	if p.state().Active {
		active = 1
	}
	m.One("sensord_setup_active", promtext.Gauge, "1 while the setup access point is open.", active)
}
