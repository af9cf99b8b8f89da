package systemd

import (
	"embed"
	"io/fs"
)

//go:embed sensord.service sensord.socket
var units embed.FS

// Units returns the unit files, exactly the bytes the SD-card image installs
// into /etc/systemd/system: "sensord.service" and "sensord.socket". The
// file system is read-only.
func Units() fs.FS { return units }
