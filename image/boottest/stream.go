package main

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// frame is one message the stream received.
type frame struct {
	at  time.Time
	raw string
}

// stream keeps a WebSocket client on the sensor stream, reconnecting after
// any error (a restart of sensord drops the connection), and records every
// sensor_update frame.
type stream struct {
	url string

	mu     sync.Mutex
	frames []frame
	conns  int
	errs   []string
	wake   chan struct{}
}

func newStream(url string) *stream { return &stream{url: url, wake: make(chan struct{})} }

func (s *stream) run(ctx context.Context) {
	d := websocket.Dialer{HandshakeTimeout: 20 * time.Second}
	for ctx.Err() == nil {
		c, _, err := d.DialContext(ctx, s.url, nil)
		if err != nil {
			s.note(err)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
			continue
		}
		s.mu.Lock()
		s.conns++
		s.mu.Unlock()
		go func() { <-ctx.Done(); c.Close() }()
		for {
			c.SetReadDeadline(time.Now().Add(2 * time.Minute))
			_, msg, err := c.ReadMessage()
			if err != nil {
				s.note(err)
				c.Close()
				break
			}
			var m struct {
				Type        string   `json:"type"`
				Temperature *float64 `json:"temperature"`
				Humidity    *float64 `json:"humidity"`
				Timestamp   int64    `json:"timestamp"`
			}
			if json.Unmarshal(msg, &m) != nil || m.Type != "sensor_update" || m.Temperature == nil || m.Humidity == nil || m.Timestamp == 0 {
				s.note(fmt.Errorf("not a sensor_update: %.200s", msg))
				continue
			}
			s.mu.Lock()
			s.frames = append(s.frames, frame{time.Now(), string(msg)})
			close(s.wake)
			s.wake = make(chan struct{})
			s.mu.Unlock()
		}
	}
}

func (s *stream) note(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.errs) < 100 {
		s.errs = append(s.errs, err.Error())
	}
}

func (s *stream) reconnects() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conns - 1
}

// maxGap is the longest time between two consecutive frames.
func (s *stream) maxGap() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	var g time.Duration
	for i := 1; i < len(s.frames); i++ {
		g = max(g, s.frames[i].at.Sub(s.frames[i-1].at))
	}
	return g
}

// waitFrames waits for n frames received after since.
func (s *stream) waitFrames(ctx context.Context, since time.Time, n int) ([]frame, error) {
	for {
		s.mu.Lock()
		var got []frame
		for _, f := range s.frames {
			if f.at.After(since) {
				got = append(got, f)
			}
		}
		wake := s.wake
		var lastErr string
		if len(s.errs) > 0 {
			lastErr = s.errs[len(s.errs)-1]
		}
		s.mu.Unlock()
		if len(got) >= n {
			return got, nil
		}
		select {
		case <-ctx.Done():
			return got, fmt.Errorf("%d of %d frames: %w (last error: %s)", len(got), n, ctx.Err(), lastErr)
		case <-wake:
		}
	}
}
