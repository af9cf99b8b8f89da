// Command wsbench is the WebSocket fan-out load generator of `make bench`.
//
// Connects N subscriber clients to one ws:// URL, records the arrival time of
// every text message on one monotonic clock, and reports delivered messages/s,
// per-message broadcast spread (last arrival - first arrival across clients),
// end-to-end latency (when the message carries a send time in ms epoch),
// loss, and (with --pid) the server's RSS and CPU. Always exits by itself.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

type rec struct {
	id   uint64
	t    int64 // arrival, ns since base (monotonic)
	send int64 // send time, ns unix epoch (0 = absent)
}

type client struct {
	conn     *websocket.Conn
	dial     time.Duration
	recs     []rec
	closedAt int64 // ns since base when the read loop ended on its own (0 = open)
	closeErr string
	frames   int64
	binary   int64
	bad      int64 // unparsable / no id
	done     chan struct{}
}

type opts struct {
	url         string
	clients     int
	duration    time.Duration
	warmup      time.Duration
	grace       time.Duration
	rampRate    float64
	dialConc    int
	dialTimeout time.Duration
	connectMax  time.Duration
	key         string
	fallback    string
	tsField     string
	pid         int
	label       string
	targetRate  float64
	jsonOut     string
	quiet       bool
	waitQuiet   time.Duration
	quietPct    float64
	maxP99Ms    float64
	minRateFrac float64
	exitCode    bool
	table       string
	cpuProfile  string
}

var (
	base       = time.Now()
	baseWallNs = base.UnixNano()
	stopRec    atomic.Bool
)

func since() int64 { return int64(time.Since(base)) }

func main() {
	var o opts
	flag.StringVar(&o.url, "url", "ws://127.0.0.1:1880/ws/sensors", "WebSocket URL to subscribe to")
	flag.IntVar(&o.clients, "clients", 100, "number of subscriber connections (N)")
	flag.DurationVar(&o.duration, "duration", 15*time.Second, "measurement window after warmup")
	flag.DurationVar(&o.warmup, "warmup", 2*time.Second, "wait after the last connection before the window opens")
	flag.DurationVar(&o.grace, "grace", 2*time.Second, "after the window, keep reading this long so late copies of in-window messages count")
	flag.Float64Var(&o.rampRate, "ramp", 1000, "connection ramp: new connections started per second")
	flag.IntVar(&o.dialConc, "dial-concurrency", 64, "max handshakes in flight")
	flag.DurationVar(&o.dialTimeout, "dial-timeout", 10*time.Second, "per-connection handshake timeout")
	flag.DurationVar(&o.connectMax, "connect-max", 60*time.Second, "give up on the ramp after this long and measure with whoever is connected")
	flag.StringVar(&o.key, "key", "seq", "JSON field that identifies a message")
	flag.StringVar(&o.fallback, "fallback-key", "timestamp", "identity field used when --key is absent")
	flag.StringVar(&o.tsField, "ts-field", "timestamp", "JSON field holding the send time in ms since the Unix epoch (\"\" disables latency)")
	flag.IntVar(&o.pid, "pid", 0, "server PID: sample /proc/PID for RSS and CPU")
	flag.StringVar(&o.label, "label", "", "free-form label copied into the JSON output")
	flag.Float64Var(&o.targetRate, "rate", 0, "expected server message rate (msg/s), only reported for comparison")
	flag.StringVar(&o.jsonOut, "json-out", "", "also append the JSON line to this file")
	flag.BoolVar(&o.quiet, "quiet", false, "no human summary on stderr")
	flag.DurationVar(&o.waitQuiet, "wait-quiet", 0, "before connecting, wait up to this long for the machine to be quiet (other load from outside the run)")
	flag.Float64Var(&o.quietPct, "quiet-pct", 20, "with --wait-quiet: 'quiet' means machine CPU busy below this percent of all cores over 1 s")
	flag.Float64Var(&o.maxP99Ms, "max-p99-ms", 1000, "'sustained' requires latency p99 (or spread p99 when no latency) at most this")
	flag.Float64Var(&o.minRateFrac, "min-rate-frac", 0.97, "'sustained' requires msgs/s >= this fraction of --rate")
	flag.BoolVar(&o.exitCode, "exit-code", false, "exit 1 when the run is not 'sustained' (no loss, no failed/dropped connections, rate and p99 met)")
	flag.StringVar(&o.cpuProfile, "cpuprofile", "", "write a Go CPU profile of the bench itself to this file")
	flag.StringVar(&o.table, "table", "", "print a markdown table from a JSON-lines results file and exit")
	flag.Parse()
	if o.table != "" {
		if err := printTable(os.Stdout, o.table); err != nil {
			fatal(err.Error())
		}
		return
	}
	if o.clients < 1 {
		fatal("--clients must be >= 1")
	}
	debug.SetGCPercent(400)

	// Hard watchdog: the process exits by itself no matter what.
	hard := o.waitQuiet + o.connectMax + o.warmup + o.duration + o.grace + 30*time.Second
	go func() {
		time.Sleep(hard)
		fmt.Fprintf(os.Stdout, "{\"error\":\"watchdog: run exceeded %s\",\"label\":%q}\n", hard, o.label)
		os.Exit(3)
	}()

	nofile, err := raiseNofile(uint64(o.clients) + 1024)
	if err != nil {
		fmt.Fprintf(os.Stderr, "warning: raising RLIMIT_NOFILE: %v\n", err)
	}
	if nofile < uint64(o.clients)+64 {
		fmt.Fprintf(os.Stderr, "warning: RLIMIT_NOFILE=%d is below clients+64\n", nofile)
	}

	if o.cpuProfile != "" {
		if f, err := os.Create(o.cpuProfile); err == nil {
			pprof.StartCPUProfile(f)
		}
	}
	res := run(o, nofile)
	if o.cpuProfile != "" {
		pprof.StopCPUProfile()
	}
	line, _ := json.Marshal(res)
	fmt.Println(string(line))
	if o.jsonOut != "" {
		if f, err := os.OpenFile(o.jsonOut, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644); err == nil {
			f.Write(append(line, '\n'))
			f.Close()
		}
	}
	if !o.quiet {
		summary(os.Stderr, res)
	}
	if o.exitCode && !res.Sustained {
		os.Exit(1)
	}
}

