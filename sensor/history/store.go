package history

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver

	"sensord/sensor"
)

// Defaults, as DefaultOpts returns them.
const (
	// DefaultRawRetention keeps every reading for a week: enough to look
	// at any single day of the last one in full detail.
	DefaultRawRetention = 7 * 24 * time.Hour
	// DefaultRollupRetention keeps per-minute min/mean/max for a year, so
	// the seasons can be compared.
	DefaultRollupRetention = 365 * 24 * time.Hour
	// DefaultCommitInterval: one commit a minute writes a few 512-byte
	// pages, which keeps an SD card's writes in the low MiB a day.
	DefaultCommitInterval = time.Minute
	// DefaultMaintainEvery: rolling up and purging once an hour costs a
	// few pages an hour, where doing it at every commit would cost a few
	// pages a minute.
	DefaultMaintainEvery = time.Hour
)

// Limits.
const (
	// QueueSize bounds the readings waiting for the next commit: a minute
	// at the simulator's fastest period (10 ms) is 6000. About 250 KiB.
	QueueSize = 8192
	// MaxRows bounds one query's answer: a year at one row an hour (8760),
	// a week at one a minute (10080) fit; about 1.5 MB of JSON.
	MaxRows = 10100
	// MinRawRetention: the rollup reads the raw rows of whole minutes, so
	// they must outlive the hour between two rollups.
	MinRawRetention = 2 * time.Hour
	// MaxReaders bounds the read connections: MaxHeavy for the heavy
	// queries, backups and exports, and the rest for light ones, so a light
	// query never waits behind a heavy one. Each connection keeps a page
	// cache of up to 2 MiB.
	MaxReaders = MaxHeavy + 2
	// MaxHeavy bounds the heavy queries (spans beyond LightSpan, backups,
	// exports) that run at once. A heavy query keeps a core busy for up to
	// a second on a Pi: two leave the writer and light queries room even
	// on a single core. Beyond it a heavy query fails at once with ErrBusy.
	MaxHeavy = 2
	// LightSpan is the longest query that counts as light: the dashboard's
	// last hour and last day, which every open page reloads.
	LightSpan = 25 * time.Hour
)

const (
	schemaVersion = 1
	// pageSize is SQLite's smallest page: each commit rewrites the pages
	// its rows went to, and small ones are cheap to rewrite.
	pageSize = 512
	minuteMS = int64(time.Minute / time.Millisecond)
	hourMS   = int64(time.Hour / time.Millisecond)
)

// Errors a caller can tell apart with errors.Is.
var (
	// ErrTooManyRows: the query would return more than MaxRows rows.
	ErrTooManyRows = errors.New("history: too many rows")
	// ErrQuery: the query itself is malformed (empty range, bad step).
	ErrQuery = errors.New("history: bad query")
	// ErrNewerSchema: the database was written by a newer sensord.
	ErrNewerSchema = errors.New("history: database schema is newer than this sensord")
	// ErrOpts: an option is out of range.
	ErrOpts = errors.New("history: bad option")
	// ErrBusy: MaxHeavy heavy queries are running; try again in a moment.
	ErrBusy = errors.New("history: busy with other long queries")
	// ErrInUse: another process (another sensord) holds the database.
	ErrInUse = errors.New("history: the database is in use by another sensord")
	// ErrClosed: the store is shutting down.
	ErrClosed = errors.New("history: shutting down")
	// ErrDiskFull, ErrDamaged and ErrReadOnly name why a write failed.
	ErrDiskFull = errors.New("history: the disk is full")
	ErrDamaged  = errors.New("history: the database file is damaged")
	ErrReadOnly = errors.New("history: the database cannot be written (read-only file or file system)")
	// ErrNotHistory: a file offered for a restore is not a sensord history
	// database this sensord can use.
	ErrNotHistory = errors.New("history: not a usable sensord history database")
)

