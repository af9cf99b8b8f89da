package systemd

import (
	"context"
	"io"
	"log/slog"
	"os"
	"sync"

	"github.com/coreos/go-systemd/v22/journal"
)

// Prefix says when a log handler starts each line with the sd-daemon
// priority ("<4>"), which journald strips and stores as the PRIORITY field
// (see sd-daemon(3)), so `journalctl -p warning` shows warnings and errors.
type Prefix int

const (
	// PrefixAuto prefixes when w is the stream journald gave the process:
	// os.Stderr or os.Stdout, when its device and inode match
	// JOURNAL_STREAM.
	PrefixAuto Prefix = iota
	// PrefixAlways prefixes every line, e.g. when stderr is piped through a
	// program that forwards to journald or syslog.
	PrefixAlways
	// PrefixNever never prefixes.
	PrefixNever
)

// LogOptions configure NewLogHandlerWith.
type LogOptions struct {
	Level  slog.Leveler // minimum level; nil means slog.LevelInfo
	Prefix Prefix
}

// NewLogHandler returns a handler writing one key=value line per event to w
// (slog's text format: `level=WARN msg="..." key=value`), with the sd-daemon
// priority prefix when w is journald's stream. It is
// NewLogHandlerWith(w, LogOptions{Level: level}).
//
//	w is journald's stream (JOURNAL_STREAM matches) -> "<4>level=WARN msg=..." (no time=: journald stamps lines)
//	otherwise (a terminal, a file, a pipe)          -> "time=... level=WARN msg=..."
func NewLogHandler(w io.Writer, level slog.Level) slog.Handler {
	return NewLogHandlerWith(w, LogOptions{Level: level})
}

// NewLogHandlerWith is NewLogHandler with every option. The priorities:
//
//	level >= slog.LevelError -> <3> (err)
//	level >= slog.LevelWarn  -> <4> (warning)
//	level >= slog.LevelInfo  -> <6> (info)
//	below                    -> <7> (debug)
//
// Newlines inside values are quoted by the text format, so a record is
// always exactly one line, and journald one entry.
func NewLogHandlerWith(w io.Writer, o LogOptions) slog.Handler {
	prefix := o.Prefix == PrefixAlways || o.Prefix == PrefixAuto && isJournalStream(w)
	if !prefix {
		return slog.NewTextHandler(w, &slog.HandlerOptions{Level: o.Level})
	}
	out := &prefixWriter{w: w}
	inner := slog.NewTextHandler(out, &slog.HandlerOptions{
		Level: o.Level,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			// journald records its own, more precise, timestamp.
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	})
	return &priorityHandler{inner: inner, out: out}
}

// priorityHandler sets the prefix for a record, then lets the text handler
// write it. slog's text handler writes each record with exactly one Write,
// so the prefix and the line leave in one write(2) and cannot interleave.
type priorityHandler struct {
	inner slog.Handler
	out   *prefixWriter // shared with handlers derived by WithAttrs/WithGroup
}

func (h *priorityHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.inner.Enabled(ctx, l)
}

func (h *priorityHandler) Handle(ctx context.Context, r slog.Record) error {
	h.out.mu.Lock()
	defer h.out.mu.Unlock()
	h.out.prefix = priority(r.Level)
	return h.inner.Handle(ctx, r)
}

func (h *priorityHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &priorityHandler{inner: h.inner.WithAttrs(as), out: h.out}
}

func (h *priorityHandler) WithGroup(name string) slog.Handler {
	return &priorityHandler{inner: h.inner.WithGroup(name), out: h.out}
}

// prefixWriter prepends the current record's priority to each Write.
type prefixWriter struct {
	mu     sync.Mutex // held by priorityHandler.Handle across prefix and Write
	w      io.Writer
	prefix string // guarded by mu
	buf    []byte // guarded by mu; reused to keep one write per line
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.buf = append(append(p.buf[:0], p.prefix...), b...)
	if _, err := p.w.Write(p.buf); err != nil {
		return 0, err
	}
	return len(b), nil
}

// priority maps a slog level to the sd-daemon prefix (syslog priorities).
func priority(l slog.Level) string {
	switch {
	case l >= slog.LevelError:
		return "<3>"
	case l >= slog.LevelWarn:
		return "<4>"
	case l >= slog.LevelInfo:
		return "<6>"
	default:
		return "<7>"
	}
}

// isJournalStream reports whether w is the stdout or stderr that journald
// connected to the process. go-systemd compares the descriptor's device and
// inode with JOURNAL_STREAM, which tells journald's stream apart from a
// redirect done later (`sensord 2>log`), which must not get prefixes. A
// malformed JOURNAL_STREAM counts as no journal.
func isJournalStream(w io.Writer) bool {
	var is bool
	switch w {
	case os.Stderr:
		is, _ = journal.StderrIsJournalStream()
	case os.Stdout:
		is, _ = journal.StdoutIsJournalStream()
	}
	return is
}
