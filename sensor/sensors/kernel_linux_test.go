//go:build kerneltest

package sensors

// The guest side of make kernel-test (image/kerneltest): built with
// `go test -c -tags kerneltest` and run inside a Linux guest where gpio-sim
// provides the line and image/kerneltest/responder plays the DHT22 on it.
// It drives the shipped capture (openCdev, the cdev line, dht22's edge
// capture and decoder) and checks every decoded value against the frame
// the responder sent. Outside that guest it has nothing to read: it is not
// built without the tag.

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/warthog618/go-gpiocdev"

	"sensord/internal/testutil"
	"sensord/sensor"
	"sensord/sensor/dht22"
)

var (
	ktCase     = flag.String("kernel.case", "", "the case's name in the result line")
	ktMode     = flag.String("kernel.mode", "capture", "capture: read through the capture code; sensord: watch a running sensord; hold: hold the line; iio: read the kernel's own dht11 driver")
	ktPin      = flag.String("kernel.pin", "GPIO4", "the DHT22's line")
	ktReads    = flag.Int("kernel.reads", 2000, "reads to make (capture)")
	ktPeriod   = flag.Duration("kernel.period", 20*time.Millisecond, "time between reads (capture)")
	ktDir      = flag.String("kernel.dir", "/run/kt", "the responder's directory (next, sent)")
	ktURL      = flag.String("kernel.url", "http://127.0.0.1:8080", "sensord's address (sensord)")
	ktDuration = flag.Duration("kernel.duration", 64*time.Second, "how long to watch sensord (sensord)")
	ktPower    = flag.Bool("kernel.until-power-cycle", false, "sensord: stop watching once a power cycle helped (and two readings came after it), and report the cycles")
	ktCause    = flag.String("kernel.want-cause", "", "the cause every failed read should be told as (sensor.Cause's name), for the fault cases")
	ktIIO      = flag.String("kernel.iio-name", "dht11", "iio: the IIO device's name (the kernel's driver names it after its device-tree node)")
)

// recLine is the shipped cdev line with the edges of the last capture kept
// for the report. It says it is simulated, which it is (gpio-sim), so the
// driver accepts a test period below the sensor's 2 s.
type recLine struct {
	*cdevLine
	n     int
	edges [128]dht22.Edge
}

func (r *recLine) Simulated() bool { return true }

func (r *recLine) Edges(ctx context.Context, dst []dht22.Edge, timeout time.Duration) (int, error) {
	n, err := r.cdevLine.Edges(ctx, dst, timeout)
	r.n = copy(r.edges[:], dst[:n])
	return n, err
}

// expected reads the responder's next frame: "SEQ RH T".
func expected(dir string) (seq int, rh, t sensor.Deci, err error) {
	raw, err := os.ReadFile(dir + "/next")
	if err != nil {
		return 0, 0, 0, err
	}
	f := strings.Fields(string(raw))
	if len(f) < 3 {
		return 0, 0, 0, fmt.Errorf("kerneltest: %s/next: %q", dir, raw)
	}
	v := make([]int, 3)
	for i := range v {
		if v[i], err = strconv.Atoi(f[i]); err != nil {
			return 0, 0, 0, fmt.Errorf("kerneltest: %s/next: %w", dir, err)
		}
	}
	return v[0], sensor.Deci(v[1]), sensor.Deci(v[2]), nil
}

// maxAhead bounds how many frames the responder may be ahead of the
// reader's look at DIR/next: when it answers a start pulse after the
// reader gave up on it (on one shared vCPU under TCG it can be that
// late), it has sent that frame and written the next one by the time the
// following read starts, but that read looked at DIR/next before it.
const maxAhead = 2

// aheadWait is how long a decoded frame may take to appear in DIR/sent:
// the responder writes it right after the frame's last edge.
const aheadWait = 500 * time.Millisecond

// sentAfter says whether the responder sent the values rh, t in one of
// the maxAhead frames after seq (DIR/sent: "SEQ RH T [fault]" a line),
// and which.
func sentAfter(dir string, seq int, rh, t sensor.Deci) (int, bool) {
	raw, err := os.ReadFile(dir + "/sent")
	if err != nil {
		return 0, false
	}
	for _, l := range strings.Split(string(raw), "\n") {
		f := strings.Fields(l)
		if len(f) < 3 {
			continue
		}
		s, err1 := strconv.Atoi(f[0])
		h, err2 := strconv.Atoi(f[1])
		v, err3 := strconv.Atoi(f[2])
		if err1 == nil && err2 == nil && err3 == nil && s > seq && s <= seq+maxAhead && sensor.Deci(h) == rh && sensor.Deci(v) == t {
			return s, true
		}
	}
	return 0, false
}

