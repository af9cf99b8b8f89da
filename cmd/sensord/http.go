package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"runtime/metrics"
	"strings"
	"sync/atomic"
	"time"

	"sensord/broadcast"
	"sensord/cmd/sensord/web"
)

// tokenCookie carries -token for a browser after it opened the page with
// ?access_token=: browsers cannot set an Authorization header on a
// WebSocket, and the page's own assets are fetched without the query. Its
// value is the token in unpadded base64url, which every cookie carries
// unchanged whatever the token holds (';', '"', '\\', non-ASCII).
const tokenCookie = "sensord_token"

// tokenPage is what a browser (Accept: text/html) gets without the token:
// what is needed, and a field to give it, which comes back as
// ?access_token= and so sets the cookie. Scripts keep the JSON 401.
const tokenPage = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>sensord: token needed</title></head>
<body style="font-family:sans-serif;max-width:30em;margin:3em auto">
<h1>A token is needed</h1>
<p>This sensord is set up with an access token (<code>-token</code>). Enter it to open the dashboard; the browser keeps it in a cookie for this device.</p>
<form method="get"><label>Token <input type="password" name="access_token" autocomplete="current-password" autofocus required></label>
<button type="submit">Open</button></form>
</body></html>
`

// routes is the whole HTTP surface, separate from serve so tests can mount
// it on httptest.
func (d *daemon) routes() http.Handler {
	mux := http.NewServeMux()
	// The page and its assets; every more specific pattern below wins.
	mux.Handle("GET /", web.New(d.webOptions()))
	if d.cfg.Mode != "client" {
		mux.Handle("GET /ws/sensors", d.sensors)
	}
	mux.Handle("GET /ws/api", d.api)
	mux.Handle("GET /ws/dashboard", d.dash)
	mux.HandleFunc("GET /healthz", d.handleHealth)
	mux.HandleFunc("GET /api/latest", d.handleLatest)
	mux.HandleFunc("GET /api/history", d.handleHistory)
	mux.HandleFunc("GET /metrics", d.handleMetrics)
	d.update.register(mux)
	var h http.Handler = mux
	if d.cfg.Token != "" {
		h = requireToken(d.cfg.Token, h)
	}
	return d.hostGuard(h)
}

// hostGuard puts -allowed-hosts in front of h (when it is set).
func (d *daemon) hostGuard(h http.Handler) http.Handler {
	if d.cfg.AllowedHosts == "" {
		return h
	}
	return allowHosts(strings.Split(d.cfg.AllowedHosts, ","), &d.hostsRefused, h)
}

// allowHosts answers 421 to a request whose Host is not one of hosts
// (names or addresses, any port, case-insensitive), counting it in
// refused: a page on another site that a DNS-rebinding attack points at
// this address sends its own name as Host, and is shut out.
func allowHosts(hosts []string, refused *atomic.Uint64, next http.Handler) http.Handler {
	allowed := map[string]bool{}
	for _, h := range hosts {
		if h = normHost(h); h != "" {
			allowed[h] = true
		}
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !allowed[normHost(r.Host)] {
			refused.Add(1)
			writeJSON(w, http.StatusMisdirectedRequest, errorBody{"this host name is not served here (-allowed-hosts)"})
			return
		}
		next.ServeHTTP(w, r)
	})
}

// normHost is a Host header or allow-list entry without its port, in
// lower case, without a trailing dot; IPv6 without its brackets.
func normHost(h string) string {
	h = strings.TrimSpace(h)
	if host, _, err := net.SplitHostPort(h); err == nil {
		h = host
	}
	h = strings.TrimSuffix(strings.TrimSuffix(strings.TrimPrefix(h, "["), "]"), ".")
	return strings.ToLower(h)
}

// requireToken lets a request through when it carries the token as a bearer
// header, an access_token query parameter or the cookie set after one.
func requireToken(token string, next http.Handler) http.Handler {
	cookie := base64.RawURLEncoding.EncodeToString([]byte(token))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if broadcast.Authorized(r, token) {
			if broadcast.TokenEqual(r.URL.Query().Get("access_token"), token) {
				http.SetCookie(w, &http.Cookie{Name: tokenCookie, Value: cookie, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
			}
			next.ServeHTTP(w, r)
			return
		}
		if c, err := r.Cookie(tokenCookie); err == nil && broadcast.TokenEqual(c.Value, cookie) {
			next.ServeHTTP(w, r)
			return
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="sensord"`)
		if wantsHTML(r) {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.Header().Set("Cache-Control", "no-store")
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, tokenPage)
			return
		}
		writeJSON(w, http.StatusUnauthorized, errorBody{"missing or wrong token: send Authorization: Bearer <token> or ?access_token=<token>"})
	})
}

