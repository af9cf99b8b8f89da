package alert

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"sensord/internal/link"
)

// Webhook limits and timing.
const (
	// WebhookQueue bounds the alerts waiting for the receiver: an alert
	// is a state change, rare by construction (hold, hysteresis), so 256
	// is days of a flapping-free appliance whose receiver is down, and a
	// few tens of KiB. When it is full the oldest is dropped and counted.
	WebhookQueue = 256
	// webhookTimeout bounds one POST, answer included.
	webhookTimeout = 10 * time.Second
	// DefaultWebhookMinBackoff and DefaultWebhookMaxBackoff: a receiver
	// that is down is retried after a second, then less and less often,
	// at least every five minutes, so it gets its alerts soon after it is
	// back without being hammered while away.
	DefaultWebhookMinBackoff = time.Second
	DefaultWebhookMaxBackoff = 5 * time.Minute
	// maxAnswer bounds what is read of an answer (to reuse the
	// connection); receivers answer a few bytes.
	maxAnswer = 4 << 10
)

// ntfyMessage is the notification text ntfy makes of the alert JSON:
// "hot raised: temperature 30.4, threshold 30".
const ntfyMessage = "{{.name}} {{.state}}: {{.metric}} {{.value}}, threshold {{.threshold}}"

// ErrWebhook is wrapped by every webhook error; ErrRefused by an answer
// that refuses the alert for good (not retried).
var (
	ErrWebhook = errors.New("alert: webhook")
	ErrRefused = fmt.Errorf("%w: the receiver refused the alert", ErrWebhook)
)

// WebhookOpts configure a Webhook. Zero fields take their defaults.
type WebhookOpts struct {
	Client                 *http.Client // default: one with webhookTimeout
	MinBackoff, MaxBackoff time.Duration
	Rand                   func() float64 // jitter, [0,1); default math/rand/v2
	// OnResult, if set, is told of every POST's outcome (nil: delivered);
	// it must not block.
	OnResult func(ev Event, err error)
}

// WebhookStats are a Webhook's counters.
type WebhookStats struct {
	Sent     uint64 // alerts the receiver took (2xx)
	Failures uint64 // POSTs that failed and were retried
	Refused  uint64 // alerts the receiver refused for good (4xx but 408 and 429), not retried
	Dropped  uint64 // alerts dropped, oldest first, from the full queue
	Queued   int
}

// Webhook POSTs every alert it is given, as the alert message JSON, to
// one URL, in order: the first alert is retried with back-off until the
// receiver takes it, and only then the next is sent, so a receiver that
// was down gets every alert once, in order, when it is back. A plain
// ntfy topic URL works: ntfy makes the message of the JSON with the
// X-Template and X-Message headers, and the Title, Tags and Priority
// headers give the notification its title, icon and urgency.
//
// Send is safe from any goroutine; Run is called once.
type Webhook struct {
	url string
	o   WebhookOpts

	mu   sync.Mutex // guards q
	q    []Event
	wake chan struct{} // cap 1

	sent, failures, refused, dropped atomic.Uint64
}

// NewWebhook returns a webhook for rawURL, an http or https URL.
func NewWebhook(rawURL string, o WebhookOpts) (*Webhook, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%w: %q is not an http:// or https:// URL", ErrWebhook, rawURL)
	}
	if o.Client == nil {
		o.Client = &http.Client{Timeout: webhookTimeout}
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = DefaultWebhookMinBackoff
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = DefaultWebhookMaxBackoff
	}
	if o.Rand == nil {
		o.Rand = rand.Float64
	}
	return &Webhook{url: rawURL, o: o, wake: make(chan struct{}, 1)}, nil
}

// Send queues ev and returns at once.
func (w *Webhook) Send(ev Event) {
	w.mu.Lock()
	if len(w.q) >= WebhookQueue {
		w.q = w.q[1:]
		w.dropped.Add(1)
	}
	w.q = append(w.q, ev)
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// Stats returns the counters.
func (w *Webhook) Stats() WebhookStats {
	w.mu.Lock()
	n := len(w.q)
	w.mu.Unlock()
	return WebhookStats{Sent: w.sent.Load(), Failures: w.failures.Load(), Refused: w.refused.Load(), Dropped: w.dropped.Load(), Queued: n}
}

// Run delivers the queue until ctx ends.
func (w *Webhook) Run(ctx context.Context) {
	fails := 0
	for {
		w.mu.Lock()
		var ev Event
		has := len(w.q) > 0
		if has {
			ev = w.q[0]
		}
		w.mu.Unlock()
		if !has {
			select {
			case <-ctx.Done():
				return
			case <-w.wake:
				continue
			}
		}
		err := w.post(ctx, ev)
		if ctx.Err() != nil {
			return
		}
		if w.o.OnResult != nil {
			w.o.OnResult(ev, err)
		}
		var refused *refusedError
		switch {
		case err == nil:
			w.sent.Add(1)
		case errors.As(err, &refused):
			w.refused.Add(1)
		default:
			w.failures.Add(1)
			fails++
			t := time.NewTimer(link.Backoff{Min: w.o.MinBackoff, Max: w.o.MaxBackoff}.Delay(fails, w.o.Rand()))
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			continue
		}
		fails = 0
		w.mu.Lock()
		// The head is still ev unless a full queue dropped it meanwhile.
		if len(w.q) > 0 && w.q[0] == ev {
			w.q = w.q[1:]
		}
		w.mu.Unlock()
	}
}

// refusedError is an answer that says the request itself is wrong:
// sending it again would not help.
type refusedError struct{ status string }

func (e *refusedError) Error() string { return ErrRefused.Error() + ": " + e.status }

func (e *refusedError) Unwrap() error { return ErrRefused }

// post sends ev once.
func (w *Webhook) post(ctx context.Context, ev Event) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(ev.AppendJSON(nil)))
	if err != nil {
		return fmt.Errorf("%w: %w", ErrWebhook, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "sensord")
	// ntfy's headers; other receivers ignore them. ntfy (2.10 and later)
	// fills X-Message from the JSON body's fields (X-Template), so a
	// plain topic URL shows words; an older ntfy shows the JSON. Rule
	// names hold no braces, so the title is no template.
	req.Header.Set("Title", fmt.Sprintf("sensord alert %s %s", ev.Name, ev.State))
	req.Header.Set("X-Template", "yes")
	req.Header.Set("X-Message", ntfyMessage)
	if ev.State == Raised {
		req.Header.Set("Tags", "warning")
		req.Header.Set("Priority", "high")
	} else {
		req.Header.Set("Tags", "white_check_mark")
	}
	resp, err := w.o.Client.Do(req)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrWebhook, err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxAnswer))
	resp.Body.Close()
	switch c := resp.StatusCode; {
	case c >= 200 && c < 300:
		return nil
	case c >= 400 && c < 500 && c != http.StatusRequestTimeout && c != http.StatusTooManyRequests:
		return &refusedError{status: resp.Status}
	}
	return fmt.Errorf("%w: the receiver answered %s", ErrWebhook, resp.Status)
}
