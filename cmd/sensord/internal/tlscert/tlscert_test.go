package tlscert

import (
	"crypto/sha256"
	"crypto/tls"
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
