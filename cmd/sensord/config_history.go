package main

import (
	"flag"
	"math"
	"slices"
	"strings"
	"time"

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
	// maxTempOffset and maxHumOffset: a sensor that needs more than this
	// is broken, and a larger value is more likely a typo.
	maxTempOffset = 20.0
	maxHumOffset  = 50.0
)

// checkHistory validates the history, calibration and framing flags.
func (c *config) checkHistory() error {
	if c.HistoryRaw < history.MinRawRetention {
		return badFlag("history-raw-retention", "%s is below the minimum of %s", c.HistoryRaw, history.MinRawRetention)
	}
	if c.HistoryRollup < c.HistoryRaw {
		return badFlag("history-retention", "%s is below -history-raw-retention (%s)", c.HistoryRollup, c.HistoryRaw)
	}
	if c.HistoryCommit < minCommitInterval || c.HistoryCommit > maxCommitInterval {
		return badFlag("history-commit-interval", "%s is outside %s..%s", c.HistoryCommit, minCommitInterval, maxCommitInterval)
	}
	if math.IsNaN(c.TempOffset) || math.Abs(c.TempOffset) > maxTempOffset {
		return badFlag("temp-offset", "%v is outside -%v..%v degrees C", c.TempOffset, maxTempOffset, maxTempOffset)
	}
	if math.IsNaN(c.HumOffset) || math.Abs(c.HumOffset) > maxHumOffset {
		return badFlag("humidity-offset", "%v is outside -%v..%v %%RH", c.HumOffset, maxHumOffset, maxHumOffset)
	}
	if strings.ContainsAny(c.FrameAncestors, ";,\r\n'\"") {
		return badFlag("frame-ancestors", "%q: list origins separated by spaces, such as http://homeassistant.local:8123", c.FrameAncestors)
	}
	return nil
}

// offsets turns the calibration flags into tenths.
func (c *config) offsets() sensor.Offsets {
	return sensor.Offsets{
		Temperature: sensor.Deci(math.Round(c.TempOffset * 10)),
		Humidity:    sensor.Deci(math.Round(c.HumOffset * 10)),
	}
}

// historyOpts turns the history flags into the store's options.
func (c *config) historyOpts() history.Opts {
	o := history.DefaultOpts()
	o.RawRetention = c.HistoryRaw
	o.RollupRetention = c.HistoryRollup
	o.CommitInterval = c.HistoryCommit
	return o
}

// durationExamples is what a bad duration's message shows.
const durationExamples = " (a number and a unit, such as 2s, 500ms, 1m30s or 168h)"

// durationHint is durationExamples when f takes a duration, else "".
func durationHint(f *flag.Flag) string {
	if g, ok := f.Value.(flag.Getter); ok {
		if _, ok := g.Get().(time.Duration); ok {
			return durationExamples
		}
	}
	return ""
}

// durationHintFor finds the flag a command-line parse error names.
func durationHintFor(fs *flag.FlagSet, err error) string {
	_, rest, ok := strings.Cut(err.Error(), " for flag -")
	if !ok {
		return ""
	}
	name, _, _ := strings.Cut(rest, ":")
	if f := fs.Lookup(name); f != nil {
		return durationHint(f)
	}
	return ""
}

// unknownSettings warns about SENSORD_* variables in environ that name no
// flag (a typo such as SENSORD_PERIDO would otherwise be silently ignored).
func unknownSettings(environ []string) []string {
	known := map[string]bool{}
	newFlagSet(&config{}).VisitAll(func(f *flag.Flag) { known[envName(f.Name)] = true })
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
