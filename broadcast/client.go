package broadcast

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"sensord/broadcast/internal/fanout"
	"sensord/internal/link"
)

// Defaults for zero ClientOpts fields.
const (
	DefaultClientBuffer = 256
	DefaultMinBackoff   = 500 * time.Millisecond
	DefaultMaxBackoff   = 30 * time.Second
)

// ClientOpts configures a Client; the zero value is usable.
type ClientOpts struct {
	Header http.Header // sent with the upgrade (e.g. Authorization); a URL's user:password@ becomes Basic credentials
	// TLS configures wss:// (e.g. RootCAs from a CA file); nil: the
	// system's roots.
	TLS          *tls.Config
	Subprotocols []string
	WholeMsg     bool // send {"topic":..,"payload":..,"_msgid":..}
	// Buffer is how many messages are kept while the connection is down
	// (the oldest is dropped and counted beyond it); default 256.
	Buffer int
	// Reconnect back-off: MinBackoff doubling up to MaxBackoff, each delay
	// drawn uniformly from [d/2, d] (jitter, so that many clients do not
	// reconnect in step). Defaults 500 ms and 30 s.
	MinBackoff, MaxBackoff time.Duration
	// PingInterval, PongTimeout: the client pings the server; no frame at
	// all for PingInterval+PongTimeout means the peer is dead and the
	// connection is dropped. Defaults 30 s and 10 s.
	PingInterval, PongTimeout time.Duration
	// HandshakeTimeout bounds dial plus upgrade; default 10 s.
	HandshakeTimeout time.Duration
	// WriteWait is the deadline of every write; default 10 s.
	WriteWait time.Duration
	// OnState is called on every state change, from Run's goroutine.
	OnState func(ClientState)
	// OnMessage gets the frames the server sends, parsed like the server's
	// incoming frames (Session ""). Called from the reader goroutine.
	OnMessage func(Incoming)
	// Backfill, if set, is the history the timed messages (Message.Time)
	// came from. When the full buffer dropped some while the server was
	// away, the next connection first sends what Backfill gives for the
	// stretch the server missed, (from, to): after the last timed message
	// it got, before the oldest one still waiting, oldest first; then the
	// waiting ones. emit writes one message and fails when the connection
	// does; Backfill returns that error. Called from Run's goroutine.
	Backfill func(ctx context.Context, from, to time.Time, emit func(Message) error) error
}

// ClientState is what a Client is doing and why.
type ClientState struct {
	State    link.State    // link.Connecting, link.Connected, link.BackingOff or link.Stopped
	Reason   string        // why the last connection or dial ended ("" while fine)
	Since    time.Time     // when State was entered
	Attempts int           // failed dials since the last successful connect
	Retry    time.Duration // in link.BackingOff: how long it waits before the next dial
	Dropped  uint64        // messages dropped from the full buffer (oldest first)
	Sent     uint64        // messages written to the server
	Queued   int           // messages waiting
	// Backfilled counts the messages sent again from ClientOpts.Backfill.
	Backfilled uint64
}

// outMsg is a message encoded once, kept until it is written.
type outMsg struct {
	binary bool
	data   []byte
	at     time.Time // Message.Time
}

// Client is the WebSocket output in client mode: it dials a server and
// sends every published message, reconnecting with back-off. Publish and
// State are safe from any goroutine; Run is called once.
type Client struct {
	url    string
	o      ClientOpts
	ids    idGen
	now    func() time.Time
	jitter func() float64 // in [0,1); injected for tests

	mu    sync.Mutex
	queue []outMsg // ring of pending messages: head at qhead, qlen of them
	qhead int
	qlen  int
	state ClientState
	// sentUpTo is the Time of the newest timed message written (or the
	// client's start before any); gap is set when the full buffer dropped
	// a timed message, so the server missed readings after sentUpTo.
	sentUpTo time.Time
	gap      bool
	kick     chan struct{} // capacity 1: the writer has something to do
	ran      atomic.Bool   // Run was called
}

