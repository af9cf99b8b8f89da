package mqtt

import (
	"errors"
	"net"
	"strings"
	"testing"

	"sensord/broadcast/mqtt/mosquittotest"
	"sensord/internal/link"
)

// A broker that cannot be reached is told in words with the fix, never in
// the client library's own text ("network Error : dial tcp ...").
func TestAnUnreachableBrokerIsToldInWordsWithTheFix(t *testing.T) {
	t.Parallel()
	closed := func() string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		return addr
	}()
	// silent accepts connections and never says a word: no CONNACK.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { silent.Close() })
	go func() {
		var held []net.Conn
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	plain := mosquittotest.Start(t, mosquittotest.Opts{})

	for _, tc := range []struct {
		name, url, want string
	}{
		{"nothing listens on the port", "mqtt://" + closed, "nothing accepts connections on port"},
		{"a name nobody knows", "mqtt://no-such-broker.invalid:1883", `the name "no-such-broker.invalid" is not known`},
		{"a broker that never answers", "mqtt://" + silent.Addr().String(), "no answer from " + silent.Addr().String()},
		{"mqtts:// to a plain port", strings.Replace(plain.URL(), "mqtt://", "mqtts://", 1), "TLS"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := newBridge(t, Opts{URL: tc.url})
			run(t, b)
			s := waitState(t, b, link.Disconnected)
			if !strings.Contains(s.Reason, tc.want) {
				t.Errorf("reason %q, want it to say %q", s.Reason, tc.want)
			}
			for _, raw := range []string{"network Error", "dial tcp", "i/o timeout"} {
				if strings.Contains(s.Reason, raw) {
					t.Errorf("reason %q shows the library's text %q", s.Reason, raw)
				}
			}
			if !errors.Is(b.lastErr(), ErrConnect) {
				t.Errorf("error %v is not ErrConnect", b.lastErr())
			}
		})
	}
}
