// Command sensorctl is the appliance's privileged updater (root only):
//
//	sensorctl update [--allow-downgrade] FILE
//	                        verify a signed bundle, write it to the slot that
//	                        is not running, boot it on trial at the next
//	                        reboot; a bundle whose release is not newer than
//	                        the committed slot's is refused unless
//	                        --allow-downgrade says it is meant
//	sensorctl status        running slot, version and release, pending trial,
//	                        last outcome and the rule that decided it
//	sensorctl boot          at every boot (sensord-update.service): report a
//	                        rollback; on a trial boot, run the health gate
//	                        (package update, "What commits a trial") on
//	                        sensord's verdict file: commit, or reboot back
//	                        into the committed slot
//	sensorctl mark-good     commit the running trial slot now
//	sensorctl install-spool FILE
//	                        install a bundle sensord spooled from the
//	                        dashboard (sensord-update-spool.path), then
//	                        reboot into its trial
//	sensorctl imager-import at boot, before sensord.conf is applied
//	                        (sensord-imager.service): carry the settings
//	                        Raspberry Pi Imager wrote to the boot partition
//	                        (cloud-init user-data, network-config) into
//	                        sensord.conf once, then mark its files done
//	                        (package image/cloudinit)
//	sensorctl apply-settings FILE
//	                        apply a settings change sensord spooled from the
//	                        dashboard's settings page
//	                        (sensord-settings-apply.path): check it with
//	                        sensord's own rules, write sensord.conf, restart
//	                        sensord (and the network's services when their
//	                        settings changed), record the outcome for the page
//	sensorctl settings show | set NAME=value... | unset NAME...
//	                        the same over SSH: show sensord.conf's settings
//	                        (secrets as set or not), change them
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
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"sensord/image/cloudinit"
	"sensord/image/paths"
	"sensord/image/settings"
	"sensord/image/update"
	"sensord/internal/atomicfile"
)

// healthPoll is how often the health gate reads sensord's verdict.
const healthPoll = 2 * time.Second

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "sensorctl:", err)
		os.Exit(1)
	}
}

func newUpdater(log io.Writer) (*update.Updater, error) {
	key, err := update.ReadPublicKey(paths.UpdateKey)
	if err != nil {
		return nil, err
	}
	boot, err := update.ReadBoot(paths.Boot)
	if err != nil {
		return nil, fmt.Errorf("%w (not booted through the A/B initramfs?)", err)
	}
	var uts syscall.Utsname
	if err := syscall.Uname(&uts); err != nil {
		return nil, err
	}
	return &update.Updater{
		Key: key, StatePath: statePath(), StateView: paths.StateView, LastPath: paths.Last, Boot: boot,
		Kernel:        cstr(uts.Release[:]),
		Device:        func(s string) (*os.File, error) { return os.OpenFile(boot.SlotDevice(s), os.O_RDWR, 0) },
		BootPartition: paths.BootPartition,
		ProcSys:       paths.ProcSys,
		SlotFiles:     func(s string) (string, func() error, error) { return mountSlot(boot.SlotDevice(s)) },
		Now:           time.Now,
		Log:           log,
	}, nil
}

// moveToBootScript moves a card whose firmware still loads the kernel
// itself to U-Boot's boot script (update.Migration), once the running
// slot is committed: a bundle of this version brings the card there.
func moveToBootScript(slot string, out io.Writer) error {
	m := update.Migration{FAT: paths.BootPartition, DataState: paths.State, Slot: slot,
		BootFiles: paths.SlotBoot, UBoot: paths.UBootFiles, Log: out}
	need, err := m.Needed()
	if err != nil || !need {
		return err
	}
	fmt.Fprintf(out, "the boot partition still boots the kernel without U-Boot: moving it to U-Boot's slot chooser\n")
	if err := m.Run(); err != nil {
		return err
	}
	fmt.Fprintf(out, "the boot partition boots through U-Boot from the next boot on; each slot boots its own kernel\n")
	return nil
}

