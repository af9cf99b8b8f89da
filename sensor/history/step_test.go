package history

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"sensord/sensor"
)

// stepClocks is a wall clock that steps and a monotonic one that does not.
type stepClocks struct {
	wall time.Time
	mono time.Duration
}

func (c *stepClocks) tick(d time.Duration) { c.wall = c.wall.Add(d); c.mono += d }

// TestAClockThatStepsNeverCorruptsHistory writes a reading every 2 s on a
// clock that starts on the card's saved date, steps forward by two years
// and 17 minutes (the first NTP answer), then back by two hours (a
// correction), with commits every minute and maintenance every hour of
// real time, one of them just after a step and before any reading shows
// it. Whatever the clock did, every reading ends up once at its time on
// the final clock, in the order taken; the per-minute and per-hour
// rollups are those of those readings; nothing is left at the old dates
// (no spike on a chart); and retention counts real age: the readings
// stamped two years back, an hour old, outlive a maintenance at the
// stepped clock, and go once they are really past the retention.
func TestAClockThatStepsNeverCorruptsHistory(t *testing.T) {
	const period = 2 * time.Second
	o := DefaultOpts()
	o.RawRetention = 3 * time.Hour
	o.RollupRetention = 48 * time.Hour
	clk := &stepClocks{wall: time.Date(2024, 3, 1, 9, 0, 0, 0, time.UTC)}
	o.Now = func() time.Time { return clk.wall }
	o.Mono = func() time.Duration { return clk.mono }
	s := openTest(t, filepath.Join(t.TempDir(), "h.db"), &o)
	ctx := context.Background()

	type taken struct {
		r    sensor.Reading
		mono time.Duration
	}
	var all []taken
	lastMaint := time.Duration(-time.Hour)
	write := func(d time.Duration) {
		for end := clk.mono + d; clk.mono < end; {
			clk.tick(period)
			r := wave(clk.wall)
			r.Time = clk.wall
			all = append(all, taken{r, clk.mono})
			s.AddAt(r, clk.mono)
			if len(all)%30 == 0 {
				maint := clk.mono-lastMaint >= time.Hour
				if _, err := s.flushQueued(ctx, clk.wall, maint); err != nil {
					t.Fatal(err)
				}
				if maint {
					lastMaint = clk.mono
				}
			}
		}
	}
	step := func(d time.Duration) {
		clk.wall = clk.wall.Add(d)
		// Maintenance at once, on the stepped clock, before a reading.
		if _, err := s.flushQueued(ctx, clk.wall, true); err != nil {
			t.Fatal(err)
		}
	}
	write(70 * time.Minute)
	step(2*365*24*time.Hour + 17*time.Minute)
	write(65 * time.Minute)
	step(-2 * time.Hour)
	write(50 * time.Minute)
	if _, err := s.flushQueued(ctx, clk.wall, true); err != nil {
		t.Fatal(err)
	}

	// On the final clock reading i was taken at wall - (mono now - mono i).
	want := make([]sensor.Reading, len(all))
	for i, a := range all {
		want[i] = a.r
		want[i].Time = clk.wall.Add(a.mono - clk.mono)
	}
	first, end := want[0].Time, want[len(want)-1].Time.Add(time.Millisecond)
	// Rollup queries end on a whole hour: the rollup tables hold whole
	// steps only.
	hourEnd := end.Truncate(time.Hour).Add(time.Hour)

	var got []Point
	err := s.Export(ctx, time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC), clk.wall.Add(24*time.Hour), func(bool) error { return nil },
		func(p Point) error { got = append(got, p); return nil })
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Errorf("history holds %d rows from 2000 on, want the %d readings", len(got), len(want))
	}
	for i := 0; i < len(got) && i < len(want); i++ {
		if !got[i].Time.Equal(want[i].Time) || got[i].Temperature.Mean != want[i].Temperature {
			t.Fatalf("row %d at %s (%s), want %s (%s)", i, got[i].Time.UTC(), got[i].Temperature.Mean, want[i].Time.UTC(), want[i].Temperature)
		}
	}
	for _, st := range []time.Duration{time.Minute, time.Hour} {
		q, err := s.Query(ctx, Query{From: first.Truncate(st), To: hourEnd, Step: st})
		if err != nil {
			t.Fatal(err)
		}
		samePoints(t, fmt.Sprintf("step %s", st), q, summarise(want, first.Truncate(st), st))
	}
	// Retention still runs on real age: a day and 3 h on, the day of the
	// readings is wholly past the raw retention and its raw rows go; the
	// rollups stay.
	clk.tick(27 * time.Hour)
	if _, err := s.flushQueued(ctx, clk.wall, true); err != nil {
		t.Fatal(err)
	}
	if q, err := s.Query(ctx, Query{From: first, To: end}); err != nil || len(q) != 0 {
		t.Fatalf("raw rows a day past the raw retention: %d (%v), want 0", len(q), err)
	}
	q, err := s.Query(ctx, Query{From: first.Truncate(time.Hour), To: hourEnd, Step: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	samePoints(t, "hourly rollups once the raw rows went", q, summarise(want, first.Truncate(time.Hour), time.Hour))
}

// flushQueued is one of Run's commits, at the time now.
func (s *Store) flushQueued(ctx context.Context, now time.Time, maint bool) (Commit, error) {
	batch, shifts := s.takeQueued()
	return s.commitQueued(ctx, shifts, batch, now, maint)
}

// TestAStepDuringCommitsMovesEveryReadingOnce feeds readings while Run
// commits every few ms, the clock stepping back by an hour and then
// forward by a day midway: readings in the queue, in flight and on disk
// at each step all end up once at their time on the final clock.
func TestAStepDuringCommitsMovesEveryReadingOnce(t *testing.T) {
	o := DefaultOpts()
	o.CommitInterval = 3 * time.Millisecond
	var mu sync.Mutex
	clk := &stepClocks{wall: time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)}
	o.Now = func() time.Time { mu.Lock(); defer mu.Unlock(); return clk.wall }
	o.Mono = func() time.Duration { mu.Lock(); defer mu.Unlock(); return clk.mono }
	s := openTest(t, filepath.Join(t.TempDir(), "h.db"), &o)
	stop := runAsync(s)
	type taken struct {
		r    sensor.Reading
		mono time.Duration
	}
	var all []taken
	for i := range 3000 {
		mu.Lock()
		switch i {
		case 1000:
			clk.wall = clk.wall.Add(-time.Hour)
		case 2000:
			clk.wall = clk.wall.Add(24 * time.Hour)
		}
		clk.tick(2 * time.Second)
		r := wave(clk.wall)
		mono := clk.mono
		mu.Unlock()
		all = append(all, taken{r, mono})
		s.AddAt(r, mono)
		if i%50 == 0 {
			time.Sleep(time.Millisecond) // let commits land between the steps
		}
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	var got []Point
	err := s.Export(context.Background(), clk.wall.Add(-48*time.Hour), clk.wall.Add(time.Hour), func(bool) error { return nil },
		func(p Point) error { got = append(got, p); return nil })
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(all) {
		t.Fatalf("%d rows, want %d", len(got), len(all))
	}
	for i, a := range all {
		want := clk.wall.Add(a.mono - clk.mono)
		if !got[i].Time.Equal(want) || got[i].Temperature.Mean != a.r.Temperature {
			t.Fatalf("row %d at %s, want %s", i, got[i].Time.UTC(), want.UTC())
		}
	}
}
