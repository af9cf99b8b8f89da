package tlscert

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestSelfSignedIsRemadeForANewHostName(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	cert, _, made, err := SelfSigned(dir, "sensord", now)
	if err != nil || !made {
		t.Fatalf("first: made %v, %v", made, err)
	}
	if _, _, made, _ := SelfSigned(dir, "sensord", now); made {
		t.Error("made again for the same name")
	}
	if _, _, made, _ := SelfSigned(dir, "kitchen", now); !made {
		t.Error("kept the certificate of another host name")
	}
	c, err := tls.LoadX509KeyPair(cert, filepath.Join(dir, "key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Leaf.DNSNames; len(got) != 2 || got[0] != "kitchen.local" || got[1] != "kitchen" {
		t.Errorf("names %q", got)
	}
}

func TestLoadGivesTheFingerprintBrowsersShow(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, _, err := SelfSigned(dir, "sensord", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	cert, fp, err := Load(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(cert.Certificate[0])
	if fp != Fingerprint(sum[:]) || len(fp) != 32*3-1 || strings.ToUpper(fp) != fp || strings.Count(fp, ":") != 31 {
		t.Errorf("fingerprint %q", fp)
	}
	if _, _, err := Load(filepath.Join(dir, "none.pem"), keyFile); err == nil || !strings.HasPrefix(err.Error(), "tls: ") {
		t.Errorf("a missing file: %v, want a tls: error", err)
	}
	if c := ServerConfig(cert); c.MinVersion != tls.VersionTLS12 || len(c.NextProtos) != 1 || c.NextProtos[0] != "http/1.1" {
		t.Errorf("server config %+v", c)
	}
}

func TestFingerprintIsUpperHexPairs(t *testing.T) {
	if got := Fingerprint([]byte{0xab, 0x01, 0xff}); got != "AB:01:FF" {
		t.Errorf("Fingerprint = %q", got)
	}
}

// writeRSAPair writes a self-signed certificate for host.local with an
// RSA key of bits, valid from notBefore to notAfter.
func writeRSAPair(t *testing.T, dir, host string, bits int, notBefore, notAfter time.Time) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), NotBefore: notBefore, NotAfter: notAfter, DNSNames: []string{host + ".local", host}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "cert.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(filepath.Join(dir, "key.pem"), pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}), 0o600)
}

func TestSelfSignedIsRemadeWhenExpiredNotYetValidOrWeak(t *testing.T) {
	now := time.Now()
	for _, tc := range []struct {
		name                string
		bits                int
		notBefore, notAfter time.Time
		remade              bool
	}{
		{"an expired one is remade", 2048, now.Add(-48 * time.Hour), now.Add(-time.Hour), true},
		{"one not valid yet is remade", 2048, now.Add(time.Hour), now.Add(48 * time.Hour), true},
		{"an RSA-1024 key is remade", 1024, now.Add(-time.Hour), now.Add(time.Hour), true},
		{"a valid RSA-2048 one is kept", 2048, now.Add(-time.Hour), now.Add(time.Hour), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writeRSAPair(t, dir, "sensord", tc.bits, tc.notBefore, tc.notAfter)
			certFile, keyFile, made, err := SelfSigned(dir, "sensord", now)
			if err != nil || made != tc.remade {
				t.Fatalf("made %v, %v; want made %v", made, err, tc.remade)
			}
			c, err := tls.LoadX509KeyPair(certFile, keyFile)
			if err != nil {
				t.Fatal(err)
			}
			if reason := usable(c, []string{"sensord.local"}, now); reason != "" {
				t.Errorf("the certificate in use may not be kept: %s", reason)
			}
		})
	}
}

func TestSelfSignedOnAReadOnlyDirectoryKeepsTheOldPairAndLeavesNoTemporaryFile(t *testing.T) {
	if os.Geteuid() == 0 {
		// root writes through permissions: a read-only bind of the
		// directory would need a mount namespace; chattr +i does the same.
		if _, err := exec.LookPath("chattr"); err != nil {
			t.Fatalf("chattr: %v (e2fsprogs)", err)
		}
	}
	dir := t.TempDir()
	now := time.Now()
	writeRSAPair(t, dir, "sensord", 2048, now.Add(-48*time.Hour), now.Add(-time.Hour)) // expired: must be remade
	before, _ := os.ReadFile(filepath.Join(dir, "cert.pem"))
	readOnly(t, dir)
	if _, _, _, err := SelfSigned(dir, "sensord", now); err == nil {
		t.Fatal("no error on a read-only directory")
	}
	after, _ := os.ReadFile(filepath.Join(dir, "cert.pem"))
	if !bytes.Equal(before, after) {
		t.Error("the old certificate was changed")
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 2 {
		t.Errorf("files left: %v, want cert.pem and key.pem only", ents)
	}
}

// readOnly makes dir unwritable for this process until the test ends.
func readOnly(t *testing.T, dir string) {
	t.Helper()
	if os.Geteuid() != 0 {
		os.Chmod(dir, 0o500)
		t.Cleanup(func() { os.Chmod(dir, 0o700) })
		return
	}
	if out, err := exec.Command("chattr", "+i", dir).CombinedOutput(); err != nil {
		t.Fatalf("chattr +i: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("chattr", "-i", dir).Run() })
}

func TestServerConfigOffersOnlyTheCheapKeyExchanges(t *testing.T) {
	certFile, keyFile, _, err := SelfSigned(t.TempDir(), "sensord", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	cert, _, err := Load(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		curve tls.CurveID
		ok    bool
	}{{tls.X25519, true}, {tls.CurveP256, true}, {tls.CurveP384, false}, {tls.CurveP521, false}} {
		for _, version := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
			c, s := net.Pipe()
			errs := make(chan error, 1)
			go func() { errs <- tls.Server(s, ServerConfig(cert)).Handshake(); s.Close() }()
			err := tls.Client(c, &tls.Config{InsecureSkipVerify: true, CurvePreferences: []tls.CurveID{tc.curve}, MinVersion: version, MaxVersion: version}).Handshake()
			c.Close()
			<-errs
			if (err == nil) != tc.ok {
				t.Errorf("a client offering only %v over TLS %x: handshake error %v, want success %v", tc.curve, version, err, tc.ok)
			}
		}
	}
}
