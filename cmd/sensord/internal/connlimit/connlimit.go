// Package connlimit bounds the connections a server holds open at once,
// in descriptors and in memory, so that a peer can neither use up the
// process's file descriptors nor pin its memory with connections that
// never finish a request.
//
// Every connection is in one of three states:
//
//	pending      accepted, or between requests: reading a request's
//	             header, a TLS handshake, a body no handler wants, idle
//	             keep-alive. What it holds is the server's, not the
//	             peer's work, and the peer may have stopped sending.
//	busy         a handler is answering it (Serving).
//	established  hijacked: a WebSocket client.
//
// There are two bounds: Max on all connections (below the descriptor
// limit) and MaxPending on pending ones (a memory budget over the worst a
// pending connection holds). A new connection over either bound closes
// the connection that has been pending longest to make room, counted in
// Evicted; busy and established ones are never closed for it. Only when
// every open connection is busy or established and Max is reached is the
// new one closed at once (counted in Refused).
//
// # Concurrency
//
// A Limit is safe from any goroutine; the http.Server hooks (ConnState,
// ConnContext) and Serving are meant to be installed on every server
// whose listener it wraps.
package connlimit

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
)

// Limit is a bound on the connections open at once, shared by the
// listeners it wraps. Every connection they return counts until its
// Close, including one that an http.Handler hijacked (a WebSocket).
type Limit struct {
	max, maxPending, preRequest int

	mu       sync.Mutex // guards the pending list, npending and each conn's state
	head     *conn      // pending longest; evicted first
	tail     *conn      // pending most recently
	npending int

	open    atomic.Int64
	refused atomic.Uint64
	evicted atomic.Uint64
}

// New returns a limit of maxConns connections of which at most
// maxPending pending (each at least 1, maxPending at most maxConns), and
// at most preRequest bytes read from a connection before its first
// request reaches a handler (a TLS handshake and a request header; 0: no
// bound): a peer that keeps sending without ever completing a request
// (a 64 KiB ClientHello) is cut off instead of being buffered.
func New(maxConns, maxPending, preRequest int) *Limit {
	maxConns = max(maxConns, 1)
	return &Limit{max: maxConns, maxPending: min(max(maxPending, 1), maxConns), preRequest: preRequest}
}

// Listen wraps ln in the limit.
func (l *Limit) Listen(ln net.Listener) net.Listener {
	return &listener{Listener: ln, l: l}
}

// Max is the bound on all connections.
func (l *Limit) Max() int { return l.max }

// MaxPending is the bound on pending connections.
func (l *Limit) MaxPending() int { return l.maxPending }

// Open is the number of connections open now.
func (l *Limit) Open() int { return int(l.open.Load()) }

// Pending is the number of pending connections now.
func (l *Limit) Pending() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.npending
}

// Refused counts the connections closed at once for being over Max with
// nothing to evict.
func (l *Limit) Refused() uint64 { return l.refused.Load() }

// Evicted counts the pending connections closed to make room.
func (l *Limit) Evicted() uint64 { return l.evicted.Load() }

type state int

const (
	statePending state = iota
	stateBusy
	stateEstablished
	stateClosed
)

type listener struct {
	net.Listener
	l *Limit
}

// Accept returns the next connection, making room for it by closing the
// connection pending longest when a bound is reached; a connection that
// finds no room is closed without a word (an HTTP answer would need the
// descriptor for longer) and counted in Refused.
func (ln *listener) Accept() (net.Conn, error) {
	l := ln.l
	for {
		c, err := ln.Listener.Accept()
		if err != nil {
			return nil, err
		}
		nc := &conn{Conn: c, l: l}
		var victim *conn
		l.mu.Lock()
		if int(l.open.Load()) >= l.max || l.npending >= l.maxPending {
			victim = l.head
			if victim != nil {
				l.unlink(victim)
				victim.state = stateClosed
			}
		}
		if victim == nil && int(l.open.Load()) >= l.max {
			l.mu.Unlock()
			l.refused.Add(1)
			_ = c.Close()
			continue
		}
		l.open.Add(1)
		l.push(nc)
		l.mu.Unlock()
		if victim != nil {
			l.evicted.Add(1)
			_ = victim.Close()
		}
		return nc, nil
	}
}

