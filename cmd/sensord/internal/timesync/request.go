package timesync

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// The times an owner may set the clock to: notBefore (a browser whose
// clock says earlier is wrong itself) to notAfter (a typo, or a clock
// past what 64-bit shells and SQLite's ms keys handle without care).
var notAfter = time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)

// MaxRequestBytes bounds a request's body: {"time": 13 digits} is 20.
const MaxRequestBytes = 256

// ErrRequest: a request to set the clock that does not parse or names a
// time out of range.
var ErrRequest = errors.New("timesync: bad clock request")

// ParseRequest reads the body of POST /api/clock, {"time": <Unix ms>}
// (a browser's Date.now()), and returns that time.
func ParseRequest(body []byte) (time.Time, error) {
	var req struct {
		Time json.RawMessage `json:"time"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return time.Time{}, fmt.Errorf(`%w: the body is not {"time": <milliseconds since 1970>}`, ErrRequest)
	}
	if dec.More() {
		return time.Time{}, fmt.Errorf("%w: more than one JSON value in the body", ErrRequest)
	}
	if req.Time == nil {
		return time.Time{}, fmt.Errorf(`%w: "time" is missing`, ErrRequest)
	}
	// A JSON number in integer form only: not a string, a fraction or an
	// exponent, which ParseInt refuses.
	ms, err := strconv.ParseInt(string(req.Time), 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf(`%w: "time" must be whole milliseconds since 1970 (JavaScript's Date.now())`, ErrRequest)
	}
	t := time.UnixMilli(ms)
	if t.Before(notBefore) || !t.Before(notAfter) {
		return time.Time{}, fmt.Errorf("%w: %s is not a plausible time (%d to %d)", ErrRequest, t.UTC().Format(time.RFC3339), notBefore.Year(), notAfter.Year()-1)
	}
	return t, nil
}

// Request is the file sensord leaves for the root helper that sets the
// clock (sensord-setclock): the time to set, in Unix ms, and the
// CLOCK_BOOTTIME it was asked at, in ms, so the helper adds the time
// that passed before it ran. One line, two decimal integers.
func Request(target time.Time, boot time.Duration) []byte {
	return fmt.Appendf(nil, "%d %d\n", target.UnixMilli(), boot.Milliseconds())
}
