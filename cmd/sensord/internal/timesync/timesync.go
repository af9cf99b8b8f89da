// Package timesync tells whether the wall clock can be trusted, and holds
// what was measured before it could be, to stamp it correctly once it can.
//
// A Raspberry Pi has no battery-backed clock: until systemd-timesyncd
// reaches an NTP server, the clock starts from the last time saved on the
// card (on a new card, from when the image was built). The monotonic clock
// is right from boot, though, so a reading held with its monotonic time
// gets its true wall time once the wall clock is set:
//
//	stamp = wall - (monotonic now - monotonic at the reading)
//
// with wall and monotonic now read together at the moment the clock
// becomes trusted.
//
// # Concurrency
//
// A Clock's Run belongs to one goroutine; Status may be called from any.
// A Hold is not safe for concurrent use: its owner locks around it.
package timesync

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// How the clock came to be trusted.
const (
	ByTimesyncd = "timesyncd"  // systemd-timesyncd reached an NTP server
	ByKernelNTP = "kernel-ntp" // the kernel's NTP state is synchronised
	ByRTC       = "rtc"        // a battery-backed RTC set the clock at boot
	BySetting   = "owner"      // the owner set it from the dashboard
)

// Verdict is a source's answer.
type Verdict struct {
	Trusted bool
	// By names what vouches for the clock (one of the By constants) when
	// Trusted; Why says in words why it is not trusted otherwise.
	By, Why string
}

// Source says whether the wall clock can be trusted now.
type Source func() Verdict

// Linux's signals, as System reads them.
const (
	// SyncFile is what systemd-timesyncd creates once it has set the
	// clock from an NTP server; it stays until the next boot.
	SyncFile = "/run/systemd/timesync/synchronized"
	// RTCDir holds the real-time clocks the kernel knows.
	RTCDir = "/sys/class/rtc"
)

// notBefore is a time no correctly set clock shows any more: an RTC that
// says earlier has lost its battery and holds a reset value (1970, 2000).
var notBefore = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// timeError is adjtimex's TIME_ERROR: the kernel's clock is not
// synchronised (linux/timex.h).
const timeError = 5

// System is the Linux sources in order: timesyncd's file, then the
// kernel's NTP state, then an RTC that set the clock at boot. The zero
// value reads the real system; the fields let a test point elsewhere.
type System struct {
	SyncFile string                        // "" is SyncFile
	RTCDir   string                        // "" is RTCDir
	Adjtimex func() (state int, err error) // nil is the adjtimex(2) call
}

// Check is System's Source.
func (s System) Check() Verdict {
	sync := s.SyncFile
	if sync == "" {
		sync = SyncFile
	}
	if _, err := os.Stat(sync); err == nil {
		return Verdict{Trusted: true, By: ByTimesyncd}
	}
	adj := s.Adjtimex
	if adj == nil {
		adj = adjtimex
	}
	// sensord.service's ProtectClock= forbids adjtimex (EPERM): then the
	// file above is the signal, which timesyncd gives on the image.
	if st, err := adj(); err == nil && st != timeError {
		return Verdict{Trusted: true, By: ByKernelNTP}
	}
	dir := s.RTCDir
	if dir == "" {
		dir = RTCDir
	}
	if rtcSetClock(dir) {
		return Verdict{Trusted: true, By: ByRTC}
	}
	return Verdict{Why: "the clock has not been set: no time server (NTP) has answered and there is no battery-backed clock"}
}

// adjtimex reads the kernel's clock state without changing it.
func adjtimex() (int, error) {
	var tx syscall.Timex
	return syscall.Adjtimex(&tx)
}

// rtcSetClock reports whether an RTC under dir set the system clock at
// boot (hctosys) and holds a plausible time, which a clock without its
// battery does not.
func rtcSetClock(dir string) bool {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	for _, e := range entries {
		hc, err := os.ReadFile(filepath.Join(dir, e.Name(), "hctosys"))
		if err != nil || strings.TrimSpace(string(hc)) != "1" {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name(), "since_epoch"))
		if err != nil {
			continue
		}
		secs, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		if err == nil && !time.Unix(secs, 0).Before(notBefore) {
			return true
		}
	}
	return false
}

