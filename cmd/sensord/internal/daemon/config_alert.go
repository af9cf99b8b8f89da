package daemon

// The -alert flags and their rules; the alerts' wiring is in alerts.go.

import (
	"errors"
	"net/url"

	"sensord/cmd/sensord/internal/flagenv"
	"sensord/sensor/alert"
)

// alertConfig is the alert part of config.
type alertConfig struct {
	Alerts       []alert.Rule
	AlertWebhook string
}

// alertSettings defines -alert and -alert-webhook.
func (c *Config) alertSettings(s *flagenv.Set) {
	s.Var(flagenv.List[alert.Rule]{P: &c.Alerts, Sep: ";", Parse: parseAlert, Format: alert.Rule.String}, "alert",
		"an alert rule, '"+alert.Syntax+"', e.g. 'hot: temperature > 30 for 5m clear 29'; repeat the flag for several (SENSORD_ALERT: separated by ;); metrics: temperature, humidity, dew_point, absolute_humidity")
	s.Var(flagenv.Text{P: &c.AlertWebhook, Check: checkWebhook}, "alert-webhook", "http(s) URL every raised and cleared alert is POSTed to as JSON (an ntfy topic URL works; empty: none)").Show = redactURL
}

// parseAlert is alert.ParseRule with the refusal in flagenv's words,
// which name the rule in front.
func parseAlert(s string) (alert.Rule, error) {
	r, err := alert.ParseRule(s)
	var re *alert.RuleError
	if errors.As(err, &re) {
		return r, errors.New(re.Why)
	}
	return r, err
}

func checkWebhook(v string) error {
	if v == "" {
		return nil
	}
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errors.New("is not an http:// or https:// URL (for example https://ntfy.sh/my-topic)")
	}
	return nil
}

// checkAlerts is the rule that no two -alert rules share a name: each
// name is a topic, an entity and a line on the dashboard.
func (c *Config) checkAlerts() error {
	seen := map[string]bool{}
	for _, r := range c.Alerts {
		if seen[r.Name] {
			return flagenv.Blame("alert", "names %q twice; give each rule its own name", r.Name)
		}
		seen[r.Name] = true
	}
	return nil
}