// ErrRunTwice is returned by a second call of Client.Run.
var ErrRunTwice = errors.New("broadcast: client already ran")

// NewClient checks the URL (ws:// or wss://) and returns an idle client;
// o may be nil.
func NewClient(rawURL string, o *ClientOpts) (*Client, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("broadcast: client url: %w", err)
	}
	if u.Scheme != "ws" && u.Scheme != "wss" || u.Host == "" {
		return nil, fmt.Errorf("broadcast: client url %q: want ws://host/path or wss://host/path", RedactURL(rawURL))
	}
	c := &Client{now: time.Now, jitter: rand.Float64, kick: make(chan struct{}, 1)}
	if o != nil {
		c.o = *o
	}
	if u.User != nil {
		// user:password@ is not something a WebSocket dial sends: it
		// goes as Basic credentials (RFC 7617), and off the URL.
		pass, _ := u.User.Password()
		c.o.Header = c.o.Header.Clone()
		if c.o.Header == nil {
			c.o.Header = http.Header{}
		}
		c.o.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(u.User.Username()+":"+pass)))
		u.User = nil
	}
	c.url = u.String()
	if c.o.Buffer <= 0 {
		c.o.Buffer = DefaultClientBuffer
	}
	if c.o.MinBackoff <= 0 {
		c.o.MinBackoff = DefaultMinBackoff
	}
	if c.o.MaxBackoff < c.o.MinBackoff {
		c.o.MaxBackoff = max(DefaultMaxBackoff, c.o.MinBackoff)
	}
	if c.o.PingInterval <= 0 {
		c.o.PingInterval = DefaultPingInterval
	}
	if c.o.PongTimeout <= 0 {
		c.o.PongTimeout = DefaultPongTimeout
	}
	if c.o.HandshakeTimeout <= 0 {
		c.o.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if c.o.WriteWait <= 0 {
		c.o.WriteWait = DefaultWriteWait
	}
	c.queue = make([]outMsg, c.o.Buffer)
	c.ids.prefix = rand.Uint32()
	c.state = ClientState{State: link.Stopped, Since: c.now()}
	return c, nil
}

// Publish queues m for the server (encoded now, once). While the
// connection is down at most Buffer messages wait; beyond that the oldest
// is dropped and counted. Empty payloads and sessions are ignored (a
// client has no sessions). Never blocks.
func (c *Client) Publish(m Message) {
	if empty(m.Payload) {
		return
	}
	if m.ID == "" {
		m.ID = c.ids.next()
	}
	data, bin, err := encodePayload(&m, c.o.WholeMsg)
	if err != nil {
		c.mu.Lock()
		c.state.Dropped++
		c.mu.Unlock()
		return
	}
	c.mu.Lock()
	if c.qlen == len(c.queue) {
		if !c.queue[c.qhead].at.IsZero() {
			c.gap = true
		}
		c.queue[c.qhead] = outMsg{}
		c.qhead = (c.qhead + 1) % len(c.queue)
		c.qlen--
		c.state.Dropped++
	}
	c.queue[(c.qhead+c.qlen)%len(c.queue)] = outMsg{binary: bin, data: data, at: m.Time}
	c.qlen++
	c.mu.Unlock()
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// peek returns the oldest waiting message.
func (c *Client) peek() (outMsg, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.qlen == 0 {
		return outMsg{}, false
	}
	return c.queue[c.qhead], true
}

// pop removes the oldest message once it was written, unless it was
// dropped meanwhile (then the queue moved on and m is not at the head).
func (c *Client) pop(m outMsg) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.qlen > 0 && &c.queue[c.qhead].data[0] == &m.data[0] {
		c.queue[c.qhead] = outMsg{}
		c.qhead = (c.qhead + 1) % len(c.queue)
		c.qlen--
	}
	c.state.Sent++
	if m.at.After(c.sentUpTo) {
		c.sentUpTo = m.at
	}
}

// State returns the current state. Safe from any goroutine.
func (c *Client) State() ClientState {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.state
	st.Queued = c.qlen
	return st
}

