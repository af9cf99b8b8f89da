package main

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"sensord/image/settings"
)

// checkTLS proves the first boot's certificate: port 443 (sensord.socket's
// second listener) speaks TLS with a self-signed certificate for
// <HOSTNAME>.local, whose SHA-256 fingerprint the journal and /healthz
// show, so a user can compare it with what the browser says.
func (t *rig) checkTLS(ctx context.Context) {
	// Self-signed: nothing to verify against but the fingerprint itself,
	// which is what this check compares.
	conf := &tls.Config{InsecureSkipVerify: true, ServerName: settings.BootTestHostname + ".local"}
	d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 20 * time.Second}, Config: conf}
	var state tls.ConnectionState
	var err error
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); {
		var c net.Conn
		if c, err = d.DialContext(ctx, "tcp", fmt.Sprintf("127.0.0.1:%d", t.tlsPort)); err == nil {
			state = c.(*tls.Conn).ConnectionState()
			c.Close()
			break
		}
		time.Sleep(2 * time.Second) // the guest's own pace; nothing to wait on from here
	}
	if !t.Check(err == nil, "port 443 speaks TLS (%v)", err) {
		return
	}
	leaf := state.PeerCertificates[0]
	sum := sha256.Sum256(leaf.Raw)
	parts := make([]string, len(sum))
	for i, b := range sum {
		parts[i] = strings.ToUpper(hex.EncodeToString([]byte{b}))
	}
	fp := strings.Join(parts, ":")
	want := settings.BootTestHostname + ".local"
	t.Check(slices.Contains(leaf.DNSNames, want) && state.Version >= tls.VersionTLS12,
		"the certificate on 443 is for %s (names %q, TLS version %x)", want, leaf.DNSNames, state.Version)

	r, ok := t.guest(ctx, "journalctl -b -u sensord -o cat | grep -o 'sha256=[0-9A-F:]*' | tail -n 1")
	if ok {
		t.Check(r.Has("sha256="+fp), "the journal shows the certificate's fingerprint %s: %q", fp, strings.Join(r.Lines(), " "))
	}
	resp, err := (&http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{TLSClientConfig: conf}}).
		Get(fmt.Sprintf("https://127.0.0.1:%d/healthz", t.tlsPort))
	if !t.Check(err == nil, "GET https://.../healthz (%v)", err) {
		return
	}
	defer resp.Body.Close()
	var h struct {
		TLSFingerprint string `json:"tls_fingerprint"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&h)
	t.Check(h.TLSFingerprint == fp, "/healthz over https shows the fingerprint: %q", h.TLSFingerprint)
}
