package paths

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

const (
	units    = "../rootfs/etc/systemd/system/"
	sensordU = "../../systemd/sensord.service"
	abSh     = "../ab.sh"
	slotSh   = "../initramfs/sensord-slot"
	dataSh   = "../initramfs/sensord-data"
)

// TestUnitsAndScriptsUseThesePaths: each path is spelled the same in the
// units and scripts that use it as here.
func TestUnitsAndScriptsUseThesePaths(t *testing.T) {
	for _, tc := range []struct {
		text  string // as the files must spell it
		files []string
	}{
		{"ConditionPathExists=" + Boot, []string{units + "sensord-update.service", units + "sensord-update-spool.service", units + "sensord-update-spool.path"}},
		{"> " + Boot, []string{slotSh}},
		{"PathExists=" + Spooled, []string{units + "sensord-update-spool.path"}},
		{"ExecStart=" + Sensorctl + " install-spool " + Spooled, []string{units + "sensord-update-spool.service"}},
		{"ExecStart=" + Sensorctl + " boot", []string{units + "sensord-update.service"}},
		{"ExecStart=" + Sensorctl + " imager-import", []string{units + "sensord-imager.service"}},
		{"ConditionPathExists=|" + filepath.Dir(Settings) + "/user-data", []string{units + "sensord-imager.service"}},
		{"PathExists=" + ClockRequest, []string{units + "sensord-setclock.path"}},
		{"ExecStart=" + SetClock, []string{units + "sensord-setclock.service"}},
		{"PathExists=" + SettingsRequest, []string{units + "sensord-settings-apply.path"}},
		{"ExecStart=" + Sensorctl + " apply-settings " + SettingsRequest, []string{units + "sensord-settings-apply.service"}},
		{SettingsStatus, []string{units + "sensord-settings-apply.service"}},
		{"req=" + ClockRequest, []string{"../rootfs" + SetClock}},
		{"PathExists=" + SetupRequest, []string{units + "sensord-setup-request.path"}},
		{"ExecStart=" + Sensorctl + " setup-request", []string{units + "sensord-setup-request.service"}},
		{"ExecStart=" + Sensorctl + " setup\n", []string{units + "sensord-setup.service"}},
		{"ExecStart=" + Sensorctl + " setup-dns", []string{units + "sensord-setup-dns.service"}},
		{"RuntimeDirectory=" + filepath.Base(SetupDir), []string{units + "sensord-setup.service"}},
		{"$root" + Sensorctl, []string{abSh}},
		{"$root" + UpdateKey, []string{abSh}},
		{"$root" + SlotBoot, []string{abSh}},
		{"$root" + UBootFiles, []string{abSh}},
		{"EnvironmentFile=-" + Settings, []string{sensordU}},
		{"ExecStart=" + Sensord + " ", []string{sensordU}},
		{"StateDirectory=" + filepath.Base(StateDir), []string{sensordU}},
		{"RuntimeDirectory=" + filepath.Base(RuntimeDir), []string{sensordU}},
		{"data=" + DataDevice, []string{slotSh, dataSh}},
		{"-L " + DataLabel, []string{abSh}},
		{`"$mnt/` + StateOnData + `"`, []string{slotSh}},
		{`"$root` + BootState + `"`, []string{abSh}},
		{"${rootmnt}" + Data, []string{dataSh}},
		{`"$root` + Data + `"`, []string{abSh}},
	} {
		for _, f := range tc.files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(b), tc.text) {
				t.Errorf("%s does not say %q", f, tc.text)
			}
		}
	}
	if filepath.Dir(SettingsStateDir) != filepath.Dir(RuntimeDir) {
		t.Errorf("SettingsStateDir %s must sit beside RuntimeDir %s: sensord finds it from $RUNTIME_DIRECTORY", SettingsStateDir, RuntimeDir)
	}
	if filepath.Dir(StateDir) != "/var/lib" || filepath.Dir(RuntimeDir) != "/run" {
		t.Errorf("StateDir %s and RuntimeDir %s must be where systemd's StateDirectory= and RuntimeDirectory= put them", StateDir, RuntimeDir)
	}
}

// TestNoOtherUpdatePaths: every path of the updater's family that a unit
// or script names is one of these (a path changed in one place only is
// caught here).
func TestNoOtherUpdatePaths(t *testing.T) {
	known := map[string]bool{}
	for _, p := range []string{Data, DataDevice, State, Last, Boot, Sensord, Sensorctl, Settings, UpdateKey,
		StateDir, SpoolDir, Spooled, RuntimeDir, Verdict, Taken, ClockRequest, SettingsRequest, SettingsStateDir, SettingsStatus,
		SetupDir, SetupState, SetupJoin, SetupRequest, SlotBoot, BootState, StateView, UBootFiles} {
		known[p] = true
	}
	path := regexp.MustCompile(`/[\w./@-]+`)
	family := func(p string) bool {
		for _, pre := range []string{"/run/sensord", "/var/lib/sensord", "/data/update", "/usr/lib/sensord", "/boot/firmware/sensord"} {
			if strings.HasPrefix(p, pre) {
				return !strings.HasPrefix(p, "/var/lib/sensord-image/") && !strings.HasPrefix(p, StateDir+"/tls")
			}
		}
		return strings.HasPrefix(p, "/usr/local/") && (filepath.Base(p) == "sensord" || filepath.Base(p) == "sensorctl")
	}
	files, _ := filepath.Glob(units + "*")
	files = append(files, sensordU, "../../systemd/sensord.socket", abSh, slotSh, dataSh, "../initramfs/sensord-state")
	for _, f := range files {
		fi, err := os.Stat(f)
		if err != nil || fi.IsDir() {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range path.FindAllString(string(b), -1) {
			p = strings.TrimRight(p, ".")
			if family(p) && !known[p] {
				t.Errorf("%s names %s, which package paths does not declare", f, p)
			}
		}
	}
}
