package push

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"sensord/broadcast"
	"sensord/internal/ratelimit"
)

// Rate bound of the pushes, HTTP and MQTT together. A person or an
// automation sends a few a minute, a flow streaming to the browsers a few
// a second; twenty a second with a burst of forty is well beyond both,
// and each client gets at most that many frames a second more than it
// would without pushes, which the fan-out serves to thousands of clients
// on a Pi (BENCHMARKS.md).
const (
	MaxRate  = 20
	MaxBurst = 40
)

// Reasons a push is refused, the label values of the refusal counter.
const (
	ReasonRate    = "rate"    // over MaxRate
	ReasonInvalid = "invalid" // malformed, too large, empty, unknown path
	ReasonSession = "session" // no such client on that path
)

// Reasons lists the refusal reasons in the order /metrics shows them.
var Reasons = []string{ReasonInvalid, ReasonRate, ReasonSession}

// Sender sends pushes to the clients of the WebSocket paths it is given.
type Sender struct {
	paths map[string]*broadcast.Server
	now   func() time.Time
	lim   *ratelimit.Bucket

	sent                           atomic.Uint64 // pushes delivered (to at least the path; a broadcast may reach no one)
	invalid, rateRefused, sessions atomic.Uint64
}

// NewSender returns a Sender for paths (URL path -> its server, e.g.
// "/ws/dashboard"); now is the rate bound's clock (time.Now outside
// tests).
func NewSender(paths map[string]*broadcast.Server, now func() time.Time) *Sender {
	return &Sender{paths: paths, now: now, lim: ratelimit.New(MaxRate, MaxBurst)}
}

// Paths lists the paths pushes may go to, sorted.
func (s *Sender) Paths() []string {
	out := make([]string, 0, len(s.paths))
	for p := range s.paths {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

// Stats are a Sender's counters.
type Stats struct {
	Sent    uint64            // pushes delivered
	Refused map[string]uint64 // by reason (Reasons)
}

// Stats returns the counters.
func (s *Sender) Stats() Stats {
	return Stats{Sent: s.sent.Load(), Refused: map[string]uint64{
		ReasonInvalid: s.invalid.Load(), ReasonRate: s.rateRefused.Load(), ReasonSession: s.sessions.Load(),
	}}
}

// Allow takes a token of the rate bound: ErrRate (counted) when there is
// none. Callers take it before they parse, so a storm costs no parsing.
func (s *Sender) Allow() error {
	if s.lim.Allow(s.now()) {
		return nil
	}
	s.rateRefused.Add(1)
	return fmt.Errorf("%w: at most %d a second (bursts of %d); wait and send again", ErrRate, MaxRate, MaxBurst)
}

// Refuse counts err, a push's refusal before Send (a message that did
// not parse), and returns it.
func (s *Sender) Refuse(err error) error {
	s.count(err)
	return err
}

func (s *Sender) count(err error) {
	switch {
	case errors.Is(err, ErrRate):
	case errors.Is(err, ErrSession):
		s.sessions.Add(1)
	default:
		s.invalid.Add(1)
	}
}

// Send sends p to its path's clients (to one, with a Session) and
// returns how many it went to. A broadcast never waits for a client; a
// message to one client is queued for it. Refusals are counted: ErrPath,
// ErrSession (the client has gone or is on another path, and the message
// is dropped, never broadcast), ErrTooLarge, ErrEmpty. The caller has
// taken the rate bound's token (Allow).
func (s *Sender) Send(p Push) (int, error) {
	n, err := s.send(p)
	if err != nil {
		s.count(err)
		return 0, err
	}
	s.sent.Add(1)
	return n, nil
}

func (s *Sender) send(p Push) (int, error) {
	srv, ok := s.paths[p.Path]
	if !ok {
		return 0, fmt.Errorf("%w %q: pushes go to one of %v", ErrPath, p.Path, s.Paths())
	}
	m := broadcast.Message{Topic: p.Topic, Payload: p.Payload, Session: p.Session, Live: true}
	if p.Session == "" {
		n := srv.Reach(p.Topic)
		if err := srv.Publish(m); err != nil {
			return 0, fmt.Errorf("push: %s: %w", p.Path, err)
		}
		return n, nil
	}
	switch err := srv.Publish(m); {
	case err == nil:
		return 1, nil
	case errors.Is(err, broadcast.ErrNoSession):
		for other, o := range s.paths {
			if o.HasSession(p.Session) {
				return 0, fmt.Errorf("%w: session %s is a client of %s, not of %s", ErrSession, p.Session, other, p.Path)
			}
		}
		return 0, fmt.Errorf("%w: no client with session %s on %s (it has gone; GET /api/clients lists those connected)", ErrSession, p.Session, p.Path)
	default:
		// The client's queue is full or the memory bound is reached:
		// counted by the server; the push is refused like a gone one.
		return 0, fmt.Errorf("%w: session %s on %s: %v", ErrSession, p.Session, p.Path, err)
	}
}

// Client is one entry of GET /api/clients.
type Client struct {
	Session Session  `json:"_session"`
	Address string   `json:"address"`
	Port    int      `json:"port"`
	Since   int64    `json:"since"`   // milliseconds since the Unix epoch
	Filters []string `json:"filters"` // its ?topic= filters; [] for every topic
}

// Clients lists the connected clients of path, oldest first.
func (s *Sender) Clients(path string) ([]Client, error) {
	srv, ok := s.paths[path]
	if !ok {
		return nil, fmt.Errorf("%w %q: clients are listed for one of %v", ErrPath, path, s.Paths())
	}
	list := srv.ClientList()
	out := make([]Client, len(list))
	for i, c := range list {
		host, port, err := net.SplitHostPort(c.Remote)
		if err != nil {
			host = c.Remote
		}
		pn, _ := strconv.Atoi(port)
		f := c.Filters
		if f == nil {
			f = []string{}
		}
		out[i] = Client{Session: SessionOf(c.Session), Address: host, Port: pn, Since: c.Since.UnixMilli(), Filters: f}
	}
	return out, nil
}