// Opts configures a Store. The zero value of a field is not a default:
// start from DefaultOpts.
type Opts struct {
	RawRetention    time.Duration // raw readings older than this are purged
	RollupRetention time.Duration // per-minute rollups older than this are purged
	CommitInterval  time.Duration // time between two commits of queued readings
	MaintainEvery   time.Duration // time between two rollup-and-purge passes
	// Now is the clock retention is measured against.
	Now func() time.Time
	// Mono is a monotonic clock (any origin), the one AddAt's times are
	// on: it tells a reading's real age when the wall clock has stepped.
	Mono func() time.Duration
	// OnCommit, if set, is called by Run after each commit that
	// succeeded, with what it wrote.
	OnCommit func(Commit)
	// OnError, if set, is called by Run after each commit that failed.
	OnError func(error)
}

// DefaultOpts returns the defaults: 7 days raw, 1 year of minutes, a commit
// a minute, maintenance every hour, the wall clock.
func DefaultOpts() Opts {
	return Opts{
		RawRetention:    DefaultRawRetention,
		RollupRetention: DefaultRollupRetention,
		CommitInterval:  DefaultCommitInterval,
		MaintainEvery:   DefaultMaintainEvery,
		Now:             time.Now,
		Mono:            monotonic(),
	}
}

// monotonic is a monotonic clock from now on.
func monotonic() func() time.Duration {
	start := time.Now()
	return func() time.Duration { return time.Since(start) }
}

// Check reports the first option out of range.
func (o *Opts) Check() error {
	switch {
	case o.RawRetention < MinRawRetention:
		return fmt.Errorf("%w: raw retention %s is below the minimum of %s", ErrOpts, o.RawRetention, MinRawRetention)
	case o.RollupRetention < o.RawRetention:
		return fmt.Errorf("%w: rollup retention %s is below the raw retention %s", ErrOpts, o.RollupRetention, o.RawRetention)
	case o.CommitInterval <= 0:
		return fmt.Errorf("%w: commit interval %s is not positive", ErrOpts, o.CommitInterval)
	case o.MaintainEvery <= 0:
		return fmt.Errorf("%w: maintenance interval %s is not positive", ErrOpts, o.MaintainEvery)
	case o.Now == nil || o.Mono == nil:
		return fmt.Errorf("%w: no clock", ErrOpts)
	}
	return nil
}

// Commit describes one commit Run made.
type Commit struct {
	Rows       int       // readings written
	Newest     time.Time // newest reading written (zero when Rows is 0)
	Maintained bool      // whether this commit also rolled up and purged
}

// Stats are the store's counters since Open.
type Stats struct {
	Queued    int    // readings waiting for the next commit
	Written   uint64 // readings committed
	Commits   uint64 // commits that succeeded
	Failed    uint64 // commits that failed (the readings are retried)
	Dropped   uint64 // readings lost: queue full, or a failing disk
	Busy      uint64 // heavy queries refused with ErrBusy
	LastError string // the last commit's error, "" once one succeeds
	Err       error  // the same error, for errors.Is; nil once one succeeds
	// FailingSince is when the commits began to fail (zero while they work).
	FailingSince time.Time
	LastCommit   time.Time // when the last commit succeeded
}

