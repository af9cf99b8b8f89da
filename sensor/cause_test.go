package sensor

import (
	"strings"
	"testing"
)

// TestCauseWordsAreWhereTheDashboardAndMetricsMeetThem pins the names
// (metrics labels and JSON) and checks every cause's words.
func TestCauseWordsAreWhereTheDashboardAndMetricsMeetThem(t *testing.T) {
	var names []string
	for _, c := range Causes() {
		names = append(names, c.String())
		if p := c.Problem("on GPIO4"); !strings.Contains(p, "on GPIO4") {
			t.Errorf("%s: problem %q does not say where", c, p)
		}
		if fix := c.Fix("check the wiring"); (fix == "check the wiring") != (c == CauseUnknown) {
			t.Errorf("%s: fix %q; only an unknown cause points at the wiring", c, fix)
		}
	}
	if got, want := strings.Join(names, " "), "unknown no_answer bad_signal wrong_model stuck_low stuck_high noise line_busy line_gone"; got != want {
		t.Errorf("names %q, want %q", got, want)
	}
	if got := Cause(200); got.String() != "unknown" || got.Fix("w") != "w" || got.Problem("on GPIO4") != "reads of the sensor on GPIO4 fail" {
		t.Errorf("a cause past the last: %q, %q, %q", got, got.Fix("w"), got.Problem("on GPIO4"))
	}
}
