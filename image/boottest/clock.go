package main

// The appliance's clock under qemu (the main boot scenario): the guest
// boots as a Pi without a battery-backed clock does, its RTC reading 2000
// (qemu -rtc base=, which the guest takes for a clock that lost its
// battery), so its wall clock comes from systemd's and timesyncd's saved
// dates, in the past; its only time server is NTP_SERVER=10.0.2.2, which
// at first nothing answers. sensord holds its readings; then the test
// answers NTP itself (an SNTP responder on the host's 127.0.0.1:123,
// which is 10.0.2.2:123 to the guest: it reads the host's clock and never
// sets one) and the held readings land in history at their real times.

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"sensord/image/boottest/harness"
)

// guestRTCBase is the guest RTC's time at boot: long before notBefore in
// sensord's timesync, as a Pi 5's RTC without its battery.
const guestRTCBase = "2000-01-01T00:00:00"

// ntpEpochOffset is 1900-01-01 to 1970-01-01 in seconds (RFC 5905).
const ntpEpochOffset = 2208988800

// ntpTime is t as a 64-bit NTP timestamp.
func ntpTime(t time.Time) uint64 {
	secs := uint64(t.Unix() + ntpEpochOffset)
	frac := uint64(t.Nanosecond()) << 32 / 1e9
	return secs<<32 | frac
}

// sntpReply is the answer to an SNTP client request req at now: a
// stratum-2 server, synchronised, echoing the client's transmit time as
// the originate time (RFC 4330). ok is false for anything but a client
// request.
func sntpReply(req []byte, now time.Time) (reply []byte, ok bool) {
	if len(req) < 48 || req[0]&7 != 3 { // mode 3: client
		return nil, false
	}
	vn := req[0] >> 3 & 7
	if vn < 3 || vn > 4 {
		vn = 4
	}
	b := make([]byte, 48)
	b[0] = vn<<3 | 4                            // LI 0 (no warning), mode 4: server
	b[1] = 2                                    // stratum 2
	b[2] = req[2]                               // poll
	b[3] = 0xec                                 // precision 2^-20 s
	binary.BigEndian.PutUint32(b[8:], 1<<10)    // root dispersion 1/64 s
	copy(b[12:16], net.IPv4(10, 0, 2, 2).To4()) // reference id: an upstream's address
	binary.BigEndian.PutUint64(b[16:], ntpTime(now.Add(-time.Second)))
	copy(b[24:32], req[40:48]) // originate: the client's transmit time
	binary.BigEndian.PutUint64(b[32:], ntpTime(now))
	binary.BigEndian.PutUint64(b[40:], ntpTime(now))
	return b, true
}

// sntpServer answers SNTP requests on a UDP socket until closed.
type sntpServer struct {
	conn     *net.UDPConn
	answered atomic.Int64
}

func startSNTP(addr string) (*sntpServer, error) {
	ua, err := net.ResolveUDPAddr("udp4", addr)
	if err != nil {
		return nil, err
	}
	c, err := net.ListenUDP("udp4", ua)
	if err != nil {
		return nil, fmt.Errorf("sntp: %w (port 123 needs root or CAP_NET_BIND_SERVICE)", err)
	}
	s := &sntpServer{conn: c}
	go func() {
		buf := make([]byte, 512)
		for {
			n, from, err := c.ReadFromUDP(buf)
			if err != nil {
				return // closed
			}
			if reply, ok := sntpReply(buf[:n], time.Now()); ok {
				if _, err := c.WriteToUDP(reply, from); err == nil {
					s.answered.Add(1)
				}
			}
		}
	}()
	return s, nil
}

func (s *sntpServer) Close() { s.conn.Close() }

// clockHealth is /healthz's clock and history, as the test reads them.
type clockHealth struct {
	Status string `json:"status"`
	Reason string `json:"reason"`
	Clock  struct {
		Trusted bool   `json:"trusted"`
		By      string `json:"by"`
		Hold    bool   `json:"hold"`
		Held    int    `json:"held"`
		Problem string `json:"problem"`
		Fix     string `json:"fix"`
	} `json:"clock"`
	Extra struct {
		History struct {
			Written uint64 `json:"written"`
			Start   int64  `json:"start"`
		} `json:"history"`
	} `json:"extra"`
}

