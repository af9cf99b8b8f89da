package web

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestOptionsNameThePageAndAllowTheFramingOrigins(t *testing.T) {
	for _, tc := range []struct {
		name      string
		o         Options
		wantTitle string
		wantCSP   string
	}{
		{"defaults", Options{}, "<title>sensord</title>", "frame-ancestors 'none'"},
		{"a name, escaped", Options{Name: "kitchen<pi>"}, "<title>kitchen&lt;pi&gt;</title>", "frame-ancestors 'none'"},
		{"framing origins", Options{FrameAncestors: " http://ha.local:8123   https://nr.local "}, "<title>sensord</title>", "frame-ancestors http://ha.local:8123 https://nr.local"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			New(tc.o).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
			body := rec.Body.String()
			if !strings.Contains(body, tc.wantTitle) {
				t.Errorf("page lacks %s", tc.wantTitle)
			}
			if csp := rec.Header().Get("Content-Security-Policy"); !strings.HasSuffix(csp, tc.wantCSP) {
				t.Errorf("CSP %q does not end in %q", csp, tc.wantCSP)
			}
			if tc.o.Name != "" && !strings.Contains(body, `<h1 id="name">kitchen&lt;pi&gt;</h1>`) {
				t.Errorf("heading does not carry the name")
			}
		})
	}
}
