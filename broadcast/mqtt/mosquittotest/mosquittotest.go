// Package mosquittotest runs a real Mosquitto broker for tests: it writes a
// config into the test's temporary directory, starts Debian's mosquitto on
// a free loopback port and stops it by PID when the test ends. Tests use it
// instead of a fake, so what they prove holds against the broker users run.
package mosquittotest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Binary is Debian's broker (package mosquitto); PasswdTool makes its
// password file.
const (
	Binary     = "/usr/sbin/mosquitto"
	PasswdTool = "/usr/bin/mosquitto_passwd"
)

// startWait bounds how long a broker may take to accept connections, long
// enough for a loaded test machine.
const startWait = 20 * time.Second

// Opts configures a broker. The zero value is an anonymous plain-TCP broker.
type Opts struct {
	Users map[string]string // user -> password; set: anonymous clients are refused
	TLS   bool              // serve MQTT over TLS with a CA made for the test
}

// Broker is one running (or stopped) Mosquitto.
type Broker struct {
	t      testing.TB
	dir    string
	conf   string
	Port   string
	CAFile string // PEM of the test CA, with TLS
	CAPool *x509.CertPool

	mu   sync.Mutex // guards cmd, log, done
	cmd  *exec.Cmd
	log  *bytes.Buffer
	done chan struct{}
}

// Start writes the config and starts the broker; it is stopped at cleanup.
func Start(t testing.TB, o Opts) *Broker {
	t.Helper()
	if _, err := os.Stat(Binary); err != nil {
		t.Fatalf("mosquittotest: %v (make test-deps installs Debian's mosquitto)", err)
	}
	b := &Broker{t: t, dir: t.TempDir(), Port: freePort(t)}
	var conf strings.Builder
	fmt.Fprintf(&conf, "per_listener_settings false\npersistence false\nlog_dest stderr\nlog_type error\nlog_type warning\nlog_type notice\nlog_timestamp false\n")
	if os.Geteuid() == 0 {
		// As root, mosquitto would switch to user mosquitto, which cannot
		// read the files in the test's private directory.
		conf.WriteString("user root\n")
	}
	fmt.Fprintf(&conf, "listener %s 127.0.0.1\n", b.Port)
	if o.TLS {
		b.makeCerts(t)
		fmt.Fprintf(&conf, "cafile %s\ncertfile %s\nkeyfile %s\n", b.CAFile, filepath.Join(b.dir, "server.pem"), filepath.Join(b.dir, "server.key"))
	}
	if len(o.Users) > 0 {
		pw := filepath.Join(b.dir, "passwd")
		for u, p := range o.Users {
			args := []string{"-b", pw, u, p}
			if _, err := os.Stat(pw); err != nil {
				args = append([]string{"-c"}, args...)
			}
			if out, err := exec.Command(PasswdTool, args...).CombinedOutput(); err != nil {
				t.Fatalf("mosquittotest: mosquitto_passwd: %v\n%s", err, out)
			}
		}
		fmt.Fprintf(&conf, "allow_anonymous false\npassword_file %s\n", pw)
	} else {
		fmt.Fprintf(&conf, "allow_anonymous true\n")
	}
	b.conf = filepath.Join(b.dir, "mosquitto.conf")
	if err := os.WriteFile(b.conf, []byte(conf.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	b.Start()
	t.Cleanup(b.Stop)
	return b
}

// Addr is 127.0.0.1:port.
func (b *Broker) Addr() string { return net.JoinHostPort("127.0.0.1", b.Port) }

// URL is the broker's mqtt:// (or, with TLS, mqtts://localhost) URL.
func (b *Broker) URL() string {
	if b.CAFile != "" {
		return "mqtts://localhost:" + b.Port
	}
	return "mqtt://" + b.Addr()
}

// Start starts a stopped broker again on the same port and config and waits
// until it accepts connections.
func (b *Broker) Start() {
	b.t.Helper()
	b.mu.Lock()
	if b.cmd != nil {
		b.mu.Unlock()
		return
	}
	cmd := exec.Command(Binary, "-c", b.conf)
	log := &bytes.Buffer{}
	cmd.Stdout, cmd.Stderr = syncWriter{&b.mu, log}, syncWriter{&b.mu, log}
	if err := cmd.Start(); err != nil {
		b.mu.Unlock()
		b.t.Fatalf("mosquittotest: start: %v", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	b.cmd, b.log, b.done = cmd, log, done
	b.mu.Unlock()

	deadline := time.Now().Add(startWait)
	for {
		c, err := net.DialTimeout("tcp", b.Addr(), time.Second)
		if err == nil {
			c.Close()
			return
		}
		select {
		case <-done:
			b.t.Fatalf("mosquittotest: broker exited at start:\n%s", b.Log())
		default:
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("mosquittotest: broker not accepting on %s after %s:\n%s", b.Addr(), startWait, b.Log())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop ends the broker by PID (SIGTERM, then SIGKILL) and waits for it.
func (b *Broker) Stop() {
	b.mu.Lock()
	cmd, done := b.cmd, b.done
	b.cmd = nil
	b.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(syscall.SIGCONT) // a paused broker must see the SIGTERM
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		<-done
	}
}

// PID is the running broker's process id, 0 when stopped.
func (b *Broker) PID() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cmd == nil {
		return 0
	}
	return b.cmd.Process.Pid
}

// Log is what the broker wrote so far.
func (b *Broker) Log() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.log == nil {
		return ""
	}
	return b.log.String()
}

type syncWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func freePort(t testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}

// makeCerts writes a CA and a server certificate for localhost and
// 127.0.0.1, signed by it.
func (b *Broker) makeCerts(t testing.TB) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	ca := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "sensord test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	srvKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	srv := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "localhost"},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	srvDER, err := x509.CreateCertificate(rand.Reader, srv, caCert, &srvKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(srvKey)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(b.dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	b.CAFile = write("ca.pem", "CERTIFICATE", caDER)
	write("server.pem", "CERTIFICATE", srvDER)
	write("server.key", "EC PRIVATE KEY", keyDER)
	b.CAPool = x509.NewCertPool()
	b.CAPool.AddCert(caCert)
}

// Pause stops the broker process (SIGSTOP) without closing its sockets:
// a broker that accepts bytes and never answers, the worst kind of slow.
// Resume continues it.
func (b *Broker) Pause()  { b.signal(syscall.SIGSTOP) }
func (b *Broker) Resume() { b.signal(syscall.SIGCONT) }

func (b *Broker) signal(s syscall.Signal) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cmd != nil {
		b.cmd.Process.Signal(s)
	}
}
