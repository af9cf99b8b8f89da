package guard

import (
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"strings"
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

func TestTheTokenPageForABrowser(t *testing.T) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	h := Token("s3cret", nil, ok)
	browse := func(target string, secure bool) *httptest.ResponseRecorder {
		req := httptest.NewRequest("GET", target, nil)
		req.Header.Set("Accept", "text/html,application/xhtml+xml;q=0.9,*/*;q=0.8")
		if secure {
			req.TLS = &tls.ConnectionState{}
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	t.Run("the page names SENSORD_TOKEN in sensord.conf and -token, with no message", func(t *testing.T) {
		rec := browse("/", false)
		body := rec.Body.String()
		if rec.Code != http.StatusUnauthorized || !strings.Contains(body, "SENSORD_TOKEN") || !strings.Contains(body, "sensord.conf") ||
			!strings.Contains(body, "-token") || strings.Contains(body, "Wrong token") || !strings.Contains(body, "var(--card)") {
			t.Errorf("%d %s", rec.Code, body)
		}
	})
	t.Run("a wrong token says so", func(t *testing.T) {
		rec := browse("/?access_token=nope", false)
		if rec.Code != http.StatusUnauthorized || !strings.Contains(rec.Body.String(), "Wrong token") {
			t.Errorf("%d %s", rec.Code, rec.Body)
		}
	})
	t.Run("the right token sets a lasting cookie and leaves the address bar", func(t *testing.T) {
		for _, secure := range []bool{false, true} {
			rec := browse("/history?range=24h&access_token=s3cret", secure)
			if rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != "/history?range=24h" {
				t.Errorf("TLS %v: %d to %q, want 303 to /history?range=24h", secure, rec.Code, rec.Header().Get("Location"))
			}
			cs := rec.Result().Cookies()
			if len(cs) != 1 {
				t.Fatalf("cookies %v", cs)
			}
			c := cs[0]
			if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.MaxAge < 300*24*3600 || c.Expires.IsZero() || c.Secure != secure {
				t.Errorf("TLS %v: cookie %+v, want HttpOnly, SameSite=Strict, a year's life, Secure only under TLS", secure, c)
			}
		}
	})
}