// statePath is where this card keeps its slot state: on the boot
// partition once its boot script chooses the slot, else on the data
// partition, where the initramfs of a card made before U-Boot chose reads it.
func statePath() string {
	if update.SlotKernels(paths.BootPartition) {
		return paths.BootState
	}
	return paths.State
}

// mountSlot mounts the slot's squashfs at dev read-only, for Install to
// copy its boot files; it returns their directory and the unmount.
func mountSlot(dev string) (string, func() error, error) {
	mnt, err := os.MkdirTemp("/run", "sensorctl-slot-")
	if err != nil {
		return "", nil, err
	}
	const flags = syscall.MS_RDONLY | syscall.MS_NODEV | syscall.MS_NOSUID | syscall.MS_NOEXEC
	if err := syscall.Mount(dev, mnt, "squashfs", flags, ""); err != nil {
		return "", nil, errors.Join(fmt.Errorf("mount %s: %w", dev, err), os.Remove(mnt))
	}
	unmount := func() error {
		if err := syscall.Unmount(mnt, 0); err != nil {
			return fmt.Errorf("unmount %s: %w", mnt, err)
		}
		return os.Remove(mnt)
	}
	return filepath.Join(mnt, paths.SlotBoot), unmount, nil
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
		return errors.New("usage: sensorctl update [--allow-downgrade] FILE | status | boot | mark-good | install-spool FILE | imager-import | apply-settings FILE | settings show|set|unset | setup | setup-request | setup-dns")
	}
	switch args[0] {
	case "update":
		fs := flag.NewFlagSet("update", flag.ContinueOnError)
		fs.SetOutput(out)
		downgrade := fs.Bool("allow-downgrade", false, "install a bundle whose release is not newer than the committed slot's (going back on purpose)")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		if fs.NArg() != 1 {
			return errors.New("usage: sensorctl update [--allow-downgrade] FILE")
		}
		u, err := newUpdater(out)
		if err != nil {
			return err
		}
		return install(u, fs.Arg(0), *downgrade, out)
	case "install-spool":
		if len(args) != 2 {
			return errors.New("usage: sensorctl install-spool FILE")
		}
		return installSpool(args[1], paths.Taken, out)
	case "status":
		return status(out)
	case "imager-import":
		if len(args) != 1 {
			return errors.New("usage: sensorctl imager-import")
		}
		return imagerImport(filepath.Dir(paths.Settings), paths.Settings, paths.ImagerReport, out)
	case "apply-settings":
		a := newApplier(out)
		fs := flag.NewFlagSet("apply-settings", flag.ContinueOnError)
		fs.SetOutput(out)
		a.flags(fs)
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		if fs.NArg() != 1 {
			return errors.New("usage: sensorctl apply-settings FILE")
		}
		return a.applySpool(fs.Arg(0))
	case "settings":
		return settingsCmd(args[1:], out)
	case "setup", "setup-request", "setup-dns":
		if len(args) != 1 {
			return fmt.Errorf("usage: sensorctl %s", args[0])
		}
		return setup(args[0], out)
	case "mark-good":
		u, err := newUpdater(out)
		if err != nil {
			return err
		}
		if u.Boot.Mode != update.ModeTrial {
			fmt.Fprintf(out, "slot %s is not on trial (%s): nothing to commit\n", u.Boot.Slot, u.Boot.Mode)
			return nil
		}
		err = u.MarkGood(update.RuleMarkGood, "committed by hand (sensorctl mark-good)")
		if errors.Is(err, update.ErrCommitted) {
			fmt.Fprintf(out, "slot %s is already committed: nothing to commit\n", u.Boot.Slot)
			return nil
		}
		return err
	case "boot":
		fs := flag.NewFlagSet("boot", flag.ContinueOnError)
		verdict := fs.String("verdict", paths.Verdict, "sensord's verdict file")
		healthyFor := fs.Duration("healthy-for", update.DefaultHealthyFor, "commit after sensord has been alive this long without a break")
		within := fs.Duration("within", update.DefaultWithin, "reboot (roll back) when not committed by then")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		u, err := newUpdater(out)
		if err != nil {
			return err
		}
		if err := u.PublishState(); err != nil {
			return err
		}
		if err := u.ReportRollback(); err != nil {
			return err
		}
		if u.Boot.Mode != update.ModeTrial {
			fmt.Fprintf(out, "slot %s (%s), nothing on trial\n", u.Boot.Slot, u.Boot.Mode)
			return moveToBootScript(u.Boot.Slot, out)
		}
		st, err := u.Trial()
		if err != nil {
			return err
		}
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
		defer stop()
		g := &update.Gate{HealthyFor: *healthyFor, Within: *within, SensorRequired: st.SensorAtInstall == update.SensorReading}
		fmt.Fprintf(out, "slot %s on trial: committing once sensord is alive for %s%s (giving up after %s)\n", u.Boot.Slot, *healthyFor,
			map[bool]string{true: " with its sensor reading, as it was at install", false: " (the sensor was not reading at install: it does not count)"}[g.SensorRequired], *within)
		d, err := runGate(ctx, g, *verdict, time.Now, healthPoll)
		if err != nil {
			return err
		}
		if err := decide(u, d, out, func() error { return exec.Command("systemctl", "reboot").Run() }); err != nil || !d.Commit {
			return err
		}
		return moveToBootScript(u.Boot.Slot, out)
	}
	return fmt.Errorf("unknown command %q", args[0])
}

