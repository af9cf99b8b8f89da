package daemon

import (
	"errors"
	"fmt"
	"io"
	"strconv"

	"sensord/image/settings"
)

// ErrSettings marks a set of settings CheckSettings refuses.
var ErrSettings = errors.New("settings refused")

// CheckSettings checks a whole set of sensord.conf's values (vals, by
// variable name, as Parse reads them from the file) before it is
// written: the SENSORD_* part is parsed exactly as sensord parses its
// environment at start, with -env-errors=exit, so a bad value is refused
// with the line sensord itself would print ("sensord: -period: ..."); the
// appliance's own settings (HOSTNAME, WIFI_*, ...) by settings.CheckAppliance.
// sensord's settings API and its root helper (`sensorctl apply-settings`,
// through package settingscheck) both call it: one copy of the rules.
func CheckSettings(vals map[string]string) error {
	if err := settings.CheckAppliance(vals); err != nil {
		return fmt.Errorf("%w: %w", ErrSettings, err)
	}
	if v, ok := vals["SENSORD_VERSION"]; ok {
		if b, err := strconv.ParseBool(v); err == nil && b {
			return fmt.Errorf("%w: sensord: -version: SENSORD_VERSION=true makes sensord print its version and exit instead of running", ErrSettings)
		}
	}
	lookup := func(k string) (string, bool) {
		v, ok := vals[k]
		return v, ok
	}
	if _, _, err := ParseConfig([]string{"-env-errors=exit"}, lookup, io.Discard); err != nil {
		return fmt.Errorf("%w: sensord: %w", ErrSettings, err)
	}
	return nil
}

// settingShows maps each SENSORD_* variable whose flag has a Show (a
// URL without its password) to it: how the settings page shows a value.
func settingShows() map[string]func(string) string {
	m := map[string]func(string) string{}
	s := new(Config).settings()
	for _, f := range s.Flags() {
		if f.Show != nil {
			m[s.EnvName(f.Name)] = f.Show
		}
	}
	return m
}
