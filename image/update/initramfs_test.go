package update

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// bootInShell runs the initramfs's own state functions
// (image/initramfs/sensord-state) with sh on the state file at path, the
// way sensord-slot does at boot, and returns the slot and mode chosen.
func bootInShell(t *testing.T, path string) (slot, mode string) {
	t.Helper()
	lib, err := filepath.Abs("../initramfs/sensord-state")
	if err != nil {
		t.Fatal(err)
	}
	script := `. "$1"
state_read "$2"
if state_choose; then state_write "$2" || exit 1; fi
echo "$slot $mode"`
	out, err := exec.Command("sh", "-c", script, "sh", lib, path).CombinedOutput()
	if err != nil {
		t.Fatalf("sh: %v: %s", err, out)
	}
	slot, mode, _ = strings.Cut(strings.TrimSpace(string(out)), " ")
	return slot, mode
}

// TestInitramfsReadsWhatGoWrites: the two readers of the slot state agree.
// Go writes each state, the shell chooses the slot and rewrites the file,
// and Go reads the result: the slot, the mode, and every key the shell
// does not interpret (versions, releases, the sensor at install, keys of
// a later version) come back as Go wrote them, in the Go writer's order.
func TestInitramfsReadsWhatGoWrites(t *testing.T) {
	slots := func(st SlotState) SlotState {
		st.A = SlotInfo{"v1.4", 14}
		st.B = SlotInfo{"v1.5", 15}
		st.Unknown = []string{"from_a_later_version=x"}
		return st
	}
	for _, tc := range []struct {
		name       string
		in, want   SlotState
		slot, mode string
	}{
		{"committed, nothing pending: boots the committed slot, state unchanged",
			slots(SlotState{Committed: SlotA}), slots(SlotState{Committed: SlotA}), SlotA, ModeCommitted},
		{"a trial with a try left: takes the try, boots the trial",
			slots(SlotState{Committed: SlotA, Trial: SlotB, Tries: 1, SensorAtInstall: SensorReading}),
			slots(SlotState{Committed: SlotA, Trial: SlotB, Tries: 0, SensorAtInstall: SensorReading}), SlotB, ModeTrial},
		{"a trial without a try left: rolls back, notes the failed slot",
			slots(SlotState{Committed: SlotB, Trial: SlotA, Tries: 0, SensorAtInstall: SensorNotReading}),
			slots(SlotState{Committed: SlotB, Failed: SlotA, SensorAtInstall: SensorNotReading}), SlotB, ModeRolledBack},
		{"after a rollback: the committed slot, failed kept",
			slots(SlotState{Committed: SlotB, Failed: SlotA}), slots(SlotState{Committed: SlotB, Failed: SlotA}), SlotB, ModeCommitted},
		{"an image's first state",
			SlotState{Committed: SlotA, A: SlotInfo{"v1", 1}}, SlotState{Committed: SlotA, A: SlotInfo{"v1", 1}}, SlotA, ModeCommitted},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "state")
			if err := WriteState(path, tc.in); err != nil {
				t.Fatal(err)
			}
			slot, mode := bootInShell(t, path)
			if slot != tc.slot || mode != tc.mode {
				t.Errorf("the initramfs booted slot %s (%s), want %s (%s)", slot, mode, tc.slot, tc.mode)
			}
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			want, err := tc.want.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("the initramfs left\n%s\nwant (Go's writer)\n%s", got, want)
			}
			if _, err := ReadState(path); err != nil {
				t.Errorf("Go cannot read what the initramfs wrote: %v", err)
			}
		})
	}
}

// TestInitramfsTakesTheSlotUBootChose: with sensord.slot= and
// sensord.mode= on the kernel command line (image/uboot/boot.cmd), the
// initramfs boots what they name and neither counts nor writes anything.
func TestInitramfsTakesTheSlotUBootChose(t *testing.T) {
	lib, err := filepath.Abs("../initramfs/sensord-state")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ cmdline, want string }{
		{"ro panic=10 sensord.slot=B sensord.mode=trial", "ok B trial -"},
		{"sensord.slot=A sensord.mode=rolled-back sensord.failed=B rootwait", "ok A rolled-back B"},
		{"sensord.slot=A sensord.mode=committed sensord.failed=B", "ok A committed -"},
		{"sensord.slot=A sensord.mode=rolled-back sensord.failed=Z", "ok A rolled-back -"},
		{"ro panic=10", "no"},
		{"sensord.slot=C sensord.mode=trial", "no"},
		{"sensord.slot=A sensord.mode=maybe", "no"},
		{"sensord.slot=A", "no"},
	} {
		script := `. "$1"
if state_from_cmdline "$2"; then echo "ok $slot $mode ${failed:--}"; else echo no; fi`
		out, err := exec.Command("sh", "-c", script, "sh", lib, tc.cmdline).CombinedOutput()
		if err != nil {
			t.Fatalf("sh: %v: %s", err, out)
		}
		if got := strings.TrimSpace(string(out)); got != tc.want {
			t.Errorf("cmdline %q: got %q, want %q", tc.cmdline, got, tc.want)
		}
	}
}