// push appends c to the pending list. Called with mu held.
func (l *Limit) push(c *conn) {
	c.state = statePending
	c.prev, c.next = l.tail, nil
	if l.tail != nil {
		l.tail.next = c
	} else {
		l.head = c
	}
	l.tail = c
	l.npending++
}

// unlink takes pending c out of the list. Called with mu held.
func (l *Limit) unlink(c *conn) {
	if c.prev != nil {
		c.prev.next = c.next
	} else {
		l.head = c.next
	}
	if c.next != nil {
		c.next.prev = c.prev
	} else {
		l.tail = c.prev
	}
	c.prev, c.next = nil, nil
	l.npending--
}

// set moves c to state s; pending puts it at the end of the list (it
// starts waiting now). A closed or established connection stays so.
// Connections come back to pending from busy without passing Accept, so
// this is the other place the pending bound is kept: at the bound, the
// one pending longest is closed to make room, as Accept does.
func (l *Limit) set(c *conn, s state) {
	if c == nil {
		return
	}
	var victim *conn
	l.mu.Lock()
	switch {
	case c.state == stateClosed || c.state == stateEstablished:
		l.mu.Unlock()
		return
	case c.state == statePending:
		l.unlink(c)
	}
	if s == statePending {
		if l.npending >= l.maxPending {
			victim = l.head
			if victim != nil {
				l.unlink(victim)
				victim.state = stateClosed
			}
		}
		l.push(c)
	} else {
		c.state = s
	}
	l.mu.Unlock()
	if victim != nil {
		l.evicted.Add(1)
		_ = victim.Close()
	}
}

// find is the limit's connection under c (a *tls.Conn's too), or nil.
func find(c net.Conn) *conn {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	lc, _ := c.(*conn)
	return lc
}

// connKey is the context key of a request's connection.
type connKey struct{}

// ConnContext is an http.Server's ConnContext: it remembers the
// connection for Serving.
func (l *Limit) ConnContext(ctx context.Context, c net.Conn) context.Context {
	return context.WithValue(ctx, connKey{}, find(c))
}

// ConnState is an http.Server's ConnState: a hijacked connection is
// established, an idle one pending again.
func (l *Limit) ConnState(c net.Conn, s http.ConnState) {
	switch s {
	case http.StateHijacked:
		l.set(find(c), stateEstablished)
	case http.StateIdle:
		l.set(find(c), statePending)
	}
}

// Serving marks a request's connection busy while next answers it and
// pending again after (unless next hijacked it), when whatever is left of
// the body is read and thrown away.
func (l *Limit) Serving(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _ := r.Context().Value(connKey{}).(*conn)
		if c != nil {
			c.served.Store(true)
		}
		l.set(c, stateBusy)
		defer l.set(c, statePending)
		next.ServeHTTP(w, r)
	})
}

// conn gives its slot back on the first Close.
type conn struct {
	net.Conn
	l    *Limit
	once sync.Once

	served atomic.Bool // a request has reached a handler
	read   int         // bytes read before that; the reading goroutine's

	// Guarded by l.mu.
	state      state
	prev, next *conn // the pending list, while pending
}

// ErrPreRequest: a connection sent more than the limit's preRequest bytes
// without completing a request.
var ErrPreRequest = errors.New("connlimit: too many bytes before a complete request")

func (c *conn) Read(p []byte) (int, error) {
	if c.l.preRequest <= 0 || c.served.Load() {
		return c.Conn.Read(p)
	}
	if c.read >= c.l.preRequest {
		return 0, ErrPreRequest
	}
	n, err := c.Conn.Read(p[:min(len(p), c.l.preRequest-c.read)])
	c.read += n
	return n, err
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		l := c.l
		l.mu.Lock()
		if c.state == statePending {
			l.unlink(c)
		}
		c.state = stateClosed
		l.mu.Unlock()
		l.open.Add(-1)
	})
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
