package tlscert

import (
	"crypto/ecdh"
	"crypto/rand"
	"crypto/tls"
	"net"
	"testing"
	"time"
)

// BenchmarkHandshake is one full TLS 1.3 handshake (ECDSA P-256
// certificate) per key-exchange group, client and server over net.Pipe:
// compare each group's ns/op with X25519's in the same run. Curves keeps
// the first two; the others are what it refuses.
func BenchmarkHandshake(b *testing.B) {
	certFile, keyFile, _, err := SelfSigned(b.TempDir(), "bench", time.Now())
	if err != nil {
		b.Fatal(err)
	}
	cert, _, err := Load(certFile, keyFile)
	if err != nil {
		b.Fatal(err)
	}
	for _, g := range []struct {
		name  string
		curve tls.CurveID
	}{{"X25519", tls.X25519}, {"P-256", tls.CurveP256}, {"P-384", tls.CurveP384}, {"P-521", tls.CurveP521}} {
		b.Run(g.name, func(b *testing.B) {
			b.ReportAllocs()
			server := ServerConfig(cert)
			server.CurvePreferences = []tls.CurveID{g.curve}
			client := &tls.Config{InsecureSkipVerify: true, CurvePreferences: []tls.CurveID{g.curve}, MinVersion: tls.VersionTLS13}
			for b.Loop() {
				c, s := net.Pipe()
				errs := make(chan error, 1)
				go func() { errs <- tls.Server(s, server).Handshake() }()
				if err := tls.Client(c, client).Handshake(); err != nil {
					b.Fatal(err)
				}
				if err := <-errs; err != nil {
					b.Fatal(err)
				}
				c.Close()
				s.Close()
			}
		})
	}
}

// BenchmarkKeyExchange is the server's own key-exchange work in one
// handshake, per group: a key pair and the shared secret with the
// client's share. Compare with X25519 in the same run.
func BenchmarkKeyExchange(b *testing.B) {
	for _, g := range []struct {
		name  string
		curve ecdh.Curve
	}{{"X25519", ecdh.X25519()}, {"P-256", ecdh.P256()}, {"P-384", ecdh.P384()}, {"P-521", ecdh.P521()}} {
		b.Run(g.name, func(b *testing.B) {
			b.ReportAllocs()
			peer, err := g.curve.GenerateKey(rand.Reader)
			if err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				k, err := g.curve.GenerateKey(rand.Reader)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := k.ECDH(peer.PublicKey()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
