package mqtt

import (
	"slices"
	"sync"
	"testing"

	"sensord/broadcast/mqtt/mosquittotest"
	"sensord/internal/link"
)

// The command topic reaches OnCommand once, also when the subscription
// takes it in; the devices' control topics never reach the hub; client
// events are published, not retained.
func TestCommandsArriveOnceAndControlTopicsSkipTheHub(t *testing.T) {
	t.Parallel()
	for _, subscribe := range []string{"sensors/#", "", "sensors/+/send"} {
		t.Run("subscribe "+subscribe, func(t *testing.T) {
			t.Parallel()
			broker := mosquittotest.Start(t, mosquittotest.Opts{})
			var mu sync.Mutex
			var hub, cmds []string
			o := Opts{URL: broker.URL(), Subscribe: subscribe,
				OnCommand: func(p []byte) { mu.Lock(); cmds = append(cmds, string(p)); mu.Unlock() }}
			if subscribe != "" {
				o.OnMessage = func(m HubMessage) { mu.Lock(); hub = append(hub, m.Topic); mu.Unlock() }
			}
			b := newBridge(t, o)
			run(t, b)
			waitState(t, b, link.Connected)
			w := watch(t, broker, "sensors/kitchen/client/#")
			publishRaw(t, broker, "sensors/kitchen/send", false, "one")
			publishRaw(t, broker, "sensors/garage/send", false, "not ours")
			publishRaw(t, broker, "sensors/garage/client/connect", false, "{}")
			publishRaw(t, broker, "sensors/kitchen/send/x", false, "deeper")
			publishRaw(t, broker, "sensors/kitchen/send", false, "two", "three")
			b.PublishEvent("connect", []byte(`{"event":"connect"}`))
			g, _ := w.Next(t, 0, "the event", onTopic("sensors/kitchen/client/connect"))
			if g.Payload != `{"event":"connect"}` || g.Retained {
				t.Errorf("event %+v", g)
			}
			// Messages on one subscription come in order: a copy of one
			// or two would come before three.
			waitStats(t, b, "three commands and the event acknowledged", func(st Stats) bool { return st.Commands >= 3 && st.EventsPublished >= 1 })
			mu.Lock()
			gotCmds, gotHub := slices.Clone(cmds), slices.Clone(hub)
			mu.Unlock()
			if !slices.Equal(gotCmds, []string{"one", "two", "three"}) {
				t.Errorf("commands %q, want one, two and three, once each", gotCmds)
			}
			for _, topic := range gotHub {
				if topic != "sensors/kitchen/status" && topic != "sensors/kitchen/send/x" {
					t.Errorf("the hub got %s", topic)
				}
			}
			if st := b.Stats(); st.Commands != 3 || st.EventsPublished != 1 {
				t.Errorf("stats %+v, want 3 commands and 1 event", st)
			}
		})
	}
}
