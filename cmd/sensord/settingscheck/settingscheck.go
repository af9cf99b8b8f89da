// Package settingscheck gives sensord's own check of a set of
// sensord.conf's values to programs outside cmd/sensord: the root helper
// `sensorctl apply-settings` checks a spooled change with exactly the
// rules sensord applies at start, not with a copy of them.
package settingscheck

import "sensord/cmd/sensord/internal/daemon"

// Check refuses vals (sensord.conf's active values, by variable name)
// with sensord's own one-line words when sensord would refuse them at
// start, or when the appliance's own settings (HOSTNAME, WIFI_*, ...)
// are bad; errors.Is(err, ErrSettings) holds then.
func Check(vals map[string]string) error { return daemon.CheckSettings(vals) }

// ErrSettings marks a refusal of Check.
var ErrSettings = daemon.ErrSettings
