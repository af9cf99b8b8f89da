package daemon

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"sensord/cmd/sensord/internal/health"
	"sensord/internal/testutil"
)

// unitScheduling returns the CPUSchedulingPolicy= and
// CPUSchedulingPriority= that sensord.service gives the daemon ("" when
// none).
func unitScheduling(t *testing.T) (policy, prio string) {
	t.Helper()
	b, err := os.ReadFile("../../../../systemd/sensord.service")
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, _ := strings.Cut(strings.TrimSpace(sc.Text()), "=")
		switch k {
		case "CPUSchedulingPolicy":
			policy = v
		case "CPUSchedulingPriority":
			prio = v
		}
	}
	return policy, prio
}

// threadPolicies reads the scheduling policy (field 41 of stat: 0 is
// SCHED_OTHER) of every thread of pid.
func threadPolicies(t *testing.T, pid int) map[int]int {
	t.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		t.Fatal(err)
	}
	out := map[int]int{}
	for _, e := range ents {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/stat", pid, e.Name()))
		if err != nil {
			continue // the thread ended
		}
		// The command name (field 2) may hold spaces: count after its ')'.
		f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
		pol, _ := strconv.Atoi(f[41-3])
		tid, _ := strconv.Atoi(e.Name())
		out[tid] = pol
	}
	return out
}

// A flood of WebSocket clients (readings every 10 ms to hundreds of
// clients, get_status requests as fast as they go) while a normal-priority
// process on the same machine has work to do. sensord runs with the
// scheduling its unit file gives it: every thread of it must stay at
// normal priority (SCHED_OTHER), so the scheduler shares the CPUs fairly
// and the other process finishes; under the unit's old SCHED_FIFO 20 the
// daemon's threads ran above every normal task.
func TestAClientFloodRunsAtNormalPriorityAndStarvesNobody(t *testing.T) {
	const readers, askers = 200, 20
	addr := freeAddr(t)
	args := []string{binary, "-sensor", "sim", "-period", "10ms", "-listen", addr}
	if policy, prio := unitScheduling(t); policy != "" {
		args = append([]string{"chrt", "--" + policy, prio}, args...)
	}
	p := startCmd(t, exec.Command(args[0], args[1:]...), nil)
	p.addr = addr
	p.waitHTTP(t)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range readers {
		c := dial(t, "ws://"+addr+"/ws/sensors")
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				c.SetReadDeadline(time.Now().Add(time.Second))
				if _, _, err := c.ReadMessage(); err != nil {
					return
				}
			}
		})
	}
	for range askers {
		c := dial(t, "ws://"+addr+"/ws/api")
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				c.SetWriteDeadline(time.Now().Add(time.Second))
				if c.WriteMessage(websocket.TextMessage, []byte(`{"action":"get_status"}`)) != nil {
					return
				}
				c.SetReadDeadline(time.Now().Add(time.Second))
				if _, _, err := c.ReadMessage(); err != nil {
					return
				}
			}
		})
	}
	defer func() { close(stop); wg.Wait() }()

	// The other process: a fixed amount of shell arithmetic, at normal
	// priority like sshd or journald.
	spin := exec.Command("/bin/sh", "-c", `i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done`)
	if err := spin.Start(); err != nil {
		t.Fatal(err)
	}
	spun := make(chan error, 1)
	go func() { spun <- spin.Wait() }()

	// Look at the daemon's threads while the flood is on, until the
	// spinner is done.
	seen := 0
	for done := false; !done; {
		select {
		case err := <-spun:
			if err != nil {
				t.Fatal(err)
			}
			done = true
		case <-time.After(testutil.Scale(120 * time.Second)):
			spin.Process.Kill()
			t.Fatal("the normal-priority process did not finish during the flood")
		case <-time.After(100 * time.Millisecond):
		}
		for tid, pol := range threadPolicies(t, p.cmd.Process.Pid) {
			seen++
			if pol != 0 {
				t.Fatalf("daemon thread %d runs with scheduling policy %d during the flood, want SCHED_OTHER (0)", tid, pol)
			}
		}
	}
	if seen == 0 {
		t.Fatal("no daemon thread looked at")
	}
	var h health.Report
	getJSON(t, "http://"+addr+"/healthz", &h)
	if h.Clients["sensors"] != readers {
		t.Errorf("clients %v, want %d on sensors: the flood was not on", h.Clients, readers)
	}
}
