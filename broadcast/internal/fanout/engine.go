package fanout

import (
	"cmp"
	"context"
	"errors"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

const (
	// wakeBudget is how many connection writes per second the engine
	// spends without holding passes back: passes run at most every
	// min(Coalesce, clients/wakeBudget). With 100 clients that is 5 ms
	// (messages go out one by one, no added latency); from 800 clients on
	// it is Coalesce, so that at high message rates each connection has
	// several frames waiting and gets them with one writev (a write costs
	// a system call, most of a delivery's CPU). A message after a quiet
	// period goes out at once: slow streams (a reading every 2 s) are
	// never delayed. BENCHMARKS.md has the figures.
	wakeBudget = 20000
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
)

// CloseGrace is how long a side that sent a close frame waits for the
// peer's close before it drops the TCP connection.
const CloseGrace = time.Second

// Options configure an Engine. The caller (package broadcast) fills in
// every field with its defaults; New only keeps the engine from breaking
// on a zero value.
type Options struct {
	// RingSize is the number of retained frames: a power of two >= 2.
	RingSize int
	// Replay: a connection that joins first gets the newest Replay
	// retained frames of each topic its filters match; 0 none.
	Replay int
	// DisconnectLapped closes a connection that falls a whole ring behind
	// with 1008 (counted in Stats.Dropped); false skips it to the newest
	// frame (the skipped ones counted in Stats.Lost).
	DisconnectLapped bool
	// ReadLimit is the largest message a client may send; over it the
	// connection is closed with 1009.
	ReadLimit int64
	// PingInterval: every connection is pinged this often; one that sends
	// nothing (no pong) for PingInterval+PongTimeout is dropped.
	PingInterval, PongTimeout time.Duration
	// WriteWait is the deadline of every write; a connection that does
	// not take a batch within it is dropped (Stats.Dropped).
	WriteWait time.Duration
	// Writers is the number of pass workers: the loop and Writers-1
	// helper goroutines (see Engine.pass); at least 1.
	Writers int
	// ReplyQueue is each connection's queue of replies (see Reply).
	ReplyQueue int
	// Coalesce: passes run at most once per Coalesce, less often only
	// with many connections (see wakeBudget); 0: a pass after every
	// publish.
	Coalesce time.Duration
	// Memory bounds what clients can make the engine hold: messages still
	// arriving and queued replies. nil: unbounded.
	Memory Memory
	// Match reports whether a connection's filter matches a frame's topic.
	// Connections without filters get every frame. nil: a filter matches
	// the one topic equal to it.
	Match func(filter, topic string) bool
	// OnMessage gets every data message a client sends, from that
	// connection's reader goroutine (it must not block for long; p is
	// OnMessage's). A reader waits while its connection's reply queue is
	// full before it calls OnMessage. nil: messages are read and dropped.
	OnMessage func(session string, p []byte, binary bool)
	// OnJoin is called by Join, OnLeave once a connection has ended and
	// nobody reads or writes it any more (from its last writer), each
	// with the number of connections after it. nil: not called.
	OnJoin, OnLeave func(session, remote string, clients int)
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Memory is a bound on the bytes the engine holds for its clients
// (broadcast.Budget, shared by several engines). Safe from any goroutine.
type Memory interface {
	// Take reserves n bytes; false when that would pass the bound.
	Take(n int64) bool
	// Give returns n bytes taken before.
	Give(n int64)
}

// unbounded is the Memory of an engine without one.
type unbounded struct{}

func (unbounded) Take(int64) bool { return true }
func (unbounded) Give(int64)      {}

// Stats are an engine's counters since New.
type Stats struct {
	Clients        int    // connected now
	Connects       uint64 // connections joined
	Disconnects    uint64
	Replies        uint64 // replies queued
	Sent           uint64 // frames written to clients (replay included), counted when their write completes: a write that fails counts none of its frames
	Lost           uint64 // retained frames a lapped connection skipped, whatever their topic
	Dropped        uint64 // connections closed for being slow (lapped under DisconnectLapped, write timeout); counted when decided
	Stalls         uint64 // writes a client's full socket could not take at once (it got a goroutine of its own to wait)
	RepliesDropped uint64 // replies to a gone session, refused by Memory, or over a full queue
	Heartbeats     uint64 // heartbeat rounds begun; round n's pings are written by the time round n+1 begins
}

// Errors from Reply.
var (
	ErrNoSession     = errors.New("fanout: no such session")
	ErrReplyOverflow = errors.New("fanout: reply queue full, client closed")
	ErrBusy          = errors.New("fanout: reply refused by the memory bound")
)

// Engine writes published frames to every joined connection that wants
// them, replies to one connection, and reads what the connections send.
// See the package doc for who may call what.
type Engine[M any] struct {
	o    Options
	ring *Ring[Frame[M]]

	// sessions maps session -> *conn[M] for replies; lock-free reads so
	// that Reply never waits.
	sessions sync.Map

	// mu guards closed, started and wg.Add against Close's wg.Wait.
	mu     sync.Mutex
	closed bool
	// started is set, under mu, when the loop and helpers are started:
	// at the first Join, not in New, so that an engine nobody joins (a
	// path without clients, a test's) runs no goroutine. idle mirrors
	// !started for Progress, which must not take mu.
	started bool
	idle    atomic.Bool
	wg      sync.WaitGroup // one per connection (done by its finish)
	closing chan struct{}  // closed by Close
	done    chan struct{}  // closed when the loop returns

	clients atomic.Int64 // joined connections not yet removed

	// heartbeats counts heartbeats (written by the loop, read by writers). The
	// loop runs a pass after it moves heartbeats on.
	heartbeats atomic.Uint64

	// base is when New ran, with the monotonic clock reading (when Now
	// gives one, as time.Now does). progress is the loop's last tick as
	// time since base: written by the loop, read by Progress from any
	// goroutine. Offsets from base keep the monotonic reading, so
	// time.Since(Progress()) is immune to the wall clock stepping (a Pi has
	// no RTC; NTP steps its clock by years at boot).
	base     time.Time
	progress atomic.Int64

	// regMu guards reg: every joined connection, each at its conn.idx.
	regMu sync.Mutex
	reg   []*conn[M]
	// The pass (see pass): passConns is the loop's copy of reg for the current
	// pass, cursor the next index of it a worker takes, passStart one
	// token per helper per pass, passWG the helpers still at it.
	passConns []*conn[M]
	cursor    atomic.Int64
	passStart chan struct{}
	passWG    sync.WaitGroup
	loopBatch *batch // the loop's, as a pass worker

	// heldMu guards held: per topic, the frame PublishHeld keeps for
	// late joiners and its ring sequence. It is taken around the ring
	// publish of a held frame and around a joiner's look at held, so a
	// joiner either sees the entry with its sequence, or the frame is
	// published after the joiner's cursor and reaches it as any other.
	heldMu sync.Mutex
	held   map[string]heldFrame[M]

	counts struct {
		connects, disconnects, replies, sent, lost,
		dropped, stalls, repliesDropped atomic.Uint64
	}
}

// New returns an engine. Its loop (passes, heartbeats, progress) and
// Writers-1 helpers start at the first Join and run until Close; New
// itself starts no goroutine. The ring size must be a power of two >= 2.
func New[M any](o Options) (*Engine[M], error) {
	ring, err := NewRing[Frame[M]](o.RingSize)
	if err != nil {
		return nil, err
	}
	if o.Memory == nil {
		o.Memory = unbounded{}
	}
	if o.Match == nil {
		o.Match = func(f, topic string) bool { return f == topic }
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	o.Writers = max(o.Writers, 1)
	o.ReplyQueue = max(o.ReplyQueue, 1)
	e := &Engine[M]{
		o:         o,
		ring:      ring,
		closing:   make(chan struct{}),
		done:      make(chan struct{}),
		base:      o.Now(),
		passStart: make(chan struct{}),
		loopBatch: newBatch(maxBatch),
		held:      map[string]heldFrame[M]{},
	}
	e.idle.Store(true)
	return e, nil
}

// startLocked starts the loop and the helpers once; e.mu is held.
func (e *Engine[M]) startLocked() {
	if e.started {
		return
	}
	e.started = true
	e.markProgress(e.o.Now())
	e.idle.Store(false)
	for range e.o.Writers - 1 {
		go e.helper()
	}
	go e.loop()
}

// loop is the engine's housekeeping goroutine: it turns ring publishes into
// passes (coalesced), sends heartbeats, and records progress.
func (e *Engine[M]) loop() {
	defer close(e.done)
	defer close(e.passStart) // ends the helpers
	tickEvery := min(e.o.PingInterval, time.Second)
	t := time.NewTicker(tickEvery)
	defer t.Stop()
	nextPing := e.o.Now().Add(e.o.PingInterval)
	var w waker
	for {
		select {
		case <-e.closing:
			e.pass()
			return
		case <-e.ring.Kicked():
			hold := min(e.o.Coalesce, time.Duration(e.clients.Load())*time.Second/wakeBudget)
			if !w.hold(e.closing, hold) {
				e.pass()
				return
			}
			e.ring.Ack()
			e.pass()
			e.markProgress(e.o.Now())
		case <-t.C:
			now := e.o.Now()
			e.markProgress(now)
			if !now.Before(nextPing) {
				nextPing = now.Add(e.o.PingInterval)
				e.heartbeats.Add(1) // then the pass (see heartbeats)
				e.pass()
			}
		}
	}
}

func (e *Engine[M]) markProgress(t time.Time) { e.progress.Store(int64(t.Sub(e.base))) }

// pass is how publishes, heartbeats and Close reach the connections: the
// loop and Writers-1 helpers go through every registered connection once,
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
// owner to look again (writeAgain) after that publish. A connection
// registered after A2 copied reg looks at the ring itself (the drive in
// conn.start) after its registration (join).
func (e *Engine[M]) pass() {
	e.regMu.Lock()
	e.passConns = append(e.passConns[:0], e.reg...)
	e.regMu.Unlock()
	e.cursor.Store(0)
	helpers := min(e.o.Writers-1, (len(e.passConns)-1)/passChunk)
	e.passWG.Add(helpers)
	for range helpers {
		e.passStart <- struct{}{}
	}
	e.work(e.loopBatch)
	e.passWG.Wait()
	clear(e.passConns) // let finished connections go
}

// helper is a pass worker besides the loop; it runs until the loop ends.
func (e *Engine[M]) helper() {
	b := newBatch(maxBatch)
	for range e.passStart {
		e.work(b)
		e.passWG.Done()
	}
}

// work takes chunks of the pass's connections until none are left.
func (e *Engine[M]) work(b *batch) {
	n := int64(len(e.passConns))
	for {
		i := e.cursor.Add(passChunk) - passChunk
		if i >= n {
			return
		}
		for _, c := range e.passConns[i:min(i+passChunk, n)] {
			c.service(b)
		}
	}
}

// register adds c to the connections the passes go through.
func (e *Engine[M]) register(c *conn[M]) {
	e.regMu.Lock()
	c.idx = len(e.reg)
	e.reg = append(e.reg, c)
	e.regMu.Unlock()
}

// unregister takes c out of reg (the last one moves into its place).
func (e *Engine[M]) unregister(c *conn[M]) {
	e.regMu.Lock()
	last := e.reg[len(e.reg)-1]
	e.reg[c.idx] = last
	last.idx = c.idx
	e.reg[len(e.reg)-1] = nil
	e.reg = e.reg[:len(e.reg)-1]
	e.regMu.Unlock()
}

// Mark is the sequence the next publish gets. A connection joined with it
// gets every frame published after Mark returned: take it before the
// upgrade response goes out, so that whatever is published once the
// client has seen its handshake complete reaches it.
func (e *Engine[M]) Mark() uint64 { return e.ring.Last() + 1 }

// Join hands nc, a connection just upgraded (nothing read or written on
// it since), to the engine for good: it reads nc, writes it and closes
// it. The connection gets the frames published from mark on whose topic
// matches one of filters (none: all), after a replay of retained ones
// (Options.Replay), and the replies to session. Join returns once the
// replay is written and nothing else waits, or the connection has ended
// already; false, having sent nc 1001 and closed it, when the engine is
// closing. Called from the upgrading goroutine (net/http's).
func (e *Engine[M]) Join(nc net.Conn, mark uint64, session, remote string, filters []string) bool {
	c := e.newConn(nc, mark, filters, session, remote)
	if !e.join(c) {
		return false
	}
	c.start()
	return true
}

// JoinReplay is Join with replay, complete frames (Encode's), written
// first in place of the retained frames, whatever the filters: a client
// that resumes gets what the caller found for it up to mark, then the
// frames published from mark on. A nil replay is an empty one.
func (e *Engine[M]) JoinReplay(nc net.Conn, mark uint64, session, remote string, filters []string, replay [][]byte) bool {
	c := e.newConn(nc, mark, filters, session, remote)
	c.preset = replay
	if c.preset == nil {
		c.preset = [][]byte{}
	}
	if !e.join(c) {
		return false
	}
	c.start()
	return true
}

// join makes c, just made and owned by the caller (newConn), one of the
// engine's connections: registered, in sessions, counted, announced, with
// its reader running. It is false (and c closed) when the engine is
// closing. It comes before the replay, which may wait on a slow client for
// up to WriteWait: Close(ctx) must find c there, and a replay that times
// out is a drop like any other (OnJoin, then OnLeave). Meanwhile passes
// and replies only mark c: it is owned.
func (e *Engine[M]) join(c *conn[M]) bool {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		// Upgraded just as Close began: the client saw its handshake
		// complete, so it is told 1001 like every other client (c is
		// ours to write: owned since newConn), not dropped.
		_ = c.nc.SetWriteDeadline(e.o.Now().Add(e.o.WriteWait))
		_, _ = c.nc.Write(closeFrame(websocket.CloseGoingAway, ""))
		_ = c.nc.Close()
		return false
	}
	e.startLocked()
	e.wg.Add(1)
	e.mu.Unlock()
	e.sessions.Store(c.session, c)
	e.register(c)
	n := e.clients.Add(1)
	e.counts.connects.Add(1)
	if e.o.OnJoin != nil {
		e.o.OnJoin(c.session, c.remote, int(n))
	}
	go c.readLoop()
	return true
}

// remove unregisters c; called once, by c's finish, when its reader has
// returned and nobody writes to it any more.
func (e *Engine[M]) remove(c *conn[M]) {
	e.sessions.Delete(c.session)
	e.unregister(c)
	n := e.clients.Add(-1)
	e.counts.disconnects.Add(1)
	if e.o.OnLeave != nil {
		e.o.OnLeave(c.session, c.remote, int(n))
	}
	e.wg.Done()
}

// Publish puts f in the ring for every connection: wait-free, it never
// waits for a connection, and costs the same whatever their number. f
// must be fresh (not a frame the ring may still hold) and is not changed
// afterwards. Safe from any goroutine.
func (e *Engine[M]) Publish(f *Frame[M]) { e.ring.Publish(f) }

// heldFrame is a frame PublishHeld keeps, and its ring sequence.
type heldFrame[M any] struct {
	f   *Frame[M]
	seq uint64
}

// PublishHeld publishes f as Publish does and, with hold, keeps it as
// its topic's held frame: a connection that joins later gets it first in
// its replay, however long ago the ring overwrote it (an alert that is
// still active hours later), until PublishHeld publishes on that topic
// again; without hold, that topic holds nothing from then on. Held
// frames are few (one per topic, each kept by its caller's choice).
// Safe from any goroutine; it waits only for other PublishHeld calls
// and joiners' looks at the held frames, never for a connection.
func (e *Engine[M]) PublishHeld(f *Frame[M], hold bool) {
	e.heldMu.Lock()
	defer e.heldMu.Unlock()
	seq := e.ring.Publish(f)
	if hold {
		e.held[f.Topic] = heldFrame[M]{f: f, seq: seq}
	} else {
		delete(e.held, f.Topic)
	}
}

// heldBefore returns the held frames published before seq whose topics
// c wants, oldest first.
func (e *Engine[M]) heldBefore(c *conn[M], seq uint64) []heldFrame[M] {
	e.heldMu.Lock()
	var out []heldFrame[M]
	for _, h := range e.held {
		if h.seq < seq && c.wants(h.f.Topic) {
			out = append(out, h)
		}
	}
	e.heldMu.Unlock()
	slices.SortFunc(out, func(a, b heldFrame[M]) int { return cmp.Compare(a.seq, b.seq) })
	return out
}

// Reply queues f for the connection joined with session only, whatever
// its filters: ErrNoSession when that connection is gone, ErrBusy when
// Memory has no room for f, ErrReplyOverflow when its queue is full (the
// connection is then closed with 1013); each counted in RepliesDropped.
// It never waits. Safe from any goroutine.
func (e *Engine[M]) Reply(session string, f *Frame[M]) error {
	v, ok := e.sessions.Load(session)
	if !ok {
		e.counts.repliesDropped.Add(1)
		return ErrNoSession
	}
	c := v.(*conn[M])
	if !e.o.Memory.Take(int64(len(f.Wire))) {
		e.counts.repliesDropped.Add(1)
		return ErrBusy
	}
	select {
	case c.replyQueue() <- f:
		e.counts.replies.Add(1)
		select {
		case <-c.gone: // finish has emptied the queue: take it back out
			c.dropReplies()
		default:
			c.schedule()
		}
		return nil
	default:
		e.o.Memory.Give(int64(len(f.Wire)))
		e.counts.repliesDropped.Add(1)
		c.requestClose(websocket.CloseTryAgainLater)
		return ErrReplyOverflow
	}
}

// Retained yields the frames the ring holds, newest first (for
// range-over-func). Safe from any goroutine.
func (e *Engine[M]) Retained(yield func(*Frame[M]) bool) {
	last := e.ring.Last()
	size := uint64(e.ring.Size())
	for seq := last; seq > 0 && last-seq < size; seq-- {
		if f, ok := e.ring.Get(seq); ok && !yield(f) {
			return
		}
	}
}

// ConnInfo describes one joined connection, for a list of clients.
type ConnInfo struct {
	Session string
	Remote  string    // the peer's address, as Join was given it
	Since   time.Time // when it joined
	Filters []string  // its topic filters; nil: everything
}

// Conns returns the connections joined now, in no particular order.
// Safe from any goroutine; it holds the registry's lock while it copies,
// as a join or a leave does.
func (e *Engine[M]) Conns() []ConnInfo {
	e.regMu.Lock()
	defer e.regMu.Unlock()
	out := make([]ConnInfo, len(e.reg))
	for i, c := range e.reg {
		out[i] = ConnInfo{Session: c.session, Remote: c.remote, Since: c.since, Filters: c.filters}
	}
	return out
}

// Wanting is the number of joined connections whose filters match topic:
// those a Publish on it now reaches. Safe from any goroutine; it costs a
// look at every connection's filters, so it is for rare callers (a push
// from outside), never for every publish.
func (e *Engine[M]) Wanting(topic string) int {
	e.regMu.Lock()
	defer e.regMu.Unlock()
	n := 0
	for _, c := range e.reg {
		if c.wants(topic) {
			n++
		}
	}
	return n
}

// Has reports whether the connection joined with session is still there.
func (e *Engine[M]) Has(session string) bool {
	_, ok := e.sessions.Load(session)
	return ok
}

// Clients is the number of joined connections that have not ended.
func (e *Engine[M]) Clients() int { return int(e.clients.Load()) }

// Stats returns the counters. Safe from any goroutine.
func (e *Engine[M]) Stats() Stats {
	return Stats{
		Clients:        e.Clients(),
		Connects:       e.counts.connects.Load(),
		Disconnects:    e.counts.disconnects.Load(),
		Replies:        e.counts.replies.Load(),
		Sent:           e.counts.sent.Load(),
		Lost:           e.counts.lost.Load(),
		Dropped:        e.counts.dropped.Load(),
		Stalls:         e.counts.stalls.Load(),
		RepliesDropped: e.counts.repliesDropped.Load(),
		Heartbeats:     e.heartbeats.Load(),
	}
}

// Progress is the time of the loop's last tick (at least once a second
// while it runs; the clock's current time while no Join has started it).
// It carries the clock's monotonic reading (time.Now's), so
// time.Since(Progress()) measures real time even when the wall clock is
// stepped.
func (e *Engine[M]) Progress() time.Time {
	if e.idle.Load() {
		return e.o.Now() // no loop yet: nothing to be stuck
	}
	return e.base.Add(time.Duration(e.progress.Load()))
}

// Closing reports whether Close has been called.
func (e *Engine[M]) Closing() bool {
	select {
	case <-e.closing:
		return true
	default:
		return false
	}
}

// Close sends 1001 (going away) to every connection, refuses new ones
// (Join is false), and waits until every connection's goroutines and the
// loop have finished, or until ctx is done: then it drops the remaining
// connections and returns ctx's error. Publish keeps working (Retained).
// Safe from any goroutine, more than once.
func (e *Engine[M]) Close(ctx context.Context) error {
	e.mu.Lock()
	if !e.closed {
		e.closed = true
		close(e.closing)
		if !e.started {
			// Never joined: no loop will close done, and none may start.
			e.started = true
			close(e.done)
		}
	}
	e.mu.Unlock()
	all := make(chan struct{})
	go func() {
		e.wg.Wait()
		<-e.done
		close(all)
	}()
	select {
	case <-all:
		return nil
	case <-ctx.Done():
		e.sessions.Range(func(_, v any) bool {
			_ = v.(*conn[M]).nc.Close()
			return true
		})
		return ctx.Err()
	}
}
