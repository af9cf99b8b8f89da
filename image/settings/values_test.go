package settings

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestCheckApplianceRefusesWhatSensordSettingsWouldSkip(t *testing.T) {
	for _, tc := range []struct {
		name string
		vals map[string]string
		say  string // "" : accepted
	}{
		{"a good network", map[string]string{"HOSTNAME": "kitchen-2", "WIFI_COUNTRY": "gb", "WIFI_SSID": "Café 5G", "WIFI_PASSPHRASE": "12345678", "TIMEZONE": "America/Argentina/Buenos_Aires", "NTP_SERVER": "192.168.1.1 router.lan"}, ""},
		{"an open network", map[string]string{"WIFI_SSID": "Guest"}, ""},
		{"a host name with a space", map[string]string{"HOSTNAME": "my pi"}, "HOSTNAME"},
		{"a host name ending in a dash", map[string]string{"HOSTNAME": "pi-"}, "HOSTNAME"},
		{"a host name of 64 letters", map[string]string{"HOSTNAME": strings.Repeat("a", 64)}, "HOSTNAME"},
		{"a three-letter country", map[string]string{"WIFI_COUNTRY": "GBR"}, "WIFI_COUNTRY"},
		{"a passphrase of 7 characters", map[string]string{"WIFI_SSID": "x", "WIFI_PASSPHRASE": "1234567"}, "8 to 63"},
		{"a passphrase of 64 characters", map[string]string{"WIFI_SSID": "x", "WIFI_PASSPHRASE": strings.Repeat("p", 64)}, "8 to 63"},
		{"a key that is not hex", map[string]string{"WIFI_SSID": "x", "WIFI_PSK": strings.Repeat("g", 64)}, "64 hex"},
		{"an SSID over 32 bytes", map[string]string{"WIFI_SSID": strings.Repeat("s", 33)}, "32"},
		{"a private key pasted as SSH key", map[string]string{"SSH_PUBKEY_2": "-----BEGIN OPENSSH PRIVATE KEY-----"}, "SSH_PUBKEY_2"},
		{"a time zone with dots", map[string]string{"TIMEZONE": "../../etc/passwd"}, "TIMEZONE"},
		{"a time server list with a semicolon", map[string]string{"NTP_SERVER": "a;reboot"}, "NTP_SERVER"},
		{"a line break in any value", map[string]string{"SENSORD_TOPIC": "a\nb"}, "line breaks"},
		{"a quote in a secret, which is not repeated", map[string]string{"WIFI_SSID": "x", "WIFI_PASSPHRASE": `my "secret" pass`}, "WIFI_PASSPHRASE: no double quotes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckAppliance(tc.vals)
			if tc.say == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrValue) || !strings.Contains(err.Error(), tc.say) {
				t.Fatalf("got %v, want a refusal saying %q", err, tc.say)
			}
			if strings.Contains(err.Error(), "secret") && strings.Contains(tc.name, "secret") {
				t.Errorf("the message repeats the secret: %v", err)
			}
		})
	}
}

func TestParseReadsWhatRenderAndEditWrite(t *testing.T) {
	set := map[string]string{"WIFI_SSID": "Home # 2 'guest'", "SENSORD_PERIOD": "5s", "SENSORD_NAME": "attic", "SSH_PUBKEY": "ssh-ed25519 AAAA me@laptop"}
	var b bytes.Buffer
	if err := Render(&b, Appliance(), set); err != nil {
		t.Fatal(err)
	}
	edited, err := Edit([]byte(strings.ReplaceAll(b.String(), "\n", "\r\n")), Appliance(), map[string]string{"SENSORD_NAME": "cellar"}, []string{"SENSORD_PERIOD"})
	if err != nil {
		t.Fatal(err)
	}
	got, err := Parse(edited, Appliance())
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"WIFI_SSID": "Home # 2 'guest'", "SENSORD_NAME": "cellar", "SSH_PUBKEY": "ssh-ed25519 AAAA me@laptop"}
	if len(got) != len(want) {
		t.Errorf("got %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s=%q, want %q", k, got[k], v)
		}
	}
}

