package daemon

// The front door of the real binary against real clients: secrets in
// -url, TLS with Go's and Python's clients, activated sockets. The token
// check, the Host allow-list and the WebSocket handshake's edges are
// handlers' answers, tested in-process in routes_test.go.

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"sensord/cmd/sensord/internal/health"
	"sensord/internal/testutil"
)

func get(t *testing.T, c *http.Client, url string, hdr ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i] == "Host" {
			req.Host = hdr[i+1]
			continue
		}
		req.Header.Set(hdr[i], hdr[i+1])
	}
	if c == nil {
		c = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}

func TestClientModeRedactsTheURLAndSendsUserinfoAsBasic(t *testing.T) {
	t.Parallel()
	auth := make(chan string, 16)
	up := websocket.Upgrader{}
	remote := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case auth <- r.Header.Get("Authorization") + " " + r.URL.RawQuery:
		default:
		}
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		for {
			if _, _, err := c.ReadMessage(); err != nil {
				return
			}
		}
	}))
	defer remote.Close()
	u := "ws://node:pa55word@" + strings.TrimPrefix(remote.URL, "http://") + "/ws/in?apikey=k3y"
	p := start(t, nil, "-mode", "client", "-url", u)
	select {
	case got := <-auth:
		want := "Basic " + base64.StdEncoding.EncodeToString([]byte("node:pa55word")) + " apikey=k3y"
		if got != want {
			t.Errorf("remote got %q, want %q", got, want)
		}
	case <-time.After(testutil.Scale(10 * time.Second)):
		t.Fatal("the remote was never dialled")
	}
	var h health.Report
	testutil.Until(t, 10*time.Second, func() bool {
		getJSON(t, "http://"+p.addr+"/healthz", &h)
		return h.Client != nil && h.Client.State == "connected"
	}, func() string { return fmt.Sprintf("client mode not connected: %+v", h.Client) })
	for _, where := range []string{h.Client.URL, p.logs()} {
		if strings.Contains(where, "pa55word") || strings.Contains(where, "k3y") || strings.Contains(where, "node") {
			t.Errorf("a secret of -url is shown: %q", where)
		}
	}
	if !strings.Contains(h.Client.URL, "apikey=REDACTED") {
		t.Errorf("healthz url %q does not say which query key was set", h.Client.URL)
	}
}

// certs makes a CA and a server certificate for 127.0.0.1 and localhost
// signed by it, valid from notBefore to notAfter; it writes the CA, the
// certificate and the key as PEM files in dir.
func certs(t *testing.T, dir string, notBefore, notAfter time.Time) (caFile, certFile, keyFile string) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ca := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "sensord test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ = x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: notBefore, NotAfter: notAfter,
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, leaf, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	write := func(name, typ string, b []byte) string {
		f := filepath.Join(dir, name)
		if err := os.WriteFile(f, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}), 0o600); err != nil {
			t.Fatal(err)
		}
		return f
	}
	return write("ca.pem", "CERTIFICATE", caDER), write("cert.pem", "CERTIFICATE", der), write("key.pem", "EC PRIVATE KEY", kb)
}

func pool(t *testing.T, caFile string) *x509.CertPool {
	b, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	p := x509.NewCertPool()
	p.AppendCertsFromPEM(b)
	return p
}

// startTLS runs sensord serving HTTPS on a free port.
func startTLS(t *testing.T, caFile string, args ...string) *proc {
	t.Helper()
	addr := freeAddr(t)
	all := append([]string{"-sensor", "sim", "-period", "100ms", "-listen", addr}, args...)
	p := startCmd(t, exec.Command(binary, all...), nil)
	p.addr = addr
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool(t, caFile)}}}
	testutil.Until(t, 15*time.Second, func() bool {
		resp, err := hc.Get("https://" + addr + "/healthz")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil
	}, func() string { return fmt.Sprintf("sensord did not answer https on %s\n%s", addr, p.logs()) })
	return p
}

