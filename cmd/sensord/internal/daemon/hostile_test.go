package daemon

// Hostile peers against the real binary over real sockets: what one
// machine on the LAN can make sensord hold, in memory and descriptors.

import (
	"bufio"
	be "encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"sensord/cmd/sensord/internal/health"
	"sensord/internal/testutil"
)

// plainBinary is sensord built without the race detector, whose shadow
// memory would swamp an RSS measurement; built once, on first use.
var plainBinary = sync.OnceValues(func() (string, error) {
	out := filepath.Join(filepath.Dir(binary), "sensord-plain")
	b, err := exec.Command("go", "build", "-o", out, mainPackage).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, b)
	}
	return out, nil
})

// startPlain runs the plain binary like start does, behind prefix (a
// command such as prlimit, or nothing).
func startPlain(t *testing.T, prefix []string, args ...string) *proc {
	t.Helper()
	bin, err := plainBinary()
	if err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	all := append(append(prefix, bin, "-sensor", "sim", "-period", "100ms", "-listen", addr), args...)
	p := startCmd(t, exec.Command(all[0], all[1:]...), nil)
	p.addr = addr
	p.waitHTTP(t)
	return p
}

// procStatus reads a kB field (VmRSS) of /proc/<pid>/status, in bytes.
func procStatus(t *testing.T, pid int, field string) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

func openFDs(t *testing.T, pid int) int {
	t.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// upgrade does a WebSocket handshake by hand on a new connection.
func upgrade(addr, path string) (net.Conn, error) {
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	req := "GET " + path + " HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
	nc.SetDeadline(time.Now().Add(testutil.Scale(30 * time.Second)))
	if _, err := io.WriteString(nc, req); err != nil {
		nc.Close()
		return nil, err
	}
	// Read exactly the response head: nothing follows on /ws/api until
	// the client asks.
	br := bufio.NewReaderSize(nc, 16)
	resp, err := http.ReadResponse(br, nil)
	if err == nil && resp.StatusCode != http.StatusSwitchingProtocols {
		err = fmt.Errorf("upgrade: %s", resp.Status)
	}
	if err != nil {
		nc.Close()
		return nil, err
	}
	nc.SetDeadline(time.Time{})
	return nc, nil
}

// TestHalfOpenHeadersDoNotPinMemory: 10,000 WebSocket clients each send a
// 14-byte frame header announcing 64 KiB and then nothing. Memory must
// follow the bytes received: together they may add at most 60 MB of RSS
// (each held a zeroed 64 KiB buffer before: 640 MB).
func TestHalfOpenHeadersDoNotPinMemory(t *testing.T) {
	const conns, budget = 10000, 60 << 20
	p := startPlain(t, nil)
	pid := p.cmd.Process.Pid
	before := procStatus(t, pid, "VmRSS")
	fdsBefore := openFDs(t, pid)

	hdr := []byte{0x82, 0x80 | 127}
	hdr = be.BigEndian.AppendUint64(hdr, 64<<10)
	hdr = append(hdr, 1, 2, 3, 4)
	if len(hdr) != 14 {
		t.Fatalf("header of %d bytes", len(hdr))
	}
	held := make([]net.Conn, conns)
	t.Cleanup(func() {
		for _, c := range held {
			if c != nil {
				c.Close()
			}
		}
	})
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 8 {
		wg.Go(func() {
			for i := w; i < conns; i += 8 {
				c, err := upgrade(p.addr, "/ws/api")
				if err == nil {
					_, err = c.Write(hdr)
				}
				if err != nil {
					errs <- fmt.Errorf("connection %d: %w", i, err)
					return
				}
				held[i] = c
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// The daemon holds what it holds once every header has been read:
	// wait until its RSS stops growing (no new high for a second).
	peak, since := procStatus(t, pid, "VmRSS"), time.Now()
	testutil.Until(t, 60*time.Second, func() bool {
		if r := procStatus(t, pid, "VmRSS"); r > peak {
			peak, since = r, time.Now()
		}
		return time.Since(since) > time.Second && peak-before <= budget || peak-before > budget
	}, func() string { return fmt.Sprintf("RSS still growing: %d MB over the start", (peak-before)>>20) })
	fds := openFDs(t, pid)
	t.Logf("%d half-open connections: RSS %d MB -> %d MB (+%d MB, %d B each), fds %d -> %d",
		conns, before>>20, peak>>20, (peak-before)>>20, (peak-before)/conns, fdsBefore, fds)
	if peak-before > budget {
		t.Fatalf("RSS grew by %d MB, want at most %d MB", (peak-before)>>20, budget>>20)
	}
	if fds < conns {
		t.Errorf("daemon has %d fds, want at least %d (every connection held)", fds, conns)
	}
	// And it still serves.
	var h health.Report
	if code := getJSON(t, "http://"+p.addr+"/healthz", &h); code != http.StatusOK || h.Clients["api"] != conns {
		t.Errorf("healthz %d, api clients %d; want 200 and %d", code, h.Clients["api"], conns)
	}
}
