package link

import (
	"log/slog"
	"sync"
	"time"
)

// Log turns a link's successes and failures into the lines journalctl
// -p warning shows: a link that goes down is one WARN with the reason and
// the likely fix, a repeat at most every RepeatEvery while it stays down,
// and one INFO when it is back, with how long it was down and how many
// attempts failed.
type Log struct {
	fix   string
	log   *slog.Logger
	now   func() time.Time
	words Words

	mu     sync.Mutex // guards outage
	outage Outage
}

// Words are a log's messages. A link's are "<name> link down", "<name>
// link still down", "<name> link restored" and "<name> connected".
type Words struct {
	Down, StillDown, Back string
	// First is the line of the first success; "" logs none.
	First string
}

// NewLog returns the log of the link called name ("client mode"), whose
// WARN lines suggest fix, on log, timed by now.
func NewLog(name, fix string, log *slog.Logger, now func() time.Time) *Log {
	return NewLogWords(Words{Down: name + " link down", StillDown: name + " link still down", Back: name + " link restored", First: name + " connected"}, fix, log, now)
}

// NewLogWords is NewLog for a part that is not a link (the history's
// writes): the same lines, at the same rate, in its own words.
func NewLogWords(w Words, fix string, log *slog.Logger, now func() time.Time) *Log {
	return &Log{words: w, fix: fix, log: log, now: now}
}

// Up records a working link; attrs go on its line.
func (l *Log) Up(attrs ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	switch l.outage.Up() {
	case Back:
		l.log.Info(l.words.Back, append(attrs, "down_for", now.Sub(l.outage.Since()).Round(time.Second), "failed_attempts", l.outage.Failures())...)
	case First:
		if l.words.First != "" {
			l.log.Info(l.words.First, attrs...)
		}
	}
}

// Failed records a failed attempt or a lost link, and why.
func (l *Log) Failed(reason string, attrs ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	switch l.outage.Fail(now, "") {
	case Down:
		l.log.Warn(l.words.Down, append(attrs, "reason", reason, "fix", l.fix)...)
	case StillDown:
		l.log.Warn(l.words.StillDown, append(attrs, "down_for", now.Sub(l.outage.Since()).Round(time.Second), "failed_attempts", l.outage.Failures(), "reason", reason, "fix", l.fix)...)
	}
}
