package main

import (
	"context"
	"fmt"
	"strings"

	"sensord/image/boottest/harness"
	"sensord/image/boottest/vm"
)

// gpioSimLog is where a check's sensord writes its log in the guest.
const gpioSimLog = "/tmp/gpiosim-sensord.log"

// gpioSimRun is the gpio-sim checks' state.
type gpioSimRun struct {
	*rig
	chip, dev string // the simulated bank's chip and device
}

// gpioSimCfg is the test's gpio-sim configuration in configfs.
const gpioSimCfg = "/sys/kernel/config/gpio-sim/boottest"

// gpioSimStep proves the image's own kernel's GPIO character device
// behaves as the capture needs (timing under TCG is meaningless, the
// behaviour is not): the kernel has gpio-sim as a module and the image
// ships it; with a simulated bank loaded, sensord finds the chip,
// requests the line, drives the start pulse (output) and releases it to
// edge detection at every read, and says what it saw. With the line's
// pull up nothing answers (no_answer); held down, the line is stuck low
// (stuck_low): two causes sensord can only tell by switching the line
// between output and input with edges and reading its level.
//
// gpio-sim applies a consumer's bias to its pull: sensord's release, an
// input with the pull-up, sets the sim's pull up again. A line stuck low
// is therefore played by a shell loop that keeps writing pull-down.
func (t *rig) gpioSimStep() harness.Step {
	g := &gpioSimRun{rig: t}
	steps := harness.Group("gpio-sim",
		harness.Do("the kernel's gpio-sim module", g.module),
		harness.Do("a simulated bank", g.bank),
		harness.Checks("sensord on the bank's line 4", g.lines),
	)
	return harness.Do(steps.Name, func(ctx context.Context) error {
		defer func() {
			if g.chip != "" {
				t.guest(ctx, "echo 0 > "+gpioSimCfg+"/live; rmdir "+gpioSimCfg+"/bank0 "+gpioSimCfg+"; modprobe -r gpio-sim")
			}
		}()
		return steps.Run(ctx)
	})
}

func (g *gpioSimRun) module(ctx context.Context) error {
	r, _ := g.guest(ctx, "k=$(uname -r); grep -E '^CONFIG_GPIO_(SIM|CDEV)=' /boot/config-$k; ls /usr/lib/modules/$k/kernel/drivers/gpio/ | grep gpio-sim")
	if !g.Check(r.Has("CONFIG_GPIO_SIM=m") && r.Has("CONFIG_GPIO_CDEV=y") && strings.Contains(r.Out, "gpio-sim.ko"),
		"the image's kernel builds gpio-sim as a module and the image ships it: %q", strings.Join(r.Lines(), " | ")) {
		return harness.ErrSkip
	}
	return nil
}

func (g *gpioSimRun) bank(ctx context.Context) error {
	const cfg = gpioSimCfg
	r, _ := g.guest(ctx, "modprobe gpio-sim && { mountpoint -q /sys/kernel/config || mount -t configfs none /sys/kernel/config; } && mkdir -p "+cfg+"/bank0 && echo 28 > "+cfg+"/bank0/num_lines && echo 1 > "+cfg+"/live && echo chip=$(cat "+cfg+"/bank0/chip_name) dev=$(cat "+cfg+"/dev_name)")
	var chip, dev string
	for _, l := range r.Lines() {
		for _, f := range strings.Fields(l) {
			if v, ok := strings.CutPrefix(f, "chip="); ok {
				chip = v
			}
			if v, ok := strings.CutPrefix(f, "dev="); ok {
				dev = v
			}
		}
	}
	if !g.Check(strings.HasPrefix(chip, "gpiochip") && dev != "", "modprobe gpio-sim and a 28-line bank: %q", strings.Join(r.Lines(), " | ")) {
		return harness.ErrSkip
	}
	g.chip, g.dev = chip, dev
	return nil
}

// lines runs sensord on line 4 pulled up, then held down.
func (g *gpioSimRun) lines(ctx context.Context) {
	run := func(cmd string) vm.Result { r, _ := g.guest(ctx, cmd); return r }
	chip := g.chip
	pull := fmt.Sprintf("/sys/devices/platform/%s/%s/sim_gpio4/pull", g.dev, chip)
	for _, c := range []struct{ pull, cause, words string }{
		{"pull-up", "no_answer", "does not answer at all"},
		{"pull-down", "stuck_low", "stuck low"},
	} {
		// The pull, held by a loop for pull-down (see above) until the
		// file /tmp/gpiosim-hold goes.
		hold := "echo pull-up > " + pull + ";"
		if c.pull == "pull-down" {
			hold = "touch /tmp/gpiosim-hold; { while [ -e /tmp/gpiosim-hold ]; do echo pull-down > " + pull + "; done & };"
		}
		// sensord, as root beside the service, on the bank's line 4, until
		// its watch says what fails (the 2 s period's health window, 7 s,
		// and its next check), at most 60 s.
		r := run(fmt.Sprintf("%s rm -f %s; { /usr/local/bin/sensord -sensor dht22 -capture cdev -pin %s:4 -listen 127.0.0.1:8089 > %s 2>&1 & p=$!; for i in $(seq 120); do grep -q 'msg=\"sensor failing\"' %s && break; sleep 0.5; done; kill $p; wait $p; } ; rm -f /tmp/gpiosim-hold; grep -E 'msg=\"sensor (opened|failing)\"' %s",
			hold, gpioSimLog, chip, gpioSimLog, gpioSimLog, gpioSimLog))
		out := r.Out
		g.Check(strings.Contains(out, `msg="sensor opened"`) && strings.Contains(out, "capture=cdev") && strings.Contains(out, chip+":4"),
			"sensord finds %s and requests line 4 (%s): %q", chip, c.pull, firstLine(out, "sensor opened"))
		g.Check(strings.Contains(out, "cause="+c.cause) && strings.Contains(out, c.words),
			"line pulled %s: start pulse as output, release to edge detection, level read: sensord says %q (cause %s)", strings.TrimPrefix(c.pull, "pull-"), firstLine(out, "sensor failing"), c.cause)
	}
}

// firstLine returns the first line of out that contains s.
func firstLine(out, s string) string {
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, s) {
			return strings.TrimSpace(l)
		}
	}
	return ""
}
