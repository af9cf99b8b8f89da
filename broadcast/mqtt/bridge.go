package mqtt

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"sensord/internal/link"
	"sensord/internal/ratelimit"
)

// Availability payloads on <prefix>/<name>/status, Home Assistant's
// defaults.
const (
	Online  = "online"
	Offline = "offline"
)

// StatusMetric and StateMetric are the topic levels of availability and of
// the whole sensor_update JSON.
const (
	StatusMetric = "status"
	StateMetric  = "state"
)

// Defaults for the Opts fields left zero.
const (
	// DefaultPrefix is the first topic level: sensors/<name>/<metric> is the
	// convention the third reference flow's mqtt-in (sensors/#) and
	// function node split.
	DefaultPrefix = "sensors"

	// DefaultBackfillRate: readings a second sent from history after an
	// outage. A day at a 2 s period (43,200) takes 7 minutes; a broker on a
	// Pi takes that in its stride and the live readings go on meanwhile.
	DefaultBackfillRate = 100
	// backfillBatches: a back-fill goes out in this many batches a second.
	backfillBatches = 10
	// DefaultQueueLen bounds the readings kept while the broker is
	// unreachable: at the default 2 s period, eight and a half minutes,
	// a few tens of KiB. Older readings are dropped first.
	DefaultQueueLen = 256

	// DefaultMaxRate and DefaultMaxBurst bound the broker messages passed
	// to the dashboard hub per second: a house of 50 Pis at 2 s is 100 a
	// second; a flood beyond that must not reach every browser.
	DefaultMaxRate  = 200
	DefaultMaxBurst = 400

	// DefaultMaxPayload bounds a passed-on payload: sensor values are tens
	// of bytes, a state JSON under a hundred; anything past 4 KiB is not a
	// reading and would only bloat every browser's page.
	DefaultMaxPayload = 4096

	// MinBackoff is the shortest wait between connection attempts: a
	// broker that refuses or is gone is never hammered faster than once a
	// second. MaxBackoff caps the exponential growth, so a broker that
	// comes back is found within a minute.
	MinBackoff = time.Second
	MaxBackoff = 60 * time.Second

	// DefaultHandoverPause is the wait between the steps of the
	// discovery hand-over (see discovery): Home Assistant unloads the
	// entities {"migrate_discovery":true} names in tasks of its own, and
	// the next step's configs must not find them still loaded (it would
	// refuse their unique_ids as taken); its docs check the log between
	// the steps. A second is ample for Home Assistant on a Pi, and the
	// hand-over happens once a run.
	DefaultHandoverPause = time.Second

	// DefaultBirthDelay is the longest random wait before the configs are
	// sent again after Home Assistant announces itself, so a house of
	// devices does not answer in the same instant (Home Assistant's MQTT
	// discovery docs ask for a random delay).
	DefaultBirthDelay = 5 * time.Second
)

// Timeouts of the broker connection; none of them touches the sensor loop,
// they only bound how long the bridge's own goroutine waits.
const (
	connectTimeout  = 10 * time.Second // TCP, TLS and CONNACK together
	publishTimeout  = 10 * time.Second // a PUBACK; past it the link counts as dead
	keepAlive       = 30 * time.Second // PINGREQ interval; the broker sends the will after 1.5x
	pingTimeout     = 10 * time.Second
	writeTimeout    = 10 * time.Second
	shutdownPublish = 2 * time.Second // the clean stop's offline, inside the daemon's 5 s stop
	disconnectQuiet = 250             // ms Paho may spend flushing on Disconnect
	// stableAfter is how long a connection must last for the back-off
	// to start again from MinBackoff.
	stableAfter = 30 * time.Second
	// maxTopicLen bounds the topic of a passed-on message, like
	// MaxPayload its payload.
	maxTopicLen = 512
)

// Errors a caller can tell apart with errors.Is.
var (
	// ErrAuth: the broker refused the user name or password.
	ErrAuth = errors.New("mqtt: broker refused the login")
	// ErrConnect: the broker could not be reached or did not answer.
	ErrConnect = errors.New("mqtt: cannot connect")
	// ErrPublish: the broker did not acknowledge a publish in time.
	ErrPublish = errors.New("mqtt: publish not acknowledged")
	// ErrOpts: New was given unusable options.
	ErrOpts = errors.New("mqtt: bad options")
)

