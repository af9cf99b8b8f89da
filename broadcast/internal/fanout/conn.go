package fanout

import (
	"net"
	"sync/atomic"
	"syscall"
	"time"
)

// codeAbort asks the writer to drop the connection without a close frame
// (the peer is gone, or a write failed).
const codeAbort = -1

// Writer states (conn.writeState).
const (
	// writeOwned: one goroutine owns the connection's writes (a pass worker,
	// or a drive goroutine). Only the owner writes to nc, reads the ring
	// cursor, or touches rest, heartbeatsSeen and writeDeadline. A
	// finished connection stays owned for good, so nobody writes to it
	// again.
	writeOwned uint32 = 1 << iota
	// writeAgain: someone asked for a flush while the connection was owned;
	// the owner looks again before it lets go (see release).
	writeAgain
)

// conn is one client connection. It has one goroutine of its own, the
// reader (readLoop). Writing has none while the client keeps up: the
// engine's pass workers write to every connection after publishes and
// heartbeats, without waiting (see Engine.pass and service); a goroutine
// (drive) is started for a connection only when a write would wait (a
// full socket buffer), for replies, pongs and closing. What it costs at
// rest is in the package doc (Memory per connection).
type conn[M any] struct {
	e       *Engine[M]
	nc      net.Conn        // the socket, after gorilla's handshake
	raw     syscall.RawConn // nc's descriptor for non-blocking writes; nil: always drive
	session string
	remote  string
	since   time.Time // when it joined (Options.Now)
	filters []string  // MQTT filters; nil: everything
	idx     int       // its index in Engine.reg; guarded by Engine.regMu
	// preset, when not nil, is the replay JoinReplay was given: written
	// instead of the retained frames, then dropped. Owned by start.
	preset [][]byte

	// rd is the writer's ring cursor: it starts at the Mark the caller
	// took before the upgrade response (so nothing published after the
	// client sees the handshake complete is missed); used by the owner.
	rd Reader[Frame[M]]

	// writeState is writeOwned|writeAgain (claim, release). Its CAS steps are what
	// pass the owner's fields from one owner to the next: a release
	// happens-before the next claim (sync/atomic is sequentially
	// consistent).
	writeState atomic.Uint32

	// replies: session replies, bounded; Publish sends without blocking.
	// Made at the first reply (most clients never get one): written once
	// by CAS (replyQueue), read by Publish and the owner.
	replies atomic.Pointer[chan *Frame[M]]
	// readerDone is closed when the reader goroutine returns.
	readerDone chan struct{}
	// gone is closed by finish before it waits for the reader: a reader
	// waiting for room in the reply queue gives up, and a Publish that
	// queued a reply after finish emptied the queue takes it back out.
	gone chan struct{}
	// room gets a token (never blocking: one is enough) each time the
	// owner takes replies out of the queue; the reader waits on it while
	// the queue is full (waitRoom).
	room chan struct{}
	// pong: a ping's payload the writer must answer. Written by the
	// reader, taken by the owner (Swap).
	pong atomic.Pointer[[]byte]
	// closeCode: the first close request wins (CAS from 0): a close code to
	// send, or codeAbort. Written by anyone, acted on by the owner.
	closeCode atomic.Int32

	// Owner only.
	rest           [][]byte // what a non-blocking write left: the first frame cut where it stopped
	restSent       int      // data frames in rest (for Stats.Sent)
	heartbeatsSeen uint64   // the heartbeat generation last answered
	writeDeadline  int64    // the write deadline set on nc (unix ns)
}

func (e *Engine[M]) newConn(nc net.Conn, mark uint64, filters []string, session, remote string) *conn[M] {
	c := &conn[M]{
		e:              e,
		nc:             nc,
		session:        session,
		remote:         remote,
		since:          e.o.Now(),
		filters:        filters,
		rd:             e.ring.ReaderAt(mark),
		readerDone:     make(chan struct{}),
		gone:           make(chan struct{}),
		room:           make(chan struct{}, 1),
		heartbeatsSeen: e.heartbeats.Load(),
	}
	// Owned by Join from the start: through start, it writes the replay,
	// then becomes the first drive.
	c.writeState.Store(writeOwned)
	if sc, ok := nc.(syscall.Conn); ok {
		if raw, err := sc.SyscallConn(); err == nil {
			c.raw = raw
		}
	}
	return c
}

// replyQueue returns c's reply queue, making it on first use.
func (c *conn[M]) replyQueue() chan *Frame[M] {
	if q := c.replies.Load(); q != nil {
		return *q
	}
	q := make(chan *Frame[M], c.e.o.ReplyQueue)
	if !c.replies.CompareAndSwap(nil, &q) {
		return *c.replies.Load()
	}
	return q
}

// claim makes the caller the owner of c's writes, or, when c is owned
// already, tells the owner to look again (writeAgain) and returns false.
func (c *conn[M]) claim() bool {
	for {
		st := c.writeState.Load()
		if st&writeOwned == 0 {
			if c.writeState.CompareAndSwap(st, writeOwned) {
				return true
			}
			continue
		}
		if st&writeAgain != 0 || c.writeState.CompareAndSwap(st, st|writeAgain) {
			return false
		}
	}
}