func (t *rig) clockHealth(ctx context.Context) (clockHealth, error) {
	var h clockHealth
	req, _ := http.NewRequestWithContext(ctx, "GET", t.url("/healthz"), nil)
	resp, err := (&http.Client{Timeout: 20 * time.Second}).Do(req)
	if err != nil {
		return h, err
	}
	defer resp.Body.Close()
	return h, json.NewDecoder(resp.Body).Decode(&h)
}

// clockRun proves the hold and the repair: before any time server
// answers, readings stream live but are held (healthz, the dashboard's
// banner, nothing written); once the test answers NTP, every reading the
// stream saw before is in history at its real time.
type clockRun struct {
	*rig
	frames []frame // frames seen while held, with the host's time of arrival
	sntp   *sntpServer
}

// clockWait bounds each wait of the clock's: the clock trusted after NTP
// answers, the held readings in history.
const clockWait = 3 * time.Minute

// step is the clock's checks, each ending them when it fails; the SNTP
// responder answers from the fourth to the end of the last.
func (c *clockRun) step() harness.Step {
	g := harness.Group("the clock",
		harness.Do("held before NTP", c.heldBeforeNTP),
		harness.Do("live frames while held", c.liveWhileHeld),
		harness.Do("answer NTP on the host", c.answerNTP),
		harness.Do("trusted once NTP answers", c.trusted),
		harness.Do("the held readings in history", c.history),
	)
	return harness.Do(g.Name, func(ctx context.Context) error {
		defer func() {
			if c.sntp != nil {
				c.sntp.Close()
			}
		}()
		return g.Run(ctx)
	})
}

func (c *clockRun) heldBeforeNTP(ctx context.Context) error {
	h, err := c.clockHealth(ctx)
	if !c.Check(err == nil && h.Clock.Hold && !h.Clock.Trusted && h.Clock.Held > 0 && h.Status == "degraded" && strings.HasPrefix(h.Reason, "clock not set"),
		"before NTP: /healthz says the clock is not set and readings are held (%s: %q, held %d, hold %v, trusted %v, %v)", h.Status, h.Reason, h.Clock.Held, h.Clock.Hold, h.Clock.Trusted, err) {
		c.explain(ctx, "timedatectl timesync-status; journalctl -b -u systemd-timesyncd -o cat --no-pager | tail -n 5; cat /sys/class/rtc/rtc0/hctosys /sys/class/rtc/rtc0/since_epoch")
		return harness.ErrSkip
	}
	c.Check(h.Extra.History.Written == 0, "before NTP: nothing is written to history (%d readings)", h.Extra.History.Written)
	req, _ := http.NewRequestWithContext(ctx, "GET", c.url("/"), nil)
	if resp, err := (&http.Client{Timeout: 20 * time.Second}).Do(req); err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		c.Check(strings.Contains(string(b), `id="clock-banner"`) && strings.Contains(string(b), "The clock is not set"),
			"the dashboard carries the clock banner (shown while /healthz says clock.hold and not trusted; its words and button are proven in Chromium by cmd/sensord/web)")
	}
	return nil
}

// heldReading is a sensor_update's values, as the stream and history
// carry them.
type heldReading struct {
	Temperature float64 `json:"temperature"`
	Humidity    float64 `json:"humidity"`
	Timestamp   int64   `json:"timestamp"`
}

func parseReading(raw string) heldReading {
	var r heldReading
	json.Unmarshal([]byte(raw), &r)
	return r
}

func (c *clockRun) liveWhileHeld(ctx context.Context) error {
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	held, err := c.stream.waitFrames(wctx, time.Now(), 5)
	cancel()
	if !c.Check(err == nil, "live frames keep coming while readings are held (%d)", len(held)) {
		return harness.ErrSkip
	}
	c.frames = held
	behind := held[0].at.Sub(time.UnixMilli(parseReading(held[0].raw).Timestamp))
	c.Number("guest clock before NTP: %s behind the host", behind.Round(time.Second))
	c.Check(behind > time.Minute, "the guest's clock starts in the past as a Pi's without an RTC does (%s behind)", behind.Round(time.Second))
	return nil
}

