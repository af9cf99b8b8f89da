package history

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
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
