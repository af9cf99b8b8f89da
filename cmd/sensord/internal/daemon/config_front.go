package daemon

// The front door's flags and their rules: where sensord listens, who may
// read and who may write, which hosts and origins a browser may use, TLS.

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"

	"sensord/cmd/sensord/internal/flagenv"
)

// frontSettings defines the front door's flags.
func (c *Config) frontSettings(s *flagenv.Set) {
	s.Var(flagenv.Text{P: &c.Listen, Default: ":80", Check: checkListen}, "listen", "HTTP and WebSocket listen address (ignored when systemd passes a socket)")
	s.Var(flagenv.Text{P: &c.Token}, "token", "bearer token every endpoint requires (empty: none)").Show = secret
	s.Var(flagenv.Text{P: &c.OwnerToken, Check: checkOwnerToken}, "owner-token", "the owner's bearer token: needed to change anything (update uploads, pushes) and grants all -token grants (empty: writing is off)").Show = secret
	s.Var(flagenv.Text{P: &c.AllowedHosts, Check: checkAllowedHosts}, "allowed-hosts", "comma-separated host names (and addresses) the Host header may carry, against DNS rebinding (empty: any)")
	s.Var(flagenv.Text{P: &c.TLSCert}, "tls-cert", "PEM certificate (chain) file: serve HTTPS and wss:// (with -tls-key)")
	s.Var(flagenv.Text{P: &c.TLSKey}, "tls-key", "PEM private key file of -tls-cert")
	s.Var(flagenv.Text{P: &c.TLSAuto}, "tls-auto", "without -tls-cert: serve HTTPS with a self-signed certificate for <hostname>.local kept in this directory (made at first start)")
	s.Var(flagenv.Bool{P: &c.HTTPSRedirect}, "https-redirect", "with -tls-cert and a second (plain) listener: answer plain HTTP with a redirect to https")
	s.Var(flagenv.Text{P: &c.FrameAncestors, Check: checkFrameAncestors}, "frame-ancestors", "origins allowed to embed the dashboard in a frame, e.g. http://homeassistant.local:8123 (empty: none)")
}

// checkListen refuses at parse time what net.Listen would refuse only
// when the daemon binds: a missing or non-numeric port, one out of range,
// a host that is neither an address nor a host name.
func checkListen(v string) error {
	const example = " (for example :80 or 127.0.0.1:8080)"
	host, port, err := net.SplitHostPort(v)
	if err != nil {
		return errors.New("is not host:port" + example)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("has port %q; want a number from 0 to 65535%s", port, example)
	}
	if host != "" && net.ParseIP(host) == nil && !hostName(host) {
		return fmt.Errorf("has host %q, which is neither an IP address nor a host name%s", host, example)
	}
	return nil
}

// hostName reports whether h is a syntactically valid DNS host name
// (RFC 1123 labels: letters, digits and inner hyphens, at most 63 each).
func hostName(h string) bool {
	if len(h) > 253 {
		return false
	}
	for _, l := range strings.Split(strings.TrimSuffix(h, "."), ".") {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for _, r := range l {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return false
			}
		}
	}
	return true
}

// Bounds of -owner-token: long enough that guessing it, slowed as
// guard.Owner slows guesses, is hopeless; short enough for a header.
const minOwnerToken, maxOwnerToken = 8, 256

func checkOwnerToken(v string) error {
	if v == "" {
		return nil
	}
	if len(v) < minOwnerToken || len(v) > maxOwnerToken {
		return fmt.Errorf("must be %d to %d characters (a long random one, e.g. from openssl rand -hex 16)", minOwnerToken, maxOwnerToken)
	}
	for _, r := range v {
		if r <= ' ' || r == 0x7f {
			return errors.New("must not hold spaces or control characters (it is sent in an Authorization header)")
		}
	}
	return nil
}

func checkAllowedHosts(v string) error {
	if v == "" {
		return nil
	}
	for _, h := range strings.Split(v, ",") {
		if strings.TrimSpace(h) == "" {
			return errors.New("has an empty entry")
		}
	}
	return nil
}

// checkFrameAncestors keeps -frame-ancestors one CSP source list: a ; or
// a quote would let the value add directives of its own.
func checkFrameAncestors(v string) error {
	if strings.ContainsAny(v, ";,\r\n'\"") {
		return errors.New("is not a list of origins separated by spaces, such as http://homeassistant.local:8123")
	}
	return nil
}
