package daemon

import (
	"errors"
	"io"
	"os/exec"
	"strings"
	"testing"
)

func TestAlertFlags(t *testing.T) {
	t.Run("the flag repeated gives every rule, in order", func(t *testing.T) {
		c, _, err := ParseConfig([]string{"-alert", "hot: temperature > 30 for 5m clear 29", "-alert", "freeze: temperature < 3"}, env(), io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if len(c.Alerts) != 2 || c.Alerts[0].String() != "hot: temperature > 30 for 5m0s clear 29" || c.Alerts[1].Name != "freeze" {
			t.Fatalf("%+v", c.Alerts)
		}
	})
	t.Run("SENSORD_ALERT holds several rules separated by ;", func(t *testing.T) {
		c, _, err := ParseConfig(nil, env("SENSORD_ALERT", "hot: temperature > 30; damp: humidity > 80 for 10m", "SENSORD_ALERT_WEBHOOK", "https://ntfy.sh/fish"), io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if len(c.Alerts) != 2 || c.Alerts[1].Metric != "humidity" || c.AlertWebhook != "https://ntfy.sh/fish" {
			t.Fatalf("%+v", c.alertConfig)
		}
	})
	for _, tc := range []struct {
		name string
		args []string
		env  []string
		want string
	}{
		{"a rule that does not parse", []string{"-alert", "hot temperature > 30"}, nil,
			`sensord: -alert: "hot temperature > 30" has no ':' after its name (NAME: METRIC > VALUE [for DURATION] [clear VALUE] (or <))`},
		{"a threshold out of range", []string{"-alert", "hot: temperature > 300"}, nil,
			`sensord: -alert: "hot: temperature > 300" has a threshold that is outside -40..85 degrees C`},
		{"a clear value on the wrong side", []string{"-alert", "hot: temperature > 30 clear 31"}, nil,
			`sensord: -alert: "hot: temperature > 30 clear 31" clears at 31, which is not below its threshold 30: a rule for > clears once the value is back below it`},
		{"a bad rule in the variable is named by its place", nil, []string{"SENSORD_ALERT", "hot: temperature > 30; cold: tempature < 3"},
			`sensord: -alert: SENSORD_ALERT="hot: temperature > 30; cold: tempature < 3" in part 2, "cold: tempature < 3" watches "tempature", which is not one of temperature, humidity, dew_point, absolute_humidity`},
		{"two rules with one name", []string{"-alert", "hot: temperature > 30", "-alert", "hot: humidity > 80"}, nil,
			`sensord: -alert: "hot: humidity > 80" names "hot" twice; give each rule its own name`},
		{"a webhook that is no URL", []string{"-alert-webhook", "ntfy.sh/fish"}, nil,
			`sensord: -alert-webhook: ntfy.sh/fish is not an http:// or https:// URL (for example https://ntfy.sh/my-topic)`},
	} {
		t.Run(tc.name+" stops start-up with one line naming -alert", func(t *testing.T) {
			var stderr strings.Builder
			cmd := exec.Command(binary, tc.args...)
			for i := 0; i+1 < len(tc.env); i += 2 {
				cmd.Env = append(cmd.Env, tc.env[i]+"="+tc.env[i+1])
			}
			cmd.Stderr = &stderr
			err := cmd.Run()
			if code := cmd.ProcessState.ExitCode(); code != 2 || strings.TrimSuffix(stderr.String(), "\n") != tc.want {
				t.Fatalf("exit %d (%v), stderr:\n%s\nwant:\n%s", code, err, stderr.String(), tc.want)
			}
		})
	}
	t.Run("under warn a bad SENSORD_ALERT is reported and no rule is kept", func(t *testing.T) {
		c, w, err := ParseConfig(nil, env("SENSORD_ENV_ERRORS", "warn", "SENSORD_ALERT", "hot: temperature >> 30"), io.Discard)
		if err != nil || len(c.Alerts) != 0 || len(w) != 1 || !strings.Contains(w[0], "-alert: ") {
			t.Fatalf("%v %+v %q", err, c, w)
		}
	})
	var ue *usageError
	if _, _, err := ParseConfig([]string{"-alert", "x"}, env(), io.Discard); !errors.As(err, &ue) || ue.Flag != "alert" {
		t.Fatalf("got %v, want a usage error on -alert", err)
	}
}