// runGate reads the verdict file at path every poll and hands it to g
// until g decides (or ctx ends).
func runGate(ctx context.Context, g *update.Gate, path string, now func() time.Time, poll time.Duration) (update.Decision, error) {
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		v, _, err := update.ReadVerdict(path, now())
		if d := g.Observe(now(), v, err); d.Done {
			return d, nil
		}
		select {
		case <-ctx.Done():
			return update.Decision{}, ctx.Err()
		case <-t.C:
		}
	}
}

// decide acts on the gate's decision: commit, or record the failure and
// reboot (into the committed slot). A slot committed by hand while the gate
// ran (sensorctl mark-good) stays committed, with its rule: the gate's
// decision is then only said.
func decide(u *update.Updater, d update.Decision, out io.Writer, reboot func() error) error {
	var err error
	if d.Commit {
		err = u.MarkGood(d.Rule, d.Reason)
	} else {
		err = u.GiveUp(d.Rule, d.Reason)
	}
	switch {
	case errors.Is(err, update.ErrCommitted):
		fmt.Fprintf(out, "slot %s was committed by hand while the gate ran; the gate's rule %s (%s) changes nothing\n", u.Boot.Slot, d.Rule, d.Reason)
		return nil
	case d.Commit:
		return err
	case err != nil:
		fmt.Fprintln(os.Stderr, "sensorctl:", err)
	}
	return reboot()
}

// sensorAtInstall is the sensor's state for the trial's health gate,
// asking again while a sensord that has just started has not finished its
// first read, for at most update.SensorSettle.
func sensorAtInstall(path string, now func() time.Time, sleep func(time.Duration)) string {
	deadline := now().Add(update.SensorSettle)
	for {
		state, waiting := update.SensorAtInstall(path, now())
		if !waiting || now().After(deadline) {
			return state
		}
		sleep(healthPoll)
	}
}