func (c *Client) setState(state link.State, reason string, attempts int) {
	c.mu.Lock()
	c.state.State = state
	c.state.Reason = reason
	c.state.Attempts = attempts
	c.state.Since = c.now()
	if state != link.BackingOff {
		c.state.Retry = 0
	}
	st := c.state
	st.Queued = c.qlen
	c.mu.Unlock()
	if c.o.OnState != nil {
		c.o.OnState(st)
	}
}

// Run connects, sends, and reconnects until ctx is done; then it closes
// the connection with 1001 and returns nil. Call it once.
func (c *Client) Run(ctx context.Context) error {
	if c.ran.Swap(true) {
		return ErrRunTwice
	}
	d := websocket.Dialer{
		HandshakeTimeout: c.o.HandshakeTimeout,
		Subprotocols:     c.o.Subprotocols,
		Proxy:            http.ProxyFromEnvironment,
		ReadBufferSize:   readBufferSize,
		WriteBufferSize:  4096,
		TLSClientConfig:  c.o.TLS,
	}
	c.mu.Lock()
	if c.sentUpTo.IsZero() {
		// What was measured before the client ran is not its to send.
		c.sentUpTo = c.now()
	}
	c.mu.Unlock()
	attempts := 0
	reason := ""
	for {
		c.setState(link.Connecting, reason, attempts)
		dctx, cancel := context.WithTimeout(ctx, c.o.HandshakeTimeout)
		ws, resp, err := d.DialContext(dctx, c.url, c.o.Header)
		cancel()
		if resp != nil && resp.Body != nil {
			_ = resp.Body.Close()
		}
		if ctx.Err() != nil {
			if ws != nil {
				_ = ws.Close()
			}
			c.setState(link.Stopped, "", attempts)
			return nil
		}
		if err != nil {
			attempts++
			reason = dialReason(err, resp)
		} else {
			attempts = 0
			c.setState(link.Connected, "", 0)
			reason = c.serve(ctx, ws)
			if ctx.Err() != nil {
				c.setState(link.Stopped, "", 0)
				return nil
			}
			attempts = 1 // the first retry waits MinBackoff
		}
		wait := c.backoff(attempts)
		c.mu.Lock()
		c.state.Retry = wait
		c.mu.Unlock()
		c.setState(link.BackingOff, reason, attempts)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			c.setState(link.Stopped, "", attempts)
			return nil
		case <-t.C:
		}
	}
}

// backoff is the delay before retry number n (n >= 1): MinBackoff doubling
// up to MaxBackoff, drawn from [d/2, d].
func (c *Client) backoff(n int) time.Duration {
	return link.Backoff{Min: c.o.MinBackoff, Max: c.o.MaxBackoff}.Delay(n, c.jitter())
}

func dialReason(err error, resp *http.Response) string {
	if resp != nil {
		return fmt.Sprintf("dial: HTTP %s", resp.Status)
	}
	return "dial: " + err.Error()
}

