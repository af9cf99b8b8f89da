// Package daemon is sensord's daemon: the poller and the outputs it feeds
// (the WebSocket paths, client mode, the history store, the MQTT bridge,
// the alerts), the HTTP routes and listeners, /healthz, /metrics, the
// clock and the updater's panel, built from the settings that Config
// parses. Package main parses them and calls Run.
//
// The parts it joins live in packages of their own: the sensor in
// sensor/, the fan-out in broadcast/, the systemd protocol in systemd/,
// the page in cmd/sensord/web, and in cmd/sensord/internal: /ws/api's
// answers (api), /healthz's verdict (health), the /metrics format
// (promtext), /api/latest and /api/history (readings), the token and
// Host checks (guard), TLS files (tlscert), the sensor's and the links'
// log lines (sensorwatch, internal/link) and the system's figures (sysstat,
// connlimit). The files here build those from the settings and join
// them: daemon.go the loops, http.go the routes, front.go the listeners,
// metrics.go /metrics, mqtt.go and history.go the bridge and the store,
// alerts.go the alert rules' outputs (the rules are sensor/alert).
package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"sensord/cmd/sensord/internal/powercycle"
	"sensord/sensor/sensors"
	"sensord/systemd"
)

// shutdownTimeout bounds the graceful stop (close frames, writers
// draining). It is well inside systemd's default TimeoutStopSec of 90 s
// and the unit's own, so the daemon exits by itself rather than being
// killed.
const shutdownTimeout = 5 * time.Second

// Run opens the sensor and the listener, runs until ctx is cancelled and
// shuts down gracefully. warnings are the settings' problems, for
// /healthz.
func Run(ctx context.Context, cfg *Config, warnings []string, log *slog.Logger) error {
	log.Info("starting", "version", cfg.Build, "sensor", cfg.Sensor, "mode", cfg.Mode, "period", cfg.Period)
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

// ParseLevel is -log-level's slog level.
func ParseLevel(s string) (slog.Level, error) {
	var l slog.Level
	err := l.UnmarshalText([]byte(strings.ToUpper(s)))
	return l, err
}
