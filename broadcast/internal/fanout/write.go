package fanout

import (
	"errors"
	"net"
	"syscall"
	"time"
	"unsafe"

	"github.com/gorilla/websocket"
)

// service is a pass worker's turn at c (see Engine.pass): write what is
// waiting without ever waiting for the socket, so that one worker serves
// thousands of connections. When a write would wait (the client's socket
// buffer is full), or c must close, c is handed to a drive goroutine,
// with what was left unwritten. b is the worker's.
func (c *conn[M]) service(b *batch) {
	if !c.claim() {
		return // its owner looks again (writeAgain)
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
		e.counts.sent.Add(uint64(c.restSent))
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
			e.counts.stalls.Add(1)
			return flushHandOff
		}
	}
	e.counts.sent.Add(uint64(sent))
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
	if g := e.heartbeats.Load(); g != c.heartbeatsSeen && len(b) < cap(b) {
		c.heartbeatsSeen = g
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
			e.counts.lost.Add(lost)
			if e.o.DisconnectLapped {
				if c.closeCode.CompareAndSwap(0, websocket.ClosePolicyViolation) {
					e.counts.dropped.Add(1)
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
		c.e.counts.sent.Add(uint64(len(b)))
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
	if now := o.Now().UnixNano(); c.writeDeadline-now < int64(o.WriteWait/2) {
		c.writeDeadline = now + int64(o.WriteWait)
		_ = c.nc.SetWriteDeadline(time.Unix(0, c.writeDeadline))
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

// start is the first owner's work, after join (see Join): the retained
// messages, then what was published since c's cursor was taken; from then
// on the passes and schedule write.
func (c *conn[M]) start() {
	if !c.replay() {
		c.finish() // c stays owned: nobody writes to it again
		return
	}
	c.drive()
}

// replay sends a late joiner the held frames of the topics it subscribes
// to (PublishHeld), then the newest Replay messages of each other topic,
// each part oldest first, from the retained slots before its cursor.
// start calls it while it owns c's writes, before its first drive
// (so nobody else writes yet).
func (c *conn[M]) replay() bool {
	e := c.e
	if c.preset != nil {
		return c.replayPreset()
	}
	if e.o.Replay <= 0 {
		return true
	}
	start := c.rd.Cursor()
	size := uint64(e.ring.Size())
	// Held frames come first, and stand for their topic's replay.
	held := e.heldBefore(c, start)
	perTopic := map[string]int{}
	for _, h := range held {
		perTopic[h.f.Topic] = e.o.Replay
	}
	var picked []*Frame[M]
	for seq := start - 1; seq > 0 && start-seq <= size; seq-- {
		f, ok := e.ring.Get(seq)
		if !ok {
			continue // being written, or overwritten by a concurrent publish
		}
		if f.Live || perTopic[f.Topic] >= e.o.Replay || !c.wants(f.Topic) {
			continue
		}
		perTopic[f.Topic]++
		picked = append(picked, f)
	}
	// picked is newest first and sent from its end: the held frames go
	// there, oldest last.
	for i := len(held) - 1; i >= 0; i-- {
		picked = append(picked, held[i].f)
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
		e.counts.sent.Add(uint64(n))
	}
	return true
}

// replayPreset writes JoinReplay's frames, maxBatch at a time, and lets
// them go.
func (c *conn[M]) replayPreset() bool {
	frames := c.preset
	c.preset = nil
	for len(frames) > 0 {
		n := min(len(frames), maxBatch)
		if err := c.write(frames[:n]); err != nil {
			c.dropSlow(err)
			return false
		}
		c.e.counts.sent.Add(uint64(n))
		frames = frames[n:]
	}
	return true
}

// dropSlow records a failed write: a timeout means the client did not keep
// up (counted in Dropped); anything else means it is gone. A client being
// closed for lapping (1008, policy violation) was counted when that was
// decided: collect may still have handed over frames (a ping, replies)
// whose write then times out.
func (c *conn[M]) dropSlow(err error) {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() && c.closeCode.Load() != websocket.ClosePolicyViolation {
		c.e.counts.dropped.Add(1)
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
