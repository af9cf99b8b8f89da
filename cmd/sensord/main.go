// Command sensord is the firmware of the sensord appliance: it reads a
// temperature and humidity sensor (a DHT22 on a GPIO pin by default) and
// broadcasts every reading to the browsers and programs connected to
// ws://<host>/ws/sensors, with a dashboard at /, a request/response API at
// /ws/api, a hub stream at /ws/dashboard and plain HTTP endpoints for
// monitors. Under systemd it reports readiness and status and keeps a
// health-gated watchdog alive.
//
// main only wires: it parses the settings and runs the daemon
// (internal/daemon), which joins the sensor, the outputs and the routes.
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
	"syscall"

	"sensord/cmd/sensord/internal/daemon"
	"sensord/image/paths"
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

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	code := run(ctx, os.Args[1:], os.LookupEnv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is the whole daemon; it returns the process exit status.
func run(ctx context.Context, args []string, lookup func(string) (string, bool), stdout, stderr io.Writer) int {
	cfg, warnings, err := daemon.ParseConfig(args, lookup, stdout)
	if errors.Is(err, daemon.ErrHelp) {
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
	cfg.Build = version
	cfg.RuntimeDir, _ = lookup("RUNTIME_DIRECTORY")
	cfg.Environ = lookup
	if cfg.RuntimeDir != "" {
		cfg.SetupState = paths.SetupState
	}
	if _, set := lookup("GOGC"); !set {
		debug.SetGCPercent(gcPercent)
	}
	warnings = append(warnings, daemon.UnknownSettings(os.Environ())...)
	level, _ := daemon.ParseLevel(cfg.LogLevel)
	log := slog.New(systemd.NewLogHandler(stderr, level))
	for _, w := range warnings {
		log.Warn("bad setting ignored", "problem", w)
	}
	if err := daemon.Run(ctx, cfg, warnings, log); err != nil {
		log.Error("sensord stopped", "err", err)
		return exitFail
	}
	return exitOK
}
