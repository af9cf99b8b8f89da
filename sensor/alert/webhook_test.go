package alert

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"text/template"
	"time"
	"unicode/utf8"

	"sensord/internal/testutil"
)

// receiver is a webhook receiver on a real loopback socket that can be
// down (answering 503, or not listening at all) and up again.
type receiver struct {
	addr string
	srv  *http.Server
	ln   net.Listener
	down atomic.Bool // answer 503

	mu     sync.Mutex
	got    []Event
	titles []string
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{}
	r.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if r.down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		b, _ := io.ReadAll(req.Body)
		var m struct {
			Type, Name, State, Metric string
			Value, Threshold          float64
			Timestamp                 int64
		}
		if req.Method != http.MethodPost || req.Header.Get("Content-Type") != "application/json" || json.Unmarshal(b, &m) != nil || m.Type != "alert" {
			http.Error(w, "bad alert", http.StatusBadRequest)
			return
		}
		r.mu.Lock()
		r.got = append(r.got, Event{Name: m.Name, State: Transition(m.State), Time: time.UnixMilli(m.Timestamp)})
		r.titles = append(r.titles, req.Header.Get("Title"))
		r.mu.Unlock()
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r.addr, r.ln = ln.Addr().String(), ln
	go r.srv.Serve(ln)
	t.Cleanup(func() { r.srv.Close() })
	return r
}

// stop closes the socket: connections are refused until start.
func (r *receiver) stop(t *testing.T) {
	r.srv.Close()
	r.ln.Close() // Serve may not have taken it yet
}

func (r *receiver) start(t *testing.T) {
	ln, err := net.Listen("tcp", r.addr)
	if err != nil {
		t.Fatal(err)
	}
	r.srv, r.ln = &http.Server{Handler: r.srv.Handler}, ln
	go r.srv.Serve(ln)
	t.Cleanup(func() { r.srv.Close() })
}

func (r *receiver) events() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var s []string
	for _, e := range r.got {
		s = append(s, e.Name+" "+string(e.State))
	}
	return s
}

