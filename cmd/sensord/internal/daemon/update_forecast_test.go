package daemon

import (
	"encoding/json"
	"flag"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sensord/image/update"
)

var updateGolden = flag.Bool("update", false, "rewrite the dashboard's update panel fixtures in cmd/sensord/web/testdata")

// get is GET /api/update through the real token middleware.
func (f *updateFixture) get(t *testing.T) updateInfo {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, f.srv.URL+"/api/update", nil)
	req.Header.Set("Authorization", "Bearer "+updateTestToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var in updateInfo
	if err := json.NewDecoder(resp.Body).Decode(&in); err != nil {
		t.Fatal(err)
	}
	return in
}

func (f *updateFixture) writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

const (
	verdictReading  = `{"seq":7,"version":"1.0","alive":true,"sensor_reading":true}`
	verdictFailing  = `{"seq":7,"version":"1.0","alive":true,"sensor_reading":false,"sensor_problem":"no good reading within 1m0s; last error: dht22: timeout"}`
	verdictNotAlive = `{"seq":7,"version":"1.0","alive":false,"problem":"sensor loop stuck: no read has returned for 41s","sensor_reading":false}`
)

// TestUpdateForecastSaysWhatDecidesAnUploadNow: GET /api/update carries
// what would decide the trial of a bundle uploaded now, from the updater's
// own files and sensord's verdict, and a warning for each state in which
// the upload would be refused or its trial could not commit.
func TestUpdateForecastSaysWhatDecidesAnUploadNow(t *testing.T) {
	for _, tc := range []struct {
		name    string
		verdict string // "" : no verdict file
		state   string // "" : the fixture's
		pending bool
		rule    string
		blocker update.Blocker
		say     string
	}{
		{"the sensor reads now: the trial must keep it reading", verdictReading, "", false,
			update.RuleAliveAndSensor, "", "The sensor reads well now"},
		{"the sensor fails now: only sensord's liveness counts", verdictFailing, "", false,
			update.RuleAlive, "", "only sensord's own liveness counts"},
		{"no verdict: the install records the sensor as not reading", "", "", false,
			update.RuleAlive, "", "cannot be read now"},
		{"sensord not alive by the gate's test: warned", verdictNotAlive, "", false,
			update.RuleAlive, update.BlockerNotAlive, "sensor loop stuck"},
		{"a trial waits for its boot: warned", verdictReading, "committed=B\ntrial=A\ntries=1\nversion_A=1.1\nrelease_A=11\nversion_B=1.0\nrelease_B=10\n", false,
			update.RuleAliveAndSensor, update.BlockerTrialPending, "slot A (1.1) boots on trial next"},
		{"the running slot is on trial: warned", verdictReading, "committed=A\nversion_A=1.1\nrelease_A=11\nversion_B=1.0\nrelease_B=10\n", false,
			update.RuleAliveAndSensor, update.BlockerRunningOnTrial, "running slot B is on trial"},
		{"an upload waits for the updater: warned", verdictReading, "", true,
			update.RuleAliveAndSensor, update.BlockerUploadPending, "already waiting"},
		{"the slot state does not read: warned", verdictReading, "committed=C\n", false,
			"", update.BlockerStateUnreadable, "refused"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newUpdateFixture(t, true)
			if tc.verdict != "" {
				f.writeFile(t, f.panel.VerdictPath, tc.verdict)
			}
			if tc.state != "" {
				f.writeFile(t, f.panel.StatePath, tc.state)
			}
			if tc.pending {
				if err := os.MkdirAll(f.panel.SpoolDir, 0o700); err != nil {
					t.Fatal(err)
				}
				f.writeFile(t, filepath.Join(f.panel.SpoolDir, updateSpoolName), "bundle")
			}
			got := f.get(t).Forecast
			if got == nil {
				t.Fatal("GET /api/update has no forecast")
			}
			if got.Rule != tc.rule || got.Blocker != string(tc.blocker) {
				t.Errorf("rule %q, blocker %q; want %q, %q", got.Rule, got.Blocker, tc.rule, tc.blocker)
			}
			if (got.Blocker == "") != (got.Warning == "") {
				t.Errorf("blocker %q with warning %q: want both or neither", got.Blocker, got.Warning)
			}
			if !strings.Contains(got.Says+" "+got.Warning, tc.say) {
				t.Errorf("says %q, warns %q; want %q", got.Says, got.Warning, tc.say)
			}
			if got.HealthyForSeconds != 60 || got.WithinSeconds != 600 {
				t.Errorf("time limits %d s, %d s; want the gate's 60 and 600", got.HealthyForSeconds, got.WithinSeconds)
			}
		})
	}
	t.Run("off the A/B image there is no forecast", func(t *testing.T) {
		if f := newUpdateFixture(t, false); f.get(t).Forecast != nil {
			t.Error("a forecast off the A/B image")
		}
	})
}

// TestUpdatePanelFixturesForTheDashboard: the dashboard's browser tests
// (cmd/sensord/web, update_browser_test.go) serve these answers of the
// real panel, which cannot run there (it imports the page); this keeps
// them what the panel says. go test -run TestUpdatePanelFixtures -update
// rewrites them.
func TestUpdatePanelFixturesForTheDashboard(t *testing.T) {
	for _, tc := range []struct{ file, verdict, state string }{
		{"update-clear.json", verdictReading, ""},
		{"update-warn.json", verdictReading, "committed=B\ntrial=A\ntries=1\nversion_A=1.1\nrelease_A=11\nversion_B=1.0\nrelease_B=10\n"},
	} {
		f := newUpdateFixture(t, true)
		f.writeFile(t, f.panel.VerdictPath, tc.verdict)
		if tc.state != "" {
			f.writeFile(t, f.panel.StatePath, tc.state)
		}
		got, err := json.MarshalIndent(f.get(t), "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, '\n')
		path := filepath.Join("..", "..", "web", "testdata", tc.file)
		if *updateGolden {
			if err := os.WriteFile(path, got, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(want) {
			t.Errorf("%s differs from the panel's answer (go test -run %s -update):\n%s", path, t.Name(), got)
		}
	}
}
