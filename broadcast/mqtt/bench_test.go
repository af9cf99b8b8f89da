package mqtt

import (
	"context"
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
