package history

import (
	"context"

	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"sensord/sensor"
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }

var epoch = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)

// wave is a deterministic reading for time t: values that differ from
// reading to reading, so sums and extremes are worth checking.
func wave(t time.Time) sensor.Reading {
	s := t.Unix()
	return sensor.Reading{
		Temperature: sensor.Deci(150 + (s/2)%37 - 18),
		Humidity:    sensor.Deci(400 + (s/2*7)%101),
		Time:        t,
	}
}

func openTest(t *testing.T, path string, o *Opts) *Store {
	t.Helper()
	s, err := Open(path, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// runUntil runs s until stop is closed and returns Run's result.
func runAsync(s *Store) (cancel func() error) {
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	return func() error { stop(); return <-done }
}

func TestRunFlushesQueuedReadingsWhenStoppedAndTheyOutliveAReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "h.db")
	o := DefaultOpts() // a minute between commits: only the final flush writes
	s := openTest(t, path, &o)
	stop := runAsync(s)
	var want []sensor.Reading
	for i := range 100 {
		r := wave(time.Now().Add(time.Duration(i-100) * 2 * time.Second).Truncate(time.Millisecond))
		want = append(want, r)
		s.Add(r)
	}
	// Not committed yet, and already in the answers.
	q := Query{From: want[0].Time, To: want[99].Time.Add(time.Millisecond)}
	if got, err := s.Query(context.Background(), q); err != nil || len(got) != 100 {
		t.Fatalf("raw query before the first commit: %d rows, %v; want 100", len(got), err)
	}
	// Run's first commit (maintenance at start) may have taken some of
	// them already and rolled them into minute rows: a step counts all.
	q.Step = 24 * time.Hour
	if got, err := s.Query(context.Background(), q); err != nil || len(got) != 1 || got[0].N != 100 {
		t.Fatalf("stepped query before the first commit: %+v, %v; want one row of 100", got, err)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	// Run's first commit (maintenance at start) may come before or after
	// the readings; the one at stop writes whatever is left.
	if st := s.Stats(); st.Written != 100 || st.Queued != 0 || st.Commits < 1 || st.Commits > 2 {
		t.Fatalf("stats after stop = %+v, want 100 written in 1 or 2 commits, none queued", st)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s2 := openTest(t, path, &o)
	got, err := s2.Query(context.Background(), Query{From: want[0].Time, To: want[99].Time.Add(time.Millisecond)})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("got %d rows after reopen, want %d", len(got), len(want))
	}
	for i, p := range got {
		w := want[i]
		if !p.Time.Equal(w.Time) || p.N != 1 || p.Temperature != (Summary{w.Temperature, w.Temperature, w.Temperature}) || p.Humidity.Mean != w.Humidity {
			t.Fatalf("row %d = %+v, want %+v", i, p, w)
		}
	}
}

// summarise is the test's own rollup of readings into steps from `from`.
func summarise(rs []sensor.Reading, from time.Time, step time.Duration) []Point {
	var out []Point
	var sumT, sumH int64
	for _, r := range rs {
		b := from.Add(r.Time.Sub(from) / step * step)
		if len(out) == 0 || !out[len(out)-1].Time.Equal(b) {
			if len(out) > 0 {
				finish(&out[len(out)-1], sumT, sumH)
			}
			out = append(out, Point{Time: b, Temperature: Summary{Min: r.Temperature, Max: r.Temperature}, Humidity: Summary{Min: r.Humidity, Max: r.Humidity}})
			sumT, sumH = 0, 0
		}
		p := &out[len(out)-1]
		p.N++
		sumT += int64(r.Temperature)
		sumH += int64(r.Humidity)
		p.Temperature.Min, p.Temperature.Max = min(p.Temperature.Min, r.Temperature), max(p.Temperature.Max, r.Temperature)
		p.Humidity.Min, p.Humidity.Max = min(p.Humidity.Min, r.Humidity), max(p.Humidity.Max, r.Humidity)
	}
	if len(out) > 0 {
		finish(&out[len(out)-1], sumT, sumH)
	}
	return out
}

func finish(p *Point, sumT, sumH int64) {
	p.Temperature.Mean = mean(sumT, int64(p.N))
	p.Humidity.Mean = mean(sumH, int64(p.N))
}

func samePoints(t *testing.T, what string, got, want []Point) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d rows, want %d", what, len(got), len(want))
	}
	for i := range got {
		if !got[i].Time.Equal(want[i].Time) || got[i].N != want[i].N || got[i].Temperature != want[i].Temperature || got[i].Humidity != want[i].Humidity {
			t.Fatalf("%s: row %d = %+v, want %+v", what, i, got[i], want[i])
		}
	}
}

