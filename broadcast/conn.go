package broadcast

import (
	"errors"
	"net"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/gorilla/websocket"
)

// codeAbort asks the writer to drop the connection without a close frame
// (the peer is gone, or a write failed).
const codeAbort = -1

// Writer states (conn.wstate).
const (
	// wOwned: one goroutine owns the connection's writes (a pass worker,
	// or a drive goroutine). Only the owner writes to nc, reads the ring
	// cursor, or touches rest, pingGen and wdl. A finished connection
	// stays owned for good, so nobody writes to it again.
	wOwned uint32 = 1 << iota
	// wAgain: someone asked for a flush while the connection was owned;
	// the owner looks again before it lets go (see release).
	wAgain
)

// conn is one client connection. It has one goroutine of its own, the
// reader (readLoop). Writing has none while the client keeps up: the
// server's pass workers write to every connection after publishes and
// heartbeats, without waiting (see Server.pass and service); a goroutine
// (drive) is started for a connection only when a write would wait (a
// full socket buffer), for session replies, pongs and closing.
type conn struct {
	s       *Server
	nc      net.Conn        // the socket, after gorilla's handshake
	raw     syscall.RawConn // nc's descriptor for non-blocking writes; nil: always drive
	session string
	remote  string
	filters []string // MQTT filters; nil: everything
	idx     int      // its index in Server.reg; guarded by Server.regMu

	// rd is the writer's ring cursor: created in ServeHTTP before the
	// upgrade response (so nothing published after the client sees the
	// handshake complete is missed), then used by the owner.
	rd Reader[encoded]

	// wstate is wOwned|wAgain (claim, release). Its CAS steps are what
	// pass the owner's fields from one owner to the next: a release
	// happens-before the next claim (sync/atomic is sequentially
	// consistent).
	wstate atomic.Uint32

	// replies: session replies, bounded; Publish sends without blocking.
	// Made at the first reply (most clients never get one): written once
	// by CAS (replyQueue), read by Publish and the owner.
	replies atomic.Pointer[chan *encoded]
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
	rest     [][]byte // what a non-blocking write left: the first frame cut where it stopped
	restSent int      // data frames in rest (for ServerStats.Sent)
	pingGen  uint64   // the heartbeat generation last answered
	wdl      int64    // the write deadline set on nc (unix ns)
}

func (s *Server) newConn(nc net.Conn, rd Reader[encoded], filters []string, remote string) *conn {
	c := &conn{
		s:          s,
		nc:         nc,
		session:    s.ids.next(),
		remote:     remote,
		filters:    filters,
		rd:         rd,
		readerDone: make(chan struct{}),
		gone:       make(chan struct{}),
		room:       make(chan struct{}, 1),
		pingGen:    s.hbGen.Load(),
	}
	// Owned by ServeHTTP from the start: through start, it writes the
	// replay, then becomes the first drive.
	c.wstate.Store(wOwned)
	if sc, ok := nc.(syscall.Conn); ok {
		if raw, err := sc.SyscallConn(); err == nil {
			c.raw = raw
		}
	}
	return c
}

// replyQueue returns c's reply queue, making it on first use.
func (c *conn) replyQueue() chan *encoded {
	if q := c.replies.Load(); q != nil {
		return *q
	}
	q := make(chan *encoded, c.s.o.ReplyQueue)
	if !c.replies.CompareAndSwap(nil, &q) {
		return *c.replies.Load()
	}
	return q
}

// claim makes the caller the owner of c's writes, or, when c is owned
// already, tells the owner to look again (wAgain) and returns false.
func (c *conn) claim() bool {
	for {
		st := c.wstate.Load()
		if st&wOwned == 0 {
			if c.wstate.CompareAndSwap(st, wOwned) {
				return true
			}
			continue
		}
		if st&wAgain != 0 || c.wstate.CompareAndSwap(st, st|wAgain) {
			return false
		}
	}
}

// release gives up ownership after a flush found nothing to do. It fails
// (and clears wAgain: the owner flushes again and keeps ownership) when
// someone asked for a flush meanwhile.
//
// Ordering: a requester first makes its work visible (a reply queued, a
// pong stored, a close code, a publish's W3; then the pass), then claims.
// If its claim's CAS comes before release's, release sees wAgain; if
// after, the claim succeeds and the requester's side flushes. Either way
// somebody flushes after the work was made visible.
func (c *conn) release() bool {
	if c.wstate.CompareAndSwap(wOwned, 0) {
		return true
	}
	c.wstate.Store(wOwned) // it was wOwned|wAgain; only the owner changes that
	return false
}