func result(name string, ok, total, wrong int) {
	p := 0.0
	if total > 0 {
		p = 100 * float64(ok) / float64(total)
	}
	fmt.Printf("kernel-test: %s: %d of %d reads decoded (%.2f %%), %d wrong values\n", name, ok, total, p, wrong)
}

func TestKernel(t *testing.T) {
	if *ktCase == "" {
		t.Fatal("kerneltest: -kernel.case is required")
	}
	switch *ktMode {
	case "capture":
		kernelCapture(t)
	case "sensord":
		kernelSensord(t)
	case "iio":
		kernelIIO(t)
	case "hold":
		// Another program holding the line, under a consumer name of its
		// own: request it and keep it for -kernel.duration.
		host := gpioHost{root: "/", info: cdevInfo}
		c, offset, err := host.findLine(*ktPin, gpiocdev.FindLine)
		if err != nil {
			t.Fatal(err)
		}
		l, err := gpiocdev.RequestLine(c.name, offset, gpiocdev.AsInput, gpiocdev.WithConsumer("kerneltest-holder"))
		if err != nil {
			t.Fatal(err)
		}
		fmt.Printf("kerneltest: %s: holding %s:%d for %v\n", *ktCase, c.name, offset, *ktDuration)
		if err := os.WriteFile(*ktDir+"/held", nil, 0o644); err != nil {
			t.Fatal(err)
		}
		time.Sleep(*ktDuration) // holding the line is the whole job
		l.Close()
	default:
		t.Fatalf("kerneltest: unknown -kernel.mode %q", *ktMode)
	}
}

func kernelCapture(t *testing.T) {
	l, err := openCdev(*ktPin)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	line := &recLine{cdevLine: l}
	// The driver's floor, not the test period: the ticker below paces the
	// reads, and a late tick must not fail the next read as too soon.
	dev, err := dht22.NewEdge(line, &dht22.Opts{MinPeriod: dht22.SimMinPeriod})
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("kerneltest: %s: reading %s through %s, %d reads every %v\n", *ktCase, line, dev.Capture(), *ktReads, *ktPeriod)

	kinds := map[string]int{}
	causes := map[sensor.Cause]int{}
	var ok, wrong, short, ahead int
	var first []time.Duration // release to the first edge
	counts := map[int]int{}   // edges per capture
	tick := time.NewTicker(*ktPeriod)
	defer tick.Stop()
	ctx := context.Background()
	for i := 0; i < *ktReads; i++ {
		if i > 0 {
			<-tick.C
		}
		seq, wantH, wantT, err := expected(*ktDir)
		if err != nil {
			t.Fatal(err)
		}
		r, err := dev.Read(ctx)
		counts[line.n]++
		if line.n < frameEdges {
			short++
		}
		if line.n > 0 {
			first = append(first, line.edges[0].T-l.relAt)
		}
		if err != nil {
			k := "other"
			for _, kind := range []error{sensor.ErrTimeout, sensor.ErrShortFrame, sensor.ErrChecksum, sensor.ErrOutOfRange, sensor.ErrTooSoon} {
				if errors.Is(err, kind) {
					k = kind.Error()
				}
			}
			kinds[k]++
			causes[sensor.CauseOf(err)]++
			if kinds[k] <= 3 {
				fmt.Printf("kerneltest: %s: read %d (frame %d) failed: %v; %s\n", *ktCase, i, seq, err, describe(line.edges[:line.n], l.relAt))
			}
			continue
		}
		ok++
		if r.Temperature != wantT || r.Humidity != wantH {
			// The responder logs a frame to DIR/sent just after its last
			// edge, which can be after this decode: give it that moment.
			var s int
			if testutil.Within(aheadWait, func() (found bool) {
				s, found = sentAfter(*ktDir, seq, r.Humidity, r.Temperature)
				return found
			}) {
				ahead++
				fmt.Printf("kerneltest: %s: read %d decoded frame %d, sent after frame %d it expected: the responder answered the previous start pulse late and was ahead; the values are that frame's\n", *ktCase, i, s, seq)
				continue
			}
			wrong++
			fmt.Printf("kerneltest: %s: read %d WRONG: got %v %%RH %v C, frame %d sent %v %v; %s\n", *ktCase, i, r.Humidity, r.Temperature, seq, wantH, wantT, describe(line.edges[:line.n], l.relAt))
		}
	}
	sort.Slice(first, func(i, j int) bool { return first[i] < first[j] })
	q := func(p float64) time.Duration {
		if len(first) == 0 {
			return 0
		}
		return first[min(len(first)-1, int(p*float64(len(first))))]
	}
	fmt.Printf("kerneltest: %s: failures by kind %v; captures with fewer than %d edges: %d; edges per capture %v; release to first edge min %v median %v p99 %v max %v; events dropped by the hand-over %d; decoded a frame the responder sent ahead of the one expected: %d\n",
		*ktCase, kinds, frameEdges, short, counts, q(0), q(0.5), q(0.99), q(1), l.dropped.Load(), ahead)
	if *ktCause != "" {
		// The host checks this line (image/kerneltest/main.go, causeLine).
		failed, told := 0, 0
		for c, n := range causes {
			failed += n
			if c.String() == *ktCause {
				told += n
			}
		}
		fmt.Printf("kerneltest: %s: failures by cause %v\n", *ktCase, causes)
		fmt.Printf("kerneltest: %s: cause %s: %d of %d failed reads\n", *ktCase, *ktCause, told, failed)
	}
	result(*ktCase, ok, *ktReads, wrong)
}

