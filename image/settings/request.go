package settings

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"
)

// A Request is a change to sensord.conf that sensord (unprivileged)
// spools for its root helper (`sensorctl apply-settings`), which checks
// it again, writes the file through Edit and restarts what must restart.
// It is JSON, one object, at most MaxRequestBytes.
type Request struct {
	// ID names this request among all sensord has spooled, so the page
	// that sent it can tell its own outcome from an earlier one (another
	// tab's, or sensorctl's over SSH) that sensord shows while the helper
	// works; it is recorded in the Status. At most MaxIDBytes of letters,
	// digits and '-'.
	ID string `json:"id,omitempty"`
	// Action says what the owner did: ActionChange, ActionReset or
	// ActionRestore; it is recorded in the Status.
	Action string `json:"action"`
	// Set makes each variable active with its value; Unset comments each
	// out, so it takes its default.
	Set   map[string]string `json:"set,omitempty"`
	Unset []string          `json:"unset,omitempty"`
	// ClearHistory removes the stored readings and alert states while
	// sensord is stopped (a reset where the person chose to start afresh).
	ClearHistory bool `json:"clear_history,omitempty"`
}

// The Actions of a Request.
const (
	ActionChange  = "change"
	ActionReset   = "reset"
	ActionRestore = "restore"
)

// MaxRequestBytes bounds a spooled Request: a whole settings file's
// values, each JSON-escaped at most six times its length, fits.
const MaxRequestBytes = 2 * MaxFileBytes

// MaxIDBytes bounds a Request's ID: sensord's instance and a count.
const MaxIDBytes = 64

// ErrRequest marks a spooled Request that is not one.
var ErrRequest = errors.New("settings: bad request")

// ReadRequest reads one Request of f's variables from r, refusing more
// than MaxRequestBytes, unknown fields and names, a name both set and
// unset, and an unknown Action.
func ReadRequest(r io.Reader, f File) (Request, error) {
	var q Request
	b, err := io.ReadAll(io.LimitReader(r, MaxRequestBytes+1))
	if err != nil {
		return q, fmt.Errorf("%w: %w", ErrRequest, err)
	}
	if len(b) > MaxRequestBytes {
		return q, fmt.Errorf("%w: more than %d bytes", ErrRequest, MaxRequestBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&q); err != nil {
		return q, fmt.Errorf("%w: %w", ErrRequest, err)
	}
	if dec.More() {
		return q, fmt.Errorf("%w: more than one JSON value", ErrRequest)
	}
	if !validID(q.ID) {
		return q, fmt.Errorf("%w: id %s is not up to %d letters, digits and '-'", ErrRequest, clip(q.ID), MaxIDBytes)
	}
	switch q.Action {
	case ActionChange, ActionReset, ActionRestore:
	default:
		return q, fmt.Errorf("%w: action %s is not change, reset or restore", ErrRequest, clip(q.Action))
	}
	known := f.names()
	for k := range q.Set {
		if !known[k] {
			return q, fmt.Errorf("%w: %s is not a setting of sensord.conf", ErrRequest, clip(k))
		}
	}
	for _, k := range q.Unset {
		if !known[k] {
			return q, fmt.Errorf("%w: %s is not a setting of sensord.conf", ErrRequest, clip(k))
		}
		if _, both := q.Set[k]; both {
			return q, fmt.Errorf("%w: %s is both set and unset", ErrRequest, k)
		}
	}
	return q, nil
}

// validID reports whether id may name a Request: it is shown on the
// page and written to the journal, so no spaces, quotes or controls.
func validID(id string) bool {
	if len(id) > MaxIDBytes {
		return false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// Names is every variable q sets or unsets, sorted.
func (q Request) Names() []string {
	n := append(sortedKeys(q.Set), q.Unset...)
	slices.Sort(n)
	return slices.Compact(n)
}

// Status is the outcome of the last Request, which the root helper
// records for the dashboard. It never holds a secret's value.
type Status struct {
	// Outcome is OutcomeApplied, OutcomeRefused (a value the rules refuse:
	// nothing was written) or OutcomeFailed (the file could not be
	// written or a service not restarted).
	Outcome string `json:"outcome"`
	// ID is the Request's ID ("" for a request that did not read).
	ID     string    `json:"id,omitempty"`
	Action string    `json:"action,omitempty"`
	Time   time.Time `json:"time"`
	// Changed names the variables the request set or unset.
	Changed []string `json:"changed,omitempty"`
	// Detail is the reason of a refusal or failure, one line.
	Detail string `json:"detail,omitempty"`
}

// The Outcomes of a Status.
const (
	OutcomeApplied = "applied"
	OutcomeRefused = "refused"
	OutcomeFailed  = "failed"
)
