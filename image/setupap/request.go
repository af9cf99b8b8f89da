package setupap

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"
)

// Request is what a person asks on the setup page: the network to join
// and the device's name. It travels from sensord to the root side as
// JSON in a spool file, and both check it with Check.
type Request struct {
	SSID string `json:"ssid"`
	// Passphrase is the network's WPA passphrase, "" for an open network.
	Passphrase string `json:"passphrase"`
	// Country is the two-letter code of the Wi-Fi rules, "" to keep the
	// one configured.
	Country string `json:"country"`
	// Name is the host name (http://<name>.local/), "" to keep it.
	Name string `json:"name"`
}

// Limits of a Request, as Wi-Fi and sensord.conf have them.
const (
	// MaxSSIDBytes is 802.11's limit on a network's name.
	MaxSSIDBytes = 32
	// MinPassphrase and MaxPassphrase are WPA's passphrase lengths.
	MinPassphrase = 8
	MaxPassphrase = 63
	// MaxNameBytes is a DNS label's limit.
	MaxNameBytes = 63
	// MaxRequestBytes bounds a request's JSON (and the setup form's
	// body): the fields above, escaped, fit well inside it.
	MaxRequestBytes = 2048
)

// ErrRequest is wrapped by every refusal of a request; the rest of the
// message says what is wrong in a person's words.
var ErrRequest = errors.New("setup request")

var (
	nameRE    = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$`)
	countryRE = regexp.MustCompile(`^[A-Za-z]{2}$`)
)

// Check reports what is wrong with r, in words for the person who typed
// it; nil when the root side may try it. The values also obey
// sensord.conf's rules (no double quotes, backslashes or line breaks), so
// a request that passes can be written there.
func (r Request) Check() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrRequest, fmt.Sprintf(format, a...))
	}
	switch {
	case r.SSID == "":
		return bad("choose a network or type its name")
	case len(r.SSID) > MaxSSIDBytes:
		return bad("a network name has at most %d bytes; this one has %d", MaxSSIDBytes, len(r.SSID))
	case !utf8.ValidString(r.SSID) || strings.ContainsAny(r.SSID, "\"\\") || hasControl(r.SSID):
		return bad("this page cannot store a network name with double quotes, backslashes or control characters; edit sensord.conf on the card instead")
	}
	if n := len(r.Passphrase); n > 0 {
		if n < MinPassphrase || n > MaxPassphrase {
			return bad("a WPA passphrase has %d to %d characters; this one has %d", MinPassphrase, MaxPassphrase, n)
		}
		for _, c := range []byte(r.Passphrase) {
			if c < 0x20 || c > 0x7e {
				return bad("a WPA passphrase is printable ASCII characters only")
			}
		}
		if strings.ContainsAny(r.Passphrase, "\"\\") {
			return bad("this page cannot store a passphrase with double quotes or backslashes; edit sensord.conf on the card instead")
		}
	}
	if r.Country != "" && !countryRE.MatchString(r.Country) {
		return bad("the country is a two-letter code such as GB or DE")
	}
	if r.Name != "" && !nameRE.MatchString(r.Name) {
		return bad("the device name is letters, digits and dashes (not first or last), at most %d", MaxNameBytes)
	}
	return nil
}

func hasControl(s string) bool {
	for _, c := range s {
		if c < 0x20 || c == 0x7f {
			return true
		}
	}
	return false
}

// ParseRequest parses and checks a spooled request.
func ParseRequest(b []byte) (Request, error) {
	if len(b) > MaxRequestBytes {
		return Request{}, fmt.Errorf("%w: larger than %d bytes", ErrRequest, MaxRequestBytes)
	}
	var r Request
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return Request{}, fmt.Errorf("%w: not a setup request: %w", ErrRequest, err)
	}
	if dec.More() {
		return Request{}, fmt.Errorf("%w: not a setup request: data after the JSON object", ErrRequest)
	}
	r.Country = strings.ToUpper(r.Country)
	if err := r.Check(); err != nil {
		return Request{}, err
	}
	return r, nil
}

// Encode is the spool file's content for r.
func (r Request) Encode() []byte {
	b, _ := json.Marshal(r) // strings only: cannot fail
	return b
}

// Settings are the sensord.conf lines a joined request writes (for
// settings.Edit) and the ones it clears: a passphrase replaces a
// pre-computed key, an open network clears both.
func (r Request) Settings() (set map[string]string, unset []string) {
	set = map[string]string{"WIFI_SSID": r.SSID}
	if r.Passphrase != "" {
		set["WIFI_PASSPHRASE"] = r.Passphrase
	} else {
		unset = append(unset, "WIFI_PASSPHRASE")
	}
	unset = append(unset, "WIFI_PSK")
	if r.Country != "" {
		set["WIFI_COUNTRY"] = r.Country
	}
	if r.Name != "" {
		set["HOSTNAME"] = r.Name
	}
	return set, unset
}
