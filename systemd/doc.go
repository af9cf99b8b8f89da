// Package systemd makes sensord a good systemd citizen: it tells the service
// manager when the daemon is ready, what it is doing and when it stops
// (sd_notify), pings the watchdog only while the daemon's loops are healthy,
// takes the listening sockets systemd passes it (socket activation), and
// writes log lines journald can file under the right priority.
//
// It is a thin layer over github.com/coreos/go-systemd/v22 (daemon and
// activation). Outside systemd every function is a quiet no-op, so the same
// binary runs unchanged on a laptop (`make run`) and on the appliance.
//
// The unit files the SD-card image installs, sensord.service and
// sensord.socket, live beside this file; image/build.sh copies them in and
// this package's tests check them with systemd-analyze.
//
// # Concurrency
//
// Ready, Status, Stopping and Listeners may be called from any goroutine;
// each notification is one datagram on its own connection. Watchdog is meant
// to run in one goroutine of its own for the life of the daemon; it calls
// healthy from that goroutine only. A handler from NewLogHandler may be used
// from any goroutine: it writes each record with a single Write call.
//
// # Environment
//
// The protocol lives in environment variables systemd sets for the main
// process. This package reads them and, except for LISTEN_PID, LISTEN_FDS and
// LISTEN_FDNAMES (unset by [Listeners] so children do not take the sockets
// for theirs), leaves them in place, so every call sees the same settings.
//
//	NOTIFY_SOCKET   where Ready, Status, Stopping and Watchdog send datagrams
//	WATCHDOG_USEC   the watchdog timeout; WATCHDOG_PID the process it is for
//	LISTEN_FDS      how many listening sockets start at fd 3; LISTEN_PID who they are for
//	JOURNAL_STREAM  device:inode of journald's stream, when stdout/stderr go there
package systemd