func runWebhook(t *testing.T, url string) *Webhook {
	w, err := NewWebhook(url, WebhookOpts{MinBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	testutil.Go(t, func(ctx context.Context) error { w.Run(ctx); return nil })
	return w
}

func alertEvents(n int) []Event {
	var evs []Event
	for i := range n {
		st := Raised
		if i%2 == 1 {
			st = Cleared
		}
		evs = append(evs, Event{Name: fmt.Sprint("r", i/2), State: st, Metric: Temperature, Value: 301, Threshold: 300, Time: t0.Add(time.Duration(i) * time.Second)})
	}
	return evs
}

func names(evs []Event) string {
	var s []string
	for _, e := range evs {
		s = append(s, e.Name+" "+string(e.State))
	}
	return strings.Join(s, ",")
}

// Every alert arrives once and in order: while the receiver is up, while
// it answers 503, and while nothing listens at all.
func TestWebhookDeliversEveryAlertOnceInOrderAcrossOutages(t *testing.T) {
	r := newReceiver(t)
	w := runWebhook(t, "http://"+r.addr+"/hook")
	evs := alertEvents(12)

	w.Send(evs[0])
	w.Send(evs[1])
	wait := func(n int) {
		t.Helper()
		testutil.Until(t, 20*time.Second, func() bool { return len(r.events()) >= n && w.Stats().Queued == 0 },
			func() string { return fmt.Sprintf("receiver has %q, stats %+v", r.events(), w.Stats()) })
	}
	wait(2)

	r.down.Store(true)
	for _, ev := range evs[2:6] {
		w.Send(ev)
	}
	testutil.Until(t, 20*time.Second, func() bool { return w.Stats().Failures >= 3 },
		func() string { return fmt.Sprintf("stats %+v", w.Stats()) })
	r.down.Store(false)
	wait(6)

	r.stop(t)
	for _, ev := range evs[6:] {
		w.Send(ev)
	}
	f := w.Stats().Failures
	testutil.Until(t, 20*time.Second, func() bool { return w.Stats().Failures >= f+3 },
		func() string { return fmt.Sprintf("stats %+v", w.Stats()) })
	r.start(t)
	wait(12)

	if got, want := strings.Join(r.events(), ","), names(evs); got != want {
		t.Fatalf("received %s\nwant     %s", got, want)
	}
	if st := w.Stats(); st.Sent != 12 || st.Dropped != 0 || st.Refused != 0 {
		t.Fatalf("stats %+v", st)
	}
	if r.titles[0] != "sensord alert r0 raised" || r.titles[1] != "sensord alert r0 cleared" {
		t.Fatalf("titles %q", r.titles[:2])
	}
}

func TestWebhookQueueIsBoundedDropsTheOldestAndCountsThem(t *testing.T) {
	r := newReceiver(t)
	r.stop(t)
	w, err := NewWebhook("http://"+r.addr+"/", WebhookOpts{MinBackoff: 10 * time.Millisecond, MaxBackoff: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	evs := alertEvents(WebhookQueue + 10)
	for _, ev := range evs {
		w.Send(ev)
	}
	if st := w.Stats(); st.Queued != WebhookQueue || st.Dropped != 10 {
		t.Fatalf("stats %+v, want %d queued and 10 dropped", st, WebhookQueue)
	}
	r.start(t)
	testutil.Go(t, func(ctx context.Context) error { w.Run(ctx); return nil })
	testutil.Until(t, 30*time.Second, func() bool { return w.Stats().Sent == WebhookQueue },
		func() string { return fmt.Sprintf("stats %+v", w.Stats()) })
	if got, want := strings.Join(r.events(), ","), names(evs[10:]); got != want {
		t.Fatalf("received the wrong alerts:\n%s\nwant\n%s", got, want)
	}
}

func TestWebhookRefusalIsNotRetried(t *testing.T) {
	var posts atomic.Int32
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		posts.Add(1)
		http.Error(w, "no such topic", http.StatusNotFound)
	})}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	w := runWebhook(t, "http://"+ln.Addr().String()+"/")
	w.Send(alertEvents(1)[0])
	w.Send(alertEvents(2)[1])
	testutil.Until(t, 20*time.Second, func() bool { return w.Stats().Refused == 2 },
		func() string { return fmt.Sprintf("stats %+v", w.Stats()) })
	if n := posts.Load(); n != 2 {
		t.Fatalf("%d POSTs, want 2", n)
	}
	var refused error
	w2, _ := NewWebhook("http://"+ln.Addr().String()+"/", WebhookOpts{OnResult: func(_ Event, err error) { refused = err }})
	testutil.Go(t, func(ctx context.Context) error { w2.Run(ctx); return nil })
	w2.Send(alertEvents(1)[0])
	testutil.Until(t, 20*time.Second, func() bool { return w2.Stats().Refused == 1 }, func() string { return "not refused" })
	if !errors.Is(refused, ErrRefused) || !errors.Is(refused, ErrWebhook) {
		t.Fatalf("got %v, want ErrRefused", refused)
	}
	if _, err := NewWebhook("ntfy.sh/x", WebhookOpts{}); !errors.Is(err, ErrWebhook) {
		t.Fatalf("got %v", err)
	}
}

// ntfyReceiver takes a POST the way ntfy's publish endpoint does (its
// docs, "Publishing" and "Message templating"): a body of valid UTF-8 up
// to 4096 bytes is the message, else it becomes an attachment; with
// X-Template set, the body must be JSON and X-Message and X-Title are Go
// templates filled from it.
func ntfyReceiver(t *testing.T, got chan<- string) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.Method != http.MethodPost || !utf8.Valid(body) || len(body) > 4096 {
			got <- "attachment, not a message"
			return
		}
		msg, title := string(body), r.Header.Get("X-Title")
		if title == "" {
			title = r.Header.Get("Title")
		}
		switch strings.ToLower(r.Header.Get("X-Template")) {
		case "yes", "true", "1":
			var data map[string]any
			if err := json.Unmarshal(body, &data); err != nil {
				http.Error(w, "body is not JSON", http.StatusBadRequest)
				got <- "400 " + err.Error()
				return
			}
			fill := func(tpl string) string {
				var b strings.Builder
				tp, err := template.New("").Parse(tpl)
				if err == nil {
					err = tp.Execute(&b, data)
				}
				if err != nil {
					return "template error " + err.Error()
				}
				return b.String()
			}
			msg, title = fill(r.Header.Get("X-Message")), fill(title)
		}
		got <- title + " | " + msg
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/my-fish-tank"
}

// A plain ntfy topic URL reads as words on the phone, not as JSON.
func TestWebhookReadsWellOnAPlainNtfyTopic(t *testing.T) {
	got := make(chan string, 2)
	w := runWebhook(t, ntfyReceiver(t, got))
	w.Send(Event{Name: "hot", State: Raised, Metric: Temperature, Value: 304, Threshold: 300, Time: t0})
	w.Send(Event{Name: "hot", State: Cleared, Metric: Temperature, Value: 289, Threshold: 290, Time: t0.Add(time.Minute)})
	for _, want := range []string{
		"sensord alert hot raised | hot raised: temperature 30.4, threshold 30",
		"sensord alert hot cleared | hot cleared: temperature 28.9, threshold 29",
	} {
		select {
		case g := <-got:
			if g != want {
				t.Fatalf("ntfy shows %q, want %q", g, want)
			}
		case <-time.After(testutil.Scale(20 * time.Second)):
			t.Fatal("nothing reached ntfy")
		}
	}
}
