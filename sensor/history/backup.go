package history

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	sqlite "modernc.org/sqlite"

	"sensord/sensor"
)

// sqliteBackup is the driver's online backup, which Restore uses.
type sqliteBackup = sqlite.Backup

// MaxRestoreBytes bounds a file offered for a restore: a year of
// rollups and a week of raw readings at a reading a second take about
// 60 MB at 512-byte pages; four times that leaves room and keeps a
// hostile upload from filling the card.
const MaxRestoreBytes = 256 << 20

// Start returns the time of the oldest reading the store holds (raw, in
// a rollup or queued), false when it holds none: where the history
// begins.
func (s *Store) Start(ctx context.Context) (time.Time, bool, error) {
	sn, err := s.begin(ctx, false)
	if err != nil {
		return time.Time{}, false, err
	}
	defer sn.end()
	oldest := int64(0)
	have := false
	take := func(t int64) {
		if !have || t < oldest {
			oldest, have = t, true
		}
	}
	for _, table := range []string{"hour", "minute"} {
		var t sql.NullInt64
		if err := sn.tx.QueryRowContext(sn.ctx, `SELECT min(t) FROM `+table).Scan(&t); err != nil {
			return time.Time{}, false, why(sn.life, fmt.Errorf("history: start: %w", err))
		}
		if t.Valid {
			take(t.Int64)
		}
	}
	if t, ok, err := sn.rawStart(); err != nil {
		return time.Time{}, false, why(sn.life, err)
	} else if ok {
		take(t)
	}
	for _, r := range sn.mem {
		take(r.Time.UnixMilli())
	}
	if !have {
		return time.Time{}, false, nil
	}
	return time.UnixMilli(oldest), true, nil
}

// rawStart is the oldest raw reading of the snapshot.
func (sn *snapshot) rawStart() (int64, bool, error) {
	days, err := rawDays(sn.ctx, sn.tx)
	if err != nil {
		return 0, false, err
	}
	for _, d := range days {
		var ms sql.NullInt64
		if err := sn.tx.QueryRowContext(sn.ctx, `SELECT min(ms) FROM `+rawTable(d)).Scan(&ms); err != nil {
			return 0, false, fmt.Errorf("history: start: %w", err)
		}
		if ms.Valid {
			return dayStart(d) + ms.Int64, true, nil
		}
	}
	return 0, false, nil
}

