package daemon

import (
	"path/filepath"
	"time"

	"sensord/cmd/sensord/internal/setuppage"
	"sensord/image/paths"
)

// newSetup builds the setup access point's page: on the image it reads
// the root side's state and spools a request in the runtime directory;
// elsewhere (no SetupState) it is off and /setup is not found.
func (d *daemon) newSetup() {
	d.setup = &setuppage.Portal{StatePath: d.cfg.SetupState, Log: d.log, Now: time.Now}
	if d.cfg.RuntimeDir != "" {
		d.setup.SpoolPath = filepath.Join(d.cfg.RuntimeDir, paths.SetupRequestName)
	}
}
