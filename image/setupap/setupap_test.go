package setupap

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)

// step is one Decider input, some time after t0, and the action wanted.
type step struct {
	at   time.Duration
	in   Inputs
	want Action
}

func TestDecider(t *testing.T) {
	tm := Timing{Grace: 20 * time.Second, JoinWait: 3 * time.Minute, SetupWait: 10 * time.Minute}
	radio := Inputs{Radio: true}
	configured := Inputs{Radio: true, Configured: true}
	joined := Inputs{Radio: true, Configured: true, Joined: true}
	cable := Inputs{Radio: true, Cable: true}
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"no Wi-Fi configured and no cable opens setup after the grace", []step{
			{0, radio, Stay}, {19 * time.Second, radio, Stay}, {20 * time.Second, radio, OpenSetup}, {time.Hour, radio, Stay},
		}},
		{"a cable keeps setup closed", []step{{0, cable, Stay}, {time.Hour, cable, Stay}}},
		{"no radio: nothing to open", []step{{0, Inputs{}, Stay}, {time.Hour, Inputs{}, Stay}}},
		{"a joined network keeps setup closed", []step{{0, joined, Stay}, {time.Hour, joined, Stay}}},
		{"a configured network not joined opens setup after JoinWait, not before", []step{
			{0, configured, Stay}, {time.Minute, configured, Stay}, {3 * time.Minute, configured, OpenSetup},
		}},
		{"joining in time resets the wait", []step{
			{0, configured, Stay}, {2 * time.Minute, joined, Stay}, {3 * time.Minute, configured, Stay}, {5*time.Minute + time.Second, configured, Stay}, {6 * time.Minute, configured, OpenSetup},
		}},
		{"setup with a configured network retries it after SetupWait, then opens again: they alternate", []step{
			{0, configured, Stay}, {3 * time.Minute, configured, OpenSetup},
			{12 * time.Minute, configured, Stay}, {13 * time.Minute, configured, CloseSetup},
			{15 * time.Minute, configured, Stay}, {16 * time.Minute, configured, OpenSetup},
			{26 * time.Minute, configured, CloseSetup},
		}},
		{"setup with nothing configured stays open: there is nothing to retry", []step{
			{0, radio, Stay}, {time.Minute, radio, OpenSetup}, {5 * time.Hour, radio, Stay},
		}},
		{"a cable closes setup", []step{{0, radio, Stay}, {time.Minute, radio, OpenSetup}, {2 * time.Minute, cable, CloseSetup}, {time.Hour, cable, Stay}}},
		{"the radio going away closes setup", []step{{0, radio, Stay}, {time.Minute, radio, OpenSetup}, {2 * time.Minute, Inputs{}, CloseSetup}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := Decider{Timing: tm}
			for _, s := range tc.steps {
				in := s.in
				in.Now = t0.Add(s.at)
				if got := d.Next(in); got.Action != s.want {
					t.Fatalf("at %s with %+v: got %v (%q), want %v", s.at, s.in, got.Action, got.Reason, s.want)
				} else if got.Action != Stay && got.Reason == "" {
					t.Errorf("at %s: %v without a reason", s.at, got.Action)
				}
			}
		})
	}
}

// TestDeciderAfterATry: a failed try reopens setup and restarts
// SetupWait; a good one ends setup.
func TestDeciderAfterATry(t *testing.T) {
	d := Decider{Timing: Timing{Grace: time.Second, JoinWait: time.Minute, SetupWait: 10 * time.Minute}}
	in := Inputs{Radio: true, Configured: true, Now: t0}
	d.Next(in)
	in.Now = t0.Add(time.Minute)
	if d.Next(in).Action != OpenSetup {
		t.Fatal("setup did not open")
	}
	d.Tried(t0.Add(9*time.Minute), false)
	in.Now = t0.Add(12 * time.Minute)
	if got := d.Next(in); got.Action != Stay || !d.InSetup() {
		t.Fatalf("got %v after a failed try 3 minutes ago, want setup to stay open", got.Action)
	}
	d.Tried(t0.Add(13*time.Minute), true)
	in.Joined = true
	if got := d.Next(in); got.Action != Stay || d.InSetup() {
		t.Fatalf("got %v (in setup %v) after a good try, want station", got.Action, d.InSetup())
	}
}

func TestRequestCheck(t *testing.T) {
	ok := Request{SSID: "Home", Passphrase: "correct horse", Country: "GB", Name: "kitchen"}
	for _, tc := range []struct {
		name string
		r    Request
		want string // in the error; "" for none
	}{
		{"a full request passes", ok, ""},
		{"an open network passes", Request{SSID: "Cafe"}, ""},
		{"a non-ASCII name passes", Request{SSID: "Café ☕"}, ""},
		{"no network", Request{}, "choose a network"},
		{"a 33-byte network name", Request{SSID: strings.Repeat("x", 33)}, "at most 32 bytes"},
		{"a quote in the network name", Request{SSID: `a"b`}, "double quotes"},
		{"a line break in the network name", Request{SSID: "a\nb"}, "control characters"},
		{"invalid UTF-8 in the network name", Request{SSID: "a\xffb"}, "control characters"},
		{"a 7-character passphrase", Request{SSID: "x", Passphrase: "1234567"}, "8 to 63"},
		{"a 64-character passphrase", Request{SSID: "x", Passphrase: strings.Repeat("p", 64)}, "8 to 63"},
		{"a non-ASCII passphrase", Request{SSID: "x", Passphrase: "pässwört"}, "printable ASCII"},
		{"a backslash in the passphrase", Request{SSID: "x", Passphrase: `pass\word`}, "backslashes"},
		{"a three-letter country", Request{SSID: "x", Country: "GBR"}, "two-letter"},
		{"a name with a dot", Request{SSID: "x", Name: "a.b"}, "letters, digits and dashes"},
		{"a name ending in a dash", Request{SSID: "x", Name: "ab-"}, "letters, digits and dashes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.r.Check()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("got %v, want none", err)
				}
				return
			}
			if !errors.Is(err, ErrRequest) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want ErrRequest saying %q", err, tc.want)
			}
		})
	}
}

