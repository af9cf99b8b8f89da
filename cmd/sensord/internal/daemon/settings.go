package daemon

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"

	"sensord/cmd/sensord/internal/httpjson"
	"sensord/cmd/sensord/internal/promtext"
	"sensord/image/paths"
	"sensord/image/settings"
	"sensord/internal/atomicfile"
)

// settingsPanel is the dashboard's settings page (day two: change
// sensord.conf without pulling the card):
//
//	GET  /api/settings           every setting of sensord.conf with the value
//	                             sensord started with; a secret only as set or
//	                             not; the last apply's outcome
//	POST /api/settings           {"set":{NAME:value},"unset":[NAME]}
//	POST /api/settings/reset     {"history":"keep"|"clear"}
//	GET  /api/settings/download  the settings as a sensord.conf; ?secrets=1
//	                             (owner only) with the secrets
//	POST /api/settings/upload    a downloaded file: restore it
//
// Reading is open (behind -token like every read): the same things the
// dashboard and /healthz already show (the name, the topic, the MQTT
// broker), never a secret's value. Every POST and the download with
// secrets need the owner (routes' gate, owner.Guard).
//
// sensord stays unprivileged and never writes sensord.conf: it checks a
// change with CheckSettings against the whole resulting set, then spools
// it as a settings.Request in its runtime directory; a root path unit
// (sensord-settings-apply.path) runs `sensorctl apply-settings`, which
// checks it again, writes the file through settings.Edit, restarts
// sensord (and the network's services when their settings changed) and
// records a settings.Status, which GET shows.
type settingsPanel struct {
	// Lookup reads the environment sensord started with: systemd's
	// EnvironmentFile= passes it every line of sensord.conf.
	Lookup func(string) (string, bool)
	// Spool is where a request is written ("": no root helper, so
	// changes are refused with the reason).
	Spool string
	// StatusPath is the root helper's settings.Status.
	StatusPath string
	// ImagerPath is what `sensorctl imager-import` carried over from
	// Raspberry Pi Imager's files and what it left (paths.ImagerReport).
	ImagerPath string
	Writable   bool
	Log        *slog.Logger
	// Owner guards the download with secrets.
	Owner func(http.Handler) http.Handler
	// shows is settingShows(), made once.
	shows map[string]func(string) string
	// instance names this run of sensord in the IDs of its requests, so
	// a restarted sensord never reuses one.
	instance string

	spooling sync.Mutex    // one request written at a time
	accepted atomic.Uint64 // requests spooled for the root helper
	refused  atomic.Uint64 // requests answered 4xx/5xx
}

// newSettingsPanel places the spool and the status beside
// $RUNTIME_DIRECTORY (paths.SettingsRequest, paths.SettingsStatus).
func newSettingsPanel(runtimeDir string, lookup func(string) (string, bool), log *slog.Logger) *settingsPanel {
	p := &settingsPanel{Lookup: lookup, Log: log, ImagerPath: paths.ImagerReport, shows: settingShows(), instance: rand.Text()}
	if p.Lookup == nil {
		p.Lookup = func(string) (string, bool) { return "", false }
	}
	if runtimeDir != "" {
		p.Spool = filepath.Join(runtimeDir, paths.SettingsRequestName)
		p.StatusPath = filepath.Join(filepath.Dir(runtimeDir), filepath.Base(paths.SettingsStateDir), paths.SettingsStatusName)
	}
	return p
}

// maxSettingsBody bounds a POST's body: a whole file's values, JSON-escaped.
const maxSettingsBody = settings.MaxRequestBytes

// settingVar is one variable on the page.
type settingVar struct {
	Name    string `json:"name"`
	Flag    string `json:"flag,omitempty"`
	Doc     string `json:"doc"`
	Default string `json:"default"`
	// Value is what sensord started with ("" for a secret, or unset).
	Value string `json:"value,omitempty"`
	Set   bool   `json:"set"`
	// Secret: the value is never shown, only whether it is Set.
	Secret bool `json:"secret,omitempty"`
}

type settingSection struct {
	Title string       `json:"title"`
	Doc   string       `json:"doc"`
	Vars  []settingVar `json:"vars"`
}

