package setupap

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"
)

// Radio is the Pi's Wi-Fi interface.
type Radio struct {
	Interface string
	MAC       string
}

// TryError is a failed try to join a network, with its kind and the
// words the setup page shows.
type TryError struct {
	Failure Failure
	Reason  string
}

func (e *TryError) Error() string { return "setupap: " + e.Reason }

// System is what the root side does to the Pi. Linux (system.go) runs
// the image's tools; tests give their own.
type System interface {
	// Radio is the first Wi-Fi interface, ok false when there is none.
	Radio() (r Radio, ok bool)
	// Cable: a wired interface has a carrier.
	Cable() bool
	// Configured: sensord.conf's Wi-Fi network is set up
	// (sensord-settings wrote wpa_supplicant's configuration); Joined:
	// the interface is associated with it.
	Configured() bool
	Joined(iface string) bool
	// APPassword is SETUP_AP_PASSWORD and WIFI_COUNTRY from sensord.conf;
	// an error when the password is set but not one WPA2 takes.
	APSettings() (password, country string, err error)
	// Scan lists the networks in range (the interface not in use).
	Scan(ctx context.Context, iface string) ([]Network, error)
	// OpenAP stops the station on iface and opens the access point, its
	// address, DHCP server and DNS responder; CloseAP undoes it.
	OpenAP(ctx context.Context, iface, ssid, password, country string) error
	CloseAP(ctx context.Context, iface string) error
	// Try joins r's network on iface and returns the address DHCP gave
	// it; a *TryError says why not. It leaves nothing running.
	Try(ctx context.Context, iface string, r Request) (address string, err error)
	// Keep writes r into sensord.conf and applies it (the Wi-Fi
	// configuration, the host name).
	Keep(ctx context.Context, r Request) error
	// Station starts the configured network on iface.
	Station(ctx context.Context, iface string) error
	// TakeRequest returns a request waiting at paths.SetupJoin (and
	// removes it), ok false when there is none.
	TakeRequest() (r Request, ok bool, err error)
}

// Runner is the root side's loop (`sensorctl setup`).
type Runner struct {
	Sys     System
	Decider Decider
	// StatePath is where the State is written (paths.SetupState).
	StatePath string
	Now       func() time.Time
	Log       *slog.Logger
	// Tick is how often the network's state is looked at.
	Tick time.Duration

	st    State
	radio Radio
}

// DefaultTick: a cable plugged in or a request is noticed within it.
const DefaultTick = 2 * time.Second

// Run runs until ctx ends; it closes the access point on the way out.
func (r *Runner) Run(ctx context.Context) error {
	r.st = State{Phase: PhaseStation, Since: r.Now()}
	if err := r.write(); err != nil {
		return err
	}
	t := time.NewTicker(r.Tick)
	defer t.Stop()
	for {
		if err := r.step(ctx); err != nil {
			r.Log.Error("setup access point", "err", err)
		}
		select {
		case <-ctx.Done():
			if r.st.Active {
				// A fresh context: ctx is done, the close must still run.
				cctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				defer cancel()
				r.close(cctx)
			}
			r.st = State{Phase: PhaseStation, Since: r.Now()}
			return r.write()
		case <-t.C:
		}
	}
}

// step looks once and does what the Decider, or a waiting request, says.
func (r *Runner) step(ctx context.Context) error {
	radio, ok := r.Sys.Radio()
	if ok {
		r.radio = radio
	}
	in := Inputs{Now: r.Now(), Radio: ok, Cable: r.Sys.Cable(), Configured: r.Sys.Configured()}
	if ok && !r.Decider.InSetup() {
		in.Joined = r.Sys.Joined(radio.Interface)
	}
	if r.Decider.InSetup() && ok {
		req, got, err := r.Sys.TakeRequest()
		if err != nil {
			r.Log.Warn("setup request refused", "err", err)
		}
		if got {
			return r.try(ctx, req)
		}
	}
	d := r.Decider.Next(in)
	switch d.Action {
	case OpenSetup:
		r.Log.Info("opening the setup access point", "reason", d.Reason)
		return r.open(ctx, d.Reason, "")
	case CloseSetup:
		r.Log.Info("closing the setup access point", "reason", d.Reason)
		r.close(ctx)
		if in.Configured {
			if err := r.Sys.Station(ctx, r.radio.Interface); err != nil {
				r.Log.Warn("starting the configured Wi-Fi network", "err", err)
			}
		}
		r.st = State{Phase: PhaseStation, Reason: d.Reason, Since: r.Now()}
		return r.write()
	}
	return nil
}

