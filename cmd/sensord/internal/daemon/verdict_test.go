package daemon

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"sensord/image/update"
	"sensord/internal/testutil"
)

// TestVerdictHoldsUnderEverySetting: the verdict the update's health gate
// reads says alive under the settings that made an HTTP health check fail
// (-allowed-hosts answers 421 to 127.0.0.1, -token 401) and under a 50 %
// sensor error rate, and tells a sensor that reads from one that does not.
func TestVerdictHoldsUnderEverySetting(t *testing.T) {
	for _, tc := range []struct {
		name    string
		args    []string
		reading bool
	}{
		{"allowed hosts, a token, half the reads failing: alive, sensor reading",
			[]string{"-allowed-hosts", "sensord.local", "-token", "s3cret", "-sim-error-rate", "0.5"}, true},
		{"a sensor that never answers: alive, sensor not reading",
			[]string{"-sim-no-response"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			start(t, []string{"RUNTIME_DIRECTORY=" + dir}, tc.args...)
			path := filepath.Join(dir, "verdict")
			var first, v update.Verdict
			read := func() error {
				b, err := os.ReadFile(path)
				if err == nil {
					err = json.Unmarshal(b, &v)
				}
				return err
			}
			testutil.Until(t, 30*time.Second, func() bool { return read() == nil && v.Alive },
				func() string { return fmt.Sprintf("no alive verdict in %s: %+v", path, v) })
			first = v
			// The gate needs the verdict to move; and a sensor at 50 %
			// errors has read within a minute.
			testutil.Until(t, 30*time.Second, func() bool {
				return read() == nil && v.Seq > first.Seq && v.Alive && v.SensorReading == tc.reading
			}, func() string {
				return fmt.Sprintf("verdict %+v after %+v, want alive, moving, sensor reading %v", v, first, tc.reading)
			})
			if !tc.reading && v.SensorProblem == "" {
				t.Errorf("a sensor not reading without a problem: %+v", v)
			}
		})
	}
}
