package promtext

import (
	"net/http/httptest"
	"strings"
	"testing"
)

func TestWriterWritesTheTextFormat(t *testing.T) {
	var b strings.Builder
	p := New(&b)
	p.Family("sensord_sensor_errors_total", Counter, "Failed sensor reads\nby kind.")
	p.Sample("sensord_sensor_errors_total", Label("kind", "checksum"), 3)
	p.Sample("sensord_sensor_errors_total", Label("kind", `a "quoted" \ kind`), 0)
	p.One("sensord_temperature_celsius", Gauge, "Last temperature reading.", -0.1)
	p.One("sensord_heap_bytes", Gauge, "Go heap bytes in use.", 12345678)
	want := `# HELP sensord_sensor_errors_total Failed sensor reads by kind.
# TYPE sensord_sensor_errors_total counter
sensord_sensor_errors_total{kind="checksum"} 3
sensord_sensor_errors_total{kind="a \"quoted\" \\ kind"} 0
# HELP sensord_temperature_celsius Last temperature reading.
# TYPE sensord_temperature_celsius gauge
sensord_temperature_celsius -0.1
# HELP sensord_heap_bytes Go heap bytes in use.
# TYPE sensord_heap_bytes gauge
sensord_heap_bytes 1.2345678e+07
`
	if got := b.String(); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

func TestHandlerServesTheFormatUncached(t *testing.T) {
	h := Handler(func(p *Writer) { p.One("up", Gauge, "Up.", 1) })
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if got := rec.Header().Get("Content-Type"); got != ContentType {
		t.Errorf("Content-Type = %q", got)
	}
	if got := rec.Header().Get("Cache-Control"); got != "no-store" {
		t.Errorf("Cache-Control = %q", got)
	}
	if got := rec.Body.String(); got != "# HELP up Up.\n# TYPE up gauge\nup 1\n" {
		t.Errorf("body %q", got)
	}
}
