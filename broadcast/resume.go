package broadcast

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"sensord/broadcast/internal/fanout"
)

// MaxResumes bounds the resumes (?since=) being prepared and written at
// once: each holds its messages, encoded, until they are written (a day
// of readings is a few MB). One more is answered 503 with Retry-After.
const MaxResumes = 4

// resumeRetry is the Retry-After of a resume refused for MaxResumes.
const resumeRetry = 2 * time.Second

// Resumer finds what a resuming client missed. It is called with the
// client's since and take, which it must call exactly once: the live
// stream starts with what is published after take returns. It returns the
// messages published up to take whose time is after since, oldest first,
// each once; how far back it looks (a bound it documents) is its own.
type Resumer func(ctx context.Context, since time.Time, take func()) ([]Message, error)

// ErrResume wraps a Resumer's failure (answered 503: the client may retry
// or connect without since).
var ErrResume = errors.New("broadcast: cannot resume")

// parseSince reads ?since= (Unix milliseconds); ok is false without one.
func parseSince(rawQuery string) (since time.Time, ok bool, err error) {
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("broadcast: query does not parse: %w", err)
	}
	vs, ok := q["since"]
	if !ok {
		return time.Time{}, false, nil
	}
	if len(vs) != 1 {
		return time.Time{}, false, fmt.Errorf("broadcast: since is given %d times", len(vs))
	}
	ms, err := strconv.ParseInt(vs[0], 10, 64)
	if err != nil || ms < 0 || ms > 253402300799999 {
		return time.Time{}, false, fmt.Errorf("broadcast: since=%q is not a time in Unix milliseconds, such as the timestamp of the last reading received", vs[0])
	}
	return time.UnixMilli(ms), true, nil
}

// resume is ServeHTTP for a client that asked for ?since=: what
// s.o.Resume finds, then the live stream from the moment it took.
func (s *Server) resume(w http.ResponseWriter, r *http.Request, since time.Time, filters []string) {
	select {
	case s.resumes <- struct{}{}:
		defer func() { <-s.resumes }()
	default:
		s.reserved.Add(-1)
		s.rejected.Add(1)
		w.Header().Set("Retry-After", strconv.Itoa(int(resumeRetry/time.Second)))
		http.Error(w, fmt.Sprintf("broadcast: %d clients are resuming; try again in a moment", MaxResumes), http.StatusServiceUnavailable)
		return
	}
	var mark uint64
	taken := false
	msgs, err := s.o.Resume(r.Context(), since, func() { mark, taken = s.eng.Mark(), true })
	if err == nil && !taken {
		err = errors.New("the resumer did not take the live stream's start")
	}
	if err != nil {
		s.reserved.Add(-1)
		s.rejected.Add(1)
		w.Header().Set("Retry-After", strconv.Itoa(int(resumeRetry/time.Second)))
		http.Error(w, fmt.Errorf("%w: %w", ErrResume, err).Error(), http.StatusServiceUnavailable)
		return
	}
	frames := make([][]byte, 0, len(msgs))
	for _, m := range msgs {
		if empty(m.Payload) || !matchAny(filters, m.Topic) {
			continue
		}
		if m.ID == "" {
			m.ID = s.ids.next()
		}
		data, bin, err := encodePayload(&m, s.o.WholeMsg)
		if err != nil {
			continue // not encodable: Publish refused it too
		}
		frames = append(frames, fanout.Encode(bin, data))
	}
	msgs = nil
	ws, err := s.up.Upgrade(w, r, nil)
	if err != nil {
		s.reserved.Add(-1)
		return
	}
	if !s.eng.JoinReplay(ws.NetConn(), mark, s.ids.next(), r.RemoteAddr, filters, frames) {
		s.reserved.Add(-1)
	}
}
