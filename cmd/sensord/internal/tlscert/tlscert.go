// Package tlscert is the daemon's side of TLS: the server configuration,
// loading -tls-cert and -tls-key with the fingerprint a user compares
// with the browser's, and the self-signed certificate -tls-auto makes.
package tlscert

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Curves are the key exchanges a handshake may use, the cheapest first:
// X25519 and P-256 cost a Pi a fraction of P-384 and P-521 (3 to 9 times
// the CPU, see BENCHMARKS.md), which every browser and TLS library also
// offers the first two beside, so a peer cannot make each handshake
// expensive by asking for the others.
var Curves = []tls.CurveID{tls.X25519, tls.CurveP256}

// ServerConfig is a modern server configuration: TLS 1.2 and 1.3 with Go's
// default (forward-secret, AEAD) suites, the key exchanges of Curves only,
// HTTP/1.1 only (WebSockets upgrade over it).
func ServerConfig(cert tls.Certificate) *tls.Config {
	return &tls.Config{
		MinVersion:       tls.VersionTLS12,
		Certificates:     []tls.Certificate{cert},
		CurvePreferences: Curves,
		NextProtos:       []string{"http/1.1"},
	}
}

// Load reads a certificate and key file (-tls-cert, -tls-key), and the
// SHA-256 fingerprint of the leaf certificate (what a user compares the
// browser's with).
func Load(certFile, keyFile string) (tls.Certificate, string, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return cert, "", fmt.Errorf("tls: %w", err)
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return cert, "", fmt.Errorf("tls: %s: %w", certFile, err)
	}
	sum := sha256.Sum256(leaf.Raw)
	return cert, Fingerprint(sum[:]), nil
}

// Fingerprint formats a digest as browsers show it: AB:CD:...
func Fingerprint(b []byte) string {
	parts := make([]string, len(b))
	for i, c := range b {
		parts[i] = strings.ToUpper(hex.EncodeToString([]byte{c}))
	}
	return strings.Join(parts, ":")
}

// lifetime is how long a self-signed certificate is valid. Browsers
// cap the life of publicly trusted certificates, not of one a user chose
// to trust; a short one would make the appliance's name stop working one
// day for no gain. It is remade when the host name changes.
const lifetime = 10 * 365 * 24 * time.Hour

// minRSABits is the weakest RSA key a kept certificate may have.
const minRSABits = 2048

// usable reports why c (loaded from dir) must be remade for names at
// now, or "" when it may be kept: another host name, outside its
// validity (a clock that was wrong when it was made, or ten years on),
// a key weaker than RSA-2048.
func usable(c tls.Certificate, names []string, now time.Time) string {
	switch leaf := c.Leaf; {
	case !slices.Contains(leaf.DNSNames, names[0]):
		return "it names another host"
	case now.Before(leaf.NotBefore):
		return "it is not valid yet"
	case now.After(leaf.NotAfter):
		return "it has expired"
	}
	if k, ok := c.Leaf.PublicKey.(*rsa.PublicKey); ok && k.N.BitLen() < minRSABits {
		return fmt.Sprintf("its RSA key has %d bits, fewer than %d", k.N.BitLen(), minRSABits)
	}
	return ""
}

// SelfSigned returns the certificate and key files in dir, first making a
// self-signed certificate for <host>.local (and <host>) when there is
// none, or when the one there may not be kept (usable: another host name,
// expired or not yet valid, a weak key). made reports a new one. The
// files are replaced whole or not at all: a full or read-only disk
// leaves the old pair (and no temporary file) and returns the error.
func SelfSigned(dir, host string, now time.Time) (certFile, keyFile string, made bool, err error) {
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	names := []string{host + ".local", host}
	if c, err := tls.LoadX509KeyPair(certFile, keyFile); err == nil && usable(c, names, now) == "" {
		return certFile, keyFile, false, nil
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", false, fmt.Errorf("tls: key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return "", "", false, fmt.Errorf("tls: serial: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: names[0], Organization: []string{"sensord appliance (self-signed)"}},
		NotBefore:             now.Add(-time.Hour), // a clock a little behind still accepts it
		NotAfter:              now.Add(lifetime),
		DNSNames:              names,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return "", "", false, fmt.Errorf("tls: certificate: %w", err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return "", "", false, fmt.Errorf("tls: key: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", "", false, fmt.Errorf("tls: %w", err)
	}
	// Both files are written to temporary names and synced before either
	// is renamed over the old pair: a full disk fails before anything is
	// replaced; a power cut between the renames leaves a key without its
	// certificate, which LoadX509KeyPair refuses and the next start
	// remakes.
	keyTmp, err := writeTemp(dir, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}))
	if err != nil {
		return "", "", false, err
	}
	defer os.Remove(keyTmp)
	certTmp, err := writeTemp(dir, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	if err != nil {
		return "", "", false, err
	}
	defer os.Remove(certTmp)
	if err := os.Rename(keyTmp, keyFile); err != nil {
		return "", "", false, fmt.Errorf("tls: %w", err)
	}
	if err := os.Rename(certTmp, certFile); err != nil {
		return "", "", false, fmt.Errorf("tls: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync() //nolint:errcheck // the renames are done; a failed directory sync only risks them at a power cut
		d.Close()
	}
	return certFile, keyFile, true, nil
}

// writeTemp writes b to a new temporary file in dir, synced; on any error
// the file is removed.
func writeTemp(dir string, b []byte) (name string, err error) {
	f, err := os.CreateTemp(dir, ".tls-*.new")
	if err != nil {
		return "", fmt.Errorf("tls: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err := f.Chmod(0o600); err != nil {
		return "", fmt.Errorf("tls: %w", err)
	}
	if _, err := f.Write(b); err != nil {
		return "", fmt.Errorf("tls: %w", err)
	}
	if err := f.Sync(); err != nil {
		return "", fmt.Errorf("tls: %w", err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("tls: %w", err)
	}
	return f.Name(), nil
}