func TestStepsMergeRolledUpMinutesWithRawOnesAndKeepThemPastRawRetention(t *testing.T) {
	clk := &clock{}
	o := DefaultOpts()
	o.Now = clk.Now
	o.RawRetention = 3 * time.Hour
	o.RollupRetention = 48 * time.Hour
	s := openTest(t, filepath.Join(t.TempDir(), "h.db"), &o)
	ctx := context.Background()

	// Six hours of readings every 2 s, committed a minute at a time the way
	// Run does, the clock following the readings.
	var all []sensor.Reading
	var batch []sensor.Reading
	last := time.Time{}
	for ts := epoch; ts.Before(epoch.Add(6 * time.Hour)); ts = ts.Add(2 * time.Second) {
		r := wave(ts)
		all = append(all, r)
		batch = append(batch, r)
		if len(batch) == 30 {
			clk.Set(ts.Add(time.Second))
			now := clk.Now()
			maint := now.Sub(last) >= time.Hour
			if _, err := s.commit(ctx, batch, now, maint); err != nil {
				t.Fatal(err)
			}
			if maint {
				last = now
			}
			batch = nil
		}
	}
	end := epoch.Add(6 * time.Hour)

	for _, step := range []time.Duration{time.Minute, 7 * time.Minute, time.Hour} {
		got, err := s.Query(ctx, Query{From: epoch, To: end, Step: step})
		if err != nil {
			t.Fatal(err)
		}
		samePoints(t, "step "+step.String(), got, summarise(all, epoch, step))
	}

	// Raw rows stay while their day is not wholly past the retention.
	recent, err := s.Query(ctx, Query{From: end.Add(-3 * time.Hour), To: end})
	if err != nil || len(recent) != 5400 {
		t.Fatalf("raw rows of the last 3 h: %d (err %v), want 5400", len(recent), err)
	}
	// Once the whole day is older than 3 h, its raw rows go together and
	// the rollups stay.
	clk.Set(epoch.Add(27*time.Hour + time.Second))
	if _, err := s.commit(ctx, nil, clk.Now(), true); err != nil {
		t.Fatal(err)
	}
	if old, err := s.Query(ctx, Query{From: epoch, To: end.Add(-3 * time.Hour)}); err != nil || len(old) != 0 {
		t.Fatalf("raw rows of a day past the raw retention: %d (err %v), want 0", len(old), err)
	}
	got, err := s.Query(ctx, Query{From: epoch, To: end, Step: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	samePoints(t, "hourly rollups after the raw rows went", got, summarise(all, epoch, time.Hour))

	// Past the rollup retention, the rollups go too.
	clk.Set(end.Add(49 * time.Hour))
	if _, err := s.commit(ctx, nil, clk.Now(), true); err != nil {
		t.Fatal(err)
	}
	got, err = s.Query(ctx, Query{From: epoch, To: end, Step: time.Hour})
	if err != nil || len(got) != 0 {
		t.Fatalf("rows past the rollup retention: %d (err %v), want 0", len(got), err)
	}
}

func TestImportedPastDaysAreQueryableAtOnce(t *testing.T) {
	clk := &clock{t: epoch.Add(30 * 24 * time.Hour)}
	o := DefaultOpts()
	o.Now = clk.Now
	s := openTest(t, filepath.Join(t.TempDir(), "h.db"), &o)
	ctx := context.Background()
	var mins []Point
	var raw []sensor.Reading
	for ts := epoch; ts.Before(clk.Now()); ts = ts.Add(time.Minute) {
		r := wave(ts)
		if clk.Now().Sub(ts) > 24*time.Hour {
			mins = append(mins, Point{Time: ts, N: 30, Temperature: Summary{r.Temperature - 5, r.Temperature, r.Temperature + 5}, Humidity: Summary{r.Humidity - 2, r.Humidity, r.Humidity + 2}})
		} else {
			raw = append(raw, r)
		}
	}
	if err := s.Import(ctx, raw, mins); err != nil {
		t.Fatal(err)
	}
	got, err := s.Query(ctx, Query{From: epoch, To: clk.Now(), Step: 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 30 {
		t.Fatalf("got %d daily rows over 30 imported days, want 30", len(got))
	}
	if got[0].N != 1440*30 || got[29].N != 1440 {
		t.Fatalf("first day has %d readings (want %d), last %d (want 1440)", got[0].N, 1440*30, got[29].N)
	}
	if got[0].Temperature.Max <= got[0].Temperature.Mean || got[0].Temperature.Min >= got[0].Temperature.Mean {
		t.Fatalf("imported extremes lost: %+v", got[0].Temperature)
	}
}

func TestBadQueriesSayWhy(t *testing.T) {
	s := openTest(t, filepath.Join(t.TempDir(), "h.db"), nil)
	ctx := context.Background()
	var many []sensor.Reading
	for i := range MaxRows + 1 {
		many = append(many, wave(epoch.Add(time.Duration(i)*time.Second)))
	}
	if err := s.Import(ctx, many, nil); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		q    Query
		want error
	}{
		{"an empty range", Query{From: epoch, To: epoch}, ErrQuery},
		{"a reversed range", Query{From: epoch, To: epoch.Add(-time.Hour)}, ErrQuery},
		{"a step of seconds", Query{From: epoch, To: epoch.Add(time.Hour), Step: 30 * time.Second}, ErrQuery},
		{"a step that is not whole minutes", Query{From: epoch, To: epoch.Add(time.Hour), Step: 90 * time.Second}, ErrQuery},
		{"a negative step", Query{From: epoch, To: epoch.Add(time.Hour), Step: -time.Minute}, ErrQuery},
		{"more raw readings than MaxRows", Query{From: epoch, To: epoch.Add(time.Duration(MaxRows+1) * time.Second)}, ErrTooManyRows},
		{"too many steps", Query{From: epoch, To: epoch.Add(8 * 24 * time.Hour), Step: time.Minute}, ErrTooManyRows},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := s.Query(ctx, tc.q); !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestAStoreFromANewerSensordIsRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "h.db")
	s := openTest(t, path, nil)
	if _, err := s.db.Exec("PRAGMA user_version = 99"); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := Open(path, nil); !errors.Is(err, ErrNewerSchema) {
		t.Fatalf("err = %v, want ErrNewerSchema", err)
	}
}

func TestBadOptionsAreRefused(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*Opts)
	}{
		{"raw retention under two hours", func(o *Opts) { o.RawRetention = time.Hour }},
		{"rollups kept shorter than raw", func(o *Opts) { o.RollupRetention = time.Hour * 24 }},
		{"no commit interval", func(o *Opts) { o.CommitInterval = 0 }},
		{"no clock", func(o *Opts) { o.Now = nil }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := DefaultOpts()
			tc.edit(&o)
			if _, err := Open(filepath.Join(t.TempDir(), "h.db"), &o); !errors.Is(err, ErrOpts) {
				t.Fatalf("err = %v, want ErrOpts", err)
			}
		})
	}
}

