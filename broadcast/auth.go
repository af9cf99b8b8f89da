package broadcast

import (
	"crypto/subtle"
	"net/http"
	"net/url"
	"strings"
)

// redacted stands in for secrets in a URL that is shown (logs, /healthz).
const redacted = "REDACTED"

// BearerToken returns the token of an "Authorization: Bearer <token>"
// header value. The scheme is case-insensitive (RFC 9110 11.1) and any
// amount of spaces or tabs may surround it and the token.
func BearerToken(h string) (string, bool) {
	h = strings.TrimLeft(h, " \t")
	i := strings.IndexAny(h, " \t")
	if i < 0 || !strings.EqualFold(h[:i], "Bearer") {
		return "", false
	}
	tok := strings.Trim(h[i:], " \t")
	return tok, tok != ""
}

// TokenEqual compares a presented token with the configured one in
// constant time (for equal lengths), so that timing does not leak how
// much of a guess was right. An empty presented token never matches.
func TokenEqual(got, want string) bool {
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// Authorized reports whether r carries token, as a bearer Authorization
// header or an access_token query parameter (browsers cannot set headers
// on a WebSocket). This is the one token check of every sensord endpoint.
func Authorized(r *http.Request, token string) bool {
	if tok, ok := BearerToken(r.Header.Get("Authorization")); ok && TokenEqual(tok, token) {
		return true
	}
	return TokenEqual(r.URL.Query().Get("access_token"), token)
}

// RedactURL returns raw fit to be shown: userinfo and every query value
// are replaced by REDACTED (the keys stay, to tell what was set). A URL
// that does not parse is replaced whole.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return redacted
	}
	if u.User != nil {
		u.User = url.User(redacted)
	}
	if u.RawQuery != "" {
		q, err := url.ParseQuery(u.RawQuery)
		if err != nil {
			u.RawQuery = redacted
		} else {
			for k, vs := range q {
				for i := range vs {
					vs[i] = redacted
				}
				q[k] = vs
			}
			u.RawQuery = q.Encode()
		}
	}
	return u.String()
}
