package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestWaitHealthyCommitsOnlyAfterAnUnbrokenHealthyStretch(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer tok" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		// Unhealthy for the first answers, healthy after.
		if calls.Add(1) <= 2 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	if err := waitHealthy(context.Background(), srv.URL, "tok", time.Millisecond, time.Minute); err != nil {
		t.Fatal(err)
	}
	if n := calls.Load(); n < 4 {
		t.Errorf("committed after %d answers; want the two 503s and two 200s at least", n)
	}
}

func TestWaitHealthyGivesUp(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	err := waitHealthy(context.Background(), srv.URL, "", time.Millisecond, 100*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "503") {
		t.Errorf("got %v, want a give-up naming the last 503", err)
	}
}