// Export calls fn with every row in [from, to), oldest first, without a
// row limit and without holding them in memory: per-minute rollups
// (N > 1) before the oldest raw reading, raw readings (N = 1) from it on,
// queued readings included. minutes tells fn's caller before the first
// row whether any rollup rows can come. Over more than LightSpan it is a
// heavy query (ErrBusy).
func (s *Store) Export(ctx context.Context, from, to time.Time, start func(minutes bool) error, fn func(Point) error) error {
	if !from.Before(to) {
		return fmt.Errorf("%w: from %s is not before to %s", ErrQuery, from.Format(time.RFC3339), to.Format(time.RFC3339))
	}
	sn, err := s.begin(ctx, to.Sub(from) > LightSpan)
	if err != nil {
		return err
	}
	defer sn.end()
	f, t := from.UnixMilli(), to.UnixMilli()
	rawFrom, ok, err := sn.rawStart()
	if err != nil {
		return why(sn.life, err)
	}
	if !ok {
		rawFrom = sn.rolled // nothing raw on disk: minutes up to the mark
	}
	var mem []sensor.Reading
	for _, r := range sn.mem {
		if ms := r.Time.UnixMilli(); ms >= f && ms < t {
			mem = append(mem, r)
		}
	}
	slices.SortFunc(mem, func(a, b sensor.Reading) int { return a.Time.Compare(b.Time) })
	if len(mem) > 0 && !ok {
		rawFrom = min(rawFrom, mem[0].Time.UnixMilli())
	}
	minTo := min(max(floorMinute(rawFrom), f), t)
	if err := start(f < minTo); err != nil {
		return err
	}
	if f < minTo {
		rows, err := sn.tx.QueryContext(sn.ctx, `SELECT t, n, tmin, tsum, tmax, hmin, hsum, hmax FROM minute WHERE t >= ? AND t < ? ORDER BY t`, floorMinute(f), minTo)
		if err != nil {
			return why(sn.life, fmt.Errorf("history: export: %w", err))
		}
		for rows.Next() {
			var b, n, tmin, tsum, tmax, hmin, hsum, hmax int64
			if err := rows.Scan(&b, &n, &tmin, &tsum, &tmax, &hmin, &hsum, &hmax); err != nil {
				rows.Close()
				return why(sn.life, fmt.Errorf("history: export: %w", err))
			}
			if n <= 0 {
				continue
			}
			if err := fn(Point{Time: time.UnixMilli(b), N: int(n),
				Temperature: Summary{sensor.Deci(tmin), mean(tsum, n), sensor.Deci(tmax)},
				Humidity:    Summary{sensor.Deci(hmin), mean(hsum, n), sensor.Deci(hmax)}}); err != nil {
				rows.Close()
				return err
			}
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return why(sn.life, fmt.Errorf("history: export: %w", err))
		}
	}
	// Raw rows day by day, the queued readings merged in by time; a queued
	// reading with the millisecond of a stored one is the same reading.
	emit := func(r sensor.Reading) error {
		return fn(Point{Time: r.Time, N: 1,
			Temperature: Summary{r.Temperature, r.Temperature, r.Temperature},
			Humidity:    Summary{r.Humidity, r.Humidity, r.Humidity}})
	}
	days, err := rawDays(sn.ctx, sn.tx)
	if err != nil {
		return why(sn.life, err)
	}
	for _, d := range daysIn(days, minTo, t) {
		rows, err := sn.tx.QueryContext(sn.ctx, `SELECT ?3 + ms, temp, hum FROM `+rawTable(d)+` WHERE ms >= ?1 - ?3 AND ms < ?2 - ?3 ORDER BY ms`,
			minTo, t, dayStart(d))
		if err != nil {
			return why(sn.life, fmt.Errorf("history: export: %w", err))
		}
		for rows.Next() {
			var ms, temp, hum int64
			if err := rows.Scan(&ms, &temp, &hum); err != nil {
				rows.Close()
				return why(sn.life, fmt.Errorf("history: export: %w", err))
			}
			for len(mem) > 0 && mem[0].Time.UnixMilli() <= ms {
				if mem[0].Time.UnixMilli() < ms {
					if err := emit(mem[0]); err != nil {
						rows.Close()
						return err
					}
				}
				mem = mem[1:]
			}
			if err := emit(sensor.Reading{Time: time.UnixMilli(ms), Temperature: sensor.Deci(temp), Humidity: sensor.Deci(hum)}); err != nil {
				rows.Close()
				return err
			}
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return why(sn.life, fmt.Errorf("history: export: %w", err))
		}
	}
	for _, r := range mem {
		if r.Time.UnixMilli() < minTo {
			continue // inside the rollup rows' span, counted there once rolled
		}
		if err := emit(r); err != nil {
			return err
		}
	}
	return nil
}

// tempDir is where backups and restores are staged: beside the database,
// so a restore's rename-free copy and a backup stay on the card and off a
// RAM-backed /tmp; the system's for a store in memory.
func (s *Store) tempDir() string {
	if s.path == "" {
		return os.TempDir()
	}
	return filepath.Dir(s.path)
}

// Backup writes a consistent copy of the whole database (every commit so
// far; readings still queued are in the next one) to w as an SQLite file
// any sqlite3 shell opens, and returns its size. It is staged with VACUUM
// INTO in a temporary file beside the database, which needs that much
// free space, and is a heavy query (ErrBusy). size, if set, is called with
// the file's size before the first byte is written.
func (s *Store) Backup(ctx context.Context, w io.Writer, size func(int64)) (int64, error) {
	sn, err := s.begin(ctx, true)
	if err != nil {
		return 0, err
	}
	// The snapshot is not needed: VACUUM INTO reads one of its own.
	sn.tx.Rollback()
	defer sn.end()
	f, err := os.CreateTemp(s.tempDir(), ".history-backup-*.db")
	if err != nil {
		return 0, fmt.Errorf("history: backup: %w", err)
	}
	name := f.Name()
	f.Close()
	defer os.Remove(name)
	os.Remove(name) // VACUUM INTO wants a name no file has
	conn, err := s.rd.Conn(sn.ctx)
	if err != nil {
		return 0, why(sn.life, fmt.Errorf("history: backup: %w", err))
	}
	_, err = conn.ExecContext(sn.ctx, `VACUUM INTO ?`, name)
	conn.Close()
	if err != nil {
		return 0, why(sn.life, fmt.Errorf("history: backup: %w", classify(err)))
	}
	f, err = os.Open(name)
	if err != nil {
		return 0, fmt.Errorf("history: backup: %w", err)
	}
	defer f.Close()
	if size != nil {
		if fi, err := f.Stat(); err == nil {
			size(fi.Size())
		}
	}
	n, err := io.Copy(w, readerCtx{sn.ctx, f})
	if err != nil {
		return n, why(sn.life, fmt.Errorf("history: backup: sending: %w", err))
	}
	return n, nil
}

