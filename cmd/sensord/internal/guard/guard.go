// Package guard is sensord's front door: the access token (-token), the
// owner token (-owner-token) that every writing request needs, and the
// Host allow-list (-allowed-hosts), each an http.Handler in front of
// every route, WebSocket upgrades included.
//
// # Concurrency
//
// The handlers are read-only once built and safe for concurrent use.
package guard

import (
	"encoding/base64"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"sensord/broadcast"
	"sensord/cmd/sensord/internal/httpjson"
)

// Cookie carries the token for a browser after it opened the page with
// ?access_token=: browsers cannot set an Authorization header on a
// WebSocket, and the page's own assets are fetched without the query. Its
// value is the token in unpadded base64url, which every cookie carries
// unchanged whatever the token holds (';', '"', '\\', non-ASCII).
const Cookie = "sensord_token"

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

// Token lets a request through to next when it carries token as a bearer
// header, an access_token query parameter (which also sets Cookie) or the
// cookie set after one, or the owner token of owner (nil: none) as a
// bearer header. Others get 401: a page with a field for the token for a
// browser, JSON for a script.
func Token(token string, owner *Owner, next http.Handler) http.Handler {
	cookie := base64.RawURLEncoding.EncodeToString([]byte(token))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if owner != nil {
			var v verdict
			var after time.Duration
			r, v, after = owner.verifyOnce(r)
			switch v {
			case granted:
				next.ServeHTTP(w, r)
				return
			case tooSoon:
				owner.refuseSoon(w, after)
				return
			}
		}
		if broadcast.Authorized(r, token) {
			if broadcast.TokenEqual(r.URL.Query().Get("access_token"), token) {
				http.SetCookie(w, &http.Cookie{Name: Cookie, Value: cookie, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
			}
			next.ServeHTTP(w, r)
			return
		}
		if c, err := r.Cookie(Cookie); err == nil && broadcast.TokenEqual(c.Value, cookie) {
			next.ServeHTTP(w, r)
			return
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="sensord"`)
		if wantsHTML(r) {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.Header().Set("Cache-Control", "no-store")
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, tokenPage) //nolint:errcheck // the client went away
			return
		}
		httpjson.WriteError(w, http.StatusUnauthorized, "missing or wrong token: send Authorization: Bearer <token> or ?access_token=<token>")
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

// Hosts answers 421 to a request whose Host is not one of hosts (names or
// addresses, any port, case-insensitive), counting it in refused: a page
// on another site that a DNS-rebinding attack points at this address
// sends its own name as Host, and is shut out.
func Hosts(hosts []string, refused *atomic.Uint64, next http.Handler) http.Handler {
	allowed := map[string]bool{}
	for _, h := range hosts {
		if h = NormHost(h); h != "" {
			allowed[h] = true
		}
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !allowed[NormHost(r.Host)] {
			refused.Add(1)
			httpjson.WriteError(w, http.StatusMisdirectedRequest, "this host name is not served here (-allowed-hosts)")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// NormHost is a Host header or allow-list entry without its port, in
// lower case, without a trailing dot; IPv6 without its brackets.
func NormHost(h string) string {
	h = strings.TrimSpace(h)
	if host, _, err := net.SplitHostPort(h); err == nil {
		h = host
	}
	h = strings.TrimSuffix(strings.TrimSuffix(strings.TrimPrefix(h, "["), "]"), ".")
	return strings.ToLower(h)
}
