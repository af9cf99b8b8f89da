package fanout

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
// engine's pass workers write to every connection after publishes and
// heartbeats, without waiting (see Engine.pass and service); a goroutine
// (drive) is started for a connection only when a write would wait (a
// full socket buffer), for replies, pongs and closing.
//
// Memory per idle connection: the reader stays on the smallest goroutine
// stack (2 KiB: its call chain is kept short, see readLoop); there is no
// per-connection read or write buffer (frames are read exactly, and
// written from the shared encoded frames through the pass workers'
// batches); the reply queue is made at the first reply. What a client can
// make the engine hold beyond that follows the bytes it sent (a frame
// header announcing 64 KiB costs nothing until the payload arrives) and
// is bounded by Options.Memory: partial messages and queued replies.
type conn[M any] struct {
	e       *Engine[M]
	nc      net.Conn        // the socket, after gorilla's handshake
	raw     syscall.RawConn // nc's descriptor for non-blocking writes; nil: always drive
	session string
	remote  string
	filters []string // MQTT filters; nil: everything
	idx     int      // its index in Engine.reg; guarded by Engine.regMu

	// rd is the writer's ring cursor: it starts at the Mark the caller
	// took before the upgrade response (so nothing published after the
	// client sees the handshake complete is missed); used by the owner.
	rd Reader[Frame[M]]

	// wstate is wOwned|wAgain (claim, release). Its CAS steps are what
	// pass the owner's fields from one owner to the next: a release
	// happens-before the next claim (sync/atomic is sequentially
	// consistent).
	wstate atomic.Uint32

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
	rest     [][]byte // what a non-blocking write left: the first frame cut where it stopped
	restSent int      // data frames in rest (for Stats.Sent)
	pingGen  uint64   // the heartbeat generation last answered
	wdl      int64    // the write deadline set on nc (unix ns)
}

