package sensor

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"
	"sync/atomic"
	"time"
)

// PollOpts configures a Poller. MinPeriod is required; the rest may be left
// zero for the defaults each field names.
type PollOpts struct {
	// Period is the time from the end of one read to the start of the
	// next. It is raised to MinPeriod when below it (zero means MinPeriod).
	Period time.Duration
	// MinPeriod is the sensor's minimum time between reads, which only its
	// driver knows (2 s for a DHT22, 1 s for a BME280, 10 ms for the
	// simulation; see sensors.MinPeriod). It must be set. Neither a
	// retry nor a back-off ever starts a read sooner than MinPeriod after the
	// previous one ended, so a driver that counts its minimum period from
	// the start of a read never sees a read too soon, however late the
	// scheduler runs either side.
	MinPeriod time.Duration
	// MaxBackoff caps the wait between retries after consecutive errors; the
	// wait doubles from MinPeriod up to it. Zero means 4 × Period; it is
	// never below Period.
	MaxBackoff time.Duration
	// Plausibility is the jump filter; the zero value is the default filter.
	Plausibility Plausibility
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Plausibility is the Poller's filter against frames that pass the checksum
// but carry a wrong value (a DHT22 on a real Pi lets through about one in
// 500-1000, typically a doubled or halved number). A reading that jumps more
// than MaxTemperatureJump or MaxHumidityJump from the last published reading,
// when that reading is younger than Window, is held back (counted as Held and
// as an "implausible" error) until the next reading confirms it by being
// within the same limits of it.
type Plausibility struct {
	// Disabled switches the filter off: every valid reading is published.
	Disabled bool
	// MaxTemperatureJump in tenths of a degree; zero means 50 (5.0 °C).
	MaxTemperatureJump Deci
	// MaxHumidityJump in tenths of a percent RH; zero means 200 (20 %RH).
	MaxHumidityJump Deci
	// Window is how long the last published reading stays the reference;
	// zero means 10 s. After a longer gap any valid reading is accepted, so a
	// sensor that was off for a while cannot be locked out by an old value.
	Window time.Duration
}

func (f Plausibility) withDefaults() Plausibility {
	if f.MaxTemperatureJump <= 0 {
		f.MaxTemperatureJump = 50
	}
	if f.MaxHumidityJump <= 0 {
		f.MaxHumidityJump = 200
	}
	if f.Window <= 0 {
		f.Window = 10 * time.Second
	}
	return f
}

// near reports whether b is within the filter's limits of a.
func (f Plausibility) near(a, b Reading) bool {
	dt, dh := a.Temperature-b.Temperature, a.Humidity-b.Humidity
	if dt < 0 {
		dt = -dt
	}
	if dh < 0 {
		dh = -dh
	}
	return dt <= f.MaxTemperatureJump && dh <= f.MaxHumidityJump
}

// Stats are a Poller's counters. Every read attempt ends in exactly one of
// Successes or Errors, so Reads == Successes + the sum of Errors; a held
// reading counts as an "implausible" error and in Held.
type Stats struct {
	Reads, Successes, Held uint64
	// Errors counts failed attempts by ErrorKind: "timeout", "short_frame",
	// "checksum", "out_of_range", "too_soon", "implausible", "other". Only
	// kinds that occurred are present.
	Errors map[string]uint64
	// Causes counts failed attempts by their likely cause (CauseOf), for
	// drivers that tell one; only causes that occurred are present.
	Causes map[Cause]uint64
	// LastCause is the cause of the last failed attempt.
	LastCause     Cause
	LastError     string
	LastErrorTime time.Time
	LastSuccess   time.Time
}

// Poller reads a Sensor on a schedule, retries with back-off, filters
// implausible jumps and keeps counters.
//
// # Concurrency
//
// Run is called once, from one goroutine. Stats, Latest and Progress are
// safe from any goroutine at any time.
type Poller struct {
	s      Sensor
	period time.Duration
	min    time.Duration
	maxBO  time.Duration
	filter Plausibility
	now    func() time.Time

	// running guards against a second concurrent Run.
	running atomic.Bool

	// base is when NewPoller ran, with its monotonic clock reading.
	// progress is written by Run after every read returns and read by
	// Progress from any goroutine: time since base plus 1 ns, 0 before Run.
	// Offsets from base keep the monotonic reading, so time.Since(Progress())
	// is immune to the wall clock stepping (a Pi has no RTC; NTP steps its
	// clock by years at boot).
	base     time.Time
	progress atomic.Int64

	// mu guards the fields below; Run writes them, Stats and Latest read them.
	mu      sync.Mutex
	stats   Stats
	latest  Derived
	has     bool
	pending *Reading // a held reading waiting for confirmation; Run only
}

// ErrNoMinPeriod is NewPoller's answer to options without MinPeriod.
var ErrNoMinPeriod = errors.New("sensor: PollOpts.MinPeriod is required (the sensor's minimum time between reads)")

// NewPoller returns a Poller for s, configured by o.
func NewPoller(s Sensor, o *PollOpts) (*Poller, error) {
	if s == nil {
		return nil, errors.New("sensor: nil Sensor")
	}
	if o == nil || o.MinPeriod == 0 {
		return nil, ErrNoMinPeriod
	}
	opts := *o
	if opts.Period < 0 || opts.MinPeriod < 0 || opts.MaxBackoff < 0 {
		return nil, fmt.Errorf("sensor: negative duration in PollOpts (period %v, min period %v, max backoff %v)", opts.Period, opts.MinPeriod, opts.MaxBackoff)
	}
	p := &Poller{s: s, now: opts.Now, filter: opts.Plausibility.withDefaults()}
	p.filter.Disabled = opts.Plausibility.Disabled
	if p.now == nil {
		p.now = time.Now
	}
	p.period, p.min, p.maxBO = opts.schedule()
	p.stats.Errors = map[string]uint64{}
	p.stats.Causes = map[Cause]uint64{}
	p.base = p.now()
	return p, nil
}

func (p *Poller) markProgress(t time.Time) { p.progress.Store(int64(t.Sub(p.base)) + 1) }

// Progress returns when the last read attempt returned, with or without an
// error, or when Run started if none has returned yet; zero before Run. It
// stops advancing while a Read blocks, which is what a watchdog looks for.
func (p *Poller) Progress() time.Time {
	d := p.progress.Load()
	if d == 0 {
		return time.Time{}
	}
	return p.base.Add(time.Duration(d - 1))
}

// Latest returns the last published reading with its derived values;
// false before the first.
func (p *Poller) Latest() (Derived, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.latest, p.has
}

// Stats returns a copy of the counters.
func (p *Poller) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.stats
	s.Errors = maps.Clone(p.stats.Errors)
	s.Causes = maps.Clone(p.stats.Causes)
	return s
}