func fatal(msg string) {
	fmt.Fprintln(os.Stderr, "wsbench:", msg)
	os.Exit(2)
}

// ---------------------------------------------------------------- run

type pct struct {
	P50 float64 `json:"p50"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
	N   int64   `json:"n"`
}

type result struct {
	Label        string         `json:"label,omitempty"`
	URL          string         `json:"url"`
	Clients      int            `json:"clients"`
	Key          string         `json:"key"`
	KeyUsed      string         `json:"key_used"`
	DurationS    float64        `json:"duration_s"`
	TargetRate   float64        `json:"target_rate,omitempty"`
	Nofile       uint64         `json:"rlimit_nofile"`
	ConnOK       int            `json:"conn_ok"`
	ConnFailed   int            `json:"conn_failed"`
	ConnErrors   map[string]int `json:"conn_errors,omitempty"`
	ConnectS     float64        `json:"connect_time_s"`
	DialMs       pct            `json:"dial_ms"`
	Disconnects  int            `json:"disconnects"`
	DiscErrors   map[string]int `json:"disconnect_errors,omitempty"`
	MsgsPerS     float64        `json:"msgs_per_s"`
	Messages     int64          `json:"messages"`
	Deliveries   int64          `json:"deliveries"`
	DeliveredPS  float64        `json:"delivered_per_s"`
	ExpectedPerS float64        `json:"expected_per_s"`
	SpreadMs     pct            `json:"spread_ms"`
	LatencyMs    *pct           `json:"latency_ms,omitempty"`
	Loss         lossInfo       `json:"loss"`
	Server       *serverInfo    `json:"server,omitempty"`
	Bench        benchInfo      `json:"bench"`
	MachineBusy  float64        `json:"machine_cpu_busy_pct"`
	OtherCPUPct  float64        `json:"other_cpu_pct"`
	SoftirqPct   float64        `json:"irq_softirq_pct"`
	PreBusyPct   float64        `json:"pre_busy_pct"`
	Frames       int64          `json:"frames_total"`
	BadFrames    int64          `json:"bad_frames"`
	BinaryFrames int64          `json:"binary_frames"`
	Sustained    bool           `json:"sustained"`
	Why          []string       `json:"not_sustained_because,omitempty"`
	Warnings     []string       `json:"warnings,omitempty"`
}

type lossInfo struct {
	LostDeliveries int64   `json:"lost_deliveries"`
	PartialMsgs    int64   `json:"partial_msgs"`
	SeqGaps        int64   `json:"seq_gaps"`
	Ratio          float64 `json:"ratio"`
	Duplicates     int64   `json:"duplicates"`
}

type serverInfo struct {
	PID          int     `json:"pid"`
	RSSIdleKB    int64   `json:"rss_idle_kb"`
	RSSConnKB    int64   `json:"rss_connected_kb"`
	RSSPeakKB    int64   `json:"rss_peak_kb"`
	RSSEndKB     int64   `json:"rss_end_kb"`
	VmHWMKB      int64   `json:"vmhwm_kb"`
	RSSPerConnKB float64 `json:"rss_per_conn_kb"`
	CPUWindowS   float64 `json:"cpu_window_s"`
	CPUPct       float64 `json:"cpu_pct"`
	SysShare     float64 `json:"cpu_kernel_share"`
	CPUPerMillS  float64 `json:"cpu_s_per_million"`
	Gone         bool    `json:"gone,omitempty"`
}

type benchInfo struct {
	CPUWindowS float64 `json:"cpu_window_s"`
	CPUPct     float64 `json:"cpu_pct"`
	CPUTotalS  float64 `json:"cpu_total_s"`
	MaxRSSKB   int64   `json:"max_rss_kb"`
	Goroutines int     `json:"goroutines"`
}

// run is one benchmark: wait for a quiet machine, dial the clients, measure
// the window, close the clients, then tally what arrived and what the CPU
// did. Each phase is its own function below, in that order.
func run(o opts, nofile uint64) result {
	res := result{Label: o.label, URL: o.url, Clients: o.clients, Key: o.key,
		DurationS: o.duration.Seconds(), TargetRate: o.targetRate, Nofile: nofile}
	if o.waitQuiet > 0 {
		waitQuiet(o, &res)
	}
	var sampler *procSampler
	var idle procSample
	if o.pid > 0 {
		idle = readProc(o.pid)
		if !idle.ok {
			res.Warnings = append(res.Warnings, fmt.Sprintf("cannot read /proc/%d", o.pid))
		}
		sampler = startSampler(o.pid, 200*time.Millisecond)
	}

	var seen keySeen
	clients := dial(o, &res, &seen)
	w := measure(o)
	closeClients(clients, &res)
	if sampler != nil {
		sampler.finish()
	}

	windowS := float64(w.end-w.start) / 1e9
	res.DurationS = round(windowS, 3)
	res.KeyUsed = o.key
	if seen.primary.Load() == 0 && seen.fallback.Load() > 0 {
		res.KeyUsed = o.fallback
	}
	tally(o, clients, w, &res)
	accountCPU(o, w, idle, sampler, &res)

	if res.ConnOK == 0 {
		res.Warnings = append(res.Warnings, "no connection succeeded")
	}
	why := verdict(&res, o.minRateFrac, o.maxP99Ms)
	res.Sustained = len(why) == 0
	if !res.Sustained {
		res.Why = why
	}
	if res.Frames > 0 && res.BadFrames == res.Frames {
		res.Warnings = append(res.Warnings, fmt.Sprintf("no frame carried field %q or %q", o.key, o.fallback))
	}
	return res
}

// waitQuiet waits, up to o.waitQuiet, until the machine's CPU outside the
// server is below o.quietPct, and records how busy it was.
func waitQuiet(o opts, res *result) {
	deadline := time.Now().Add(o.waitQuiet)
	for {
		b0, t0 := machineCPU()
		s0 := readProc(o.pid)
		time.Sleep(time.Second) // the sampling interval of the busy figure
		b1, t1 := machineCPU()
		s1 := readProc(o.pid)
		if t1 > t0 {
			busy := float64(b1 - b0)
			if o.pid > 0 && s0.ok && s1.ok {
				busy -= (s1.cpuSec - s0.cpuSec) * clkTck // the server's own idle work does not count
			}
			res.PreBusyPct = max(0, round(100*busy/float64(t1-t0), 1))
		}
		if res.PreBusyPct < o.quietPct {
			return
		}
		if time.Now().After(deadline) {
			res.Warnings = append(res.Warnings, fmt.Sprintf("machine not quiet before the run (%.0f%% busy)", res.PreBusyPct))
			return
		}
	}
}

// keySeen counts frames identified by the primary key and by the fallback.
type keySeen struct{ primary, fallback atomic.Int64 }

// dial opens o.clients connections at o.rampRate, at most o.dialConc
// handshakes at a time, giving up after o.connectMax; each connected
// client's read loop starts at once. The slice has nil for each failure.
func dial(o opts, res *result, seen *keySeen) []*client {
	keyB, fbB, tsB := []byte(o.key), []byte(o.fallback), []byte(o.tsField)
	clients := make([]*client, o.clients)
	dialer := &websocket.Dialer{
		HandshakeTimeout: o.dialTimeout,
		ReadBufferSize:   2048,
		WriteBufferSize:  256,
		NetDialContext:   (&net.Dialer{Timeout: o.dialTimeout}).DialContext,
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.connectMax)
	defer cancel()
	sem := make(chan struct{}, o.dialConc)
	var wg sync.WaitGroup
	var mu sync.Mutex
	connErrs := map[string]int{}
	rampStart := time.Now()
	interval := time.Duration(float64(time.Second) / o.rampRate)
	for i := 0; i < o.clients; i++ {
		if ctx.Err() != nil {
			break
		}
		if i > 0 && interval > 0 {
			due := rampStart.Add(time.Duration(i) * interval)
			if d := time.Until(due); d > 0 {
				time.Sleep(d) // paces the ramp
			}
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			t0 := time.Now()
			conn, resp, err := dialer.DialContext(ctx, o.url, nil)
			if resp != nil && resp.Body != nil {
				resp.Body.Close()
			}
			if err != nil {
				mu.Lock()
				connErrs[errClass(err, resp)]++
				mu.Unlock()
				return
			}
			c := &client{conn: conn, dial: time.Since(t0), done: make(chan struct{}), recs: make([]rec, 0, 64)}
			clients[i] = c
			go c.readLoop(keyB, fbB, tsB, &seen.primary, &seen.fallback)
		}(i)
	}
	wg.Wait()
	res.ConnectS = time.Since(rampStart).Seconds()
	var dials []int64
	for _, c := range clients {
		if c != nil {
			res.ConnOK++
			dials = append(dials, int64(c.dial))
		}
	}
	res.ConnFailed = o.clients - res.ConnOK
	if len(connErrs) > 0 {
		res.ConnErrors = connErrs
	}
	sort.Slice(dials, func(i, j int) bool { return dials[i] < dials[j] })
	res.DialMs = pct{P50: ms(quantileSorted(dials, .5)), P99: ms(quantileSorted(dials, .99)),
		Max: ms(quantileSorted(dials, 1)), N: int64(len(dials))}
	return clients
}

// window is what measure saw: the window's bounds and the end of the
// grace period on the run's clock (ns since base), the machine's and the
// bench's CPU counters at its edges, and the server's samples.
type window struct {
	start, end, stop  int64
	busy0, tot0, irq0 int64
	busy1, tot1, irq1 int64
	bench0, bench1    float64
	connected, atEnd  procSample
}

// measure waits out the warm-up, records the window of o.duration, then
// keeps the readers going for o.grace so that late copies of in-window
// messages count, and stops recording.
func measure(o opts) window {
	var w window
	time.Sleep(o.warmup) // the warm-up and the window are spans the run measures
	if o.pid > 0 {
		w.connected = readProc(o.pid)
	}
	w.busy0, w.tot0, w.irq0 = machineCPU3()
	w.bench0 = selfCPU()
	w.start = since()
	time.Sleep(o.duration)
	w.end = since()
	w.bench1 = selfCPU()
	w.busy1, w.tot1, w.irq1 = machineCPU3()
	if o.pid > 0 {
		w.atEnd = readProc(o.pid)
	}
	time.Sleep(o.grace)
	w.stop = since()
	stopRec.Store(true)
	return w
}

// readerStopWait bounds how long closeClients waits for the read loops.
const readerStopWait = 5 * time.Second

// closeClients closes every connection and waits for the read loops; a
// loop still running then is skipped by tally.
func closeClients(clients []*client, res *result) {
	for _, c := range clients {
		if c != nil {
			c.conn.NetConn().Close()
		}
	}
	allDone := make(chan struct{})
	go func() {
		for _, c := range clients {
			if c != nil {
				<-c.done
			}
		}
		close(allDone)
	}()
	select {
	case <-allDone:
	case <-time.After(readerStopWait):
		res.Warnings = append(res.Warnings, "some readers did not stop within 5s; their data is ignored")
	}
}

// msgStat is one message's arrivals across all clients.
type msgStat struct {
	first, last int64
	count       int32
}

// tally counts the frames, deliveries, disconnects, spread, latency and
// loss of the messages first seen inside the window.
func tally(o opts, clients []*client, w window, res *result) {
	a := gather(clients, w, res)
	if res.KeyUsed != o.key {
		a.intIDs = false
	}
	spreads := tallyMessages(a, w, res)
	sort.Slice(spreads, func(i, j int) bool { return spreads[i] < spreads[j] })
	res.SpreadMs = pct{P50: ms(quantileSorted(spreads, .5)), P99: ms(quantileSorted(spreads, .99)),
		Max: ms(quantileSorted(spreads, 1)), N: int64(len(spreads))}
	if a.lat.n > 0 {
		res.LatencyMs = &pct{P50: us2ms(a.lat.quantile(.5)), P99: us2ms(a.lat.quantile(.99)),
			Max: us2ms(a.lat.max), N: a.lat.n}
	}
	rates(o, w, a.expected, res)
}

// arrivals is what the clients received, message by message.
type arrivals struct {
	msgs     map[uint64]*msgStat
	allIDs   map[uint64]struct{}
	lat      *hist
	expected int  // clients connected when the window opened
	intIDs   bool // every id is an integer, so gaps can be counted
}

// gather collects every stopped client's frames into arrivals, and counts
// its frames, deliveries inside the window and disconnects into res.
func gather(clients []*client, w window, res *result) arrivals {
	a := arrivals{msgs: make(map[uint64]*msgStat, 1<<12), allIDs: make(map[uint64]struct{}, 1<<12), lat: newHist(), intIDs: true}
	discErrs := map[string]int{}
	for _, c := range clients {
		if c == nil {
			continue
		}
		select {
		case <-c.done:
		default:
			continue // reader still running: skip (avoid racing its slice)
		}
		res.Frames += c.frames
		res.BadFrames += c.bad
		res.BinaryFrames += c.binary
		if c.closedAt == 0 || c.closedAt >= w.start {
			a.expected++ // connected when the window opened
		}
		if c.closedAt != 0 && c.closedAt < w.stop {
			res.Disconnects++
			discErrs[c.closeErr]++
		}
		a.add(c.recs, w, res)
		if len(c.recs) > 0 && c.recs[0].id>>62 != 0 {
			a.intIDs = false
		}
	}
	if len(discErrs) > 0 {
		res.DiscErrors = discErrs
	}
	return a
}

// add records one client's frames.
func (a *arrivals) add(recs []rec, w window, res *result) {
	for _, r := range recs {
		a.allIDs[r.id] = struct{}{}
		m := a.msgs[r.id]
		if m == nil {
			m = &msgStat{first: r.t, last: r.t}
			a.msgs[r.id] = m
		}
		m.first = min(m.first, r.t)
		m.last = max(m.last, r.t)
		m.count++
		if r.t >= w.start && r.t < w.end {
			res.Deliveries++
			if r.send != 0 {
				a.lat.add((baseWallNs + r.t - r.send) / 1000) // µs
			}
		}
	}
}

// tallyMessages counts the messages first seen inside the window, their
// losses and duplicates, and returns their spreads (first to last
// arrival) unsorted.
func tallyMessages(a arrivals, w window, res *result) []int64 {
	var spreads []int64
	var inWin []uint64
	for id, m := range a.msgs {
		if m.first < w.start || m.first >= w.end {
			continue
		}
		res.Messages++
		inWin = append(inWin, id)
		if m.count >= 2 {
			spreads = append(spreads, m.last-m.first)
		}
		if int(m.count) < a.expected {
			res.Loss.PartialMsgs++
			res.Loss.LostDeliveries += int64(a.expected - int(m.count))
		} else if int(m.count) > a.expected {
			res.Loss.Duplicates += int64(int(m.count) - a.expected)
		}
	}
	if a.intIDs && len(inWin) > 1 {
		countGaps(inWin, a.allIDs, a.expected, res)
	}
	if exp := (res.Messages + res.Loss.SeqGaps) * int64(a.expected); exp > 0 {
		res.Loss.Ratio = round(float64(res.Loss.LostDeliveries)/float64(exp), 6)
	}
	return spreads
}

// rates fills in the per-second figures over the window.
func rates(o opts, w window, expected int, res *result) {
	windowS := float64(w.end-w.start) / 1e9
	if windowS <= 0 {
		return
	}
	res.MsgsPerS = round(float64(res.Messages)/windowS, 2)
	res.DeliveredPS = round(float64(res.Deliveries)/windowS, 1)
	res.ExpectedPerS = round(res.MsgsPerS*float64(expected), 1)
	if o.targetRate > 0 {
		res.ExpectedPerS = round(o.targetRate*float64(expected), 1)
	}
}

// maxGapRange bounds the id range countGaps walks.
const maxGapRange = 1 << 26

// countGaps counts the integer ids between the window's lowest and highest
// that no client received: each is a message every expected client lost.
func countGaps(inWin []uint64, allIDs map[uint64]struct{}, expected int, res *result) {
	sort.Slice(inWin, func(i, j int) bool { return inWin[i] < inWin[j] })
	lo, hi := inWin[0], inWin[len(inWin)-1]
	if hi-lo >= maxGapRange {
		res.Warnings = append(res.Warnings, "id range too wide for gap check")
		return
	}
	for id := lo; id <= hi; id++ {
		if _, ok := allIDs[id]; !ok {
			res.Loss.SeqGaps++
		}
	}
	res.Loss.LostDeliveries += res.Loss.SeqGaps * int64(expected)
}

// accountCPU fills in the machine's, the bench's and the server's CPU and
// the server's memory over the window, and warns when other processes
// took enough CPU to contaminate the figures.
func accountCPU(o opts, w window, idle procSample, sampler *procSampler, res *result) {
	windowS := float64(w.end-w.start) / 1e9
	if w.tot1 > w.tot0 {
		res.MachineBusy = round(100*float64(w.busy1-w.busy0)/float64(w.tot1-w.tot0), 1)
	}
	// CPU used by everything except the server and this bench, in % of one core.
	irqS := float64(w.irq1-w.irq0) / clkTck
	otherS := float64(w.busy1-w.busy0)/clkTck - irqS - (w.bench1 - w.bench0)
	res.Bench = benchInfo{CPUWindowS: round(w.bench1-w.bench0, 3), CPUTotalS: round(selfCPU(), 3),
		MaxRSSKB: selfMaxRSSKB(), Goroutines: runtime.NumGoroutine()}
	if windowS > 0 {
		res.Bench.CPUPct = round(100*(w.bench1-w.bench0)/windowS, 1)
	}
	if o.pid > 0 {
		res.Server = serverFigures(o.pid, w, idle, sampler, res.ConnOK, res.Deliveries, windowS)
		otherS -= res.Server.CPUWindowS
	}
	if windowS > 0 {
		res.SoftirqPct = round(100*irqS/windowS, 1)
		res.OtherCPUPct = max(0, round(100*otherS/windowS, 1))
		if res.OtherCPUPct > 15 {
			res.Warnings = append(res.Warnings, fmt.Sprintf("other processes used %.0f%% of a core during the window: numbers are contaminated", res.OtherCPUPct))
		}
	}
}

// serverFigures is the server's memory and CPU from its /proc samples.
func serverFigures(pid int, w window, idle procSample, sampler *procSampler, connOK int, deliveries int64, windowS float64) *serverInfo {
	s := &serverInfo{PID: pid, RSSIdleKB: idle.rssKB, RSSConnKB: w.connected.rssKB,
		RSSEndKB: w.atEnd.rssKB, VmHWMKB: w.atEnd.hwmKB, Gone: sampler.gone, RSSPeakKB: sampler.peakRSS}
	if connOK > 0 && w.connected.ok {
		s.RSSPerConnKB = round(float64(w.connected.rssKB-idle.rssKB)/float64(connOK), 2)
	}
	if w.connected.ok && w.atEnd.ok {
		s.CPUWindowS = round(w.atEnd.cpuSec-w.connected.cpuSec, 2)
		if d := w.atEnd.cpuSec - w.connected.cpuSec; d > 0 {
			s.SysShare = round((w.atEnd.sysSec-w.connected.sysSec)/d, 2)
		}
		if windowS > 0 {
			s.CPUPct = round(100*s.CPUWindowS/windowS, 1)
		}
		if deliveries > 0 {
			s.CPUPerMillS = round(s.CPUWindowS/(float64(deliveries)/1e6), 3)
		}
	}
	return s
}

// verdict lists why a run does not count as "sustained" (empty = sustained):
// any failed connection, dropped client or lost delivery; fewer messages than
// minFrac of the target rate (one message of slack for window edges); p99
// latency (spread when the message has no send time) above maxP99 ms.
func verdict(res *result, minFrac, maxP99 float64) []string {
	why := []string{}
	if res.ConnFailed > 0 {
		why = append(why, fmt.Sprintf("%d connections failed", res.ConnFailed))
	}
	if res.Disconnects > 0 {
		why = append(why, fmt.Sprintf("%d clients dropped", res.Disconnects))
	}
	if res.Loss.LostDeliveries > 0 {
		why = append(why, fmt.Sprintf("%d deliveries lost", res.Loss.LostDeliveries))
	}
	if res.Messages == 0 {
		why = append(why, "no messages")
	}
	if res.TargetRate > 0 && float64(res.Messages+1) < minFrac*res.TargetRate*res.DurationS {
		why = append(why, fmt.Sprintf("rate %.1f < %.0f%% of %.0f", res.MsgsPerS, 100*minFrac, res.TargetRate))
	}
	p99 := res.SpreadMs.P99
	if res.LatencyMs != nil {
		p99 = res.LatencyMs.P99
	}
	if p99 > maxP99 {
		why = append(why, fmt.Sprintf("p99 %.0fms > %.0fms", p99, maxP99))
	}
	return why
}

func (c *client) readLoop(key, fb, ts []byte, primarySeen, fallbackSeen *atomic.Int64) {
	defer close(c.done)
	buf := make([]byte, 0, 512)
	for {
		mt, r, err := c.conn.NextReader()
		if err != nil {
			if !stopRec.Load() {
				c.closedAt = since()
				c.closeErr = closeClass(err)
			}
			return
		}
		buf = buf[:0]
		for {
			if len(buf) == cap(buf) {
				buf = append(buf, 0)[:len(buf)]
			}
			n, err := r.Read(buf[len(buf):cap(buf)])
			buf = buf[:len(buf)+n]
			if err == io.EOF {
				break
			}
			if err != nil {
				if !stopRec.Load() {
					c.closedAt = since()
					c.closeErr = closeClass(err)
				}
				return
			}
		}
		t := since()
		c.frames++
		if stopRec.Load() {
			continue
		}
		if mt != websocket.TextMessage {
			c.binary++
			continue
		}
		// A frame may carry several newline-separated JSON documents.
		msg := buf
		for len(msg) > 0 {
			doc := msg
			if i := indexNL(msg); i >= 0 {
				doc, msg = msg[:i], msg[i+1:]
			} else {
				msg = nil
			}
			if blank(doc) {
				continue
			}
			f, ok := scanMessage(doc, key, fb, ts)
			if !ok || !f.hasID {
				c.bad++
				continue
			}
			if f.primary {
				if c.frames < 4 {
					primarySeen.Add(1)
				}
			} else if c.frames < 4 {
				fallbackSeen.Add(1)
			}
			id := f.id
			if !f.idInt {
				id |= 1 << 62 // mark non-integer ids (no gap check)
			}
			r := rec{id: id, t: t}
			if f.hasSend {
				r.send = f.sendNs
			}
			c.recs = append(c.recs, r)
		}
	}
}

func blank(b []byte) bool {
	for _, x := range b {
		if x != ' ' && x != '\t' && x != '\r' && x != '\n' {
			return false
		}
	}
	return true
}

func indexNL(b []byte) int {
	for i, x := range b {
		if x == '\n' {
			return i
		}
	}
	return -1
}

// ---------------------------------------------------------------- helpers

func errClass(err error, resp *http.Response) string {
	if resp != nil {
		return fmt.Sprintf("http %d", resp.StatusCode)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "timeout"
	}
	s := err.Error()
	for _, k := range []string{"connection refused", "connection reset", "too many open files",
		"cannot assign requested address", "i/o timeout", "bad handshake", "EOF"} {
		if strings.Contains(s, k) {
			return k
		}
	}
	if len(s) > 60 {
		s = s[:60]
	}
	return s
}

func closeClass(err error) string {
	var ce *websocket.CloseError
	if errors.As(err, &ce) {
		return fmt.Sprintf("close %d", ce.Code)
	}
	s := err.Error()
	for _, k := range []string{"connection reset", "unexpected EOF", "EOF", "i/o timeout", "broken pipe"} {
		if strings.Contains(s, k) {
			return k
		}
	}
	if len(s) > 60 {
		s = s[:60]
	}
	return s
}

func ms(ns int64) float64    { return round(float64(ns)/1e6, 3) }
func us2ms(us int64) float64 { return round(float64(us)/1e3, 3) }

func round(x float64, d int) float64 {
	p := 1.0
	for i := 0; i < d; i++ {
		p *= 10
	}
	if x < 0 {
		return -float64(int64(-x*p+0.5)) / p
	}
	return float64(int64(x*p+0.5)) / p
}

func summary(w io.Writer, r result) {
	fmt.Fprintf(w, "wsbench %s  %s\n", r.Label, r.URL)
	fmt.Fprintf(w, "  connections: %d ok, %d failed in %.2fs (dial p50 %.1fms p99 %.1fms)",
		r.ConnOK, r.ConnFailed, r.ConnectS, r.DialMs.P50, r.DialMs.P99)
	if len(r.ConnErrors) > 0 {
		fmt.Fprintf(w, " errors %v", r.ConnErrors)
	}
	fmt.Fprintln(w)
	if r.Disconnects > 0 {
		fmt.Fprintf(w, "  disconnects during run: %d %v\n", r.Disconnects, r.DiscErrors)
	}
	tgt := ""
	if r.TargetRate > 0 {
		tgt = fmt.Sprintf(" (target %.0f)", r.TargetRate)
	}
	fmt.Fprintf(w, "  messages: %.1f msg/s%s over %.1fs, key %q; delivered %.0f/s (expected %.0f/s)\n",
		r.MsgsPerS, tgt, r.DurationS, r.KeyUsed, r.DeliveredPS, r.ExpectedPerS)
	fmt.Fprintf(w, "  spread (last-first arrival): p50 %.3fms p99 %.3fms max %.3fms over %d msgs\n",
		r.SpreadMs.P50, r.SpreadMs.P99, r.SpreadMs.Max, r.SpreadMs.N)
	if r.LatencyMs != nil {
		fmt.Fprintf(w, "  latency (send ts -> arrival, ms resolution): p50 %.2fms p99 %.2fms max %.2fms\n",
			r.LatencyMs.P50, r.LatencyMs.P99, r.LatencyMs.Max)
	}
	fmt.Fprintf(w, "  loss: %d deliveries (ratio %.6f), %d partial msgs, %d seq gaps, %d dups\n",
		r.Loss.LostDeliveries, r.Loss.Ratio, r.Loss.PartialMsgs, r.Loss.SeqGaps, r.Loss.Duplicates)
	if s := r.Server; s != nil {
		fmt.Fprintf(w, "  server pid %d: RSS idle %.1fMB, connected %.1fMB (%.1f KB/conn), peak %.1fMB; CPU %.2fs in window (%.0f%% of a core, %.0f%% of it in the kernel), %.2f s per 1M deliveries\n",
			s.PID, float64(s.RSSIdleKB)/1024, float64(s.RSSConnKB)/1024, s.RSSPerConnKB,
			float64(s.RSSPeakKB)/1024, s.CPUWindowS, s.CPUPct, 100*s.SysShare, s.CPUPerMillS)
	}
	fmt.Fprintf(w, "  bench CPU %.2fs in window (%.0f%% of a core); machine busy %.0f%% of all cores; irq+softirq %.0f%% of a core; other processes %.0f%% of a core\n",
		r.Bench.CPUWindowS, r.Bench.CPUPct, r.MachineBusy, r.SoftirqPct, r.OtherCPUPct)
	if r.Sustained {
		fmt.Fprintf(w, "  verdict: sustained\n")
	} else {
		fmt.Fprintf(w, "  verdict: NOT sustained: %s\n", strings.Join(r.Why, "; "))
	}
	for _, x := range r.Warnings {
		fmt.Fprintf(w, "  warning: %s\n", x)
	}
}
