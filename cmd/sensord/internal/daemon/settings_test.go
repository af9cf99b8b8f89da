package daemon

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sensord/cmd/sensord/internal/guard"
	"sensord/cmd/sensord/internal/promtext"
	"sensord/image/paths"
	"sensord/image/settings"
)

// settingsFixture is the settings API behind the real token and owner
// gates, on an environment as systemd builds it from sensord.conf, with
// its spool and status beside a runtime directory in a temporary one.
type settingsFixture struct {
	panel *settingsPanel
	srv   *httptest.Server
	env   map[string]string
}

func newSettingsFixture(t *testing.T, env map[string]string) *settingsFixture {
	t.Helper()
	run := filepath.Join(t.TempDir(), "sensord")
	if err := os.Mkdir(run, 0o700); err != nil {
		t.Fatal(err)
	}
	f := &settingsFixture{env: env}
	lookup := func(k string) (string, bool) { v, ok := f.env[k]; return v, ok }
	p := newSettingsPanel(run, lookup, slog.New(slog.NewTextHandler(io.Discard, nil)))
	owner := guard.NewOwner(updateTestOwner, updateTestToken, p.Log, time.Now)
	p.Writable, p.Owner = owner.Writable(), owner.Guard
	mux := http.NewServeMux()
	p.register(mux)
	f.srv = httptest.NewServer(guard.Token(updateTestToken, owner, owner.Writes(mux)))
	t.Cleanup(f.srv.Close)
	f.panel = p
	return f
}

func (f *settingsFixture) do(t *testing.T, method, path, auth string, body []byte) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, f.srv.URL+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+auth)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (f *settingsFixture) spooled(t *testing.T) (settings.Request, bool) {
	t.Helper()
	fh, err := os.Open(f.panel.Spool)
	if errors.Is(err, os.ErrNotExist) {
		return settings.Request{}, false
	}
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	q, err := settings.ReadRequest(fh, settings.Appliance())
	if err != nil {
		t.Fatalf("the spooled request does not read: %v", err)
	}
	return q, true
}

func baseEnv() map[string]string {
	return map[string]string{
		"HOSTNAME": "kitchen", "WIFI_SSID": "Home", "WIFI_PASSPHRASE": "correct horse battery",
		"SENSORD_SENSOR": "sim", "SENSORD_PERIOD": "1s", "SENSORD_OWNER_TOKEN": updateTestOwner,
		"SENSORD_TOKEN": updateTestToken, "SENSORD_NAME": "kitchen",
		"SENSORD_MQTT_URL": "mqtt://ha:s3cretpw@homeassistant.local:1883",
	}
}

func TestCheckSettingsRefusesWithSensordsOwnWords(t *testing.T) {
	for _, tc := range []struct {
		name string
		vals map[string]string
	}{
		{"a period that is no duration", map[string]string{"SENSORD_PERIOD": "2 seconds"}},
		{"a period below the sensor's minimum", map[string]string{"SENSORD_PERIOD": "1s"}},
		{"a client mode without its URL", map[string]string{"SENSORD_MODE": "client"}},
		{"a calibration offset that is no number", map[string]string{"SENSORD_TEMP_OFFSET": "warm"}},
		{"an MQTT URL of another scheme", map[string]string{"SENSORD_MQTT_URL": "http://broker"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckSettings(tc.vals)
			if !errors.Is(err, ErrSettings) {
				t.Fatalf("got %v, want a refusal", err)
			}
			// What sensord itself prints at start with these settings.
			_, _, start := ParseConfig(nil, func(k string) (string, bool) { v, ok := tc.vals[k]; return v, ok }, io.Discard)
			if start == nil {
				t.Fatal("sensord would start with these")
			}
			if want := "sensord: " + start.Error(); !strings.HasSuffix(err.Error(), want) {
				t.Errorf("got %q, want sensord's own line %q", err, want)
			}
		})
	}
	if err := CheckSettings(map[string]string{"SENSORD_VERSION": "true"}); err == nil {
		t.Error("SENSORD_VERSION=true passed: sensord would exit instead of running")
	}
	if err := CheckSettings(map[string]string{"HOSTNAME": "-bad-", "SENSORD_SENSOR": "sim"}); err == nil || !strings.Contains(err.Error(), "HOSTNAME") {
		t.Errorf("a bad HOSTNAME: %v", err)
	}
	if err := CheckSettings(baseEnv()); err != nil {
		t.Errorf("good settings refused: %v", err)
	}
}

