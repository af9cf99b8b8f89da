package web

import (
	"bytes"
	"compress/gzip"
	"io"
	"io/fs"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"
)

// pageBudget is the limit for the whole page (HTML, CSS, JS, icon)
// before compression.
const pageBudget = 100 * 1024

func get(t *testing.T, h http.Handler, method, target string, hdr map[string]string) *http.Response {
	t.Helper()
	req := httptest.NewRequest(method, target, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Result()
}

func body(t *testing.T, res *http.Response) []byte {
	t.Helper()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func gunzip(t *testing.T, b []byte) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("gunzip: %v", err)
	}
	out, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("gunzip: %v", err)
	}
	return out
}

func TestPageFitsTheSizeBudget(t *testing.T) {
	total, gz := 0, 0
	err := fs.WalkDir(files, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(files, p)
		total += len(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	h, err := newHandler(files, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for p, f := range h.files {
		if p == "/index.html" {
			continue // same file as "/"
		}
		if f.gz != nil {
			gz += len(f.gz.body)
		} else {
			gz += len(f.plain.body)
		}
	}
	t.Logf("page: %d bytes raw, %d bytes gzipped", total, gz)
	if total >= pageBudget {
		t.Errorf("page is %d bytes raw, want < %d", total, pageBudget)
	}
}

func TestPageLoadsNothingFromOutside(t *testing.T) {
	// The appliance has no internet: any absolute URL other than an XML
	// namespace name would be a fetch that hangs or fails.
	abs := regexp.MustCompile(`(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}`)
	err := fs.WalkDir(files, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(files, p)
		if err != nil {
			return err
		}
		for _, m := range abs.FindAll(b, -1) {
			if string(m) != "http://www.w3.org" {
				t.Errorf("%s refers to %s", p, m)
			}
		}
		for _, bad := range []string{"@import", "fonts.googleapis", "cdn"} {
			if bytes.Contains(bytes.ToLower(b), []byte(bad)) {
				t.Errorf("%s contains %q", p, bad)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestHandlerServesEachFileWithItsType(t *testing.T) {
	h := defaultPage()
	tests := []struct {
		path, ctype string
	}{
		{"/", "text/html; charset=utf-8"},
		{"/index.html", "text/html; charset=utf-8"},
		{"/app.js", "text/javascript; charset=utf-8"},
		{"/app.css", "text/css; charset=utf-8"},
		{"/favicon.svg", "image/svg+xml"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			res := get(t, h, "GET", tt.path, nil)
			if res.StatusCode != http.StatusOK {
				t.Fatalf("status = %d, want 200", res.StatusCode)
			}
			if got := res.Header.Get("Content-Type"); got != tt.ctype {
				t.Errorf("Content-Type = %q, want %q", got, tt.ctype)
			}
			if got := res.Header.Get("X-Content-Type-Options"); got != "nosniff" {
				t.Errorf("X-Content-Type-Options = %q, want nosniff", got)
			}
			if res.Header.Get("Content-Encoding") != "" {
				t.Errorf("Content-Encoding = %q without Accept-Encoding", res.Header.Get("Content-Encoding"))
			}
			if len(body(t, res)) == 0 {
				t.Error("empty body")
			}
		})
	}
}

func TestHandlerGzipsWhenTheClientAcceptsIt(t *testing.T) {
	h := defaultPage()
	plain := body(t, get(t, h, "GET", "/", nil))
	tests := []struct {
		accept string
		gzip   bool
	}{
		{"gzip", true},
		{"gzip, deflate, br, zstd", true},
		{"br;q=1.0, GZIP;q=0.5", true},
		{"*", true},
		{"identity", false},
		{"br", false},
		{"gzip;q=0", false},
		{"gzip;q=0.000, *", false},
		{"*;q=0", false},
		{"*, gzip;q=0", false},
	}
	for _, tt := range tests {
		t.Run("Accept-Encoding "+tt.accept, func(t *testing.T) {
			res := get(t, h, "GET", "/", map[string]string{"Accept-Encoding": tt.accept})
			b := body(t, res)
			if got, want := res.Header.Get("Content-Length"), strconv.Itoa(len(b)); got != want {
				t.Errorf("Content-Length = %q, want %s", got, want)
			}
			if got := res.Header.Get("Vary"); got != "Accept-Encoding" {
				t.Errorf("Vary = %q, want Accept-Encoding", got)
			}
			gotGzip := res.Header.Get("Content-Encoding") == "gzip"
			if gotGzip != tt.gzip {
				t.Fatalf("gzip = %v, want %v", gotGzip, tt.gzip)
			}
			if gotGzip {
				if len(b) >= len(plain) {
					t.Errorf("gzipped body %d bytes, plain %d", len(b), len(plain))
				}
				b = gunzip(t, b)
			}
			if !bytes.Equal(b, plain) {
				t.Error("body differs from the identity body")
			}
		})
	}
}

func TestHandlerAnswersRevalidationWith304(t *testing.T) {
	h := defaultPage()
	for _, accept := range []string{"", "gzip"} {
		t.Run("Accept-Encoding "+accept, func(t *testing.T) {
			first := get(t, h, "GET", "/", map[string]string{"Accept-Encoding": accept})
			etag := first.Header.Get("ETag")
			if !regexp.MustCompile(`^"[A-Za-z0-9_-]+(\.gz)?"$`).MatchString(etag) {
				t.Fatalf("ETag = %q, want a quoted strong tag", etag)
			}
			if got := first.Header.Get("Cache-Control"); got != "no-cache" {
				t.Errorf("page Cache-Control = %q, want no-cache", got)
			}
			for _, inm := range []string{etag, "W/" + etag, `"other", ` + etag, "*"} {
				res := get(t, h, "GET", "/", map[string]string{"Accept-Encoding": accept, "If-None-Match": inm})
				if res.StatusCode != http.StatusNotModified {
					t.Errorf("If-None-Match %s: status = %d, want 304", inm, res.StatusCode)
				}
				if len(body(t, res)) != 0 {
					t.Errorf("If-None-Match %s: 304 with a body", inm)
				}
				if res.Header.Get("ETag") != etag {
					t.Errorf("If-None-Match %s: ETag = %q, want %q", inm, res.Header.Get("ETag"), etag)
				}
			}
			res := get(t, h, "GET", "/", map[string]string{"Accept-Encoding": accept, "If-None-Match": `"stale"`})
			if res.StatusCode != http.StatusOK {
				t.Errorf("stale ETag: status = %d, want 200", res.StatusCode)
			}
		})
	}
	t.Run("the gzip and identity bodies have different ETags", func(t *testing.T) {
		a := get(t, h, "GET", "/app.js", nil).Header.Get("ETag")
		b := get(t, h, "GET", "/app.js", map[string]string{"Accept-Encoding": "gzip"}).Header.Get("ETag")
		if a == b {
			t.Errorf("both ETags are %s", a)
		}
	})
}

func TestPageLinksVersionedAssetsThatAreCachedForever(t *testing.T) {
	h := defaultPage()
	page := string(body(t, get(t, h, "GET", "/", nil)))
	links := regexp.MustCompile(`(?:src|href)="([a-z]+\.(?:js|css|svg))\?v=([A-Za-z0-9_-]+)"`).FindAllStringSubmatch(page, -1)
	if len(links) != len(linked) {
		t.Fatalf("found %d versioned links in the page, want %d (%s): %q", len(links), len(linked), strings.Join(linked, ", "), links)
	}
	for _, l := range links {
		name, v := l[1], l[2]
		t.Run(name, func(t *testing.T) {
			res := get(t, h, "GET", "/"+name+"?v="+v, nil)
			if got := res.Header.Get("Cache-Control"); got != cacheImmutable {
				t.Errorf("versioned Cache-Control = %q, want %q", got, cacheImmutable)
			}
			res = get(t, h, "GET", "/"+name+"?v=old", nil)
			if got := res.Header.Get("Cache-Control"); got != "no-cache" {
				t.Errorf("wrong version: Cache-Control = %q, want no-cache", got)
			}
			res = get(t, h, "GET", "/"+name, nil)
			if got := res.Header.Get("Cache-Control"); got != "no-cache" {
				t.Errorf("unversioned: Cache-Control = %q, want no-cache", got)
			}
		})
	}
}

func TestPageHeadersKeepItToItsOrigin(t *testing.T) {
	res := get(t, defaultPage(), "GET", "/", nil)
	c := res.Header.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "script-src 'self'", "connect-src 'self'", "frame-ancestors 'none'"} {
		if !strings.Contains(c, want) {
			t.Errorf("Content-Security-Policy %q lacks %q", c, want)
		}
	}
	if got := res.Header.Get("Referrer-Policy"); got != "no-referrer" {
		t.Errorf("Referrer-Policy = %q, want no-referrer (the URL may carry a token)", got)
	}
}

func TestHandlerRejectsOtherPathsAndMethods(t *testing.T) {
	h := defaultPage()
	tests := []struct {
		method, path string
		want         int
	}{
		{"HEAD", "/", http.StatusOK},
		{"GET", "/nope", http.StatusNotFound},
		{"GET", "/static/app.js", http.StatusNotFound},
		{"GET", "/../go.mod", http.StatusNotFound},
		{"POST", "/", http.StatusMethodNotAllowed},
		{"DELETE", "/app.js", http.StatusMethodNotAllowed},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			res := get(t, h, tt.method, tt.path, nil)
			if res.StatusCode != tt.want {
				t.Errorf("status = %d, want %d", res.StatusCode, tt.want)
			}
			if tt.want == http.StatusMethodNotAllowed && res.Header.Get("Allow") != "GET, HEAD" {
				t.Errorf("Allow = %q, want \"GET, HEAD\"", res.Header.Get("Allow"))
			}
		})
	}
	t.Run("HEAD sends the headers of GET and no body", func(t *testing.T) {
		g := get(t, h, "GET", "/", map[string]string{"Accept-Encoding": "gzip"})
		hd := get(t, h, "HEAD", "/", map[string]string{"Accept-Encoding": "gzip"})
		if len(body(t, hd)) != 0 {
			t.Error("HEAD has a body")
		}
		for _, k := range []string{"Content-Length", "ETag", "Content-Encoding", "Content-Type"} {
			if g.Header.Get(k) != hd.Header.Get(k) {
				t.Errorf("%s: GET %q, HEAD %q", k, g.Header.Get(k), hd.Header.Get(k))
			}
		}
	})
}

func TestHandlerOverRealHTTP(t *testing.T) {
	// net/http's client asks for gzip and decompresses transparently; this
	// proves the bytes survive a real connection, not just a recorder.
	srv := httptest.NewServer(defaultPage())
	defer srv.Close()
	res, err := srv.Client().Get(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	b := body(t, res)
	res.Body.Close()
	if !res.Uncompressed {
		t.Error("response was not gzip-compressed on the wire")
	}
	if !bytes.Contains(b, []byte("<title>sensord</title>")) {
		t.Error("page lacks its title")
	}
}

func TestHandlerAnswersRangeWith206(t *testing.T) {
	h := defaultPage()
	for _, accept := range []string{"", "gzip"} {
		t.Run("Accept-Encoding "+accept, func(t *testing.T) {
			whole := get(t, h, "GET", "/app.js", map[string]string{"Accept-Encoding": accept})
			full := body(t, whole)
			etag := whole.Header.Get("ETag")
			res := get(t, h, "GET", "/app.js", map[string]string{"Accept-Encoding": accept, "Range": "bytes=10-19"})
			if res.StatusCode != http.StatusPartialContent {
				t.Fatalf("status = %d, want 206", res.StatusCode)
			}
			if got, want := res.Header.Get("Content-Range"), "bytes 10-19/"+strconv.Itoa(len(full)); got != want {
				t.Errorf("Content-Range = %q, want %q", got, want)
			}
			if got := body(t, res); !bytes.Equal(got, full[10:20]) {
				t.Errorf("body = %q, want bytes 10-19 of the whole %q", got, full[10:20])
			}
			if got := res.Header.Get("Content-Length"); got != "10" {
				t.Errorf("Content-Length = %q, want 10", got)
			}
			if res.Header.Get("ETag") != etag || res.Header.Get("Cache-Control") != cacheNoCache {
				t.Errorf("206 headers ETag %q Cache-Control %q, want those of the 200", res.Header.Get("ETag"), res.Header.Get("Cache-Control"))
			}
			// If-Range with the current tag resumes; with another it
			// sends the whole file, since the range is of old bytes.
			if res := get(t, h, "GET", "/app.js", map[string]string{"Accept-Encoding": accept, "Range": "bytes=10-19", "If-Range": etag}); res.StatusCode != http.StatusPartialContent {
				t.Errorf("If-Range with the current ETag: status = %d, want 206", res.StatusCode)
			}
			if res := get(t, h, "GET", "/app.js", map[string]string{"Accept-Encoding": accept, "Range": "bytes=10-19", "If-Range": `"old"`}); res.StatusCode != http.StatusOK || !bytes.Equal(body(t, res), full) {
				t.Errorf("If-Range with an old ETag: status = %d, want 200 and the whole file", res.StatusCode)
			}
			// Two ranges come as multipart/byteranges, each part its bytes.
			res = get(t, h, "GET", "/app.js", map[string]string{"Accept-Encoding": accept, "Range": "bytes=0-4,10-14"})
			_, params, err := mime.ParseMediaType(res.Header.Get("Content-Type"))
			if res.StatusCode != http.StatusPartialContent || err != nil || params["boundary"] == "" {
				t.Fatalf("two ranges: %d %q (%v)", res.StatusCode, res.Header.Get("Content-Type"), err)
			}
			mr := multipart.NewReader(res.Body, params["boundary"])
			for _, want := range [][]byte{full[0:5], full[10:15]} {
				part, err := mr.NextPart()
				if err != nil {
					t.Fatal(err)
				}
				if got, _ := io.ReadAll(part); !bytes.Equal(got, want) {
					t.Errorf("part %q, want %q", got, want)
				}
			}
			res = get(t, h, "GET", "/app.js", map[string]string{"Accept-Encoding": accept, "Range": "bytes=999999-"})
			if res.StatusCode != http.StatusRequestedRangeNotSatisfiable {
				t.Errorf("a range past the end: status = %d, want 416", res.StatusCode)
			}
		})
	}
}

func TestHandlerOverRealHTTPRevalidatesRangesAndHeads(t *testing.T) {
	// A real client and connection: the 304, the 206 and HEAD's empty
	// body are what a browser gets on the wire, not a recorder's view.
	srv := httptest.NewServer(defaultPage())
	defer srv.Close()
	c := srv.Client()
	do := func(method string, hdr map[string]string) (*http.Response, []byte) {
		t.Helper()
		req, err := http.NewRequest(method, srv.URL+"/app.css", nil)
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		res, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		return res, body(t, res)
	}
	first, full := do("GET", map[string]string{"Accept-Encoding": "identity"})
	etag := first.Header.Get("ETag")
	if first.StatusCode != http.StatusOK || etag == "" || len(full) == 0 {
		t.Fatalf("GET: %d, ETag %q, %d bytes", first.StatusCode, etag, len(full))
	}
	if res, b := do("GET", map[string]string{"Accept-Encoding": "identity", "If-None-Match": etag}); res.StatusCode != http.StatusNotModified || len(b) != 0 || res.Header.Get("ETag") != etag {
		t.Errorf("If-None-Match: %d with %d bytes, ETag %q; want 304, empty, %q", res.StatusCode, len(b), res.Header.Get("ETag"), etag)
	}
	if res, b := do("GET", map[string]string{"Accept-Encoding": "identity", "Range": "bytes=0-4"}); res.StatusCode != http.StatusPartialContent || !bytes.Equal(b, full[:5]) {
		t.Errorf("Range: %d %q, want 206 %q", res.StatusCode, b, full[:5])
	}
	res, b := do("HEAD", map[string]string{"Accept-Encoding": "identity"})
	if res.StatusCode != http.StatusOK || len(b) != 0 || res.ContentLength != int64(len(full)) {
		t.Errorf("HEAD: %d with %d bytes, Content-Length %d; want 200, empty, %d", res.StatusCode, len(b), res.ContentLength, len(full))
	}
}

func TestNewHandlerRejectsABrokenPage(t *testing.T) {
	// newHandler guards the build: a page missing a file, linking one it
	// lacks, or shipping a file of unknown type must fail, never serve.
	index := ""
	good := fstest.MapFS{}
	for _, name := range linked {
		switch {
		case strings.HasSuffix(name, ".js"):
			index += `<script src="` + name + `"></script>`
			good["static/"+name] = &fstest.MapFile{Data: []byte("'use strict';")}
		case strings.HasSuffix(name, ".css"):
			index += `<link href="` + name + `">`
			good["static/"+name] = &fstest.MapFile{Data: []byte("body{}")}
		default:
			index += `<link rel="icon" href="` + name + `">`
			good["static/"+name] = &fstest.MapFile{Data: []byte("<svg/>")}
		}
	}
	good["static/index.html"] = &fstest.MapFile{Data: []byte(index)}
	if _, err := newHandler(good, Options{}); err != nil {
		t.Fatalf("a complete page: %v", err)
	}
	without := func(name string) fstest.MapFS {
		m := fstest.MapFS{}
		for k, v := range good {
			if k != name {
				m[k] = v
			}
		}
		return m
	}
	with := func(name, data string) fstest.MapFS {
		m := without("")
		m[name] = &fstest.MapFile{Data: []byte(data)}
		return m
	}
	tests := []struct {
		name string
		fsys fs.FS
	}{
		{"no index.html", without("static/index.html")},
		{"no app.js", without("static/app.js")},
		{"index.html not linking app.css", with("static/index.html", `<script src="hub.js"></script><script src="app.js"></script><script src="mqtt.js"></script><link href="favicon.svg">`)},
		{"no hub.js", without("static/hub.js")},
		{"no mqtt.js", without("static/mqtt.js")},
		{"a file of unknown type", with("static/photo.png", "\x89PNG")},
		{"no static directory", fstest.MapFS{"index.html": {Data: []byte(index)}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := newHandler(tt.fsys, Options{}); err == nil || !strings.HasPrefix(err.Error(), "web: ") {
				t.Errorf("newHandler = %v, want an error prefixed \"web: \"", err)
			}
		})
	}
}

func FuzzAcceptsGzip(f *testing.F) {
	for _, s := range []string{"gzip", "gzip;q=0", "*;q=0.5", "br, gzip;q=0.1", ";;;", "gzip;q=", "x-gzip;Q=0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := acceptsGzip([]string{s})
		l := strings.ToLower(s)
		if got && !strings.Contains(l, "gzip") && !strings.Contains(l, "*") {
			t.Errorf("acceptsGzip(%q) = true without gzip or *", s)
		}
	})
}

// countingWriter counts the Writes of a response.
type countingWriter struct {
	h      http.Header
	writes int
	n      int
}

func (c *countingWriter) Header() http.Header         { return c.h }
func (c *countingWriter) WriteHeader(int)             {}
func (c *countingWriter) Write(b []byte) (int, error) { c.writes++; c.n += len(b); return len(b), nil }

func TestHandlerWritesTheCachedBytesInOneWrite(t *testing.T) {
	// ServeContent's io.CopyN would copy through a buffer the size of
	// the file, allocated for each response; the cached bytes go out
	// as they are, in one Write, whole or a range of them.
	h := defaultPage()
	want := len(body(t, get(t, h, "GET", "/app.js", nil)))
	for _, tc := range []struct {
		rng  string
		size int
	}{{"", want}, {"bytes=100-199", 100}} {
		w := &countingWriter{h: http.Header{}}
		req := httptest.NewRequest("GET", "/app.js", nil)
		if tc.rng != "" {
			req.Header.Set("Range", tc.rng)
		}
		h.ServeHTTP(w, req)
		if w.writes != 1 || w.n != tc.size {
			t.Errorf("Range %q: %d writes of %d bytes, want one of %d", tc.rng, w.writes, w.n, tc.size)
		}
	}
}

// defaultPage is the page with default options; it compresses the page when
// called, so a test calls it once and reuses the result.
func defaultPage() http.Handler { return New(Options{}) }