// settingsInfo is GET /api/settings's body.
type settingsInfo struct {
	Writable bool `json:"writable"`
	// Available is false without the root helper (no runtime directory:
	// make run on a laptop); the page then says changes cannot apply.
	Available bool             `json:"available"`
	Pending   bool             `json:"pending"`
	Last      *settings.Status `json:"last,omitempty"`
	// Imager is the first boot's import of Raspberry Pi Imager's
	// settings, one line each, as the journal has it (none: no import).
	Imager   []string         `json:"imager,omitempty"`
	Sections []settingSection `json:"sections"`
}

// current is every variable of sensord.conf that sensord's environment
// holds.
func (p *settingsPanel) current() map[string]string {
	vals := map[string]string{}
	for _, s := range settings.Appliance().Sections {
		for _, v := range s.Vars {
			if val, ok := p.Lookup(v.Name); ok {
				vals[v.Name] = val
			}
		}
	}
	return vals
}

func (p *settingsPanel) info() settingsInfo {
	in := settingsInfo{Writable: p.Writable, Available: p.Spool != ""}
	cur := p.current()
	for _, s := range settings.Appliance().Sections {
		sec := settingSection{Title: s.Title, Doc: s.Doc}
		for _, v := range s.Vars {
			sv := settingVar{Name: v.Name, Flag: v.Flag, Doc: v.Doc, Default: v.Default}
			val, ok := cur[v.Name]
			sv.Set = ok && val != ""
			sv.Value, sv.Secret = p.show(v.Name, val)
			if settings.Secret(v.Name) || !ok {
				sv.Value = ""
			}
			sec.Vars = append(sec.Vars, sv)
		}
		in.Sections = append(in.Sections, sec)
	}
	if p.Spool != "" {
		_, err := os.Lstat(p.Spool)
		in.Pending = err == nil
	}
	if st, err := readSettingsStatus(p.StatusPath); err == nil {
		in.Last = &st
	}
	in.Imager = readLines(p.ImagerPath, maxStatusBytes, maxImagerLines)
	return in
}

// maxImagerLines bounds the Imager report's lines: one a setting Imager
// writes, and one a part of its files left unused.
const maxImagerLines = 64

// readLines reads at most max lines of at most n bytes of path (nil when
// it cannot be read).
func readLines(path string, n int64, max int) []string {
	if path == "" {
		return nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	b, _ := io.ReadAll(io.LimitReader(f, n))
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" && len(out) < max {
			out = append(out, l)
		}
	}
	return out
}

// maxStatusBytes bounds the root helper's status file.
const maxStatusBytes = 16 << 10

func readSettingsStatus(path string) (settings.Status, error) {
	var st settings.Status
	if path == "" {
		return st, os.ErrNotExist
	}
	f, err := os.Open(path)
	if err != nil {
		return st, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxStatusBytes))
	if err != nil {
		return st, err
	}
	return st, json.Unmarshal(b, &st)
}

func (p *settingsPanel) handleGet(w http.ResponseWriter, r *http.Request) {
	httpjson.Write(w, http.StatusOK, p.info())
}

// refuse answers a refused request and counts it.
func (p *settingsPanel) refuse(w http.ResponseWriter, status int, msg string) {
	p.refused.Add(1)
	httpjson.WriteError(w, status, msg)
}

// readBody reads a POST's body of at most maxSettingsBody.
func (p *settingsPanel) readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxSettingsBody))
	if err != nil {
		p.refuse(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("the body is larger than %d bytes", maxSettingsBody))
		return nil, false
	}
	return b, true
}

// changeBody is POST /api/settings's body.
type changeBody struct {
	Set   map[string]string `json:"set"`
	Unset []string          `json:"unset"`
}

func (p *settingsPanel) handleChange(w http.ResponseWriter, r *http.Request) {
	b, ok := p.readBody(w, r)
	if !ok {
		return
	}
	var c changeBody
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		p.refuse(w, http.StatusBadRequest, `send {"set":{"NAME":"value"},"unset":["NAME"]}: `+err.Error())
		return
	}
	if len(c.Set) == 0 && len(c.Unset) == 0 {
		p.refuse(w, http.StatusBadRequest, "nothing to change: name a setting in set or unset")
		return
	}
	p.submit(w, settings.Request{Action: settings.ActionChange, Set: c.Set, Unset: c.Unset})
}

