// Command sensorctl is the appliance's privileged updater (root only):
//
//	sensorctl update FILE   verify a signed bundle, write it to the slot that
//	                        is not running, boot it on trial at the next reboot
//	sensorctl status        running slot and version, pending trial, last outcome
//	sensorctl boot          at every boot (sensord-update.service): report a
//	                        rollback; on a trial boot, commit once sensord's
//	                        /healthz has answered 200 for -healthy-for, or
//	                        reboot (back into the committed slot) after -within
//	sensorctl mark-good     commit the running trial slot now
//	sensorctl install-spool FILE
//	                        install a bundle sensord spooled from the
//	                        dashboard (sensord-update-spool.path), then
//	                        reboot into its trial
//
// sensord itself stays unprivileged; the bundle format and the boot flow
// are in image/README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"sensord/image/update"
)

// Where things are on the appliance (image/build.sh and
// image/initramfs/sensord-slot put them there).
const (
	keyPath   = "/usr/lib/sensord/update-key.pem"
	statePath = "/data/update/state"
	lastPath  = "/data/update/last"
	bootPath  = "/run/sensord-boot"
	// takenPath is where install-spool moves a spooled upload before it
	// reads it: a directory only root can write, on the same filesystem
	// as sensord's spool (/var), so sensord can no longer swap the name.
	takenPath = "/var/lib/sensord-update/upload.update"
)

// Health gate defaults: a trial is committed after sensord has answered
// healthy for a minute without a failure, and given up (rebooted back)
// when that has not happened within ten minutes of starting to wait,
// which covers an emulated cold boot.
const (
	defaultHealthyFor = 60 * time.Second
	defaultWithin     = 10 * time.Minute
	healthPoll        = 2 * time.Second
	healthTimeout     = 5 * time.Second
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "sensorctl:", err)
		os.Exit(1)
	}
}

func newUpdater(log io.Writer) (*update.Updater, error) {
	key, err := update.ReadPublicKey(keyPath)
	if err != nil {
		return nil, err
	}
	boot, err := update.ReadBoot(bootPath)
	if err != nil {
		return nil, fmt.Errorf("%w (not booted through the A/B initramfs?)", err)
	}
	var uts syscall.Utsname
	if err := syscall.Uname(&uts); err != nil {
		return nil, err
	}
	return &update.Updater{
		Key: key, StatePath: statePath, LastPath: lastPath, Boot: boot,
		Kernel: cstr(uts.Release[:]),
		Device: func(s string) (*os.File, error) { return os.OpenFile(boot.SlotDevice(s), os.O_RDWR, 0) },
		Now:    time.Now,
		Log:    log,
	}, nil
}

func cstr(b []int8) string {
	var s strings.Builder
	for _, c := range b {
		if c == 0 {
			break
		}
		s.WriteByte(byte(c))
	}
	return s.String()
}

func run(args []string, out io.Writer) error {
	if len(args) == 0 {
		return errors.New("usage: sensorctl update FILE | status | boot | mark-good | install-spool FILE")
	}
	switch args[0] {
	case "update":
		if len(args) != 2 {
			return errors.New("usage: sensorctl update FILE")
		}
		u, err := newUpdater(out)
		if err != nil {
			return err
		}
		durable()
		m, err := u.Install(args[1])
		if err != nil {
			// A refused bundle leaves the slots as they were; say so.
			if lerr := u.Last("refused", m.Version, "", err.Error()); lerr != nil {
				fmt.Fprintln(os.Stderr, "sensorctl:", lerr)
			}
			return fmt.Errorf("%w\nnothing was changed: slot %s stays committed", err, u.Boot.Slot)
		}
		fmt.Fprintln(out, "reboot to try it: systemctl reboot")
		return nil
	case "install-spool":
		if len(args) != 2 {
			return errors.New("usage: sensorctl install-spool FILE")
		}
		return installSpool(args[1], takenPath, out)
	case "status":
		return status(out)
	case "mark-good":
		u, err := newUpdater(out)
		if err != nil {
			return err
		}
		return u.MarkGood()
	case "boot":
		fs := flag.NewFlagSet("boot", flag.ContinueOnError)
		url := fs.String("url", "http://127.0.0.1/healthz", "sensord's health endpoint")
		healthyFor := fs.Duration("healthy-for", defaultHealthyFor, "commit after this long healthy without a break")
		within := fs.Duration("within", defaultWithin, "reboot (roll back) when not committed by then")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		u, err := newUpdater(out)
		if err != nil {
			return err
		}
		if err := u.ReportRollback(); err != nil {
			return err
		}
		if u.Boot.Mode != update.ModeTrial {
			fmt.Fprintf(out, "slot %s (%s), nothing on trial\n", u.Boot.Slot, u.Boot.Mode)
			return nil
		}
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
		defer stop()
		fmt.Fprintf(out, "slot %s on trial: committing after sensord is healthy for %s (giving up after %s)\n", u.Boot.Slot, *healthyFor, *within)
		if err := waitHealthy(ctx, *url, os.Getenv("SENSORD_TOKEN"), *healthyFor, *within); err != nil {
			if ctx.Err() != nil {
				return err
			}
			fmt.Fprintf(out, "trial of slot %s failed: %v; rebooting into the committed slot\n", u.Boot.Slot, err)
			return exec.Command("systemctl", "reboot").Run()
		}
		return u.MarkGood()
	}
	return fmt.Errorf("unknown command %q", args[0])
}

