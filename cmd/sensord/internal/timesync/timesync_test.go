package timesync

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"sensord/internal/testutil"
)

func rtc(t *testing.T, dir, name, hctosys string, at time.Time) {
	t.Helper()
	d := filepath.Join(dir, name)
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(d, "hctosys"), []byte(hctosys+"\n"), 0o644)
	os.WriteFile(filepath.Join(d, "since_epoch"), []byte(strconv.FormatInt(at.Unix(), 10)+"\n"), 0o644)
}

func TestSystemCheck(t *testing.T) {
	unsynced := func() (int, error) { return timeError, nil }
	forbidden := func() (int, error) { return 0, syscall.EPERM }
	now := time.Date(2026, 12, 6, 8, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name   string
		sync   bool
		adj    func() (int, error)
		rtcs   func(t *testing.T, dir string)
		wantBy string
	}{
		{name: "timesyncd's file trusts the clock", sync: true, adj: unsynced, wantBy: ByTimesyncd},
		{name: "the kernel's synchronised state trusts it", adj: func() (int, error) { return 0, nil }, wantBy: ByKernelNTP},
		{name: "TIME_ERROR and nothing else does not", adj: unsynced},
		{name: "a forbidden adjtimex does not", adj: forbidden},
		{name: "an RTC that set the clock at boot trusts it", adj: forbidden, wantBy: ByRTC,
			rtcs: func(t *testing.T, dir string) { rtc(t, dir, "rtc0", "1", now) }},
		{name: "an RTC that did not set the clock does not", adj: forbidden,
			rtcs: func(t *testing.T, dir string) { rtc(t, dir, "rtc0", "0", now) }},
		{name: "an RTC without its battery (1970) does not", adj: forbidden,
			rtcs: func(t *testing.T, dir string) { rtc(t, dir, "rtc0", "1", time.Unix(60, 0)) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			sync := filepath.Join(dir, "synchronized")
			if tc.sync {
				os.WriteFile(sync, nil, 0o644)
			}
			rtcDir := filepath.Join(dir, "rtc")
			if tc.rtcs != nil {
				tc.rtcs(t, rtcDir)
			}
			v := System{SyncFile: sync, RTCDir: rtcDir, Adjtimex: tc.adj}.Check()
			if v.Trusted != (tc.wantBy != "") || v.By != tc.wantBy {
				t.Errorf("got %+v, want trusted by %q", v, tc.wantBy)
			}
			if !v.Trusted && v.Why == "" {
				t.Error("an untrusted verdict says no why")
			}
		})
	}
}

// fakeClocks is a wall clock that can step and a monotonic one that cannot.
type fakeClocks struct {
	wall atomic.Int64 // ns since the epoch
	mono atomic.Int64 // ns
}

func (f *fakeClocks) now() time.Time       { return time.Unix(0, f.wall.Load()) }
func (f *fakeClocks) since() time.Duration { return time.Duration(f.mono.Load()) }
func (f *fakeClocks) tick(d time.Duration) { f.wall.Add(int64(d)); f.mono.Add(int64(d)) }
func (f *fakeClocks) step(d time.Duration) { f.wall.Add(int64(d)) }

