package outputs

import (
	"bytes"
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"sensord/cmd/sensord/internal/health"
	"sensord/cmd/sensord/internal/promtext"
	"sensord/sensor"
)

// recorder is an output that notes what it was handed, in a log the
// test shares between outputs to see their order.
type recorder struct {
	name string
	log  *[]string
	down string
	ran  chan struct{}
}

func (r *recorder) Publish(rd Reading) { *r.log = append(*r.log, r.name+" "+rd.Temperature.String()) }
func (r *recorder) Run(ctx context.Context) {
	close(r.ran)
	<-ctx.Done()
}
func (r *recorder) Health(h *health.Report) string {
	h.Warnings = append(h.Warnings, r.name)
	return r.down
}
func (r *recorder) Metrics(w *promtext.Writer) {
	w.One("test_"+r.name, promtext.Gauge, "A test output.", 1)
}

func TestAListHandsEveryReadingToEachOutputInOrderAndLeavesOutTheUnconfigured(t *testing.T) {
	var log []string
	a := &recorder{name: "a", log: &log, ran: make(chan struct{})}
	b := &recorder{name: "b", log: &log, down: "b is down", ran: make(chan struct{})}
	c := &recorder{name: "c", log: &log, down: "c is down", ran: make(chan struct{})}
	l := Of(a, nil, b, c)
	if len(l) != 3 {
		t.Fatalf("Of kept %d outputs, want the 3 that are not nil", len(l))
	}
	rd := sensor.Derive(sensor.Reading{Temperature: 214, Humidity: 482, Time: time.Now()})
	l.Publish(Reading{Derived: rd})
	l.Publish(Reading{Derived: sensor.Derive(sensor.Reading{Temperature: 215, Humidity: 482})})
	if want := []string{"a 21.4", "b 21.4", "c 21.4", "a 21.5", "b 21.5", "c 21.5"}; !slices.Equal(log, want) {
		t.Errorf("handed %q, want %q", log, want)
	}

	var h health.Report
	if down := l.Health(&h); down != "b is down" {
		t.Errorf("Health = %q, want the first output's reason, %q", down, "b is down")
	}
	if want := []string{"a", "b", "c"}; !slices.Equal(h.Warnings, want) {
		t.Errorf("report filled by %q, want every output, %q", h.Warnings, want)
	}

	var buf bytes.Buffer
	w := promtext.New(&buf)
	l.Metrics(w)
	for _, name := range []string{"test_a 1\n", "test_b 1\n", "test_c 1\n"} {
		if !bytes.Contains(buf.Bytes(), []byte(name)) {
			t.Errorf("metrics lack %q:\n%s", name, buf.String())
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	l.Run(ctx, &wg)
	for _, r := range []*recorder{a, b, c} {
		<-r.ran
	}
	cancel()
	wg.Wait()
}

func TestAHeldReadingGoesLiveAndLaterTimed(t *testing.T) {
	for _, tc := range []struct {
		name        string
		r           Reading
		live, timed bool
	}{
		{"a reading taken on a set clock goes everywhere", Reading{}, true, true},
		{"a held reading goes live only", Reading{Held: true}, true, false},
		{"a held reading handed over late goes to the timed outputs only", Reading{Late: true}, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.r.Live() != tc.live || tc.r.Timed() != tc.timed {
				t.Errorf("Live %v Timed %v, want %v %v", tc.r.Live(), tc.r.Timed(), tc.live, tc.timed)
			}
		})
	}
}