// open scans, then opens the access point and says so in the state.
func (r *Runner) open(ctx context.Context, reason string, failure Failure) error {
	iface := r.radio.Interface
	nets, err := r.Sys.Scan(ctx, iface)
	if err != nil {
		// The page still takes a network's name typed by hand.
		r.Log.Warn("scan for networks", "err", err)
	}
	password, country, err := r.Sys.APSettings()
	if err != nil {
		r.st = State{Phase: PhaseSetup, Interface: iface, Reason: err.Error(), Since: r.Now()}
		_ = r.write()
		return err
	}
	ssid := APName(r.radio.MAC)
	if err := r.Sys.OpenAP(ctx, iface, ssid, password, country); err != nil {
		r.st = State{Phase: PhaseSetup, Interface: iface, Reason: "the access point did not open: " + err.Error(), Since: r.Now()}
		_ = r.write()
		return fmt.Errorf("open the access point %s on %s: %w", ssid, iface, err)
	}
	r.st = State{Phase: PhaseSetup, Active: true, Interface: iface, Address: APAddress.String(), SSID: ssid, Secured: password != "",
		Reason: reason, Failure: failure, Networks: nets, Since: r.Now()}
	r.Log.Info("setup access point open", "ssid", ssid, "interface", iface, "address", APAddress, "secured", password != "", "networks", len(nets))
	return r.write()
}

// close closes the access point, logging what fails.
func (r *Runner) close(ctx context.Context) {
	if err := r.Sys.CloseAP(ctx, r.radio.Interface); err != nil {
		r.Log.Warn("closing the setup access point", "err", err)
	}
}

// try tries a person's request: on success it is written to sensord.conf,
// the access point opens again for JoinedShow to say where the Pi went,
// then closes for good; on failure it opens again with the reason.
func (r *Runner) try(ctx context.Context, req Request) error {
	iface := r.radio.Interface
	r.Log.Info("trying the network asked for on the setup page", "ssid", req.SSID, "open", req.Passphrase == "")
	prev := r.st
	r.st.Phase, r.st.Active, r.st.Trying, r.st.Since = PhaseJoining, false, req.SSID, r.Now()
	if err := r.write(); err != nil {
		return err
	}
	r.close(ctx)
	addr, err := r.Sys.Try(ctx, iface, req)
	var te *TryError
	if errors.As(err, &te) {
		r.Log.Warn("setup: network not joined", "ssid", req.SSID, "failure", te.Failure, "reason", te.Reason)
		r.Decider.Tried(r.Now(), false)
		return r.open(ctx, te.Reason, te.Failure)
	}
	if err != nil {
		r.Decider.Tried(r.Now(), false)
		r.Log.Error("setup: trying the network", "err", err)
		return r.open(ctx, "the Pi could not try the network: "+err.Error(), FailureNoAddress)
	}
	if err := r.Sys.Keep(ctx, req); err != nil {
		r.Decider.Tried(r.Now(), false)
		return r.open(ctx, "joined the network but could not save it in sensord.conf: "+err.Error(), "")
	}
	r.Decider.Tried(r.Now(), true)
	name := req.Name
	if name == "" {
		name, _ = os.Hostname()
	}
	joined := &Joined{SSID: req.SSID, Name: name, Address: addr}
	r.Log.Info("setup: joined and saved in sensord.conf", "ssid", req.SSID, "address", addr, "name", name)
	// The person's phone lost the access point during the try; open it
	// for a while to tell them where the Pi went.
	if err := r.open(ctx, "", ""); err == nil {
		r.st.Phase, r.st.Joined, r.st.Networks, r.st.Reason = PhaseJoined, joined, prev.Networks, ""
		if err := r.write(); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
		case <-time.After(r.Decider.Timing.JoinedShow):
		}
		r.close(context.WithoutCancel(ctx))
	}
	if err := r.Sys.Station(context.WithoutCancel(ctx), iface); err != nil {
		r.Log.Warn("starting the joined Wi-Fi network", "err", err)
	}
	r.st = State{Phase: PhaseStation, Joined: joined, Since: r.Now()}
	return r.write()
}

func (r *Runner) write() error { return WriteState(r.StatePath, r.st) }