func (e *Engine[M]) newConn(nc net.Conn, mark uint64, filters []string, session, remote string) *conn[M] {
	c := &conn[M]{
		e:          e,
		nc:         nc,
		session:    session,
		remote:     remote,
		filters:    filters,
		rd:         e.ring.ReaderAt(mark),
		readerDone: make(chan struct{}),
		gone:       make(chan struct{}),
		room:       make(chan struct{}, 1),
		pingGen:    e.hbGen.Load(),
	}
	// Owned by Join from the start: through start, it writes the replay,
	// then becomes the first drive.
	c.wstate.Store(wOwned)
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
// already, tells the owner to look again (wAgain) and returns false.
func (c *conn[M]) claim() bool {
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
func (c *conn[M]) release() bool {
	if c.wstate.CompareAndSwap(wOwned, 0) {
		return true
	}
	c.wstate.Store(wOwned) // it was wOwned|wAgain; only the owner changes that
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

// service is a pass worker's turn at c (see Engine.pass): write what is
// waiting without ever waiting for the socket, so that one worker serves
// thousands of connections. When a write would wait (the client's socket
// buffer is full), or c must close, c is handed to a drive goroutine,
// with what was left unwritten. b is the worker's.
func (c *conn[M]) service(b *batch) {
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
func (c *conn[M]) drive() {
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
func (c *conn[M]) flush(bt *batch, block bool) flushResult {
	e := c.e
	select {
	case <-e.closing:
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
		e.st.sent.Add(uint64(c.restSent))
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
			e.st.stalls.Add(1)
			return flushHandOff
		}
	}
	e.st.sent.Add(uint64(sent))
	return flushMore // maybe more waiting
}

// collect appends what is waiting to b, up to cap(b) (it never grows b);
// sent counts the data frames.
func (c *conn[M]) collect(b [][]byte) (_ [][]byte, sent int) {
	e := c.e
	if len(b) < cap(b) {
		if p := c.pong.Swap(nil); p != nil {
			b = append(b, frame(opPong, *p))
		}
	}
	if g := e.hbGen.Load(); g != c.pingGen && len(b) < cap(b) {
		c.pingGen = g
		b = append(b, pingFrame)
	}
	if q := c.replies.Load(); q != nil {
		for len(b) < cap(b) {
			f, ok := c.takeReply(*q)
			if !ok {
				break
			}
			b = append(b, f.Wire)
			sent++
		}
	}
	for len(b) < cap(b) {
		f, _, lost, ok := c.rd.Next()
		if lost > 0 {
			e.st.lost.Add(lost)
			if e.o.DisconnectLapped {
				if c.closeCode.CompareAndSwap(0, websocket.ClosePolicyViolation) {
					e.st.dropped.Add(1)
				}
				break
			}
		}
		if !ok {
			break
		}
		if c.wants(f.Topic) {
			b = append(b, f.Wire)
			sent++
		}
	}
	return b, sent
}

// wants reports whether c's filters match topic (no filters: everything).
func (c *conn[M]) wants(topic string) bool {
	if len(c.filters) == 0 {
		return true
	}
	for _, f := range c.filters {
		if c.e.o.Match(f, topic) {
			return true
		}
	}
	return false
}

// writeReplies writes the queued replies of a connection about to close,
// with blocking writes; false when a write failed.
func (c *conn[M]) writeReplies(bt *batch) bool {
	q := c.replies.Load()
	if q == nil {
		return true
	}
	for {
		b := bt.frames[:0]
		for len(b) < cap(b) {
			f, ok := c.takeReply(*q)
			if !ok {
				break
			}
			b = append(b, f.Wire)
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
		c.e.st.sent.Add(uint64(len(b)))
	}
}

// keepRest looks at a non-blocking write of b that wrote n bytes. When
// some of b is left, it keeps a copy of what is left in c.rest (the batch
// is the worker's, and is reused) and returns false.
func (c *conn[M]) keepRest(b [][]byte, n, sent int) bool {
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
func (c *conn[M]) deadline() {
	o := &c.e.o
	if now := o.Now().UnixNano(); c.wdl-now < int64(o.WriteWait/2) {
		c.wdl = now + int64(o.WriteWait)
		_ = c.nc.SetWriteDeadline(time.Unix(0, c.wdl))
	}
}

// write writes whole frames with one writev (net.Buffers on a TCP
// connection), waiting for the socket up to the write deadline.
func (c *conn[M]) write(batch [][]byte) error {
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
// waits, and a pass makes thousands in a row. Through Syscall each one
// would be a chance for the runtime's monitor thread to hand the worker's
// P to another thread, and would keep that monitor busy.
func (c *conn[M]) tryWrite(bt *batch, frames [][]byte) (int, error) {
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

// start is the first owner's work, after join (see Join): the retained messages,
// then what was published since c's cursor was taken; from then on the
// passes and schedule write.
func (c *conn[M]) start() {
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
func (c *conn[M]) replay() bool {
	e := c.e
	if e.o.Replay <= 0 {
		return true
	}
	start := c.rd.Cursor()
	size := uint64(e.ring.Size())
	var picked []*Frame[M]
	perTopic := map[string]int{}
	for seq := start - 1; seq > 0 && start-seq <= size; seq-- {
		f, ok := e.ring.Get(seq)
		if !ok {
			continue // being written, or overwritten by a concurrent publish
		}
		if perTopic[f.Topic] >= e.o.Replay || !c.wants(f.Topic) {
			continue
		}
		perTopic[f.Topic]++
		picked = append(picked, f)
	}
	for len(picked) > 0 {
		n := min(len(picked), maxBatch)
		batch := make([][]byte, 0, n)
		for i := len(picked) - 1; i >= len(picked)-n; i-- {
			batch = append(batch, picked[i].Wire)
		}
		picked = picked[:len(picked)-n]
		if err := c.write(batch); err != nil {
			c.dropSlow(err)
			return false
		}
		e.st.sent.Add(uint64(n))
	}
	return true
}

// dropSlow records a failed write: a timeout means the client did not keep
// up (counted in Dropped); anything else means it is gone. A client being
// closed for lapping (websocket.ClosePolicyViolation) was counted when that was decided:
// collect may still have handed over frames (a ping, replies) whose write
// then times out.
func (c *conn[M]) dropSlow(err error) {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() && c.closeCode.Load() != websocket.ClosePolicyViolation {
		c.e.st.dropped.Add(1)
	}
}

// close sends a close frame with code (unless codeAbort), waits up to
// CloseGrace for the peer's close (the reader returns when it arrives),
// so that the peer reads our close frame before the TCP connection goes.
func (c *conn[M]) close(code int) {
	if code == codeAbort {
		return
	}
	if err := c.write([][]byte{closeFrame(code, "")}); err != nil {
		return
	}
	t := time.NewTimer(CloseGrace)
	defer t.Stop()
	select {
	case <-c.readerDone:
	case <-t.C:
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
