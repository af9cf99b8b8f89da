package broadcast

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"sensord/broadcast/internal/fanout"
)

// Policy is what happens to a client that falls a whole ring behind.
type Policy int

const (
	// SkipToNewest skips the client to the newest message and counts what
	// it missed in ServerStats.Lost.
	SkipToNewest Policy = iota
	// DisconnectLapped closes the client with 1008 and counts it in
	// ServerStats.Dropped. (Named apart from the Disconnect event kind.)
	DisconnectLapped
)

// Defaults for zero ServerOpts fields.
const (
	DefaultRingSize         = 1024
	DefaultReadLimit        = 64 << 10
	DefaultMaxClients       = 10000
	DefaultHandshakeTimeout = 10 * time.Second
	DefaultPingInterval     = 30 * time.Second
	DefaultPongTimeout      = 10 * time.Second
	DefaultWriteWait        = 10 * time.Second
	DefaultReplyQueue       = 16
	// DefaultCoalesce is the longest the writes after a publish are held
	// back so that at high message rates each client has several frames
	// waiting and gets them with one system call, which is most of a
	// delivery's CPU. It applies only with many clients (from 800 on in
	// full); a message after a quiet period goes out at once, so slow
	// streams (a reading every 2 s) are never delayed.
	DefaultCoalesce = 40 * time.Millisecond
)

// readBufferSize is gorilla's read buffer: the server only lets gorilla do
// the handshake (it is garbage after that); the client reads with it.
// Incoming frames are rare and small.
const readBufferSize = 256