// Store is an open history database.
type Store struct {
	// db is the writer's one connection: Run's commits, Import, Restore.
	db *sql.DB
	// rd holds the read connections (up to MaxReaders). Under WAL a
	// reader reads its snapshot while the writer commits. In memory rd
	// is db: each connection to :memory: is a database of its own.
	rd   *sql.DB
	path string
	o    Opts
	lock *os.File // the lock file's descriptor, holding its flock; nil in memory

	// heavy is the semaphore of heavy queries: a token per running one.
	heavy chan struct{}
	// closing ends every query's context once Run's context ends, so a
	// shutdown never waits for one; Run makes a new one once it has
	// returned, Close ends it for good. closeMu guards both.
	closeMu sync.Mutex
	closing context.Context
	stop    context.CancelFunc
	closed  bool

	// Counters: Run and Add write, Stats reads.
	written, commits, failed, dropped, busy atomic.Uint64

	// commitMu orders the moment a commit lands against the moment a
	// query takes its snapshot: Run holds it for writing around COMMIT and
	// the clearing of inflight (milliseconds), a query for reading while it
	// starts its read transaction and copies the queue. So a query sees each
	// reading exactly once, in its snapshot or in the queue, and neither
	// waits for the other's real work.
	commitMu sync.RWMutex

	mu         sync.Mutex       // guards the fields below
	pending    []sensor.Reading // added since the last commit began
	inflight   []sensor.Reading // being committed (kept after a failed commit)
	run        runClock         // this run's readings on the clock (steps.go)
	shifts     []shift          // re-stampings of stored rows for the next commit
	lastErr    error
	lastCommit time.Time
	failSince  time.Time // when the current run of failed commits began
}

// dsn is the connection string for path with SQLite's settings: WAL
// (readers and a backup read beside the writer), FULL sync, 512-byte pages.
// page_size only takes effect on a database not yet created and must
// precede WAL: the driver runs the _pragma list before _journal_mode.
func dsn(path string, writer bool) string {
	q := url.Values{}
	q.Add("_pragma", "page_size("+strconv.Itoa(pageSize)+")")
	q.Set("_journal_mode", "WAL")
	q.Set("_synchronous", "FULL")
	// Readers never wait for the writer under WAL; the busy timeout
	// covers a checkpoint's brief lock and a second writer's restore.
	q.Set("_busy_timeout", "5000")
	if writer {
		// The write lock at BEGIN, so a transaction never fails halfway
		// when it would upgrade from reading.
		q.Set("_txlock", "immediate")
	}
	if path == "" {
		return "file::memory:?" + q.Encode()
	}
	return fileURI(path) + "?" + q.Encode()
}

// fileURI is path as an SQLite file: URI. SQLite decodes %XX in the path
// and ends it at ? or #, which a directory's name may hold.
func fileURI(path string) string {
	return "file:" + strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(path)
}

// Open opens (or creates) the database at path and brings its schema up to
// date; an empty path keeps it in memory, lost at Close. It starts
// nothing: call Run to write. A database another process holds fails
// with ErrInUse.
func Open(path string, o *Opts) (*Store, error) {
	opts := DefaultOpts()
	if o != nil {
		opts = *o
	}
	if err := opts.Check(); err != nil {
		return nil, err
	}
	s := &Store{path: path, o: opts, heavy: make(chan struct{}, MaxHeavy)}
	s.reopenQueries()
	if path != "" {
		l, err := lockFile(path)
		if err != nil {
			return nil, err
		}
		s.lock = l
	}
	fail := func(err error) (*Store, error) {
		s.closeAll()
		return nil, fmt.Errorf("history: open %s: %w", path, err)
	}
	db, err := sql.Open("sqlite", dsn(path, true))
	if err != nil {
		return fail(err)
	}
	s.db = db
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	db.SetConnMaxLifetime(0)
	db.SetConnMaxIdleTime(0)
	if err := s.migrate(); err != nil {
		return fail(classify(err))
	}
	s.rd = db
	if path != "" {
		rd, err := sql.Open("sqlite", dsn(path, false))
		if err != nil {
			return fail(err)
		}
		rd.SetMaxOpenConns(MaxReaders)
		rd.SetMaxIdleConns(MaxReaders)
		s.rd = rd
	}
	return s, nil
}

// queryLife is the life of the queries started under it.
type queryLife struct {
	ctx  context.Context
	stop context.CancelFunc
}

// queries is the current queryLife.
func (s *Store) queries() queryLife {
	s.closeMu.Lock()
	defer s.closeMu.Unlock()
	return queryLife{s.closing, s.stop}
}