func TestParseRefusesWhatIsNoSettingsFile(t *testing.T) {
	for _, tc := range []struct{ name, file, say string }{
		{"an unknown name", "PATH=/tmp\n", "not a setting"},
		{"a line without =", "SENSORD_NAME\n", "not NAME=value"},
		{"a value over the bound", "SENSORD_ALERT=" + strings.Repeat("x", MaxValueBytes+1), "more than"},
		{"a file over the bound", strings.Repeat("#\n", MaxFileBytes/2+1), "more than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Parse([]byte(tc.file), Appliance()); !errors.Is(err, ErrValue) || !strings.Contains(err.Error(), tc.say) {
				t.Errorf("got %v, want a refusal saying %q", err, tc.say)
			}
		})
	}
}

func TestReadRequestRefusesHostileRequests(t *testing.T) {
	for _, tc := range []struct{ name, body, say string }{
		{"no action", `{"set":{"SENSORD_NAME":"x"}}`, "action"},
		{"an unknown field", `{"action":"change","run":"reboot"}`, "unknown field"},
		{"an unknown name", `{"action":"change","set":{"LD_PRELOAD":"x"}}`, "not a setting"},
		{"a name both set and unset", `{"action":"change","set":{"SENSORD_NAME":"x"},"unset":["SENSORD_NAME"]}`, "both"},
		{"two objects", `{"action":"change"}{"action":"reset"}`, "more than one"},
		{"an id with a newline", `{"id":"a\nb","action":"change"}`, "letters, digits"},
		{"an id over the bound", `{"id":"` + strings.Repeat("a", MaxIDBytes+1) + `","action":"change"}`, "letters, digits"},
		{"over the bound", `{"action":"change","set":{"SENSORD_ALERT":"` + strings.Repeat("x", MaxRequestBytes) + `"}}`, "more than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ReadRequest(strings.NewReader(tc.body), Appliance()); !errors.Is(err, ErrRequest) || !strings.Contains(err.Error(), tc.say) {
				t.Errorf("got %v, want a refusal saying %q", err, tc.say)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("SENSORD_NAME=attic\n# comment\nWIFI_SSID=\"a b\"\r\n"))
	f.Add([]byte("HOSTNAME='x'\nSENSORD_PERIOD=5s"))
	f.Add([]byte("=\n\"\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		vals, err := Parse(b, Appliance())
		if err != nil {
			return
		}
		// What parses and passes the value rules, Edit writes and Parse
		// reads back the same.
		if CheckAppliance(vals) != nil {
			return
		}
		out, err := Edit(nil, Appliance(), vals, nil)
		if err != nil {
			t.Fatalf("Edit refused what CheckAppliance passed: %v", err)
		}
		again, err := Parse(out, Appliance())
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range vals {
			if strings.TrimSpace(v) == v && again[k] != v {
				t.Fatalf("%s: %q came back as %q", k, v, again[k])
			}
		}
	})
}

func FuzzReadRequest(f *testing.F) {
	f.Add([]byte(`{"action":"change","set":{"SENSORD_NAME":"x"},"unset":["SENSORD_MQTT_URL"]}`))
	f.Add([]byte(`{"action":"reset","unset":["SENSORD_NAME"],"clear_history":true}`))
	f.Add([]byte(`{"action":"restore","set":{}}`))
	f.Add([]byte(`{"id":"QWERTY234-7","action":"change","set":{"SENSORD_NAME":"x"}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		q, err := ReadRequest(bytes.NewReader(b), Appliance())
		if err != nil {
			return
		}
		if !validID(q.ID) {
			t.Fatalf("accepted id %q", q.ID)
		}
		for _, k := range q.Names() {
			if !Appliance().names()[k] {
				t.Fatalf("accepted unknown %q", k)
			}
		}
	})
}
