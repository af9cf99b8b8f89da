package systemd

import (
	"errors"
	"fmt"
	"net"

	"github.com/coreos/go-systemd/v22/activation"
)

// Listeners returns the listening stream sockets systemd passed to this
// process (socket activation: sensord.socket binds port 80 as root and hands
// the open socket over, so the daemon needs no privilege to use it). The
// caller serves on them instead of binding -listen, and owns them.
//
//	LISTEN_PID/LISTEN_FDS unset       -> nil, nil (bind -listen yourself)
//	LISTEN_PID is another process     -> nil, nil (the sockets are not ours)
//	LISTEN_FDS=n, all stream sockets  -> n listeners in fd order (3, 4, ...), nil
//	some fd is not a listening socket -> nil, error naming it (all fds closed)
//
// Either way LISTEN_PID, LISTEN_FDS and LISTEN_FDNAMES are removed from the
// environment, as sd_listen_fds(3) advises, and the fds are marked
// close-on-exec, so a child process never mistakes them for its own. Call it
// once: a second call returns nil, nil.
func Listeners() ([]net.Listener, error) {
	files := activation.Files(true)
	if len(files) == 0 {
		return nil, nil
	}
	ls := make([]net.Listener, 0, len(files))
	var errs []error
	for i, f := range files {
		// FileListener dups the fd, so the *os.File is closed either way.
		l, err := net.FileListener(f)
		f.Close()
		if err != nil {
			// go-systemd would leave a nil gap here; a datagram socket in
			// sensord.socket is a configuration mistake worth saying so.
			errs = append(errs, fmt.Errorf("fd %d (%s) is not a listening stream socket: %w", 3+i, f.Name(), err))
			continue
		}
		ls = append(ls, l)
	}
	if len(errs) > 0 {
		for _, l := range ls {
			l.Close()
		}
		return nil, fmt.Errorf("systemd: socket activation: %w", errors.Join(errs...))
	}
	return ls, nil
}
