package timesync

import (
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestParseRequest(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		want       int64 // ms; 0: refused
	}{
		{"a browser's Date.now()", `{"time":1765008000123}`, 1765008000123},
		{"with spaces", ` { "time" : 1765008000123 } `, 1765008000123},
		{"seconds, not ms, read as 1970", `{"time":1765008000}`, 0},
		{"a fraction", `{"time":1765008000123.5}`, 0},
		{"a string", `{"time":"1765008000123"}`, 0},
		{"no time", `{}`, 0},
		{"another key", `{"time":1765008000123,"tz":"UTC"}`, 0},
		{"two values", `{"time":1765008000123}{"time":1}`, 0},
		{"beyond 2100", `{"time":4102444800000}`, 0},
		{"negative", `{"time":-1}`, 0},
		{"huge", `{"time":1e300}`, 0},
		{"not JSON", `time=1765008000123`, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseRequest([]byte(tc.body))
			if tc.want == 0 {
				if !errors.Is(err, ErrRequest) {
					t.Errorf("got %v, %v; want ErrRequest", got, err)
				}
				return
			}
			if err != nil || got.UnixMilli() != tc.want {
				t.Errorf("got %v, %v; want %d", got, err, tc.want)
			}
		})
	}
}

func TestRequestIsOneLineOfTwoIntegers(t *testing.T) {
	got := string(Request(time.UnixMilli(1765008000123), 83*time.Second+456*time.Millisecond))
	if got != "1765008000123 83456\n" {
		t.Errorf("got %q", got)
	}
	// The line sensord-setclock (image/rootfs) accepts: 13 digits of
	// wall time, a space, up to 15 digits of monotonic time.
	if !regexp.MustCompile(`^[0-9]{13} [0-9]{1,15}$`).MatchString(strings.TrimSuffix(got, "\n")) {
		t.Errorf("%q is not a line sensord-setclock accepts", got)
	}
}

// FuzzParseRequest: any body gets a time in range or ErrRequest, never a
// panic.
func FuzzParseRequest(f *testing.F) {
	for _, s := range []string{`{"time":1765008000123}`, `{}`, `{"time":"x"}`, `{"time":1e300}`, `[`, `{"time":9223372036854775807}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		got, err := ParseRequest(body)
		if err != nil {
			if !errors.Is(err, ErrRequest) {
				t.Fatalf("error %v is not ErrRequest", err)
			}
			return
		}
		if got.Before(notBefore) || !got.Before(notAfter) {
			t.Fatalf("accepted %v", got)
		}
	})
}
