// Package web is sensord's browser dashboard: one static page, embedded in
// the binary with go:embed, that talks to the daemon only through the public
// endpoints every other client uses (GET /api/history on load and after each
// reconnect, WS /ws/dashboard live, GET /healthz every 5 s). hub.js holds
// the page's one socket and every poll; the panels (app.js, mqtt.js,
// alerts.js, update.js, settings.js) subscribe to them, chart.js draws the chart, and
// all of them build the page with dom.js and write values with format.js. The appliance has no internet, so the
// page carries everything it needs: no CDN, no web fonts, a hand-drawn SVG
// chart.
//
// Handler serves the files. Each file is compressed once, when Handler is
// called, so a request costs a map lookup and a write; clients that accept
// gzip get the compressed bytes, the rest get the original. Every response
// carries a strong ETag (a hash of the bytes actually sent);
// http.ServeContent answers If-None-Match with 304, Range with 206 and HEAD
// without a body.
//
// Caching: index.html refers to its script and stylesheet as
// "app.js?v=<hash>", so a firmware update changes the URL. Those versioned
// URLs are cached for a year (immutable); the page itself and unversioned
// URLs are "no-cache" (the browser keeps them but revalidates, which costs a
// 304 of a few hundred bytes).
//
// # Concurrency
//
// The handler returned by Handler is immutable after construction and safe
// for concurrent use by any number of goroutines.
package web

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"errors"
	"fmt"
	"html"
	"io"
	"io/fs"
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"
)

// files is the page. The directory is embedded as a whole so adding a file
// needs no Go change beyond its content type in contentType. It is the
// package's only variable, and read-only.
//
//go:embed static
var files embed.FS

// linked are the files index.html links, in the order it loads them.
var linked = []string{"dom.js", "format.js", "hub.js", "chart.js", "app.js", "mqtt.js", "alerts.js", "update.js", "settings.js", "app.css", "favicon.svg"}

// contentType maps each extension shipped in static/ to its Content-Type.
// A file with an extension missing here fails newHandler, so a mistake shows
// up in the package's tests rather than as a sniffed type in a browser.
func contentType(name string) (string, bool) {
	switch path.Ext(name) {
	case ".html":
		return "text/html; charset=utf-8", true
	case ".js":
		return "text/javascript; charset=utf-8", true
	case ".css":
		return "text/css; charset=utf-8", true
	case ".svg":
		return "image/svg+xml", true
	}
	return "", false
}

// cspBase keeps the page to its own origin: scripts and styles only from
// the files below (no inline code), fetches and WebSockets only back to the
// daemon that served it. ws: and wss: are listed because older Safari does
// not count same-host WebSockets as 'self'. frame-ancestors follows.
const cspBase = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self' ws: wss:; manifest-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors "

// Options configure the page.
type Options struct {
	// Name is the device's name, the page's title and heading before the
	// script runs ("" keeps "sensord").
	Name string
	// FrameAncestors lists the origins allowed to embed the page in a
	// frame (a Home Assistant or Node-RED card), separated by spaces; ""
	// allows none.
	FrameAncestors string
}

func (o Options) csp() string {
	if strings.TrimSpace(o.FrameAncestors) == "" {
		return cspBase + "'none'"
	}
	return cspBase + strings.Join(strings.Fields(o.FrameAncestors), " ")
}

// Cache-Control values. cacheNoCache lets the browser keep a copy but makes it
// ask (If-None-Match) before each use, so a firmware update shows at once.
const (
	cacheImmutable = "public, max-age=31536000, immutable"
	cacheNoCache   = "no-cache"
)

// variant is one encoding of a file, ready to write.
type variant struct {
	body []byte
	etag string // quoted strong validator of exactly these bytes
}

// file is one served path with its precomputed variants.
type file struct {
	ctype   string
	version string   // short content hash used in "?v=" links
	plain   variant  // identity encoding
	gz      *variant // nil when gzip would not be smaller
}

// handler serves the embedded page. It is never mutated after newHandler.
type handler struct {
	files map[string]*file // by URL path, "/" included
	csp   string
}