// serve runs one connection until it fails or ctx is done; it returns why
// it ended. This goroutine is the only writer; one reader goroutine reads
// (pongs, server messages) and watches the pong deadline.
func (c *Client) serve(ctx context.Context, ws *websocket.Conn) string {
	readErr := make(chan error, 1)
	alive := func() {
		_ = ws.SetReadDeadline(c.now().Add(c.o.PingInterval + c.o.PongTimeout))
	}
	alive()
	ws.SetPongHandler(func(string) error { alive(); return nil })
	// gorilla's default ping handler answers with WriteControl, which is
	// safe alongside this goroutine's writes.
	ping := ws.PingHandler()
	ws.SetPingHandler(func(s string) error { alive(); return ping(s) })
	go func() {
		for {
			mt, data, err := ws.ReadMessage()
			if err != nil {
				readErr <- err
				return
			}
			alive()
			if c.o.OnMessage != nil {
				c.o.OnMessage(ParseIncoming("", data, mt == websocket.BinaryMessage))
			}
		}
	}()
	tick := time.NewTicker(c.o.PingInterval)
	defer tick.Stop()
	end := func(why string) string {
		_ = ws.Close()
		<-readErr
		return why
	}
	if err := c.backfill(ctx, ws); err != nil {
		return end("back-fill: " + err.Error())
	}
	for {
		for {
			m, ok := c.peek()
			if !ok {
				break
			}
			mt := websocket.TextMessage
			if m.binary {
				mt = websocket.BinaryMessage
			}
			_ = ws.SetWriteDeadline(c.now().Add(c.o.WriteWait))
			if err := ws.WriteMessage(mt, m.data); err != nil {
				return end("write: " + err.Error())
			}
			c.pop(m)
		}
		select {
		case <-ctx.Done():
			_ = ws.WriteControl(websocket.CloseMessage,
				websocket.FormatCloseMessage(websocket.CloseGoingAway, ""), c.now().Add(c.o.WriteWait))
			// Wait briefly for the server's close, then drop.
			t := time.NewTimer(fanout.CloseGrace)
			defer t.Stop()
			select {
			case <-readErr:
				_ = ws.Close()
			case <-t.C:
				_ = end("")
			}
			return "stopped"
		case err := <-readErr:
			_ = ws.Close()
			return "read: " + readReason(err)
		case <-c.kick:
		case <-tick.C:
			if err := ws.WriteControl(websocket.PingMessage, nil, c.now().Add(c.o.WriteWait)); err != nil {
				return end("ping: " + err.Error())
			}
		}
	}
}

// maxBackfillRounds bounds how often one connection goes back to
// Backfill: each round fills the stretch the buffer dropped up to its
// oldest waiting message; the buffer dropping more meanwhile (live
// readings arriving faster than the server takes the back-fill) opens
// a new stretch, which the next round fills. Three rounds are plenty
// when the server is faster than the sensor; a slower one gets the
// rest at the next connection.
const maxBackfillRounds = 3

// backfill sends, from ClientOpts.Backfill, the timed messages the full
// buffer dropped while the server was away (see ClientOpts.Backfill).
func (c *Client) backfill(ctx context.Context, ws *websocket.Conn) error {
	if c.o.Backfill == nil {
		return nil
	}
	for range maxBackfillRounds {
		c.mu.Lock()
		if !c.gap {
			c.mu.Unlock()
			return nil
		}
		c.gap = false
		from, to := c.sentUpTo, c.now()
		for i := range c.qlen {
			if at := c.queue[(c.qhead+i)%len(c.queue)].at; !at.IsZero() {
				to = at
				break
			}
		}
		c.mu.Unlock()
		err := c.o.Backfill(ctx, from, to, func(m Message) error {
			if !m.Time.After(from) || !m.Time.Before(to) {
				return nil // Backfill's range is (from, to); be sure of it
			}
			data, bin, err := encodePayload(&m, c.o.WholeMsg)
			if err != nil {
				return nil // as Publish: a message that does not encode is not sent
			}
			mt := websocket.TextMessage
			if bin {
				mt = websocket.BinaryMessage
			}
			_ = ws.SetWriteDeadline(c.now().Add(c.o.WriteWait))
			if err := ws.WriteMessage(mt, data); err != nil {
				return err
			}
			c.mu.Lock()
			c.state.Sent++
			c.state.Backfilled++
			if m.Time.After(c.sentUpTo) {
				c.sentUpTo = m.Time
			}
			c.mu.Unlock()
			return nil
		})
		if err != nil {
			c.mu.Lock()
			c.gap = true // the next connection goes on from sentUpTo
			c.mu.Unlock()
			return err
		}
	}
	return nil
}

func readReason(err error) string {
	var ce *websocket.CloseError
	if errors.As(err, &ce) {
		return fmt.Sprintf("server closed (%d)", ce.Code)
	}
	var te interface{ Timeout() bool }
	if errors.As(err, &te) && te.Timeout() {
		return "no pong: peer dead"
	}
	return err.Error()
}
