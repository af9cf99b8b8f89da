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

	"sensord/cmd/sensord/internal/httpjson"
)

// Cookie carries the token for a browser after it opened the page with
// ?access_token=: browsers cannot set an Authorization header on a
// WebSocket, and the page's own assets are fetched without the query. Its
// value is the token in unpadded base64url, which every cookie carries
// unchanged whatever the token holds (';', '"', '\\', non-ASCII).
const Cookie = "sensord_token"

// cookieLife is how long a browser keeps Cookie: a year (browsers cap a
// cookie's life at about that), so the page's "this browser keeps it"
// holds across restarts of the browser.
const cookieLife = 365 * 24 * time.Hour

// tokenPage is what a browser (Accept: text/html) gets without the token:
// what is needed, where it is set, and a field to give it, which comes
// back as ?access_token=, sets the cookie and is redirected away from the
// address bar. {{wrong}} is replaced by the wrong-token message or
// nothing. Styled like the dashboard (its colours, both schemes), inline:
// the dashboard's own style sheet is behind the token too.
const tokenPage = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<meta name="color-scheme" content="light dark">
<title>sensord: token needed</title>
<style>
:root{color-scheme:light dark;--bg:#f3f5f7;--card:#fff;--line:#dde2e8;--text:#16202a;--muted:#4f5d6b;--bad:#b91c1c;--bad-bg:#fdecec;--focus:#2563eb}
@media (prefers-color-scheme:dark){:root{--bg:#0e1318;--card:#171f27;--line:#2a3540;--text:#e6edf3;--muted:#9fadba;--bad:#f87171;--bad-bg:#3a1618;--focus:#60a5fa}}
body{margin:0;background:var(--bg);color:var(--text);font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}
main{max-width:30rem;margin:3rem auto;padding:1.5rem;background:var(--card);border:1px solid var(--line);border-radius:12px}
h1{font-size:1.25rem;margin:0 0 .75rem}p{color:var(--muted)}code{color:var(--text)}
.wrong{color:var(--bad);background:var(--bad-bg);padding:.5rem .75rem;border-radius:8px}
label{display:block;margin:1rem 0 .5rem}input{width:100%;font:inherit;padding:.5rem;border:1px solid var(--line);border-radius:8px;background:var(--bg);color:var(--text)}
button{margin-top:.75rem;font:inherit;padding:.5rem 1rem;border:1px solid var(--line);border-radius:8px;background:var(--text);color:var(--card);cursor:pointer}
:focus-visible{outline:2px solid var(--focus);outline-offset:2px}
</style></head>
<body><main>
<h1>A token is needed</h1>
{{wrong}}<p>This sensord is set up with an access token: <code>SENSORD_TOKEN</code> in <code>sensord.conf</code> on the SD card, or the <code>-token</code> flag. Enter it to open the dashboard; this browser keeps it in a cookie for a year.</p>
<form method="get"><label for="t">Token</label><input id="t" type="password" name="access_token" autocomplete="current-password" autofocus required>
<button type="submit">Open</button></form>
</main></body></html>
`

// wrongToken is the page's message after a wrong token.
const wrongToken = `<p class="wrong" role="alert">Wrong token: check it and enter it again.</p>
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
		if Authorized(r, token) {
			if TokenEqual(r.URL.Query().Get("access_token"), token) {
				http.SetCookie(w, &http.Cookie{Name: Cookie, Value: cookie, Path: "/", MaxAge: int(cookieLife / time.Second),
					Expires: time.Now().Add(cookieLife), HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
				if wantsHTML(r) && r.Method == http.MethodGet {
					// A page opened with the token: the cookie carries it
					// from now on, so take it out of the address bar (and
					// history, bookmarks, screenshots).
					u := *r.URL
					q := u.Query()
					q.Del("access_token")
					u.RawQuery = q.Encode()
					w.Header().Set("Cache-Control", "no-store")
					http.Redirect(w, r, u.RequestURI(), http.StatusSeeOther)
					return
				}
			}
			next.ServeHTTP(w, r)
			return
		}
		if c, err := r.Cookie(Cookie); err == nil && TokenEqual(c.Value, cookie) {
			next.ServeHTTP(w, r)
			return
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="sensord"`)
		if wantsHTML(r) {
			msg := ""
			if r.URL.Query().Has("access_token") {
				msg = wrongToken
			}
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.Header().Set("Cache-Control", "no-store")
			w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'")
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, strings.Replace(tokenPage, "{{wrong}}", msg, 1)) //nolint:errcheck // the client went away
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