func (c *clockRun) answerNTP(ctx context.Context) error {
	srv, err := startSNTP("127.0.0.1:123")
	if !c.Check(err == nil, "SNTP responder on the host's 127.0.0.1:123 (the guest's NTP_SERVER=%s): %v", qemuHost, err) {
		return harness.ErrSkip
	}
	c.sntp = srv
	return nil
}

func (c *clockRun) trusted(ctx context.Context) error {
	// timesyncd retries an unanswered server on its own schedule (up to
	// ConnectionRetrySec=30s); a restart asks at once, which keeps the
	// simulated sensor's hang (-hang-after) for the watchdog phase.
	c.guest(ctx, "systemctl restart systemd-timesyncd")
	served := time.Now()
	var after clockHealth
	var err error
	for deadline := time.Now().Add(clockWait); ; {
		after, err = c.clockHealth(ctx)
		if err == nil && after.Clock.Trusted {
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			c.Fail("the clock was never trusted after NTP answered (%d answers): %+v %v", c.sntp.answered.Load(), after.Clock, err)
			c.explain(ctx, "timedatectl timesync-status; journalctl -b -u systemd-timesyncd -o cat --no-pager | tail -n 8; ls -l /run/systemd/timesync/")
			return harness.ErrSkip
		}
		time.Sleep(2 * time.Second) // the guest's own pace: nothing to wait on from here
	}
	c.Number("NTP answering to the clock trusted (timesyncd's retry, sensord's poll): %.0f s", time.Since(served).Seconds())
	c.Check(after.Clock.By == "timesyncd" && !strings.HasPrefix(after.Reason, "clock"),
		"after NTP: /healthz says the clock is set by %q (%d answers served)", after.Clock.By, c.sntp.answered.Load())
	return nil
}

// heldSlack is how far from the host's time of arrival a held reading may
// be stored: emulation's delays.
const heldSlack = 5 * time.Second

// heldInHistory counts the held frames that rows hold at their real time.
func heldInHistory(held []frame, rows []heldReading) int {
	found := 0
	for _, f := range held {
		want := parseReading(f.raw)
		for _, r := range rows {
			if r.Temperature == want.Temperature && r.Humidity == want.Humidity && time.UnixMilli(r.Timestamp).Sub(f.at).Abs() <= heldSlack {
				found++
				break
			}
		}
	}
	return found
}

// history: each reading the stream saw while held, at its real time, in
// order; nothing at the guest's old dates; the journal says so once each.
func (c *clockRun) history(ctx context.Context) error {
	from, to := c.frames[0].at.Add(-time.Minute).UnixMilli(), time.Now().Add(time.Minute).UnixMilli()
	var rows []heldReading
	for deadline := time.Now().Add(clockWait); ; {
		rows = nil
		req, _ := http.NewRequestWithContext(ctx, "GET", c.url(fmt.Sprintf("/api/history?from=%d&to=%d", from, to)), nil)
		if resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req); err == nil {
			json.NewDecoder(resp.Body).Decode(&rows)
			resp.Body.Close()
		}
		found := heldInHistory(c.frames, rows)
		if found == len(c.frames) {
			c.Pass("after NTP: history holds all %d readings seen while held, each within %s of when the host received it (%d rows in the range)", len(c.frames), heldSlack, len(rows))
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			c.Fail("after NTP: %d of %d held readings are in history at their real times (%d rows from %d to %d)", found, len(c.frames), len(rows), from, to)
			return harness.ErrSkip
		}
		time.Sleep(2 * time.Second) // the guest's own pace: nothing to wait on from here
	}
	ordered := true
	for i := 1; i < len(rows); i++ {
		ordered = ordered && rows[i].Timestamp > rows[i-1].Timestamp
	}
	c.Check(ordered, "history's rows are in order, one per reading")
	after, _ := c.clockHealth(ctx)
	c.Check(after.Extra.History.Start >= c.frames[0].at.Add(-10*time.Minute).UnixMilli(),
		"nothing is stored at the guest's old dates: history starts at %s", time.UnixMilli(after.Extra.History.Start).UTC().Format(time.RFC3339))
	r, _ := c.guest(ctx, "journalctl -u sensord -o cat --no-pager | grep -c -e 'clock not set: readings are held' -e 'clock set: held readings stored'")
	c.Check(r.Has("2"), "the journal says once that the clock is not set and once that it is (%q)", strings.Join(r.Lines(), " "))
	return nil
}