func TestSettingsReadShowsValuesButNeverSecrets(t *testing.T) {
	f := newSettingsFixture(t, baseEnv())
	code, body := f.do(t, http.MethodGet, "/api/settings", updateTestToken, nil)
	if code != http.StatusOK {
		t.Fatalf("%d %s", code, body)
	}
	for _, secret := range []string{"correct horse", updateTestOwner, "s3cretpw"} {
		if strings.Contains(body, secret) {
			t.Errorf("GET /api/settings shows the secret %q", secret)
		}
	}
	var in settingsInfo
	if err := json.Unmarshal([]byte(body), &in); err != nil {
		t.Fatal(err)
	}
	got := map[string]settingVar{}
	for _, s := range in.Sections {
		for _, v := range s.Vars {
			got[v.Name] = v
		}
	}
	if v := got["SENSORD_NAME"]; v.Value != "kitchen" || !v.Set || v.Secret {
		t.Errorf("SENSORD_NAME %+v", v)
	}
	if v := got["WIFI_PASSPHRASE"]; v.Value != "" || !v.Set || !v.Secret {
		t.Errorf("WIFI_PASSPHRASE %+v, want set, secret, no value", v)
	}
	if v := got["SENSORD_MQTT_URL"]; !v.Secret || v.Value != "mqtt://ha:xxxxx@homeassistant.local:1883" || !v.Set {
		t.Errorf("an MQTT URL with a password %+v, want it shown without the password and marked secret", v)
	}
	if !in.Writable || !in.Available || in.Pending {
		t.Errorf("info %+v", in)
	}
}

func TestSettingsChangeIsCheckedThenSpooled(t *testing.T) {
	f := newSettingsFixture(t, baseEnv())
	code, body := f.do(t, http.MethodPost, "/api/settings", updateTestOwner,
		[]byte(`{"set":{"SENSORD_NAME":"attic","SENSORD_TEMP_OFFSET":"-0.5"},"unset":["SENSORD_MQTT_URL"]}`))
	if code != http.StatusAccepted {
		t.Fatalf("%d %s", code, body)
	}
	q, ok := f.spooled(t)
	if !ok || q.Action != settings.ActionChange || q.Set["SENSORD_NAME"] != "attic" || q.Set["SENSORD_TEMP_OFFSET"] != "-0.5" || len(q.Unset) != 1 {
		t.Fatalf("spooled %+v", q)
	}
	// The answer names the request, as its outcome will.
	var ans submitted
	if err := json.Unmarshal([]byte(body), &ans); err != nil || ans.ID == "" || ans.ID != q.ID {
		t.Errorf("the answer %s names request %q, want the spooled %q", body, ans.ID, q.ID)
	}
	code, body = f.do(t, http.MethodPost, "/api/settings", updateTestOwner, []byte(`{"set":{"SENSORD_NAME":"cellar"}}`))
	if code != http.StatusConflict {
		t.Errorf("a second change while one is pending: %d %s, want 409", code, body)
	}
	// Once the helper took it, the next request has another ID.
	if err := os.Remove(f.panel.Spool); err != nil {
		t.Fatal(err)
	}
	if code, body = f.do(t, http.MethodPost, "/api/settings", updateTestOwner, []byte(`{"set":{"SENSORD_NAME":"cellar"}}`)); code != http.StatusAccepted {
		t.Fatalf("%d %s", code, body)
	}
	if next, _ := f.spooled(t); next.ID == q.ID || next.ID == "" {
		t.Errorf("two requests named %q and %q", q.ID, next.ID)
	}
	// Another run of sensord never reuses an ID.
	if other := newSettingsFixture(t, baseEnv()); other.panel.instance == f.panel.instance {
		t.Error("two runs of sensord share an instance name")
	}
}