// Value is one metric of a reading, already formatted in the sensor's
// precision ("21.4").
type Value struct {
	Metric string
	Value  string
}

// Publication is a reading as the daemon hands it to the bridge: its
// values to publish one per topic and its sensor_update JSON for the state
// topic.
type Publication struct {
	Values []Value
	State  []byte
	Time   time.Time
}

// Opts configures a Bridge. Zero fields take the default named beside them.
type Opts struct {
	URL      string         // mqtt://host[:1883] or mqtts://host[:8883]; user info allowed
	Username string         // overrides the URL's user
	Password string         // overrides the URL's password; never logged or shown
	RootCAs  *x509.CertPool // mqtts: the CAs to trust; nil trusts the system's
	ClientID string         // default: sensord-<Name>-<first 8 of Device.ID>

	Prefix    string // first topic level; DefaultPrefix
	Name      string // second topic level, the device's name; required
	Discovery string // Home Assistant's discovery prefix; "" sends no discovery
	// DiscoveryForm is the form of the discovery configs;
	// DefaultDiscoveryForm.
	DiscoveryForm DiscoveryForm
	Subscribe     string // topic filter passed to OnMessage; "" subscribes nothing
	Device        Device
	Entities      []Entity      // announced to Home Assistant; DefaultEntities
	Period        time.Duration // reading period, for expire_after; required
	Alerts        []AlertRule   // alert rules announced as binary sensors (see PublishAlert)

	QueueLen   int           // DefaultQueueLen
	MaxRate    int           // DefaultMaxRate
	MaxBurst   int           // DefaultMaxBurst
	MaxPayload int           // DefaultMaxPayload
	BirthDelay time.Duration // DefaultBirthDelay
	// HandoverPause is the wait between the discovery hand-over's steps;
	// DefaultHandoverPause.
	HandoverPause time.Duration

	OnMessage func(HubMessage) // required with Subscribe; must not block
	// OnState, if set, is told every change of the link's state, and a
	// failure that repeats with the same reason at most once a
	// link.RepeatEvery; it must not block.
	OnState func(LinkState)
	// OnCommand, if set, gets the payload of every message published on
	// the command topic <prefix>/<name>/send (CommandMetric) but
	// retained ones; it must not block.
	OnCommand func(payload []byte)

	// Backfill, if set, is the history the readings came from: it calls
	// fn with each stored reading in [from, to), oldest first. Readings
	// the full queue dropped while the broker was away are sent from it
	// after a reconnect (backlog: state topic, not retained, oldest first),
	// at most BackfillRate a second; OnBackfill, if set, is told how many.
	// Without it a full queue drops the oldest for good.
	Backfill     func(ctx context.Context, from, to time.Time, fn func(Publication) error) error
	BackfillRate int // DefaultBackfillRate
	OnBackfill   func(n int, from, to time.Time)

	Now  func() time.Time // time.Now
	Rand func() float64   // uniform in [0,1) for jitter; math/rand/v2's Float64
}

// ReasonStopped is the reason of the link's last state, Disconnected,
// after a clean stop: not a failure.
const ReasonStopped = "stopped"

// LinkState is the broker link's state, for health and the dashboard.
type LinkState struct {
	Broker   string     // the URL without user info
	State    link.State // link.Connecting, link.Connected or link.Disconnected
	Reason   string     // why it is not connected; "" when connected
	Attempts int        // failed attempts since the last connection
	Since    time.Time  // when State last changed
}

// Stats are the bridge's counters.
type Stats struct {
	Connected     bool
	Published     uint64 // messages the broker acknowledged
	Queued        int    // readings waiting for the broker
	QueueDropped  uint64 // readings dropped from a full queue
	Received      uint64 // messages that arrived on the subscription
	Passed        uint64 // of those, passed to OnMessage
	Own           uint64 // of those, the device's own topics, not passed (see onMessage)
	RateDropped   uint64 // refused over MaxRate
	SizeDropped   uint64 // refused over MaxPayload or the topic bound
	Oversize      uint64 // packets over MaxPacket, dropped as their header arrived
	Connects      uint64 // connections made
	ConnectErrors uint64 // attempts that failed
	PublishErrors uint64 // publishes not acknowledged (each ends the connection)
	Backfilled    uint64 // readings sent again from Backfill after the queue dropped them
	Commands      uint64 // messages on the command topic
	// CommandsRetained: of those, retained ones, ignored (one left on
	// the broker would run again at every connect).
	CommandsRetained uint64
	EventsPublished  uint64 // client events the broker acknowledged
	EventsDropped    uint64 // client events dropped: over a bound, or the broker away
}

