package history

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sensord/internal/testutil"
	"sensord/sensor"
)

// filled opens a store at path holding n readings 2 s apart from epoch.
func filled(t *testing.T, path string, n int) *Store {
	t.Helper()
	clk := &clock{t: epoch.Add(time.Duration(n)*2*time.Second + 2*time.Minute)}
	o := DefaultOpts()
	o.Now = clk.Now
	s := openTest(t, path, &o)
	var rs []sensor.Reading
	for i := range n {
		rs = append(rs, wave(epoch.Add(time.Duration(i)*2*time.Second)))
	}
	if err := s.Import(context.Background(), rs, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.commit(context.Background(), nil, clk.Now(), true); err != nil {
		t.Fatal(err)
	}
	return s
}

func count(t *testing.T, s *Store) int {
	t.Helper()
	got, err := s.Query(context.Background(), Query{From: epoch.Add(-time.Hour), To: epoch.Add(48 * time.Hour), Step: 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, p := range got {
		n += p.N
	}
	return n
}

func TestABackupWhileReadersAndTheWriterRunRestoresIntoAnotherStore(t *testing.T) {
	dir := t.TempDir()
	src := filled(t, filepath.Join(dir, "a.db"), 5000)
	var buf bytes.Buffer
	var told int64
	n, err := src.Backup(context.Background(), &buf, func(size int64) { told = size })
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(buf.Len()) || told != n || !bytes.HasPrefix(buf.Bytes(), []byte("SQLite format 3\x00")) {
		t.Fatalf("backup: %d bytes written, %d told, %d received, header %q", n, told, buf.Len(), buf.Bytes()[:16])
	}
	dst := filled(t, filepath.Join(dir, "b.db"), 10)
	if err := dst.Restore(context.Background(), bytes.NewReader(buf.Bytes())); err != nil {
		t.Fatal(err)
	}
	if got := count(t, dst); got != 5000 {
		t.Fatalf("after the restore the store holds %d readings, want the backup's 5000", got)
	}
	// The restored store goes on writing.
	if err := dst.Import(context.Background(), []sensor.Reading{wave(epoch.Add(5000 * 2 * time.Second))}, nil); err != nil {
		t.Fatal(err)
	}
	if got := count(t, dst); got != 5001 {
		t.Fatalf("after a commit on the restored store: %d readings, want 5001", got)
	}
}

func TestARestoreChecksTheFileAndLeavesTheHistoryWhenItFails(t *testing.T) {
	dir := t.TempDir()
	s := filled(t, filepath.Join(dir, "h.db"), 100)
	var good bytes.Buffer
	if _, err := s.Backup(context.Background(), &good, nil); err != nil {
		t.Fatal(err)
	}
	damaged := bytes.Clone(good.Bytes())
	for i := 3 * pageSize; i < 5*pageSize && i < len(damaged); i++ {
		damaged[i] ^= 0x5a
	}
	other, err := os.ReadFile(filepath.Join(dir, "h.db.lock"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		file []byte
		want string
	}{
		{"text that is not a database", []byte("time,temperature\n1,2\n"), "not an SQLite database"},
		{"an empty file", nil, "no sensord history schema"},
		{"a lock file", other, "not an SQLite database"},
		{"a backup with damaged pages", damaged, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := s.Restore(context.Background(), bytes.NewReader(tc.file))
			if !errors.Is(err, ErrNotHistory) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want ErrNotHistory saying %q", err, tc.want)
			}
			if got := count(t, s); got != 100 {
				t.Fatalf("after a refused restore the store holds %d readings, want its 100", got)
			}
		})
	}
}

func TestASecondOpenOfTheSameFileSaysAnotherSensordHoldsIt(t *testing.T) {
	path := filepath.Join(t.TempDir(), "h.db")
	openTest(t, path, nil)
	_, err := Open(path, nil)
	if !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), "another sensord") || strings.Contains(err.Error(), "aside") {
		t.Fatalf("second open: %v; want ErrInUse naming another sensord, and no advice to move the file", err)
	}
}

