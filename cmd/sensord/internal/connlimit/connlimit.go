// Package connlimit bounds the connections a server holds open at once,
// so that a peer cannot use up the process's file descriptors: a
// connection over the bound is accepted and closed at once (counted), and
// the listener keeps accepting; the connections already open, the sensor
// and the journal keep their descriptors.
package connlimit

import (
	"net"
	"sync"
	"sync/atomic"
	"syscall"
)

// Limit is a bound on the connections open at once, shared by the
// listeners it wraps. Every connection they return counts until its
// Close, including one that an http.Handler hijacked (a WebSocket). Safe
// from any goroutine.
type Limit struct {
	max     int64
	open    atomic.Int64
	refused atomic.Uint64
}

// New returns a limit of n connections (at least 1).
func New(n int) *Limit {
	return &Limit{max: int64(max(n, 1))}
}

// Listen wraps ln in the limit.
func (l *Limit) Listen(ln net.Listener) net.Listener {
	return &listener{Listener: ln, l: l}
}

// Max is the bound.
func (l *Limit) Max() int { return int(l.max) }

// Open is the number of connections open now.
func (l *Limit) Open() int { return int(l.open.Load()) }

// Refused counts the connections closed for being over the bound.
func (l *Limit) Refused() uint64 { return l.refused.Load() }

type listener struct {
	net.Listener
	l *Limit
}

// Accept returns the next connection within the bound; connections over
// it are closed without a word (an HTTP answer would need the descriptor
// for longer) and counted in Refused.
func (ln *listener) Accept() (net.Conn, error) {
	l := ln.l
	for {
		c, err := ln.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.open.Add(1) > l.max {
			l.open.Add(-1)
			l.refused.Add(1)
			_ = c.Close()
			continue
		}
		return &conn{Conn: c, l: l}, nil
	}
}

// conn gives its slot back on the first Close.
type conn struct {
	net.Conn
	l    *Limit
	once sync.Once
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.open.Add(-1) })
	return err
}

// SyscallConn exposes the socket, for the broadcaster's non-blocking
// writes (it finds them by the syscall.Conn interface).
func (c *conn) SyscallConn() (syscall.RawConn, error) {
	sc, ok := c.Conn.(syscall.Conn)
	if !ok {
		return nil, syscall.EINVAL
	}
	return sc.SyscallConn()
}

// CloseWrite half-closes a TCP connection, as net/http does before it
// closes one whose request it refused.
func (c *conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
