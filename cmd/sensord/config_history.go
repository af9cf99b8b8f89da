package main

import (
	"errors"
	"slices"
	"strings"
	"time"

	"sensord/cmd/sensord/internal/flagenv"
	"sensord/sensor"
	"sensord/sensor/history"
)

// Limits of the history and calibration flags.
const (
	// minCommitInterval: a commit is an fsync; more than one a second
	// wears an SD card for no one's benefit.
	minCommitInterval = time.Second
	// maxCommitInterval: a power cut loses at most one interval.
	maxCommitInterval = time.Hour
	// maxTempOffset and maxHumOffset, in tenths: a sensor that needs more
	// than 20 degrees or 50 %RH is broken, and a larger value is more
	// likely a typo.
	maxTempOffset sensor.Deci = 200
	maxHumOffset  sensor.Deci = 500
)

// historySettings defines the history, calibration and framing flags.
func (c *config) historySettings(s *flagenv.Set) {
	s.Var(flagenv.Text{P: &c.HistoryDir}, "history-dir", "directory of the history database (empty: history in memory only, lost at restart)")
	s.Var(flagenv.Duration{P: &c.HistoryRaw, Default: history.DefaultRawRetention, Min: history.MinRawRetention, Max: flagenv.NoMaximum}, "history-raw-retention", "how long every reading is kept")
	s.Var(flagenv.Duration{P: &c.HistoryRollup, Default: history.DefaultRollupRetention, Max: flagenv.NoMaximum}, "history-retention", "how long per-minute min/mean/max are kept")
	s.Var(flagenv.Duration{P: &c.HistoryCommit, Default: history.DefaultCommitInterval, Min: minCommitInterval, Max: maxCommitInterval}, "history-commit-interval", "time between two writes to the history database (a power cut loses at most this much)")
	s.Var(flagenv.Tenths[sensor.Deci]{P: &c.TempOffset, Min: -maxTempOffset, Max: maxTempOffset, Unit: "degrees C"}, "temp-offset", "calibration: degrees C added to every temperature reading, e.g. -0.5")
	s.Var(flagenv.Tenths[sensor.Deci]{P: &c.HumOffset, Min: -maxHumOffset, Max: maxHumOffset, Unit: "%RH"}, "humidity-offset", "calibration: %RH added to every humidity reading (the result stays within 0..100)")
	s.Var(flagenv.Text{P: &c.FrameAncestors, Check: checkFrameAncestors}, "frame-ancestors", "origins allowed to embed the dashboard in a frame, e.g. http://homeassistant.local:8123 (empty: none)")
}

// checkHistory is the rule between the two retentions.
func (c *config) checkHistory() error {
	if c.HistoryRollup < c.HistoryRaw {
		return flagenv.Blame("history-retention", "is below -history-raw-retention (%s)", flagenv.ShortDuration(c.HistoryRaw))
	}
	return nil
}

// checkFrameAncestors keeps -frame-ancestors one CSP source list: a ; or
// a quote would let the value add directives of its own.
func checkFrameAncestors(v string) error {
	if strings.ContainsAny(v, ";,\r\n'\"") {
		return errors.New("is not a list of origins separated by spaces, such as http://homeassistant.local:8123")
	}
	return nil
}

// offsets turns the calibration flags into what the poller adds.
func (c *config) offsets() sensor.Offsets {
	return sensor.Offsets{Temperature: c.TempOffset, Humidity: c.HumOffset}
}

// historyOpts turns the history flags into the store's options.
func (c *config) historyOpts() history.Opts {
	o := history.DefaultOpts()
	o.RawRetention = c.HistoryRaw
	o.RollupRetention = c.HistoryRollup
	o.CommitInterval = c.HistoryCommit
	return o
}

// unknownSettings warns about SENSORD_* variables in environ that name no
// flag (a typo such as SENSORD_PERIDO would otherwise be silently ignored).
func unknownSettings(environ []string) []string {
	known := map[string]bool{}
	s := new(config).settings()
	for _, f := range s.Flags() {
		known[s.EnvName(f.Name)] = true
	}
	var out []string
	for _, kv := range environ {
		k, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(k, envPrefix) || known[k] {
			continue
		}
		msg := k + " is not a sensord setting; it is ignored"
		if near := nearestSetting(k, known); near != "" {
			msg += " (did you mean " + near + "?)"
		}
		out = append(out, msg)
	}
	slices.Sort(out)
	return out
}

// nearestSetting returns the known name within two edits of k, if any.
func nearestSetting(k string, known map[string]bool) string {
	best, bestD := "", 3
	for name := range known {
		if d := editDistance(k, name); d < bestD || (d == bestD && name < best) {
			best, bestD = name, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
