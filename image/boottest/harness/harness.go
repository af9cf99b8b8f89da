// Package harness runs a boot scenario: named steps, grouped in timed
// phases, whose checks print one PASS or FAIL line each, and a report that
// ends with "boottest: N passed, M failed". It also owns what a scenario
// leaves behind: every cleanup registered with Cleanup, every process
// started with Start, and the work directory run after the last step,
// pass or fail.
//
// # Concurrency
//
// A T belongs to the goroutine that calls Run; its check and log methods
// may also be called from the goroutines a step starts, as long as they
// end before the step returns. Logf alone may be called from anywhere.
package harness

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Step is one named part of a scenario. Run's error ends the scenario
// (the main program reports it as a failed check); ErrSkip ends only the
// group the step is in (PhaseOf, Group).
type Step struct {
	Name string
	Run  func(ctx context.Context) error
}

// ErrSkip, returned by a step, skips the rest of its group: the step has
// reported the failed check that makes the rest meaningless, and the
// scenario goes on.
var ErrSkip = errors.New("harness: rest of the group skipped")

// T is one run of a scenario: its checks, phases, numbers and cleanups.
type T struct {
	out   io.Writer
	start time.Time
	keep  bool // keep the work directory even after a clean run

	mu             sync.Mutex // guards everything below
	passed, failed int
	phase          string
	phaseStart     time.Time
	phases         []phaseTime
	numbers        []string
	cleanups       []func()
	dir            string
	err            error // the error that ended Run, if any
	keepNote       string
}

type phaseTime struct {
	name string
	d    time.Duration
}

// New returns a T that writes its lines to out. With keep, the work
// directory stays after a clean run too.
func New(out io.Writer, keep bool) *T {
	now := time.Now()
	return &T{out: out, start: now, phaseStart: now, keep: keep}
}

// Logf prints one line, stamped with the seconds since the run started.
func (t *T) Logf(format string, a ...any) {
	fmt.Fprintf(t.out, "boottest: %6.1fs  %s\n", time.Since(t.start).Seconds(), fmt.Sprintf(format, a...))
}

// Pass counts a passed check and prints its PASS line.
func (t *T) Pass(format string, a ...any) {
	t.mu.Lock()
	t.passed++
	t.mu.Unlock()
	t.Logf("PASS "+format, a...)
}

// Fail counts a failed check and prints its FAIL line.
func (t *T) Fail(format string, a ...any) {
	t.mu.Lock()
	t.failed++
	t.mu.Unlock()
	t.Logf("FAIL "+format, a...)
}

// Check is Pass when ok, Fail otherwise; it returns ok.
func (t *T) Check(ok bool, format string, a ...any) bool {
	if ok {
		t.Pass(format, a...)
	} else {
		t.Fail(format, a...)
	}
	return ok
}

// Failed is the number of failed checks so far.
func (t *T) Failed() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.failed
}

// Number prints a measurement and keeps it for the report.
func (t *T) Number(format string, a ...any) {
	s := fmt.Sprintf(format, a...)
	t.mu.Lock()
	t.numbers = append(t.numbers, s)
	t.mu.Unlock()
	t.Logf("%s", s)
}

// Phase closes the current phase and opens name ("" only closes it).
func (t *T) Phase(name string) {
	now := time.Now()
	t.mu.Lock()
	if t.phase != "" {
		t.phases = append(t.phases, phaseTime{t.phase, now.Sub(t.phaseStart)})
	}
	t.phase, t.phaseStart = name, now
	t.mu.Unlock()
	if name != "" {
		t.Logf("== %s", name)
	}
}

// Cleanup registers f to run after the last step, pass or fail; cleanups
// run last registered first.
func (t *T) Cleanup(f func()) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.cleanups = append(t.cleanups, f)
}

// Run runs steps in order until one returns an error other than ErrSkip,
// closes the phase, runs the cleanups and returns that error. A step that
// panics gets the cleanups run too (and the work directory kept) before
// the panic goes on.
func (t *T) Run(ctx context.Context, steps ...Step) (err error) {
	err = errPanicked
	defer func() {
		t.Phase("")
		t.mu.Lock()
		t.err = err
		cleanups := t.cleanups
		t.cleanups = nil
		t.mu.Unlock()
		for i := len(cleanups) - 1; i >= 0; i-- {
			cleanups[i]()
		}
	}()
	err = runSteps(ctx, steps)
	return err
}