func TestParseRequest(t *testing.T) {
	r, err := ParseRequest(Request{SSID: "Home", Passphrase: "correct horse", Country: "gb"}.Encode())
	if err != nil || r.Country != "GB" || r.SSID != "Home" {
		t.Fatalf("got %+v, %v", r, err)
	}
	for _, bad := range []string{`{"ssid":"x","evil":1}`, `{"ssid":"x"} {}`, `[]`, strings.Repeat(" ", MaxRequestBytes+1)} {
		if _, err := ParseRequest([]byte(bad)); !errors.Is(err, ErrRequest) {
			t.Errorf("ParseRequest(%.40q): got %v, want ErrRequest", bad, err)
		}
	}
}

// FuzzParseRequest: whatever sensord (or anyone who can write its
// runtime directory) leaves in the spool, a request that parses passes
// Check and can be written to sensord.conf. The seed corpus is in
// testdata/fuzz/FuzzParseRequest.
func FuzzParseRequest(f *testing.F) {
	f.Add([]byte(`{"ssid":"Home","passphrase":"correct horse","country":"GB","name":"kitchen"}`))
	f.Add([]byte(`{"ssid":"Caf\u00e9"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseRequest(b)
		if err != nil {
			return
		}
		if err := r.Check(); err != nil {
			t.Fatalf("parsed %+v fails Check: %v", r, err)
		}
		set, _ := r.Settings()
		for k, v := range set {
			if strings.ContainsAny(v, "\"\\\n\r") {
				t.Fatalf("%s=%q cannot go in sensord.conf", k, v)
			}
		}
	})
}

func TestParseScan(t *testing.T) {
	out := "bssid / frequency / signal level / flags / ssid\n" +
		"02:00:00:00:01:00\t2412\t-30\t[WPA2-PSK-CCMP][ESS]\tHome\n" +
		"02:00:00:00:02:00\t2437\t-70\t[ESS]\tCaf\\xc3\\xa9\n" +
		"02:00:00:00:03:00\t2462\t-20\t[WPA2-PSK-CCMP][ESS]\tHome\n" +
		"02:00:00:00:04:00\t2462\t-50\t[WPA2-PSK-CCMP][ESS]\t\n" +
		"02:00:00:00:05:00\t2462\t-50\t[ESS]\tbad\\q\n" +
		"garbage\n"
	got := ParseScan(out)
	want := []Network{{SSID: "Home", Signal: -20, Secured: true}, {SSID: "Café", Signal: -70}}
	if len(got) != len(want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("network %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
}

func FuzzParseScan(f *testing.F) {
	f.Add("bssid / frequency / signal level / flags / ssid\n02:00:00:00:01:00\t2412\t-30\t[WPA2-PSK-CCMP][ESS]\tHome\\x00\n")
	f.Fuzz(func(t *testing.T, out string) {
		for _, n := range ParseScan(out) {
			if n.SSID == "" || len(n.SSID) > MaxSSIDBytes {
				t.Fatalf("network %q", n.SSID)
			}
		}
	})
}

func TestStateRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state")
	st, err := ReadState(path)
	if err != nil || st.Active || st.Phase != PhaseStation {
		t.Fatalf("a missing file: got %+v, %v; want an inactive station", st, err)
	}
	want := State{Phase: PhaseSetup, Active: true, Interface: "wlan0", Address: "192.168.4.1", SSID: "sensord-AB12",
		Reason: "no Wi-Fi", Networks: []Network{{SSID: "Home", Signal: -40, Secured: true}}, Since: t0}
	if err := WriteState(path, want); err != nil {
		t.Fatal(err)
	}
	got, err := ReadState(path)
	if err != nil || got.SSID != want.SSID || !got.Active || len(got.Networks) != 1 || !got.Since.Equal(t0) {
		t.Fatalf("got %+v, %v", got, err)
	}
	for _, bad := range []string{`{"phase":"party"}`, `{`, strings.Repeat(" ", MaxStateBytes+1)} {
		if _, err := ParseState([]byte(bad)); !errors.Is(err, ErrState) {
			t.Errorf("ParseState(%.30q): got %v, want ErrState", bad, err)
		}
	}
}

func TestAPName(t *testing.T) {
	if got := APName("b8:27:eb:12:ab:cd"); got != "sensord-ABCD" {
		t.Errorf("got %q", got)
	}
}

func TestParseEvent(t *testing.T) {
	for line, want := range map[string]Event{
		"wlan0: CTRL-EVENT-CONNECTED - Connection to 02:00:00:00:01:00 completed [id=0 id_str=]":               EventConnected,
		"wlan0: CTRL-EVENT-SSID-TEMP-DISABLED id=0 ssid=\"Home\" auth_failures=1 duration=10 reason=WRONG_KEY": EventWrongKey,
		"wlan0: WPA: 4-Way Handshake failed - pre-shared key may be incorrect":                                 EventWrongKey,
		"wlan0: Trying to associate with 02:00:00:00:01:00":                                                    EventNone,
	} {
		if got := ParseEvent(line); got != want {
			t.Errorf("%q: got %v, want %v", line, got, want)
		}
	}
}