// Run reads the sensor until ctx is done and calls publish (from Run's
// goroutine) with every reading that passed the driver's checks and the
// plausibility filter, its derived values computed once for every
// consumer. It returns nil when ctx is done, and an error only if Run is
// already running.
func (p *Poller) Run(ctx context.Context, publish func(Derived)) error {
	if !p.running.CompareAndSwap(false, true) {
		return errors.New("sensor: Poller.Run called twice")
	}
	defer p.running.Store(false)
	p.markProgress(p.now())
	timer := time.NewTimer(0)
	defer timer.Stop()
	failures := 0
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		}
		r, err := p.s.Read(ctx)
		end := p.now()
		p.markProgress(end)
		if ctx.Err() != nil {
			// A read cut short by shutdown is not a sensor error.
			return nil
		}
		if err == nil {
			err = p.filterReading(r)
		}
		d := p.record(r, err, end)
		if err == nil {
			failures = 0
			if publish != nil {
				publish(d)
			}
		} else if !errors.Is(err, ErrImplausible) {
			failures++
		}
		timer.Reset(p.wait(failures))
	}
}

// wait returns how long to sleep after a read, after failures consecutive
// errors. It counts from the end of the read: the read's own few
// milliseconds stretch the period a little, and in exchange no scheduling
// delay can make two reads closer than MinPeriod.
func (p *Poller) wait(failures int) time.Duration {
	return retryWait(p.period, p.min, p.maxBO, failures)
}

