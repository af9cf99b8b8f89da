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
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// Message is one message for the clients of a path (Node-RED's msg).
type Message struct {
	Topic string
	// Payload: []byte goes out as a binary frame; a string as text as is;
	// anything else (json.RawMessage included) as JSON text. nil, an empty
	// []byte or "" is not sent. The payload must not be modified after
	// Publish (it is kept for History).
	Payload any
	// Session: "" broadcasts to every client of the path (topic filters
	// apply); otherwise only the client with that session gets it.
	Session string
	// ID is the _msgid; generated when empty.
	ID string
}

// Incoming is one frame received from a client (websocket-in).
type Incoming struct {
	Session string         // the sender's session: Publish a Message with it to answer only that client
	Raw     []byte         // the frame's payload as received
	Binary  bool           // a binary frame
	JSON    bool           // Raw parsed as a JSON object
	Msg     map[string]any // the parsed object; otherwise {"payload": text} or {"payload": []byte}
}

// EventKind says what happened to a connection.
type EventKind int

const (
	Connect EventKind = iota + 1
	Disconnect
)

func (k EventKind) String() string {
	switch k {
	case Connect:
		return "connect"
	case Disconnect:
		return "disconnect"
	}
	return fmt.Sprintf("EventKind(%d)", int(k))
}

// Event reports a client connecting or disconnecting.
type Event struct {
	Kind    EventKind
	Session string
	Remote  string // the peer's address
	Clients int    // clients connected after this event
}

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
	// DefaultCoalesce is the longest a pass is held back so that at high
	// message rates each connection has several frames waiting and gets
	// them with one syscall (on loopback one write costs ~5 us, most
	// of a delivery's CPU). See wakeBudget for when it applies.
	DefaultCoalesce = 40 * time.Millisecond
	// wakeBudget is how many connection writes per second the server
	// spends without holding passes back: passes run at most every
	// min(Coalesce, clients/wakeBudget). With 100 clients that is 5 ms (100
	// msg/s go out one by one, no added latency); from 800 clients on it is
	// Coalesce: at 1000 clients and 100 msg/s ~4 frames per writev, which
	// measured 0.39x the CPU per delivery of the channel-per-client hub
	// (10 ms gave 0.75x, 30 ms 0.52x). A message after a quiet period goes
	// out at once: slow streams (a reading every 2 s) are never delayed.
	wakeBudget = 20000
)

const (
	// readBufferSize is gorilla's read buffer: the server only lets gorilla
	// do the handshake (it is garbage after that); the client reads with
	// it. Incoming frames are rare and small.
	readBufferSize = 256
	// maxBatch caps the frames one writev of a pass worker carries (the
	// kernel allows 1024; the per-socket iovec cache grows to this, 16
	// bytes per entry).
	maxBatch = 64
	// driveBatch caps the frames per writev of a drive goroutine, whose
	// batch is made for each drive (replies, pongs, a slow client).
	driveBatch = 16
	// passChunk is how many connections a pass worker takes at a time:
	// large enough that workers rarely meet on the shared cursor, small
	// enough that they finish a pass together.
	passChunk = 32
	// closeGrace is how long a writer that sent a close frame waits for
	// the peer's close before it drops the TCP connection.
	closeGrace = time.Second
)

