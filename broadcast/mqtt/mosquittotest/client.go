package mosquittotest

import (
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// Wait is the deadline for anything a broker or a client under test must
// do: generous, so tests hold on a loaded machine.
const Wait = 60 * time.Second

// Msg is one message a Watcher saw.
type Msg struct {
	Topic    string
	Payload  string
	Retained bool // delivered from the broker's retained store
	At       time.Time
}

// Watcher is an independent MQTT client (Paho, as a user's program would
// be) recording every message on its filter. It reconnects and subscribes
// again by itself when the broker restarts.
type Watcher struct {
	mu   sync.Mutex
	msgs []Msg
	c    paho.Client
}

var clientSeq atomic.Int64

func (b *Broker) clientOpts(prefix string) *paho.ClientOptions {
	return paho.NewClientOptions().AddBroker("tcp://" + b.Addr()).
		SetClientID(prefix + "-" + strconv.FormatInt(clientSeq.Add(1), 10))
}

// Watch subscribes filter at QoS 1 and records what arrives. It returns
// once the broker has acknowledged the subscription, so that a message
// published after Watch returns is seen.
func (b *Broker) Watch(t testing.TB, filter string) *Watcher {
	t.Helper()
	if b.CAFile != "" {
		t.Fatal("mosquittotest: Watch speaks plain TCP only")
	}
	w := &Watcher{}
	subscribed := make(chan error, 1)
	o := b.clientOpts("watcher").
		SetAutoReconnect(true).SetConnectRetry(true).SetConnectRetryInterval(100 * time.Millisecond).
		SetMaxReconnectInterval(500 * time.Millisecond)
	o.SetOnConnectHandler(func(c paho.Client) {
		tok := c.Subscribe(filter, 1, func(_ paho.Client, m paho.Message) {
			w.mu.Lock()
			w.msgs = append(w.msgs, Msg{m.Topic(), string(m.Payload()), m.Retained(), time.Now()})
			w.mu.Unlock()
		})
		// The handler runs again at every reconnect; only the first
		// subscription is waited for, and nothing here may block.
		go func() {
			tok.WaitTimeout(Wait)
			select {
			case subscribed <- tok.Error():
			default:
			}
		}()
	})
	w.c = paho.NewClient(o)
	if tok := w.c.Connect(); !tok.WaitTimeout(Wait) || tok.Error() != nil {
		t.Fatalf("mosquittotest: watcher connect: %v", tok.Error())
	}
	t.Cleanup(func() { w.c.Disconnect(0) })
	select {
	case err := <-subscribed:
		if err != nil {
			t.Fatalf("mosquittotest: watcher subscribe %s: %v", filter, err)
		}
	case <-time.After(Wait):
		t.Fatalf("mosquittotest: watcher subscribe %s: no acknowledgement within %s", filter, Wait)
	}
	return w
}

// All is every message so far, in arrival order.
func (w *Watcher) All() []Msg {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]Msg(nil), w.msgs...)
}

// Next returns the first message at index from or later that matches, and
// its index; it fails the test after Wait.
func (w *Watcher) Next(t testing.TB, from int, what string, match func(Msg) bool) (Msg, int) {
	t.Helper()
	deadline := time.Now().Add(Wait)
	for {
		msgs := w.All()
		for i := from; i < len(msgs); i++ {
			if match(msgs[i]) {
				return msgs[i], i
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("mosquittotest: no %s within %s; saw %d messages: %v", what, Wait, len(msgs), msgs)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// OnTopic matches messages on topic.
func OnTopic(topic string) func(Msg) bool {
	return func(m Msg) bool { return m.Topic == topic }
}

// Publish sends payloads to topic at QoS 1 as another client would.
func (b *Broker) Publish(t testing.TB, topic string, retain bool, payloads ...string) {
	t.Helper()
	c := paho.NewClient(b.clientOpts("pub"))
	if tok := c.Connect(); !tok.WaitTimeout(Wait) || tok.Error() != nil {
		t.Fatalf("mosquittotest: publisher connect: %v", tok.Error())
	}
	defer c.Disconnect(100)
	for _, p := range payloads {
		if tok := c.Publish(topic, 1, retain, p); !tok.WaitTimeout(Wait) || tok.Error() != nil {
			t.Fatalf("mosquittotest: publish: %v", tok.Error())
		}
	}
}