// Bridge is one broker connection's publisher and subscriber.
type Bridge struct {
	o      Opts
	broker Broker
	q      *queue
	lim    *ratelimit.Bucket

	wake     chan struct{} // cap 1: Publish's nudge to Run
	haOnline chan struct{} // cap 1: Home Assistant's birth message

	// Run's goroutine alone: every reading up to filled is delivered (or
	// still in the queue); newestSent is the newest sent as current.
	filled, newestSent time.Time
	// seenDropped is the queue's drop count the last back-fill covered: a
	// back-fill is due only once the queue has dropped more.
	seenDropped uint64
	// handedOver: the discovery hand-over from the other form was
	// acknowledged by the broker in this run (see discovery).
	handedOver bool
	backfilled atomic.Uint64

	mu        sync.Mutex // guards state, err, outage, latest, hasLatest
	state     LinkState
	err       error       // why the link last went down
	outage    link.Outage // rate-limits OnState while the link stays down
	latest    Publication
	hasLatest bool
	alerts    alertState
	events    eventQueue

	commands, commandsRetained atomic.Uint64

	published, received, passed, own, rateDropped, sizeDropped atomic.Uint64
	connects, connectErrors, publishErrors, oversize           atomic.Uint64
	connected                                                  atomic.Bool
}

// New checks o and returns a Bridge; nothing connects until Run.
func New(o Opts) (*Bridge, error) {
	br, err := ParseURL(o.URL)
	if err != nil {
		return nil, err
	}
	if o.Username != "" {
		br.Username = o.Username
	}
	if o.Password != "" {
		br.Password = o.Password
	}
	if o.Name == "" || strings.ContainsAny(o.Name, "/+#") {
		return nil, fmt.Errorf("%w: name %q must be one topic level", ErrOpts, o.Name)
	}
	if o.Prefix == "" {
		o.Prefix = DefaultPrefix
	}
	if strings.ContainsAny(o.Prefix, "+#") || strings.ContainsAny(o.Discovery, "+#") {
		return nil, fmt.Errorf("%w: the prefixes must not hold the wildcards + and #", ErrOpts)
	}
	if o.DiscoveryForm == "" {
		o.DiscoveryForm = DefaultDiscoveryForm
	}
	if o.DiscoveryForm != DeviceForm && o.DiscoveryForm != EntityForm {
		return nil, fmt.Errorf("%w: discovery form %q is neither %q nor %q", ErrOpts, o.DiscoveryForm, DeviceForm, EntityForm)
	}
	if o.Subscribe != "" && o.OnMessage == nil {
		return nil, fmt.Errorf("%w: Subscribe without OnMessage", ErrOpts)
	}
	if o.Period <= 0 {
		return nil, fmt.Errorf("%w: Period must be positive", ErrOpts)
	}
	if o.Device.ID == "" {
		o.Device.ID = o.Name
	}
	if o.Device.Name == "" {
		o.Device.Name = o.Name
	}
	if o.ClientID == "" {
		o.ClientID = "sensord-" + o.Name + "-" + o.Device.ID[:min(8, len(o.Device.ID))]
	}
	if o.Entities == nil {
		o.Entities = DefaultEntities
	}
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&o.QueueLen, DefaultQueueLen)
	def(&o.BackfillRate, DefaultBackfillRate)
	def(&o.MaxRate, DefaultMaxRate)
	def(&o.MaxBurst, DefaultMaxBurst)
	def(&o.MaxPayload, DefaultMaxPayload)
	if o.BirthDelay <= 0 {
		o.BirthDelay = DefaultBirthDelay
	}
	if o.HandoverPause <= 0 {
		o.HandoverPause = DefaultHandoverPause
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Rand == nil {
		o.Rand = rand.Float64
	}
	b := &Bridge{
		o:        o,
		broker:   br,
		q:        newQueue(o.QueueLen),
		lim:      ratelimit.New(o.MaxRate, o.MaxBurst),
		wake:     make(chan struct{}, 1),
		haOnline: make(chan struct{}, 1),
	}
	b.events.lim = ratelimit.New(EventRate, EventBurst)
	b.state = LinkState{Broker: br.String(), State: link.Connecting, Since: o.Now()}
	return b, nil
}