// readerCtx stops a copy once ctx ends.
type readerCtx struct {
	ctx context.Context
	r   io.Reader
}

func (r readerCtx) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.r.Read(p)
}

// Restore replaces the whole history with the SQLite file read from r (a
// Backup), after checking it: at most MaxRestoreBytes, SQLite's
// integrity_check, this sensord's schema and tables. A file that fails a
// check leaves the history as it was and is refused with ErrNotHistory
// and the reason. Readings queued meanwhile are written into the restored
// history at the next commit. The copy is SQLite's online backup, one
// transaction: a query sees the old history or the new, never a mix.
func (s *Store) Restore(ctx context.Context, r io.Reader) error {
	f, err := os.CreateTemp(s.tempDir(), ".history-restore-*.db")
	if err != nil {
		return fmt.Errorf("history: restore: %w", err)
	}
	name := f.Name()
	defer os.Remove(name)
	n, err := io.Copy(f, io.LimitReader(readerCtx{ctx, r}, MaxRestoreBytes+1))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return classify(fmt.Errorf("history: restore: receiving the file: %w", err))
	}
	if n > MaxRestoreBytes {
		return fmt.Errorf("%w: the file is larger than %d MiB", ErrNotHistory, MaxRestoreBytes>>20)
	}
	if err := checkFile(ctx, name); err != nil {
		return err
	}
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("history: restore: %w", err)
	}
	defer conn.Close()
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	err = conn.Raw(func(dc any) error {
		rs, ok := dc.(interface {
			NewRestore(string) (*sqliteBackup, error)
		})
		if !ok {
			return errors.New("the SQLite driver has no online backup")
		}
		b, err := rs.NewRestore(fileURI(name) + "?mode=ro")
		if err != nil {
			return err
		}
		if _, err := b.Step(-1); err != nil {
			b.Finish()
			return err
		}
		return b.Finish()
	})
	if err != nil {
		return classify(fmt.Errorf("history: restore: %w", err))
	}
	return nil
}

// checkFile opens the file at name and checks that it is a whole SQLite
// database with this sensord's schema.
func checkFile(ctx context.Context, name string) error {
	db, err := sql.Open("sqlite", fileURI(name)+"?mode=ro")
	if err != nil {
		return fmt.Errorf("history: restore: %w", err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrNotHistory}, args...)...)
	}
	var v int
	if err := db.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&v); err != nil {
		return bad("not an SQLite database (%v)", err)
	}
	var page int
	if err := db.QueryRowContext(ctx, `PRAGMA page_size`).Scan(&page); err != nil {
		return bad("not an SQLite database (%v)", err)
	}
	rows, err := db.QueryContext(ctx, `PRAGMA integrity_check`)
	if err != nil {
		return bad("not an SQLite database (%v)", err)
	}
	var problems []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			rows.Close()
			return bad("integrity check: %v", err)
		}
		if line != "ok" && len(problems) < 3 {
			problems = append(problems, line)
		}
	}
	err = rows.Err()
	rows.Close()
	if err != nil {
		return bad("integrity check: %v", err)
	}
	if len(problems) > 0 {
		return bad("the file is damaged: %s", strings.Join(problems, "; "))
	}
	switch {
	case v > schemaVersion:
		return fmt.Errorf("%w: %w (version %d, this one knows %d)", ErrNotHistory, ErrNewerSchema, v, schemaVersion)
	case v < schemaVersion:
		return bad("no sensord history schema (user_version %d, want %d)", v, schemaVersion)
	case page != pageSize:
		return bad("pages of %d bytes, a sensord history has %d", page, pageSize)
	}
	for _, table := range []string{"minute", "hour", "meta"} {
		var n int
		if err := db.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = ?`, table).Scan(&n); err != nil || n != 1 {
			return bad("no %s table", table)
		}
	}
	var marks int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM meta WHERE k IN ('rolled', 'hourly')`).Scan(&marks); err != nil || marks != 2 {
		return bad("no rollup marks")
	}
	return nil
}
