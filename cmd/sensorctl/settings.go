package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"sensord/cmd/sensord/settingscheck"
	"sensord/image/paths"
	"sensord/image/settings"
	"sensord/internal/atomicfile"
)

// defaultHistoryDir is sensord.service's SENSORD_HISTORY_DIR, which
// applies while sensord.conf does not set one.
const defaultHistoryDir = paths.StateDir

// applier writes sensord.conf for the settings page and for
// `sensorctl settings`, and restarts what must restart.
type applier struct {
	Conf     string // sensord.conf
	StateDir string // paths.SettingsStateDir: the taken request, the status
	// Systemctl is the program that restarts services (systemctl; a
	// test's recorder).
	Systemctl string
	// Check is sensord's own check of the resulting settings.
	Check func(map[string]string) error
	Now   func() time.Time
	Out   io.Writer
}

func newApplier(out io.Writer) *applier {
	return &applier{Conf: paths.Settings, StateDir: paths.SettingsStateDir, Systemctl: "systemctl", Check: settingscheck.Check, Now: time.Now, Out: out}
}

// flags binds the applier's places to fs, for tests and for a Pi that
// keeps them elsewhere.
func (a *applier) flags(fs *flag.FlagSet) {
	fs.StringVar(&a.Conf, "conf", a.Conf, "the settings file")
	fs.StringVar(&a.StateDir, "state-dir", a.StateDir, "where the request is taken to and the outcome recorded")
	fs.StringVar(&a.Systemctl, "systemctl", a.Systemctl, "the program that restarts services")
}

// errRefused marks a request the rules refuse: nothing was written.
var errRefused = errors.New("refused")

// applySpool takes the request sensord spooled at spooled (the settings
// page), applies it and records the outcome for the page. sensord owns
// spooled's directory, so the file is first renamed into StateDir,
// which only root can write, and must then be a regular file; whatever
// happens it is removed, so the path unit does not start us again.
func (a *applier) applySpool(spooled string) error {
	if err := os.MkdirAll(a.StateDir, 0o755); err != nil {
		return err
	}
	taken := filepath.Join(a.StateDir, "request")
	if err := os.Rename(spooled, taken); err != nil {
		return fmt.Errorf("apply-settings: take the request: %w", err)
	}
	defer os.Remove(taken)
	f, err := os.OpenFile(taken, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return a.record(settings.Status{Outcome: settings.OutcomeRefused, Detail: "the request is not a regular file"}, err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return a.record(settings.Status{Outcome: settings.OutcomeRefused, Detail: "the request is not a regular file"}, errRefused)
	}
	q, err := settings.ReadRequest(f, settings.Appliance())
	if err != nil {
		return a.record(settings.Status{Outcome: settings.OutcomeRefused, Detail: err.Error()}, err)
	}
	return a.apply(q)
}

// apply writes q into the settings file if the whole result passes the
// rules, restarts what must restart, and records the outcome.
func (a *applier) apply(q settings.Request) error {
	st := settings.Status{ID: q.ID, Action: q.Action, Changed: q.Names()}
	unlock, err := settings.Lock(a.Conf)
	if err != nil {
		st.Outcome, st.Detail = settings.OutcomeFailed, err.Error()
		return a.record(st, err)
	}
	old, err := readConf(a.Conf)
	if err != nil {
		unlock()
		st.Outcome, st.Detail = settings.OutcomeFailed, err.Error()
		return a.record(st, err)
	}
	edited, err := settings.Edit(old, settings.Appliance(), q.Set, q.Unset)
	if err == nil {
		var vals map[string]string
		if vals, err = settings.Parse(edited, settings.Appliance()); err == nil {
			err = a.Check(vals)
		}
	}
	if err != nil {
		unlock()
		st.Outcome, st.Detail = settings.OutcomeRefused, oneLine(err)+"; "+a.Conf+" not changed"
		return a.record(st, fmt.Errorf("%w: %w", errRefused, err))
	}
	if !slices.Equal(old, edited) {
		if err := atomicfile.WriteFile(a.Conf, edited, 0o600); err != nil {
			unlock()
			st.Outcome, st.Detail = settings.OutcomeFailed, oneLine(err)+"; "+a.Conf+" not changed"
			return a.record(st, err)
		}
	}
	unlock()
	fmt.Fprintf(a.Out, "%s: %s written (%s)\n", q.Action, a.Conf, strings.Join(st.Changed, ", "))
	if err := a.restart(q, edited); err != nil {
		st.Outcome, st.Detail = settings.OutcomeFailed, "written, but "+oneLine(err)
		return a.record(st, err)
	}
	st.Outcome = settings.OutcomeApplied
	return a.record(st, nil)
}

// restart restarts what the change needs: the appliance's settings
// first (hostname, Wi-Fi, SSH, time server), then sensord, stopped while
// its history is removed when the person chose so.
func (a *applier) restart(q settings.Request, conf []byte) error {
	r := settings.RestartsFor(q.Names())
	if r.Appliance {
		if err := a.systemctl("restart", "sensord-settings.service"); err != nil {
			return err
		}
	}
	if r.Hostname {
		if err := a.systemctl("try-restart", "avahi-daemon.service"); err != nil {
			return err
		}
	}
	if r.WiFi {
		for _, dev := range wirelessInterfaces() {
			if err := a.systemctl("restart", "sensord-wifi@"+dev+".service"); err != nil {
				return err
			}
		}
	}
	if r.NTP {
		if err := a.systemctl("try-restart", "systemd-timesyncd.service"); err != nil {
			return err
		}
	}
	if !q.ClearHistory {
		return a.systemctl("restart", "sensord.service")
	}
	if err := a.systemctl("stop", "sensord.service"); err != nil {
		return err
	}
	dir := defaultHistoryDir
	if vals, err := settings.Parse(conf, settings.Appliance()); err == nil {
		if d, ok := vals["SENSORD_HISTORY_DIR"]; ok {
			dir = d
		}
	}
	var errs []error
	if dir != "" {
		for _, name := range []string{paths.HistoryFile, paths.HistoryFile + "-wal", paths.HistoryFile + "-shm", paths.AlertStateFile} {
			if err := os.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			}
		}
		if len(errs) == 0 {
			fmt.Fprintf(a.Out, "history removed from %s\n", dir)
		}
	}
	errs = append(errs, a.systemctl("start", "sensord.service"))
	return errors.Join(errs...)
}