// waitHealthy polls url until it has answered 200 for healthyFor without
// a failure in between, or within has passed.
func waitHealthy(ctx context.Context, url, token string, healthyFor, within time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	client := &http.Client{Timeout: healthTimeout}
	var since time.Time
	last := "no answer yet"
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := client.Do(req)
		ok := false
		if err == nil {
			io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
			resp.Body.Close()
			ok = resp.StatusCode == http.StatusOK
			last = resp.Status
		} else {
			last = err.Error()
		}
		switch {
		case !ok:
			since = time.Time{}
		case since.IsZero():
			since = time.Now()
		case time.Since(since) >= healthyFor:
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("sensord not healthy for %s within %s (last: %s)", healthyFor, within, last)
		case <-time.After(healthPoll):
		}
	}
}

func status(out io.Writer) error {
	b, err := update.ReadBoot(bootPath)
	if err != nil {
		return err
	}
	st, err := update.ReadState(statePath)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "slot=%s\nmode=%s\nversion=%s\ncommitted=%s\ntrial=%s\n",
		b.Slot, b.Mode, st["version_"+b.Slot], st["committed"], st["trial"])
	if last, err := update.ReadState(lastPath); err == nil {
		for _, k := range []string{"outcome", "version", "slot", "time", "detail"} {
			fmt.Fprintf(out, "last_%s=%s\n", k, last[k])
		}
	}
	return nil
}

// installSpool installs the bundle sensord wrote to spooled (an upload on
// the dashboard), then reboots into its trial. sensord owns spooled's
// directory, so the file is first renamed into taken, which only root
// can write, and must then be a regular file (not a link to a device or
// another file); whatever the outcome it is removed, so the path unit
// that started us does not start us again. The outcome goes to
// /data/update/last, which the dashboard shows.
func installSpool(spooled, taken string, out io.Writer) error {
	if err := os.MkdirAll(filepath.Dir(taken), 0o700); err != nil {
		return err
	}
	if err := os.Rename(spooled, taken); err != nil {
		return fmt.Errorf("take the upload: %w", err)
	}
	defer os.Remove(taken)
	u, err := newUpdater(out)
	if err != nil {
		return err
	}
	if fi, err := os.Lstat(taken); err != nil || !fi.Mode().IsRegular() {
		err = fmt.Errorf("the upload %s is not a regular file (%v)", spooled, err)
		u.Last("refused", "", "", err.Error())
		return err
	}
	durable()
	m, err := u.Install(taken)
	if err != nil {
		if lerr := u.Last("refused", m.Version, "", err.Error()); lerr != nil {
			fmt.Fprintln(os.Stderr, "sensorctl:", lerr)
		}
		return fmt.Errorf("%w\nnothing was changed: slot %s stays committed", err, u.Boot.Slot)
	}
	fmt.Fprintf(out, "uploaded version %s installed: rebooting into its trial\n", m.Version)
	return exec.Command("systemctl", "reboot").Run()
}

// durable flushes every filesystem before an install starts writing a
// slot: what the appliance wrote before (history, SSH host keys, the
// machine ID, settings) must survive a power cut during the install, and
// the kernel would otherwise hold some of it in memory for up to 30 s.
func durable() { syscall.Sync() }