// schedule makes sure that what is waiting for c (a reply, a pong, a close
// request) gets written: when nobody owns c's writes, a drive goroutine is
// started; otherwise the owner looks again before it lets go.
func (c *conn) schedule() {
	if c.claim() {
		go c.drive()
	}
}

// requestClose asks the writer to close with code (first request wins).
func (c *conn) requestClose(code int) {
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
func (c *conn) readLoop() {
	defer close(c.readerDone)
	fr := &frameReader{r: c.nc, limit: c.s.o.ReadLimit, budget: c.s.o.Budget}
	defer fr.release()
	for {
		_ = c.nc.SetReadDeadline(c.s.o.Now().Add(c.s.o.PingInterval + c.s.o.PongTimeout))
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
func (c *conn) handle(op byte, p []byte, err error) bool {
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
		if c.closeCode.Load() == 0 && c.s.o.OnMessage != nil {
			if !c.waitRoom() {
				return false
			}
			c.s.o.OnMessage(ParseIncoming(c.session, p, op == opBinary))
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
func (c *conn) waitRoom() bool {
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
// reply queue: it gives the reply's bytes back to the budget and tells a
// waiting reader there is room.
func (c *conn) takeReply(q chan *encoded) (*encoded, bool) {
	select {
	case e := <-q:
		c.s.o.Budget.give(int64(len(e.frame)))
		select {
		case c.room <- struct{}{}:
		default:
		}
		return e, true
	default:
		return nil, false
	}
}

// dropReplies empties the reply queue of a finished connection.
func (c *conn) dropReplies() {
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
func (c *conn) drain() {
	var b [128]byte
	for {
		if _, err := c.nc.Read(b[:]); err != nil {
			return
		}
	}
}

// service is a pass worker's turn at c (see Server.pass): write what is
// waiting without ever waiting for the socket, so that one worker serves
// thousands of connections. When a write would wait (the client's socket
// buffer is full), or c must close, c is handed to a drive goroutine,
// with what was left unwritten. b is the worker's.
func (c *conn) service(b *batch) {
	if !c.claim() {
		return // its owner looks again (wAgain)
	}
	if c.raw == nil {
		go c.drive()
		return
	}
	for {
		switch c.flush(b, false) {
		case flushMore:
			continue
		case flushIdle:
			if c.release() {
				return
			}
		default: // flushHandOff
			go c.drive()
			return
		}
	}
}

// drive is the owner of c's writes on a goroutine of its own, with
// blocking writes (each bounded by WriteWait), until nothing is waiting;
// or until the connection is finished: then it closes it and unregisters.
// The caller has claimed c.
func (c *conn) drive() {
	b := &batch{frames: make([][]byte, 0, driveBatch)}
	for {
		switch c.flush(b, true) {
		case flushMore:
			continue
		case flushIdle:
			if c.release() {
				return
			}
		default: // flushEnd
			c.finish() // c stays owned: nobody writes to it again
			return
		}
	}
}

type flushResult int

const (
	flushIdle    flushResult = iota // nothing was waiting
	flushMore                       // wrote (or must close): look again
	flushEnd                        // the connection is finished (drive)
	flushHandOff                    // needs a drive goroutine (service)
)

// batch is a writer's scratch space: the frames of one write, and (pass
// workers only) what a non-blocking writev needs, made once so that a
// write allocates nothing.
type batch struct {
	frames [][]byte

	iov     []syscall.Iovec
	writev  func(fd uintptr) bool // b.doWritev, for RawConn.Write
	written int                   // doWritev's result
	err     error
}

func newBatch(n int) *batch {
	b := &batch{frames: make([][]byte, 0, n), iov: make([]syscall.Iovec, 0, n)}
	b.writev = b.doWritev
	return b
}

// doWritev writes b.iov to fd and never waits for the socket (drive does
// that): EAGAIN and EINTR write 0 bytes.
func (b *batch) doWritev(fd uintptr) bool {
	r, _, e := syscall.RawSyscall(syscall.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&b.iov[0])), uintptr(len(b.iov)))
	switch e {
	case 0:
		b.written = int(r)
	case syscall.EAGAIN, syscall.EINTR:
	default:
		b.err = e
	}
	return true
}

// flush writes what is waiting, or closes the connection when asked to.
// With block false it never waits: a write the socket cannot take whole
// keeps the rest in c.rest and answers flushHandOff, as does a close.
func (c *conn) flush(bt *batch, block bool) flushResult {
	s := c.s
	select {
	case <-s.closing:
		c.requestClose(websocket.CloseGoingAway)
	default:
	}
	code := int(c.closeCode.Load())
	if !block && code != 0 {
		return flushHandOff
	}
	if code == codeAbort {
		return flushEnd
	}
	if len(c.rest) > 0 {
		// A frame was cut by a non-blocking write: its rest goes before
		// anything else, a close frame included. (Only a drive sees rest:
		// service hands off as soon as it keeps some, and drive empties it
		// before it lets go.)
		err := c.write(c.rest)
		clear(c.rest)
		c.rest = nil
		if err != nil {
			c.dropSlow(err)
			return flushEnd
		}
		s.st.sent.Add(uint64(c.restSent))
		return flushMore
	}
	if code != 0 {
		// What the client asked before its close (or its fault) is
		// answered first.
		if !c.writeReplies(bt) {
			return flushEnd
		}
		c.close(code)
		return flushEnd
	}
	b, sent := c.collect(bt.frames[:0])
	defer clear(b) // drop the frame references
	switch {
	case len(b) == 0 && c.closeCode.Load() != 0:
		return flushMore // collect asked to close
	case len(b) == 0:
		return flushIdle
	case block:
		if err := c.write(b); err != nil {
			c.dropSlow(err)
			return flushEnd
		}
	default:
		n, err := c.tryWrite(bt, b)
		if err != nil {
			c.closeCode.CompareAndSwap(0, codeAbort)
			return flushHandOff
		}
		if !c.keepRest(b, n, sent) {
			s.st.stalls.Add(1)
			return flushHandOff
		}
	}
	s.st.sent.Add(uint64(sent))
	return flushMore // maybe more waiting
}

// collect appends what is waiting to b, up to cap(b) (it never grows b);
// sent counts the data frames.
func (c *conn) collect(b [][]byte) (_ [][]byte, sent int) {
	s := c.s
	if len(b) < cap(b) {
		if p := c.pong.Swap(nil); p != nil {
			b = append(b, frame(opPong, *p))
		}
	}
	if g := s.hbGen.Load(); g != c.pingGen && len(b) < cap(b) {
		c.pingGen = g
		b = append(b, pingFrame)
	}
	if q := c.replies.Load(); q != nil {
		for len(b) < cap(b) {
			e, ok := c.takeReply(*q)
			if !ok {
				break
			}
			b = append(b, e.frame)
			sent++
		}
	}
	for len(b) < cap(b) {
		e, _, lost, ok := c.rd.Next()
		if lost > 0 {
			s.st.lost.Add(lost)
			if s.o.Lapped == DisconnectLapped {
				if c.closeCode.CompareAndSwap(0, websocket.ClosePolicyViolation) {
					s.st.dropped.Add(1)
				}
				break
			}
		}
		if !ok {
			break
		}
		if matchAny(c.filters, e.msg.Topic) {
			b = append(b, e.frame)
			sent++
		}
	}
	return b, sent
}

// writeReplies writes the queued replies of a connection about to close,
// with blocking writes; false when a write failed.
func (c *conn) writeReplies(bt *batch) bool {
	q := c.replies.Load()
	if q == nil {
		return true
	}
	for {
		b := bt.frames[:0]
		for len(b) < cap(b) {
			e, ok := c.takeReply(*q)
			if !ok {
				break
			}
			b = append(b, e.frame)
		}
		if len(b) == 0 {
			return true
		}
		err := c.write(b)
		clear(b)
		if err != nil {
			c.dropSlow(err)
			return false
		}
		c.s.st.sent.Add(uint64(len(b)))
	}
}

// keepRest looks at a non-blocking write of b that wrote n bytes. When
// some of b is left, it keeps a copy of what is left in c.rest (the batch
// is the worker's, and is reused) and returns false.
func (c *conn) keepRest(b [][]byte, n, sent int) bool {
	for i, f := range b {
		if n < len(f) {
			c.rest = append([][]byte{f[n:]}, b[i+1:]...)
			c.restSent = sent
			return false
		}
		n -= len(f)
	}
	return true
}

// deadline keeps a write deadline on nc: every write must finish within
// WriteWait. It is moved only when less than half of WriteWait is left,
// which saves a timer update per write: a write then has between
// WriteWait/2 and WriteWait. (A non-blocking write needs it too: an
// expired deadline fails every write on the socket.)
func (c *conn) deadline() {
	o := &c.s.o
	if now := o.Now().UnixNano(); c.wdl-now < int64(o.WriteWait/2) {
		c.wdl = now + int64(o.WriteWait)
		_ = c.nc.SetWriteDeadline(time.Unix(0, c.wdl))
	}
}

// write writes whole frames with one writev (net.Buffers on a TCP
// connection), waiting for the socket up to the write deadline.
func (c *conn) write(batch [][]byte) error {
	c.deadline()
	if len(batch) == 1 {
		_, err := c.nc.Write(batch[0])
		return err
	}
	nb := net.Buffers(batch)
	_, err := nb.WriteTo(c.nc)
	return err
}

// tryWrite writes frames with one writev that does not wait for the
// socket: it returns the bytes written, which are fewer than the frames
// hold when the socket buffer is full (0 on EAGAIN). An error means the
// connection is broken.
//
// It makes the system call with RawSyscall, without telling the Go
// scheduler (entersyscall): the socket is non-blocking, so the call never
// waits (on loopback it is the whole TCP path, about 8 us here), and a
// pass makes thousands in a row. With Syscall each one was a chance for
// the runtime's monitor thread to hand the worker's P to another thread,
// and keeping that monitor awake took 10 % of the server's CPU in a
// profile at 5000 clients.
func (c *conn) tryWrite(bt *batch, frames [][]byte) (int, error) {
	c.deadline()
	bt.iov = bt.iov[:0]
	for _, f := range frames {
		v := syscall.Iovec{Base: &f[0]} // a frame is never empty (its header)
		v.SetLen(len(f))
		bt.iov = append(bt.iov, v)
	}
	bt.written, bt.err = 0, nil // when Write fails before it calls writev
	err := c.raw.Write(bt.writev)
	clear(bt.iov) // drop the references to the frames
	if err == nil {
		err = bt.err
	}
	return bt.written, err
}

// start is the first owner's work, after join: the retained messages,
// then what was published since c's cursor was taken; from then on the
// passes and schedule write.
func (c *conn) start() {
	if !c.replay() {
		c.finish() // c stays owned: nobody writes to it again
		return
	}
	c.drive()
}

// replay sends a late joiner the newest Replay messages of each topic it
// subscribes to, oldest first, from the retained slots before its cursor.
// start calls it while it owns c's writes, before its first drive
// (so nobody else writes yet).
func (c *conn) replay() bool {
	s := c.s
	if s.o.Replay <= 0 {
		return true
	}
	start := c.rd.Cursor()
	size := uint64(s.ring.Size())
	var picked []*encoded
	perTopic := map[string]int{}
	for seq := start - 1; seq > 0 && start-seq <= size; seq-- {
		e, ok := s.ring.Get(seq)
		if !ok {
			continue // being written, or overwritten by a concurrent publish
		}
		if perTopic[e.msg.Topic] >= s.o.Replay || !matchAny(c.filters, e.msg.Topic) {
			continue
		}
		perTopic[e.msg.Topic]++
		picked = append(picked, e)
	}
	for len(picked) > 0 {
		n := min(len(picked), maxBatch)
		batch := make([][]byte, 0, n)
		for i := len(picked) - 1; i >= len(picked)-n; i-- {
			batch = append(batch, picked[i].frame)
		}
		picked = picked[:len(picked)-n]
		if err := c.write(batch); err != nil {
			c.dropSlow(err)
			return false
		}
		s.st.sent.Add(uint64(n))
	}
	return true
}

// dropSlow records a failed write: a timeout means the client did not keep
// up (counted in Dropped); anything else means it is gone. A client being
// closed for lapping (websocket.ClosePolicyViolation) was counted when that was decided:
// collect may still have handed over frames (a ping, replies) whose write
// then times out.
func (c *conn) dropSlow(err error) {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() && c.closeCode.Load() != websocket.ClosePolicyViolation {
		c.s.st.dropped.Add(1)
	}
}

// close sends a close frame with code (unless codeAbort), waits up to
// closeGrace for the peer's close (the reader returns when it arrives),
// so that the peer reads our close frame before the TCP connection goes.
func (c *conn) close(code int) {
	if code == codeAbort {
		return
	}
	if err := c.write([][]byte{closeFrame(code, "")}); err != nil {
		return
	}
	t := time.NewTimer(closeGrace)
	defer t.Stop()
	select {
	case <-c.readerDone:
	case <-t.C:
	}
}

// finish tears the connection down: closes the socket (which ends the
// reader), waits for the reader, and unregisters.
func (c *conn) finish() {
	close(c.gone)
	_ = c.nc.Close()
	<-c.readerDone
	c.dropReplies()
	c.s.remove(c)
}
