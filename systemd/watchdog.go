package systemd

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
)

// Watchdog keeps systemd's watchdog fed while, and only while, the daemon is
// healthy. It sends WATCHDOG=1 at once and then every half of WATCHDOG_USEC,
// each time only if healthy returns nil. When healthy returns an error (a
// loop stopped making progress) pings stop, and systemd kills and restarts
// the service once WatchdogSec passes without one: that is the point. A
// free-running ticker would prove only that this goroutine is alive.
//
// It logs once, at warning level, why pings stopped (the first error), and
// once, at info level, when they resume; nothing per ping. A failed send is
// treated like an unhealthy check: logged once, retried at the next tick.
// log may be nil (no logging); healthy may be nil (always healthy, which
// defeats the purpose: use it only in tests). healthy should answer quickly;
// if it blocks (say, on a lock a stuck loop holds) pings stop too, which is
// how a deadlock also gets the service restarted.
//
//	NOTIFY_SOCKET unset                   -> nil at once (not under systemd)
//	WATCHDOG_USEC unset                   -> nil at once (no WatchdogSec=)
//	WATCHDOG_PID set to another process   -> nil at once (the watchdog is not ours)
//	WATCHDOG_USEC or WATCHDOG_PID invalid -> error at once
//	otherwise                             -> pings until ctx is done, then nil
//
// Run it in its own goroutine for the life of the daemon.
func Watchdog(ctx context.Context, healthy func() error, log *slog.Logger) error {
	if os.Getenv("NOTIFY_SOCKET") == "" {
		return nil
	}
	timeout, err := daemon.SdWatchdogEnabled(false)
	if err != nil {
		return fmt.Errorf("systemd: watchdog: %w", err)
	}
	if timeout == 0 {
		return nil
	}
	w := &watchdog{
		timeout: timeout,
		healthy: healthy,
		notify:  notify,
		log:     log,
		ticker:  newTicker,
		now:     time.Now,
	}
	return w.run(ctx)
}

// watchdog is the ping loop with its collaborators injected, so tests can
// drive it tick by tick.
type watchdog struct {
	timeout time.Duration                                    // WATCHDOG_USEC; pings go out every timeout/2
	healthy func() error                                     // nil: always healthy
	notify  func(state string) error                         // sends one sd_notify datagram
	log     *slog.Logger                                     // nil: discard
	ticker  func(d time.Duration) (<-chan time.Time, func()) // channel and stop func
	now     func() time.Time                                 // the time of the first check; later ones use the tick's
}

func newTicker(d time.Duration) (<-chan time.Time, func()) {
	t := time.NewTicker(d)
	return t.C, t.Stop
}

// run pings until ctx is done. The state is one value, the reason pings are
// withheld ("" while pinging), so each transition logs exactly once.
func (w *watchdog) run(ctx context.Context) error {
	log := w.log
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	// Half the timeout, as sd_watchdog_enabled(3) advises: one late or lost
	// ping never kills a healthy service.
	period := w.timeout / 2
	log.Info("systemd watchdog enabled", "timeout", w.timeout, "ping_every", period)

	tick, stop := w.ticker(period)
	defer stop()

	var withheld error // why the last tick sent no ping; nil while pinging
	var since time.Time
	check := func(at time.Time) {
		err := w.check()
		switch {
		case err != nil && withheld == nil:
			withheld, since = err, at
			log.Warn("systemd watchdog pings stopped", "reason", err.Error(), "restart_within", w.timeout)
		case err == nil && withheld != nil:
			log.Info("systemd watchdog pings resumed", "after", at.Sub(since).Round(time.Millisecond), "was", withheld.Error())
			withheld = nil
		}
	}
	check(w.now())
	for {
		select {
		case <-ctx.Done():
			return nil
		case at := <-tick:
			check(at)
		}
	}
}

// check sends one ping if the daemon is healthy and says why not otherwise.
func (w *watchdog) check() error {
	if w.healthy != nil {
		if err := w.healthy(); err != nil {
			return err
		}
	}
	return w.notify(daemon.SdNotifyWatchdog)
}