// release gives up ownership after a flush found nothing to do. It fails
// (and clears writeAgain: the owner flushes again and keeps ownership) when
// someone asked for a flush meanwhile.
//
// Ordering: a requester first makes its work visible (a reply queued, a
// pong stored, a close code, a publish's W3; then the pass), then claims.
// If its claim's CAS comes before release's, release sees writeAgain; if
// after, the claim succeeds and the requester's side flushes. Either way
// somebody flushes after the work was made visible.
func (c *conn[M]) release() bool {
	if c.writeState.CompareAndSwap(writeOwned, 0) {
		return true
	}
	c.writeState.Store(writeOwned) // it was writeOwned|writeAgain; only the owner changes that
	return false
}

// schedule makes sure that what is waiting for c (a reply, a pong, a close
// request) gets written: when nobody owns c's writes, a drive goroutine is
// started; otherwise the owner looks again before it lets go.
func (c *conn[M]) schedule() {
	if c.claim() {
		go c.drive()
	}
}

// requestClose asks the writer to close with code (first request wins).
func (c *conn[M]) requestClose(code int) {
	if c.closeCode.CompareAndSwap(0, int32(code)) {
		c.schedule()
	}
}

// readLoop reads the client's frames until the connection ends: it hands
// pings to the writer, delivers messages to OnMessage, enforces the read
// limit, and keeps the pong deadline: any frame from the client proves it
// alive for another PingInterval+PongTimeout.
//
// Stack: the reader is an idle connection's only goroutine. It waits in a
// chain short enough for the smallest goroutine stack (readLoop -> next ->
// header -> Read); handling a frame happens after next returns, in handle.
func (c *conn[M]) readLoop() {
	defer close(c.readerDone)
	fr := &frameReader{r: c.nc, limit: c.e.o.ReadLimit, mem: c.e.o.Memory}
	defer fr.release()
	for {
		_ = c.nc.SetReadDeadline(c.e.o.Now().Add(c.e.o.PingInterval + c.e.o.PongTimeout))
		op, p, err := fr.next()
		ok := c.handle(op, p, err)
		fr.handled()
		if !ok {
			return
		}
	}
}

// handle acts on one event from the frame reader; false ends the reader.
//
//go:noinline
func (c *conn[M]) handle(op byte, p []byte, err error) bool {
	if err != nil {
		if code, ok := isProtocol(err); ok {
			c.requestClose(code)
			c.drain()
			return false
		}
		c.requestClose(codeAbort) // gone, or silent past the deadline
		return false
	}
	switch op {
	case opPing:
		c.pong.Store(&p)
		c.schedule()
	case opPong:
	case opClose:
		// Echo the peer's code (RFC 6455 5.5.1), or answer its fault.
		code, err := closeCode(p)
		if err != nil {
			code, _ = isProtocol(err)
		}
		c.requestClose(code) // if we closed first, this was the answer
		return false
	default:
		if c.closeCode.Load() == 0 && c.e.o.OnMessage != nil {
			if !c.waitRoom() {
				return false
			}
			c.e.o.OnMessage(c.session, p, op == opBinary)
		}
	}
	return true
}

// waitRoom holds the reader while c's reply queue is full, so that a client
// that sends requests faster than it reads its replies is slowed down (its
// socket is not read: TCP pushes back on it) rather than closed. Each
// request gets its reply queued without overflow. A client that stops
// reading altogether is dropped by its writer after WriteWait; then (and
// when the connection ends for any other reason) waitRoom returns false.
func (c *conn[M]) waitRoom() bool {
	q := c.replies.Load()
	if q == nil {
		return true
	}
	for len(*q) == cap(*q) {
		select {
		case <-c.room:
		case <-c.gone:
			return false
		}
	}
	return true
}

// takeReply is the owner's (or, after finish, anyone's) receive from the
// reply queue: it gives the reply's bytes back to Memory and tells a
// waiting reader there is room.
func (c *conn[M]) takeReply(q chan *Frame[M]) (*Frame[M], bool) {
	select {
	case f := <-q:
		c.e.o.Memory.Give(int64(len(f.Wire)))
		select {
		case c.room <- struct{}{}:
		default:
		}
		return f, true
	default:
		return nil, false
	}
}

// dropReplies empties the reply queue of a finished connection.
func (c *conn[M]) dropReplies() {
	if q := c.replies.Load(); q != nil {
		for {
			if _, ok := c.takeReply(*q); !ok {
				return
			}
		}
	}
}

// drain reads and drops what the peer still sends after a protocol error
// (the frame boundaries are lost), until it closes or the writer drops
// the connection: closing a socket with unread data would reset it, and
// the peer might never see our close frame.
func (c *conn[M]) drain() {
	var b [128]byte
	for {
		if _, err := c.nc.Read(b[:]); err != nil {
			return
		}
	}
}

// finish tears the connection down: closes the socket (which ends the
// reader), waits for the reader, and unregisters.
func (c *conn[M]) finish() {
	close(c.gone)
	_ = c.nc.Close()
	<-c.readerDone
	c.dropReplies()
	c.e.remove(c)
}