// errPanicked stands for the outcome of a run whose step panicked.
var errPanicked = errors.New("harness: a step panicked")

func runSteps(ctx context.Context, steps []Step) error {
	for _, s := range steps {
		if err := s.Run(ctx); err != nil {
			return err
		}
	}
	return nil
}

// PhaseOf returns a step that opens the phase name and runs steps in it; an
// ErrSkip from one of them ends the phase early, without error.
func (t *T) PhaseOf(name string, steps ...Step) Step {
	return Step{Name: name, Run: func(ctx context.Context) error {
		t.Phase(name)
		if err := runSteps(ctx, steps); err != nil && !errors.Is(err, ErrSkip) {
			return err
		}
		return nil
	}}
}

// Group returns a step that runs steps in order inside the current phase;
// an ErrSkip from one of them ends the group early, without error.
func Group(name string, steps ...Step) Step {
	return Step{Name: name, Run: func(ctx context.Context) error {
		if err := runSteps(ctx, steps); err != nil && !errors.Is(err, ErrSkip) {
			return err
		}
		return nil
	}}
}

// Checks turns check functions (which report their own PASS and FAIL
// lines) into a step.
func Checks(name string, checks ...func(context.Context)) Step {
	return Step{Name: name, Run: func(ctx context.Context) error {
		for _, c := range checks {
			c(ctx)
		}
		return nil
	}}
}

// WorkDir makes the run's work directory (qemu's logs, disk copies). It
// is removed after a clean run (no failed check, no error, no keep) and
// kept otherwise, for a person to read.
func (t *T) WorkDir(pattern string) (string, error) {
	dir, err := os.MkdirTemp("", pattern)
	if err != nil {
		return "", fmt.Errorf("harness: %w", err)
	}
	t.mu.Lock()
	t.dir = dir
	t.mu.Unlock()
	t.Cleanup(func() {
		if t.keepDir() {
			t.mu.Lock()
			note := t.keepNote
			t.mu.Unlock()
			if note != "" {
				t.Logf("work directory kept: %s (%s)", dir, note)
			}
			return
		}
		os.RemoveAll(dir)
		t.mu.Lock()
		t.dir = ""
		t.mu.Unlock()
	})
	return dir, nil
}

// KeepNote is what the line saying the work directory was kept adds
// about what is in it; without one no such line is printed.
func (t *T) KeepNote(note string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.keepNote = note
}

// keepDir says whether the work directory stays: asked for, or the run
// failed.
func (t *T) keepDir() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.keep || t.failed > 0 || t.err != nil
}

// TempDir makes a directory removed after the run whatever happens (the
// run's private keys need not outlive it).
func (t *T) TempDir(pattern string) (string, error) {
	dir, err := os.MkdirTemp("", pattern)
	if err != nil {
		return "", fmt.Errorf("harness: %w", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir, nil
}

// Report prints where the time went, the numbers measured, where the
// console log is (if the work directory stays) and, last, the line
// "boottest: N passed, M failed".
func (t *T) Report() {
	t.mu.Lock()
	defer t.mu.Unlock()
	fmt.Fprintln(t.out, "boottest: where the time went:")
	for _, p := range t.phases {
		fmt.Fprintf(t.out, "  %-34s %7.1fs\n", p.name, p.d.Seconds())
	}
	fmt.Fprintf(t.out, "  %-34s %7.1fs\n", "total", time.Since(t.start).Seconds())
	if len(t.numbers) > 0 {
		fmt.Fprintln(t.out, "boottest: measured:")
		for _, n := range t.numbers {
			fmt.Fprintln(t.out, "  "+n)
		}
	}
	if t.dir != "" {
		fmt.Fprintf(t.out, "boottest: console log: %s\n", filepath.Join(t.dir, "console.log"))
	}
	fmt.Fprintf(t.out, "boottest: %d passed, %d failed\n", t.passed, t.failed)
}

// Do is the step name that runs run.
func Do(name string, run func(ctx context.Context) error) Step {
	return Step{Name: name, Run: run}
}

// Opens is a step that closes the current phase and opens name, for a
// phase that only begins once the steps before it in a group succeeded.
func (t *T) Opens(name string) Step {
	return Step{Name: name, Run: func(context.Context) error {
		t.Phase(name)
		return nil
	}}
}