func TestClockRunReportsOnceWhenTheSourceTrusts(t *testing.T) {
	var fc fakeClocks
	fc.wall.Store(time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	var synced atomic.Bool
	calls := make(chan string, 2)
	c := &Clock{
		Source: func() Verdict {
			if synced.Load() {
				return Verdict{Trusted: true, By: ByTimesyncd}
			}
			return Verdict{Why: "not yet"}
		},
		Now: fc.now, Mono: fc.since, Every: time.Millisecond,
		OnTrusted: func(_ time.Time, _ time.Duration, by string) { calls <- by },
	}
	done := make(chan error, 1)
	go func() { done <- c.Run(context.Background()) }()
	testutil.Until(t, 10*time.Second, func() bool { return c.Status().Why != "" }, func() string { return "the source was never asked" })
	if c.Status().Trusted {
		t.Fatal("trusted before the source said so")
	}
	synced.Store(true)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := <-calls; got != ByTimesyncd {
		t.Errorf("OnTrusted by %q, want %q", got, ByTimesyncd)
	}
	if len(calls) != 0 {
		t.Error("OnTrusted called twice")
	}
	if st := c.Status(); !st.Trusted || st.By != ByTimesyncd {
		t.Errorf("status %+v", st)
	}
}

func TestClockTrustByTheOwner(t *testing.T) {
	var fc fakeClocks
	c := &Clock{Source: func() Verdict { return Verdict{Why: "no"} }, Now: fc.now, Mono: fc.since, Every: time.Hour}
	by := make(chan string, 1)
	c.OnTrusted = func(_ time.Time, _ time.Duration, b string) { by <- b }
	done := make(chan error, 1)
	go func() { done <- c.Run(context.Background()) }()
	c.Trust()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := <-by; got != BySetting {
		t.Errorf("by %q, want %q", got, BySetting)
	}
}

func TestClockRunStops(t *testing.T) {
	var fc fakeClocks
	c := &Clock{Source: func() Verdict { return Verdict{Why: "no"} }, Now: fc.now, Mono: fc.since, Every: time.Millisecond}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := c.Run(ctx); !errors.Is(err, ErrStopped) {
		t.Errorf("got %v, want ErrStopped", err)
	}
}

func TestHoldStampsWithTheOffsetAtTrust(t *testing.T) {
	var fc fakeClocks
	// The card's clock: a date long past, as a Pi without an RTC boots.
	fc.wall.Store(time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	h := NewHold[int](10)
	for i := range 3 {
		h.Add(i, fc.since())
		fc.tick(2 * time.Second)
	}
	// NTP steps the clock forward by years; the readings are 6, 4 and 2 s old.
	fc.step(2*365*24*time.Hour + 17*time.Minute)
	truth := fc.now()
	var got []time.Time
	h.Drain(fc.now(), fc.since(), func(v int, at time.Time, _ time.Duration) { got = append(got, at) })
	for i, at := range got {
		want := truth.Add(-time.Duration(6-2*i) * time.Second)
		if !at.Equal(want) {
			t.Errorf("reading %d stamped %s, want %s", i, at, want)
		}
	}
	if len(got) != 3 || h.Len() != 0 {
		t.Errorf("drained %d, %d left", len(got), h.Len())
	}
}

func TestHoldDropsTheOldestBeyondItsBound(t *testing.T) {
	h := NewHold[int](3)
	for i := range 5 {
		h.Add(i, time.Duration(i)*time.Second)
	}
	var got []int
	h.Drain(time.Unix(100, 0), 10*time.Second, func(v int, _ time.Time, _ time.Duration) { got = append(got, v) })
	if want := []int{2, 3, 4}; len(got) != 3 || got[0] != want[0] || got[2] != want[2] {
		t.Errorf("kept %v, want %v", got, want)
	}
	if h.Dropped() != 2 {
		t.Errorf("dropped %d, want 2", h.Dropped())
	}
}

func TestClockAgreesWithWhatTheOwnerExpects(t *testing.T) {
	var fc fakeClocks
	fc.wall.Store(time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	c := &Clock{Source: func() Verdict { return Verdict{Why: "no"} }, Now: fc.now, Mono: fc.since}
	truth := time.Date(2026, 12, 6, 8, 0, 0, 0, time.UTC)
	c.Expect(truth, fc.since())
	if c.Check() {
		t.Fatal("trusted while two years off what the owner said")
	}
	fc.tick(5 * time.Second)
	// The helper sets the clock, a little late and 1.5 s off.
	fc.wall.Store(truth.Add(5*time.Second + 1500*time.Millisecond).UnixNano())
	if !c.Check() || c.Status().By != BySetting {
		t.Fatalf("not trusted once the clock agrees: %+v", c.Status())
	}
}
