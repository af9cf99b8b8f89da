package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"sensord/broadcast"
	"sensord/broadcast/mqtt"
	"sensord/cmd/sensord/internal/api"
	"sensord/cmd/sensord/internal/connlimit"
	"sensord/cmd/sensord/internal/guard"
	"sensord/cmd/sensord/internal/health"
	"sensord/cmd/sensord/internal/outputs"
	"sensord/cmd/sensord/internal/powercycle"
	"sensord/cmd/sensord/internal/push"
	"sensord/cmd/sensord/internal/readings"
	"sensord/cmd/sensord/internal/sensorwatch"
	"sensord/cmd/sensord/internal/setuppage"
	"sensord/cmd/sensord/internal/sysstat"
	"sensord/internal/link"
	"sensord/sensor"
	"sensord/sensor/history"
	"sensord/systemd"
)

const (
	// sensorsRing is the /ws/sensors ring size: 2048 readings are 68
	// minutes at the default 2 s period, a few hundred KiB of memory, room
	// for a slow client to catch up. It is no history: stored history is
	// sensor/history's.
	sensorsRing = 2048

	// systemInterval is how often /ws/dashboard gets system stats, as in the
	// reference flow's inject node.
	systemInterval = 5 * time.Second

	// broadcasterStale: a broadcaster whose housekeeping has not ticked for
	// this long is hung. Its tick is far shorter, so this only trips when
	// something is really stuck.
	broadcasterStale = 15 * time.Second

	// readHeaderTimeout closes connections that never finish their request
	// headers (slowloris), well above any real client on a LAN.
	readHeaderTimeout = 10 * time.Second
	// readTimeout bounds reading a whole request, body included: a request
	// whose headers promise a body that never comes is closed after it.
	// sensord's endpoints take no body or a small one (a push, 132 KiB at
	// most; an update upload keeps its own deadlines), so the headers'
	// 10 s plus a little.
	readTimeout = 15 * time.Second
	// writeTimeout bounds writing a response (from the end of the request
	// headers): /api/history is the largest, ~150 KiB, seconds even on
	// poor Wi-Fi. WebSockets are hijacked and keep their own deadlines.
	writeTimeout = 30 * time.Second
	// idleTimeout closes a keep-alive connection that sends no next
	// request; browsers reopen one in a round trip.
	idleTimeout = 60 * time.Second

	// maxConns bounds the connections open at once (HTTP and WebSocket,
	// all paths): a WebSocket path's 10,000 clients plus room for
	// browsers and scripts.
	maxConns = 15000
	// fdReserve is what the connection bound leaves of the descriptor
	// limit for everything else: the listeners, the GPIO chip and line,
	// the journal and notify sockets, client mode's dial, /proc reads, a
	// history database. A few dozen are in use; 128 leaves room.
	fdReserve = 128

	// connBudget is the memory all connections together may hold: a Pi
	// Zero 2 W has 512 MB, of which the system takes ~150 MB and sensord's
	// own work ~30 MB; 96 MiB leaves the rest to the page cache and the
	// history database.
	connBudget = 96 << 20
	// pendingBudget is the part of connBudget that connections which
	// have not completed a request may hold (a header being read, an
	// unwanted body, a TLS handshake, idle keep-alive).
	pendingBudget = 16 << 20
	// pendingConnCost is the most one pending connection holds: its
	// goroutine's stack, net/http's read and write buffers, a TLS
	// record buffer of up to 18 KiB and the handshake messages within
	// preRequestBytes, and a header within maxHeaderBytes.
	pendingConnCost = 64 << 10
	// establishedConnCost is what an established WebSocket client holds
	// (its socket's buffers in the kernel, two goroutines' stacks, a
	// small read buffer): about 5 KiB, see BENCHMARKS.md.
	establishedConnCost = 6 << 10
	// preRequestBytes bounds what a connection may send before its first
	// request reaches a handler: a TLS ClientHello (2 KiB from a browser,
	// a few more with many session tickets) and a request header.
	preRequestBytes = 24 << 10
	// maxHeaderBytes bounds a request header (net/http's default is
	// 1 MiB): sensord's requests carry a cookie or a token at most.
	maxHeaderBytes = 8 << 10

	// statusEvery rate-limits STATUS= updates (fast sim periods,
	// connect/disconnect storms); systemd only needs the current picture.
	statusEvery = time.Second
)

