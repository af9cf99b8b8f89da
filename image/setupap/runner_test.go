package setupap

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// fakeSys plays a Pi with one radio, no cable and no Wi-Fi configured,
// whose neighbourhood has one network, "Home", with passphrase "right
// passphrase".
type fakeSys struct {
	mu       sync.Mutex
	requests []Request
	apOpen   bool
	opened   int
	kept     []Request
	station  int
}

func (f *fakeSys) Radio() (Radio, bool) {
	return Radio{Interface: "wlan0", MAC: "02:00:00:00:ab:cd"}, true
}
func (f *fakeSys) Cable() bool                         { return false }
func (f *fakeSys) Configured() bool                    { f.mu.Lock(); defer f.mu.Unlock(); return len(f.kept) > 0 }
func (f *fakeSys) Joined(string) bool                  { return f.Configured() }
func (f *fakeSys) APSettings() (string, string, error) { return "", "", nil }
func (f *fakeSys) Scan(context.Context, string) ([]Network, error) {
	return []Network{{SSID: "Home", Signal: -40, Secured: true}}, nil
}
func (f *fakeSys) OpenAP(context.Context, string, string, string, string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.apOpen = true
	f.opened++
	return nil
}
func (f *fakeSys) CloseAP(context.Context, string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.apOpen = false
	return nil
}
func (f *fakeSys) Try(_ context.Context, _ string, r Request) (string, error) {
	switch {
	case r.SSID != "Home":
		return "", &TryError{Failure: FailureNotFound, Reason: "not found"}
	case r.Passphrase != "right passphrase":
		return "", &TryError{Failure: FailureWrongPassphrase, Reason: "refused the passphrase"}
	}
	return "192.168.77.50", nil
}
func (f *fakeSys) Keep(_ context.Context, r Request) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.kept = append(f.kept, r)
	return nil
}
func (f *fakeSys) Station(context.Context, string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.station++
	return nil
}
func (f *fakeSys) TakeRequest() (Request, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.requests) == 0 {
		return Request{}, false, nil
	}
	r := f.requests[0]
	f.requests = f.requests[1:]
	return r, true, nil
}

// TestRunnerSetsUp walks a setup through the runner's steps: the access
// point opens, a wrong passphrase reopens it with the reason, the right
// one is kept and the station started.
func TestRunnerSetsUp(t *testing.T) {
	now := t0
	sys := &fakeSys{}
	path := filepath.Join(t.TempDir(), "state")
	r := &Runner{Sys: sys, Decider: Decider{Timing: Timing{Grace: time.Second, JoinWait: time.Minute, SetupWait: time.Hour}},
		StatePath: path, Now: func() time.Time { return now }, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	ctx := context.Background()
	state := func() State {
		t.Helper()
		st, err := ReadState(path)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	step := func() {
		t.Helper()
		if err := r.step(ctx); err != nil {
			t.Fatal(err)
		}
	}
	r.st = State{Phase: PhaseStation, Since: now}
	step()
	now = now.Add(2 * time.Second)
	step()
	st := state()
	if !st.Active || st.Phase != PhaseSetup || st.SSID != "sensord-ABCD" || st.Address != "192.168.4.1" || len(st.Networks) != 1 || st.Reason == "" {
		t.Fatalf("after the grace with no network: %+v, want the access point open with the scan and a reason", st)
	}
	sys.requests = append(sys.requests, Request{SSID: "Home", Passphrase: "wrong passphrase", Name: "kitchen"})
	step()
	st = state()
	if !st.Active || st.Failure != FailureWrongPassphrase || st.Reason != "refused the passphrase" || len(sys.kept) != 0 {
		t.Fatalf("after a wrong passphrase: %+v (kept %v), want the access point open again with the reason", st, sys.kept)
	}
	sys.requests = append(sys.requests, Request{SSID: "Home", Passphrase: "right passphrase", Name: "kitchen"})
	step()
	st = state()
	if st.Active || st.Phase != PhaseStation || st.Joined == nil || st.Joined.Address != "192.168.77.50" || st.Joined.Name != "kitchen" {
		t.Fatalf("after the right passphrase: %+v, want the station with where it joined", st)
	}
	if len(sys.kept) != 1 || sys.station != 1 || sys.apOpen || sys.opened != 3 {
		t.Fatalf("kept %v, station started %d times, access point open %v after %d opens; want kept once, one station start, closed, 3 opens", sys.kept, sys.station, sys.apOpen, sys.opened)
	}
	now = now.Add(time.Hour)
	step()
	if st := state(); st.Active || sys.apOpen {
		t.Fatalf("an hour after joining: %+v, want setup closed", st)
	}
}
