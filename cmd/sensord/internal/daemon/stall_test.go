package daemon

// Stalled connections against the real binary over real sockets: a peer
// that opens thousands of connections and never completes a request must
// neither pin the daemon's memory nor lock the door.

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"sensord/internal/testutil"
)

// stall opens n connections to addr, 8 at a time, and sends each payload
// then nothing; the connections are closed when the test ends. Dials that
// fail are counted, not fatal: a daemon at its bound may close a
// connection before the payload is written.
func stall(t *testing.T, addr string, n int, payload []byte) (failed int) {
	t.Helper()
	held := make([]net.Conn, n)
	t.Cleanup(func() {
		for _, c := range held {
			if c != nil {
				c.Close()
			}
		}
	})
	var fails atomic.Int64
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := w; i < n; i += 8 {
				c, err := net.DialTimeout("tcp", addr, testutil.Scale(10*time.Second))
				if err != nil {
					fails.Add(1)
					continue
				}
				c.SetWriteDeadline(time.Now().Add(testutil.Scale(5 * time.Second)))
				c.Write(payload) //nolint:errcheck // an evicted connection may be gone already
				held[i] = c
			}
		})
	}
	wg.Wait()
	return int(fails.Load())
}

// clientHello is the first flight of a real Go TLS client: one record
// holding a ClientHello.
func clientHello(t *testing.T) []byte {
	t.Helper()
	a, b := net.Pipe()
	defer a.Close()
	go tls.Client(b, &tls.Config{ServerName: "sensord.local", InsecureSkipVerify: true}).Handshake() //nolint:errcheck // ends when a closes
	hdr := make([]byte, 5)
	if _, err := io.ReadFull(a, hdr); err != nil {
		t.Fatal(err)
	}
	body := make([]byte, int(hdr[3])<<8|int(hdr[4]))
	if _, err := io.ReadFull(a, body); err != nil {
		t.Fatal(err)
	}
	b.Close()
	return append(hdr, body...)
}

// bigHello is the first n bytes of a ClientHello announcing 65,000 bytes,
// in full-size handshake records: what crypto/tls buffers whole (it
// accepts handshake messages up to 64 KiB) before it can parse it.
func bigHello(n int) []byte {
	msg := 65000
	hs := append([]byte{1, byte(msg >> 16), byte(msg >> 8), byte(msg)}, bytes.Repeat([]byte{0}, msg)...)
	var out []byte
	for len(hs) > 0 {
		k := min(len(hs), 16384)
		out = append(out, 22, 3, 1, byte(k>>8), byte(k))
		out = append(out, hs[:k]...)
		hs = hs[k:]
	}
	return out[:n]
}

// startPlainTLS is startPlain serving HTTPS with a test certificate.
func startPlainTLS(t *testing.T) (*proc, *http.Client) {
	t.Helper()
	bin, err := plainBinary()
	if err != nil {
		t.Fatal(err)
	}
	ca, cert, key := certs(t, t.TempDir(), time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	addr := freeAddr(t)
	p := startCmd(t, exec.Command(bin, "-sensor", "sim", "-period", "100ms", "-listen", addr, "-tls-cert", cert, "-tls-key", key), nil)
	p.addr = addr
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool(t, ca)}}, Timeout: testutil.Scale(10 * time.Second)}
	testutil.Until(t, 30*time.Second, func() bool {
		resp, err := hc.Get("https://" + addr + "/healthz")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil
	}, func() string { return fmt.Sprintf("sensord did not answer https on %s\n%s", addr, p.logs()) })
	return p, hc
}

