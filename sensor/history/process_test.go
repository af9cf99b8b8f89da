package history

// Tests that need a process of their own: SIGKILL in the middle of writes,
// and the bytes a day of default settings writes, read from /proc/<pid>/io.
// The test binary runs itself as the helper (helperEnv names the role).

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"sensord/sensor"
)

const (
	helperEnv  = "SENSORD_HISTORY_HELPER" // "writer" or "wear"
	helperDB   = "SENSORD_HISTORY_DB"
	helperBase = "SENSORD_HISTORY_BASE" // first reading's time, Unix ms
	// readingEvery is the simulated sensor period, the default -period.
	readingEvery = 2 * time.Second
	// killRounds is how many times the writer is killed.
	killRounds = 200
	// maxBytesPerDay is the target at default settings.
	maxBytesPerDay = 5 << 20
)

func TestMain(m *testing.M) {
	switch os.Getenv(helperEnv) {
	case "writer":
		os.Exit(writerHelper())
	case "wear":
		os.Exit(wearHelper())
	}
	code := m.Run()
	if benchStore.dir != "" {
		os.RemoveAll(benchStore.dir)
	}
	if raceEnabled && helper.path != "" {
		os.RemoveAll(filepath.Dir(helper.path))
	}
	os.Exit(code)
}

// writerHelper writes readings 2 s apart (in simulated time) from
// helperBase on, as fast as the store takes them, committing every few ms
// and maintaining every few commits, and prints "c <newest ms>" after each
// commit has returned. It runs until killed.
func writerHelper() int {
	base, err := strconv.ParseInt(os.Getenv(helperBase), 10, 64)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	var now atomic.Int64
	now.Store(base)
	o := DefaultOpts()
	o.RawRetention = MinRawRetention
	o.CommitInterval = 2 * time.Millisecond
	o.MaintainEvery = 10 * time.Minute // simulated: every ~10 commits
	o.Now = func() time.Time { return time.UnixMilli(now.Load()) }
	out := bufio.NewWriter(os.Stdout)
	o.OnCommit = func(c Commit) {
		if c.Rows > 0 {
			fmt.Fprintf(out, "c %d\n", c.Newest.UnixMilli())
			out.Flush()
		}
	}
	s, err := Open(os.Getenv(helperDB), &o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "open:", err)
		return 1
	}
	go s.Run(context.Background())
	for t := base; ; t += readingEvery.Milliseconds() {
		// Pace the feed so the queue never overflows: every reading made
		// must reach the disk or still be queued when the kill comes.
		for s.Stats().Queued > QueueSize/2 {
			time.Sleep(time.Millisecond)
		}
		now.Store(t)
		s.Add(wave(time.UnixMilli(t)))
	}
}

// helper is the binary the helper processes run: this test binary, or
// under -race the same tests built without it (raceEnabled says why).
var helper struct {
	once sync.Once
	path string
	err  error
}

func helperBinary(t *testing.T) string {
	t.Helper()
	helper.once.Do(func() {
		if !raceEnabled {
			helper.path, helper.err = os.Executable()
			return
		}
		dir, err := os.MkdirTemp("", "sensord-history-helper-")
		if err != nil {
			helper.err = err
			return
		}
		helper.path = filepath.Join(dir, "history.test")
		out, err := exec.Command("go", "test", "-c", "-o", helper.path, "sensord/sensor/history").CombinedOutput()
		if err != nil {
			helper.err = fmt.Errorf("building the helper without -race: %v\n%s", err, out)
		}
	})
	if helper.err != nil {
		t.Fatal(helper.err)
	}
	return helper.path
}

func TestSIGKILLDuringWritesNeverLosesACommitOrTheDatabase(t *testing.T) {
	self := helperBinary(t)
	path := filepath.Join(t.TempDir(), "h.db")
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 13))
	for round := range killRounds {
		// Each round writes its own day, so every round's readings can be
		// counted apart; rollups and purges run across them all.
		base := epoch.Add(time.Duration(round) * 24 * time.Hour)
		cmd := exec.Command(self, "-test.run=^$")
		cmd.Env = append(os.Environ(), helperEnv+"=writer", helperDB+"="+path, helperBase+"="+strconv.FormatInt(base.UnixMilli(), 10))
		cmd.Stderr = os.Stderr
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := make(chan int64, 1024)
		go func() {
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				if v, ok := strings.CutPrefix(sc.Text(), "c "); ok {
					if ms, err := strconv.ParseInt(v, 10, 64); err == nil {
						lines <- ms
					}
				}
			}
			close(lines)
		}()
		// The first commit proves the writer is under way; the kill then
		// lands at a random moment of the next 60 ms of writes.
		select {
		case <-lines:
		case <-time.After(2 * time.Minute):
			cmd.Process.Kill()
			t.Fatalf("round %d: the writer never committed", round)
		}
		time.Sleep(time.Duration(rng.Int64N(int64(60 * time.Millisecond))))
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		var committed int64
		for ms := range lines {
			committed = max(committed, ms)
		}
		cmd.Wait()

		s, err := Open(path, nil)
		if err != nil {
			t.Fatalf("round %d: reopen after SIGKILL: %v", round, err)
		}
		var check string
		if err := s.db.QueryRow("PRAGMA quick_check").Scan(&check); err != nil || check != "ok" {
			s.Close()
			t.Fatalf("round %d: quick_check = %q, %v", round, check, err)
		}
		got, err := s.Query(context.Background(), Query{From: base, To: base.Add(24 * time.Hour), Step: 24 * time.Hour})
		s.Close()
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		n := 0
		if len(got) == 1 {
			n = got[0].N
		}
		// Everything up to the last reported commit is there, and what is
		// there is a gap-free run from the round's first reading: a commit
		// the report did not reach yet may be in, half of one never.
		atLeast := int((committed-base.UnixMilli())/readingEvery.Milliseconds()) + 1
		if n < atLeast {
			t.Fatalf("round %d: %d readings after reopen, but %d were committed", round, n, atLeast)
		}
		raw, err := reopenCount(path, base, n)
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if raw != n {
			t.Fatalf("round %d: readings are not one gap-free run: %d in the first %d slots", round, raw, n)
		}
	}
}