func TestTheFileIsWALWithSmallPages(t *testing.T) {
	path := filepath.Join(t.TempDir(), "h.db")
	s := openTest(t, path, nil)
	var mode string
	var page, sync int
	if err := s.db.QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil {
		t.Fatal(err)
	}
	if err := s.db.QueryRow("PRAGMA page_size").Scan(&page); err != nil {
		t.Fatal(err)
	}
	if err := s.db.QueryRow("PRAGMA synchronous").Scan(&sync); err != nil {
		t.Fatal(err)
	}
	if mode != "wal" || page != 512 || sync != 2 {
		t.Fatalf("journal_mode %s, page_size %d, synchronous %d; want wal, 512, 2 (FULL)", mode, page, sync)
	}
}

func TestQueriesRunBesideTheWriter(t *testing.T) {
	o := DefaultOpts()
	o.CommitInterval = time.Millisecond
	o.MaintainEvery = 5 * time.Millisecond
	s := openTest(t, filepath.Join(t.TempDir(), "h.db"), &o)
	stop := runAsync(s)
	ctx := context.Background()
	start := time.Now().Add(-time.Hour).Truncate(time.Minute)
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range 3000 {
			s.Add(wave(start.Add(time.Duration(i) * time.Second)))
		}
	})
	for range 2 {
		wg.Go(func() {
			for range 50 {
				if _, err := s.Query(ctx, Query{From: start, To: start.Add(time.Hour), Step: time.Minute}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	got, err := s.Query(ctx, Query{From: start, To: start.Add(time.Hour), Step: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, p := range got {
		n += p.N
	}
	if n+int(s.Stats().Dropped) != 3000 {
		t.Fatalf("after the writer stopped: %+v, dropped %d; want 3000 readings in the hour", got, s.Stats().Dropped)
	}
}

func TestAStepFromInsideAMinuteCountsTheWholeMinute(t *testing.T) {
	clk := &clock{t: epoch.Add(time.Hour)}
	o := DefaultOpts()
	o.Now = clk.Now
	s := openTest(t, filepath.Join(t.TempDir(), "h.db"), &o)
	ctx := context.Background()
	var rs []sensor.Reading
	for i := range 100 {
		rs = append(rs, wave(epoch.Add(30*time.Second+time.Duration(i)*2*time.Second)))
	}
	if err := s.Import(ctx, rs, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.commit(ctx, nil, clk.Now(), true); err != nil { // rolled into minute rows
		t.Fatal(err)
	}
	got, err := s.Query(ctx, Query{From: rs[0].Time, To: clk.Now(), Step: 24 * time.Hour})
	if err != nil || len(got) != 1 || got[0].N != 100 || !got[0].Time.Equal(epoch) {
		t.Fatalf("got %+v, %v; want one row of 100 from %s (from rounded down to its minute)", got, err, epoch)
	}
}
