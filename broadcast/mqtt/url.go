package mqtt

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
)

// Default ports of the two schemes (IANA's registrations for MQTT).
const (
	defaultPort    = "1883"
	defaultTLSPort = "8883"
)

// ErrURL is wrapped by every error ParseURL returns.
var ErrURL = errors.New("mqtt: bad broker URL")

// Broker is a parsed broker URL.
type Broker struct {
	TLS      bool   // mqtts://
	Host     string // host name or address, without brackets
	Port     string
	Username string // from the URL's user info, "" when absent
	Password string // from the URL's user info, "" when absent
}

// ParseURL reads mqtt://[user[:password]@]host[:port] or mqtts://...; the
// port defaults to 1883 or 8883. A path, query or fragment is refused: MQTT
// has none, and a topic typed there would otherwise be silently ignored.
func ParseURL(s string) (Broker, error) {
	u, err := url.Parse(s)
	if err != nil {
		return Broker{}, fmt.Errorf("%w: %q is not a URL", ErrURL, Redact(s))
	}
	var b Broker
	switch u.Scheme {
	case "mqtt":
	case "mqtts":
		b.TLS = true
	default:
		return Broker{}, fmt.Errorf("%w: %q: the scheme must be mqtt:// or mqtts://", ErrURL, Redact(s))
	}
	if u.Opaque != "" || u.Hostname() == "" {
		return Broker{}, fmt.Errorf("%w: %q has no host", ErrURL, Redact(s))
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return Broker{}, fmt.Errorf("%w: %q: a broker URL has no path, query or fragment", ErrURL, Redact(s))
	}
	b.Host = u.Hostname()
	b.Port = u.Port()
	if b.Port == "" {
		b.Port = defaultPort
		if b.TLS {
			b.Port = defaultTLSPort
		}
	}
	if strings.HasSuffix(u.Host, ":") {
		return Broker{}, fmt.Errorf("%w: %q has an empty port", ErrURL, Redact(s))
	}
	if u.User != nil {
		b.Username = u.User.Username()
		b.Password, _ = u.User.Password()
	}
	return b, nil
}

// Addr is host:port.
func (b Broker) Addr() string { return net.JoinHostPort(b.Host, b.Port) }

// String is the URL without user info: what logs, /healthz and the
// dashboard show.
func (b Broker) String() string {
	scheme := "mqtt"
	if b.TLS {
		scheme = "mqtts"
	}
	return scheme + "://" + b.Addr()
}

// Redact returns s with any password in its user info replaced by "xxxxx",
// for error messages about a URL that may not even parse.
func Redact(s string) string {
	if u, err := url.Parse(s); err == nil {
		return u.Redacted()
	}
	// Unparseable: cut everything between the scheme and the last '@',
	// where a password could be.
	if i := strings.LastIndex(s, "@"); i >= 0 {
		if j := strings.Index(s, "://"); j >= 0 && j < i {
			return s[:j+3] + "xxxxx" + s[i:]
		}
		return "xxxxx" + s[i:]
	}
	return s
}
