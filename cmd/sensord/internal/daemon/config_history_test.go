package daemon

import (
	"io"
	"strings"
	"testing"
	"time"

	"sensord/sensor"
)

func TestHistoryAndCalibrationFlags(t *testing.T) {
	c, _, err := ParseConfig([]string{"-history-dir", "/var/lib/sensord", "-temp-offset", "-0.5", "-humidity-offset", "3",
		"-history-commit-interval", "30s", "-frame-ancestors", "http://ha.local:8123 https://nodered.local"}, env(), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.offsets() != (sensor.Offsets{Temperature: -5, Humidity: 30}) {
		t.Errorf("offsets %+v, want -0.5 °C and +3 %%", c.offsets())
	}
	if o := c.historyOpts(); o.CommitInterval != 30*time.Second || o.RawRetention != 7*24*time.Hour || o.RollupRetention != 365*24*time.Hour {
		t.Errorf("history options %+v", o)
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"a raw retention under two hours", []string{"-history-raw-retention", "1h"}, "-history-raw-retention: 1h is below the minimum of 2h"},
		{"rollups shorter than raw", []string{"-history-retention", "24h"}, "-history-retention: 24h is below -history-raw-retention (168h)"},
		{"a commit a millisecond", []string{"-history-commit-interval", "1ms"}, "-history-commit-interval: 1ms is outside 1s..1h"},
		{"an absurd offset", []string{"-temp-offset", "40"}, "-temp-offset: 40 is outside -20..20 degrees C"},
		{"a CSP injection", []string{"-frame-ancestors", "x; script-src *"}, "-frame-ancestors:"},
		{"a bad duration shows good ones", []string{"-period", "2"}, "such as 2s, 500ms"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := ParseConfig(tc.args, env(), io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one containing %q", err, tc.want)
			}
		})
	}
	t.Run("a bad duration in the settings file shows good ones", func(t *testing.T) {
		_, w, err := ParseConfig([]string{"-env-errors", "warn"}, env("SENSORD_PERIOD", "2 seconds"), io.Discard)
		if err != nil || len(w) != 1 || !strings.Contains(w[0], "such as 2s, 500ms") {
			t.Fatalf("warnings %q, err %v", w, err)
		}
	})
}

func TestUnknownSettingsAreWarnedAboutWithTheNearestName(t *testing.T) {
	got := UnknownSettings([]string{"PATH=/bin", "SENSORD_PERIDO=5s", "SENSORD_PERIOD=2s", "SENSORD_FROBNICATE=1", "HOSTNAME=pi"})
	want := []string{
		"SENSORD_FROBNICATE is not a sensord setting; it is ignored",
		"SENSORD_PERIDO is not a sensord setting; it is ignored (did you mean SENSORD_PERIOD?)",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got %q\nwant %q", got, want)
	}
}