// reopenQueries lets queries run again after Run's end cancelled them,
// unless Close has been called.
func (s *Store) reopenQueries() {
	s.closeMu.Lock()
	defer s.closeMu.Unlock()
	if s.closing != nil && s.closing.Err() == nil {
		return
	}
	if s.closed {
		return
	}
	s.closing, s.stop = context.WithCancel(context.Background())
}

// closeAll releases what Open took.
func (s *Store) closeAll() error {
	s.closeMu.Lock()
	s.closed = true
	s.stop()
	s.closeMu.Unlock()
	var errs []error
	if s.rd != nil && s.rd != s.db {
		errs = append(errs, s.rd.Close())
	}
	if s.db != nil {
		errs = append(errs, s.db.Close())
	}
	if s.lock != nil {
		errs = append(errs, s.lock.Close()) // releases the flock
	}
	return errors.Join(errs...)
}

// lockFile takes the lock that keeps a second sensord off path: an
// exclusive flock on path+".lock", which holds the owner's process ID for
// the error message. SQLite's own locks would let a second process open
// the file and then fight the first for every commit.
func lockFile(path string) (*os.File, error) {
	name := path + ".lock"
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("history: open %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		b, _ := io.ReadAll(io.LimitReader(f, 32))
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			who := "another sensord"
			if pid := strings.TrimSpace(string(b)); pid != "" {
				who += " (process " + pid + ")"
			}
			return nil, fmt.Errorf("%w: %s holds %s; stop it, or give this one another -history-dir", ErrInUse, who, name)
		}
		return nil, fmt.Errorf("history: locking %s: %w", name, err)
	}
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return f, nil
}

// Path is the database file.
func (s *Store) Path() string { return s.path }

// migrate creates the schema or checks the one on disk.
func (s *Store) migrate() error {
	var v int
	if err := s.db.QueryRow("PRAGMA user_version").Scan(&v); err != nil {
		return err
	}
	switch {
	case v == schemaVersion:
		return nil
	case v > schemaVersion:
		return fmt.Errorf("%w (version %d, this one knows %d)", ErrNewerSchema, v, schemaVersion)
	}
	// Version 0: a new file. Timestamps are Unix milliseconds, values
	// tenths, exactly as sensor.Reading carries them. INTEGER PRIMARY KEY
	// makes t the rowid: no separate index, and one row per ms. The raw
	// tables, one a day, are made as readings arrive (raw.go).
	tx, err := s.db.Begin()
	if err != nil {
		return err
	}
	defer tx.Rollback()
	for _, stmt := range []string{
		`CREATE TABLE minute (t INTEGER PRIMARY KEY, n INTEGER NOT NULL,
			tmin INTEGER NOT NULL, tsum INTEGER NOT NULL, tmax INTEGER NOT NULL,
			hmin INTEGER NOT NULL, hsum INTEGER NOT NULL, hmax INTEGER NOT NULL)`,
		// hour holds the same sums per hour, so a year is 8760 rows to read
		// rather than half a million.
		`CREATE TABLE hour (t INTEGER PRIMARY KEY, n INTEGER NOT NULL,
			tmin INTEGER NOT NULL, tsum INTEGER NOT NULL, tmax INTEGER NOT NULL,
			hmin INTEGER NOT NULL, hsum INTEGER NOT NULL, hmax INTEGER NOT NULL)`,
		// rolled: every minute before it is in the minute table; raw rows
		// from it on are not rolled up yet. hourly: likewise for the hour
		// table over the minute table (hourly <= rolled).
		`CREATE TABLE meta (k TEXT PRIMARY KEY, v INTEGER NOT NULL)`,
		`INSERT INTO meta (k, v) VALUES ('rolled', 0), ('hourly', 0)`,
		fmt.Sprintf("PRAGMA user_version = %d", schemaVersion),
	} {
		if _, err := tx.Exec(stmt); err != nil {
			return fmt.Errorf("creating schema: %w", err)
		}
	}
	return tx.Commit()
}

