package sensor_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"sensord/sensor"
)

// script is a fake Sensor that plays a list of results, one per Read, and
// records when each Read started. After the list it repeats the last entry.
type script struct {
	mu     sync.Mutex
	steps  []step
	starts []time.Time
}

type step struct {
	t, h sensor.Deci
	err  error
	hang bool
}

func (s *script) Read(ctx context.Context) (sensor.Reading, error) {
	s.mu.Lock()
	i := len(s.starts)
	s.starts = append(s.starts, time.Now())
	st := s.steps[min(i, len(s.steps)-1)]
	s.mu.Unlock()
	if st.hang {
		<-ctx.Done()
		return sensor.Reading{}, ctx.Err()
	}
	if st.err != nil {
		return sensor.Reading{}, st.err
	}
	return sensor.Reading{Temperature: st.t, Humidity: st.h, Time: time.Now()}, nil
}

func (s *script) String() string { return "script" }
func (s *script) Halt() error    { return nil }

func (s *script) reads() []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Time(nil), s.starts...)
}

// run polls s until want readings were published or n reads happened,
// and returns what was published.
func run(t *testing.T, s *script, o *sensor.PollOpts, reads int) ([]sensor.Reading, *sensor.Poller) {
	t.Helper()
	p, err := sensor.NewPoller(s, o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var mu sync.Mutex
	var got []sensor.Reading
	done := make(chan error, 1)
	go func() {
		done <- p.Run(ctx, func(r sensor.Derived) {
			if want := sensor.Derive(r.Reading); r != want {
				t.Errorf("published %+v, want its derived values %+v", r, want)
			}
			mu.Lock()
			got = append(got, r.Reading)
			mu.Unlock()
		})
	}()
	// One read more than asked for: Run is sequential, so the publish of
	// the last asked-for read has happened.
	for p.Stats().Reads < uint64(reads)+1 {
		if ctx.Err() != nil {
			t.Fatalf("only %d of %d reads before the deadline", p.Stats().Reads, reads)
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run returned %v, want nil on cancel", err)
	}
	mu.Lock()
	defer mu.Unlock()
	return got, p
}

const fast = 10 * time.Millisecond

func TestPollerPublishesValidReadings(t *testing.T) {
	s := &script{steps: []step{{t: 214, h: 482}, {t: 215, h: 481}, {t: 215, h: 480}}}
	got, p := run(t, s, &sensor.PollOpts{Period: fast, MinPeriod: fast}, 3)
	if len(got) < 3 || got[0].Temperature != 214 || got[1].Humidity != 481 {
		t.Fatalf("published %v, want the scripted readings in order", got)
	}
	st := p.Stats()
	if st.Successes != st.Reads || len(st.Errors) != 0 || st.LastSuccess.IsZero() {
		t.Errorf("stats %+v, want every read a success", st)
	}
	if r, ok := p.Latest(); !ok || r.Temperature != 215 {
		t.Errorf("Latest() = %v, %v, want 21.5 °C", r, ok)
	}
}

func TestPollerCountsErrorsByKind(t *testing.T) {
	s := &script{steps: []step{
		{err: fmt.Errorf("x: %w", sensor.ErrChecksum)},
		{err: fmt.Errorf("x: %w", sensor.ErrTimeout)},
		{err: errors.New("x: odd")},
		{t: 200, h: 400},
	}}
	_, p := run(t, s, &sensor.PollOpts{Period: fast, MinPeriod: fast}, 4)
	st := p.Stats()
	for _, k := range []string{"checksum", "timeout", "other"} {
		if st.Errors[k] != 1 {
			t.Errorf("Errors[%q] = %d, want 1 (all: %v)", k, st.Errors[k], st.Errors)
		}
	}
	var sum uint64
	for _, v := range st.Errors {
		sum += v
	}
	if st.Reads != st.Successes+sum {
		t.Errorf("Reads %d != Successes %d + errors %d", st.Reads, st.Successes, sum)
	}
	if st.LastError != "x: odd" || st.LastErrorTime.IsZero() {
		t.Errorf("LastError %q at %v, want the last failure", st.LastError, st.LastErrorTime)
	}
}

func TestPollerBacksOffAfterErrorsButNeverBelowMinPeriod(t *testing.T) {
	fail := step{err: sensor.ErrTimeout}
	s := &script{steps: []step{fail, fail, fail, fail, fail}}
	min := 20 * time.Millisecond
	_, _ = run(t, s, &sensor.PollOpts{Period: min, MinPeriod: min, MaxBackoff: 80 * time.Millisecond}, 5)
	st := s.reads()
	want := []time.Duration{min, 2 * min, 4 * min, 4 * min} // capped at MaxBackoff
	for i, w := range want {
		// Generous on the late side: timers on a loaded test machine run late.
		if gap := st[i+1].Sub(st[i]); gap < w || gap > w+300*time.Millisecond {
			t.Errorf("gap %d = %v, want about %v", i, gap, w)
		}
	}
}

func TestPollerNeverReadsFasterThanMinPeriod(t *testing.T) {
	s := &script{steps: []step{{t: 1, h: 1}}}
	min := 25 * time.Millisecond
	_, _ = run(t, s, &sensor.PollOpts{Period: time.Millisecond, MinPeriod: min}, 4)
	st := s.reads()
	for i := 1; i < len(st); i++ {
		if gap := st[i].Sub(st[i-1]); gap < min {
			t.Errorf("reads %d and %d only %v apart, want >= %v", i-1, i, gap, min)
		}
	}
}

func TestPollerPlausibilityFilter(t *testing.T) {
	tests := []struct {
		name  string
		steps []step
		f     sensor.Plausibility
		want  []sensor.Deci // published temperatures
		held  uint64
	}{
		{
			name:  "a single doubled value is held and dropped when the next reading agrees with the trend",
			steps: []step{{t: 210, h: 450}, {t: 420, h: 450}, {t: 211, h: 450}},
			want:  []sensor.Deci{210, 211},
			held:  1,
		},
		{
			name:  "a real jump is published once a second reading confirms it",
			steps: []step{{t: 210, h: 450}, {t: 300, h: 450}, {t: 301, h: 450}},
			want:  []sensor.Deci{210, 301},
			held:  1,
		},
		{
			name:  "a humidity jump over 20 %RH is held",
			steps: []step{{t: 210, h: 450}, {t: 210, h: 900}, {t: 210, h: 451}},
			want:  []sensor.Deci{210, 210},
			held:  1,
		},
		{
			name:  "jumps within the limits pass",
			steps: []step{{t: 210, h: 450}, {t: 260, h: 650}, {t: 210, h: 450}},
			want:  []sensor.Deci{210, 260, 210},
		},
		{
			name:  "the filter can be switched off",
			steps: []step{{t: 210, h: 450}, {t: 420, h: 450}, {t: 211, h: 450}},
			f:     sensor.Plausibility{Disabled: true},
			want:  []sensor.Deci{210, 420, 211},
		},
		{
			name:  "tighter limits are configurable",
			steps: []step{{t: 210, h: 450}, {t: 222, h: 450}, {t: 211, h: 450}},
			f:     sensor.Plausibility{MaxTemperatureJump: 10},
			want:  []sensor.Deci{210, 211},
			held:  1,
		},
		{
			name:  "an old reference does not lock out a new value",
			steps: []step{{t: 210, h: 450}, {t: 420, h: 450}},
			f:     sensor.Plausibility{Window: time.Nanosecond},
			want:  []sensor.Deci{210, 420},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &script{steps: tt.steps}
			got, p := run(t, s, &sensor.PollOpts{Period: fast, MinPeriod: fast, Plausibility: tt.f}, len(tt.steps))
			var temps []sensor.Deci
			for _, r := range got[:min(len(got), len(tt.want))] {
				temps = append(temps, r.Temperature)
			}
			if fmt.Sprint(temps) != fmt.Sprint(tt.want) {
				t.Errorf("published %v, want %v", temps, tt.want)
			}
			st := p.Stats()
			if st.Held < tt.held || st.Errors["implausible"] != st.Held {
				t.Errorf("held %d (implausible %d), want %d", st.Held, st.Errors["implausible"], tt.held)
			}
		})
	}
}

func TestPollerProgressStopsWhileReadBlocks(t *testing.T) {
	s := &script{steps: []step{{t: 1, h: 1}, {t: 1, h: 1}, {hang: true}}}
	p, err := sensor.NewPoller(s, &sensor.PollOpts{Period: fast, MinPeriod: fast})
	if err != nil {
		t.Fatal(err)
	}
	if !p.Progress().IsZero() {
		t.Fatal("Progress before Run is not zero")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx, nil) }()
	for len(s.reads()) < 3 {
		time.Sleep(time.Millisecond)
	}
	before := p.Progress()
	time.Sleep(100 * time.Millisecond)
	if after := p.Progress(); !after.Equal(before) || time.Since(after) < 100*time.Millisecond {
		t.Errorf("Progress moved from %v to %v while Read blocked", before, after)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run = %v, want nil after cancel", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	if st := p.Stats(); st.Reads != 2 {
		t.Errorf("Reads = %d, want 2 (a read cut short by shutdown is not counted)", st.Reads)
	}
}

