package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"sensord/cmd/sensord/settingscheck"
	"sensord/image/paths"
	"sensord/image/settings"
)

// applyFixture is a boot partition's sensord.conf, sensord's runtime
// directory with its spool, apply-settings' state directory and a
// systemctl that logs each call it gets.
type applyFixture struct {
	a      *applier
	spool  string
	calls  string // the recorder's log
	out    bytes.Buffer
	before []byte
}

func newApplyFixture(t *testing.T) *applyFixture {
	t.Helper()
	dir := t.TempDir()
	f := &applyFixture{calls: filepath.Join(dir, "systemctl.log")}
	rec := filepath.Join(dir, "systemctl")
	if err := os.WriteFile(rec, []byte("#!/bin/sh\necho \"$*\" >> "+f.calls+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := settings.Render(&b, settings.Appliance(), map[string]string{"SENSORD_SENSOR": "sim", "HOSTNAME": "kitchen", "SENSORD_OWNER_TOKEN": "0wner-s3cret"}); err != nil {
		t.Fatal(err)
	}
	f.before = []byte(b.String())
	conf := filepath.Join(dir, "sensord.conf")
	if err := os.WriteFile(conf, f.before, 0o600); err != nil {
		t.Fatal(err)
	}
	run := filepath.Join(dir, "sensord")
	os.Mkdir(run, 0o700)
	f.spool = filepath.Join(run, paths.SettingsRequestName)
	f.a = &applier{Conf: conf, StateDir: filepath.Join(dir, "sensord-settings"), Systemctl: rec, Check: settingscheck.Check, Now: time.Now, Out: &f.out}
	return f
}

func (f *applyFixture) spoolRequest(t *testing.T, q settings.Request) {
	t.Helper()
	b, _ := json.Marshal(q)
	if err := os.WriteFile(f.spool, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func (f *applyFixture) status(t *testing.T) settings.Status {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(f.a.StateDir, paths.SettingsStatusName))
	if err != nil {
		t.Fatal(err)
	}
	var st settings.Status
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	return st
}

func (f *applyFixture) conf(t *testing.T) map[string]string {
	t.Helper()
	b, err := os.ReadFile(f.a.Conf)
	if err != nil {
		t.Fatal(err)
	}
	vals, err := settings.Parse(b, settings.Appliance())
	if err != nil {
		t.Fatal(err)
	}
	return vals
}

func (f *applyFixture) unchanged(t *testing.T) {
	t.Helper()
	if b, _ := os.ReadFile(f.a.Conf); !bytes.Equal(b, f.before) {
		t.Errorf("sensord.conf changed:\n%s", b)
	}
	if b, err := os.ReadFile(f.calls); err == nil {
		t.Errorf("restarted %s", b)
	}
	if _, err := os.Lstat(f.spool); !errors.Is(err, os.ErrNotExist) {
		t.Error("the spooled request is still there: the path unit would start again")
	}
}

func TestApplySettingsWritesAndRestarts(t *testing.T) {
	f := newApplyFixture(t)
	f.spoolRequest(t, settings.Request{ID: "QWERTY234-3", Action: settings.ActionChange,
		Set: map[string]string{"SENSORD_NAME": "attic", "SENSORD_MQTT_URL": "mqtt://broker.lan:1883", "SENSORD_TEMP_OFFSET": "-0.5", "HOSTNAME": "attic"}})
	if err := f.a.applySpool(f.spool); err != nil {
		t.Fatalf("%v\n%s", err, f.out.String())
	}
	vals := f.conf(t)
	if vals["SENSORD_NAME"] != "attic" || vals["SENSORD_MQTT_URL"] != "mqtt://broker.lan:1883" || vals["SENSORD_TEMP_OFFSET"] != "-0.5" || vals["SENSORD_SENSOR"] != "sim" || vals["HOSTNAME"] != "attic" {
		t.Errorf("sensord.conf holds %v", vals)
	}
	calls, _ := os.ReadFile(f.calls)
	if want := "restart sensord-settings.service\ntry-restart avahi-daemon.service\n"; !strings.HasPrefix(string(calls), want) || !strings.HasSuffix(string(calls), "restart sensord.service\n") {
		t.Errorf("systemctl was asked:\n%s\nwant the appliance's settings, avahi, then sensord", calls)
	}
	if st := f.status(t); st.Outcome != settings.OutcomeApplied || st.ID != "QWERTY234-3" || st.Action != settings.ActionChange || len(st.Changed) != 4 {
		t.Errorf("status %+v", st)
	}
	if _, err := os.Lstat(f.spool); !errors.Is(err, os.ErrNotExist) {
		t.Error("the spool is still there")
	}
	if fi, err := os.Stat(f.a.Conf); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("sensord.conf mode %v, want 0600 (it holds the Wi-Fi passphrase)", fi.Mode())
	}
}

func TestApplySettingsRefusesAndWritesNothing(t *testing.T) {
	for _, tc := range []struct {
		name  string
		spool func(t *testing.T, f *applyFixture)
		say   string
	}{
		{"a bad value, in sensord's words", func(t *testing.T, f *applyFixture) {
			f.spoolRequest(t, settings.Request{Action: settings.ActionChange, Set: map[string]string{"SENSORD_TEMP_OFFSET": "warm"}})
		}, `sensord: -temp-offset: SENSORD_TEMP_OFFSET="warm"`},
		{"a bad host name", func(t *testing.T, f *applyFixture) {
			f.spoolRequest(t, settings.Request{Action: settings.ActionChange, Set: map[string]string{"HOSTNAME": "my pi"}})
		}, "HOSTNAME"},
		{"a value that would add a line", func(t *testing.T, f *applyFixture) {
			f.spoolRequest(t, settings.Request{Action: settings.ActionChange, Set: map[string]string{"SENSORD_TOPIC": "x\nSENSORD_OWNER_TOKEN=mine"}})
		}, "line breaks"},
		{"an unknown name", func(t *testing.T, f *applyFixture) {
			os.WriteFile(f.spool, []byte(`{"action":"change","set":{"LD_PRELOAD":"/tmp/x.so"}}`), 0o600)
		}, "not a setting"},
		{"not JSON", func(t *testing.T, f *applyFixture) {
			os.WriteFile(f.spool, []byte("HOSTNAME=x"), 0o600)
		}, "bad request"},
		{"too big", func(t *testing.T, f *applyFixture) {
			os.WriteFile(f.spool, bytes.Repeat([]byte(" "), settings.MaxRequestBytes+1), 0o600)
		}, "more than"},
		{"a link to another file", func(t *testing.T, f *applyFixture) {
			os.Symlink(f.a.Conf, f.spool)
		}, "not a regular file"},
		{"a named pipe that would hang a reader", func(t *testing.T, f *applyFixture) {
			syscall.Mkfifo(f.spool, 0o600)
		}, "not a regular file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newApplyFixture(t)
			tc.spool(t, f)
			if err := f.a.applySpool(f.spool); err == nil {
				t.Fatal("applied")
			}
			if st := f.status(t); st.Outcome != settings.OutcomeRefused || !strings.Contains(st.Detail, tc.say) {
				t.Errorf("status %+v, want refused saying %q", st, tc.say)
			}
			f.unchanged(t)
		})
	}
}

// A disk that refuses the write (here the file size limit, as a full
// card refuses it) leaves the old file, restarts nothing and says so.
func TestApplySettingsOnAFullDiskKeepsTheOldFile(t *testing.T) {
	f := newApplyFixture(t)
	f.spoolRequest(t, settings.Request{Action: settings.ActionChange, Set: map[string]string{"SENSORD_NAME": "attic"}})
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_FSIZE, &old); err != nil {
		t.Fatal(err)
	}
	lim := old
	lim.Cur = 2048 // the status fits, the settings file does not
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &lim); err != nil {
		t.Fatal(err)
	}
	err := f.a.applySpool(f.spool)
	syscall.Setrlimit(syscall.RLIMIT_FSIZE, &old)
	if !errors.Is(err, syscall.EFBIG) {
		t.Fatalf("got %v, want the write's EFBIG", err)
	}
	if st := f.status(t); st.Outcome != settings.OutcomeFailed || !strings.Contains(st.Detail, "not changed") {
		t.Errorf("status %+v", st)
	}
	f.unchanged(t)
}

