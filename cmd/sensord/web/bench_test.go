package web

import (
	"compress/gzip"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"testing"
)

// discard is a ResponseWriter that keeps nothing, so the benchmarks measure
// the handler rather than a recorder's buffer.
type discard struct{ h http.Header }

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) Write(b []byte) (int, error) { return len(b), nil }
func (d *discard) WriteHeader(int)             {}

// BenchmarkServePage compares the handler, which compressed the page once,
// with the baseline it replaces: gzip on every request, as a generic
// compression middleware in front of http.FileServer would do.
func BenchmarkServePage(b *testing.B) {
	req := httptest.NewRequest("GET", "/app.js", nil)
	req.Header.Set("Accept-Encoding", "gzip, deflate, br")

	b.Run("precompressed", func(b *testing.B) {
		h := defaultPage()
		w := &discard{h: http.Header{}}
		b.ReportAllocs()
		for b.Loop() {
			clear(w.h)
			h.ServeHTTP(w, req)
		}
	})

	b.Run("baseline gzip per request", func(b *testing.B) {
		root, err := fs.Sub(files, "static")
		if err != nil {
			b.Fatal(err)
		}
		fsrv := http.FileServerFS(root)
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Encoding", "gzip")
			zw := gzip.NewWriter(w)
			fsrv.ServeHTTP(gzipWriter{w, zw}, r)
			zw.Close()
		})
		w := &discard{h: http.Header{}}
		b.ReportAllocs()
		for b.Loop() {
			clear(w.h)
			h.ServeHTTP(w, req)
		}
	})
}

type gzipWriter struct {
	http.ResponseWriter
	zw io.Writer
}

func (g gzipWriter) Write(b []byte) (int, error) { return g.zw.Write(b) }
