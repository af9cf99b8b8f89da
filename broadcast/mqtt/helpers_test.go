package mqtt

import (
	"context"
	"fmt"
	"sensord/internal/link"
	"sensord/internal/testutil"
	"testing"
	"time"

	"sensord/broadcast/mqtt/mosquittotest"
)

// waitLong is the deadline for anything the broker or the bridge must do:
// generous, so the tests hold on a loaded machine.
const waitLong = mosquittotest.Wait

type got = mosquittotest.Msg

func watch(t *testing.T, b *mosquittotest.Broker, filter string) *mosquittotest.Watcher {
	return b.Watch(t, filter)
}

func onTopic(topic string) func(got) bool { return mosquittotest.OnTopic(topic) }

func publishRaw(t *testing.T, b *mosquittotest.Broker, topic string, retain bool, payloads ...string) {
	b.Publish(t, topic, retain, payloads...)
}

// reading is a Publication the way the daemon builds one.
func reading(temp, hum string, ms int64) Publication {
	return Publication{
		Values: []Value{{"temperature", temp}, {"humidity", hum}},
		State:  fmt.Appendf(nil, `{"type":"sensor_update","temperature":%s,"humidity":%s,"timestamp":%d}`, temp, hum, ms),
		Time:   time.UnixMilli(ms),
	}
}

// run starts b.Run and stops it (cleanly) at cleanup.
func run(t *testing.T, b *Bridge) (stop func()) {
	t.Helper()
	halt := testutil.Go(t, func(ctx context.Context) error { b.Run(ctx); return nil })
	return func() { halt() }
}

func waitState(t *testing.T, b *Bridge, state link.State) LinkState {
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