// Broker is the parsed broker address (the password included: do not show
// it; Broker.String leaves it out).
func (b *Bridge) Broker() Broker { return b.broker }

// Topic is <prefix>/<name>/<metric>.
func (b *Bridge) Topic(metric string) string { return b.topic(metric) }

func (b *Bridge) topic(metric string) string { return b.o.Prefix + "/" + b.o.Name + "/" + metric }

// Publish queues r for the broker and returns at once; when the queue is
// full the oldest reading is dropped and counted.
func (b *Bridge) Publish(r Publication) {
	b.q.push(r)
	b.mu.Lock()
	b.latest, b.hasLatest = r, true
	b.mu.Unlock()
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// State returns the link's state.
func (b *Bridge) State() LinkState {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.state
}

// lastErr is why the link last went down (for errors.Is in tests and
// callers that branch on ErrAuth).
func (b *Bridge) lastErr() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.err
}

// Stats returns the counters.
func (b *Bridge) Stats() Stats {
	held, dropped := b.q.stats()
	return Stats{
		Connected:     b.connected.Load(),
		Published:     b.published.Load(),
		Queued:        held,
		QueueDropped:  dropped,
		Received:      b.received.Load(),
		Passed:        b.passed.Load(),
		Own:           b.own.Load(),
		RateDropped:   b.rateDropped.Load(),
		SizeDropped:   b.sizeDropped.Load(),
		Oversize:      b.oversize.Load(),
		Connects:      b.connects.Load(),
		ConnectErrors: b.connectErrors.Load(),
		PublishErrors: b.publishErrors.Load(),
		Backfilled:    b.backfilled.Load(),

		Commands:         b.commands.Load(),
		CommandsRetained: b.commandsRetained.Load(),
		EventsPublished:  b.events.published.Load(),
		EventsDropped:    b.events.dropped.Load(),
	}
}

// setState records the link's state and tells OnState: every change, and
// a failure that repeats with the same reason (a wrong password refused
// at every attempt) at most once a link.RepeatEvery.
func (b *Bridge) setState(state link.State, reason string, attempts int) {
	now := b.o.Now()
	b.mu.Lock()
	if b.state.State != state || b.state.Reason != reason {
		b.state.Since = now
	}
	b.state.State, b.state.Reason, b.state.Attempts = state, reason, attempts
	report := true
	switch {
	case state == link.Connected:
		b.outage.Up()
	case state == link.Disconnected && reason != ReasonStopped:
		report = b.outage.Fail(now, reason) != link.Quiet
	}
	s := b.state
	b.mu.Unlock()
	b.connected.Store(state == link.Connected)
	if report && b.o.OnState != nil {
		b.o.OnState(s)
	}
}

// backoff is the wait after the n-th failure in a row (n >= 1): doubling
// from MinBackoff up to MaxBackoff, with the upper half jittered so a house
// of devices does not reconnect in step, and never below MinBackoff.
func (b *Bridge) backoff(n int) time.Duration {
	return link.Backoff{Min: MinBackoff, Max: MaxBackoff, Floor: MinBackoff}.Delay(n, b.o.Rand())
}