// ServerOpts configures a Server; the zero value is usable.
type ServerOpts struct {
	// WholeMsg sends {"topic":..,"payload":..,"_msgid":..} instead of the
	// payload alone.
	WholeMsg bool
	// RingSize is the number of retained messages, rounded up to a power of
	// two; default 1024.
	RingSize int
	// Replay: a late joiner first gets the last Replay messages of each
	// topic its filters match; default (0 or less) 1.
	Replay int
	// NoReplay: a late joiner gets only what is published after it
	// joined (a server whose messages are replies has nothing to replay).
	NoReplay bool
	// Resume, if set, serves ?since=<Unix ms>: the client gets what it
	// finds instead of the replay, then the live stream (resume.go).
	// Without it, or without since, a client gets the replay as usual.
	Resume Resumer
	// Lapped is what happens to a client a whole ring behind.
	Lapped Policy
	// ReadLimit is the largest incoming frame; over it the client is
	// closed with 1009. Default 64 KiB.
	ReadLimit int64
	// MaxClients: upgrades beyond it get 503. Default 10000.
	MaxClients int
	// HandshakeTimeout bounds writing the upgrade response (reading the
	// request is bounded by http.Server.ReadHeaderTimeout). Default 10 s.
	HandshakeTimeout time.Duration
	// PingInterval: the server pings every client this often; a client that
	// sends nothing (no pong) for PingInterval+PongTimeout is dropped.
	// Defaults 30 s and 10 s.
	PingInterval, PongTimeout time.Duration
	// WriteWait is the deadline of every write; a client that does not take
	// a batch within it is dropped. Default 10 s.
	WriteWait time.Duration
	// Writers is the number of goroutines that write to the clients after
	// publishes; default GOMAXPROCS.
	Writers int
	// ReplyQueue is the per-client queue for session replies. While it is
	// full the client's reader stops reading (its requests wait in TCP),
	// so a client's own requests never overflow it; replies from
	// elsewhere that find it full close that client with 1013. Default 16.
	ReplyQueue int
	// Coalesce: the writes to the clients after publishes run at most
	// once per Coalesce, less often only with many clients; default (0 or
	// less) DefaultCoalesce.
	Coalesce time.Duration
	// NoCoalesce writes to the clients after every publish.
	NoCoalesce bool
	// OnMessage gets every frame a client sends. It is called from that
	// connection's reader goroutine: it must not block for long.
	OnMessage func(Incoming)
	// OnEvent gets connect and disconnect events, from the connection's
	// goroutines: it must not block for long.
	OnEvent func(Event)
	// Budget bounds the memory all clients together can make the server
	// hold (messages still arriving, queued replies); share one between
	// the servers of a process. nil: a Budget of DefaultBudget of its own.
	Budget *Budget
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// ServerStats are the server's counters since NewServer.
type ServerStats struct {
	Clients        int    // connected now
	Connects       uint64 // upgrades accepted
	Disconnects    uint64
	Published      uint64 // broadcast messages put in the ring
	Replies        uint64 // session replies queued
	Sent           uint64 // messages written to clients (deliveries, replay included), counted when their write completes: a write that fails counts none of its frames
	Lost           uint64 // ring messages a lapped client skipped; whatever their topic (a client with a topic filter may not have wanted all of them: their topics were overwritten with them)
	Dropped        uint64 // clients disconnected for being slow (lapped under DisconnectLapped, write timeout); counted when decided, so Clients may include one for a moment while its socket is torn down
	Stalls         uint64 // writes a client's full socket could not take at once (it got a goroutine of its own to wait)
	RepliesDropped uint64 // replies to a gone session, or over a full queue
	Rejected       uint64 // upgrades refused (400, 401, 403, 503)
}

// Errors from Publish.
var (
	ErrNoSession     = errors.New("broadcast: no such session")
	ErrReplyOverflow = errors.New("broadcast: reply queue full, client closed")
	ErrBusy          = errors.New("broadcast: reply dropped: the memory budget for replies is used up")
)

// Server is the WebSocket output of one path (websocket-out in server
// mode): an http.Handler that upgrades clients and hands them to the
// fan-out engine, which keeps the retained messages and writes to them.
type Server struct {
	o   ServerOpts
	up  websocket.Upgrader
	eng *fanout.Engine[Message]
	ids idGen

	// reserved counts upgrades admitted against MaxClients, including
	// ones in progress; given back when a client has left (OnLeave) or
	// was refused.
	reserved atomic.Int64

	published, rejected atomic.Uint64

	resumes chan struct{} // a token per resume in progress (MaxResumes)
}

// NewServer returns a server; o may be nil. It starts the engine's
// goroutines (writes to the clients, heartbeats), which Close stops.
func NewServer(o *ServerOpts) *Server {
	s := &Server{}
	if o != nil {
		s.o = *o
	}
	s.o.normalize()
	s.resumes = make(chan struct{}, MaxResumes)
	var seed [4]byte
	_, _ = rand.Read(seed[:])
	s.ids.prefix = binary.BigEndian.Uint32(seed[:])
	fo := fanout.Options{
		RingSize:         s.o.RingSize,
		Replay:           s.o.Replay,
		DisconnectLapped: s.o.Lapped == DisconnectLapped,
		ReadLimit:        s.o.ReadLimit,
		PingInterval:     s.o.PingInterval,
		PongTimeout:      s.o.PongTimeout,
		WriteWait:        s.o.WriteWait,
		Writers:          s.o.Writers,
		ReplyQueue:       s.o.ReplyQueue,
		Coalesce:         s.o.Coalesce,
		Memory:           memory{s.o.Budget},
		Match:            matchValid, // filters are checked in ServeHTTP
		OnLeave: func(session, remote string, n int) {
			s.reserved.Add(-1)
			s.event(Disconnect, session, remote, n)
		},
		Now: s.o.Now,
	}
	if s.o.OnEvent != nil {
		fo.OnJoin = func(session, remote string, n int) { s.event(Connect, session, remote, n) }
	}
	if s.o.OnMessage != nil {
		fo.OnMessage = func(session string, p []byte, binary bool) {
			s.o.OnMessage(ParseIncoming(session, p, binary))
		}
	}
	s.eng, _ = fanout.New[Message](fo) // normalized: the ring size is a power of two
	s.up = websocket.Upgrader{
		HandshakeTimeout: s.o.HandshakeTimeout,
		ReadBufferSize:   readBufferSize,
		// A pool keeps gorilla from giving each connection its own write
		// buffer. The engine does not use gorilla's writer at all (it
		// writes pre-framed bytes), so this pool stays empty in practice.
		WriteBufferPool: &sync.Pool{},
		// CheckOrigin nil: gorilla's own check, a browser's Origin must be
		// this Host (requests without Origin are not browsers and pass).
		// Which origins and tokens may reach the server at all is the
		// front door's decision, in front of it, not this package's.
		Error: func(w http.ResponseWriter, r *http.Request, status int, reason error) {
			s.rejected.Add(1)
			// RFC 6455 4.4: a handshake refused for its version learns the
			// one we speak; gorilla's own handler does so for every error.
			w.Header().Set("Sec-WebSocket-Version", "13")
			http.Error(w, http.StatusText(status), status)
		},
	}
	return s
}

func (s *Server) event(k EventKind, session, remote string, clients int) {
	if s.o.OnEvent != nil {
		s.o.OnEvent(Event{Kind: k, Session: session, Remote: remote, Clients: clients})
	}
}

func (o *ServerOpts) normalize() {
	if o.RingSize <= 0 {
		o.RingSize = DefaultRingSize
	}
	n := 2
	for n < o.RingSize {
		n <<= 1
	}
	o.RingSize = n
	switch {
	case o.NoReplay:
		o.Replay = 0
	case o.Replay <= 0:
		o.Replay = 1
	}
	if o.ReadLimit <= 0 {
		o.ReadLimit = DefaultReadLimit
	}
	if o.MaxClients <= 0 {
		o.MaxClients = DefaultMaxClients
	}
	if o.HandshakeTimeout <= 0 {
		o.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if o.PingInterval <= 0 {
		o.PingInterval = DefaultPingInterval
	}
	if o.PongTimeout <= 0 {
		o.PongTimeout = DefaultPongTimeout
	}
	if o.WriteWait <= 0 {
		o.WriteWait = DefaultWriteWait
	}
	if o.Writers <= 0 {
		o.Writers = runtime.GOMAXPROCS(0)
	}
	if o.ReplyQueue <= 0 {
		o.ReplyQueue = DefaultReplyQueue
	}
	switch {
	case o.NoCoalesce:
		o.Coalesce = 0
	case o.Coalesce <= 0:
		o.Coalesce = DefaultCoalesce
	}
	if o.Budget == nil {
		o.Budget = NewBudget(DefaultBudget)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// ServeHTTP upgrades the request to a WebSocket client of this path.
// Query: topic=<MQTT filter> (repeatable) and with ServerOpts.Resume
// since=<Unix ms>; other parameters (the front door's access_token) are
// not this package's.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	filters, err := parseFilters(r.URL.RawQuery)
	if err != nil {
		s.rejected.Add(1)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if s.reserved.Add(1) > int64(s.o.MaxClients) {
		s.reserved.Add(-1)
		s.rejected.Add(1)
		http.Error(w, "broadcast: too many clients", http.StatusServiceUnavailable)
		return
	}
	if s.eng.Closing() {
		s.reserved.Add(-1)
		s.rejected.Add(1)
		http.Error(w, "broadcast: shutting down", http.StatusServiceUnavailable)
		return
	}
	if s.o.Resume != nil {
		since, ok, err := parseSince(r.URL.RawQuery)
		if err != nil {
			s.reserved.Add(-1)
			s.rejected.Add(1)
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if ok {
			s.resume(w, r, since, filters)
			return
		}
	}
	// Take the mark before the 101 goes out: whatever is published once
	// the client has seen its handshake complete reaches it.
	mark := s.eng.Mark()
	ws, err := s.up.Upgrade(w, r, nil)
	if err != nil {
		s.reserved.Add(-1) // Upgrade has answered (and counted) already
		return
	}
	// From here on the connection is the engine's: it reads the frames
	// and writes pre-framed bytes; gorilla's Conn is not used again. Join
	// returns after the replay.
	if !s.eng.Join(ws.NetConn(), mark, s.ids.next(), r.RemoteAddr, filters) {
		s.reserved.Add(-1) // upgraded as Close began: told 1001
	}
}

// MaxFilters caps the ?topic= filters of one client. Each retained and
// published message is matched against every filter of every client, so
// filters cost CPU on each publish and at every join (the replay); a
// client with thousands would cost the server seconds. Real clients use
// one or two; a few dozen is plenty.
const MaxFilters = 32

// parseFilters returns the topic filters of a query, each checked once,
// here: a query that does not parse (a bad escape, a ';'), more than
// MaxFilters filters or an invalid one is an error saying why, never a
// client that silently gets every topic.
func parseFilters(rawQuery string) ([]string, error) {
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return nil, fmt.Errorf("broadcast: query does not parse: %w", err)
	}
	filters := q["topic"]
	if len(filters) > MaxFilters {
		return nil, fmt.Errorf("broadcast: %d topic filters, at most %d allowed", len(filters), MaxFilters)
	}
	for _, f := range filters {
		if !ValidFilter(f) {
			return nil, fmt.Errorf("broadcast: bad topic filter %q: '+' and '#' must be whole levels, '#' the last", f)
		}
	}
	return filters, nil
}

// Publish sends m to the clients of this path. A broadcast (no Session) is
// encoded once and stored in the ring: wait-free, it never waits for a
// client. A reply (Session set) goes to that client's bounded queue:
// ErrNoSession (counted) when the session is gone, ErrBusy (counted) when
// the Budget has no room for it, ErrReplyOverflow when its queue is full
// (the client is closed with 1013, counted). An empty
// payload is not sent. Safe from any goroutine.
func (s *Server) Publish(m Message) error {
	if empty(m.Payload) {
		return nil
	}
	if m.ID == "" {
		m.ID = s.ids.next()
	}
	data, bin, err := encodePayload(&m, s.o.WholeMsg)
	if err != nil {
		return err
	}
	f := &fanout.Frame[Message]{Topic: m.Topic, Wire: fanout.Encode(bin, data), Meta: m, Live: m.Live}
	if m.Session == "" {
		s.eng.Publish(f)
		s.published.Add(1)
		return nil
	}
	switch err := s.eng.Reply(m.Session, f); err {
	case nil:
		return nil
	case fanout.ErrNoSession:
		return ErrNoSession
	case fanout.ErrBusy:
		return ErrBusy
	case fanout.ErrReplyOverflow:
		return ErrReplyOverflow
	default:
		return fmt.Errorf("broadcast: reply: %w", err)
	}
}

// ErrRetainSession: PublishRetained is for broadcasts.
var ErrRetainSession = errors.New("broadcast: a message to one session cannot be retained")

// PublishRetained publishes the broadcast m as Publish does and, with
// keep, retains it as its topic's message for late joiners, the way an
// MQTT broker keeps a retained message: every client that connects later
// and wants the topic gets it before anything else, however many messages
// have passed since, until PublishRetained publishes on that topic again
// (without keep, the topic then retains nothing more than the ring
// holds). For state that outlives the ring, such as an active alert.
func (s *Server) PublishRetained(m Message, keep bool) error {
	if m.Session != "" {
		return ErrRetainSession
	}
	if m.ID == "" {
		m.ID = s.ids.next()
	}
	data, bin, err := encodePayload(&m, s.o.WholeMsg)
	if err != nil {
		return err
	}
	s.eng.PublishHeld(&fanout.Frame[Message]{Topic: m.Topic, Wire: fanout.Encode(bin, data), Meta: m}, keep)
	s.published.Add(1)
	return nil
}

// Clients is the number of connected clients.
func (s *Server) Clients() int { return s.eng.Clients() }

// ClientList describes the connected clients, oldest first.
func (s *Server) ClientList() []ClientInfo {
	conns := s.eng.Conns()
	out := make([]ClientInfo, len(conns))
	for i, c := range conns {
		out[i] = ClientInfo{Session: c.Session, Remote: c.Remote, Since: c.Since, Filters: c.Filters}
	}
	slices.SortStableFunc(out, func(a, b ClientInfo) int { return a.Since.Compare(b.Since) })
	return out
}

// HasSession reports whether the client with session is connected.
func (s *Server) HasSession(session string) bool { return s.eng.Has(session) }

// Reach is the number of connected clients whose filters want topic: those
// a broadcast on it published now goes to. It looks at every client, so it
// is for rare messages (a push from outside), not for every publish.
func (s *Server) Reach(topic string) int { return s.eng.Wanting(topic) }

// Stats returns the counters. Safe from any goroutine.
func (s *Server) Stats() ServerStats {
	st := s.eng.Stats()
	return ServerStats{
		Clients:        st.Clients,
		Connects:       st.Connects,
		Disconnects:    st.Disconnects,
		Published:      s.published.Load(),
		Replies:        st.Replies,
		Sent:           st.Sent,
		Lost:           st.Lost,
		Dropped:        st.Dropped,
		Stalls:         st.Stalls,
		RepliesDropped: st.RepliesDropped,
		Rejected:       s.rejected.Load(),
	}
}

// Progress is the time of the housekeeping loop's last tick (at least once
// a second while it runs; NewServer's time before the first): evidence for
// a watchdog that the broadcaster is alive. It carries the monotonic clock
// reading of the clock (time.Now's), so time.Since(Progress()) measures
// real time even when the wall clock is stepped.
func (s *Server) Progress() time.Time { return s.eng.Progress() }

// Close sends 1001 (going away) to every client, refuses new ones (503),
// and waits until every connection's goroutines have finished, or until
// ctx is done: then it drops the remaining connections and returns the
// context's error. Publish keeps working (History), but nobody is sent
// anything any more.
func (s *Server) Close(ctx context.Context) error {
	if err := s.eng.Close(ctx); err != nil {
		return fmt.Errorf("broadcast: close: %w", err)
	}
	return nil
}
