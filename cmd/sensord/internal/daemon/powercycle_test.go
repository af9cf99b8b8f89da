package daemon

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"sensord/internal/testutil"
)

// metricValue reads one unlabelled sample from sensord's /metrics.
func metricValue(t *testing.T, p *proc, name string) string {
	t.Helper()
	res, err := http.Get("http://" + p.addr + "/metrics")
	if err != nil {
		return ""
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, name+" "); ok {
			return v
		}
	}
	return ""
}

func TestAStoppedSensorIsPowerCycledThroughThePowerPin(t *testing.T) {
	p := start(t, nil, "-power-pin", "GPIO17", "-sim-stop-after", "3")
	testutil.Until(t, 60*time.Second, func() bool { return metricValue(t, p, "sensord_sensor_power_cycles_helped_total") == "1" },
		func() string {
			return fmt.Sprintf("no power cycle that helped: cycles %q\n%s", metricValue(t, p, "sensord_sensor_power_cycles_total"), p.logs())
		})
	if got := metricValue(t, p, "sensord_sensor_power_cycles_total"); got != "1" {
		t.Errorf("power cycles %s, want 1", got)
	}
	// The lines may follow the counter: wait for them.
	testutil.Until(t, 10*time.Second, func() bool {
		logs := p.logs()
		return strings.Contains(logs, `level=WARN msg="sensor power cycle: switching the sensor off and on again"`) && strings.Contains(logs, "power=GPIO17(sim)") &&
			strings.Contains(logs, `msg="sensor answers again after its power cycle"`)
	}, func() string { return "the journal does not tell the power cycle:\n" + p.logs() })
}
