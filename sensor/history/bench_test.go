package history

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"sensord/sensor"
)

// benchStore is a year at default settings (fillYear), made once per run.
var benchStore struct {
	once sync.Once
	dir  string
	path string
	end  time.Time
	err  error
}

func filledYear(b *testing.B) (*Store, time.Time) {
	b.Helper()
	benchStore.once.Do(func() {
		benchStore.dir, benchStore.err = os.MkdirTemp("", "sensord-history-bench-")
		if benchStore.err != nil {
			return
		}
		benchStore.path = filepath.Join(benchStore.dir, "h.db")
		benchStore.end = epoch.Add(365 * 24 * time.Hour)
		s, err := Open(benchStore.path, nil)
		if err != nil {
			benchStore.err = err
			return
		}
		defer s.Close()
		if benchStore.err = fillYear(context.Background(), s, benchStore.end); benchStore.err != nil {
			return
		}
		// A running daemon has rolled up all but the last minute or two.
		_, benchStore.err = s.commit(context.Background(), nil, benchStore.end, true)
	})
	if benchStore.err != nil {
		b.Fatal(benchStore.err)
	}
	s, err := Open(benchStore.path, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s, benchStore.end
}

// BenchmarkQuery times the dashboard's ranges against a year of history
// at default settings; "1h raw" (the live view's load) is the baseline.
func BenchmarkQuery(b *testing.B) {
	for _, bc := range []struct {
		name string
		span time.Duration
		step time.Duration
	}{
		{"1h_raw", time.Hour, 0},
		{"24h_step2m", 24 * time.Hour, 2 * time.Minute},
		{"7d_step15m", 7 * 24 * time.Hour, 15 * time.Minute},
		{"30d_step1h", 30 * 24 * time.Hour, time.Hour},
		{"1y_step12h", 365 * 24 * time.Hour, 12 * time.Hour},
		{"1y_step1h", 365 * 24 * time.Hour, time.Hour},
	} {
		b.Run(bc.name, func(b *testing.B) {
			s, end := filledYear(b)
			q := Query{From: end.Add(-bc.span), To: end, Step: bc.step}
			ctx := context.Background()
			rows := 0
			b.ReportAllocs()
			for b.Loop() {
				pts, err := s.Query(ctx, q)
				if err != nil {
					b.Fatal(err)
				}
				rows = len(pts)
			}
			b.ReportMetric(float64(rows), "rows")
		})
	}
}

// BenchmarkUnalignedYear is the year at an hour a step with from a minute
// off the hour, against the same query from the hour in the same run.
func BenchmarkUnalignedYear(b *testing.B) {
	for _, off := range []time.Duration{0, time.Minute} {
		b.Run("from+"+off.String(), func(b *testing.B) {
			s, end := filledYear(b)
			q := Query{From: end.Add(-365*24*time.Hour + off), To: end, Step: time.Hour}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := s.Query(context.Background(), q); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkUnderLoad is the load on a year of history: 20 clients
// asking for the year at an hour a step (from a minute off the hour) as
// fast as they are answered, each waiting a retry interval after a
// refusal. Beside them it times a one-hour query (against the same query
// on an idle store, in the same run), commits of 30 readings (the
// writer's minute at -period 2s) and the stop: from the cancel of Run's
// context until Run has returned and every client's query has ended.
func BenchmarkUnderLoad(b *testing.B) {
	const (
		clients = 20
		samples = 30
	)
	s, end := filledYear(b)
	ctx := context.Background()
	light := Query{From: end.Add(-time.Hour), To: end}
	heavy := Query{From: end.Add(-365*24*time.Hour + time.Minute), To: end, Step: time.Hour}
	timeLight := func() []time.Duration {
		var out []time.Duration
		for range samples {
			t0 := time.Now()
			if _, err := s.Query(ctx, light); err != nil {
				b.Fatal(err)
			}
			out = append(out, time.Since(t0))
		}
		return out
	}
	for b.Loop() {
		idle := timeLight()
		runCtx, stopRun := context.WithCancel(ctx)
		ran := make(chan error, 1)
		go func() { ran <- s.Run(runCtx) }()
		load, stopLoad := context.WithCancel(ctx)
		var wg sync.WaitGroup
		var answered, refused, failed, cut atomic.Int64
		for range clients {
			wg.Go(func() {
				for load.Err() == nil {
					_, err := s.Query(load, heavy)
					switch {
					case err == nil:
						answered.Add(1)
					case errors.Is(err, ErrBusy):
						refused.Add(1)
					case errors.Is(err, ErrClosed) || load.Err() != nil:
						cut.Add(1) // cancelled by the stop
					default:
						failed.Add(1)
					}
					if err != nil { // a client waits a moment before it asks again
						select {
						case <-load.Done():
						case <-time.After(100 * time.Millisecond):
						}
					}
				}
			})
		}
		loaded := timeLight()
		var commits []time.Duration
		for i := range samples {
			batch := make([]sensor.Reading, 30)
			for j := range batch {
				batch[j] = sensor.Reading{Temperature: 210, Humidity: 450, Time: end.Add(time.Duration(i*30+j) * 2 * time.Second)}
			}
			t0 := time.Now()
			if _, err := s.commit(ctx, batch, end, false); err != nil {
				b.Fatal(err)
			}
			commits = append(commits, time.Since(t0))
		}
		t0 := time.Now()
		stopRun()
		if err := <-ran; err != nil {
			b.Fatal(err)
		}
		stopLoad()
		wg.Wait()
		stop := time.Since(t0)
		ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
		b.ReportMetric(ms(p50(idle)), "idle-1h-p50-ms")
		b.ReportMetric(ms(p50(loaded)), "loaded-1h-p50-ms")
		b.ReportMetric(float64(p50(loaded))/float64(p50(idle)), "loaded/idle")
		b.ReportMetric(ms(p50(commits)), "commit-p50-ms")
		b.ReportMetric(ms(slices.Max(commits)), "commit-max-ms")
		b.ReportMetric(ms(stop), "stop-ms")
		b.ReportMetric(float64(answered.Load()), "year-answered")
		b.ReportMetric(float64(refused.Load()), "year-refused")
		b.ReportMetric(float64(failed.Load()), "year-failed")
		b.ReportMetric(float64(cut.Load()), "year-cut-at-stop")
	}
}

func p50(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}