// Add queues r for the next commit. It never waits for the disk; with the
// queue full the reading is dropped and counted.
func (s *Store) Add(r sensor.Reading) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.addLocked(r)
}

func (s *Store) addLocked(r sensor.Reading) {
	if len(s.pending)+len(s.inflight) >= QueueSize {
		s.dropped.Add(1)
		return
	}
	s.pending = append(s.pending, r)
}

// queued returns a copy of the readings not yet committed, for queries.
func (s *Store) queued() []sensor.Reading {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append(slices.Clone(s.inflight), s.pending...)
}

// Run is the writer: it commits the queued readings every CommitInterval,
// rolls up and purges every MaintainEvery, and commits what is queued once
// more when ctx ends. It returns nil then, or the final commit's error.
// When ctx ends, every query still running is cancelled.
func (s *Store) Run(ctx context.Context) error {
	// The queries of this run's life end with ctx; those started after Run
	// has returned get a new one.
	life := s.queries()
	stopQueries := context.AfterFunc(ctx, life.stop)
	defer stopQueries()
	defer s.reopenQueries()
	tick := time.NewTicker(s.o.CommitInterval)
	defer tick.Stop()
	var lastMaint time.Time // zero: the first commit maintains
	flush := func(ctx context.Context) error {
		batch, shifts := s.takeQueued()
		now := s.o.Now()
		maint := now.Sub(lastMaint) >= s.o.MaintainEvery || now.Before(lastMaint)
		c, err := s.commitQueued(ctx, shifts, batch, now, maint)
		if err != nil {
			// The readings stay in flight for the next try.
			s.failed.Add(1)
			s.setErr(err, time.Time{})
			if s.o.OnError != nil {
				s.o.OnError(err)
			}
			return err
		}
		if maint {
			lastMaint = now
		}
		s.written.Add(uint64(c.Rows))
		s.commits.Add(1)
		s.setErr(nil, now)
		if s.o.OnCommit != nil {
			s.o.OnCommit(c)
		}
		return nil
	}
	// Roll up and purge at once: the daemon may have been off for days.
	_ = flush(ctx)
	for {
		select {
		case <-tick.C:
			_ = flush(ctx) // counted; the readings wait for the next tick
		case <-ctx.Done():
			life.stop() // at once, not when the AfterFunc gets its turn
			return flush(context.WithoutCancel(ctx))
		}
	}
}

func (s *Store) setErr(err error, at time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err == nil {
		s.lastErr, s.failSince = nil, time.Time{}
		s.lastCommit = at
		return
	}
	if s.lastErr == nil {
		s.failSince = s.o.Now()
	}
	s.lastErr = err
}

// Stats returns the counters.
func (s *Store) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Stats{
		Queued:       len(s.pending) + len(s.inflight),
		Written:      s.written.Load(),
		Commits:      s.commits.Load(),
		Failed:       s.failed.Load(),
		Dropped:      s.dropped.Load(),
		Busy:         s.busy.Load(),
		Err:          s.lastErr,
		FailingSince: s.failSince,
		LastCommit:   s.lastCommit,
	}
	if s.lastErr != nil {
		st.LastError = s.lastErr.Error()
	}
	return st
}

// Close cancels the queries still running and closes the database;
// SQLite checkpoints the WAL into it. Call it after Run has returned.
func (s *Store) Close() error {
	if err := s.closeAll(); err != nil {
		return fmt.Errorf("history: close: %w", err)
	}
	return nil
}

// commit writes batch in one transaction, and when maint is set rolls up
// the finished minutes and purges what is past its retention. The work
// happens outside commitMu; only the COMMIT and the clearing of the
// readings in flight hold it.
func (s *Store) commit(ctx context.Context, batch []sensor.Reading, now time.Time, maint bool) (Commit, error) {
	return s.commitShifted(ctx, nil, batch, now, maint)
}

