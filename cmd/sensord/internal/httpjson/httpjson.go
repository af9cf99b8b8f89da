// Package httpjson writes the JSON answers of sensord's plain HTTP
// endpoints: one object per response, never cached, and errors in one
// shape, {"error":"..."}, that scripts can rely on.
package httpjson

import (
	"encoding/json"
	"net/http"
)

// Error is the body of every error answer.
type Error struct {
	Error string `json:"error"`
}

// Write sends v as JSON with status. Answers describe the daemon at one
// moment, so they carry Cache-Control: no-store. A value that cannot be
// encoded (a bug, not input) gets a plain 500.
func Write(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(append(b, '\n')) //nolint:errcheck // the client went away; nothing to do
}

// WriteError sends Error{msg} with status.
func WriteError(w http.ResponseWriter, status int, msg string) {
	Write(w, status, Error{msg})
}