// resetBody is POST /api/settings/reset's body: the person's choice.
type resetBody struct {
	History string `json:"history"` // keep or clear
}

// kept are the settings a reset leaves: the network (Wi-Fi, host name,
// SSH keys, time) so the appliance stays reachable where it is, and the
// owner token so its owner can still manage it.
func keptByReset(name string) bool {
	return !strings.HasPrefix(name, "SENSORD_") || name == "SENSORD_OWNER_TOKEN"
}

func (p *settingsPanel) handleReset(w http.ResponseWriter, r *http.Request) {
	b, ok := p.readBody(w, r)
	if !ok {
		return
	}
	var rb resetBody
	if err := json.Unmarshal(b, &rb); err != nil || (rb.History != "keep" && rb.History != "clear") {
		p.refuse(w, http.StatusBadRequest, `send {"history":"keep"} or {"history":"clear"}: whether the stored readings stay`)
		return
	}
	q := settings.Request{Action: settings.ActionReset, ClearHistory: rb.History == "clear"}
	for _, s := range settings.Appliance().Sections {
		for _, v := range s.Vars {
			if !keptByReset(v.Name) {
				q.Unset = append(q.Unset, v.Name)
			}
		}
	}
	p.submit(w, q)
}

func (p *settingsPanel) handleUpload(w http.ResponseWriter, r *http.Request) {
	b, ok := p.readBody(w, r)
	if !ok {
		return
	}
	vals, err := settings.Parse(b, settings.Appliance())
	if err != nil {
		p.refuse(w, http.StatusBadRequest, "this is no sensord.conf to restore: "+strings.TrimPrefix(err.Error(), settings.ErrValue.Error()+": "))
		return
	}
	// The file is the whole set: what it does not name takes its default,
	// except a secret a download without secrets left out, which stays.
	q := settings.Request{Action: settings.ActionRestore, Set: vals}
	cur := p.current()
	for _, s := range settings.Appliance().Sections {
		for _, v := range s.Vars {
			if _, in := vals[v.Name]; in {
				continue
			}
			if settings.Secret(v.Name) || p.withheld(v.Name, cur) {
				continue
			}
			q.Unset = append(q.Unset, v.Name)
		}
	}
	p.submit(w, q)
}

// withheld reports whether a download without secrets leaves name out
// although it is set: a secret, or a value with a credential in it.
func (p *settingsPanel) withheld(name string, cur map[string]string) bool {
	v, ok := cur[name]
	if !ok {
		return false
	}
	_, hidden := p.show(name, v)
	return hidden
}

// show is how the page shows the value v of variable name: as the
// flag's own messages show it (a URL without its password), and a
// secret not at all (only whether it is set, elsewhere); hidden when
// either leaves something out.
func (p *settingsPanel) show(name, v string) (shown string, hidden bool) {
	if settings.Secret(name) {
		return "", true
	}
	if f := p.shows[name]; f != nil {
		if sh := f(v); sh != v {
			return sh, true
		}
	}
	return v, false
}

// submitted is a 202's body: the request's ID, which its outcome
// (settingsInfo's Last) carries. The helper records the outcome after
// sensord's restart returned, which systemd does once the new sensord is
// ready, so an applied outcome with this ID means sensord runs with it.
type submitted struct {
	Status string `json:"status"`
	ID     string `json:"id"`
}