// Hostile and bad requests are refused in words, counted, and spool nothing.
func TestSettingsChangeRefusesBadInputAndSpoolsNothing(t *testing.T) {
	f := newSettingsFixture(t, baseEnv())
	for _, tc := range []struct {
		name, auth, body string
		code             int
		say              string
	}{
		{"no credential", "", `{"set":{"SENSORD_NAME":"x"}}`, http.StatusUnauthorized, "token"},
		{"the read token", updateTestToken, `{"set":{"SENSORD_NAME":"x"}}`, http.StatusUnauthorized, "owner token"},
		{"a bad period, in sensord's words", updateTestOwner, `{"set":{"SENSORD_PERIOD":"soon"}}`, http.StatusBadRequest, `sensord: -period: SENSORD_PERIOD=\"soon\" is not a duration`},
		{"a bad name, in sensord's words", updateTestOwner, `{"set":{"SENSORD_NAME":"a b"}}`, http.StatusBadRequest, "sensord: -name:"},
		{"an unknown setting", updateTestOwner, `{"set":{"SENSORD_PERIDO":"5s"}}`, http.StatusBadRequest, "not a setting"},
		{"a value with a line break", updateTestOwner, `{"set":{"SENSORD_TOPIC":"a\nSENSORD_TOKEN=x"}}`, http.StatusBadRequest, "line breaks"},
		{"a value with a quote", updateTestOwner, `{"set":{"WIFI_SSID":"a\"b"}}`, http.StatusBadRequest, "double quotes"},
		{"a short passphrase", updateTestOwner, `{"set":{"WIFI_PASSPHRASE":"short"}}`, http.StatusBadRequest, "8 to 63"},
		{"not JSON", updateTestOwner, `set name=x`, http.StatusBadRequest, "send"},
		{"an unknown field", updateTestOwner, `{"set":{},"exec":"reboot"}`, http.StatusBadRequest, "unknown field"},
		{"too big", updateTestOwner, `{"set":{"SENSORD_ALERT":"` + strings.Repeat("x", maxSettingsBody) + `"}}`, http.StatusRequestEntityTooLarge, "larger"},
		{"nothing to change", updateTestOwner, `{"set":{}}`, http.StatusBadRequest, "nothing to change"},
		{"a reset without the choice", updateTestOwner, `{}`, http.StatusBadRequest, "history"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := "/api/settings"
			if strings.Contains(tc.name, "reset") {
				path += "/reset"
			}
			code, body := f.do(t, http.MethodPost, path, tc.auth, []byte(tc.body))
			if code != tc.code || !strings.Contains(body, tc.say) {
				t.Errorf("%d %s, want %d saying %q", code, body, tc.code, tc.say)
			}
			if strings.Contains(body, "correct horse") {
				t.Errorf("the refusal shows a secret: %s", body)
			}
			if _, ok := f.spooled(t); ok {
				t.Error("spooled")
			}
		})
	}
	var b bytes.Buffer
	f.panel.writeMetrics(promtext.New(&b))
	// The two without the owner are refused by the gate in front.
	if !strings.Contains(b.String(), `sensord_settings_requests_total{result="refused"} 11`) {
		t.Errorf("metrics:\n%s\nwant 11 refused", b.String())
	}
}

func TestSettingsResetKeepsTheNetworkAndTheOwner(t *testing.T) {
	f := newSettingsFixture(t, baseEnv())
	code, body := f.do(t, http.MethodPost, "/api/settings/reset", updateTestOwner, []byte(`{"history":"clear"}`))
	if code != http.StatusAccepted {
		t.Fatalf("%d %s", code, body)
	}
	q, _ := f.spooled(t)
	unset := strings.Join(q.Unset, " ")
	if q.Action != settings.ActionReset || !q.ClearHistory || !strings.Contains(unset, "SENSORD_NAME") || !strings.Contains(unset, "SENSORD_MQTT_URL") ||
		strings.Contains(unset, "SENSORD_OWNER_TOKEN") || strings.Contains(unset, "WIFI_") || strings.Contains(unset, "HOSTNAME") {
		t.Errorf("reset spooled %+v", q)
	}
}

