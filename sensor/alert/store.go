package alert

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"sensord/internal/atomicfile"
	"sensord/sensor"
)

// Store keeps the active alerts across a restart.
type Store interface {
	// Load returns the alerts active when Save was last called (none
	// before the first).
	Load() ([]Event, error)
	// Save replaces what is kept with active.
	Save(active []Event) error
}

// FileStore keeps the active alerts in a small JSON file, replaced
// atomically at every transition (which is rare: no wear to speak of on
// an SD card).
type FileStore struct {
	Path string
}

// fileVersion is the file's format; a file of another version is ignored
// (an error), the alerts start clear.
const fileVersion = 1

// maxFileSize bounds what Load reads: a few hundred bytes per alert.
const maxFileSize = 1 << 20

type fileFormat struct {
	Version int         `json:"version"`
	Active  []savedJSON `json:"active"`
}

type savedJSON struct {
	Name      string `json:"name"`
	Metric    Metric `json:"metric"`
	Value     int32  `json:"value_tenths"`
	Threshold int32  `json:"threshold_tenths"`
	Since     int64  `json:"since"` // Unix milliseconds
}

// ErrStore is wrapped by every FileStore error.
var ErrStore = errors.New("alert: state file")

// Load implements Store; a missing file is no alert active.
func (s FileStore) Load() ([]Event, error) {
	b, err := os.ReadFile(s.Path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("%w: %w", ErrStore, err)
	case len(b) > maxFileSize:
		return nil, fmt.Errorf("%w: %s is larger than %d bytes", ErrStore, s.Path, maxFileSize)
	}
	var f fileFormat
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("%w: %s does not parse: %w", ErrStore, s.Path, err)
	}
	if f.Version != fileVersion {
		return nil, fmt.Errorf("%w: %s has version %d, not %d", ErrStore, s.Path, f.Version, fileVersion)
	}
	out := make([]Event, 0, len(f.Active))
	for _, a := range f.Active {
		out = append(out, Event{Name: a.Name, State: Raised, Metric: a.Metric, Value: sensor.Deci(a.Value), Threshold: sensor.Deci(a.Threshold), Time: time.UnixMilli(a.Since)})
	}
	return out, nil
}

// Save implements Store.
func (s FileStore) Save(active []Event) error {
	f := fileFormat{Version: fileVersion, Active: []savedJSON{}}
	for _, e := range active {
		f.Active = append(f.Active, savedJSON{Name: e.Name, Metric: e.Metric, Value: int32(e.Value), Threshold: int32(e.Threshold), Since: e.Time.UnixMilli()})
	}
	b, err := json.Marshal(f)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrStore, err)
	}
	if err := atomicfile.WriteFile(s.Path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("%w: %w", ErrStore, err)
	}
	return nil
}
