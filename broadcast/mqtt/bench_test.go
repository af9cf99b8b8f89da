package mqtt

import (
	"context"
	"syscall"
	"testing"
	"time"

	"sensord/broadcast"
	"sensord/broadcast/mqtt/mosquittotest"
)

// BenchmarkPublish is the cost Bridge.Publish adds to the sensor loop per
// reading, with the broker down (the queue full, dropping the oldest) and
// up (a real Mosquitto), against the baseline of the same reading published
// to a broadcast.Server ring, which the daemon does for every reading
// anyway.
func BenchmarkPublish(b *testing.B) {
	r := reading("21.4", "48.2", 1763856000123)
	b.Run("baseline=broadcast.Server", func(b *testing.B) {
		s := broadcast.NewServer(&broadcast.ServerOpts{})
		defer s.Close(context.Background())
		m := broadcast.Message{Topic: "sensors/dht22", Payload: r.State}
		b.ReportAllocs()
		for b.Loop() {
			s.Publish(m)
		}
	})
	b.Run("broker=down", func(b *testing.B) {
		br, err := New(Opts{URL: "mqtt://127.0.0.1:1", Name: "bench", Period: 2 * time.Second})
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go br.Run(ctx)
		b.ReportAllocs()
		for b.Loop() {
			br.Publish(r)
		}
	})
	b.Run("broker=mosquitto", func(b *testing.B) {
		broker := mosquittotest.Start(b, mosquittotest.Opts{})
		br, err := New(Opts{URL: broker.URL(), Name: "bench", Period: 2 * time.Second})
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go br.Run(ctx)
		for deadline := time.Now().Add(mosquittotest.Wait); !br.Stats().Connected; time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				b.Fatal("no connection")
			}
		}
		b.ReportAllocs()
		for b.Loop() {
			br.Publish(r)
		}
	})
}

// BenchmarkBackfillADay is what sending a day of readings (43,200 at the
// default 2 s period) from history costs after an outage: the bridge's
// CPU per reading, against the baseline of the same bridge publishing
// live readings to the same Mosquitto in the same run, the bytes of the
// state payloads, and the wall time with the rate bound lifted (at the
// default DefaultBackfillRate a day takes 432 s by design). Run it with
// -benchtime 1x: each iteration is a whole day.
func BenchmarkBackfillADay(b *testing.B) {
	const day, period = 43200, 2 * time.Second
	start := time.UnixMilli(1763856000000)
	readingAt := func(i int) Publication {
		return reading("21.4", "48.2", start.Add(time.Duration(i)*period).UnixMilli())
	}
	cpu := func() time.Duration {
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			b.Fatal(err)
		}
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	waitFor := func(what string, ok func() bool) {
		for deadline := time.Now().Add(5 * time.Minute); !ok(); time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				b.Fatalf("no %s", what)
			}
		}
	}
	broker := mosquittotest.Start(b, mosquittotest.Opts{})
	var bytes int
	for i := 1; i <= day; i++ {
		bytes += len(readingAt(i).State)
	}
	backfill := func(ctx context.Context, from, to time.Time, fn func(Publication) error) error {
		for i := 1; i <= day; i++ {
			r := readingAt(i)
			if r.Time.Before(from) || !r.Time.Before(to) {
				continue
			}
			if err := fn(r); err != nil {
				return err
			}
		}
		return nil
	}
	br, err := New(Opts{URL: broker.URL(), Name: "bench", Period: period, QueueLen: 2, Backfill: backfill,
		BackfillRate: 20000, MaxRate: 1, MaxBurst: 1})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go br.Run(ctx)
	waitFor("connection", func() bool { return br.Stats().Connected })

	// The baseline: live readings, each acknowledged before the next.
	const live = 2000
	c0 := cpu()
	for i := range live {
		p := br.Stats().Published
		br.Publish(readingAt(-live + i))
		waitFor("acknowledgement", func() bool { return br.Stats().Published > p })
	}
	perLive := (cpu() - c0) / live

	var perFill time.Duration
	var wall time.Duration
	for b.Loop() {
		b.StopTimer()
		base := br.Stats().Backfilled
		// Delivered up to reading 0; then the broker goes, the day is
		// published into a queue of 2, and the broker comes back.
		broker.Stop()
		waitFor("disconnect", func() bool { return !br.Stats().Connected })
		for i := 1; i <= day; i++ {
			br.Publish(readingAt(i))
		}
		broker.Start()
		b.StartTimer()
		waitFor("the first back-filled reading", func() bool { return br.Stats().Backfilled > base })
		t0, c1 := time.Now(), cpu()
		waitFor("the whole day back-filled", func() bool { return br.Stats().Backfilled >= base+day-2 })
		wall = time.Since(t0)
		perFill = (cpu() - c1) / time.Duration(br.Stats().Backfilled-base)
	}
	b.ReportMetric(float64(perLive.Microseconds()), "us-cpu/live-reading")
	b.ReportMetric(float64(perFill.Microseconds()), "us-cpu/backfilled-reading")
	b.ReportMetric(float64(perFill)/float64(perLive), "backfill/live")
	b.ReportMetric(wall.Seconds(), "s/day-unbounded")
	b.ReportMetric(float64(bytes)/(1<<20), "MiB-state/day")
}