// Run connects, publishes and subscribes until ctx is cancelled, then
// publishes offline and disconnects. It reconnects by itself; it returns nil
// once ctx is done.
func (b *Bridge) Run(ctx context.Context) error {
	failures := 0
	for {
		if ctx.Err() != nil {
			return nil
		}
		if failures == 0 {
			// After a failure the state stays disconnected with its
			// reason until a connection is made, so /healthz says why
			// and a refusal repeated at every attempt is reported once.
			b.setState(link.Connecting, "", failures)
		}
		lost := make(chan error, 1)
		c, err := b.connect(ctx, lost)
		if err == nil {
			up := b.o.Now()
			err = b.serve(ctx, c, lost)
			// Only a connection that held counts as recovery: one the
			// broker's data ends at once each time (an oversized retained
			// packet it cannot skip) backs off like a refusal does.
			if b.o.Now().Sub(up) >= stableAfter {
				failures = 0
			}
			if ctx.Err() != nil {
				b.goodbye(c)
				return nil
			}
			c.Disconnect(0)
		} else {
			b.connectErrors.Add(1)
		}
		if ctx.Err() != nil {
			return nil
		}
		failures++
		b.mu.Lock()
		b.err = err
		b.mu.Unlock()
		b.setState(link.Disconnected, err.Error(), failures)
		t := time.NewTimer(b.backoff(failures))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// connect makes one connection attempt.
func (b *Bridge) connect(ctx context.Context, lost chan error) (paho.Client, error) {
	po := paho.NewClientOptions()
	po.AddBroker("tcp://" + b.broker.Addr())
	po.SetCustomOpenConnectionFn(b.dial)
	po.SetClientID(b.o.ClientID)
	po.SetUsername(b.broker.Username)
	po.SetPassword(b.broker.Password)
	po.SetCleanSession(true)
	po.SetAutoReconnect(false)
	po.SetConnectRetry(false)
	po.SetConnectTimeout(connectTimeout)
	po.SetKeepAlive(keepAlive)
	po.SetPingTimeout(pingTimeout)
	po.SetWriteTimeout(writeTimeout)
	po.SetWill(b.topic(StatusMetric), Offline, 1, true)
	po.SetConnectionLostHandler(func(_ paho.Client, err error) {
		select {
		case lost <- err:
		default:
		}
	})
	c := paho.NewClient(po)
	tok := c.Connect()
	select {
	case <-tok.Done():
	case <-ctx.Done():
		go c.Disconnect(0) // the attempt ends by its own timeout
		return nil, ctx.Err()
	}
	if err := tok.Error(); err != nil {
		return nil, explain(b.broker, err)
	}
	return c, nil
}

// dial opens the broker connection for the client library: TCP, TLS for
// mqtts://, and the packet bound (limitConn) on what is read, so that no
// packet over MaxPacket is ever held whole.
func (b *Bridge) dial(_ *url.URL, _ paho.ClientOptions) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), connectTimeout)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", b.broker.Addr())
	if err != nil {
		return nil, err
	}
	if b.broker.TLS {
		tc := tls.Client(c, &tls.Config{RootCAs: b.o.RootCAs, ServerName: b.broker.Host, MinVersion: tls.VersionTLS12})
		if err := tc.HandshakeContext(ctx); err != nil {
			c.Close()
			return nil, fmt.Errorf("%w: %w", errHandshake, err)
		}
		c = tc
	}
	return newLimitConn(c, MaxPacket, func(int) { b.oversize.Add(1) }), nil
}

// message is one publish of a batch.
type message struct {
	topic   string
	payload []byte
	retain  bool
}

// send publishes msgs at QoS 1 without waiting between them, then waits
// for every acknowledgement (publishTimeout at most in all).
func (b *Bridge) send(ctx context.Context, c paho.Client, msgs ...message) error {
	toks := make([]paho.Token, len(msgs))
	for i, m := range msgs {
		toks[i] = c.Publish(m.topic, 1, m.retain, m.payload)
	}
	t := time.NewTimer(publishTimeout)
	defer t.Stop()
	for i, tok := range toks {
		select {
		case <-tok.Done():
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			b.publishErrors.Add(1)
			return fmt.Errorf("%w: %s within %s", ErrPublish, msgs[i].topic, publishTimeout)
		}
		if err := tok.Error(); err != nil {
			b.publishErrors.Add(1)
			return fmt.Errorf("%w: %s: %v", ErrPublish, msgs[i].topic, err)
		}
		b.published.Add(1)
	}
	return nil
}

// current is r on every topic, retained: what a subscriber that arrives
// later must see.
func (b *Bridge) current(r Publication) []message {
	msgs := make([]message, 0, len(r.Values)+1)
	for _, v := range r.Values {
		msgs = append(msgs, message{b.topic(v.Metric), []byte(v.Value), true})
	}
	return append(msgs, message{b.topic(StateMetric), r.State, true})
}

// backlog is older readings on the state topic only, not retained, oldest
// first.
func (b *Bridge) backlog(rs []Publication) []message {
	msgs := make([]message, len(rs))
	for i, r := range rs {
		msgs[i] = message{b.topic(StateMetric), r.State, false}
	}
	return msgs
}