// retryWait is the wait after a read that ended failures consecutive
// errors (0: a good read) for a Poller of that period, MinPeriod and
// MaxBackoff.
func retryWait(period, minPeriod, maxBO time.Duration, failures int) time.Duration {
	if failures == 0 {
		return period
	}
	// Back off: MinPeriod, 2×, 4×, ... capped at maxBO. The first retry
	// comes after MinPeriod, so one bad frame costs little.
	gap := minPeriod
	for i := 1; i < failures && gap < maxBO; i++ {
		gap *= 2
	}
	return min(gap, maxBO)
}

// schedule is o's period, MinPeriod and MaxBackoff with the defaults the
// fields name applied.
func (o PollOpts) schedule() (period, minPeriod, maxBO time.Duration) {
	minPeriod = o.MinPeriod
	period = max(o.Period, minPeriod)
	maxBO = o.MaxBackoff
	if maxBO == 0 {
		maxBO = 4 * period
	}
	return period, minPeriod, max(maxBO, period)
}

// Silence is the longest a Poller with these options goes without
// publishing while failures reads in a row fail and the next one is
// good: the period after the last good read plus each retry's back-off,
// not counting the reads' own time. Outputs that mark a value stale
// after a while (Home Assistant's expire_after) take it from here, so
// that a sensor that is retrying is not shown as gone.
func (o PollOpts) Silence(failures int) time.Duration {
	period, minPeriod, maxBO := o.schedule()
	var d time.Duration
	for n := range failures + 1 {
		d += retryWait(period, minPeriod, maxBO, n)
	}
	return d
}

// The back-off of a sensor read at a fixed period (PeriodicOpts).
const (
	// BackoffPeriods is how many periods the wait between retries grows
	// to: a sensor that is gone is not hammered at the full rate.
	BackoffPeriods = 5
	// BackoffCap bounds that wait for long periods, so that a sensor that
	// comes back is read again within half a minute.
	BackoffCap = 30 * time.Second
)

// PeriodicOpts are the PollOpts of a sensor read every period: reads no
// closer than the period, and retries backing off from it to
// BackoffPeriods periods (at most BackoffCap, never below the period).
func PeriodicOpts(period time.Duration) PollOpts {
	return PollOpts{
		Period:     period,
		MinPeriod:  period,
		MaxBackoff: max(min(BackoffPeriods*period, BackoffCap), period),
	}
}

// filterReading applies the plausibility filter to a valid reading r and
// returns ErrImplausible (wrapped) when r is held back.
func (p *Poller) filterReading(r Reading) error {
	if p.filter.Disabled {
		return nil
	}
	p.mu.Lock()
	last, has := p.latest, p.has
	p.mu.Unlock()
	held := p.pending
	p.pending = nil
	if held != nil && p.filter.near(*held, r) {
		// A second reading confirms the jump.
		return nil
	}
	if !has || r.Time.Sub(last.Time) > p.filter.Window || p.filter.near(last.Reading, r) {
		return nil
	}
	p.pending = &r
	return fmt.Errorf("%w: %s °C %s %%RH after %s °C %s %%RH", ErrImplausible, r.Temperature, r.Humidity, last.Temperature, last.Humidity)
}

// record counts a read; a good one becomes the latest, with its derived
// values, which it returns.
func (p *Poller) record(r Reading, err error, at time.Time) Derived {
	var d Derived
	if err == nil {
		d = Derive(r)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stats.Reads++
	if err == nil {
		p.stats.Successes++
		p.stats.LastSuccess = at
		p.latest, p.has = d, true
		return d
	}
	if errors.Is(err, ErrImplausible) {
		p.stats.Held++
	}
	p.stats.Errors[ErrorKind(err)]++
	c := CauseOf(err)
	p.stats.Causes[c]++
	p.stats.LastCause = c
	p.stats.LastError = err.Error()
	p.stats.LastErrorTime = at
	return d
}