// ServerOpts configures a Server; the zero value is usable.
type ServerOpts struct {
	// WholeMsg sends {"topic":..,"payload":..,"_msgid":..} instead of the
	// payload alone.
	WholeMsg bool
	// RingSize is the number of retained messages, rounded up to a power of
	// two; default 1024.
	RingSize int
	// Replay: a late joiner first gets the last Replay messages of each
	// topic its filters match; default 1; -1 none.
	Replay int
	// Lapped is what happens to a client a whole ring behind.
	Lapped Policy
	// ReadLimit is the largest incoming frame; over it the client is
	// closed with 1009. Default 64 KiB.
	ReadLimit int64
	// MaxClients: upgrades beyond it get 503. Default 10000.
	MaxClients int
	// AllowedOrigins: browsers from these origins ("https://host:port", or
	// "*") may connect besides the same origin. Requests without an Origin
	// header (non-browsers) are always allowed. Others get 403.
	AllowedOrigins []string
	// Token: "" none; else "Authorization: Bearer <Token>" or
	// ?access_token=<Token> is required, 401 without it.
	Token string
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
	// publishes (the pass workers, see Server.pass); default GOMAXPROCS.
	Writers int
	// ReplyQueue is the per-client queue for session replies. While it is
	// full the client's reader stops reading (its requests wait in TCP),
	// so a client's own requests never overflow it; replies from
	// elsewhere that find it full close that client with 1013. Default 16.
	ReplyQueue int
	// Coalesce: passes (writes to the clients) run at most once per
	// Coalesce, less often only with many clients (see DefaultCoalesce); -1 wakes them on every
	// publish.
	Coalesce time.Duration
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
// mode): an http.Handler that upgrades clients and follows a Ring.
type Server struct {
	o    ServerOpts
	up   websocket.Upgrader
	ring *Ring[encoded]
	ids  idGen

	// sessions maps session id -> *conn for replies; lock-free reads so
	// that Publish never waits.
	sessions sync.Map

	// mu guards closed and wg.Add against Close's wg.Wait.
	mu      sync.Mutex
	closed  bool
	wg      sync.WaitGroup // one per connection (done by its finish)
	closing chan struct{}  // closed by Close
	done    chan struct{}  // closed when the housekeeping loop returns

	// reserved counts upgrades admitted against MaxClients (including ones
	// in progress); clients counts registered connections.
	reserved atomic.Int64
	clients  atomic.Int64

	// hbGen counts heartbeats (written by the loop, read by writers). The
	// loop runs a pass after it moves hbGen on.
	hbGen atomic.Uint64

	// base is when NewServer ran, with its monotonic clock reading (when
	// Now gives one, as time.Now does). progress is the loop's last tick as
	// time since base: written by the loop, read by Progress from any
	// goroutine. Offsets from base keep the monotonic reading, so
	// time.Since(Progress()) is immune to the wall clock stepping (a Pi has
	// no RTC; NTP steps its clock by years at boot).
	base     time.Time
	progress atomic.Int64

	// regMu guards reg: every registered connection, each at its conn.idx.
	regMu sync.Mutex
	reg   []*conn
	// The pass (see pass): snap is the loop's copy of reg for the current
	// pass, cursor the next index of it a worker takes, passStart one
	// token per helper per pass, passWG the helpers still at it.
	snap      []*conn
	cursor    atomic.Int64
	passStart chan struct{}
	passWG    sync.WaitGroup
	loopBatch *batch // the loop's, as a pass worker

	st struct {
		connects, disconnects, published, replies, sent, lost,
		dropped, stalls, repliesDropped, rejected atomic.Uint64
	}
}

// NewServer returns a server; o may be nil. It starts one housekeeping
// goroutine (wakeups, heartbeats), which Close stops.
func NewServer(o *ServerOpts) *Server {
	s := &Server{closing: make(chan struct{}), done: make(chan struct{})}
	if o != nil {
		s.o = *o
	}
	s.o.normalize()
	s.ring, _ = NewRing[encoded](s.o.RingSize) // normalized: power of two
	var seed [4]byte
	_, _ = rand.Read(seed[:])
	s.ids.prefix = binary.BigEndian.Uint32(seed[:])
	s.base = s.o.Now()
	s.passStart = make(chan struct{})
	s.loopBatch = newBatch(maxBatch)
	for range s.o.Writers - 1 {
		go s.helper()
	}
	s.up = websocket.Upgrader{
		HandshakeTimeout: s.o.HandshakeTimeout,
		ReadBufferSize:   readBufferSize,
		// A pool keeps gorilla from giving each connection its own write
		// buffer. Our writers do not use gorilla's writer at all (they
		// write pre-framed bytes), so this pool stays empty in practice.
		WriteBufferPool: &sync.Pool{},
		CheckOrigin:     s.checkOrigin,
		Error: func(w http.ResponseWriter, r *http.Request, status int, reason error) {
			s.st.rejected.Add(1)
			// RFC 6455 4.4: a handshake refused for its version learns the
			// one we speak; gorilla's own handler does so for every error.
			w.Header().Set("Sec-WebSocket-Version", "13")
			http.Error(w, http.StatusText(status), status)
		},
	}
	go s.loop()
	return s
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
	case o.Replay == 0:
		o.Replay = 1
	case o.Replay < 0:
		o.Replay = 0
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
	case o.Coalesce == 0:
		o.Coalesce = DefaultCoalesce
	case o.Coalesce < 0:
		o.Coalesce = 0
	}
	if o.Budget == nil {
		o.Budget = NewBudget(DefaultBudget)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// loop is the server's housekeeping goroutine: it turns ring publishes into
// wakeups (coalesced), sends heartbeats, and records progress.
func (s *Server) loop() {
	defer close(s.done)
	defer close(s.passStart) // ends the helpers
	tickEvery := min(s.o.PingInterval, time.Second)
	t := time.NewTicker(tickEvery)
	defer t.Stop()
	nextPing := s.o.Now().Add(s.o.PingInterval)
	var w waker
	for {
		select {
		case <-s.closing:
			s.pass()
			return
		case <-s.ring.Kicked():
			hold := min(s.o.Coalesce, time.Duration(s.clients.Load())*time.Second/wakeBudget)
			if !w.hold(s.closing, hold) {
				s.pass()
				return
			}
			s.ring.Ack()
			s.pass()
			s.markProgress(s.o.Now())
		case <-t.C:
			now := s.o.Now()
			s.markProgress(now)
			if !now.Before(nextPing) {
				nextPing = now.Add(s.o.PingInterval)
				s.hbGen.Add(1) // then the pass (see hbGen)
				s.pass()
			}
		}
	}
}

// pass is how publishes, heartbeats and Close reach the clients: the loop
// and Writers-1 helpers go through every registered connection once,
// taking passChunk connections at a time, and each writes what is waiting
// for it without waiting for its socket (conn.service). A write to a
// client that keeps up costs one system call and no goroutine switch; a
// connection whose socket is full is handed to a goroutine of its own
// (conn.drive), so one slow client does not hold up the pass. The next
// pass starts after this one ended, which coalesces wakeups further
// under load.
//
// Ordering (with Ring.Publish's W3 and signal, and conn.claim/release):
//
//	A1  Ack: pending = false (after the kick was received)
//	A2  copy reg, then claim every connection in it and look at the ring
//
// A publish whose W3 came after A1 kicks again: another pass follows. One
// whose W3 came before A1 is seen by A2: the worker that claims a
// connection reads the ring after its claim; a claim that fails marks the
// owner to look again (wAgain) after that publish. A connection
// registered after A2 copied reg looks at the ring itself (the drive in
// conn.start) after its registration (join).
func (s *Server) pass() {
	s.regMu.Lock()
	s.snap = append(s.snap[:0], s.reg...)
	s.regMu.Unlock()
	s.cursor.Store(0)
	helpers := min(s.o.Writers-1, (len(s.snap)-1)/passChunk)
	s.passWG.Add(helpers)
	for range helpers {
		s.passStart <- struct{}{}
	}
	s.work(s.loopBatch)
	s.passWG.Wait()
	clear(s.snap) // let finished connections go
}

// helper is a pass worker besides the loop; it runs until the loop ends.
func (s *Server) helper() {
	b := newBatch(maxBatch)
	for range s.passStart {
		s.work(b)
		s.passWG.Done()
	}
}

// work takes chunks of the pass's connections until none are left.
func (s *Server) work(b *batch) {
	n := int64(len(s.snap))
	for {
		i := s.cursor.Add(passChunk) - passChunk
		if i >= n {
			return
		}
		for _, c := range s.snap[i:min(i+passChunk, n)] {
			c.service(b)
		}
	}
}

// register adds c to the connections the passes go through.
func (s *Server) register(c *conn) {
	s.regMu.Lock()
	c.idx = len(s.reg)
	s.reg = append(s.reg, c)
	s.regMu.Unlock()
}

// unregister takes c out of reg (the last one moves into its place).
func (s *Server) unregister(c *conn) {
	s.regMu.Lock()
	last := s.reg[len(s.reg)-1]
	s.reg[c.idx] = last
	last.idx = c.idx
	s.reg[len(s.reg)-1] = nil
	s.reg = s.reg[:len(s.reg)-1]
	s.regMu.Unlock()
}

// ServeHTTP upgrades the request to a WebSocket client of this path.
// Query: topic=<MQTT filter> (repeatable), access_token=<token>.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.o.Token != "" && !Authorized(r, s.o.Token) {
		s.st.rejected.Add(1)
		w.Header().Set("WWW-Authenticate", `Bearer realm="sensord"`)
		http.Error(w, "broadcast: missing or wrong token", http.StatusUnauthorized)
		return
	}
	filters, err := parseFilters(r.URL.RawQuery)
	if err != nil {
		s.st.rejected.Add(1)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if s.reserved.Add(1) > int64(s.o.MaxClients) {
		s.reserved.Add(-1)
		s.st.rejected.Add(1)
		http.Error(w, "broadcast: too many clients", http.StatusServiceUnavailable)
		return
	}
	select {
	case <-s.closing:
		s.reserved.Add(-1)
		s.st.rejected.Add(1)
		http.Error(w, "broadcast: shutting down", http.StatusServiceUnavailable)
		return
	default:
	}
	// Take the cursor before the 101 goes out: whatever is published once
	// the client has seen its handshake complete reaches it.
	rd := s.ring.NewReader()
	var ws *websocket.Conn
	ws, err = s.up.Upgrade(w, r, nil)
	if err != nil {
		s.reserved.Add(-1) // Upgrade has answered (and counted) already
		return
	}
	// From here on the connection is ours: frames are read by our
	// frameReader and written pre-framed by our writers; gorilla's Conn is
	// not used again.
	c := s.newConn(ws.NetConn(), rd, filters, r.RemoteAddr)
	if !s.join(c) {
		return
	}
	c.start()
}

// join makes c, just upgraded and owned by the caller (newConn), one of
// the server's clients: registered, in sessions, counted, announced, with
// its reader running. It is false (and c closed) when the server is
// closing. It comes before the replay, which may wait on a slow client for
// up to WriteWait: Close(ctx) must find c there, and a replay that times
// out is a drop like any other (Connect, then Disconnect). Meanwhile passes
// and replies only mark c: it is owned.
func (s *Server) join(c *conn) bool {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		s.reserved.Add(-1)
		// Upgraded just as Close began: the client saw its handshake
		// complete, so it is told 1001 like every other client (c is
		// ours to write: owned since newConn), not dropped.
		_ = c.nc.SetWriteDeadline(s.o.Now().Add(s.o.WriteWait))
		_, _ = c.nc.Write(closeFrame(websocket.CloseGoingAway, ""))
		_ = c.nc.Close()
		return false
	}
	s.wg.Add(1)
	s.mu.Unlock()
	s.sessions.Store(c.session, c)
	s.register(c)
	n := s.clients.Add(1)
	s.st.connects.Add(1)
	if s.o.OnEvent != nil {
		s.o.OnEvent(Event{Kind: Connect, Session: c.session, Remote: c.remote, Clients: int(n)})
	}
	go c.readLoop()
	return true
}

