package mqtt

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"sensord/broadcast/mqtt/internal/mosquittotest"
)

// waitLong is the deadline for anything the broker or the bridge must do:
// generous, so the tests hold on a loaded machine.
const waitLong = 30 * time.Second

// got is one message a watcher saw.
type got struct {
	Topic    string
	Payload  string
	Retained bool
	At       time.Time
}

// watcher is an independent MQTT client (Paho, as a user's would be)
// recording every message on its filter.
type watcher struct {
	mu   sync.Mutex
	msgs []got
	c    paho.Client
}

var clientSeq atomic.Int64

func watch(t *testing.T, b *mosquittotest.Broker, filter string) *watcher {
	t.Helper()
	w := &watcher{}
	o := paho.NewClientOptions().AddBroker("tcp://" + b.Addr()).
		SetClientID("watcher-" + strconv.FormatInt(clientSeq.Add(1), 10)).
		SetAutoReconnect(true).SetConnectRetry(true).SetConnectRetryInterval(100 * time.Millisecond).
		SetMaxReconnectInterval(500 * time.Millisecond).SetResumeSubs(true).SetCleanSession(false)
	o.SetOnConnectHandler(func(c paho.Client) {
		c.Subscribe(filter, 1, func(_ paho.Client, m paho.Message) {
			w.mu.Lock()
			w.msgs = append(w.msgs, got{m.Topic(), string(m.Payload()), m.Retained(), time.Now()})
			w.mu.Unlock()
		})
	})
	w.c = paho.NewClient(o)
	if tok := w.c.Connect(); !tok.WaitTimeout(waitLong) || tok.Error() != nil {
		t.Fatalf("watcher connect: %v", tok.Error())
	}
	t.Cleanup(func() { w.c.Disconnect(0) })
	return w
}

func (w *watcher) all() []got {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]got(nil), w.msgs...)
}

// wait returns the first message from index from on that matches.
func (w *watcher) wait(t *testing.T, from int, what string, match func(got) bool) (got, int) {
	t.Helper()
	deadline := time.Now().Add(waitLong)
	for {
		msgs := w.all()
		for i := from; i < len(msgs); i++ {
			if match(msgs[i]) {
				return msgs[i], i
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %s; saw %d messages: %v", what, waitLong, len(msgs), msgs)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func onTopic(topic string) func(got) bool {
	return func(g got) bool { return g.Topic == topic }
}

// publishRaw sends one message as another client would.
func publishRaw(t *testing.T, b *mosquittotest.Broker, topic string, retain bool, payloads ...string) {
	t.Helper()
	c := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + b.Addr()).
		SetClientID("pub-" + strconv.FormatInt(clientSeq.Add(1), 10)))
	if tok := c.Connect(); !tok.WaitTimeout(waitLong) || tok.Error() != nil {
		t.Fatalf("publisher connect: %v", tok.Error())
	}
	defer c.Disconnect(100)
	for _, p := range payloads {
		if tok := c.Publish(topic, 1, retain, p); !tok.WaitTimeout(waitLong) || tok.Error() != nil {
			t.Fatalf("publish: %v", tok.Error())
		}
	}
}

// reading is a Reading the way the daemon builds one.
func reading(temp, hum string, ms int64) Reading {
	return Reading{
		Values: []Value{{"temperature", temp}, {"humidity", hum}},
		State:  fmt.Appendf(nil, `{"type":"sensor_update","temperature":%s,"humidity":%s,"timestamp":%d}`, temp, hum, ms),
		Time:   time.UnixMilli(ms),
	}
}

// run starts b.Run and stops it (cleanly) at cleanup.
func run(t *testing.T, b *Bridge) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { b.Run(ctx); close(done) }()
	stop = func() {
		cancel()
		select {
		case <-done:
		case <-time.After(waitLong):
			t.Errorf("Run did not return %s after cancel", waitLong)
		}
	}
	t.Cleanup(stop)
	return stop
}

func waitState(t *testing.T, b *Bridge, state string) State {
	t.Helper()
	deadline := time.Now().Add(waitLong)
	for {
		s := b.State()
		if s.State == state {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("bridge state %+v, want %s within %s", s, state, waitLong)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func waitStats(t *testing.T, b *Bridge, what string, ok func(Stats) bool) Stats {
	t.Helper()
	deadline := time.Now().Add(waitLong)
	for {
		s := b.Stats()
		if ok(s) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("stats %+v: no %s within %s", s, what, waitLong)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
