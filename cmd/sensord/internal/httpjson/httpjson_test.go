package httpjson

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestWriteSendsOneUncachedJSONObject(t *testing.T) {
	rec := httptest.NewRecorder()
	Write(rec, http.StatusTeapot, map[string]int{"n": 1})
	if rec.Code != http.StatusTeapot {
		t.Errorf("status = %d, want 418", rec.Code)
	}
	if got := rec.Body.String(); got != "{\"n\":1}\n" {
		t.Errorf("body = %q", got)
	}
	for k, want := range map[string]string{"Content-Type": "application/json", "Cache-Control": "no-store"} {
		if got := rec.Header().Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
}

func TestWriteErrorHasTheErrorShape(t *testing.T) {
	rec := httptest.NewRecorder()
	WriteError(rec, http.StatusNotFound, "no reading yet")
	if got := rec.Body.String(); rec.Code != 404 || got != "{\"error\":\"no reading yet\"}\n" {
		t.Errorf("%d %q", rec.Code, got)
	}
}

func TestAValueThatCannotBeEncodedIsA500(t *testing.T) {
	rec := httptest.NewRecorder()
	Write(rec, http.StatusOK, func() {})
	if rec.Code != http.StatusInternalServerError || rec.Header().Get("Content-Type") == "application/json" {
		t.Errorf("%d %s", rec.Code, rec.Header().Get("Content-Type"))
	}
}
