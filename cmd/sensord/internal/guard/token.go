package guard

import (
	"crypto/subtle"
	"net/http"
	"net/url"
	"strings"
)

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

// SameOrigin reports whether r may have come from this appliance's own
// pages: a browser names the page's origin in Origin, which must then be
// this Host; a request without Origin does not come from a browser's
// page (curl, scripts) and passes.
func SameOrigin(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	u, err := url.Parse(o)
	return err == nil && strings.EqualFold(u.Host, r.Host)
}
