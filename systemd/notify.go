package systemd

import (
	"fmt"
	"strings"

	"github.com/coreos/go-systemd/v22/daemon"
)

// Ready tells systemd that start-up is finished: for a Type=notify unit the
// start job completes and units ordered after sensord may start. Call it once
// the listener is bound and the loops run.
//
//	NOTIFY_SOCKET unset       -> nil, nothing sent (not under systemd)
//	NOTIFY_SOCKET set, sent   -> nil
//	NOTIFY_SOCKET set, failed -> error (e.g. the socket is gone)
func Ready() error { return notify(daemon.SdNotifyReady) }

// Status sets the free-form one-line status systemctl status shows
// ("STATUS=21.4 C 48.2 %RH, 3 clients"). Newlines in s would start a new
// protocol assignment, so each is replaced by a space.
//
//	NOTIFY_SOCKET unset       -> nil, nothing sent
//	NOTIFY_SOCKET set, sent   -> nil
//	NOTIFY_SOCKET set, failed -> error
func Status(s string) error {
	return notify("STATUS=" + strings.ReplaceAll(s, "\n", " "))
}

// Stopping tells systemd the daemon has begun to shut down (on SIGTERM,
// before closing clients), so systemctl shows "deactivating" and systemd does
// not mistake the quiet time for a hang.
//
//	NOTIFY_SOCKET unset       -> nil, nothing sent
//	NOTIFY_SOCKET set, sent   -> nil
//	NOTIFY_SOCKET set, failed -> error
func Stopping() error { return notify(daemon.SdNotifyStopping) }

// notify sends one state datagram. NOTIFY_SOCKET is left in the environment
// (unsetEnvironment false) because the daemon notifies many times.
func notify(state string) error {
	if _, err := daemon.SdNotify(false, state); err != nil {
		name, _, _ := strings.Cut(state, "=")
		return fmt.Errorf("systemd: notify %s: %w", name, err)
	}
	return nil
}