// flush publishes what the queue holds: the newest first on every topic,
// retained, then the older ones as backlog. With an empty queue and
// republish set, the latest reading goes out again (a broker that restarted
// without persistence has lost its retained values).
func (b *Bridge) flush(ctx context.Context, c paho.Client, republish bool) (older []Publication, err error) {
	rs := b.q.takeAll()
	if len(rs) == 0 {
		b.mu.Lock()
		r, ok := b.latest, b.hasLatest
		b.mu.Unlock()
		if republish && ok {
			return nil, b.send(ctx, c, b.current(r)...)
		}
		return nil, nil
	}
	newest := rs[len(rs)-1]
	if err := b.send(ctx, c, b.current(newest)...); err != nil {
		b.q.putBack(rs)
		return nil, err
	}
	b.newestSent = newest.Time
	if err := b.backfill(ctx, c, rs[0].Time); err != nil {
		b.q.putBack(rs[:len(rs)-1])
		return nil, err
	}
	return rs[:len(rs)-1], nil
}

func (b *Bridge) sendBacklog(ctx context.Context, c paho.Client, rs []Publication) error {
	if len(rs) > 0 {
		if err := b.send(ctx, c, b.backlog(rs)...); err != nil {
			b.q.putBack(rs)
			return err
		}
	}
	if b.newestSent.After(b.filled) {
		b.filled = b.newestSent
	}
	return nil
}

// backfill sends, from Backfill, the readings after filled (every one up
// to it is delivered) and before to (the oldest in hand): those the full
// queue dropped. With nothing delivered yet (a broker lost before it
// acknowledged the first reading), every dropped reading is missing, so
// it starts at the oldest the queue dropped. It advances filled with each
// batch acknowledged, so a connection lost halfway resumes where it
// stopped.
func (b *Bridge) backfill(ctx context.Context, c paho.Client, to time.Time) error {
	_, dropped := b.q.stats()
	if b.o.Backfill == nil || dropped == b.seenDropped {
		return nil
	}
	from := b.filled.Add(time.Millisecond)
	if b.filled.IsZero() {
		from = b.q.oldestDropped()
	}
	if from.IsZero() || !from.Before(to) {
		b.seenDropped = dropped
		return nil
	}
	batchLen := max(1, b.o.BackfillRate/backfillBatches)
	pause := time.Second / backfillBatches
	batch := make([]Publication, 0, batchLen)
	n := 0
	sendBatch := func() error {
		if len(batch) == 0 {
			return nil
		}
		if err := b.send(ctx, c, b.backlog(batch)...); err != nil {
			return err
		}
		n += len(batch)
		b.backfilled.Add(uint64(len(batch)))
		b.filled = batch[len(batch)-1].Time
		batch = batch[:0]
		t := time.NewTimer(pause)
		defer t.Stop()
		select {
		case <-t.C:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	err := b.o.Backfill(ctx, from, to, func(r Publication) error {
		batch = append(batch, r)
		if len(batch) < batchLen {
			return nil
		}
		return sendBatch()
	})
	if err == nil {
		err = sendBatch()
	}
	if n > 0 && b.o.OnBackfill != nil {
		b.o.OnBackfill(n, from, to)
	}
	if err != nil {
		return fmt.Errorf("mqtt: back-fill from history: %w", err)
	}
	b.seenDropped = dropped
	return nil
}

// announce sends the availability, the discovery configs (with the
// hand-over from the other form at the first announce of a run) and the
// alerts' state.
func (b *Bridge) announce(ctx context.Context, c paho.Client) error {
	if err := b.send(ctx, c, message{b.topic(StatusMetric), []byte(Online), true}); err != nil {
		return err
	}
	steps, err := b.discovery(!b.handedOver)
	if err != nil {
		return err
	}
	for i, msgs := range steps {
		if i > 0 {
			t := time.NewTimer(b.o.HandoverPause)
			select {
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			case <-t.C:
			}
		}
		if err := b.send(ctx, c, msgs...); err != nil {
			return err
		}
	}
	b.handedOver = true
	return b.sendAlerts(ctx, c, true)
}

// serve runs one connection until it is lost, a publish fails or ctx ends.
func (b *Bridge) serve(ctx context.Context, c paho.Client, lost chan error) error {
	older, err := b.flush(ctx, c, true)
	if err != nil {
		return err
	}
	if err := b.announce(ctx, c); err != nil {
		return err
	}
	if err := b.subscribe(ctx, c); err != nil {
		return err
	}
	b.connects.Add(1)
	b.setState(link.Connected, "", 0)
	if err := b.sendBacklog(ctx, c, older); err != nil {
		return err
	}
	var birth <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-lost:
			return fmt.Errorf("mqtt: connection to %s lost: %w", b.broker, err)
		case <-b.wake:
			older, err := b.flush(ctx, c, false)
			if err == nil {
				err = b.sendBacklog(ctx, c, older)
			}
			if err == nil {
				err = b.sendAlerts(ctx, c, false)
			}
			if err == nil {
				err = b.sendEvents(ctx, c)
			}
			if err != nil {
				return err
			}
		case <-b.haOnline:
			if birth == nil {
				birth = time.After(time.Duration(b.o.Rand() * float64(b.o.BirthDelay)))
			}
		case <-birth:
			birth = nil
			if err := b.announce(ctx, c); err != nil {
				return err
			}
			older, err := b.flush(ctx, c, true)
			if err == nil {
				err = b.sendBacklog(ctx, c, older)
			}
			if err != nil {
				return err
			}
		}
	}
}