// daemon joins the poller and the broadcasters. Every field is set before
// start and read-only after, except where noted.
type daemon struct {
	cfg      *Config
	log      *slog.Logger
	now      func() time.Time // the clock of /healthz's window, uptime and /api/history's "now"
	started  time.Time
	warnings []string

	dev    sensor.Sensor
	poller *sensor.Poller

	// One broadcaster per WebSocket path: each has its own ring, clients and
	// framing (only /ws/sensors honours -wholemsg).
	sensors, api, dash *broadcast.Server
	client             *broadcast.Client // nil in server mode
	// outs are where every reading goes, in order (outputs.List).
	outs outputs.List
	// budget bounds the memory every WebSocket client together can make
	// the broadcasters hold (partial messages, queued replies).
	budget *broadcast.Budget
	// conns bounds and counts open connections; set by openFront before
	// the first request (nil in the tests that mount routes on httptest).
	conns *connlimit.Limit
	// tlsFingerprint is the SHA-256 of -tls-cert's leaf ("" without TLS).
	tlsFingerprint string
	// owner is the owner credential's gate (-owner-token).
	owner *guard.Owner
	// hostsRefused counts requests refused by -allowed-hosts.
	hostsRefused atomic.Uint64
	bridge       *mqtt.Bridge // nil without -mqtt-url

	// rawDev is the sensor as opened, before calibration: /metrics asks
	// it for its power cycles.
	rawDev sensor.Sensor

	// stuckAfter: a poller whose last read returned longer ago than this
	// is stuck (longer than the worst back-off plus a blocked read's timeout).
	stuckAfter time.Duration

	// seamMu makes handing a reading to the outputs (adding it to the
	// store and publishing it on /ws/sensors among them) one step for a
	// resume (resume.go); lastPublished is the newest reading's time
	// published so, guarded by it.
	seamMu        sync.Mutex
	lastPublished time.Time

	statusMu   sync.Mutex // guards lastStatus
	lastStatus time.Time

	store    *history.Store    // nil when it could not be opened
	storeErr string            // why store is nil
	history  *readings.History // /api/history
	backup   *readings.Backup  // /api/history/backup
	restore  *readings.Restore // /api/history/restore
	writes   *link.Log         // the history's commits: a WARN when they fail
	watch    *sensorwatch.Watch
	checker  *health.Checker // /healthz
	update   *updatePanel    // the A/B updater's panel and upload (update.go)
	settings *settingsPanel  // the settings page's API (settings.go)
	alerts   *alerting       // the alert rules and their outputs (alerts.go)
	push     *push.Sender    // messages from outside: POST /api/send, the MQTT command topic
	pushLog  pushLog         // refused MQTT pushes' log lines (push.go)
	clk      *clockHold      // the clock's trust and the readings held for it (clock.go)

	setup *setuppage.Portal // the setup access point's page (setup.go)
}