func TestApplySettingsResetClearsHistoryOnlyWhenAsked(t *testing.T) {
	for _, clear := range []bool{false, true} {
		f := newApplyFixture(t)
		hist := t.TempDir()
		for _, n := range []string{paths.HistoryFile, paths.HistoryFile + "-wal", paths.AlertStateFile, "tls"} {
			os.WriteFile(filepath.Join(hist, n), []byte("x"), 0o600)
		}
		// The history's place comes from the file being written.
		f.spoolRequest(t, settings.Request{Action: settings.ActionChange, Set: map[string]string{"SENSORD_HISTORY_DIR": hist}})
		if err := f.a.applySpool(f.spool); err != nil {
			t.Fatal(err)
		}
		os.Remove(f.calls)
		f.spoolRequest(t, settings.Request{Action: settings.ActionReset, Unset: []string{"SENSORD_NAME"}, ClearHistory: clear})
		if err := f.a.applySpool(f.spool); err != nil {
			t.Fatal(err)
		}
		calls, _ := os.ReadFile(f.calls)
		_, err := os.Stat(filepath.Join(hist, paths.HistoryFile))
		_, tlsErr := os.Stat(filepath.Join(hist, "tls"))
		if clear {
			if !errors.Is(err, os.ErrNotExist) || string(calls) != "stop sensord.service\nstart sensord.service\n" {
				t.Errorf("clear: history %v, systemctl %q", err, calls)
			}
		} else if err != nil || string(calls) != "restart sensord.service\n" {
			t.Errorf("keep: history %v, systemctl %q", err, calls)
		}
		if tlsErr != nil {
			t.Error("the reset removed more than the history")
		}
	}
}

