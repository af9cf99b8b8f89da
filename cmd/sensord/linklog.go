package main

import (
	"log/slog"
	"sync"
	"time"
)

// linkLog turns a link's state changes (client mode's connection to -url;
// the MQTT bridge's to its broker) into the lines journalctl -p warning
// shows: one WARN when the link goes down, with the reason and the likely
// fix, at most one repeat per repeatEvery while it stays down, and one INFO
// when it is back, with how long it was down and how many attempts failed.
type linkLog struct {
	name string // "client mode", "mqtt"
	fix  string
	log  *slog.Logger
	now  func() time.Time

	mu         sync.Mutex // guards the fields below
	down       bool
	since      time.Time
	failures   int
	lastRepeat time.Time
}

func newLinkLog(name, fix string, log *slog.Logger, now func() time.Time) *linkLog {
	return &linkLog{name: name, fix: fix, log: log, now: now}
}

// up records a working link.
func (l *linkLog) up(attrs ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.down {
		l.log.Info(l.name+" link restored", append(attrs, "down_for", l.now().Sub(l.since).Round(time.Second), "failed_attempts", l.failures)...)
	} else if l.since.IsZero() {
		l.log.Info(l.name+" connected", attrs...)
	}
	l.down, l.failures, l.since = false, 0, l.now()
}

// failed records a failed attempt or a lost link.
func (l *linkLog) failed(reason string, attrs ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	l.failures++
	switch {
	case !l.down:
		l.down, l.since, l.lastRepeat = true, now, now
		l.log.Warn(l.name+" link down", append(attrs, "reason", reason, "fix", l.fix)...)
	case now.Sub(l.lastRepeat) >= repeatEvery:
		l.lastRepeat = now
		l.log.Warn(l.name+" link still down", append(attrs, "down_for", now.Sub(l.since).Round(time.Second), "failed_attempts", l.failures, "reason", reason, "fix", l.fix)...)
	}
}