func TestSettingsDownloadLeavesSecretsOutUnlessTheOwnerAsks(t *testing.T) {
	f := newSettingsFixture(t, baseEnv())
	code, plain := f.do(t, http.MethodGet, "/api/settings/download", updateTestToken, nil)
	if code != http.StatusOK || !strings.Contains(plain, "\nSENSORD_NAME=kitchen\n") {
		t.Fatalf("%d %s", code, plain)
	}
	for _, secret := range []string{"correct horse", updateTestOwner, "s3cretpw"} {
		if strings.Contains(plain, secret) {
			t.Errorf("the download without secrets holds %q", secret)
		}
	}
	if code, body := f.do(t, http.MethodGet, "/api/settings/download?secrets=1", updateTestToken, nil); code != http.StatusUnauthorized {
		t.Errorf("secrets with the read token: %d %s", code, body)
	}
	code, full := f.do(t, http.MethodGet, "/api/settings/download?secrets=1", updateTestOwner, nil)
	if code != http.StatusOK || !strings.Contains(full, `WIFI_PASSPHRASE="correct horse battery"`) || !strings.Contains(full, "s3cretpw") {
		t.Fatalf("owner's download: %d %s", code, full)
	}

	// Restoring the download without secrets changes nothing and keeps
	// every secret: the request sets what the file says and unsets only
	// what it does not hold and is no secret.
	code, body := f.do(t, http.MethodPost, "/api/settings/upload", updateTestOwner, []byte(plain))
	if code != http.StatusAccepted {
		t.Fatalf("restore: %d %s", code, body)
	}
	q, _ := f.spooled(t)
	for _, k := range q.Unset {
		if f.env[k] != "" {
			t.Errorf("restore unsets %s, which the appliance has", k)
		}
	}
	for k, v := range q.Set {
		if f.env[k] != v {
			t.Errorf("restore sets %s=%q, the appliance has %q", k, v, f.env[k])
		}
	}
}

func TestSettingsUploadThatDoesNotValidateSpoolsNothing(t *testing.T) {
	f := newSettingsFixture(t, baseEnv())
	for _, tc := range []struct{ name, file, say string }{
		{"a bad value", "SENSORD_SENSOR=sim\nSENSORD_PERIOD=fast\n", `sensord: -period: SENSORD_PERIOD=\"fast\" is not a duration`},
		{"an unknown name", "SENSORD_SENSOR=sim\nEVIL=1\n", "not a setting"},
		{"not a settings file", "\x7fELF\x02\x01\x01", "not NAME=value"},
		{"too big", strings.Repeat("# x\n", settings.MaxFileBytes/4+1), "more than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := f.do(t, http.MethodPost, "/api/settings/upload", updateTestOwner, []byte(tc.file))
			if code != http.StatusBadRequest || !strings.Contains(body, tc.say) {
				t.Errorf("%d %s, want 400 saying %q", code, body, tc.say)
			}
			if _, ok := f.spooled(t); ok {
				t.Error("spooled")
			}
		})
	}
}

func TestSettingsShowTheHelpersLastOutcomeAndTheImagerImport(t *testing.T) {
	f := newSettingsFixture(t, baseEnv())
	f.panel.ImagerPath = filepath.Join(t.TempDir(), "imager-import")
	os.WriteFile(f.panel.ImagerPath, []byte("imported: HOSTNAME=kitchen\nignored: user \"pi\" and its password: not used; SSH logs in as root, with keys only\n"), 0o644)
	st := settings.Status{Outcome: settings.OutcomeRefused, Action: settings.ActionChange, Time: time.Now().UTC(), Detail: "sensord: -period: no"}
	b, _ := json.Marshal(st)
	if err := os.MkdirAll(filepath.Dir(f.panel.StatusPath), 0o755); err != nil {
		t.Fatal(err)
	}
	if filepath.Base(filepath.Dir(f.panel.StatusPath)) != filepath.Base(paths.SettingsStateDir) {
		t.Fatalf("status at %s", f.panel.StatusPath)
	}
	if err := os.WriteFile(f.panel.StatusPath, b, 0o644); err != nil {
		t.Fatal(err)
	}
	_, body := f.do(t, http.MethodGet, "/api/settings", updateTestToken, nil)
	var in settingsInfo
	json.Unmarshal([]byte(body), &in)
	if in.Last == nil || in.Last.Outcome != settings.OutcomeRefused || in.Last.Detail != st.Detail {
		t.Errorf("last %+v", in.Last)
	}
	if len(in.Imager) != 2 || !strings.Contains(in.Imager[1], "password: not used") {
		t.Errorf("imager %q", in.Imager)
	}
}