// install installs the bundle at path and says what happened; a refusal
// is recorded as the last outcome.
func install(u *update.Updater, path string, downgrade bool, out io.Writer) error {
	durable()
	sensor := sensorAtInstall(paths.Verdict, time.Now, time.Sleep)
	m, err := u.Install(path, update.InstallOptions{AllowDowngrade: downgrade, SensorAtInstall: sensor})
	if err != nil {
		// A refused bundle leaves the slots as they were; say so.
		if lerr := u.Record(update.Outcome{Outcome: update.OutcomeRefused, Version: m.Version, Release: m.Release, Detail: err.Error()}); lerr != nil {
			fmt.Fprintln(os.Stderr, "sensorctl:", lerr)
		}
		return fmt.Errorf("%w\nnothing was changed: slot %s stays committed", err, u.Boot.Slot)
	}
	fmt.Fprintln(out, "reboot to try it: systemctl reboot")
	return nil
}

func status(out io.Writer) error {
	b, err := update.ReadBoot(paths.Boot)
	if err != nil {
		return err
	}
	st, err := update.ReadState(statePath())
	if err != nil {
		return err
	}
	run := st.Slot(b.Slot)
	fmt.Fprintf(out, "slot=%s\nmode=%s\nversion=%s\nrelease=%d\ncommitted=%s\ntrial=%s\n",
		b.Slot, b.Mode, run.Version, run.Release, st.Committed, st.Trial)
	if st.SensorAtInstall != "" {
		fmt.Fprintf(out, "sensor_at_install=%s\n", st.SensorAtInstall)
	}
	if b.Initramfs != "" {
		fmt.Fprintf(out, "initramfs=%s\n", b.Initramfs)
	}
	if last, err := update.ReadOutcome(paths.Last); err == nil {
		fmt.Fprintf(out, "last_outcome=%s\nlast_version=%s\nlast_release=%d\nlast_slot=%s\nlast_time=%s\nlast_rule=%s\nlast_detail=%s\n",
			last.Outcome, last.Version, last.Release, last.Slot, last.Time, last.Rule, last.Detail)
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
		if lerr := u.Record(update.Outcome{Outcome: update.OutcomeRefused, Detail: err.Error()}); lerr != nil {
			fmt.Fprintln(os.Stderr, "sensorctl:", lerr)
		}
		return err
	}
	// An upload never downgrades: going back is only for root, over SSH.
	if err := install(u, taken, false, io.Discard); err != nil {
		return err
	}
	fmt.Fprintln(out, "uploaded bundle installed: rebooting into its trial")
	return exec.Command("systemctl", "reboot").Run()
}

// durable flushes every filesystem before an install starts writing a
// slot: what the appliance wrote before (history, SSH host keys, the
// machine ID, settings) must survive a power cut during the install, and
// the kernel would otherwise hold some of it in memory for up to 30 s.
func durable() { syscall.Sync() }

// imagerImport runs cloudinit.Import on the boot partition dir and says
// in words what it took and what it left, to the journal (out) and to
// report for the dashboard's settings page.
func imagerImport(dir, conf, report string, out io.Writer) error {
	unlock, err := settings.Lock(conf)
	if err != nil {
		return fmt.Errorf("imager-import: %w", err)
	}
	r, err := cloudinit.Import(dir, conf)
	unlock()
	if err != nil {
		return fmt.Errorf("imager-import: Raspberry Pi Imager settings not imported, %s not changed: %w", conf, err)
	}
	if len(r.Found) > 0 {
		fmt.Fprintf(out, "Raspberry Pi Imager settings found on the boot partition (%s); carried over into %s once:\n", strings.Join(r.Found, ", "), conf)
	}
	for _, l := range r.Lines() {
		fmt.Fprintln(out, l)
	}
	if len(r.Found) > 0 {
		// The import itself is done: a report that cannot be kept is said,
		// not an error that would fail the boot's unit.
		if err := writeImagerReport(report, r.Lines()); err != nil {
			fmt.Fprintln(out, "the report for the dashboard was not kept:", err)
		}
	}
	return nil
}

// writeImagerReport keeps the import's lines, readable by sensord (they
// hold no secret: Report names keys and settings, never a password).
func writeImagerReport(path string, lines []string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return atomicfile.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o644)
}
