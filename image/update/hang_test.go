package update

import (
	"bytes"
	"crypto/ed25519"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// The boot script adds exactly TrialPanics' parameters, in their order,
// and only on a trial boot.
func TestBootScriptAddsTheTrialPanicsOnTrialBootsOnly(t *testing.T) {
	script, err := os.ReadFile("../uboot/boot.cmd")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^setenv trial_args "([^"]*)"$`).FindAllSubmatch(script, -1)
	if len(m) != 1 {
		t.Fatalf("boot.cmd sets trial_args %d times, want once", len(m))
	}
	var want []string
	for _, p := range TrialPanics {
		want = append(want, p.Param)
	}
	if got := strings.Fields(string(m[0][1])); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("boot.cmd's trial_args %q, TrialPanics %q", got, want)
	}
	uses := regexp.MustCompile(`(?m)^.*\$\{trial_args\}.*$`).FindAll(script, -1)
	if len(uses) != 1 || !bytes.Contains(uses[0], []byte(`if test "${mode}" = trial; then`)) {
		t.Errorf("boot.cmd must add trial_args on trial boots only: %q", uses)
	}
}

// procSys is a /proc/sys with every TrialPanics switch on but the
// ones named in missing.
func procSys(t *testing.T, missing ...string) string {
	dir := t.TempDir()
	for _, p := range TrialPanics {
		if slices.Contains(missing, p.Sysctl) {
			continue
		}
		f := filepath.Join(dir, p.Sysctl)
		if err := os.MkdirAll(filepath.Dir(f), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f, []byte("1\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestCommitTurnsTheTrialPanicsOff(t *testing.T) {
	key := newKey(t)
	r := newRig(t, key.Public().(ed25519.PublicKey), 4096)
	// This kernel has no hard-lockup detector: that switch is left.
	r.u.ProcSys = procSys(t, "kernel/hardlockup_panic")
	if _, err := r.u.Install(writeFile(t, bundle(t, key, bytes.Repeat([]byte{7}, 3000), "k1")), InstallOptions{}); err != nil {
		t.Fatalf("%v\n%s", err, r.log.String())
	}
	for _, p := range TrialPanics {
		if b, err := os.ReadFile(filepath.Join(r.u.ProcSys, p.Sysctl)); err == nil && string(b) != "1\n" {
			t.Errorf("install changed %s to %q: only the commit turns it off", p.Sysctl, b)
		}
	}
	r.u.Boot = Boot{Slot: SlotB, Mode: ModeTrial}
	if err := r.u.MarkGood(RuleMarkGood, "by hand"); err != nil {
		t.Fatal(err)
	}
	for _, p := range TrialPanics {
		b, err := os.ReadFile(filepath.Join(r.u.ProcSys, p.Sysctl))
		switch {
		case p.Sysctl == "kernel/hardlockup_panic":
			if !os.IsNotExist(err) {
				t.Errorf("%s was made: %q %v", p.Sysctl, b, err)
			}
		case err != nil || string(b) != "0\n":
			t.Errorf("%s after the commit: %q %v, want 0", p.Sysctl, b, err)
		}
	}
	if strings.Contains(r.log.String(), "hang detectors") {
		t.Errorf("a switch the kernel lacks is not a failure: %s", r.log.String())
	}
}

// A switch that cannot be written leaves the commit standing and says
// so in the log.
func TestCommitStandsWhenATrialPanicCannotBeTurnedOff(t *testing.T) {
	key := newKey(t)
	r := newRig(t, key.Public().(ed25519.PublicKey), 4096)
	r.u.ProcSys = procSys(t)
	blocked := filepath.Join(r.u.ProcSys, TrialPanics[2].Sysctl)
	if err := os.Remove(blocked); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(blocked, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := r.u.Install(writeFile(t, bundle(t, key, bytes.Repeat([]byte{7}, 3000), "k1")), InstallOptions{}); err != nil {
		t.Fatalf("%v\n%s", err, r.log.String())
	}
	r.u.Boot = Boot{Slot: SlotB, Mode: ModeTrial}
	if err := r.u.MarkGood(RuleMarkGood, "by hand"); err != nil {
		t.Fatal(err)
	}
	if st := r.state(t); st.Committed != SlotB || st.Trial != "" {
		t.Errorf("state after the commit: %+v", st)
	}
	if !strings.Contains(r.log.String(), "still panic until the next boot: "+TrialPanics[2].Sysctl) {
		t.Errorf("the log does not name the switch left on: %s", r.log.String())
	}
	if b, _ := os.ReadFile(filepath.Join(r.u.ProcSys, TrialPanics[0].Sysctl)); string(b) != "0\n" {
		t.Errorf("the other switches are still turned off: %s is %q", TrialPanics[0].Sysctl, b)
	}
}