func TestTLSServesHTTPSAndWSSToRealClients(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	caFile, certFile, keyFile := certs(t, dir, time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour))
	p := startTLS(t, caFile, "-tls-cert", certFile, "-tls-key", keyFile, "-token", "s3cret")
	good := &tls.Config{RootCAs: pool(t, caFile)}

	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: good}}
	resp, body := get(t, hc, "https://"+p.addr+"/healthz", "Authorization", "Bearer s3cret")
	if resp.StatusCode != http.StatusOK || resp.TLS == nil || resp.TLS.Version < tls.VersionTLS12 {
		t.Fatalf("https /healthz: %d %v %s", resp.StatusCode, resp.TLS, body)
	}
	if !strings.Contains(body, `"tls_fingerprint":"`) {
		t.Errorf("healthz does not show the certificate's fingerprint: %s", body)
	}
	d := websocket.Dialer{TLSClientConfig: good}
	c, _, err := d.Dial("wss://"+p.addr+"/ws/sensors?access_token=s3cret", nil)
	if err != nil {
		t.Fatalf("wss with Go: %v", err)
	}
	defer c.Close()
	if f := readText(t, c, 10*time.Second); !readingRE.MatchString(f) {
		t.Errorf("wss reading %q", f)
	}

	// Python's websockets, through Python's own TLS stack.
	py := `
import asyncio, ssl, sys, websockets
async def main():
    ctx = ssl.create_default_context(cafile=sys.argv[2])
    async with websockets.connect(sys.argv[1], ssl=ctx, open_timeout=30) as ws:
        print(await asyncio.wait_for(ws.recv(), 30))
asyncio.run(main())
`
	out, err := exec.Command("/usr/bin/python3", "-c", py, "wss://127.0.0.1:"+strings.Split(p.addr, ":")[1]+"/ws/sensors?access_token=s3cret", caFile).CombinedOutput()
	if err != nil || !readingRE.MatchString(strings.TrimSpace(string(out))) {
		t.Errorf("python websockets over wss: %v\n%s", err, out)
	}

	t.Run("a client with another CA refuses it", func(t *testing.T) {
		otherCA, _, _ := certs(t, t.TempDir(), time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
		d := websocket.Dialer{TLSClientConfig: &tls.Config{RootCAs: pool(t, otherCA)}}
		_, _, err := d.Dial("wss://"+p.addr+"/ws/sensors?access_token=s3cret", nil)
		if err == nil || !strings.Contains(err.Error(), "certificate") {
			t.Fatalf("dial with a wrong CA: %v, want a certificate error", err)
		}
	})
	t.Run("plain http to the TLS port gets nothing", func(t *testing.T) {
		resp, err := http.Get("http://" + p.addr + "/healthz")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if strings.Contains(string(b), "status") {
				t.Fatalf("plain HTTP answered on the TLS port: %s", b)
			}
		}
	})
}

func TestTLSWithAnExpiredCertificateIsRefusedByClients(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	caFile, certFile, keyFile := certs(t, dir, time.Now().Add(-48*time.Hour), time.Now().Add(-24*time.Hour))
	addr := freeAddr(t)
	p := startCmd(t, exec.Command(binary, "-sensor", "sim", "-listen", addr, "-tls-cert", certFile, "-tls-key", keyFile), nil)
	d := websocket.Dialer{TLSClientConfig: &tls.Config{RootCAs: pool(t, caFile)}}
	var err error
	testutil.Until(t, 15*time.Second, func() bool {
		_, _, err = d.Dial("wss://"+addr+"/ws/sensors", nil)
		return err != nil && strings.Contains(err.Error(), "expired")
	}, func() string { return fmt.Sprintf("dial: %v, want an expired-certificate error\n%s", err, p.logs()) })
}