// New returns the dashboard's http.Handler, meant to be mounted at "/" of
// the daemon's mux (the API and WebSocket paths take precedence there by
// being longer patterns). It answers GET and HEAD for "/", "/index.html" and
// the page's assets, 404 for any other path and 405 for other methods. It
// compresses the page when called: call it once and reuse the result.
func New(o Options) http.Handler {
	h, err := newHandler(files, o)
	if err != nil {
		// The files are fixed at build time and newHandler is exercised by
		// this package's tests, so this is a build defect, not a runtime
		// condition a caller could handle.
		panic(err)
	}
	return h
}

// newHandler reads every file under static/ in fsys, links index.html's
// assets by version, and precompresses everything.
func newHandler(fsys fs.FS, o Options) (*handler, error) {
	root, err := fs.Sub(fsys, "static")
	if err != nil {
		return nil, fmt.Errorf("web: %w", err)
	}
	raw := map[string][]byte{}
	err = fs.WalkDir(root, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(root, p)
		if err != nil {
			return err
		}
		raw[p] = b
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("web: reading embedded page: %w", err)
	}
	index, ok := raw["index.html"]
	if !ok {
		return nil, fmt.Errorf("web: index.html missing from the embedded page")
	}

	if o.Name != "" {
		name := html.EscapeString(o.Name)
		index = bytes.Replace(index, []byte("<title>sensord</title>"), []byte("<title>"+name+"</title>"), 1)
		index = bytes.Replace(index, []byte(`<h1 id="name">sensord</h1>`), []byte(`<h1 id="name">`+name+`</h1>`), 1)
	}
	h := &handler{files: make(map[string]*file, len(raw)+1), csp: o.csp()}
	for p, b := range raw {
		if p == "index.html" {
			continue // built last: its links carry the others' versions
		}
		f, err := newFile(p, b)
		if err != nil {
			return nil, err
		}
		h.files["/"+p] = f
	}
	// index.html links these by name; each reference gets "?v=<hash>" so
	// the browser may cache the file as immutable.
	for _, name := range linked {
		f, ok := h.files["/"+name]
		if !ok {
			return nil, fmt.Errorf("web: index.html links %s, which is not embedded", name)
		}
		ref := []byte(`"` + name + `"`)
		if !bytes.Contains(index, ref) {
			return nil, fmt.Errorf("web: index.html does not link %s", name)
		}
		index = bytes.ReplaceAll(index, ref, []byte(`"`+name+`?v=`+f.version+`"`))
	}
	f, err := newFile("index.html", index)
	if err != nil {
		return nil, err
	}
	h.files["/"] = f
	h.files["/index.html"] = f
	return h, nil
}

// newFile hashes and compresses one file.
func newFile(name string, b []byte) (*file, error) {
	ctype, ok := contentType(name)
	if !ok {
		return nil, fmt.Errorf("web: no content type for %s", name)
	}
	sum := sha256.Sum256(b)
	tag := base64.RawURLEncoding.EncodeToString(sum[:12])
	f := &file{
		ctype:   ctype,
		version: tag[:10],
		plain:   variant{body: b, etag: `"` + tag + `"`},
	}
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return nil, fmt.Errorf("web: %w", err)
	}
	if _, err := zw.Write(b); err != nil {
		return nil, fmt.Errorf("web: compressing %s: %w", name, err)
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("web: compressing %s: %w", name, err)
	}
	if buf.Len() < len(b) {
		// A distinct validator per encoding: a cache must never answer a
		// gzip request with identity bytes it validated earlier, or back.
		f.gz = &variant{body: buf.Bytes(), etag: `"` + tag + `.gz"`}
	}
	return f, nil
}