// PollEvery is how often a Clock asks its source while the clock is not
// trusted: a held reading's stamp does not depend on it, so a few seconds
// only delay the store, and a stat and a syscall cost nothing.
const PollEvery = 2 * time.Second

// Status is a Clock's state.
type Status struct {
	Trusted bool
	By      string    // what vouches for it, once Trusted
	Since   time.Time // when it became trusted (wall, once set)
	Why     string    // why it is not trusted, in words
}

// ErrStopped: Run's context ended before the clock was trusted.
var ErrStopped = errors.New("timesync: stopped before the clock was trusted")

// Clock watches a Source until the clock is trusted; once trusted it stays
// so (a sync that lapses leaves a clock that was right and only drifts).
type Clock struct {
	Source Source
	// Now is the wall clock, Mono the monotonic one (any origin): time.Now
	// and time.Since(start) but in tests, where the two can disagree.
	Now  func() time.Time
	Mono func() time.Duration
	// Every is the poll interval; 0 is PollEvery.
	Every time.Duration
	// OnTrusted, if set, is called once, from Run, when the clock becomes
	// trusted, with the wall and monotonic clocks read together then.
	OnTrusted func(wall time.Time, mono time.Duration, by string)

	mu     sync.Mutex
	status Status
	set    chan struct{} // closed by Trust
	once   sync.Once
	// expect is what the owner said the clock should read (Expect).
	expect     time.Time
	expectMono time.Duration
}

// Agree is how close the clock must come to what Expect said: a request's
// way from a browser and both clocks' own error.
const Agree = 2 * time.Second

// Expect records that the clock should read target at monotonic time
// mono (an owner's browser said so); once it does, to within Agree, the
// clock counts as set by the owner. A clock that agrees already does at
// the next Check.
func (c *Clock) Expect(target time.Time, mono time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.expect, c.expectMono = target.Round(0), mono
}

// agrees reports whether the clock reads what Expect said, now.
func (c *Clock) agrees() bool {
	c.mu.Lock()
	target, at := c.expect, c.expectMono
	c.mu.Unlock()
	if target.IsZero() {
		return false
	}
	want := target.Add(c.Mono() - at)
	return c.Now().Round(0).Sub(want).Abs() <= Agree
}

// Status returns the clock's current state; before Run's first look it
// is Check's answer at that moment.
func (c *Clock) Status() Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.status
}

// Trust marks the clock as set by someone who vouches for it (the owner,
// from the dashboard); Run then reports it at once.
func (c *Clock) Trust() {
	c.setChan()
	c.once.Do(func() { close(c.set) })
}

func (c *Clock) setChan() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.set == nil {
		c.set = make(chan struct{})
	}
}

// Check asks the source once and records its answer; it returns true once
// the clock is trusted. Run calls it; a caller without Run (a test, a
// start-up check) may too.
func (c *Clock) Check() bool {
	c.mu.Lock()
	if c.status.Trusted {
		c.mu.Unlock()
		return true
	}
	c.mu.Unlock()
	v := c.Source()
	if !v.Trusted && c.agrees() {
		v = Verdict{Trusted: true, By: BySetting}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !v.Trusted {
		c.status.Why = v.Why
		return false
	}
	c.status = Status{Trusted: true, By: v.By, Since: c.Now()}
	return true
}

// Run polls the source until the clock is trusted, then calls OnTrusted
// and returns nil; ErrStopped if ctx ends first.
func (c *Clock) Run(ctx context.Context) error {
	c.setChan()
	every := c.Every
	if every <= 0 {
		every = PollEvery
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for !c.Check() {
		select {
		case <-ctx.Done():
			return ErrStopped
		case <-c.set:
			c.mu.Lock()
			c.status = Status{Trusted: true, By: BySetting, Since: c.Now()}
			c.mu.Unlock()
		case <-t.C:
		}
	}
	by := c.Status().By
	if c.OnTrusted != nil {
		c.OnTrusted(c.Now(), c.Mono(), by)
	}
	return nil
}