// newDaemon builds the daemon on dev; now is the clock of its health
// window and of the poller's counters (time.Now but in tests).
func newDaemon(cfg *Config, dev sensor.Sensor, warnings []string, log *slog.Logger, now func() time.Time) (*daemon, error) {
	raw := dev
	dev = sensor.Calibrated(dev, cfg.offsets())
	d := &daemon{cfg: cfg, log: log, now: now, started: now(), warnings: warnings, dev: dev, rawDev: raw}
	d.owner = guard.NewOwner(cfg.OwnerToken, cfg.Token, log, time.Now)
	d.update = newUpdatePanel(log)
	d.update.Writable = d.owner.Writable()
	d.settings = newSettingsPanel(cfg.RuntimeDir, cfg.Environ, log)
	d.settings.Writable, d.settings.Owner = d.owner.Writable(), d.owner.Guard
	d.newClock()
	d.newSetup()
	d.openHistory()
	pollOpts := sensor.PeriodicOpts(cfg.Period)
	// The poller's counters and progress are judged against now (the
	// watch, the watchdog's gate): they must be stamped by the same clock.
	pollOpts.Now = now
	backoff := pollOpts.MaxBackoff
	p, err := sensor.NewPoller(dev, &pollOpts)
	if err != nil {
		return nil, fmt.Errorf("poller: %w", err)
	}
	d.poller = p
	d.stuckAfter = backoff + 2*cfg.Period + 2*time.Second
	if cfg.PowerPin != "" {
		// A read that cycles the power takes its off and warm-up time on
		// top.
		d.stuckAfter += powercycle.OffFor + powercycle.WarmUp
	}
	d.watch = &sensorwatch.Watch{Stats: p.Stats, Progress: p.Progress, StuckAfter: d.stuckAfter,
		Window: health.Window{Period: cfg.Period}, Started: d.started, Now: now, Log: log,
		Name: dev.String(), Wiring: sensorwatch.Wiring{Sensor: cfg.Sensor, Pin: cfg.Pin, Bus: cfg.Bus}}
	d.checker = d.newChecker()

	onEvent := func(path string) func(broadcast.Event) {
		return func(e broadcast.Event) {
			log.Debug("client", "event", e.Kind, "path", path, "session", e.Session, "remote", e.Remote, "clients", e.Clients)
			d.updateStatus()
			d.publishClientEvent(path, e)
		}
	}
	d.budget = broadcast.NewBudget(broadcast.DefaultBudget)
	so := &broadcast.ServerOpts{WholeMsg: cfg.WholeMsg, RingSize: sensorsRing, OnEvent: onEvent("/ws/sensors"), Budget: d.budget,
		OnMessage: d.clientSaid("/ws/sensors")}
	if d.store != nil {
		so.Resume = d.resumeSensors
	}
	d.sensors = broadcast.NewServer(so)
	d.dash = broadcast.NewServer(&broadcast.ServerOpts{OnEvent: onEvent("/ws/dashboard"), OnMessage: d.clientSaid("/ws/dashboard"), Budget: d.budget})
	answer, said := d.newAnswerer().Answer, d.clientSaid("/ws/api")
	apiMessage := answer
	if said != nil {
		apiMessage = func(in broadcast.Incoming) {
			answer(in)
			if !api.IsAction(in) {
				said(in)
			}
		}
	}
	d.api = broadcast.NewServer(&broadcast.ServerOpts{NoReplay: true, OnEvent: onEvent("/ws/api"), OnMessage: apiMessage, Budget: d.budget})
	if d.client, err = d.newClient(); err != nil {
		return nil, err
	}
	if d.bridge, err = d.newBridge(); err != nil {
		return nil, err
	}
	d.alerts = d.newAlerts()
	d.push = push.NewSender(d.wsPaths(), time.Now)
	// Where readings go: an output that is not configured is not listed.
	// The store takes each reading before the bridge, whose back-fill
	// reads the store for the readings its full queue dropped.
	d.outs = outputs.Of(
		wsReadings{path: "/ws/sensors", srv: d.sensors, topic: cfg.Topic, log: log},
		wsReadings{path: "/ws/dashboard", srv: d.dash, topic: cfg.Topic, log: log, derived: true},
		d.clientOutput(),
		d.historyOutput(),
		d.mqttOutput(),
		d.alerts,
	)
	return d, nil
}

// connCap is the bound on all connections for a descriptor limit of
// nofile: at most maxConns, fdReserve below the limit, and within
// connBudget with pendingBudget's share pending and the rest established.
func connCap(nofile uint64) int {
	if nofile <= fdReserve {
		return 1
	}
	byMemory := uint64(pendingCap() + (connBudget-pendingBudget)/establishedConnCost)
	return int(min(nofile-fdReserve, maxConns, byMemory))
}

// pendingCap is the bound on connections that have not completed a
// request: pendingBudget over the most each holds.
func pendingCap() int { return pendingBudget / pendingConnCost }

// start runs the loops until ctx is cancelled; the WaitGroup ends with them.
func (d *daemon) start(ctx context.Context) *sync.WaitGroup {
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := d.poller.Run(ctx, d.publish); err != nil {
			d.log.Error("poller", "err", err)
		}
	})
	wg.Go(func() { d.systemStats(ctx) })
	wg.Go(func() { d.watch.Run(ctx) })
	wg.Go(func() { d.runClock(ctx) })
	d.outs.Run(ctx, &wg)
	wg.Go(func() {
		if err := systemd.Watchdog(ctx, d.healthy, d.log); err != nil {
			d.log.Error("watchdog", "err", err)
		}
	})
	wg.Go(func() { d.runVerdict(ctx, d.cfg.RuntimeDir) })
	return &wg
}