// wantsHTML reports whether r comes from a browser navigating to a page
// (its Accept names text/html), not from a script or a WebSocket.
func wantsHTML(r *http.Request) bool {
	for _, v := range r.Header.Values("Accept") {
		if strings.Contains(strings.ToLower(v), "text/html") {
			return true
		}
	}
	return false
}

type errorBody struct {
	Error string `json:"error"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

// answer is /ws/api's websocket-in: each request gets its reply on the same
// session only, as the reference flow's function node does with _session.
func (d *daemon) answer(in broadcast.Incoming) {
	reply := func(v any) {
		// Publish counts and drops a reply to a client that has gone.
		_ = d.api.Publish(broadcast.Message{Topic: "api", Session: in.Session, Payload: v})
	}
	if !in.JSON {
		reply(errorBody{`malformed request: send a JSON object such as {"action":"get_status"}`})
		return
	}
	action, _ := in.Msg["action"].(string)
	switch action {
	case "get_status":
		reply(d.status())
	case "get_latest":
		if r, ok := d.poller.Latest(); ok {
			reply(r)
			return
		}
		reply(errorBody{"no reading yet"})
	case "":
		reply(errorBody{`missing "action": known actions are get_status, get_latest`})
	default:
		reply(errorBody{fmt.Sprintf("unknown action %q: known actions are get_status, get_latest", action)})
	}
}

// statusReply is get_status's answer, the reference flow's shape.
type statusReply struct {
	Status string      `json:"status"`
	Uptime float64     `json:"uptime"` // seconds, like Node.js process.uptime()
	Memory uint64      `json:"memory"` // heap bytes in use
	Sensor sensorState `json:"sensor"`
}

func (d *daemon) status() statusReply {
	return statusReply{Status: "online", Uptime: d.uptime(), Memory: heapBytes(), Sensor: d.watch.current()}
}

func (d *daemon) uptime() float64 {
	return math.Round(time.Since(d.started).Seconds()*1000) / 1000
}

// heapBytes reads the live heap without stopping the world, unlike
// runtime.ReadMemStats, so a flood of get_status cannot stall the daemon.
func heapBytes() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}

type health struct {
	Status  string         `json:"status"`
	Reason  string         `json:"reason,omitempty"`
	Version string         `json:"version"`
	Uptime  float64        `json:"uptime"`
	Sensor  sensorHealth   `json:"sensor"`
	Clients map[string]int `json:"clients"`
	Client  *clientHealth  `json:"client,omitempty"`
	// TLSFingerprint is the SHA-256 of the served certificate, to compare
	// with what a browser shows for a self-signed one.
	TLSFingerprint string      `json:"tls_fingerprint,omitempty"`
	Name           string      `json:"name"`
	MQTT           *mqttHealth `json:"mqtt,omitempty"`
	Warnings       []string    `json:"warnings"`
	Extra          healthExtra `json:"extra"`
}

type sensorHealth struct {
	Name          string            `json:"name"`
	Period        float64           `json:"period"`
	Reads         uint64            `json:"reads"`
	Successes     uint64            `json:"successes"`
	Held          uint64            `json:"held"`
	SuccessRate   float64           `json:"success_rate"`
	Errors        map[string]uint64 `json:"errors"`
	LastError     string            `json:"last_error,omitempty"`
	LastErrorTime int64             `json:"last_error_time,omitempty"`
	LastSuccess   int64             `json:"last_success,omitempty"`
	sensorState
}

type clientHealth struct {
	URL      string `json:"url"`
	State    string `json:"state"`
	Reason   string `json:"reason,omitempty"`
	Attempts int    `json:"attempts"`
	Dropped  uint64 `json:"dropped"`
}

// health reports 200 while the sensor read well within the last three
// periods and the broadcasters are alive, 503 with the reason otherwise.
func (d *daemon) health(now time.Time) (int, health) {
	st := d.poller.Stats()
	h := health{
		Status:  "ok",
		Version: version,
		Uptime:  d.uptime(),
		Sensor: sensorHealth{
			Name:      d.dev.String(),
			Period:    d.cfg.Period.Seconds(),
			Reads:     st.Reads,
			Successes: st.Successes,
			Held:      st.Held,
			Errors:    st.Errors,
			LastError: st.LastError,
		},
		Clients:  map[string]int{},
		Warnings: d.warnings,

		TLSFingerprint: d.tlsFingerprint,
	}
	if h.Warnings == nil {
		h.Warnings = []string{}
	}
	h.Sensor.sensorState, h.Extra = d.watch.current(), d.healthExtra()
	if st.Reads > 0 {
		h.Sensor.SuccessRate = math.Round(float64(st.Successes)/float64(st.Reads)*10000) / 10000
	}
	if !st.LastErrorTime.IsZero() {
		h.Sensor.LastErrorTime = st.LastErrorTime.UnixMilli()
	}
	if !st.LastSuccess.IsZero() {
		h.Sensor.LastSuccess = st.LastSuccess.UnixMilli()
	}
	for path, s := range d.servers() {
		h.Clients[path] = s.Clients()
	}
	if d.client != nil {
		cs := d.client.State()
		h.Client = &clientHealth{URL: broadcast.RedactURL(d.cfg.URL), State: cs.State, Reason: cs.Reason, Attempts: cs.Attempts, Dropped: cs.Dropped}
	}

	// A fresh daemon gets three periods (and a second of slack for the
	// read itself) before a missing reading counts against it.
	window := 3*d.cfg.Period + time.Second
	since := st.LastSuccess
	if since.IsZero() {
		since = d.started
	}
	switch err := d.healthy(); {
	case err != nil:
		h.Status, h.Reason = "unhealthy", err.Error()
	case now.Sub(since) > window:
		h.Status = "unhealthy"
		h.Reason = fmt.Sprintf("no good reading for %s (expected one every %s)", now.Sub(since).Round(time.Second), d.cfg.Period)
		if st.LastError != "" {
			h.Reason += "; last error: " + st.LastError
		}
	}
	if h.Status == "ok" && st.LastSuccess.IsZero() {
		// Within the start-up grace, but nothing proves the sensor works.
		h.Status, h.Reason = "starting", "no good reading yet"
	}
	d.mqttHealth(&h)
	if h.Status == "unhealthy" {
		return http.StatusServiceUnavailable, h
	}
	return http.StatusOK, h
}

func (d *daemon) handleHealth(w http.ResponseWriter, r *http.Request) {
	code, h := d.health(time.Now())
	writeJSON(w, code, h)
}

func (d *daemon) handleLatest(w http.ResponseWriter, r *http.Request) {
	if rd, ok := d.poller.Latest(); ok {
		writeJSON(w, http.StatusOK, withDerived(rd))
		return
	}
	writeJSON(w, http.StatusNotFound, errorBody{"no reading yet"})
}

// redactURL is broadcast.RedactURL, for config.go's messages.
func redactURL(raw string) string { return broadcast.RedactURL(raw) }