func TestExportStreamsEveryReadingWithoutTheRowLimit(t *testing.T) {
	n := MaxRows + 5000
	s := filled(t, filepath.Join(t.TempDir(), "h.db"), n)
	queued := wave(epoch.Add(time.Duration(n) * 2 * time.Second))
	s.Add(queued)
	var got []Point
	err := s.Export(context.Background(), epoch, epoch.Add(48*time.Hour), func(bool) error { return nil }, func(p Point) error {
		got = append(got, p)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != n+1 {
		t.Fatalf("export gave %d rows, want %d stored and 1 queued", len(got), n+1)
	}
	for i := 1; i < len(got); i++ {
		if !got[i].Time.After(got[i-1].Time) {
			t.Fatalf("row %d at %s is not after row %d at %s", i, got[i].Time, i-1, got[i-1].Time)
		}
	}
	if !got[n].Time.Equal(queued.Time) {
		t.Fatalf("the last row is %s, want the queued reading at %s", got[n].Time, queued.Time)
	}
}

func TestStartIsTheOldestReading(t *testing.T) {
	s := filled(t, filepath.Join(t.TempDir(), "h.db"), 100)
	got, ok, err := s.Start(context.Background())
	if err != nil || !ok || !got.Equal(epoch) {
		t.Fatalf("Start = %s, %v, %v; want %s", got, ok, err, epoch)
	}
	empty := openTest(t, filepath.Join(t.TempDir(), "e.db"), nil)
	if _, ok, err := empty.Start(context.Background()); ok || err != nil {
		t.Fatalf("an empty store: ok %v, err %v; want no start", ok, err)
	}
}

func TestHeavyQueriesBeyondTheBoundAreRefusedAndLightOnesStillRun(t *testing.T) {
	s := filled(t, filepath.Join(t.TempDir(), "h.db"), 100)
	var held []*snapshot
	for range MaxHeavy {
		sn, err := s.begin(context.Background(), true)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, sn)
	}
	_, err := s.Query(context.Background(), Query{From: epoch, To: epoch.Add(300 * 24 * time.Hour), Step: time.Hour})
	if !errors.Is(err, ErrBusy) {
		t.Fatalf("a heavy query beyond the bound: %v, want ErrBusy", err)
	}
	if _, err := s.Query(context.Background(), Query{From: epoch, To: epoch.Add(time.Hour)}); err != nil {
		t.Fatalf("a light query beside %d heavy ones: %v", MaxHeavy, err)
	}
	if s.Stats().Busy != 1 {
		t.Fatalf("Busy = %d, want 1", s.Stats().Busy)
	}
	for _, sn := range held {
		sn.end()
	}
	if _, err := s.Query(context.Background(), Query{From: epoch, To: epoch.Add(300 * 24 * time.Hour), Step: time.Hour}); err != nil {
		t.Fatalf("a heavy query once the others ended: %v", err)
	}
}

func TestTheEndOfRunCancelsARunningQuery(t *testing.T) {
	s := filled(t, filepath.Join(t.TempDir(), "h.db"), 100)
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	sn, err := s.begin(context.Background(), true)
	if err != nil {
		t.Fatal(err)
	}
	defer sn.end()
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	testutil.Until(t, 5*time.Second, func() bool { return sn.ctx.Err() != nil }, func() string { return "the query's context is still live" })
	// A query after Run has returned runs again (a test, a last look).
	if got := count(t, s); got != 100 {
		t.Fatalf("after Run: %d readings", got)
	}
}

func TestAStepOfHoursFromAnyMinuteUsesTheHourRows(t *testing.T) {
	s := filled(t, filepath.Join(t.TempDir(), "h.db"), 3*1800)
	// Rewrite the hour rows so that an answer read from them is told apart.
	if _, err := s.db.Exec(`UPDATE hour SET tmax = 999`); err != nil {
		t.Fatal(err)
	}
	for _, off := range []time.Duration{0, time.Minute, 17*time.Minute + 3*time.Second} {
		got, err := s.Query(context.Background(), Query{From: epoch.Add(off), To: epoch.Add(3 * time.Hour), Step: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) == 0 || !got[0].Time.Equal(epoch) || got[0].Temperature.Max != 999 {
			t.Fatalf("from %s: %+v; want steps from %s read from the hour rows", off, got, epoch)
		}
	}
}

func TestNoSourceReadsPastTo(t *testing.T) {
	s := filled(t, filepath.Join(t.TempDir(), "h.db"), 3*1800)
	to := epoch.Add(90 * time.Minute)
	got, err := s.Query(context.Background(), Query{From: epoch, To: to, Step: 3 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].N != 90*30 {
		t.Fatalf("%+v; want one step of the 2700 readings before %s", got, to)
	}
}

// FuzzRestore: any file offered for a restore is refused with
// ErrNotHistory (the history left as it was) or is a whole sensord
// history; never a panic, never a half-replaced store.
func FuzzRestore(f *testing.F) {
	dir := f.TempDir()
	s := filled(&testing.T{}, filepath.Join(dir, "seed.db"), 50)
	var good bytes.Buffer
	if _, err := s.Backup(context.Background(), &good, nil); err != nil {
		f.Fatal(err)
	}
	s.Close()
	f.Add(good.Bytes())
	f.Add([]byte("SQLite format 3\x00"))
	f.Add(good.Bytes()[:pageSize*2])
	f.Add([]byte{})
	n := 0
	f.Fuzz(func(t *testing.T, file []byte) {
		n++
		st := filled(t, filepath.Join(t.TempDir(), "h.db"), 10)
		err := st.Restore(context.Background(), bytes.NewReader(file))
		got := count(t, st)
		switch {
		case err == nil && got != 50:
			t.Fatalf("restore of a file of %d bytes: %v; the store holds %d readings", len(file), err, got)
		case err != nil && !errors.Is(err, ErrNotHistory):
			t.Fatalf("restore failed without ErrNotHistory: %v", err)
		case err != nil && got != 10:
			t.Fatalf("a refused restore left %d readings, want the 10 before", got)
		}
	})
}

func TestADirectoryNamedWithHashOrQuestionMarkHoldsTheDatabase(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a#b?c%20d")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "h.db")
	s := filled(t, path, 10)
	if got := count(t, s); got != 10 {
		t.Fatalf("%d readings", got)
	}
	if fi, err := os.Stat(path); err != nil || fi.Size() == 0 {
		t.Fatalf("the database is not at %s: %v", path, err)
	}
	var buf bytes.Buffer
	if _, err := s.Backup(context.Background(), &buf, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.Restore(context.Background(), &buf); err != nil {
		t.Fatal(err)
	}
}