// close sends close frames to every client and waits for their writers.
func (d *daemon) close(ctx context.Context) {
	var wg sync.WaitGroup
	for _, s := range d.servers() {
		wg.Go(func() {
			if err := s.Close(ctx); err != nil {
				d.log.Warn("closing clients", "err", err)
			}
		})
	}
	wg.Wait()
}

func (d *daemon) servers() map[string]*broadcast.Server {
	return map[string]*broadcast.Server{"sensors": d.sensors, "api": d.api, "dashboard": d.dash}
}

// wsPaths are the WebSocket paths served (client mode serves no
// /ws/sensors), by URL path.
func (d *daemon) wsPaths() map[string]*broadcast.Server {
	paths := map[string]*broadcast.Server{}
	for name, s := range d.servers() {
		if name == "sensors" && d.cfg.Mode == "client" {
			continue
		}
		paths["/ws/"+name] = s
	}
	return paths
}

// publish is the poller's sink: every validated reading, with its
// derived values, goes to every output. With -clock-hold, a reading taken
// before the clock is set goes to them Held, and once the clock is set
// again Late (clock.go).
func (d *daemon) publish(r sensor.Derived) {
	mono := d.mono()
	held := d.hold(&r, mono)
	d.seamMu.Lock()
	d.outs.Publish(outputs.Reading{Derived: r, Held: held, Mono: mono})
	d.lastPublished = r.Time
	d.seamMu.Unlock()
	d.log.Debug("reading", "temperature", r.Temperature, "humidity", r.Humidity)
	d.watch.GoodReading()
	d.updateStatus()
}

// systemMsg is the hub stream's system message, as the reference flow's
// inject + function nodes build it.
type systemMsg struct {
	Type      string  `json:"type"`
	CPU       float64 `json:"cpu"`
	Memory    float64 `json:"memory"`
	Timestamp int64   `json:"timestamp"`
}

func (d *daemon) systemStats(ctx context.Context) {
	t := time.NewTicker(systemInterval)
	defer t.Stop()
	warned := false
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			s, err := sysstat.Read()
			if err != nil {
				if !warned {
					d.log.Warn("system stats unavailable", "err", err)
					warned = true
				}
				continue
			}
			msg := systemMsg{Type: "system", CPU: s.Load1, Memory: s.MemUsedPercent, Timestamp: now.UnixMilli()}
			if err := d.dash.Publish(broadcast.Message{Topic: "system", Payload: msg}); err != nil {
				d.log.Warn("publish", "path", "/ws/dashboard", "err", err)
			}
		}
	}
}

// healthy is the watchdog's gate: nil only while the poller's reads keep
// returning (a failing sensor that answers is alive, a blocked read is not)
// and every broadcaster's housekeeping keeps ticking. Both Progress times
// and d.started carry monotonic clock readings, as does now: the ages are
// real time, and a wall-clock step (NTP at boot on a Pi without an RTC)
// cannot make a loop look stuck.
func (d *daemon) healthy() error {
	now := time.Now()
	last := d.poller.Progress()
	if last.IsZero() {
		last = d.started
	}
	if age := now.Sub(last); age > d.stuckAfter {
		return fmt.Errorf("sensor loop stuck: no read has returned for %s", age.Round(time.Second))
	}
	for path, s := range d.servers() {
		if age := now.Sub(s.Progress()); age > broadcasterStale {
			return fmt.Errorf("broadcaster /ws/%s stuck for %s", path, age.Round(time.Second))
		}
	}
	return nil
}

// updateStatus sends systemd a one-line STATUS=: the last reading and the
// client count, at most once per statusEvery.
func (d *daemon) updateStatus() {
	d.statusMu.Lock()
	now := time.Now()
	if now.Sub(d.lastStatus) < statusEvery {
		d.statusMu.Unlock()
		return
	}
	d.lastStatus = now
	d.statusMu.Unlock()

	clients := d.sensors.Clients() + d.api.Clients() + d.dash.Clients()
	s := fmt.Sprintf("no reading yet; %d clients", clients)
	if r, ok := d.poller.Latest(); ok {
		s = fmt.Sprintf("%s °C %s %%RH at %s; %d clients", r.Temperature, r.Humidity, r.Time.Format("15:04:05"), clients)
	}
	if err := systemd.Status(s); err != nil {
		d.log.Debug("sd_notify STATUS failed", "err", err)
	}
}
