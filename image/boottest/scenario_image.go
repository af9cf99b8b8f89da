package main

import (
	"context"
	"fmt"
	"time"

	"sensord/image/boottest/harness"
)

// imageBootWait bounds qemu start to the dashboard served.
const imageBootWait = 10 * time.Minute

// imageRun is make image-test's state between its steps.
type imageRun struct {
	*rig
	qemuStart  time.Time
	bootCancel context.CancelFunc
	bootCtx    context.Context // qemu start to the dashboard served
}

// imageSteps is make image-test: the appliance under -M virt, set up as
// Raspberry Pi Imager 2 sets up a card, its clock in the past, proven from
// outside and over its console (the command's doc lists what each proves).
func imageSteps(r *rig) []harness.Step {
	r.pastClock = true
	s := &imageRun{rig: r}
	w := &watchdogRun{rig: r}
	t := r.T
	return []harness.Step{
		t.PhaseOf("prepare: copy image, settings, kernel",
			append([]harness.Step{harness.Do("work directory and three key pairs", s.keys)}, r.prepareSteps(true)...)...),
		t.PhaseOf("boot: qemu start to shell on console", harness.Do("qemu to a shell on the console", s.boot)),
		t.PhaseOf("boot: shell to dashboard over HTTP", harness.Do("dashboard on the forwarded port", s.dashboard)),
		t.PhaseOf("checks: HTTP, WebSocket, systemd", harness.Checks("the dashboard and the stream", r.checkDashboard, r.checkStream)),
		t.PhaseOf("checks: clock held, then set by NTP (clock.go)", (&clockRun{rig: r}).step()),
		t.PhaseOf("checks: systemd, TLS, MQTT",
			harness.Checks("U-Boot", r.checkUBoot),
			harness.Checks("systemd", r.checkSystemd, r.checkBootToReady, r.checkSystem, r.checkDataGrown),
			harness.Checks("TLS", r.checkTLS),
			r.mqttSteps()),
		t.PhaseOf("checks: Raspberry Pi Imager's settings imported", r.imagerStep()),
		t.PhaseOf("checks: HOSTNAME and SSH_PUBKEY", harness.Checks("HOSTNAME", r.checkHostname), r.sshSteps(func() time.Time { return s.qemuStart })),
		t.PhaseOf("checks: WIFI_* (two simulated radios)", r.wifiStep()),
		t.PhaseOf("watchdog: wait for the hang and the kill",
			harness.Group("the kill and the restart",
				harness.Do("systemd's watchdog kills the hung sensord", w.waitKill),
				t.Opens("watchdog: restart and stream resume"),
				harness.Checks("restarted, the stream back", w.checkRestart)),
			harness.Checks("the broker's last will", r.checkMQTTWill)),
		// After the watchdog's phase: its cable is out for a while, which
		// would count as the stream's silence.
		t.PhaseOf("checks: setup access point (three simulated radios)", r.setupStep()),
		t.PhaseOf("checks: gpio-sim on the image's kernel", r.gpioSimStep()),
		t.PhaseOf("checks: a setting changed on the dashboard (settings_page.go)", r.settingsStep()),
	}
}

func (s *imageRun) keys(ctx context.Context) error {
	keys, err := s.workDirs(ctx, "sensord-boottest-", "id_appliance", "id_second", "id_other")
	if err != nil {
		return err
	}
	s.key, s.key2, s.otherKey = keys[0], keys[1], keys[2]
	return nil
}

func (s *imageRun) boot(ctx context.Context) error {
	if err := s.startQemu(); err != nil {
		return err
	}
	s.qemuStart = time.Now()
	s.bootCtx, s.bootCancel = context.WithTimeout(ctx, imageBootWait)
	s.Cleanup(s.bootCancel)
	if err := s.m.WaitPrompt(s.bootCtx); err != nil {
		return fmt.Errorf("no shell prompt on the serial console: %w", err)
	}
	if err := s.m.Shell(s.bootCtx, 2*time.Second); err != nil {
		return fmt.Errorf("no shell on the serial console: %w", err)
	}
	s.Logf("shell on the serial console after %.0fs", time.Since(s.qemuStart).Seconds())
	return nil
}

// dashboard waits for the dashboard, then keeps a WebSocket client on the
// sensor stream until the run ends.
func (s *imageRun) dashboard(ctx context.Context) error {
	if err := s.waitHTTP(s.bootCtx); err != nil {
		s.dumpGuest(ctx)
		return err
	}
	s.Number("qemu start to dashboard served on the forwarded port: %.0f s", time.Since(s.qemuStart).Seconds())
	s.stream = newStream(fmt.Sprintf("ws://127.0.0.1:%d/ws/sensors", s.port))
	sctx, cancel := context.WithCancel(ctx)
	s.Cleanup(cancel)
	go s.stream.run(sctx)
	return nil
}
