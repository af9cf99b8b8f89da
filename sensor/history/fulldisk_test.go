//go:build linux

package history

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"sensord/internal/testutil"
)

// fill writes a file in dir until the file system is full.
func fill(t *testing.T, dir string) string {
	t.Helper()
	name := filepath.Join(dir, "filler")
	f, err := os.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 4096)
	for range 1 << 20 {
		if _, err := f.Write(buf); err != nil {
			return name
		}
	}
	t.Fatal("the file system never filled")
	return ""
}

func TestAFullDiskFailsCommitsWithItsCauseCountsDropsAndRecoversByItself(t *testing.T) {
	dir := testutil.SmallDisk(t, "size=4m")
	o := DefaultOpts()
	o.CommitInterval = 10 * time.Millisecond
	var failures []error
	fails := make(chan error, 1024)
	o.OnError = func(err error) {
		select {
		case fails <- err:
		default:
		}
	}
	s := openTest(t, filepath.Join(dir, "h.db"), &o)
	stop := runAsync(s)
	defer stop()
	start := time.Now().Add(-time.Hour).Truncate(time.Minute)
	for i := range 100 {
		s.Add(wave(start.Add(time.Duration(i) * 2 * time.Second)))
	}
	testutil.Until(t, testutil.Scale(10*time.Second), func() bool { return s.Stats().Written == 100 }, func() string { return "the first readings were not written" })

	filler := fill(t, dir)
	// Enough readings to fill the queue while the disk is full: the rest
	// are dropped and counted.
	n := QueueSize + 500
	for i := range n {
		s.Add(wave(start.Add(time.Duration(100+i) * 2 * time.Second)))
	}
	testutil.Until(t, testutil.Scale(10*time.Second), func() bool { return s.Stats().Failed > 0 }, func() string { return "no commit failed on a full disk" })
	failures = append(failures, <-fails)
	st := s.Stats()
	if !errors.Is(st.Err, ErrDiskFull) || !errors.Is(failures[0], ErrDiskFull) || st.FailingSince.IsZero() {
		t.Fatalf("stats %+v, OnError %v; want ErrDiskFull and when it began", st, failures[0])
	}
	if st.Dropped == 0 || int(st.Dropped)+st.Queued != n {
		t.Fatalf("dropped %d + queued %d, want the %d readings added while full", st.Dropped, st.Queued, n)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	testutil.Until(t, testutil.Scale(10*time.Second), func() bool { st := s.Stats(); return st.Err == nil && st.Queued == 0 },
		func() string { return "no recovery once space was freed: " + s.Stats().LastError })
	st = s.Stats()
	if st.Written != uint64(100+n)-st.Dropped || !st.FailingSince.IsZero() {
		t.Fatalf("after recovery: %+v; want every reading not dropped written", st)
	}
}