// remove unregisters c; called once, by c's finish, when its reader has
// returned and nobody writes to it any more.
func (s *Server) remove(c *conn) {
	s.sessions.Delete(c.session)
	s.unregister(c)
	n := s.clients.Add(-1)
	s.reserved.Add(-1)
	s.st.disconnects.Add(1)
	if s.o.OnEvent != nil {
		s.o.OnEvent(Event{Kind: Disconnect, Session: c.session, Remote: c.remote, Clients: int(n)})
	}
	s.wg.Done()
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

// checkOrigin allows requests without Origin (not a browser), the same
// origin, and AllowedOrigins.
func (s *Server) checkOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	if err == nil && strings.EqualFold(u.Host, r.Host) {
		return true
	}
	for _, a := range s.o.AllowedOrigins {
		if a == "*" || strings.EqualFold(strings.TrimSuffix(a, "/"), origin) {
			return true
		}
	}
	return false
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
	op := byte(opText)
	if bin {
		op = opBinary
	}
	e := &encoded{msg: m, frame: frame(op, data)}
	if m.Session == "" {
		s.ring.Publish(e)
		s.st.published.Add(1)
		return nil
	}
	v, ok := s.sessions.Load(m.Session)
	if !ok {
		s.st.repliesDropped.Add(1)
		return ErrNoSession
	}
	c := v.(*conn)
	if !s.o.Budget.take(int64(len(e.frame))) {
		s.st.repliesDropped.Add(1)
		return ErrBusy
	}
	select {
	case c.replyQueue() <- e:
		s.st.replies.Add(1)
		select {
		case <-c.gone: // finish has emptied the queue: take it back out
			c.dropReplies()
		default:
			c.schedule()
		}
		return nil
	default:
		s.o.Budget.give(int64(len(e.frame)))
		s.st.repliesDropped.Add(1)
		c.requestClose(websocket.CloseTryAgainLater)
		return ErrReplyOverflow
	}
}

