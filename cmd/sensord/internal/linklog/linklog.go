// Package linklog turns a link's state changes into the lines journalctl
// -p warning shows: a link that goes down is one WARN with the reason and
// the likely fix, a repeat at most every RepeatEvery while it stays down,
// and one INFO when it is back, with how long it was down and how many
// attempts failed.
//
// # Concurrency
//
// A Log's methods may be called from any goroutine.
package linklog

import (
	"log/slog"
	"sync"
	"time"
)

// RepeatEvery bounds the "still down" lines while a link stays down: one a
// minute keeps the journal readable.
const RepeatEvery = time.Minute

// Log is one link's log (client mode's connection to -url, say).
type Log struct {
	fix string
	log *slog.Logger
	now func() time.Time

	words Words

	mu         sync.Mutex // guards the fields below
	down       bool
	since      time.Time
	failures   int
	lastRepeat time.Time
}

// Words are a log's messages. A link's are "<name> link down", "<name>
// link still down", "<name> link restored" and "<name> connected".
type Words struct {
	Down, StillDown, Back string
	// First is the line of the first success; "" logs none.
	First string
}

// New returns the log of the link called name ("client mode"), whose
// WARN lines suggest fix, on log, timed by now.
func New(name, fix string, log *slog.Logger, now func() time.Time) *Log {
	return NewWords(Words{Down: name + " link down", StillDown: name + " link still down", Back: name + " link restored", First: name + " connected"}, fix, log, now)
}

// NewWords is New for a part that is not a link (the history's writes):
// the same lines, at the same rate, in its own words.
func NewWords(w Words, fix string, log *slog.Logger, now func() time.Time) *Log {
	return &Log{words: w, fix: fix, log: log, now: now}
}

// Up records a working link; attrs go on its line.
func (l *Log) Up(attrs ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.down {
		l.log.Info(l.words.Back, append(attrs, "down_for", l.now().Sub(l.since).Round(time.Second), "failed_attempts", l.failures)...)
	} else if l.since.IsZero() && l.words.First != "" {
		l.log.Info(l.words.First, attrs...)
	}
	l.down, l.failures, l.since = false, 0, l.now()
}

// Failed records a failed attempt or a lost link, and why.
func (l *Log) Failed(reason string, attrs ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	l.failures++
	switch {
	case !l.down:
		l.down, l.since, l.lastRepeat = true, now, now
		l.log.Warn(l.words.Down, append(attrs, "reason", reason, "fix", l.fix)...)
	case now.Sub(l.lastRepeat) >= RepeatEvery:
		l.lastRepeat = now
		l.log.Warn(l.words.StillDown, append(attrs, "down_for", now.Sub(l.since).Round(time.Second), "failed_attempts", l.failures, "reason", reason, "fix", l.fix)...)
	}
}
