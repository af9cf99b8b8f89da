package harness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"sensord/internal/testutil"
)

// alive reports whether a process with pid exists (and is not reaped).
func alive(pid int) bool { return syscall.Kill(pid, 0) == nil }

func TestRunStopsEveryProcessPassOrFail(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
	}{
		{"after a clean run", nil},
		{"after a step's error", errors.New("qemu exited")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := New(&bytes.Buffer{}, false)
			var pids []int
			start := Do("start two helpers", func(context.Context) error {
				for range 2 {
					p, err := h.Start("sleep", exec.Command("sleep", "600"))
					if err != nil {
						return err
					}
					pids = append(pids, p.Pid())
				}
				return tc.err
			})
			never := Do("never reached after an error", func(context.Context) error { return nil })
			if err := h.Run(context.Background(), start, never); !errors.Is(err, tc.err) {
				t.Fatalf("Run: got %v, want %v", err, tc.err)
			}
			for _, pid := range pids {
				if alive(pid) {
					syscall.Kill(pid, syscall.SIGKILL)
					t.Errorf("pid %d still runs after Run returned", pid)
				}
			}
		})
	}
}

func TestStopIsSafeTwiceAndAfterExit(t *testing.T) {
	p, err := StartProc("true", exec.Command("true"))
	if err != nil {
		t.Fatal(err)
	}
	<-p.Done()
	p.Stop()
	p.Stop()
	if !p.Exited() {
		t.Error("a process that ended does not say so")
	}
}

func TestErrSkipEndsOnlyItsGroup(t *testing.T) {
	var out bytes.Buffer
	h := New(&out, false)
	var ran []string
	step := func(name string, err error) Step {
		return Do(name, func(context.Context) error { ran = append(ran, name); return err })
	}
	err := h.Run(context.Background(),
		h.PhaseOf("first phase", step("a", nil), step("b", ErrSkip), step("c", nil)),
		Group("group", step("d", ErrSkip), step("e", nil)),
		h.PhaseOf("second phase", step("f", nil)),
	)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if got, want := strings.Join(ran, " "), "a b d f"; got != want {
		t.Errorf("steps run: got %q, want %q", got, want)
	}
	if !strings.Contains(out.String(), "== first phase\n") || !strings.Contains(out.String(), "== second phase\n") {
		t.Errorf("phases not announced: %q", out.String())
	}
}

func TestWorkDirKeptOnlyAfterAFailure(t *testing.T) {
	for _, tc := range []struct {
		name string
		fail bool
		keep bool
	}{
		{"removed after a clean run", false, false},
		{"kept after a failed check", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			h := New(&out, false)
			var dir string
			h.Run(context.Background(), Do("work", func(context.Context) error {
				var err error
				dir, err = h.WorkDir("harness-test-")
				if tc.fail {
					h.Fail("a check")
				}
				return err
			}))
			defer os.RemoveAll(dir)
			_, err := os.Stat(dir)
			if kept := err == nil; kept != tc.keep {
				t.Errorf("work directory kept: %v, want %v", kept, tc.keep)
			}
			h.Report()
			last := strings.TrimSpace(out.String()[strings.LastIndex(strings.TrimSpace(out.String()), "\n")+1:])
			want := "boottest: 0 passed, 0 failed"
			if tc.fail {
				want = "boottest: 0 passed, 1 failed"
			}
			if last != want {
				t.Errorf("last line: got %q, want %q", last, want)
			}
		})
	}
}

// running reports whether pid is a live process: not gone, not a zombie.
func running(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return len(f) > 0 && f[0] != "Z" && f[0] != "X"
}

// TestHelperStartsASleep is not a test: TestProcessesDieWithTheHarness
// runs it as the harness's process, which starts a sleep and hangs.
func TestHelperStartsASleep(t *testing.T) {
	if os.Getenv("HARNESS_TEST_HELPER") != "1" {
		t.Skip("run by TestProcessesDieWithTheHarness")
	}
	p, err := StartProc("sleep", exec.Command("sleep", "600"))
	if err != nil {
		t.Fatal(err)
	}
	fmt.Println(p.Pid())
	select {}
}

func TestProcessesDieWithTheHarness(t *testing.T) {
	helper := exec.Command(os.Args[0], "-test.run=^TestHelperStartsASleep$")
	helper.Env = append(os.Environ(), "HARNESS_TEST_HELPER=1")
	out, err := helper.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := helper.Start(); err != nil {
		t.Fatal(err)
	}
	var pid int
	if _, err := fmt.Fscan(out, &pid); err != nil {
		helper.Process.Kill()
		t.Fatalf("the helper said no pid: %v", err)
	}
	// The harness's process dies without running any cleanup.
	helper.Process.Kill()
	helper.Wait()
	if !testutil.Within(10*time.Second, func() bool { return !running(pid) }) {
		syscall.Kill(pid, syscall.SIGKILL)
		t.Fatalf("sleep (pid %d) outlived the harness's process", pid)
	}
}

func TestRunStopsProcessesWhenAStepPanics(t *testing.T) {
	h := New(&bytes.Buffer{}, false)
	var pid int
	func() {
		defer func() {
			if recover() == nil {
				t.Error("the step's panic did not go on")
			}
		}()
		h.Run(context.Background(), Do("start and panic", func(context.Context) error {
			p, err := h.Start("sleep", exec.Command("sleep", "600"))
			if err != nil {
				return err
			}
			pid = p.Pid()
			panic("a check's bug")
		}))
	}()
	if pid == 0 || running(pid) {
		syscall.Kill(pid, syscall.SIGKILL)
		t.Errorf("sleep (pid %d) still runs after the panic", pid)
	}
}