// takeQueued moves the queued readings in flight and returns them with
// the re-stampings asked for, for the next commit.
func (s *Store) takeQueued() ([]sensor.Reading, []shift) {
	s.mu.Lock()
	defer s.mu.Unlock()
	// Readings still in flight after a failed commit have not moved with
	// the steps that came during it (they were not on disk to move): they
	// move now, before they are, and the steps' moves on disk pass them.
	for i := range s.shifts {
		if s.shifts[i].inflight {
			s.shifts[i].move(s.inflight)
			s.shifts[i].inflight = false
		}
	}
	s.inflight = append(s.inflight, s.pending...)
	s.pending = nil
	return s.inflight, s.shifts // Add never touches inflight, so no copy
}

// commitQueued commits what takeQueued returned; once it succeeds, those
// re-stampings are done.
func (s *Store) commitQueued(ctx context.Context, shifts []shift, batch []sensor.Reading, now time.Time, maint bool) (Commit, error) {
	c, err := s.commitShifted(ctx, shifts, batch, now, maint)
	if err == nil && len(shifts) > 0 {
		s.mu.Lock()
		s.shifts = s.shifts[len(shifts):]
		s.mu.Unlock()
	}
	return c, err
}

// commitShifted is commit, moving stored rows by shifts first.
func (s *Store) commitShifted(ctx context.Context, shifts []shift, batch []sensor.Reading, now time.Time, maint bool) (Commit, error) {
	c := Commit{Rows: len(batch), Maintained: maint}
	if len(batch) == 0 && len(shifts) == 0 && !maint {
		return c, nil
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return c, classify(fmt.Errorf("history: begin: %w", err))
	}
	defer tx.Rollback()
	for _, sh := range shifts {
		if err := applyShift(ctx, tx, sh); err != nil {
			return c, classify(err)
		}
	}
	if len(batch) > 0 {
		oldest, err := insertRaw(ctx, tx, batch)
		if err != nil {
			return c, classify(err)
		}
		c.Newest = batch[len(batch)-1].Time
		for _, r := range batch {
			if r.Time.After(c.Newest) {
				c.Newest = r.Time
			}
		}
		if err := reroll(ctx, tx, oldest); err != nil {
			return c, classify(err)
		}
	}
	if maint {
		if err := s.maintain(ctx, tx, now); err != nil {
			return c, classify(err)
		}
	}
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	if err := tx.Commit(); err != nil {
		return c, classify(fmt.Errorf("history: commit: %w", err))
	}
	s.mu.Lock()
	s.inflight = nil
	s.mu.Unlock()
	return c, nil
}

// SQLite's primary result codes that name a cause (sqlite3.h).
const (
	sqliteReadOnly = 8
	sqliteCorrupt  = 11
	sqliteFull     = 13
	sqliteNotADB   = 26
)

// classify wraps err with the sentinel of its cause, when SQLite names
// one: a full disk, a damaged file, a read-only one.
func classify(err error) error {
	var se interface{ Code() int }
	if err == nil || !errors.As(err, &se) {
		return err
	}
	switch se.Code() & 0xff {
	case sqliteFull:
		return fmt.Errorf("%w: %w", ErrDiskFull, err)
	case sqliteCorrupt, sqliteNotADB:
		return fmt.Errorf("%w: %w", ErrDamaged, err)
	case sqliteReadOnly:
		return fmt.Errorf("%w: %w", ErrReadOnly, err)
	}
	return err
}