// TestStalledRequestsOfEachKindStayWithinTheirMemory: 10,000 connections
// of each kind that stop before completing a request add at most 40 MiB
// to the daemon's peak RSS, and /healthz answers while they are held.
func TestStalledRequestsOfEachKindStayWithinTheirMemory(t *testing.T) {
	const conns, budget = 10000, 40 << 20
	hello := clientHello(t)
	for _, kind := range []struct {
		name    string
		tls     bool
		payload func(addr string) []byte
	}{
		{"a body announced and never sent", false, func(addr string) []byte {
			return fmt.Appendf(nil, "GET /healthz HTTP/1.1\r\nHost: %s\r\nContent-Length: 100000\r\n\r\n", addr)
		}},
		{"a header cut in the middle of a line", false, func(addr string) []byte {
			return fmt.Appendf(nil, "GET /healthz HTTP/1.1\r\nHost: %s\r\nUser-Agent: Mozilla/5.0 (X11; Lin", addr)
		}},
		{"a TLS record header", true, func(string) []byte { return []byte{22, 3, 1, 0x40, 0} }},
		{"half a TLS ClientHello", true, func(string) []byte { return hello[:len(hello)/2] }},
		{"most of a 64 KiB ClientHello", true, func(string) []byte { return bigHello(60 << 10) }},
	} {
		t.Run(kind.name, func(t *testing.T) {
			var p *proc
			healthz := func() (int, error) {
				resp, err := http.Get("http://" + p.addr + "/healthz")
				if err != nil {
					return 0, err
				}
				resp.Body.Close()
				return resp.StatusCode, nil
			}
			if kind.tls {
				var hc *http.Client
				p, hc = startPlainTLS(t)
				healthz = func() (int, error) {
					resp, err := hc.Get("https://" + p.addr + "/healthz")
					if err != nil {
						return 0, err
					}
					resp.Body.Close()
					return resp.StatusCode, nil
				}
			} else {
				p = startPlain(t, nil)
			}
			pid := p.cmd.Process.Pid
			before := procStatus(t, pid, "VmRSS")
			failed := stall(t, p.addr, conns, kind.payload(p.addr))
			// Let the daemon take in what was sent: RSS stops growing.
			last, since := procStatus(t, pid, "VmRSS"), time.Now()
			testutil.Until(t, 30*time.Second, func() bool {
				if r := procStatus(t, pid, "VmRSS"); r > last {
					last, since = r, time.Now()
				}
				return time.Since(since) > 500*time.Millisecond
			}, func() string { return "RSS still growing" })
			peak := procStatus(t, pid, "VmHWM")
			code, err := healthz()
			grew := peak - before
			t.Logf("%d stalled (%d dials failed): RSS %d MiB -> peak %d MiB (+%d MiB, %d B per connection)",
				conns, failed, before>>20, peak>>20, grew>>20, grew/conns)
			if grew > budget {
				t.Errorf("peak RSS grew by %d MiB, want at most %d MiB", grew>>20, budget>>20)
			}
			if err != nil || code != http.StatusOK {
				t.Errorf("/healthz while they are held: %d %v", code, err)
			}
		})
	}
}

// TestAtTheBoundStalledConnectionsMakeRoomForNewOnes: under a 1,024
// descriptor limit, 1,100 stalled requests fill the bound; a new /healthz
// and a new /ws/sensors client still get in at once (the stalled ones
// waiting longest are closed for them and counted), and the daemon stays
// under its descriptor limit.
func TestAtTheBoundStalledConnectionsMakeRoomForNewOnes(t *testing.T) {
	const conns, limit = 1100, 1024
	p := startPlain(t, []string{"prlimit", fmt.Sprintf("--nofile=%d:%d", limit, limit)})
	pid := p.cmd.Process.Pid
	stall(t, p.addr, conns, fmt.Appendf(nil, "POST /healthz HTTP/1.1\r\nHost: %s\r\nContent-Length: 1000\r\n\r\n", p.addr))
	if fds := openFDs(t, pid); fds >= limit {
		t.Errorf("daemon has %d fds open, at its limit of %d", fds, limit)
	}
	// Well inside the read timeout: the stalled connections are all
	// still there to be closed by the daemon, none by a timeout.
	hc := &http.Client{Timeout: readTimeout / 3}
	resp, err := hc.Get("http://" + p.addr + "/healthz")
	if err != nil {
		t.Fatalf("/healthz at the bound: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.Contains(b, []byte(`"status"`)) {
		t.Errorf("/healthz at the bound: %d %s", resp.StatusCode, b)
	}
	c := dial(t, "ws://"+p.addr+"/ws/sensors")
	if f := readText(t, c, 10*time.Second); !readingRE.MatchString(f) {
		t.Errorf("new WebSocket at the bound got %q", f)
	}
	resp, err = hc.Get("http://" + p.addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	m := string(b)
	if !strings.Contains(m, "sensord_connections_evicted_total") || strings.Contains(m, "sensord_connections_evicted_total 0\n") {
		t.Errorf("metrics count no evictions:\n%s", m)
	}
	if want := fmt.Sprintf("sensord_connections_max %d\n", limit-fdReserve); !strings.Contains(m, want) {
		t.Errorf("metrics lack %q", want)
	}
	// The WebSocket client opened at the bound is established: a further
	// wave of stalled connections never closes it.
	stall(t, p.addr, conns, []byte("GET / HTTP/1.1\r\n"))
	if f := readText(t, c, 10*time.Second); !readingRE.MatchString(f) {
		t.Errorf("the WebSocket client after another wave got %q", f)
	}
}
