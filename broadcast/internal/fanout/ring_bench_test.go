package fanout

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

// benchSubs are the subscriber counts of the publish benchmarks.
var benchSubs = []int{1, 100, 10_000}

// benchCoalesce is how often the benchmark's waker drains the readers at
// most: broadcast.DefaultCoalesce, as in the Engine's loop.
const benchCoalesce = 40 * time.Millisecond

// BenchmarkRingPublish measures Publish with n subscribers, followed the
// way the Engine's loop follows them: one waker goroutine takes the ring's
// kick (at most every benchCoalesce), calls Ack and drains every cursor.
// Values are preallocated (2x the ring size, so a pointer is reused only
// after the ring let go of it): allocs/op is the ring's own.
func BenchmarkRingPublish(b *testing.B) {
	for _, n := range benchSubs {
		b.Run(fmt.Sprintf("subs=%d", n), func(b *testing.B) {
			r, _ := NewRing[int](1024)
			done := make(chan struct{})
			rds := make([]Reader[int], n)
			for i := range rds {
				rds[i] = r.NewReader()
			}
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				var w waker
				for {
					select {
					case <-done:
						return
					case <-r.Kicked():
					}
					if !w.hold(done, benchCoalesce) {
						return
					}
					r.Ack()
					for i := range rds {
						for {
							if _, _, _, ok := rds[i].Next(); !ok {
								break
							}
						}
					}
				}
			}()
			vals := make([]int, 2048)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				r.Publish(&vals[i&2047])
			}
			b.StopTimer()
			close(done)
			wg.Wait()
		})
	}
}

// BenchmarkHubPublish is the baseline: the classic hub with one buffered
// channel per client; publishing is a non-blocking send to every client
// (dropping for a full channel), each client a goroutine draining it.
func BenchmarkHubPublish(b *testing.B) {
	for _, n := range benchSubs {
		b.Run(fmt.Sprintf("subs=%d", n), func(b *testing.B) {
			chans := make([]chan *int, n)
			var wg sync.WaitGroup
			for i := range chans {
				chans[i] = make(chan *int, 256)
				wg.Add(1)
				go func(ch chan *int) {
					defer wg.Done()
					for range ch {
					}
				}(chans[i])
			}
			vals := make([]int, 2048)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				v := &vals[i&2047]
				for _, ch := range chans {
					select {
					case ch <- v:
					default:
					}
				}
			}
			b.StopTimer()
			for _, ch := range chans {
				close(ch)
			}
			wg.Wait()
		})
	}
}
