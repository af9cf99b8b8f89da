package systemd_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"

	"sensord/systemd"
)

// Example shows the life of sensord under systemd, against a stand-in for
// PID 1's notify socket: READY=1 once serving, STATUS= as readings arrive,
// STOPPING=1 on SIGTERM.
func Example() {
	dir, _ := os.MkdirTemp("", "sd")
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "notify")
	pid1, _ := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	defer pid1.Close()
	os.Setenv("NOTIFY_SOCKET", sock) // systemd sets it for a Type=notify service
	defer os.Unsetenv("NOTIFY_SOCKET")

	systemd.Ready()
	systemd.Status("21.4 C 48.2 %RH, 2 clients")
	systemd.Stopping()

	buf := make([]byte, 512)
	for range 3 {
		n, _ := pid1.Read(buf)
		fmt.Println(string(buf[:n]))
	}
	// Output:
	// READY=1
	// STATUS=21.4 C 48.2 %RH, 2 clients
	// STOPPING=1
}

func ExampleListeners() {
	ls, err := systemd.Listeners()
	if err != nil {
		slog.Error("socket activation", "err", err)
		os.Exit(1)
	}
	var l net.Listener
	if len(ls) > 0 {
		l = ls[0] // sensord.socket: port 80, bound by systemd
	} else if l, err = net.Listen("tcp", ":8080"); err != nil { // -listen
		slog.Error("listen", "err", err)
		os.Exit(1)
	}
	srv := &http.Server{Handler: http.NotFoundHandler()}
	go srv.Serve(l)
	systemd.Ready() // the listener is bound: start-up is done
	defer srv.Shutdown(context.Background())
}

func ExampleStatus() {
	clients := 3
	if err := systemd.Status(fmt.Sprintf("%.1f C %.1f %%RH, %d clients", 21.4, 48.2, clients)); err != nil {
		slog.Warn("sd_notify", "err", err) // the daemon goes on: status is advisory
	}
}