// describe summarises a capture for a failure line: the edge count, the
// first edge after the release and the widths of the levels in µs.
func describe(edges []dht22.Edge, rel time.Duration) string {
	if len(edges) == 0 {
		return "no edges"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d edges, first %s %v after the release, levels (us):", len(edges), map[bool]string{true: "rising", false: "falling"}[edges[0].Rising], edges[0].T-rel)
	for i := 1; i < len(edges); i++ {
		fmt.Fprintf(&b, " %d", (edges[i].T-edges[i-1].T)/time.Microsecond)
	}
	return b.String()
}

// iioValidFor is how long the kernel's dht11 driver answers from its last
// frame (DHT11_DATA_VALID_TIME, 2 s): a read sooner would not start a new
// frame, so the reads are at least this far apart.
const iioValidFor = 2 * time.Second

// kernelIIO reads the kernel's own DHT11/DHT22 driver (drivers/iio/
// humidity/dht11.c) through its IIO attributes: reading in_temp_input
// starts a frame, in_humidityrelative_input then answers from the same
// frame. Every value is compared with the frame the responder sent; the
// driver reports milli-degrees and milli-percent.
func kernelIIO(t *testing.T) {
	names, _ := filepath.Glob("/sys/bus/iio/devices/iio:device*/name")
	dir := ""
	for _, n := range names {
		if b, err := os.ReadFile(n); err == nil && strings.TrimSpace(string(b)) == *ktIIO {
			dir = filepath.Dir(n)
		}
	}
	if dir == "" {
		t.Fatalf("kerneltest: no IIO device named %q among %v: the driver did not bind", *ktIIO, names)
	}
	period := max(*ktPeriod, iioValidFor+iioValidFor/20)
	fmt.Printf("kerneltest: %s: reading %s (%s, the kernel's driver), %d reads every %v\n", *ktCase, dir, *ktIIO, *ktReads, period)
	milli := func(name string) (int, error) {
		b, err := os.ReadFile(dir + "/" + name)
		if err != nil {
			return 0, err
		}
		return strconv.Atoi(strings.TrimSpace(string(b)))
	}
	kinds := map[string]int{}
	var ok, wrong int
	tick := time.NewTicker(period)
	defer tick.Stop()
	for i := 0; i < *ktReads; i++ {
		if i > 0 {
			<-tick.C
		}
		seq, wantH, wantT, err := expected(*ktDir)
		if err != nil {
			t.Fatal(err)
		}
		// A failed temperature read leaves no frame behind: reading the
		// humidity then would start another one.
		mt, err := milli("in_temp_input")
		var mh int
		if err == nil {
			mh, err = milli("in_humidityrelative_input")
		}
		if err != nil {
			k := err.Error()
			var errno syscall.Errno
			if errors.As(err, &errno) {
				k = errno.Error()
			}
			kinds[k]++
			if kinds[k] <= 3 {
				fmt.Printf("kerneltest: %s: read %d (frame %d) failed: %v\n", *ktCase, i, seq, err)
			}
			continue
		}
		ok++
		if mt != int(wantT)*100 || mh != int(wantH)*100 {
			wrong++
			fmt.Printf("kerneltest: %s: read %d WRONG: got %d m%%RH %d mC, frame %d sent %v %v\n", *ktCase, i, mh, mt, seq, wantH, wantT)
		}
	}
	fmt.Printf("kerneltest: %s: failures by kind %v\n", *ktCase, kinds)
	result(*ktCase, ok, *ktReads, wrong)
}

// kernelSensord watches a running sensord: the readings /api/latest
// publishes must each be a frame the responder sent; /metrics counts the
// reads.
func kernelSensord(t *testing.T) {
	c := &http.Client{Timeout: 2 * time.Second}
	get := func(path string) ([]byte, int, error) {
		resp, err := c.Get(*ktURL + path)
		if err != nil {
			return nil, 0, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return b, resp.StatusCode, err
	}
	seen := map[int64][2]sensor.Deci{} // published readings by timestamp
	deadline := time.Now().Add(*ktDuration)
	poll := time.NewTicker(500 * time.Millisecond)
	defer poll.Stop()
	var helpedAt time.Time
	for time.Now().Before(deadline) {
		<-poll.C
		if *ktPower {
			if helpedAt.IsZero() {
				if b, _, err := get("/metrics"); err == nil && metric(b, "sensord_sensor_power_cycles_helped_total") > 0 {
					helpedAt = time.Now()
				}
			} else if time.Since(helpedAt) > 5*time.Second {
				break // two readings at 2 s after the cycle
			}
		}
		b, code, err := get("/api/latest")
		if err != nil || code != http.StatusOK {
			continue // not up yet, or no reading yet
		}
		var r struct {
			Temperature float64 `json:"temperature"`
			Humidity    float64 `json:"humidity"`
			Timestamp   int64   `json:"timestamp"`
		}
		if err := json.Unmarshal(b, &r); err != nil {
			t.Fatalf("kerneltest: /api/latest: %v: %s", err, b)
		}
		seen[r.Timestamp] = [2]sensor.Deci{deci(r.Humidity), deci(r.Temperature)}
	}
	b, _, err := get("/metrics")
	if err != nil {
		t.Fatal(err)
	}
	reads, successes := metric(b, "sensord_sensor_reads_total"), metric(b, "sensord_sensor_successes_total")
	if *ktPower {
		// The host checks this line (image/kerneltest/main.go, powerLine).
		fmt.Printf("kerneltest: %s: power cycles %d, helped %d\n", *ktCase,
			metric(b, "sensord_sensor_power_cycles_total"), metric(b, "sensord_sensor_power_cycles_helped_total"))
	}
	raw, err := os.ReadFile(*ktDir + "/sent")
	if err != nil {
		t.Fatal(err)
	}
	sent := map[[2]sensor.Deci]bool{}
	for _, l := range strings.Split(string(raw), "\n") {
		f := strings.Fields(l)
		if len(f) >= 3 {
			h, _ := strconv.Atoi(f[1])
			tt, _ := strconv.Atoi(f[2])
			sent[[2]sensor.Deci{sensor.Deci(h), sensor.Deci(tt)}] = true
		}
	}
	wrong := 0
	for ts, v := range seen {
		if !sent[v] {
			wrong++
			fmt.Printf("kerneltest: %s: published %v %%RH %v C at %d, which the responder never sent\n", *ktCase, v[0], v[1], ts)
		}
	}
	fmt.Printf("kerneltest: %s: %d distinct readings published on /api/latest in %v\n", *ktCase, len(seen), *ktDuration)
	result(*ktCase, successes, reads, wrong)
}

func deci(v float64) sensor.Deci {
	if v < 0 {
		return sensor.Deci(v*10 - 0.5)
	}
	return sensor.Deci(v*10 + 0.5)
}

// metric returns an unlabelled sample's value from a Prometheus text page.
func metric(page []byte, name string) int {
	for _, l := range strings.Split(string(page), "\n") {
		if v, ok := strings.CutPrefix(l, name+" "); ok {
			f, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return int(f)
		}
	}
	return 0
}
