package mqtt

import (
	"context"
	"sync"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// AlertMetric is the topic level of the alerts: each rule's latest alert
// message is retained on <prefix>/<name>/alert/<rule>, and whether it is
// raised on <prefix>/<name>/alert/<rule>/state, ON or OFF (Home
// Assistant's binary sensor payloads), for every rule from the start,
// raised or not.
const AlertMetric = "alert"

// The alert state payloads.
const (
	AlertOn  = "ON"
	AlertOff = "OFF"
)

// AlertRule is an alert rule announced to Home Assistant as a binary
// sensor of device class problem, on while the rule's alert is raised.
type AlertRule struct {
	Name  string // the rule's name: a topic level and part of the unique_id
	Title string // shown in Home Assistant, e.g. "Alert hot"
}

// alertState is the latest state and message of each rule and which of
// them the broker has not acknowledged yet. Only the latest counts: the
// broker retains one message a topic, so an alert raised and cleared
// while the broker was away reaches it as cleared.
type alertState struct {
	mu      sync.Mutex
	latest  map[string]alertNow
	pending map[string]bool
}

type alertNow struct {
	raised bool
	msg    []byte // nil: none yet in this run
}

// AlertTopic is <prefix>/<name>/alert/<rule>.
func (b *Bridge) AlertTopic(rule string) string { return b.topic(AlertMetric + "/" + rule) }

// PublishAlert hands the bridge rule's state and its alert message (the
// alert JSON; nil for a rule that has none yet, whose state alone is
// published) to retain on AlertTopic(rule); it returns at once.
func (b *Bridge) PublishAlert(rule string, raised bool, msg []byte) {
	a := &b.alerts
	a.mu.Lock()
	if a.latest == nil {
		a.latest, a.pending = map[string]alertNow{}, map[string]bool{}
	}
	if msg == nil {
		msg = a.latest[rule].msg
	}
	a.latest[rule], a.pending[rule] = alertNow{raised: raised, msg: msg}, true
	a.mu.Unlock()
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// sendAlerts publishes the alert messages the broker lacks (all of them
// with all, after a connect), retained; on failure they stay pending.
func (b *Bridge) sendAlerts(ctx context.Context, c paho.Client, all bool) error {
	a := &b.alerts
	a.mu.Lock()
	var msgs []message
	sent := map[string]bool{}
	for rule, st := range a.latest {
		if all || a.pending[rule] {
			if st.msg != nil {
				msgs = append(msgs, message{b.AlertTopic(rule), st.msg, true})
			}
			on := AlertOff
			if st.raised {
				on = AlertOn
			}
			msgs = append(msgs, message{b.AlertTopic(rule) + "/" + StateMetric, []byte(on), true})
			sent[rule] = true
			delete(a.pending, rule)
		}
	}
	a.mu.Unlock()
	if len(msgs) == 0 {
		return nil
	}
	err := b.send(ctx, c, msgs...)
	if err != nil {
		a.mu.Lock()
		for rule := range sent {
			a.pending[rule] = true
		}
		a.mu.Unlock()
	}
	return err
}
