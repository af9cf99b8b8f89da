package web_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"

	"sensord/cmd/sensord/web"
)

// The daemon mounts the dashboard at "/" beside its API; the longer
// patterns win, so /api/... and /ws/... never reach the page's handler.
func ExampleNew() {
	mux := http.NewServeMux()
	mux.Handle("/", web.New(web.Options{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, `{"status":"ok"}`) })

	req := httptest.NewRequest("GET", "/", nil)
	req.Header.Set("Accept-Encoding", "gzip")
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, req)
	fmt.Println(rec.Code, rec.Header().Get("Content-Type"), rec.Header().Get("Content-Encoding"))
	// Output: 200 text/html; charset=utf-8 gzip
}
