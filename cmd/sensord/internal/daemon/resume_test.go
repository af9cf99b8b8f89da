package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"sensord/internal/testutil"
	"sensord/sensor"
)

func TestAClientThatDropsAndResumesAtRandomGetsEveryReadingOnce(t *testing.T) {
	t.Parallel()
	p := start(t, nil, "-history-dir", t.TempDir(), "-history-commit-interval", "1s", "-period", "50ms")
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 1))
	t.Logf("seed %d", seed)
	var got []int64
	read := func(c *websocket.Conn, n int) error {
		for range n {
			c.SetReadDeadline(time.Now().Add(testutil.Scale(10 * time.Second)))
			_, b, err := c.ReadMessage()
			if err != nil {
				return err
			}
			var r struct {
				Type      string
				Timestamp int64
			}
			if err := json.Unmarshal(b, &r); err != nil || r.Type != "sensor_update" {
				return fmt.Errorf("frame %q: %v", b, err)
			}
			got = append(got, r.Timestamp)
		}
		return nil
	}
	url := "ws://" + p.addr + "/ws/sensors"
	for round := range 25 {
		u := url
		if len(got) > 0 {
			u = fmt.Sprintf("%s?since=%d", url, got[len(got)-1])
		}
		c, resp, err := websocket.DefaultDialer.Dial(u, nil)
		if err != nil {
			t.Fatalf("round %d: dial %s: %v (%v)", round, u, err, resp)
		}
		if err := read(c, 1+rng.IntN(40)); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		// Cut the connection without a close frame, as a laptop that
		// sleeps or a Wi-Fi that drops does, and stay away a while.
		c.NetConn().Close()
		time.Sleep(time.Duration(rng.IntN(600)) * time.Millisecond) // away: readings go on without us
	}
	// Every reading the daemon stored between the first and the last
	// received, exactly once, in order.
	var stored []struct{ Timestamp int64 }
	u := fmt.Sprintf("http://%s/api/history?from=%d&to=%d", p.addr, got[0], got[len(got)-1]+1)
	if code := getJSON(t, u, &stored); code != http.StatusOK {
		t.Fatalf("%s: %d", u, code)
	}
	for i := 1; i < len(got); i++ {
		if got[i] <= got[i-1] {
			t.Fatalf("reading %d at %d after %d: doubled or out of order", i, got[i], got[i-1])
		}
	}
	if len(stored) != len(got) {
		t.Fatalf("received %d readings, the store holds %d in that span", len(got), len(stored))
	}
	for i := range got {
		if stored[i].Timestamp != got[i] {
			t.Fatalf("reading %d: received %d, stored %d: one lost", i, got[i], stored[i].Timestamp)
		}
	}
	t.Logf("%d readings over 25 reconnects, none lost or doubled", len(got))
}

func TestASinceThatIsNotATimeIsRefusedWithTheReason(t *testing.T) {
	t.Parallel()
	p := start(t, nil, "-history-dir", t.TempDir())
	resp, err := http.Get("http://" + p.addr + "/ws/sensors?since=yesterday")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "since=\"yesterday\" is not a time in Unix milliseconds") {
		t.Fatalf("since=yesterday: %d %q; want 400 saying why", resp.StatusCode, body)
	}
}

// BenchmarkResumeADay is the cost of a client that resumes after a day
// away (default period 2 s: 43,200 readings): the bytes it receives and the
// time from the dial until the last of them has arrived, against a plain
// join (the replay of the newest reading) in the same run.
func BenchmarkResumeADay(b *testing.B) {
	p := newInproc(&testing.T{}, "-history-dir", b.TempDir())
	defer p.srv.Close()
	end := time.Now().Add(-time.Minute)
	var rs []sensor.Reading
	first := end.Add(-24*time.Hour + 2*time.Minute) // within resumeMax while the benchmark runs
	for ts := first; ts.Before(end); ts = ts.Add(2 * time.Second) {
		rs = append(rs, sensor.Reading{Temperature: 214, Humidity: 482, Time: ts})
	}
	if err := p.d.store.Import(context.Background(), rs, nil); err != nil {
		b.Fatal(err)
	}
	p.d.publish(sensor.Derive(sensor.Reading{Temperature: 215, Humidity: 480, Time: end})) // the newest, also live
	for _, bc := range []struct {
		name  string
		query string
		want  int
	}{
		{"plain_join", "", 1},
		{"since_a_day", fmt.Sprintf("?since=%d", first.Add(-time.Second).UnixMilli()), len(rs) + 1},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var bytes int
			b.ReportAllocs()
			for b.Loop() {
				c, _, err := websocket.DefaultDialer.Dial(p.ws("/ws/sensors"+bc.query), nil)
				if err != nil {
					b.Fatal(err)
				}
				bytes = 0
				for range bc.want {
					c.SetReadDeadline(time.Now().Add(30 * time.Second))
					_, m, err := c.ReadMessage()
					if err != nil {
						b.Fatal(err)
					}
					bytes += len(m)
				}
				c.Close()
			}
			b.ReportMetric(float64(bytes), "payload-bytes")
			b.ReportMetric(float64(bc.want), "readings")
		})
	}
}