func (b *Bridge) subscribe(ctx context.Context, c paho.Client) error {
	type sub struct {
		h   paho.MessageHandler
		qos byte
	}
	// QoS 0 for the hub: a dashboard wants the latest value, not a
	// redelivered old one. QoS 1 for commands: an alert pushed by an
	// automation must arrive.
	subs := map[string]sub{}
	if b.o.Subscribe != "" {
		subs[b.o.Subscribe] = sub{b.onMessage, 0}
	}
	if b.o.Discovery != "" {
		subs[b.o.Discovery+"/status"] = sub{b.onHAStatus, 0}
	}
	if b.o.OnCommand != nil && !b.commandInSubscribe() {
		subs[b.topic(CommandMetric)] = sub{b.onCommand, 1}
	}
	for filter, s := range subs {
		tok := c.Subscribe(filter, s.qos, s.h)
		t := time.NewTimer(publishTimeout)
		select {
		case <-tok.Done():
			t.Stop()
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
			return fmt.Errorf("%w: subscribe %s within %s", ErrPublish, filter, publishTimeout)
		}
		if err := tok.Error(); err != nil {
			return fmt.Errorf("mqtt: subscribe %s: %w", filter, err)
		}
	}
	return nil
}

// onMessage runs on the client library's goroutine: it checks the bounds
// and hands the message on, never waiting.
//
// The device's own topics (<prefix>/<name>/...) come back whenever the
// subscription covers them, as the default sensors/# does. They are not
// handed on: the dashboard shows the device's readings already, and a
// device must not appear as a stranger among the other sources of its own
// page. Other devices' command and client topics (control) are not handed
// on either: one client's messages and session must not reach every
// browser.
func (b *Bridge) onMessage(c paho.Client, m paho.Message) {
	if b.o.OnCommand != nil && m.Topic() == b.topic(CommandMetric) {
		b.onCommand(c, m)
		return
	}
	b.received.Add(1)
	if strings.HasPrefix(m.Topic(), b.topic("")) {
		b.own.Add(1)
		return
	}
	if b.control(m.Topic()) {
		return
	}
	if len(m.Payload()) > b.o.MaxPayload || len(m.Topic()) > maxTopicLen {
		b.sizeDropped.Add(1)
		return
	}
	now := b.o.Now()
	if !b.lim.Allow(now) {
		b.rateDropped.Add(1)
		return
	}
	b.passed.Add(1)
	b.o.OnMessage(NewHubMessage(m.Topic(), m.Payload(), now))
}

// onHAStatus notes Home Assistant's birth message; serve answers it.
func (b *Bridge) onHAStatus(_ paho.Client, m paho.Message) {
	if string(m.Payload()) != Online {
		return
	}
	select {
	case b.haOnline <- struct{}{}:
	default:
	}
}

// goodbye is the clean stop: offline, retained, then disconnect (which
// discards the will).
func (b *Bridge) goodbye(c paho.Client) {
	tok := c.Publish(b.topic(StatusMetric), 1, true, Offline)
	if tok.WaitTimeout(shutdownPublish) && tok.Error() == nil {
		b.published.Add(1)
	}
	c.Disconnect(disconnectQuiet)
	b.setState(link.Disconnected, ReasonStopped, 0)
}