// insertRaw writes readings into their days' tables (a later one with the
// same millisecond wins) and returns the oldest timestamp written, in ms.
func insertRaw(ctx context.Context, tx *sql.Tx, rs []sensor.Reading) (int64, error) {
	stmts := map[int64]*sql.Stmt{}
	defer func() {
		for _, st := range stmts {
			st.Close()
		}
	}()
	oldest := rs[0].Time.UnixMilli()
	for _, r := range rs {
		t := r.Time.UnixMilli()
		oldest = min(oldest, t)
		d := dayOf(t)
		st, ok := stmts[d]
		if !ok {
			if err := createDay(ctx, tx, d); err != nil {
				return 0, err
			}
			var err error
			st, err = tx.PrepareContext(ctx, `INSERT OR REPLACE INTO `+rawTable(d)+` (ms, temp, hum) VALUES (?, ?, ?)`)
			if err != nil {
				return 0, fmt.Errorf("history: insert: %w", err)
			}
			stmts[d] = st
		}
		if _, err := st.ExecContext(ctx, t-dayStart(d), int64(r.Temperature), int64(r.Humidity)); err != nil {
			return 0, fmt.Errorf("history: insert: %w", err)
		}
	}
	return oldest, nil
}

// rollupSQL recomputes the minute rows of [?1, ?2) from the raw rows of the
// day that starts at ?3.
const rollupSQL = `INSERT INTO minute (t, n, tmin, tsum, tmax, hmin, hsum, hmax)
	SELECT (?3 + ms) / 60000 * 60000 AS m, count(*), min(temp), sum(temp), max(temp), min(hum), sum(hum), max(hum)
	FROM %s WHERE ms >= ?1 - ?3 AND ms < ?2 - ?3 GROUP BY m
	ON CONFLICT (t) DO UPDATE SET n = excluded.n,
		tmin = excluded.tmin, tsum = excluded.tsum, tmax = excluded.tmax,
		hmin = excluded.hmin, hsum = excluded.hsum, hmax = excluded.hmax`

// rollup recomputes the minute rows of [from, to) from the raw rows.
func rollup(ctx context.Context, tx *sql.Tx, from, to int64) error {
	days, err := rawDays(ctx, tx)
	if err != nil {
		return err
	}
	for _, d := range daysIn(days, from, to) {
		if _, err := tx.ExecContext(ctx, fmt.Sprintf(rollupSQL, rawTable(d)), from, to, dayStart(d)); err != nil {
			return fmt.Errorf("history: rollup: %w", err)
		}
	}
	return nil
}

// rollupMark is the end (Unix ms) of the minutes already rolled up.
func rollupMark(ctx context.Context, tx *sql.Tx) (int64, error) {
	var rolled int64
	if err := tx.QueryRowContext(ctx, `SELECT v FROM meta WHERE k = 'rolled'`).Scan(&rolled); err != nil {
		return 0, fmt.Errorf("history: rollup mark: %w", err)
	}
	return rolled, nil
}

// reroll redoes the rollups of minutes already rolled up that a reading
// older than the rollup mark (a clock step back, an import) changed.
func reroll(ctx context.Context, tx *sql.Tx, oldest int64) error {
	rolled, err := rollupMark(ctx, tx)
	if err != nil {
		return err
	}
	if oldest >= rolled {
		return nil
	}
	if err := rollup(ctx, tx, floorMinute(oldest), rolled); err != nil {
		return err
	}
	return rerollHours(ctx, tx, oldest)
}

// hourSQL recomputes the hour rows of [?1, ?2) from the minute rows.
const hourSQL = `INSERT INTO hour (t, n, tmin, tsum, tmax, hmin, hsum, hmax)
	SELECT t / 3600000 * 3600000 AS h, sum(n), min(tmin), sum(tsum), max(tmax), min(hmin), sum(hsum), max(hmax)
	FROM minute WHERE t >= ?1 AND t < ?2 GROUP BY h
	ON CONFLICT (t) DO UPDATE SET n = excluded.n,
		tmin = excluded.tmin, tsum = excluded.tsum, tmax = excluded.tmax,
		hmin = excluded.hmin, hsum = excluded.hsum, hmax = excluded.hmax`