func TestPollerRejectsBadOptions(t *testing.T) {
	if _, err := sensor.NewPoller(nil, &sensor.PollOpts{MinPeriod: time.Second}); err == nil {
		t.Error("NewPoller(nil) succeeded")
	}
	if _, err := sensor.NewPoller(&script{}, &sensor.PollOpts{Period: -1, MinPeriod: time.Second}); err == nil {
		t.Error("negative period accepted")
	}
	for name, o := range map[string]*sensor.PollOpts{"nil options": nil, "no MinPeriod": {Period: time.Second}} {
		if _, err := sensor.NewPoller(&script{}, o); !errors.Is(err, sensor.ErrNoMinPeriod) {
			t.Errorf("%s: err = %v, want ErrNoMinPeriod", name, err)
		}
	}
}

func TestPollerRunTwice(t *testing.T) {
	s := &script{steps: []step{{hang: true}}}
	p, _ := sensor.NewPoller(s, &sensor.PollOpts{Period: fast, MinPeriod: fast})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go p.Run(ctx, nil)
	for len(s.reads()) == 0 {
		time.Sleep(time.Millisecond)
	}
	if err := p.Run(ctx, nil); err == nil {
		t.Error("second concurrent Run returned nil")
	}
}

func ExamplePoller() {
	// A fixed-value sensor stands in for a driver here.
	s := &script{steps: []step{{t: 214, h: 482}}}
	p, err := sensor.NewPoller(s, &sensor.PollOpts{Period: 10 * time.Millisecond, MinPeriod: 10 * time.Millisecond})
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	_ = p.Run(ctx, func(r sensor.Derived) {
		fmt.Println(r.Temperature, "°C", r.Humidity, "%RH")
		cancel() // one reading is enough for the example
	})
	fmt.Println("reads:", p.Stats().Reads)
	// Output:
	// 21.4 °C 48.2 %RH
	// reads: 1
}

func TestSilenceAddsThePeriodAndEachRetrysBackoff(t *testing.T) {
	for _, tt := range []struct {
		period   time.Duration
		failures int
		want     time.Duration
	}{
		{2 * time.Second, 0, 2 * time.Second},
		// 2 s to the failed read, then 2, 4, 8 and twice the cap of 10.
		{2 * time.Second, 5, 36 * time.Second},
		// A minute's period: the back-off never goes below it.
		{time.Minute, 2, 3 * time.Minute},
		// 10 s: doubling from 10 s stops at the 30 s cap.
		{10 * time.Second, 3, 10*time.Second + 10*time.Second + 20*time.Second + 30*time.Second},
	} {
		o := sensor.PeriodicOpts(tt.period)
		if got := o.Silence(tt.failures); got != tt.want {
			t.Errorf("period %s, %d failures: %s, want %s", tt.period, tt.failures, got, tt.want)
		}
	}
}
