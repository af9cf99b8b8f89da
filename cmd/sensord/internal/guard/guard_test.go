package guard

import (
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
)

func TestNormHostDropsPortCaseBracketsAndTheTrailingDot(t *testing.T) {
	for in, want := range map[string]string{
		"sensord.local":       "sensord.local",
		"SENSORD.Local.:8080": "sensord.local",
		"[::1]:80":            "::1",
		"[fe80::1]":           "fe80::1",
		" 127.0.0.1:443 ":     "127.0.0.1",
		"":                    "",
	} {
		if got := NormHost(in); got != want {
			t.Errorf("NormHost(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestHostsLetsInTheListedNamesAndCountsTheRest(t *testing.T) {
	var refused atomic.Uint64
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	h := Hosts([]string{"sensord.local", " ", "[::1]"}, &refused, ok)
	for host, want := range map[string]int{
		"sensord.local:80": http.StatusNoContent,
		"[::1]:8080":       http.StatusNoContent,
		"evil.example":     http.StatusMisdirectedRequest,
		"":                 http.StatusMisdirectedRequest,
	} {
		req := httptest.NewRequest("GET", "/healthz", nil)
		req.Host = host
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != want {
			t.Errorf("Host %q: %d, want %d", host, rec.Code, want)
		}
	}
	if refused.Load() != 2 {
		t.Errorf("refused = %d, want 2", refused.Load())
	}
}

func TestTokenAcceptsTheBearerTheQueryAndTheCookieItSets(t *testing.T) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	h := Token("s3cret", nil, ok)
	do := func(target string, hdr ...string) *httptest.ResponseRecorder {
		req := httptest.NewRequest("GET", target, nil)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	if rec := do("/", "Authorization", "Bearer s3cret"); rec.Code != http.StatusNoContent || rec.Header().Get("Set-Cookie") != "" {
		t.Errorf("bearer: %d, Set-Cookie %q (a script needs no cookie)", rec.Code, rec.Header().Get("Set-Cookie"))
	}
	rec := do("/?access_token=s3cret")
	if rec.Code != http.StatusNoContent || len(rec.Result().Cookies()) != 1 {
		t.Fatalf("query: %d, cookies %v", rec.Code, rec.Result().Cookies())
	}
	c := rec.Result().Cookies()[0]
	if rec := do("/app.js", "Cookie", c.Name+"="+c.Value); rec.Code != http.StatusNoContent {
		t.Errorf("cookie: %d", rec.Code)
	}
	if rec := do("/app.js", "Cookie", c.Name+"=d3Jvbmc"); rec.Code != http.StatusUnauthorized {
		t.Errorf("a wrong cookie: %d, want 401", rec.Code)
	}
	if rec := do("/", "Accept", "text/html"); rec.Code != http.StatusUnauthorized || rec.Header().Get("Content-Type") != "text/html; charset=utf-8" {
		t.Errorf("a browser without the token: %d %s, want the token page", rec.Code, rec.Header().Get("Content-Type"))
	}
}