func (a *applier) systemctl(args ...string) error {
	out, err := exec.Command(a.Systemctl, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("systemctl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// wirelessInterfaces are the Wi-Fi interfaces (sensord-wifi@ runs on each).
func wirelessInterfaces() []string {
	m, _ := filepath.Glob("/sys/class/net/*/wireless")
	var out []string
	for _, p := range m {
		out = append(out, filepath.Base(filepath.Dir(p)))
	}
	return out
}

// record writes st for the settings page (world-readable: it holds no
// secret), says it, and returns err.
func (a *applier) record(st settings.Status, err error) error {
	st.Time = a.Now().UTC()
	if st.Outcome == "" {
		st.Outcome = settings.OutcomeRefused
	}
	b, jerr := jsonLine(st)
	if jerr == nil {
		jerr = atomicfile.WriteFile(filepath.Join(a.StateDir, paths.SettingsStatusName), b, 0o644)
	}
	if jerr != nil {
		fmt.Fprintln(os.Stderr, "sensorctl: recording the outcome:", jerr)
	}
	if st.Detail != "" {
		fmt.Fprintf(a.Out, "%s: %s\n", st.Outcome, st.Detail)
	}
	return err
}

// readConf reads the settings file, or the image's default rendering
// when there is none.
func readConf(path string) ([]byte, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		var b strings.Builder
		err := settings.Render(&b, settings.Appliance(), nil)
		return []byte(b.String()), err
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, settings.MaxFileBytes+1))
	if err != nil {
		return nil, err
	}
	if len(b) > settings.MaxFileBytes {
		return nil, fmt.Errorf("%s has more than %d bytes", path, settings.MaxFileBytes)
	}
	return b, nil
}

func oneLine(err error) string {
	return strings.ReplaceAll(err.Error(), "\n", " ")
}

// settingsCmd is `sensorctl settings show|set|unset`: the settings page
// for someone logged in over SSH, with the same checks and restarts.
func settingsCmd(args []string, out io.Writer) error {
	const usage = "usage: sensorctl settings show | set NAME=value [NAME=value ...] | unset NAME [NAME ...]"
	if len(args) == 0 {
		return errors.New(usage)
	}
	a := newApplier(out)
	fs := flag.NewFlagSet("settings", flag.ContinueOnError)
	fs.SetOutput(out)
	a.flags(fs)
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	switch args[0] {
	case "show":
		conf, err := readConf(a.Conf)
		if err != nil {
			return err
		}
		vals, err := settings.Parse(conf, settings.Appliance())
		if err != nil {
			return err
		}
		for _, s := range settings.Appliance().Sections {
			for _, v := range s.Vars {
				val, ok := vals[v.Name]
				switch {
				case !ok:
					continue
				case settings.Secret(v.Name) && val != "":
					val = "(set; not shown)"
				}
				fmt.Fprintf(out, "%s=%s\n", v.Name, val)
			}
		}
		return nil
	case "set":
		q := settings.Request{Action: settings.ActionChange, Set: map[string]string{}}
		for _, kv := range fs.Args() {
			k, v, ok := strings.Cut(kv, "=")
			if !ok {
				return fmt.Errorf("%q is not NAME=value", kv)
			}
			q.Set[k] = v
		}
		return a.cli(q)
	case "unset":
		return a.cli(settings.Request{Action: settings.ActionChange, Unset: fs.Args()})
	}
	return errors.New(usage)
}

// cli applies q from the command line, after the request's own checks.
func (a *applier) cli(q settings.Request) error {
	if len(q.Names()) == 0 {
		return errors.New("name at least one setting")
	}
	b, err := jsonLine(q)
	if err != nil {
		return err
	}
	if _, err := settings.ReadRequest(strings.NewReader(string(b)), settings.Appliance()); err != nil {
		return err
	}
	if err := os.MkdirAll(a.StateDir, 0o755); err != nil {
		return err
	}
	return a.apply(q)
}

func jsonLine(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	return append(b, '\n'), err
}
