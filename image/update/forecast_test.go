package update

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestForecastInstall(t *testing.T) {
	idle := SlotState{Committed: SlotA, A: SlotInfo{Version: "1.0", Release: 10}}
	trialNext := idle
	trialNext.Trial, trialNext.Tries, trialNext.B = SlotB, 1, SlotInfo{Version: "1.1", Release: 11}
	onTrial := SlotState{Committed: SlotA, A: SlotInfo{Version: "1.0", Release: 10}, B: SlotInfo{Version: "1.1", Release: 11}}
	bootA := Boot{Slot: SlotA, Mode: ModeCommitted}
	bootB := Boot{Slot: SlotB, Mode: ModeTrial}
	reading := Verdict{Seq: 3, Alive: true, SensorReading: true}
	failing := Verdict{Seq: 3, Alive: true, SensorProblem: "no good reading within 1m0s; last error: dht22: timeout"}
	for _, tc := range []struct {
		name    string
		in      ForecastInput
		rule    string
		sensor  string
		blocker Blocker
		says    []string // in Says or Warning
	}{
		{"the sensor reads now: the trial must keep it reading", ForecastInput{Boot: bootA, State: idle, Verdict: reading},
			RuleAliveAndSensor, SensorReading, "", []string{"reads well now", "60 s", "10 minutes", "rolls back to version 1.0"}},
		{"the sensor fails now: only liveness counts", ForecastInput{Boot: bootA, State: idle, Verdict: failing},
			RuleAlive, SensorNotReading, "", []string{"not reading now", "dht22: timeout", "only sensord's own liveness counts"}},
		{"the sensor has not finished its first read", ForecastInput{Boot: bootA, State: idle, Verdict: Verdict{Seq: 1, Alive: true, SensorWaiting: true}},
			RuleAlive, SensorNotReading, "", []string{"first read"}},
		{"no verdict to read: recorded as not reading", ForecastInput{Boot: bootA, State: idle, VerdictErr: os.ErrNotExist},
			RuleAlive, SensorNotReading, "", []string{"cannot be read now", "only sensord's own liveness counts"}},
		{"a stale verdict: recorded as not reading", ForecastInput{Boot: bootA, State: idle, Verdict: reading, Stale: true},
			RuleAlive, SensorNotReading, "", []string{"stopped writing"}},
		{"sensord not alive by the gate's test: could not commit", ForecastInput{Boot: bootA, State: idle,
			Verdict: Verdict{Seq: 3, Problem: "sensor loop stuck: no read has returned for 40s", SensorReading: true}},
			RuleAlive, SensorNotReading, BlockerNotAlive, []string{"not alive", "sensor loop stuck", "never stays alive for 60 s"}},
		{"an upload already waits for the updater: refused", ForecastInput{Boot: bootA, State: idle, Verdict: reading, Pending: true},
			RuleAliveAndSensor, SensorReading, BlockerUploadPending, []string{"already waiting"}},
		{"a trial waits for its boot: refused", ForecastInput{Boot: bootA, State: trialNext, Verdict: reading},
			RuleAliveAndSensor, SensorReading, BlockerTrialPending, []string{"slot B (1.1) boots on trial next", "refused by the updater"}},
		{"the running slot is on trial: refused", ForecastInput{Boot: bootB, State: onTrial, Verdict: reading},
			RuleAliveAndSensor, SensorReading, BlockerRunningOnTrial, []string{"running slot B is on trial"}},
		{"a refusal outranks a trial that could not commit", ForecastInput{Boot: bootB, State: onTrial, Verdict: Verdict{Problem: "stuck"}},
			RuleAlive, SensorNotReading, BlockerRunningOnTrial, []string{"running slot B is on trial"}},
		{"the slot state does not read: refused", ForecastInput{Boot: bootA, StateErr: ErrState},
			"", "", BlockerStateUnreadable, []string{"cannot be read", "refused"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := ForecastInstall(tc.in)
			if f.Rule != tc.rule || f.SensorAtInstall != tc.sensor || f.Blocker != tc.blocker {
				t.Errorf("got rule %q, sensor %q, blocker %q; want %q, %q, %q", f.Rule, f.SensorAtInstall, f.Blocker, tc.rule, tc.sensor, tc.blocker)
			}
			if (f.Blocker == "") != (f.Warning == "") {
				t.Errorf("blocker %q with warning %q: want both or neither", f.Blocker, f.Warning)
			}
			if tc.blocker != BlockerStateUnreadable && f.Says == "" {
				t.Error("says nothing about what decides the trial")
			}
			for _, w := range tc.says {
				if !strings.Contains(f.Says+" "+f.Warning, w) {
					t.Errorf("says %q, warns %q; want %q in them", f.Says, f.Warning, w)
				}
			}
			if f.HealthyFor != DefaultHealthyFor || f.Within != DefaultWithin {
				t.Errorf("times %s, %s; want the gate's defaults", f.HealthyFor, f.Within)
			}
		})
	}
}

// The forecast's sensor state is the one an install records: both read
// the same verdict file the same way.
func TestForecastAgreesWithSensorAtInstall(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "verdict")
	now := time.Now()
	for _, v := range []string{
		`{"seq":1,"alive":true,"sensor_reading":true}`,
		`{"seq":1,"alive":true,"sensor_reading":false,"sensor_problem":"checksum"}`,
		`{"seq":1,"alive":false,"problem":"stuck","sensor_reading":true}`,
		`not json`,
	} {
		if err := os.WriteFile(path, []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
		want, _ := SensorAtInstall(path, now)
		vd, stale, err := ReadVerdict(path, now)
		f := ForecastInstall(ForecastInput{Boot: Boot{Slot: SlotA}, State: SlotState{Committed: SlotA}, Verdict: vd, VerdictErr: err, Stale: stale})
		if f.SensorAtInstall != want {
			t.Errorf("verdict %s: forecast records %q, an install %q", v, f.SensorAtInstall, want)
		}
	}
}

func TestInstallRefusesWhatTheForecastCallsBusy(t *testing.T) {
	for _, st := range []SlotState{
		{Committed: SlotA, Trial: SlotB, Tries: 1},
		{Committed: SlotB},
	} {
		b, err := st.busy(SlotA)
		if b == "" || !errors.Is(err, ErrBusy) {
			t.Errorf("state %+v running A: blocker %q, err %v; want a blocker and ErrBusy", st, b, err)
		}
	}
	if b, err := (SlotState{Committed: SlotA}).busy(SlotA); b != "" || err != nil {
		t.Errorf("idle state: blocker %q, err %v; want none", b, err)
	}
}
