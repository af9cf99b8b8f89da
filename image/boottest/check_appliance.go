package main

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"sensord/image/boottest/harness"
	"sensord/image/boottest/vm"
)

func (t *rig) checkDashboard(ctx context.Context) {
	req, _ := http.NewRequestWithContext(ctx, "GET", t.url("/"), nil)
	resp, err := (&http.Client{Timeout: 20 * time.Second}).Do(req)
	if err != nil {
		t.Fail("GET /: %v", err)
		return
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	ct := resp.Header.Get("Content-Type")
	t.Check(resp.StatusCode == 200 && strings.HasPrefix(ct, "text/html") && strings.Contains(strings.ToLower(string(body)), "<html"),
		"GET / is the dashboard: %d %s, %d bytes of HTML", resp.StatusCode, ct, len(body))
	resp, err = (&http.Client{Timeout: 20 * time.Second}).Get(t.url("/healthz"))
	if err == nil {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		t.Logf("GET /healthz: %d %s", resp.StatusCode, strings.TrimSpace(string(b)))
	}
}

func (t *rig) checkStream(ctx context.Context) {
	s := t.stream
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	frames, err := s.waitFrames(wctx, time.Time{}, 3)
	if !t.Check(err == nil, "/ws/sensors streams sensor_update frames (%d received)", len(frames)) {
		t.Logf("stream: %v", err)
		return
	}
	t.Logf("first frame: %s", frames[0].raw)
	span := frames[len(frames)-1].at.Sub(frames[0].at)
	t.Number("WebSocket: 3 frames in %.1f s", span.Seconds())
}

// checkSystemd asks systemd over the serial console about sensord and
// the units.
func (t *rig) checkSystemd(ctx context.Context) {
	run := func(cmd string) vm.Result { r, _ := t.guest(ctx, cmd); return r }
	r := run("systemctl is-active sensord")
	t.Check(r.Has("active"), "systemctl is-active sensord: %q", strings.Join(r.Lines(), " "))
	r = run("systemctl show -p WatchdogUSec sensord")
	t.Check(r.Has("WatchdogUSec=30s") || strings.Contains(r.Out, "WatchdogUSec=") && !r.Has("WatchdogUSec=0") && !r.Has("WatchdogUSec=infinity"),
		"systemctl show -p WatchdogUSec sensord: %q", strings.Join(r.Lines(), " "))
	r = run("systemctl --failed --no-legend --plain")
	t.Check(len(r.Lines()) == 0, "systemctl --failed lists no unit (%q)", strings.Join(r.Lines(), "; "))
	r = run("systemctl is-system-running; systemctl list-jobs --no-legend --plain | head -n 8")
	t.Logf("systemctl is-system-running, jobs: %s", strings.Join(r.Lines(), " | "))
}

// checkBootToReady measures boot to READY by systemd's own clock:
// monotonic microseconds since the kernel started, when sensord.service
// became active (READY=1).
func (t *rig) checkBootToReady(ctx context.Context) {
	r, _ := t.guest(ctx, "systemctl show -p ActiveEnterTimestampMonotonic -p ExecMainStartTimestampMonotonic sensord")
	vals := map[string]int64{}
	for _, l := range r.Lines() {
		if k, v, ok := strings.Cut(l, "="); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			vals[k] = n
		}
	}
	if us := vals["ActiveEnterTimestampMonotonic"]; us > 0 {
		t.Number("boot to sensord READY (guest kernel start to READY=1): %.1f s", float64(us)/1e6)
		if st := vals["ExecMainStartTimestampMonotonic"]; st > 0 {
			t.Number("sensord exec to READY: %.2f s", float64(us-st)/1e6)
		}
	} else {
		t.Fail("no ActiveEnterTimestampMonotonic for sensord: %q", r.Out)
	}
	r, _ = t.guest(ctx, "systemd-analyze time 2>&1 | head -n 3")
	t.Logf("systemd-analyze: %s", strings.Join(r.Lines(), " | "))
	// Where sensord's own start goes: its first lines by the kernel's
	// clock, from systemd's start of it to the listeners.
	r, _ = t.guest(ctx, "journalctl -b -u sensord -o short-monotonic --no-pager | head -n 8")
	for _, l := range r.Lines() {
		t.Logf("sensord start: %s", l)
	}
}

// checkSystem: the hardware watchdog armed, sensord's group, the mounts,
// no swap, the journal in RAM.
func (t *rig) checkSystem(ctx context.Context) {
	run := func(cmd string) vm.Result { r, _ := t.guest(ctx, cmd); return r }
	r := run("systemctl show -p RuntimeWatchdogUSec; journalctl -b -o cat --no-pager | grep -i -m 3 'hardware watchdog'")
	t.Check(r.Has("RuntimeWatchdogUSec=15s"), "systemd arms the hardware watchdog: %q", strings.Join(r.Lines(), " | "))

	r = run("id sensord; ls -l /dev/gpiochip* 2>&1 | head -n 2")
	t.Logf("users, devices: %s", strings.Join(r.Lines(), " | "))
	t.Check(strings.Contains(r.Out, "(gpio)"), "user sensord is in group gpio")

	r = run("findmnt -rno OPTIONS /; findmnt -rno FSTYPE,OPTIONS /boot/firmware; swapon --show --noheadings | wc -l; journalctl --header 2>/dev/null | grep -c '/run/log/journal'")
	lines := r.Lines()
	t.Check(len(lines) >= 4 && strings.Contains(lines[0], "noatime") && strings.HasPrefix(lines[1], "vfat") && lines[2] == "0" && lines[3] != "0",
		"root noatime, /boot/firmware vfat, no swap, journal in /run: %q", strings.Join(lines, " | "))
}