func TestClientModeDialsWSSWithTheCAFile(t *testing.T) {
	t.Parallel()
	got := make(chan string, 16)
	remote := httptest.NewTLSServer(collector(got))
	defer remote.Close()
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: remote.Certificate().Raw}), 0o600)
	url := "wss" + strings.TrimPrefix(remote.URL, "https") + "/ws/in"
	start(t, nil, "-mode", "client", "-url", url, "-url-ca", caFile)
	select {
	case f := <-got:
		if !readingRE.MatchString(f) {
			t.Errorf("remote got %q", f)
		}
	case <-time.After(testutil.Scale(15 * time.Second)):
		t.Fatal("the wss remote got no reading")
	}

	// Without the CA file the system's roots do not know the test CA.
	p := start(t, nil, "-mode", "client", "-url", url)
	var h health.Report
	testutil.Until(t, 15*time.Second, func() bool {
		getJSON(t, "http://"+p.addr+"/healthz", &h)
		return h.Client != nil && strings.Contains(h.Client.Reason, "certificate")
	}, func() string {
		return fmt.Sprintf("client mode without the CA: %+v, want a certificate error", h.Client)
	})
}

// inherit makes a listening socket for a child and returns its file and
// address.
func inherit(t *testing.T) (*os.File, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f, err := ln.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	t.Cleanup(func() { f.Close() })
	return f, ln.Addr().String()
}

// With two sockets from systemd (sensord.socket's 80 and 443) and a
// certificate, the first serves plain HTTP (a redirect with
// -https-redirect) and the second HTTPS and wss.
func TestTwoActivatedSocketsServeHTTPAndHTTPS(t *testing.T) {
	t.Parallel()
	caFile, certFile, keyFile := certs(t, t.TempDir(), time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour))
	for _, redirect := range []bool{false, true} {
		t.Run(fmt.Sprintf("https-redirect=%v", redirect), func(t *testing.T) {
			plain, plainAddr := inherit(t)
			secure, secureAddr := inherit(t)
			cmd := exec.Command("/bin/sh", "-c", `LISTEN_PID=$$ LISTEN_FDS=2 exec "$0" "$@"`,
				binary, "-sensor", "sim", "-period", "100ms", "-listen", freeAddr(t),
				"-tls-cert", certFile, "-tls-key", keyFile, fmt.Sprintf("-https-redirect=%v", redirect))
			cmd.ExtraFiles = []*os.File{plain, secure}
			p := startCmd(t, cmd, nil)
			p.addr = plainAddr
			hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool(t, caFile)}}}
			testutil.Until(t, 15*time.Second, func() bool {
				resp, err := hc.Get("https://" + secureAddr + "/healthz")
				if err == nil {
					resp.Body.Close()
				}
				return err == nil
			}, func() string { return "no https answer\n" + p.logs() })
			if resp, body := get(t, hc, "https://"+secureAddr+"/healthz"); resp.StatusCode != http.StatusOK {
				t.Errorf("https on the second socket: %d %s", resp.StatusCode, body)
			}
			resp, _ := get(t, nil, "http://"+plainAddr+"/api/history?x=1")
			want := "https://127.0.0.1:" + strings.Split(secureAddr, ":")[1] + "/api/history?x=1"
			switch {
			case redirect && (resp.StatusCode != http.StatusPermanentRedirect || resp.Header.Get("Location") != want):
				t.Errorf("plain with redirect: %d to %q, want 308 to %q", resp.StatusCode, resp.Header.Get("Location"), want)
			case !redirect && resp.StatusCode != http.StatusOK:
				t.Errorf("plain without redirect: %d, want 200", resp.StatusCode)
			}
		})
	}
}

