package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sensord/internal/testutil"
)

// console writes a stand-in for qemu: a script that prints lines as a
// guest's console would, then ends as a guest that powers off, or, when
// the last line is not "kerneltest: done", goes silent as a hung one
// (exec sleep, so stopping it stops the whole stand-in).
func console(t *testing.T, lines ...string) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("#!/bin/sh\ncat <<'EOF'\n")
	for _, l := range lines {
		b.WriteString(l + "\n")
	}
	b.WriteString("EOF\n")
	if lines[len(lines)-1] != "kerneltest: done" {
		b.WriteString("exec sleep 60\n")
	}
	p := filepath.Join(t.TempDir(), "qemu")
	if err := os.WriteFile(p, []byte(b.String()), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// dht11Trace is the arm64 guest's console up to the hang, as
// make kernel-test saw it on 7.3.4+deb13-arm64 (trimmed).
var dht11Trace = []string{
	"kerneltest: kernel 7.3.4+deb13-arm64, 1 CPUs, 1 online",
	"kerneltest: case arm64-ours: responder -rt 40 -poll yield",
	"kernel-test: arm64-ours: 89 of 100 reads decoded (89.00 %), 0 wrong values",
	"kerneltest: arm64-dht11: bound: /sys/bus/iio/devices/iio:device0 (driver dht11, 14 interrupt lines); requested lines of gpiochip1:",
	"kerneltest: case arm64-dht11: responder -rt 40 -poll yield -irq dht11",
	"[    5.727854] WARNING: drivers/gpio/gpiolib.c:3666 at gpiod_get_value+0x64/0xa0, CPU#0: responder/229",
	"[    5.731179]  gpiod_get_value+0x64/0xa0 (P)",
	"[    5.731510]  dht11_handle_irq+0x80/0x100 [dht11]",
	"[    5.732323]  gpio_sim_apply_pull.isra.0+0x1e8/0x228 [gpio_sim]",
	"[    5.732923] ---[ end trace 0000000000000000 ]---",
}

func testConfig() config {
	return config{bootWait: testutil.Scale(10 * time.Second), hangWait: testutil.Scale(300 * time.Millisecond), timeout: time.Minute}
}

func TestBootTellsTheDht11HangAndDoesNotFailOnIt(t *testing.T) {
	var out bytes.Buffer
	g, err := boot(context.Background(), testConfig(), console(t, dht11Trace...), nil, &out)
	if err != nil {
		t.Fatal(err)
	}
	if !g.dht11Hung || g.current != "arm64-dht11" || g.done {
		t.Fatalf("hung %v, current %q, done %v (%s); want the dht11 hang in arm64-dht11", g.dht11Hung, g.current, g.done, g.why)
	}
	if !strings.Contains(out.String(), "kerneltest: guest kernel: WARNING: drivers/gpio/gpiolib.c:3666 at gpiod_get_value") ||
		!strings.Contains(out.String(), "dht11_handle_irq") {
		t.Errorf("the kernel's warning is not in the output:\n%s", out.String())
	}
	if rc := verdict("arm64-ours arm64-dht11", g, false, &out); rc != 0 {
		t.Errorf("verdict %d, want 0: the hang is the kernel's limit\n%s", rc, out.String())
	}
}

func TestBootFailsAnotherHangOrAnUnboundDht11(t *testing.T) {
	for name, lines := range map[string][]string{
		// The same silence after a warning that is not dht11's.
		"other warning": append(dht11Trace[:5:5],
			"[    5.7] WARNING: kernel/foo.c:1 at foo+0x1/0x2",
			"[    5.7]  foo+0x1/0x2",
			"[    5.7] ---[ end trace 0000000000000000 ]---"),
		// The driver did not bind: the guest says so and finishes.
		"not bound": {dht11Trace[0], dht11Trace[1], dht11Trace[2],
			"kerneltest: arm64-dht11: FAILED: the kernel's dht11 driver did not bind: ",
			"kerneltest: done"},
		// A wrong value read through the driver.
		"wrong value": {dht11Trace[0], dht11Trace[1], dht11Trace[2], dht11Trace[4],
			"kernel-test: arm64-dht11: 3 of 3 reads decoded (100.00 %), 1 wrong values",
			"kerneltest: done"},
	} {
		t.Run(name, func(t *testing.T) {
			var out bytes.Buffer
			g, err := boot(context.Background(), testConfig(), console(t, lines...), nil, &out)
			if err != nil {
				t.Fatal(err)
			}
			if rc := verdict("arm64-ours arm64-dht11", g, false, &out); rc != 1 {
				t.Errorf("verdict %d, want 1 (hung %v)\n%s", rc, g.dht11Hung, out.String())
			}
		})
	}
}
