package dht22sim_test

import (
	"context"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"sensord/sensor"
	"sensord/sensor/dht22"
	"sensord/sensor/dht22/dht22sim"
)

// benchReads is how many reads each success-rate benchmark makes, whatever
// b.N says: a rate needs a fixed, large sample. At the simulation's 10 ms
// minimum period plus a ~7 ms frame, one run takes about 35 s.
const benchReads = 2000

// allocLoad keeps every CPU busy allocating and dropping memory (a live set
// of ~1 MiB churned by 64 KiB per turn), so the collector runs constantly,
// until stop is called.
func allocLoad() (stop func()) {
	var quit atomic.Bool
	var wg sync.WaitGroup
	for range runtime.NumCPU() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			live := make([][]byte, 16)
			for i := 0; !quit.Load(); i++ {
				live[i%len(live)] = make([]byte, 64<<10)
			}
		}()
	}
	return func() { quit.Store(true); wg.Wait() }
}

// cpuTime is the process's user plus system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func benchSuccess(b *testing.B, newDev func(*dht22sim.Sim) (*dht22.Dev, error), jitter time.Duration, load bool) {
	sim, err := dht22sim.New(dht22sim.Config{Jitter: jitter, Seed: 1})
	if err != nil {
		b.Fatal(err)
	}
	d, err := newDev(sim)
	if err != nil {
		b.Fatal(err)
	}
	if load {
		defer allocLoad()()
	}
	b.ReportAllocs()
	ok := 0
	kinds := map[string]int{}
	var busy time.Duration // time inside Read, i.e. per-read CPU on the busy loop
	cpu0 := cpuTime()
	b.ResetTimer()
	for i := range benchReads {
		if i > 0 {
			time.Sleep(dht22.SimMinPeriod) // as the Poller does
		}
		t0 := time.Now()
		r, err := d.Read(context.Background())
		busy += time.Since(t0)
		if err != nil {
			kinds[sensor.ErrorKind(err)]++
			continue
		}
		if wt, wh, _ := sim.Last(); r.Temperature != wt || r.Humidity != wh {
			b.Fatalf("read %v but the sim sent %s %s", r, wt, wh)
		}
		ok++
	}
	b.StopTimer()
	cpu := cpuTime() - cpu0
	b.ReportMetric(100*float64(ok)/benchReads, "success-%")
	b.ReportMetric(float64(busy.Microseconds())/benchReads, "µs-in-Read/read")
	if !load {
		// Without the allocating goroutines the process's CPU time is the
		// reads' own (plus the simulation's, which is a few µs).
		b.ReportMetric(float64(cpu.Microseconds())/benchReads, "cpu-µs/read")
	}
	var ks []string
	for k := range kinds {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	for _, k := range ks {
		b.Logf("%s: %d failed reads of kind %s", b.Name(), kinds[k], k)
	}
}

func pinDevFor(rt bool) func(*dht22sim.Sim) (*dht22.Dev, error) {
	return func(s *dht22sim.Sim) (*dht22.Dev, error) {
		return dht22.New(s.Pin("GPIO4"), &dht22.Opts{MinPeriod: dht22.SimMinPeriod, NoRealtime: !rt})
	}
}

func edgeDevFor(s *dht22sim.Sim) (*dht22.Dev, error) {
	return dht22.NewEdge(s.EdgeLine("GPIO4"), &dht22.Opts{MinPeriod: dht22.SimMinPeriod})
}

// BenchmarkReadSuccess reports the share of reads that decode, through the
// fake pin and the busy loop (the capture most exposed to the machine) and
// through the fake edge source, with 5 µs and 10 µs jitter on every edge,
// with and without goroutines allocating hard on every core. Each
// sub-benchmark makes 2000 reads; run it with -benchtime=1x.
func BenchmarkReadSuccess(b *testing.B) {
	us := time.Microsecond
	b.Run("pin/jitter=5us/idle", func(b *testing.B) { benchSuccess(b, pinDevFor(true), 5*us, false) })
	b.Run("pin/jitter=5us/alloc-load", func(b *testing.B) { benchSuccess(b, pinDevFor(true), 5*us, true) })
	b.Run("pin/jitter=10us/alloc-load", func(b *testing.B) { benchSuccess(b, pinDevFor(true), 10*us, true) })
	b.Run("pin/jitter=5us/alloc-load/no-realtime", func(b *testing.B) { benchSuccess(b, pinDevFor(false), 5*us, true) })
	b.Run("edge/jitter=5us/idle", func(b *testing.B) { benchSuccess(b, edgeDevFor, 5*us, false) })
	b.Run("edge/jitter=5us/alloc-load", func(b *testing.B) { benchSuccess(b, edgeDevFor, 5*us, true) })
	b.Run("edge/jitter=10us/alloc-load", func(b *testing.B) { benchSuccess(b, edgeDevFor, 10*us, true) })
}
