package broadcast

import (
	"errors"
	"net"
	"sync/atomic"
	"time"
)

// codeAbort asks the writer to drop the connection without a close frame
// (the peer is gone, or a write failed).
const codeAbort = -1

// conn is one client connection: one reader goroutine (readLoop) and one
// writer goroutine (writeLoop). Only the writer writes to nc.
type conn struct {
	s       *Server
	nc      net.Conn // the socket, after gorilla's handshake
	session string
	remote  string
	filters []string // MQTT filters; nil: everything

	// rd is the writer's ring cursor: created in ServeHTTP before the
	// upgrade response (so nothing published after the client sees the
	// handshake complete is missed), then owned by the writer.
	rd Reader[encoded]

	// replies: session replies, bounded; Publish sends without blocking.
	// Made at the first reply (most clients never get one): written once
	// by CAS (replyQueue), read by Publish and the writer.
	replies atomic.Pointer[chan *encoded]
	// kick (capacity 1) wakes the writer: publishes and heartbeats (from
	// the housekeeping loop), replies, pongs and close requests. Written by
	// anyone (poke), read by the writer, which sleeps on it alone.
	kick chan struct{}
	// readerDone is closed when the reader goroutine returns.
	readerDone chan struct{}
	// pong: a ping's payload the writer must answer. Written by the
	// reader, taken by the writer (Swap).
	pong atomic.Pointer[[]byte]
	// closeCode: the first close request wins (CAS from 0): a close code to
	// send, or codeAbort. Written by anyone, acted on by the writer.
	closeCode atomic.Int32

	pingGen uint64 // writer only: the heartbeat generation last answered
	wdl     int64  // writer only: the write deadline set on nc (unix ns)
}

func (s *Server) newConn(nc net.Conn, rd Reader[encoded], filters []string, remote string) *conn {
	return &conn{
		s:          s,
		nc:         nc,
		session:    s.ids.next(),
		remote:     remote,
		filters:    filters,
		rd:         rd,
		kick:       make(chan struct{}, 1),
		readerDone: make(chan struct{}),
		pingGen:    s.hbGen.Load(),
	}
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

// poke wakes the writer; never blocks.
func (c *conn) poke() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// requestClose asks the writer to close with code (first request wins).
func (c *conn) requestClose(code int) {
	if c.closeCode.CompareAndSwap(0, int32(code)) {
		c.poke()
	}
}

// readLoop reads the client's frames until the connection ends: it hands
// pings to the writer, delivers messages to OnMessage, enforces the read
// limit, and keeps the pong deadline: any frame from the client proves it
// alive for another PingInterval+PongTimeout.
//
// Stack: like the writer, an idle reader waits in a chain short enough
// for the smallest goroutine stack (readLoop -> next -> header -> Read);
// handling a frame happens after next returns, in handle.
func (c *conn) readLoop() {
	defer close(c.readerDone)
	fr := &frameReader{r: c.nc, limit: c.s.o.ReadLimit}
	for {
		_ = c.nc.SetReadDeadline(c.s.o.Now().Add(c.s.o.PingInterval + c.s.o.PongTimeout))
		op, p, err := fr.next()
		if !c.handle(op, p, err) {
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
		c.poke()
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
			c.s.o.OnMessage(ParseIncoming(c.session, p, op == opBinary))
		}
	}
	return true
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

// writeLoop is the only goroutine that writes to the connection (after
// ServeHTTP wrote the replay, before starting it). Each time it wakes it
// gathers everything waiting (pong, ping, replies, ring frames on its
// topics) and writes it with one writev: several complete frames, one
// syscall, never two payloads in one frame.
//
// Stack: an idle connection's writer sits here on its kick. Its frames and
// the deepest path it takes in normal operation (flush -> write -> writev)
// are kept small enough for the smallest goroutine stack (2 KiB), which a
// goroutine keeps only if it never goes deeper: a grown stack does not
// shrink back. TestIdleConnectionMemory measures it.
func (c *conn) writeLoop() {
	defer c.finish()
	for {
		switch c.flush() {
		case flushMore:
			continue
		case flushEnd:
			return
		}
		// Publishes, heartbeats and Close arrive as kicks too (see
		// Server.wakeAll).
		<-c.kick
	}
}

type flushResult int

const (
	flushIdle flushResult = iota // nothing was waiting: sleep
	flushMore                    // wrote (or must close): look again
	flushEnd                     // the connection is finished
)

// flush writes what is waiting, or closes the connection when asked to.
//
//go:noinline
func (c *conn) flush() flushResult {
	s := c.s
	select {
	case <-s.closing:
		c.requestClose(CloseGoingAway)
	default:
	}
	if code := int(c.closeCode.Load()); code != 0 {
		c.close(code)
		return flushEnd
	}
	// A batch slice from the free list; without one, write one frame (a
	// one-element batch in this frame) and come back for the rest.
	var bp *[][]byte
	select {
	case bp = <-s.batches:
	default:
	}
	var one [1][]byte
	b := one[:0:1]
	if bp != nil {
		b = (*bp)[:0]
	}
	b, sent := c.collect(b)
	var err error
	if len(b) > 0 {
		err = c.write(b)
	}
	n := len(b)
	clear(b)
	if bp != nil {
		*bp = b[:0]
		select {
		case s.batches <- bp:
		default:
		}
	}
	switch {
	case err != nil:
		c.dropSlow(err)
		return flushEnd
	case n > 0:
		s.st.sent.Add(uint64(sent))
		return flushMore // maybe more waiting
	case c.closeCode.Load() != 0:
		return flushMore // collect asked to close
	}
	return flushIdle
}

// collect appends what is waiting to b, up to cap(b) (it never grows b:
// no allocation on the writer's stack); sent counts the data frames.
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
			select {
			case e := <-*q:
				b = append(b, e.frame)
				sent++
				continue
			default:
			}
			break
		}
	}
	for len(b) < cap(b) {
		e, _, lost, ok := c.rd.Next()
		if lost > 0 {
			s.st.lost.Add(lost)
			if s.o.Lapped == DisconnectLapped {
				if c.closeCode.CompareAndSwap(0, ClosePolicy) {
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

// write writes whole frames with one writev (net.Buffers on a TCP
// connection). Every write must finish within WriteWait; the deadline is
// moved only when less than half of WriteWait is left, which saves a timer
// update per write: a write then has between WriteWait/2 and WriteWait.
func (c *conn) write(batch [][]byte) error {
	o := &c.s.o
	if now := o.Now().UnixNano(); c.wdl-now < int64(o.WriteWait/2) {
		c.wdl = now + int64(o.WriteWait)
		_ = c.nc.SetWriteDeadline(time.Unix(0, c.wdl))
	}
	if len(batch) == 1 {
		_, err := c.nc.Write(batch[0])
		return err
	}
	nb := net.Buffers(batch)
	_, err := nb.WriteTo(c.nc)
	return err
}

// replay sends a late joiner the newest Replay messages of each topic it
// subscribes to, oldest first, from the retained slots before its cursor.
// ServeHTTP calls it before it starts the writer (so it is still the only
// writer), on its own deeper stack.
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
// up (counted in Dropped); anything else means it is gone.
func (c *conn) dropSlow(err error) {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
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
	_ = c.nc.Close()
	<-c.readerDone
	c.s.remove(c)
}
