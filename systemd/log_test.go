package systemd

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
)

func TestLogHandlerPriorityPrefixes(t *testing.T) {
	tests := []struct {
		level slog.Level
		want  string
	}{
		{slog.LevelError + 4, "<3>level=ERROR+4 msg=m k=v\n"},
		{slog.LevelError, "<3>level=ERROR msg=m k=v\n"},
		{slog.LevelWarn + 2, "<4>level=WARN+2 msg=m k=v\n"},
		{slog.LevelWarn, "<4>level=WARN msg=m k=v\n"},
		{slog.LevelInfo + 1, "<6>level=INFO+1 msg=m k=v\n"},
		{slog.LevelInfo, "<6>level=INFO msg=m k=v\n"},
		{slog.LevelDebug, "<7>level=DEBUG msg=m k=v\n"},
		{slog.LevelDebug - 4, "<7>level=DEBUG-4 msg=m k=v\n"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%v is %.3s", tt.level, tt.want), func(t *testing.T) {
			var buf bytes.Buffer
			log := slog.New(NewLogHandlerWith(&buf, LogOptions{Level: slog.LevelDebug - 4, Prefix: PrefixAlways}))
			log.Log(context.Background(), tt.level, "m", "k", "v")
			if got := buf.String(); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// statOf returns JOURNAL_STREAM's form, device:inode, of f.
func statOf(t *testing.T, f *os.File) string {
	t.Helper()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	return fmt.Sprintf("%d:%d", st.Dev, st.Ino)
}

// journalChild names, in the environment of this test binary run again as
// a child, the stream ("stderr" or "stdout") the child logs one warning to
// with NewLogHandler. The parent points that stream at a file, which stands
// in for journald's socket: the check is by device and inode, whatever the
// file is.
const journalChild = "SENSORD_TEST_JOURNAL_CHILD"

// TestLogHandlerJournalChild is the child's body; run directly it does
// nothing.
func TestLogHandlerJournalChild(t *testing.T) {
	w := map[string]io.Writer{"stderr": os.Stderr, "stdout": os.Stdout}[os.Getenv(journalChild)]
	if w == nil {
		return
	}
	slog.New(NewLogHandler(w, slog.LevelInfo)).Warn("systemd watchdog pings stopped", "reason", "sensor loop stuck")
}

func TestLogHandlerPrefixesOnlyJournaldsStream(t *testing.T) {
	dir := t.TempDir()
	open := func(name string) *os.File {
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		return f
	}
	const prefixed = "<4>level=WARN msg=\"systemd watchdog pings stopped\" reason=\"sensor loop stuck\""
	tests := []struct {
		name   string
		stream string // the child's stream that logs
		// journal says what JOURNAL_STREAM names: "self" (that stream),
		// "other" (another file), "" (unset) or a literal value.
		journal    string
		wantPrefix bool
	}{
		{"stderr is the stream JOURNAL_STREAM names", "stderr", "self", true},
		{"stdout is the stream JOURNAL_STREAM names", "stdout", "self", true},
		{"stderr is another file (redirected)", "stderr", "other", false},
		{"JOURNAL_STREAM unset", "stderr", "", false},
		{"JOURNAL_STREAM malformed", "stderr", "12345", false},
		{"JOURNAL_STREAM not numbers", "stderr", "a:b", false},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, other := open(fmt.Sprintf("out%d", i)), open(fmt.Sprintf("other%d", i))
			stream := tt.journal
			switch tt.journal {
			case "self":
				stream = statOf(t, out)
			case "other":
				stream = statOf(t, other)
			}
			cmd := exec.Command(os.Args[0], "-test.run=^TestLogHandlerJournalChild$")
			cmd.Env = append(os.Environ(), journalChild+"="+tt.stream, "JOURNAL_STREAM="+stream)
			cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
			if tt.stream == "stdout" {
				cmd.Stdout = out
			} else {
				cmd.Stderr = out
			}
			if err := cmd.Run(); err != nil {
				t.Fatalf("child: %v", err)
			}
			b, err := os.ReadFile(out.Name())
			if err != nil {
				t.Fatal(err)
			}
			first, _, _ := strings.Cut(string(b), "\n")
			if tt.wantPrefix && first != prefixed {
				t.Errorf("got %q, want %q (the priority and no time)", first, prefixed)
			}
			if !tt.wantPrefix && (!strings.HasPrefix(first, "time=") || !strings.Contains(first, " level=WARN ")) {
				t.Errorf("got %q, want time=... level=WARN ... without a priority", first)
			}
		})
	}

	journal := open("journal")
	for _, tt := range []struct {
		name       string
		prefix     Prefix
		wantPrefix bool
	}{
		{"PrefixAuto on a writer that is not the process's stream", PrefixAuto, false},
		{"PrefixNever", PrefixNever, false},
		{"PrefixAlways", PrefixAlways, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("JOURNAL_STREAM", statOf(t, journal))
			var buf bytes.Buffer
			_, prefixed := NewLogHandlerWith(&buf, LogOptions{Prefix: tt.prefix}).(*priorityHandler)
			if prefixed != tt.wantPrefix {
				t.Errorf("prefixed = %v, want %v", prefixed, tt.wantPrefix)
			}
		})
	}

	t.Run("other lines carry the time and no priority", func(t *testing.T) {
		t.Setenv("JOURNAL_STREAM", statOf(t, journal))
		var buf bytes.Buffer
		slog.New(NewLogHandler(&buf, slog.LevelInfo)).Info("hello")
		if got := buf.String(); !strings.HasPrefix(got, "time=") || !strings.HasSuffix(got, " level=INFO msg=hello\n") {
			t.Errorf("got %q, want time=... level=INFO msg=hello", got)
		}
	})
}

