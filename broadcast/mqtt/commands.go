package mqtt

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"

	paho "github.com/eclipse/paho.mqtt.golang"

	"sensord/broadcast"
	"sensord/internal/ratelimit"
)

// CommandMetric is the topic level of the command topic,
// <prefix>/<name>/send: what arrives there goes to Opts.OnCommand (a
// message for the device's WebSocket clients).
const CommandMetric = "send"

// ClientMetric is the topic level of the WebSocket clients' events:
// <prefix>/<name>/client/<event> (see PublishEvent).
const ClientMetric = "client"

// Bounds of the clients' events published to the broker.
const (
	// EventQueueLen bounds the events waiting for the broker: a burst of
	// connects after a Wi-Fi blip is a few dozen. Past it new events are
	// dropped and counted.
	EventQueueLen = 64
	// MaxEventPayload bounds one event's payload: a client's message up
	// to 16 KiB (requests and answers of a flow are far smaller), with
	// room for its session and path.
	MaxEventPayload = 16 << 10
	// EventRate and EventBurst bound the events a second: clients that
	// chatter or reconnect in a loop must not flood the broker and every
	// flow subscribed to it.
	EventRate  = 20
	EventBurst = 40
)

// eventQueue holds the events not yet published.
type eventQueue struct {
	mu  sync.Mutex // guards q
	q   []message
	lim *ratelimit.Bucket

	published, dropped atomic.Uint64
}

// ClientTopic is <prefix>/<name>/client/<event>.
func (b *Bridge) ClientTopic(event string) string { return b.topic(ClientMetric + "/" + event) }

// PublishEvent hands the bridge one WebSocket client event for
// ClientTopic(event) (not retained) and returns at once. An event over
// MaxEventPayload, over the rate bound, or finding EventQueueLen waiting
// is dropped and counted (Stats.EventsDropped), as is one that finds the
// broker away: events say what happens now.
func (b *Bridge) PublishEvent(event string, payload []byte) {
	e := &b.events
	if len(payload) > MaxEventPayload || !b.connected.Load() || !e.lim.Allow(b.o.Now()) {
		e.dropped.Add(1)
		return
	}
	e.mu.Lock()
	if len(e.q) >= EventQueueLen {
		e.mu.Unlock()
		e.dropped.Add(1)
		return
	}
	e.q = append(e.q, message{b.ClientTopic(event), payload, false})
	e.mu.Unlock()
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// sendEvents publishes the events waiting; those of a batch that fails
// are dropped and counted.
func (b *Bridge) sendEvents(ctx context.Context, c paho.Client) error {
	e := &b.events
	e.mu.Lock()
	msgs := e.q
	e.q = nil
	e.mu.Unlock()
	if len(msgs) == 0 {
		return nil
	}
	if err := b.send(ctx, c, msgs...); err != nil {
		e.dropped.Add(uint64(len(msgs)))
		return err
	}
	e.published.Add(uint64(len(msgs)))
	return nil
}

// commandInSubscribe reports whether the Subscribe filter takes the
// command topic in: then onMessage hands its messages to onCommand, and
// the topic gets no subscription of its own. Two subscriptions that
// overlap would bring each message twice (brokers may deliver one per
// matching subscription, and the client library gives each delivery to
// every matching handler): a push would go out twice.
func (b *Bridge) commandInSubscribe() bool {
	return b.o.Subscribe != "" && broadcast.MatchTopic(b.o.Subscribe, b.topic(CommandMetric))
}

// control reports whether topic is a device's control traffic under the
// prefix, any device's: its command topic or its clients' events. They
// are not readings, and are not passed to the dashboards: one client's
// messages and session are not for every browser.
func (b *Bridge) control(topic string) bool {
	rest, ok := strings.CutPrefix(topic, b.o.Prefix+"/")
	if !ok {
		return false
	}
	levels := strings.SplitN(rest, "/", 3) // name, metric, more
	if len(levels) < 2 {
		return false
	}
	return levels[1] == ClientMetric || (levels[1] == CommandMetric && len(levels) == 2)
}

// onCommand runs on the client library's goroutine: a message on the
// command topic goes to OnCommand unless it is a retained one (a command
// left on the broker would run again at every connect) or over
// MaxPacket's bound on what the bridge reads; both are counted.
func (b *Bridge) onCommand(_ paho.Client, m paho.Message) {
	b.commands.Add(1)
	if m.Retained() {
		b.commandsRetained.Add(1)
		return
	}
	b.o.OnCommand(m.Payload())
}