// reopenCount counts the round's readings among its first n timestamps.
func reopenCount(path string, base time.Time, n int) (int, error) {
	s, err := Open(path, nil)
	if err != nil {
		return 0, err
	}
	defer s.Close()
	end := base.Add(time.Duration(n) * readingEvery)
	got, err := s.Query(context.Background(), Query{From: base, To: end, Step: 24 * time.Hour})
	if err != nil || len(got) == 0 {
		return 0, err
	}
	return got[0].N, nil
}

// wearHelper fills seven days of raw readings and a year of rollups, then
// commits the way the daemon does at default settings (30 readings a
// minute, one commit a minute, maintenance every hour) for a simulated day
// to settle, and prints what the next simulated day wrote, as /proc/self/io
// counts it (write_bytes: what reached the block layer; wchar: what went
// through write calls).
func wearHelper() int {
	var now atomic.Int64
	o := DefaultOpts()
	o.Now = func() time.Time { return time.UnixMilli(now.Load()) }
	start := epoch.Add(365 * 24 * time.Hour)
	now.Store(start.UnixMilli())
	s, err := Open(os.Getenv(helperDB), &o)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx := context.Background()
	if err := fillYear(ctx, s, start); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	t := start
	lastMaint := time.Time{}
	day := func() error {
		for range 1440 {
			batch := make([]sensor.Reading, 0, 30)
			for range 30 {
				batch = append(batch, wave(t))
				t = t.Add(readingEvery)
			}
			now.Store(t.UnixMilli())
			maint := t.Sub(lastMaint) >= o.MaintainEvery
			if _, err := s.commit(ctx, batch, t, maint); err != nil {
				return err
			}
			if maint {
				lastMaint = t
			}
		}
		return nil
	}
	if err := day(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	before, err := readIO()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := day(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	after, err := readIO()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Printf("write_bytes %d wchar %d\n", after["write_bytes"]-before["write_bytes"], after["wchar"]-before["wchar"])
	return 0
}

// fillYear imports a year of rollups and the last seven days of readings
// before start, as a daemon that ran a year at default settings has them.
func fillYear(ctx context.Context, s *Store, start time.Time) error {
	var mins []Point
	for ts := start.Add(-365 * 24 * time.Hour); ts.Before(start.Add(-DefaultRawRetention)); ts = ts.Add(time.Minute) {
		r := wave(ts)
		mins = append(mins, Point{Time: ts, N: 30,
			Temperature: Summary{r.Temperature - 3, r.Temperature, r.Temperature + 3},
			Humidity:    Summary{r.Humidity - 5, r.Humidity, r.Humidity + 5}})
	}
	var raw []sensor.Reading
	for ts := start.Add(-DefaultRawRetention); ts.Before(start); ts = ts.Add(readingEvery) {
		raw = append(raw, wave(ts))
	}
	if err := s.Import(ctx, nil, mins); err != nil {
		return err
	}
	return s.Import(ctx, raw, nil)
}

func readIO() (map[string]int64, error) {
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return nil, err
	}
	m := map[string]int64{}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ": ")
		if !ok {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err == nil {
			m[k] = n
		}
	}
	return m, nil
}

func TestADayAtDefaultSettingsWritesUnderFiveMiB(t *testing.T) {
	self := helperBinary(t)
	cmd := exec.Command(self, "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"=wear", helperDB+"="+filepath.Join(t.TempDir(), "h.db"))
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("wear helper: %v", err)
	}
	var wb, wc int64
	if _, err := fmt.Sscanf(string(out), "write_bytes %d wchar %d", &wb, &wc); err != nil {
		t.Fatalf("wear helper said %q: %v", out, err)
	}
	t.Logf("one day at default settings: wchar %d (%.2f MiB), write_bytes %d (%.2f MiB)", wc, float64(wc)/(1<<20), wb, float64(wb)/(1<<20))
	// wchar is what the store hands the file system. write_bytes counts
	// whole 4 KiB page-cache pages as they are dirtied, and an fsync a
	// minute cleans them, so it cannot fall below 1440 x 4 KiB = 5.6 MiB a
	// day at one commit a minute whatever is written; BENCHMARKS.md gives
	// both.
	if wc > maxBytesPerDay {
		t.Fatalf("a day writes %d bytes through write calls, above the %d target", wc, maxBytesPerDay)
	}
}