// submit checks the settings q would leave, then spools q for the root
// helper; 202 once it is spooled.
func (p *settingsPanel) submit(w http.ResponseWriter, q settings.Request) {
	vals := p.current()
	for _, k := range q.Unset {
		delete(vals, k)
	}
	for k, v := range q.Set {
		vals[k] = v
	}
	for k := range q.Set {
		if !knownSetting(k) {
			p.refuse(w, http.StatusBadRequest, fmt.Sprintf("%q is not a setting of sensord.conf", clipText(k)))
			return
		}
	}
	for _, k := range q.Unset {
		if !knownSetting(k) {
			p.refuse(w, http.StatusBadRequest, fmt.Sprintf("%q is not a setting of sensord.conf", clipText(k)))
			return
		}
	}
	if err := CheckSettings(vals); err != nil {
		p.refuse(w, http.StatusBadRequest, strings.TrimPrefix(err.Error(), ErrSettings.Error()+": "))
		return
	}
	if p.Spool == "" {
		p.refuse(w, http.StatusServiceUnavailable, "the settings are good, but this sensord runs without the image's settings helper, so it cannot write sensord.conf: edit the file and restart sensord")
		return
	}
	p.spooling.Lock()
	defer p.spooling.Unlock()
	if _, err := os.Lstat(p.Spool); err == nil {
		p.refuse(w, http.StatusConflict, "a change is being applied; wait until sensord has restarted, then try again")
		return
	}
	q.ID = fmt.Sprintf("%s-%d", p.instance, p.accepted.Load()+1)
	body, err := json.Marshal(q)
	if err != nil {
		p.refuse(w, http.StatusInternalServerError, err.Error())
		return
	}
	if err := atomicfile.WriteFile(p.Spool, body, 0o600); err != nil {
		p.refuse(w, http.StatusInternalServerError, "could not pass the change on: "+err.Error())
		return
	}
	p.accepted.Add(1)
	p.Log.Info("owner changed the settings; applying them", "id", q.ID, "action", q.Action, "changed", strings.Join(q.Names(), ","), "clear_history", q.ClearHistory)
	httpjson.Write(w, http.StatusAccepted, submitted{Status: "the settings are good; sensord restarts to apply them", ID: q.ID})
}

func knownSetting(name string) bool {
	for _, s := range settings.Appliance().Sections {
		for _, v := range s.Vars {
			if v.Name == name {
				return true
			}
		}
	}
	return false
}

// clipText shortens outside text a message repeats.
func clipText(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

// handleDownload writes the settings sensord runs with as a sensord.conf
// (rendered with every other variable commented out, so the file is also
// the reference). Without ?secrets=1 a secret, and a value with a
// credential in it, is left out: the restore keeps what the appliance has.
func (p *settingsPanel) handleDownload(w http.ResponseWriter, r *http.Request) {
	secrets := r.URL.Query().Get("secrets") == "1"
	if secrets && p.Owner != nil {
		p.Owner(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { p.download(w, true) })).ServeHTTP(w, r)
		return
	}
	p.download(w, secrets)
}

func (p *settingsPanel) download(w http.ResponseWriter, secrets bool) {
	cur := p.current()
	set := map[string]string{}
	for k, v := range cur {
		if !secrets && p.withheld(k, cur) {
			continue
		}
		set[k] = v
	}
	var b bytes.Buffer
	if err := settings.Render(&b, settings.Appliance(), set); err != nil {
		httpjson.WriteError(w, http.StatusInternalServerError, err.Error())
		return
	}
	name := "sensord.conf"
	if !secrets {
		name = "sensord-no-secrets.conf"
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="`+name+`"`)
	w.Header().Set("Cache-Control", "no-store")
	w.Write(b.Bytes())
}

// register and writeMetrics do nothing on a nil panel (a daemon built by
// hand in a test).
func (p *settingsPanel) register(mux *http.ServeMux) {
	if p == nil {
		return
	}
	mux.HandleFunc("GET /api/settings", p.handleGet)
	mux.HandleFunc("POST /api/settings", p.handleChange)
	mux.HandleFunc("POST /api/settings/reset", p.handleReset)
	mux.HandleFunc("GET /api/settings/download", p.handleDownload)
	mux.HandleFunc("POST /api/settings/upload", p.handleUpload)
}

func (p *settingsPanel) writeMetrics(m *promtext.Writer) {
	if p == nil {
		return
	}
	m.Family("sensord_settings_requests_total", promtext.Counter, "Settings changes, resets and restores from the dashboard, by result (refused: a bad value, too big, malformed, one already being applied, no helper).")
	m.Sample("sensord_settings_requests_total", `result="accepted"`, float64(p.accepted.Load()))
	m.Sample("sensord_settings_requests_total", `result="refused"`, float64(p.refused.Load()))
}
