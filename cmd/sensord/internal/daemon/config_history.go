package daemon

import (
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

// historySettings defines the history and calibration flags.
func (c *Config) historySettings(s *flagenv.Set) {
	s.Var(flagenv.Text{P: &c.HistoryDir}, "history-dir", "directory of the history database (empty: history in memory only, lost at restart)")
	s.Var(flagenv.Duration{P: &c.HistoryRaw, Default: history.DefaultRawRetention, Min: history.MinRawRetention, Max: flagenv.NoMaximum}, "history-raw-retention", "how long every reading is kept")
	s.Var(flagenv.Duration{P: &c.HistoryRollup, Default: history.DefaultRollupRetention, Max: flagenv.NoMaximum}, "history-retention", "how long per-minute min/mean/max are kept")
	s.Var(flagenv.Duration{P: &c.HistoryCommit, Default: history.DefaultCommitInterval, Min: minCommitInterval, Max: maxCommitInterval}, "history-commit-interval", "time between two writes to the history database (a power cut loses at most this much)")
	s.Var(flagenv.Tenths[sensor.Deci]{P: &c.TempOffset, Min: -maxTempOffset, Max: maxTempOffset, Unit: "degrees C"}, "temp-offset", "calibration: degrees C added to every temperature reading, e.g. -0.5")
	s.Var(flagenv.Tenths[sensor.Deci]{P: &c.HumOffset, Min: -maxHumOffset, Max: maxHumOffset, Unit: "%RH"}, "humidity-offset", "calibration: %RH added to every humidity reading (the result stays within 0..100)")
}

// checkHistory is the rule between the two retentions.
func (c *Config) checkHistory() error {
	if c.HistoryRollup < c.HistoryRaw {
		return flagenv.Blame("history-retention", "is below -history-raw-retention (%s)", flagenv.ShortDuration(c.HistoryRaw))
	}
	return nil
}

// offsets turns the calibration flags into what the poller adds.
func (c *Config) offsets() sensor.Offsets {
	return sensor.Offsets{Temperature: c.TempOffset, Humidity: c.HumOffset}
}

// historyOpts turns the history flags into the store's options.
func (c *Config) historyOpts() history.Opts {
	o := history.DefaultOpts()
	o.RawRetention = c.HistoryRaw
	o.RollupRetention = c.HistoryRollup
	o.CommitInterval = c.HistoryCommit
	return o
}