// checkDataGrown: the first boot grew the data partition into the extra
// 1 GiB of the bigger card.
func (t *rig) checkDataGrown(ctx context.Context) {
	wctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	for {
		r, err := t.m.Console.Run(wctx, "systemctl is-active sensord-growroot.service; df -B1 --output=size /data | tail -n 1")
		if err != nil {
			t.Fail("data partition growth: %v", err)
			return
		}
		l := r.Lines()
		if len(l) == 2 && l[0] != "activating" {
			size, _ := strconv.ParseInt(l[1], 10, 64)
			if !t.Check(size > t.dataBytes, "first boot grew the data partition into the bigger disk: partition %d MiB in the image, filesystem now %d MiB (growroot %s)",
				t.dataBytes>>20, size>>20, l[0]) {
				t.explain(ctx, "journalctl -b -u sensord-growroot -o cat --no-pager | tail -n 15")
			}
			return
		}
		select {
		case <-wctx.Done():
		case <-time.After(3 * time.Second):
		}
	}
}

// watchdogRun is the image scenario's watchdog phase: the hung sensor
// caught by systemd's watchdog, sensord restarted, the stream back.
type watchdogRun struct {
	*rig
	deadline time.Time // for the kill and the stream's resumption
	restarts int
	killed   time.Time
}

// waitKill waits for systemd's watchdog to kill the hung sensord and
// restart it.
func (w *watchdogRun) waitKill(ctx context.Context) error {
	d := w.opts.hangAfter + 5*time.Minute
	w.deadline = time.Now().Add(d)
	wctx, cancel := context.WithDeadline(ctx, w.deadline)
	defer cancel()
	for {
		r, err := w.m.Console.Run(wctx, "systemctl show -p NRestarts --value sensord; journalctl -u sensord -o cat --no-pager | grep -c -i 'watchdog timeout'")
		if err != nil {
			w.Fail("watchdog never fired: %v", err)
			w.dumpGuest(ctx)
			return harness.ErrSkip
		}
		if l := r.Lines(); len(l) >= 2 {
			w.restarts, _ = strconv.Atoi(l[0])
			if n, _ := strconv.Atoi(l[1]); n > 0 && w.restarts > 0 {
				w.killed = time.Now()
				return nil
			}
		}
		select {
		case <-wctx.Done():
			w.Fail("watchdog never fired within %s", d)
			w.dumpGuest(ctx)
			return harness.ErrSkip
		case <-time.After(5 * time.Second):
		}
	}
}

// checkRestart: the journal says why, NRestarts went up, the stream
// resumed and sensord is active again.
func (w *watchdogRun) checkRestart(ctx context.Context) {
	// systemd's own lines about the unit, and sensord's watchdog warnings; not
	// the goroutine dump (GOTRACEBACK=all) that the SIGABRT printed.
	r, _ := w.m.Console.Run(ctx, "journalctl -u sensord -o short-monotonic --no-pager | grep -i -E 'systemd\\[1\\]|watchdog' | grep -v -E '[.]go:[0-9]|sensord/systemd[.]' | tail -n 12")
	for _, l := range r.Lines() {
		w.Logf("journal: %s", l)
	}
	w.Check(strings.Contains(strings.ToLower(r.Out), "watchdog timeout"), "journal shows systemd's watchdog timeout for sensord")
	w.Check(w.restarts >= 1, "NRestarts went up to %d", w.restarts)
	wctx, cancel := context.WithDeadline(ctx, w.deadline)
	defer cancel()
	frames, err := w.stream.waitFrames(wctx, w.killed, 2)
	if w.Check(err == nil, "the WebSocket stream resumed after the restart (%d frames since the kill)", len(frames)) {
		w.Number("longest silence on the WebSocket stream (sensor hang + watchdog + restart): %.0f s", w.stream.maxGap().Seconds())
		w.Logf("stream: %d reconnects in all", w.stream.reconnects())
	}
	r, _ = w.m.Console.Run(ctx, "systemctl is-active sensord; systemctl --failed --no-legend --plain")
	w.Check(len(r.Lines()) >= 1 && r.Lines()[0] == "active", "sensord active again after the restart: %q", strings.Join(r.Lines(), " | "))
}

// uBootLines are what the console carries, in order, when the card boots
// through U-Boot: U-Boot's distro boot finds the card's boot.scr, which
// reads the slot state on the boot partition and boots the committed
// slot's own kernel, naming the slot to the initramfs.
var uBootLines = []string{
	"Found U-Boot script /boot.scr",
	"sensord-boot: booting slot A (committed): /slot-a/vmlinuz",
	"sensord-slot: booting slot A (committed)",
}

// checkUBoot: the boot went through U-Boot and the card's boot.scr, and
// the script chose the slot: the kernel command line names it.
func (t *rig) checkUBoot(ctx context.Context) {
	t.expectConsole(ctx, uBootLines...)
	r, err := t.m.Console.Run(ctx, "grep -o 'sensord\\.[a-z]*=[^ ]*' /proc/cmdline")
	if err != nil {
		t.Fail("/proc/cmdline: %v", err)
		return
	}
	got := strings.Join(r.Lines(), " ")
	t.Check(got == "sensord.slot=A sensord.mode=committed", "the boot script named the slot on the kernel command line: %q", got)
}

// expectConsole: this boot's console carries lines, in order.
func (t *rig) expectConsole(ctx context.Context, lines ...string) {
	wctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	at := 0
	for _, l := range lines {
		next, err := t.m.Console.WaitFor(wctx, at, l)
		if !t.Check(err == nil, "console, in order: %q", l) {
			return
		}
		at = next
	}
}
