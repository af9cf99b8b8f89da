package update

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// step is one observation of a gate test: after, the verdict (or err).
type step struct {
	v   Verdict
	err error
}

// runGate feeds g one observation every 2 s, repeating the last step,
// until it decides or 20 minutes pass; seq moves at each step unless the
// step's verdict fixes it.
func runGate(g *Gate, steps func(i int, at time.Duration) step) (Decision, time.Duration) {
	t0 := time.Unix(1e9, 0)
	for i := 0; ; i++ {
		at := time.Duration(i) * 2 * time.Second
		s := steps(i, at)
		if s.v.Seq == 0 {
			s.v.Seq = uint64(i + 1)
		}
		if d := g.Observe(t0.Add(at), s.v, s.err); d.Done || at > 20*time.Minute {
			return d, at
		}
	}
}

func TestGateRules(t *testing.T) {
	alive := Verdict{Version: "v2", Alive: true, SensorReading: true}
	aliveNoSensor := Verdict{Version: "v2", Alive: true, SensorProblem: "timeout: check the wiring"}
	for _, tc := range []struct {
		name           string
		sensorRequired bool
		steps          func(i int, at time.Duration) step
		commit         bool
		rule           string
		by             time.Duration // decided no earlier than this
	}{
		{"alive with the sensor reading, as at install: commits", true,
			func(int, time.Duration) step { return step{v: alive} }, true, RuleAliveAndSensor, time.Minute},
		{"sensor failing before and after the update: commits on alive alone", false,
			func(int, time.Duration) step { return step{v: aliveNoSensor} }, true, RuleAlive, time.Minute},
		{"a trial that breaks a sensor that read at install: rolls back", true,
			func(int, time.Duration) step { return step{v: aliveNoSensor} }, false, RuleSensorBroken, 10 * time.Minute},
		{"a sensor failing half its reads still reads: commits", true,
			func(i int, _ time.Duration) step {
				v := alive
				v.SensorReading = true // a good reading within the last minute
				if i%2 == 0 {
					v.SensorProblem = "checksum"
				}
				return step{v: v}
			}, true, RuleAliveAndSensor, time.Minute},
		{"no verdict file (sensord crash-looping): rolls back", false,
			func(int, time.Duration) step { return step{err: os.ErrNotExist} }, false, RuleNeverAlive, 10 * time.Minute},
		{"a verdict that stops moving (sensord hung): rolls back", false,
			func(int, time.Duration) step { return step{v: Verdict{Seq: 7, Alive: true}} }, false, RuleNeverAlive, 10 * time.Minute},
		{"alive with a break every 50 s: never a full minute, rolls back", false,
			func(_ int, at time.Duration) step {
				if at%(50*time.Second) == 0 {
					return step{v: Verdict{Alive: false, Problem: "sensor loop stuck"}}
				}
				return step{v: aliveNoSensor}
			}, false, RuleNeverAlive, 10 * time.Minute},
		{"alive after a slow start: commits a minute after", false,
			func(_ int, at time.Duration) step {
				if at < 5*time.Minute {
					return step{err: errors.New("no verdict yet")}
				}
				return step{v: aliveNoSensor}
			}, true, RuleAlive, 6 * time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := &Gate{HealthyFor: DefaultHealthyFor, Within: DefaultWithin, SensorRequired: tc.sensorRequired}
			d, at := runGate(g, tc.steps)
			if !d.Done || d.Commit != tc.commit || d.Rule != tc.rule {
				t.Fatalf("got %+v after %s, want commit=%v by rule %s", d, at, tc.commit, tc.rule)
			}
			if at < tc.by || at > tc.by+10*time.Second {
				t.Errorf("decided after %s, want %s", at, tc.by)
			}
			if d.Reason == "" {
				t.Error("no reason given")
			}
		})
	}
}

func TestSensorAtInstallFromTheVerdictFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "verdict")
	now := time.Now()
	if got, waiting := SensorAtInstall(path, now); got != SensorNotReading || waiting {
		t.Errorf("no verdict file: %s, waiting %v", got, waiting)
	}
	for _, tc := range []struct {
		body    string
		age     time.Duration
		want    string
		waiting bool
	}{
		{`{"seq":3,"alive":true,"sensor_reading":true}`, 0, SensorReading, false},
		{`{"seq":3,"alive":true,"sensor_reading":false}`, 0, SensorNotReading, false},
		{`{"seq":1,"alive":true,"sensor_reading":false,"sensor_waiting":true}`, 0, SensorNotReading, true},
		{`{"seq":3,"alive":true,"sensor_reading":true}`, VerdictStale + time.Second, SensorNotReading, false},
		{`not json`, 0, SensorNotReading, false},
	} {
		if err := os.WriteFile(path, []byte(tc.body), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(path, now.Add(-tc.age), now.Add(-tc.age)); err != nil {
			t.Fatal(err)
		}
		if got, waiting := SensorAtInstall(path, now); got != tc.want || waiting != tc.waiting {
			t.Errorf("%s written %s ago: %s (waiting %v), want %s (waiting %v)", tc.body, tc.age, got, waiting, tc.want, tc.waiting)
		}
	}
}