// The image's first boot: -tls-auto makes a self-signed certificate for
// <hostname>.local, logs its fingerprint, serves it, and keeps it.
func TestTLSAutoMakesASelfSignedCertificateAndKeepsIt(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "tls")
	host, _ := os.Hostname()
	var first string
	for run := range 2 {
		addr := freeAddr(t)
		p := startCmd(t, exec.Command(binary, "-sensor", "sim", "-listen", addr, "-tls-auto", dir), nil)
		var conf *tls.Config
		testutil.Until(t, 15*time.Second, func() bool {
			if _, err := os.Stat(filepath.Join(dir, "cert.pem")); err != nil {
				return false
			}
			conf = &tls.Config{RootCAs: pool(t, filepath.Join(dir, "cert.pem")), ServerName: host + ".local"}
			c, err := tls.Dial("tcp", addr, conf)
			if err == nil {
				c.Close()
			}
			return err == nil
		}, func() string { return "no TLS with the self-signed certificate\n" + p.logs() })
		hc := &http.Client{Transport: &http.Transport{TLSClientConfig: conf}}
		var h health.Report
		resp, body := get(t, hc, "https://"+addr+"/healthz")
		if err := json.Unmarshal([]byte(body), &h); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("healthz %d %s", resp.StatusCode, body)
		}
		if h.TLSFingerprint == "" || !strings.Contains(p.logs(), h.TLSFingerprint) {
			t.Errorf("fingerprint %q not in the log:\n%s", h.TLSFingerprint, p.logs())
		}
		if made := strings.Contains(p.logs(), "made a self-signed certificate"); made != (run == 0) {
			t.Errorf("run %d: made a certificate: %v", run, made)
		}
		if run == 0 {
			first = h.TLSFingerprint
		} else if h.TLSFingerprint != first {
			t.Errorf("second start serves %s, want the kept %s", h.TLSFingerprint, first)
		}
		p.stop(t, syscall.SIGTERM)
	}
}

// TestTLSAutoOnAReadOnlyDiskServesPlainHTTPAndSaysSo: with nowhere to
// write a certificate, sensord starts anyway, serves plain HTTP, warns on
// /healthz, and leaves no file behind.
func TestTLSAutoOnAReadOnlyDiskServesPlainHTTPAndSaysSo(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "tls")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("chattr", "+i", dir).CombinedOutput(); err != nil {
		t.Fatalf("chattr +i (e2fsprogs): %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("chattr", "-i", dir).Run() })
	addr := freeAddr(t)
	p := startCmd(t, exec.Command(binary, "-sensor", "sim", "-listen", addr, "-tls-auto", dir), nil)
	p.addr = addr
	p.waitHTTP(t)
	var h health.Report
	getJSON(t, "http://"+addr+"/healthz", &h)
	if !strings.Contains(strings.Join(h.Warnings, "\n"), "tls-auto") || h.TLSFingerprint != "" {
		t.Errorf("healthz warnings %q, fingerprint %q; want a tls-auto warning and no TLS", h.Warnings, h.TLSFingerprint)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("files left in the read-only directory: %v", ents)
	}
}

// make run with the port taken: the failure says why, with the port-80
// hint only for a privileged port, and no dashboard URL is printed for a
// server that is not there.
func TestABindThatFailsSaysWhyAndPrintsNoURL(t *testing.T) {
	t.Parallel()
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	out, err := exec.Command(binary, "-sensor", "sim", "-listen", taken.Addr().String()).CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("exit %v, want 1\n%s", err, out)
	}
	if !strings.Contains(string(out), "address already in use") || !strings.Contains(string(out), "another sensord") ||
		strings.Contains(string(out), "dashboard") ||
		strings.Contains(string(out), "1024") || strings.Contains(string(out), "port 80") {
		t.Errorf("want the bind error, no URL and no privileged-port hint:\n%s", out)
	}
	for addr, hint := range map[string]bool{":80": true, "127.0.0.1:443": true, ":8080": false, "[::1]:1024": false} {
		if got := strings.Contains(listenError(addr, syscall.EACCES).Error(), "below 1024"); got != hint {
			t.Errorf("listenError(%s): hint %v, want %v", addr, got, hint)
		}
	}
}

func TestBadFrontDoorFlagsExitTwoNamingTheFlag(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-tls-cert", "c.pem"}, "-tls-cert"},
		{[]string{"-tls-key", "k.pem"}, "-tls-key"},
		{[]string{"-mode", "client", "-url", "ws://h/", "-url-ca", "ca.pem"}, "-url-ca"},
		{[]string{"-allowed-hosts", "a,,b"}, "-allowed-hosts"},
	} {
		cmd := exec.Command(binary, append([]string{"-sensor", "sim"}, tc.args...)...)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		err := cmd.Run()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.HasPrefix(stderr.String(), "sensord: "+tc.want) {
			t.Errorf("%q: %v, stderr %q; want exit 2 naming %s", tc.args, err, stderr.String(), tc.want)
		}
	}
}