// History returns the retained broadcast messages whose topic matches the
// MQTT filter ("" matches all), oldest first, at most the newest n (n <= 0:
// all). Payloads are as published. Safe from any goroutine.
func (s *Server) History(filter string, n int) []Message {
	last := s.ring.Last()
	size := uint64(s.ring.Size())
	var out []Message
	for seq := last; seq > 0 && last-seq < size; seq-- {
		e, ok := s.ring.Get(seq)
		if !ok || (filter != "" && !MatchTopic(filter, e.msg.Topic)) {
			continue
		}
		out = append(out, e.msg)
		if n > 0 && len(out) == n {
			break
		}
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out
}

// Clients is the number of connected clients.
func (s *Server) Clients() int { return int(s.clients.Load()) }

// Stats returns the counters. Safe from any goroutine.
func (s *Server) Stats() ServerStats {
	return ServerStats{
		Clients:        s.Clients(),
		Connects:       s.st.connects.Load(),
		Disconnects:    s.st.disconnects.Load(),
		Published:      s.st.published.Load(),
		Replies:        s.st.replies.Load(),
		Sent:           s.st.sent.Load(),
		Lost:           s.st.lost.Load(),
		Dropped:        s.st.dropped.Load(),
		Stalls:         s.st.stalls.Load(),
		RepliesDropped: s.st.repliesDropped.Load(),
		Rejected:       s.st.rejected.Load(),
	}
}

func (s *Server) markProgress(t time.Time) { s.progress.Store(int64(t.Sub(s.base))) }

// Progress is the time of the housekeeping loop's last tick (at least once
// a second while it runs; NewServer's time before the first): evidence for
// a watchdog that the broadcaster is alive. It carries the monotonic clock
// reading of the clock (time.Now's), so time.Since(Progress()) measures
// real time even when the wall clock is stepped.
func (s *Server) Progress() time.Time { return s.base.Add(time.Duration(s.progress.Load())) }

// Close sends 1001 (going away) to every client, refuses new ones (503),
// and waits until every connection's goroutines have finished, or until
// ctx is done: then it drops the remaining connections and returns the
// context's error. Publish keeps working (History), but nobody is sent
// anything any more.
func (s *Server) Close(ctx context.Context) error {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		close(s.closing)
	}
	s.mu.Unlock()
	all := make(chan struct{})
	go func() {
		s.wg.Wait()
		<-s.done
		close(all)
	}()
	select {
	case <-all:
		return nil
	case <-ctx.Done():
		s.sessions.Range(func(_, v any) bool {
			_ = v.(*conn).nc.Close()
			return true
		})
		return fmt.Errorf("broadcast: close: %w", ctx.Err())
	}
}
