// Command sensord is the firmware of the sensord appliance: it reads a
// temperature and humidity sensor (a DHT22 on a GPIO pin by default) and
// broadcasts every reading to the browsers and programs connected to
// ws://<host>/ws/sensors, with a dashboard at /, a request/response API at
// /ws/api, a hub stream at /ws/dashboard and plain HTTP endpoints for
// monitors. Under systemd it reports readiness and status and keeps a
// health-gated watchdog alive.
//
// main only wires: the sensor lives in sensor/, the fan-out in broadcast/,
// the systemd protocol in systemd/, the page in web/, and what only this
// command uses in internal/: /ws/api's answers (api), /healthz's verdict
// (health), the /metrics format (promtext), /api/latest and /api/history
// (readings), the token and Host checks (guard), TLS files (tlscert), the
// sensor's and the links' log lines (sensorwatch, internal/link) and the
// system's figures (sysstat, connlimit). The files here build those from
// the flags and join them: daemon.go the loops, http.go the routes,
// front.go the listeners, metrics.go the catalogue of /metrics, mqtt.go
// and history.go the bridge and the store, alerts.go the alert rules'
// outputs (the rules are sensor/alert).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"sensord/cmd/sensord/internal/powercycle"
	"sensord/sensor/sensors"
	"sensord/systemd"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// Exit statuses: 2 for a usage mistake (nothing started), 1 for a failure
// after the configuration was accepted.
const (
	exitOK    = 0
	exitFail  = 1
	exitUsage = 2
)

// gcPercent is the garbage collector's target (Go's GOGC, default 100),
// unless GOGC is set. Each WebSocket handshake leaves ~10 KB of garbage
// (net/http's and gorilla's buffers) against ~3 KB that stays per
// connection; at 100 the heap may grow to twice what is live before a
// collection, which for 10,000 connections is 30 MB more on a 512 MB Pi.
// 50 halves that, for collections an appliance that streams a reading
// every 2 s does not notice.
const gcPercent = 50

// shutdownTimeout bounds the graceful stop (close frames, writers draining).
// It is well inside systemd's default TimeoutStopSec of 90 s and the unit's
// own, so the daemon exits by itself rather than being killed.
const shutdownTimeout = 5 * time.Second

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	code := run(ctx, os.Args[1:], os.LookupEnv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is the whole daemon; it returns the process exit status.
func run(ctx context.Context, args []string, lookup func(string) (string, bool), stdout, stderr io.Writer) int {
	cfg, warnings, err := parseConfig(args, lookup, stdout)
	if errors.Is(err, errHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintln(stderr, "sensord: "+err.Error())
		return exitUsage
	}
	if cfg.Version {
		fmt.Fprintln(stdout, "sensord", version)
		return exitOK
	}
	cfg.RuntimeDir, _ = lookup("RUNTIME_DIRECTORY")
	if _, set := lookup("GOGC"); !set {
		debug.SetGCPercent(gcPercent)
	}
	warnings = append(warnings, unknownSettings(os.Environ())...)
	level, _ := parseLevel(cfg.LogLevel)
	log := slog.New(systemd.NewLogHandler(stderr, level))
	for _, w := range warnings {
		log.Warn("bad setting ignored", "problem", w)
	}
	if err := serve(ctx, cfg, warnings, log); err != nil {
		log.Error("sensord stopped", "err", err)
		return exitFail
	}
	return exitOK
}

// serve opens the sensor and the listener, runs until ctx is cancelled and
// shuts down gracefully.
func serve(ctx context.Context, cfg *config, warnings []string, log *slog.Logger) error {
	log.Info("starting", "version", version, "sensor", cfg.Sensor, "mode", cfg.Mode, "period", cfg.Period)
	dev, err := sensors.Open(ctx, cfg.sensorConfig(), log)
	if err != nil {
		return fmt.Errorf("open sensor: %w", err)
	}
	if p, ok := dev.(sensors.Powered); ok {
		if dev, err = powercycle.New(p, p.Power(), log); err != nil {
			p.Halt()
			return fmt.Errorf("open sensor: %w", err)
		}
	}
	defer dev.Halt()

	d, err := newDaemon(cfg, dev, warnings, log, time.Now)
	if err != nil {
		return err
	}
	fe, err := d.openFront(d.routes())
	if err != nil {
		return err
	}
	serveErr := make(chan error, len(fe.servers))
	fe.serve(serveErr)
	if err := systemd.Ready(); err != nil {
		log.Warn("sd_notify READY failed", "err", err)
	}

	loops, stopLoops := context.WithCancel(context.Background())
	done := d.start(loops)

	var runErr error
	select {
	case <-ctx.Done():
		log.Info("stopping", "cause", context.Cause(ctx))
	case err := <-serveErr:
		runErr = fmt.Errorf("http server: %w", err)
	}
	if err := systemd.Stopping(); err != nil {
		log.Warn("sd_notify STOPPING failed", "err", err)
	}
	shut, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	stopLoops()
	// WebSocket connections are hijacked, so http.Server.Shutdown does not
	// see them: the broadcasters send 1001 and wait for their writers first.
	d.close(shut)
	if err := fe.shutdown(shut); err != nil {
		log.Warn("http shutdown", "err", err)
	}
	done.Wait()
	log.Info("stopped")
	return runErr
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	err := l.UnmarshalText([]byte(strings.ToUpper(s)))
	return l, err
}