// ServeHTTP implements http.Handler.
func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f, ok := h.files[r.URL.Path]
	if !ok {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}

	v := &f.plain
	hdr := w.Header()
	if f.gz != nil {
		// Vary even when sending identity: a shared cache must not hand
		// these bytes to a client whose Accept-Encoding differs.
		hdr.Set("Vary", "Accept-Encoding")
		if acceptsGzip(r.Header.Values("Accept-Encoding")) {
			v = f.gz
			hdr.Set("Content-Encoding", "gzip")
		}
	}
	hdr.Set("Content-Type", f.ctype)
	hdr.Set("ETag", v.etag)
	hdr.Set("X-Content-Type-Options", "nosniff")
	if q := r.URL.Query().Get("v"); q != "" && q == f.version {
		hdr.Set("Cache-Control", cacheImmutable)
	} else {
		hdr.Set("Cache-Control", cacheNoCache)
	}
	if strings.HasPrefix(f.ctype, "text/html") {
		hdr.Set("Content-Security-Policy", h.csp)
		// The page may have been opened with ?access_token=...; never leak
		// the URL to another site.
		hdr.Set("Referrer-Policy", "no-referrer")
	}

	// ServeContent answers If-None-Match (304), Range and If-Range (206)
	// and HEAD from the ETag set above. With Content-Encoding set it leaves
	// Content-Length out, since it cannot know the bytes are encoded
	// already; they are, so their length goes here (a 206 replaces it).
	hdr.Set("Content-Length", strconv.Itoa(len(v.body)))
	http.ServeContent(direct{w}, r, "", time.Time{}, &bodyReader{b: v.body})
}

// bodyReader is a variant's bytes as ServeContent reads and seeks them.
type bodyReader struct {
	b   []byte
	off int64
}

func (r *bodyReader) Read(p []byte) (int, error) {
	if r.off >= int64(len(r.b)) {
		return 0, io.EOF
	}
	n := copy(p, r.b[r.off:])
	r.off += int64(n)
	return n, nil
}

func (r *bodyReader) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += r.off
	case io.SeekEnd:
		offset += int64(len(r.b))
	default:
		return 0, errors.New("web: bad whence")
	}
	if offset < 0 {
		return 0, errors.New("web: seek before the start")
	}
	r.off = offset
	return offset, nil
}

// direct writes what ServeContent copies from a bodyReader as one Write
// of the cached bytes. ServeContent copies with io.CopyN, which would
// otherwise allocate a buffer the size of the file for every response.
type direct struct{ http.ResponseWriter }

// Unwrap lets http.ResponseController reach the connection's writer.
func (d direct) Unwrap() http.ResponseWriter { return d.ResponseWriter }

// ReadFrom implements io.ReaderFrom for io.CopyN's limited reader of a
// bodyReader; anything else (a multi-range answer's parts) is copied as
// usual.
func (d direct) ReadFrom(src io.Reader) (int64, error) {
	lr, ok := src.(*io.LimitedReader)
	if !ok {
		return io.Copy(writerOnly{d.ResponseWriter}, src)
	}
	r, ok := lr.R.(*bodyReader)
	if !ok {
		return io.Copy(writerOnly{d.ResponseWriter}, src)
	}
	n := max(min(lr.N, int64(len(r.b))-r.off), 0)
	w, err := d.ResponseWriter.Write(r.b[r.off : r.off+n])
	r.off += int64(w)
	lr.N -= int64(w)
	return int64(w), err
}

// writerOnly hides a writer's ReadFrom, so io.Copy does not call back
// into direct.
type writerOnly struct{ io.Writer }

// acceptsGzip reports whether Accept-Encoding header values allow gzip
// (RFC 9110 section 12.5.3): "gzip" or "*" with a quality other than 0. An
// explicit "gzip;q=0" wins over "*".
func acceptsGzip(values []string) bool {
	star := false
	for _, v := range values {
		for _, item := range strings.Split(v, ",") {
			name, params, _ := strings.Cut(item, ";")
			name = strings.ToLower(strings.TrimSpace(name))
			if name != "gzip" && name != "x-gzip" && name != "*" {
				continue
			}
			ok := !qualityZero(params)
			if name == "*" {
				star = ok
				continue
			}
			return ok
		}
	}
	return star
}

// qualityZero reports whether params (the part after the first ';' of an
// Accept-Encoding item) carry q=0, q=0.0, q=0.000 and so on.
func qualityZero(params string) bool {
	for _, p := range strings.Split(params, ";") {
		k, v, ok := strings.Cut(p, "=")
		if !ok || !strings.EqualFold(strings.TrimSpace(k), "q") {
			continue
		}
		q, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		return err == nil && q == 0
	}
	return false
}
