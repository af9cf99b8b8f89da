package broadcast

import (
	"errors"
	"io"
	"net"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// codeAbort asks the writer to drop the connection without a close frame
// (the peer is gone, or a write failed).
const codeAbort = -1

// conn is one client connection: one reader goroutine (readLoop) and one
// writer goroutine (writeLoop). Only the writer writes to nc.
type conn struct {
	s       *Server
	ws      *websocket.Conn // used by the reader only (gorilla's frame parser)
	nc      net.Conn        // the writer writes pre-framed bytes here
	session string
	remote  string
	filters []string // MQTT filters; nil: everything

	// rd is the writer's ring cursor: created in ServeHTTP before the
	// upgrade response (so nothing published after the client sees the
	// handshake complete is missed), then owned by the writer.
	rd Reader[encoded]

	// replies: session replies, bounded; Publish sends without blocking.
	replies chan *encoded
	// kick (capacity 1) wakes the writer for replies, pongs and close
	// requests. Written by anyone (poke), read by the writer.
	kick chan struct{}
	// readerDone is closed when the reader goroutine returns.
	readerDone chan struct{}
	// pong: a ping's payload the writer must answer. Written by the reader
	// (gorilla's ping handler), taken by the writer (Swap).
	pong atomic.Pointer[[]byte]
	// closeCode: the first close request wins (CAS from 0): a close code to
	// send, or codeAbort. Written by anyone, acted on by the writer.
	closeCode atomic.Int32

	pingGen uint64 // writer only: the heartbeat generation last answered
}

func (s *Server) newConn(ws *websocket.Conn, rd Reader[encoded], filters []string, remote string) *conn {
	return &conn{
		s:          s,
		ws:         ws,
		nc:         ws.NetConn(),
		session:    s.ids.next(),
		remote:     remote,
		filters:    filters,
		rd:         rd,
		replies:    make(chan *encoded, s.o.ReplyQueue),
		kick:       make(chan struct{}, 1),
		readerDone: make(chan struct{}),
		pingGen:    s.hbGen.Load(),
	}
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

// readLoop reads frames until the connection fails: it answers pings
// through the writer, delivers messages to OnMessage, and enforces the
// read limit and the pong deadline.
//
// gorilla writes to the connection itself in two cases we cannot switch
// off: a protocol error by the peer, and its own read limit (ours is
// enforced here instead, so that one is off). Such a write is one whole
// close frame under the socket's write lock (poll.FD serialises whole
// Write calls), so the byte stream stays well framed even then.
func (c *conn) readLoop() {
	defer close(c.readerDone)
	s := c.s
	alive := func() {
		_ = c.nc.SetReadDeadline(s.o.Now().Add(s.o.PingInterval + s.o.PongTimeout))
	}
	c.ws.SetPingHandler(func(data string) error {
		alive()
		p := []byte(data)
		c.pong.Store(&p)
		c.poke()
		return nil
	})
	c.ws.SetPongHandler(func(string) error { alive(); return nil })
	c.ws.SetCloseHandler(func(code int, _ string) error {
		// Echo the peer's code (RFC 6455 5.5.1); no code: 1000.
		if code == closeNoStatusRcv || code <= 0 {
			code = CloseNormal
		}
		c.requestClose(code)
		return nil
	})
	alive()
	for {
		mt, r, err := c.ws.NextReader()
		if err != nil {
			c.requestClose(codeAbort)
			return
		}
		alive()
		if c.closeCode.Load() != 0 {
			// Closing: drain until the peer's close frame arrives.
			if _, err := io.Copy(io.Discard, r); err != nil {
				c.requestClose(codeAbort)
				return
			}
			continue
		}
		data, err := io.ReadAll(io.LimitReader(r, s.o.ReadLimit+1))
		if err != nil {
			c.requestClose(codeAbort)
			return
		}
		if int64(len(data)) > s.o.ReadLimit {
			c.requestClose(CloseTooBig)
			continue // the next NextReader discards the rest
		}
		if s.o.OnMessage != nil {
			s.o.OnMessage(ParseIncoming(c.session, data, mt == websocket.BinaryMessage))
		}
	}
}

// writeLoop is the only goroutine that writes to the connection. Each time
// it wakes it gathers everything waiting (pong, ping, replies, ring frames
// on its topics) and writes it with one writev: several complete frames,
// one syscall, never two payloads in one frame.
func (c *conn) writeLoop() {
	s := c.s
	defer c.finish()
	if !c.replay() {
		return
	}
	for {
		// Load the wake channels before looking for work (see Ring.Wake).
		wake := s.ring.Wait()
		hb := *s.hb.Load()
		if code := int(c.closeCode.Load()); code != 0 {
			c.close(code)
			return
		}
		bp := s.bufs.Get().(*[][]byte)
		batch, sent := c.collect((*bp)[:0])
		var err error
		if len(batch) > 0 {
			err = c.write(batch)
		}
		clear(batch)
		*bp = batch[:0]
		s.bufs.Put(bp)
		if err != nil {
			c.dropSlow(err)
			return
		}
		if len(batch) > 0 {
			s.st.sent.Add(uint64(sent))
			continue // maybe more waiting
		}
		if c.closeCode.Load() != 0 {
			continue // collect asked to close
		}
		select {
		case <-wake:
		case <-hb:
		case <-c.kick:
		case <-s.closing:
			c.requestClose(CloseGoingAway)
		}
	}
}

// collect appends what is waiting to b; sent counts the data frames.
func (c *conn) collect(b [][]byte) (_ [][]byte, sent int) {
	s := c.s
	if p := c.pong.Swap(nil); p != nil {
		b = append(b, frame(opPong, *p))
	}
	if g := s.hbGen.Load(); g != c.pingGen {
		c.pingGen = g
		b = append(b, pingFrame)
	}
	for len(b) < maxBatch {
		select {
		case e := <-c.replies:
			b = append(b, e.frame)
			sent++
			continue
		default:
		}
		break
	}
	for len(b) < maxBatch {
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

// write writes whole frames with one deadline and, for several, one
// writev (net.Buffers on a TCP connection).
func (c *conn) write(batch [][]byte) error {
	_ = c.nc.SetWriteDeadline(c.s.o.Now().Add(c.s.o.WriteWait))
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
			break // overwritten: everything older is gone too
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
	_ = c.nc.SetWriteDeadline(c.s.o.Now().Add(c.s.o.WriteWait))
	if _, err := c.nc.Write(closeFrame(code, "")); err != nil {
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