func hourMark(ctx context.Context, tx *sql.Tx) (int64, error) {
	var v int64
	if err := tx.QueryRowContext(ctx, `SELECT v FROM meta WHERE k = 'hourly'`).Scan(&v); err != nil {
		return 0, fmt.Errorf("history: hour mark: %w", err)
	}
	return v, nil
}

// rerollHours redoes the hour rows from oldest's hour to the hour mark,
// after minutes before the mark changed.
func rerollHours(ctx context.Context, tx *sql.Tx, oldest int64) error {
	hm, err := hourMark(ctx, tx)
	if err != nil {
		return err
	}
	if oldest >= hm {
		return nil
	}
	if _, err := tx.ExecContext(ctx, hourSQL, floorHour(oldest), hm); err != nil {
		return fmt.Errorf("history: hourly rollup: %w", err)
	}
	return nil
}

// maintain rolls up every minute that has ended and purges rows past
// their retention (raw ones a whole day at a time). A minute counts as ended one minute after its end, so
// a reading still on its way (queued, or a read that took long) lands in
// its raw rows before they are summed.
func (s *Store) maintain(ctx context.Context, tx *sql.Tx, now time.Time) error {
	rolled, err := rollupMark(ctx, tx)
	if err != nil {
		return err
	}
	cut := floorMinute(now.UnixMilli()) - minuteMS
	if err := advanceMark(ctx, tx, cut); err != nil {
		return err
	}
	// Retention counts real age: rows this run wrote less than a
	// retention ago (by the monotonic clock) stay, whatever the wall clock
	// says now (it may have stepped since they were stamped).
	rawCut := min(max(rolled, cut), now.Add(-s.o.RawRetention).UnixMilli(), s.youngFrom(s.o.RawRetention))
	days, err := rawDays(ctx, tx)
	if err != nil {
		return err
	}
	for _, d := range days {
		if (d+1)*dayMS > rawCut {
			break
		}
		if _, err := tx.ExecContext(ctx, `DROP TABLE `+rawTable(d)); err != nil {
			return fmt.Errorf("history: purge: %w", err)
		}
	}
	old := min(now.Add(-s.o.RollupRetention).UnixMilli(), s.youngFrom(s.o.RollupRetention))
	if _, err := tx.ExecContext(ctx, `DELETE FROM minute WHERE t < ?`, old); err != nil {
		return fmt.Errorf("history: purge: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM hour WHERE t + 3600000 <= ?`, old); err != nil {
		return fmt.Errorf("history: purge: %w", err)
	}
	return nil
}

// advanceMark rolls up the raw rows from the rollup mark to cut and moves
// the mark there; a cut at or before the mark does nothing.
func advanceMark(ctx context.Context, tx *sql.Tx, cut int64) error {
	rolled, err := rollupMark(ctx, tx)
	if err != nil {
		return err
	}
	if cut <= rolled {
		return nil
	}
	if err := rollup(ctx, tx, rolled, cut); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE meta SET v = ? WHERE k = 'rolled'`, cut); err != nil {
		return fmt.Errorf("history: rollup mark: %w", err)
	}
	// Every hour wholly before the new mark is final in the minute table.
	hm, err := hourMark(ctx, tx)
	if err != nil {
		return err
	}
	if h := floorHour(cut); h > hm {
		if _, err := tx.ExecContext(ctx, hourSQL, hm, h); err != nil {
			return fmt.Errorf("history: hourly rollup: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE meta SET v = ? WHERE k = 'hourly'`, h); err != nil {
			return fmt.Errorf("history: hour mark: %w", err)
		}
	}
	return nil
}

// floorMinute and floorHour round ms down (for times after 1970).
func floorMinute(ms int64) int64 { return ms / minuteMS * minuteMS }
func floorHour(ms int64) int64   { return ms / hourMS * hourMS }
