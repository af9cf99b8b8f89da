package push

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"

	"sensord/cmd/sensord/internal/httpjson"
)

// MaxBody bounds a push's request body: a MaxFrame payload inside its
// JSON message, where escaping (quotes, back-slashes, line breaks) can
// double it, and room for the rest of the message.
const MaxBody = 2*MaxFrame + 4<<10

// Sent is the answer to a push that went out.
type Sent struct {
	Path    string `json:"path"`
	Clients int    `json:"clients"` // how many clients it went to
}

// SendHandler is POST /api/send?path=<WebSocket path>. The body is a
// Node-RED message as JSON; sent as application/octet-stream, it is
// one binary frame's payload, with ?topic= and ?session=<id> in place
// of the message's topic and _session. 200 with Sent; 400 saying why for
// bad input; 429 over the rate bound. It checks no credential: it is
// mounted behind the owner's gate.
func (s *Sender) SendHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := s.Allow(); err != nil {
			w.Header().Set("Retry-After", "1")
			httpjson.WriteError(w, http.StatusTooManyRequests, err.Error())
			return
		}
		p, err := s.parseRequest(w, r)
		if err != nil {
			httpjson.WriteError(w, http.StatusBadRequest, s.Refuse(err).Error())
			return
		}
		n, err := s.Send(p)
		if err != nil {
			httpjson.WriteError(w, http.StatusBadRequest, err.Error())
			return
		}
		httpjson.Write(w, http.StatusOK, Sent{Path: p.Path, Clients: n})
	})
}

func (s *Sender) parseRequest(w http.ResponseWriter, r *http.Request) (Push, error) {
	q := r.URL.Query()
	path := q.Get("path")
	if path == "" {
		return Push{}, fmt.Errorf("%w: name the WebSocket path, e.g. ?path=/ws/dashboard (one of %v)", ErrPath, s.Paths())
	}
	if _, ok := s.paths[path]; !ok {
		return Push{}, fmt.Errorf("%w %q: pushes go to one of %v", ErrPath, path, s.Paths())
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBody))
	if err != nil {
		var mb *http.MaxBytesError
		if errors.As(err, &mb) {
			return Push{}, fmt.Errorf("%w: the body is over %d bytes", ErrTooLarge, MaxBody)
		}
		return Push{}, fmt.Errorf("%w: reading the body: %v", ErrMalformed, err)
	}
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	var p Push
	if ct == "application/octet-stream" {
		if len(body) == 0 {
			return p, fmt.Errorf("%w: the body is empty", ErrEmpty)
		}
		if len(body) > MaxFrame {
			return p, fmt.Errorf("%w: the payload is %d bytes, at most %d fit a frame", ErrTooLarge, len(body), MaxFrame)
		}
		p = Push{Topic: q.Get("topic"), Payload: body}
		if q.Has("session") {
			if p.Session, err = ParseSessionID(q.Get("session")); err != nil {
				return p, err
			}
		}
	} else {
		if p, err = ParseJSON(body); err != nil {
			return p, err
		}
		if p.Path != "" && p.Path != path {
			return p, fmt.Errorf(`%w: the message's "path" %q is not ?path=%s`, ErrMalformed, p.Path, path)
		}
	}
	p.Path = path
	return p, nil
}

// ClientsHandler is GET /api/clients?path=<WebSocket path>: the path's
// connected clients as a JSON list of Client. It checks no credential:
// mount it behind the owner's gate.
func (s *Sender) ClientsHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		path := r.URL.Query().Get("path")
		if path == "" {
			httpjson.WriteError(w, http.StatusBadRequest, fmt.Sprintf("name the WebSocket path, e.g. ?path=/ws/sensors (one of %v)", s.Paths()))
			return
		}
		list, err := s.Clients(path)
		if err != nil {
			httpjson.WriteError(w, http.StatusBadRequest, err.Error())
			return
		}
		httpjson.Write(w, http.StatusOK, list)
	})
}
