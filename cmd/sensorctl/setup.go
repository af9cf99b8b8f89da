package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/activation"

	"sensord/image/paths"
	"sensord/image/setupap"
	"sensord/image/setupap/captivedns"
)

// dnsReport is how often the DNS responder logs its counts.
const dnsReport = time.Minute

// setup runs the setup access point's commands (package image/setupap).
func setup(cmd string, out io.Writer) error {
	log := slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{
		// journald stamps every line itself.
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	}))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	switch cmd {
	case "setup-request":
		r, err := setupap.TakeSpooled(paths.SetupRequest, paths.SetupJoin)
		if err != nil {
			return fmt.Errorf("setup-request: refused: %w", err)
		}
		log.Info("setup request passed on", "ssid", r.SSID, "name", r.Name, "country", r.Country, "open", r.Passphrase == "")
		return nil
	case "setup-dns":
		return setupDNS(ctx, log)
	}
	r := &setupap.Runner{
		Sys:       setupap.NewLinux(log),
		Decider:   setupap.Decider{Timing: setupap.DefaultTiming},
		StatePath: paths.SetupState,
		Now:       time.Now,
		Log:       log,
		Tick:      setupap.DefaultTick,
	}
	return r.Run(ctx)
}

// setupDNS serves the datagram socket systemd passes, on the access
// point's address, until stopped; it logs its counts every dnsReport.
func setupDNS(ctx context.Context, log *slog.Logger) error {
	conns, err := activation.PacketConns()
	if err != nil {
		return fmt.Errorf("setup-dns: %w", err)
	}
	if len(conns) != 1 {
		return errors.New("setup-dns: needs the one datagram socket of sensord-setup-dns.socket")
	}
	var st captivedns.Stats
	go func() {
		t := time.NewTicker(dnsReport)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				log.Info("captive DNS", "answered", st.Answered.Load(), "empty", st.Empty.Load(), "malformed", st.Malformed.Load(), "dropped", st.Dropped.Load(), "notimp", st.NotImp.Load())
			}
		}
	}()
	log.Info("captive DNS: every name is the Pi", "addr", setupap.APAddress)
	err = captivedns.Serve(ctx, conns[0], setupap.APAddress, &st)
	log.Info("captive DNS stopped", "answered", st.Answered.Load(), "empty", st.Empty.Load(), "malformed", st.Malformed.Load(), "dropped", st.Dropped.Load(), "notimp", st.NotImp.Load())
	return err
}
