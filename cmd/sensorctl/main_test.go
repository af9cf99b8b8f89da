package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"sensord/image/paths"
	"sensord/image/update"
)

// fakeSensord rewrites a verdict file each time the clock is read, as a
// running sensord does every few seconds, and moves the clock by step.
type fakeSensord struct {
	t     *testing.T
	path  string
	v     update.Verdict
	write bool // false: sensord is not running, nothing is written
	now   time.Time
	step  time.Duration
}

func (f *fakeSensord) clock() time.Time {
	f.now = f.now.Add(f.step)
	if f.write {
		f.v.Seq++
		b, _ := json.Marshal(f.v)
		if err := os.WriteFile(f.path, b, 0o600); err != nil {
			f.t.Fatal(err)
		}
		os.Chtimes(f.path, f.now, f.now)
	}
	return f.now
}

func TestRunGateReadsTheVerdictFile(t *testing.T) {
	for _, tc := range []struct {
		name           string
		v              update.Verdict
		write          bool
		sensorRequired bool
		commit         bool
		rule           string
	}{
		{"alive, sensor failing before and after: commits", update.Verdict{Alive: true}, true, false, true, update.RuleAlive},
		{"alive, sensor reading as at install: commits", update.Verdict{Alive: true, SensorReading: true}, true, true, true, update.RuleAliveAndSensor},
		{"alive, the sensor that read at install broken: rolls back", update.Verdict{Alive: true}, true, true, false, update.RuleSensorBroken},
		{"no sensord: rolls back", update.Verdict{}, false, false, false, update.RuleNeverAlive},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeSensord{t: t, path: filepath.Join(t.TempDir(), "verdict"), v: tc.v, write: tc.write,
				now: time.Unix(1e9, 0), step: 2 * time.Second}
			g := &update.Gate{HealthyFor: time.Minute, Within: 10 * time.Minute, SensorRequired: tc.sensorRequired}
			d, err := runGate(context.Background(), g, f.path, f.clock, time.Microsecond)
			if err != nil {
				t.Fatal(err)
			}
			if d.Commit != tc.commit || d.Rule != tc.rule {
				t.Errorf("got %+v, want commit=%v by %s", d, tc.commit, tc.rule)
			}
		})
	}
}

func TestRunGateStopsWithItsContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	f := &fakeSensord{t: t, path: filepath.Join(t.TempDir(), "verdict"), now: time.Unix(1e9, 0), step: time.Second}
	g := &update.Gate{HealthyFor: time.Minute, Within: 10 * time.Minute}
	if _, err := runGate(ctx, g, f.path, f.clock, time.Hour); !errors.Is(err, context.Canceled) {
		t.Errorf("got %v, want context.Canceled", err)
	}
}

func TestSensorAtInstallWaitsForTheFirstRead(t *testing.T) {
	path := filepath.Join(t.TempDir(), "verdict")
	now := time.Now()
	clock := func() time.Time { return now }
	write := func(v update.Verdict) {
		b, _ := json.Marshal(v)
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		os.Chtimes(path, now, now)
	}
	// sensord has just started: its first verdict is written before any
	// read; the next one, after a good read, says reading.
	write(update.Verdict{Seq: 1, Alive: true, SensorWaiting: true})
	sleeps := 0
	got := sensorAtInstall(path, clock, func(d time.Duration) {
		sleeps++
		now = now.Add(d)
		write(update.Verdict{Seq: 2, Alive: true, SensorReading: true})
	})
	if got != update.SensorReading || sleeps != 1 {
		t.Errorf("got %s after %d waits, want reading after one", got, sleeps)
	}
	// A sensord that never finishes a read: not reading, after SensorSettle.
	write(update.Verdict{Seq: 1, Alive: true, SensorWaiting: true})
	start := now
	got = sensorAtInstall(path, clock, func(d time.Duration) {
		now = now.Add(d)
		write(update.Verdict{Seq: 1, Alive: true, SensorWaiting: true})
	})
	if got != update.SensorNotReading || now.Sub(start) < update.SensorSettle {
		t.Errorf("got %s after %s, want not-reading after %s", got, now.Sub(start), update.SensorSettle)
	}
}

// The boot script reads the slot state at ChooserDir/ChooserStateName of
// the boot partition; sensorctl must write it there.
func TestBootStateIsWhereTheBootScriptReadsIt(t *testing.T) {
	if got := filepath.Join(paths.BootPartition, update.ChooserDir, update.ChooserStateName); got != paths.BootState {
		t.Errorf("the boot script reads %s, paths.BootState is %s", got, paths.BootState)
	}
}

// TestBootDoesNotRebootASlotCommittedByHand: the gate gives up on a trial
// that sensorctl mark-good committed meanwhile; boot says so and neither
// records a failure nor reboots. Without the commit, it reboots.
func TestBootDoesNotRebootASlotCommittedByHand(t *testing.T) {
	for _, tc := range []struct {
		name      string
		committed string
		reboots   bool
	}{
		{"a trial committed by hand is left alone", update.SlotB, false},
		{"a trial still uncommitted is rolled back", update.SlotA, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			u := &update.Updater{StatePath: filepath.Join(dir, "state"), LastPath: filepath.Join(dir, "last"),
				Boot: update.Boot{Slot: update.SlotB, Mode: update.ModeTrial}, Now: time.Now, Log: io.Discard}
			if err := update.WriteState(u.StatePath, update.SlotState{Committed: tc.committed, B: update.SlotInfo{Version: "v2", Release: 2}}); err != nil {
				t.Fatal(err)
			}
			rebooted := false
			var out bytes.Buffer
			d := update.Decision{Done: true, Rule: update.RuleSensorBroken, Reason: "the sensor did not read"}
			if err := decide(u, d, &out, func() error { rebooted = true; return nil }); err != nil {
				t.Fatal(err)
			}
			last, err := update.ReadOutcome(u.LastPath)
			if rebooted != tc.reboots || (err == nil) != tc.reboots {
				t.Errorf("rebooted %v, outcome %+v (%v); want a reboot and a recorded failure: %v\n%s", rebooted, last, err, tc.reboots, out.String())
			}
		})
	}
}