func TestSettingsCommandShowsWithoutSecretsAndSets(t *testing.T) {
	f := newApplyFixture(t)
	args := func(cmd string, rest ...string) []string {
		return append([]string{cmd, "-conf", f.a.Conf, "-state-dir", f.a.StateDir, "-systemctl", f.a.Systemctl}, rest...)
	}
	var out bytes.Buffer
	if err := settingsCmd(args("show"), &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "SENSORD_SENSOR=sim\n") || strings.Contains(out.String(), "0wner-s3cret") {
		t.Errorf("show:\n%s", out.String())
	}
	out.Reset()
	if err := settingsCmd(args("set", "SENSORD_PERIOD=never"), &out); err == nil || !strings.Contains(out.String(), `sensord: -period: SENSORD_PERIOD="never"`) {
		t.Errorf("a bad value: %v\n%s", err, out.String())
	}
	f.unchanged(t)
	if err := settingsCmd(args("set", "SENSORD_PERIOD=5s"), &out); err != nil {
		t.Fatal(err)
	}
	if f.conf(t)["SENSORD_PERIOD"] != "5s" {
		t.Error("not set")
	}
}

// The import keeps its lines for the settings page, which says that
// Imager's user name and password are not used; the user's password
// hash is not among them.
func TestImagerImportKeepsItsReportForTheDashboard(t *testing.T) {
	dir := t.TempDir()
	golden := filepath.Join("..", "..", "image", "cloudinit", "testdata", "imager-2.0.11", "hidden")
	for _, name := range []string{"user-data", "network-config", "meta-data"} {
		b, err := os.ReadFile(filepath.Join(golden, name))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, name), b, 0o600)
	}
	report := filepath.Join(t.TempDir(), "data", "settings", "imager-import")
	var out bytes.Buffer
	if err := imagerImport(dir, filepath.Join(dir, "sensord.conf"), report, &out); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `ignored: user "pi" and its password: not used; SSH logs in as root, with keys only`) {
		t.Errorf("the report does not say the user and password are not used:\n%s", b)
	}
	if strings.Contains(string(b), "$5$") {
		t.Errorf("the report holds the password's hash:\n%s", b)
	}
	if fi, _ := os.Stat(report); fi.Mode().Perm() != 0o644 {
		t.Errorf("report mode %v: sensord must read it", fi.Mode())
	}
}
