// Package tlscert is the daemon's side of TLS: the server configuration,
// loading -tls-cert and -tls-key with the fingerprint a user compares
// with the browser's, and the self-signed certificate -tls-auto makes.
package tlscert

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
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

// ServerConfig is a modern server configuration: TLS 1.2 and 1.3 with Go's
// default (forward-secret, AEAD) suites and curves, HTTP/1.1 only
// (WebSockets upgrade over it).
func ServerConfig(cert tls.Certificate) *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{cert},
		NextProtos:   []string{"http/1.1"},
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

// SelfSigned returns the certificate and key files in dir, first making a
// self-signed certificate for <host>.local (and <host>) when there is
// none, or when the one there names another host (the name was changed in
// the settings). made reports a new one.
func SelfSigned(dir, host string, now time.Time) (certFile, keyFile string, made bool, err error) {
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	names := []string{host + ".local", host}
	if c, err := tls.LoadX509KeyPair(certFile, keyFile); err == nil && slices.Contains(c.Leaf.DNSNames, names[0]) {
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
	// The key first, each file whole (write then rename): a power cut
	// leaves the old pair or the new, never half of one.
	for _, f := range []struct {
		name, typ string
		b         []byte
	}{{keyFile, "EC PRIVATE KEY", kb}, {certFile, "CERTIFICATE", der}} {
		tmp := f.name + ".new"
		if err := os.WriteFile(tmp, pem.EncodeToMemory(&pem.Block{Type: f.typ, Bytes: f.b}), 0o600); err != nil {
			return "", "", false, fmt.Errorf("tls: %w", err)
		}
		if err := os.Rename(tmp, f.name); err != nil {
			return "", "", false, fmt.Errorf("tls: %w", err)
		}
	}
	return certFile, keyFile, true, nil
}