func TestLogHandlerKeepsAttrsAndGroups(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(NewLogHandlerWith(&buf, LogOptions{Prefix: PrefixAlways}))
	log.With("component", "poller").WithGroup("sensor").Error("read failed", "kind", "checksum")
	want := "<3>level=ERROR msg=\"read failed\" component=poller sensor.kind=checksum\n"
	if got := buf.String(); got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestLogHandlerWritesOneLinePerEvent(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(NewLogHandlerWith(&buf, LogOptions{Prefix: PrefixAlways}))
	log.Warn("two\nlines", "err", "a\nb\r\nc")
	want := "<4>level=WARN msg=\"two\\nlines\" err=\"a\\nb\\r\\nc\"\n"
	if got := buf.String(); got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// writeCounter records each Write call separately, as a stream socket
// would see them.
type writeCounter struct {
	mu     sync.Mutex
	writes []string
}

func (w *writeCounter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.writes = append(w.writes, string(p))
	return len(p), nil
}

func TestLogHandlerConcurrentLinesKeepTheirOwnPriority(t *testing.T) {
	w := &writeCounter{}
	root := slog.New(NewLogHandlerWith(w, LogOptions{Level: slog.LevelDebug, Prefix: PrefixAlways}))
	levels := []slog.Level{slog.LevelDebug, slog.LevelInfo, slog.LevelWarn, slog.LevelError}
	const perGoroutine = 200
	var wg sync.WaitGroup
	for i, l := range levels {
		// Derived handlers share the writer: the prefix must still match.
		log := root.With("g", i)
		wg.Go(func() {
			for range perGoroutine {
				log.Log(context.Background(), l, "x")
			}
		})
	}
	wg.Wait()
	if got, want := len(w.writes), len(levels)*perGoroutine; got != want {
		t.Fatalf("%d writes, want %d (one per record)", got, want)
	}
	for _, line := range w.writes {
		var want string
		switch {
		case strings.Contains(line, "level=DEBUG"):
			want = "<7>"
		case strings.Contains(line, "level=INFO"):
			want = "<6>"
		case strings.Contains(line, "level=WARN"):
			want = "<4>"
		case strings.Contains(line, "level=ERROR"):
			want = "<3>"
		}
		if !strings.HasPrefix(line, want) || strings.Count(line, "\n") != 1 {
			t.Fatalf("line %q: want prefix %s and exactly one newline", line, want)
		}
	}
}

// FuzzLogHandlerOneLine: whatever a sensor error or a client sends ends up
// in a log value, a record stays one line with the right prefix.
func FuzzLogHandlerOneLine(f *testing.F) {
	f.Add("read failed", "err", "dht22: checksum mismatch", int8(8))
	f.Add("two\nlines", "k\n=", "<3>fake\npriority", int8(4))
	f.Add("", "", "\x00\xff\r\n", int8(-4))
	f.Add("msg", "a b", "\u2028\u0085", int8(0))
	f.Fuzz(func(t *testing.T, msg, key, value string, level int8) {
		var buf bytes.Buffer
		log := slog.New(NewLogHandlerWith(&buf, LogOptions{Level: slog.Level(-128), Prefix: PrefixAlways}))
		l := slog.Level(level)
		log.Log(context.Background(), l, msg, key, value)
		out := buf.String()
		if !strings.HasPrefix(out, priority(l)) {
			t.Fatalf("%q does not start with %s", out, priority(l))
		}
		if strings.Count(out, "\n") != 1 || !strings.HasSuffix(out, "\n") {
			t.Fatalf("%q is not exactly one line", out)
		}
	})
}

// BenchmarkLogHandler compares a prefixed line with slog's own text handler,
// the baseline (with its time attribute removed, so both write the same bytes
// but the prefix).
func BenchmarkLogHandler(b *testing.B) {
	noTime := func(groups []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey && len(groups) == 0 {
			return slog.Attr{}
		}
		return a
	}
	for _, bc := range []struct {
		name string
		h    slog.Handler
	}{
		{"baseline=slog.TextHandler", slog.NewTextHandler(io.Discard, &slog.HandlerOptions{ReplaceAttr: noTime})},
		{"prefixed", NewLogHandlerWith(io.Discard, LogOptions{Prefix: PrefixAlways})},
	} {
		b.Run(bc.name, func(b *testing.B) {
			log := slog.New(bc.h)
			b.ReportAllocs()
			for b.Loop() {
				log.Warn("systemd watchdog pings stopped", "reason", "sensor loop: no progress for 6s", "restart_within", 30)
			}
		})
	}
}

func ExampleNewLogHandlerWith() {
	// Under systemd, NewLogHandler(os.Stderr, level) prefixes by itself;
	// here the prefix is forced to show the lines journald receives.
	log := slog.New(NewLogHandlerWith(os.Stdout, LogOptions{Prefix: PrefixAlways}))
	log.Info("listening", "addr", "[::]:80", "activated", true)
	log.Warn("settings: bad value, default used", "var", "SENSORD_PERIOD", "value", "2 s")
	log.Error("sensor read failed", "err", "dht22: checksum mismatch")
	// Output:
	// <6>level=INFO msg=listening addr=[::]:80 activated=true
	// <4>level=WARN msg="settings: bad value, default used" var=SENSORD_PERIOD value="2 s"
	// <3>level=ERROR msg="sensor read failed" err="dht22: checksum mismatch"
}

func ExampleNewLogHandler() {
	// The daemon's logger: journald priorities when stderr is the journal,
	// plain timestamped lines on a terminal.
	log := slog.New(NewLogHandler(os.Stderr, slog.LevelInfo))
	log.Info("sensord starting", "version", "v1.0.0")
}
