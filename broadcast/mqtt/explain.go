package mqtt

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"

	"github.com/eclipse/paho.mqtt.golang/packets"
)

// linkError is a failed connection attempt told in a person's words: what
// went wrong and what to do, as /healthz, the dashboard and the log show
// it. The client library's own error stays in the chain (errors.Is and
// errors.As reach it) but not in the text, which it would only obscure.
type linkError struct {
	kind   error // ErrAuth or ErrConnect
	broker Broker
	words  string
	cause  error
}

func (e *linkError) Error() string {
	return fmt.Sprintf("%v to %s: %s", e.kind, e.broker, e.words)
}

func (e *linkError) Unwrap() []error { return []error{e.kind, e.cause} }

// errHandshake marks an error of the TLS handshake, so that a broker that
// hangs up on it can be told apart from one that hangs up on MQTT.
var errHandshake = errors.New("tls handshake")

// explain turns a failed connection attempt to b into a linkError.
func explain(b Broker, err error) error {
	e := &linkError{kind: ErrConnect, broker: b, cause: err}
	var (
		dns      *net.DNSError
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
		record   tls.RecordHeaderError
		alert    tls.AlertError
	)
	switch {
	case errors.Is(err, packets.ErrorRefusedBadUsernameOrPassword), errors.Is(err, packets.ErrorRefusedNotAuthorised):
		e.kind = ErrAuth
		e.words = fmt.Sprintf("it does not accept user %q with that password: check the user name and password in -mqtt-url (mqtt://user:password@host) or -mqtt-user and -mqtt-password", b.Username)
	case errors.As(err, &dns):
		e.words = fmt.Sprintf("the name %q is not known on this network: check the host in -mqtt-url, or use the broker's IP address", b.Host)
	case errors.Is(err, syscall.ECONNREFUSED):
		e.words = fmt.Sprintf("nothing accepts connections on port %s of %s: is the broker running there, and is the port right (1883 for mqtt://, 8883 for mqtts://)?", b.Port, b.Host)
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		e.words = fmt.Sprintf("no route to %s: is the broker's machine on, and is this device on the same network?", b.Host)
	case errors.As(err, &unknown):
		e.words = "the broker's certificate is not signed by a CA this device trusts: give its CA file with -mqtt-ca"
	case errors.As(err, &hostname):
		e.words = fmt.Sprintf("the broker's certificate is not made out for %q: use the host name it names in -mqtt-url", b.Host)
	case errors.As(err, &invalid):
		e.words = "the broker's certificate is expired or not yet valid (or this device's clock is wrong): renew the certificate or check the time"
	case errors.As(err, &record):
		e.words = fmt.Sprintf("port %s does not speak TLS: use mqtt:// for a plain port (1883) or the broker's TLS port (8883) with mqtts://", b.Port)
	case errors.Is(err, errHandshake) && (errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)):
		e.words = fmt.Sprintf("the broker hung up on the TLS handshake: port %s is probably a plain MQTT port; use mqtt:// for it, or mqtts:// with the broker's TLS port (8883)", b.Port)
	case errors.As(err, &alert):
		e.words = fmt.Sprintf("the broker ended the TLS handshake (%v): it may want a client certificate or a newer TLS version", alert)
	case errors.Is(err, os.ErrDeadlineExceeded), isTimeout(err):
		e.words = fmt.Sprintf("no answer from %s within %v: is the address right, and does a firewall let the port through?", b.Addr(), connectTimeout)
	case errors.Is(err, packets.ErrorRefusedIDRejected):
		e.words = "the broker refused this device's client ID: another client may use the same one; give each device its own -name"
	case errors.Is(err, packets.ErrorRefusedServerUnavailable):
		e.words = "the broker answered that it is not available: look at the broker's own log"
	case errors.Is(err, packets.ErrorRefusedBadProtocolVersion):
		e.words = "the broker does not speak MQTT 3.1.1: use a broker that does (Mosquitto, Home Assistant's add-on, EMQX all do)"
	default:
		e.words = fmt.Sprintf("the connection failed (%v): check that a broker runs at %s", err, b.Addr())
	}
	return e
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
