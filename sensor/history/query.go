package history

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"sensord/sensor"
)

// Query asks for the readings in [From, To). Step 0 asks for the raw
// readings; a positive Step, a whole number of minutes, for one rolled-up
// row per Step, the first starting at From rounded down to its minute
// (rollups are whole minutes, so a step cannot start inside one).
type Query struct {
	From, To time.Time
	Step     time.Duration
}

// Summary is one quantity over a row, in tenths like sensor.Deci. Mean is
// rounded to the nearest tenth, the sensor's own resolution.
type Summary struct {
	Min, Mean, Max sensor.Deci
}

// Point is one row of an answer: a raw reading (N = 1, Min = Mean = Max)
// or a rolled-up step with the N readings it summarises.
type Point struct {
	Time        time.Time // the reading's time, or the step's start
	N           int
	Temperature Summary
	Humidity    Summary
}

// Rows returns how many rows q can return at most: for a stepped query the
// number of steps; for a raw one MaxRows, as the count is only known once
// read. It checks q first.
func (q Query) Rows() (int, error) {
	if !q.From.Before(q.To) {
		return 0, fmt.Errorf("%w: from %s is not before to %s", ErrQuery, q.From.Format(time.RFC3339), q.To.Format(time.RFC3339))
	}
	if q.Step == 0 {
		return MaxRows, nil
	}
	if q.Step < time.Minute || q.Step%time.Minute != 0 {
		return 0, fmt.Errorf("%w: step %s is not a whole number of minutes", ErrQuery, q.Step)
	}
	span := q.To.Sub(q.From)
	n := span / q.Step
	if span%q.Step != 0 {
		n++
	}
	if n > MaxRows {
		return 0, fmt.Errorf("%w: %d steps of %s, at most %d", ErrTooManyRows, n, q.Step, MaxRows)
	}
	return int(n), nil
}

// Query answers q, oldest row first; steps without readings are left out.
// A raw query over more than MaxRows readings fails with ErrTooManyRows.
// A step of whole hours starts at From rounded down to its hour, so that
// the hourly rollups serve it whatever From is. A query over more than
// LightSpan is heavy: with MaxHeavy running it fails at once with ErrBusy.
func (s *Store) Query(ctx context.Context, q Query) ([]Point, error) {
	if _, err := q.Rows(); err != nil {
		return nil, err
	}
	from, to := q.From.UnixMilli(), q.To.UnixMilli()
	switch {
	case q.Step > 0 && q.Step%time.Hour == 0:
		from = floorHour(from)
	case q.Step > 0:
		from = floorMinute(from)
	}
	sn, err := s.begin(ctx, q.To.Sub(q.From) > LightSpan)
	if err != nil {
		return nil, err
	}
	defer sn.end()
	var mem []sensor.Reading
	for _, r := range sn.mem {
		if t := r.Time.UnixMilli(); t >= from && t < to {
			mem = append(mem, r)
		}
	}
	slices.SortFunc(mem, func(a, b sensor.Reading) int { return a.Time.Compare(b.Time) })
	if q.Step == 0 {
		out, err := sn.queryRaw(from, to)
		if err != nil {
			return nil, why(sn.life, err)
		}
		return mergeRaw(out, mem)
	}
	step := q.Step.Milliseconds()
	out, err := sn.queryStep(from, to, step)
	if err != nil {
		return nil, why(sn.life, err)
	}
	return mergeStep(out, mem, from, step), nil
}

// snapshot is one read: a read transaction on a connection of its own,
// the rollup marks of its snapshot and the readings queued beside it.
type snapshot struct {
	ctx            context.Context
	life           context.Context // the store's query life it runs in
	tx             *sql.Tx
	mem            []sensor.Reading
	rolled, hourly int64
	end            func()
}

// begin starts a read. Its context ends with ctx or when Run's does. A
// heavy read takes one of MaxHeavy tokens or fails with ErrBusy.
func (s *Store) begin(ctx context.Context, heavy bool) (*snapshot, error) {
	life := s.queries()
	if life.ctx.Err() != nil {
		return nil, ErrClosed
	}
	var undo []func()
	end := func() {
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i]()
		}
	}
	if heavy {
		select {
		case s.heavy <- struct{}{}:
			undo = append(undo, func() { <-s.heavy })
		default:
			s.busy.Add(1)
			return nil, fmt.Errorf("%w (%d running)", ErrBusy, MaxHeavy)
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(life.ctx, cancel)
	undo = append(undo, func() { stop(); cancel() })
	// The connection first, then commitMu: in memory the writer holds the
	// one connection while it waits for commitMu.
	conn, err := s.rd.Conn(ctx)
	if err != nil {
		end()
		return nil, why(life.ctx, fmt.Errorf("history: query: %w", err))
	}
	undo = append(undo, func() { conn.Close() })
	sn := &snapshot{ctx: ctx, end: end, life: life.ctx}
	err = func() error {
		s.commitMu.RLock()
		defer s.commitMu.RUnlock()
		tx, err := conn.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
		if err != nil {
			return fmt.Errorf("history: query: %w", err)
		}
		undo = append(undo, func() { tx.Rollback() })
		sn.tx = tx
		// The first read fixes the snapshot (WAL): before any later commit.
		if err := tx.QueryRowContext(ctx, `SELECT (SELECT v FROM meta WHERE k = 'rolled'), (SELECT v FROM meta WHERE k = 'hourly')`).Scan(&sn.rolled, &sn.hourly); err != nil {
			return fmt.Errorf("history: rollup marks: %w", err)
		}
		sn.mem = s.queued()
		return nil
	}()
	sn.end = end
	if err != nil {
		end()
		return nil, why(life.ctx, err)
	}
	return sn, nil
}

// why names a query's failure: ErrClosed when Run's end (life) cancelled it.
func why(life context.Context, err error) error {
	if life.Err() != nil && !errors.Is(err, ErrClosed) {
		return fmt.Errorf("%w: %w", ErrClosed, err)
	}
	return classify(err)
}

// mergeRaw adds the queued readings mem (sorted) to the raw rows db,
// leaving out those the database holds too.
func mergeRaw(db []Point, mem []sensor.Reading) ([]Point, error) {
	if len(mem) == 0 {
		return db, nil
	}
	have := make(map[int64]bool, len(db))
	for _, p := range db {
		have[p.Time.UnixMilli()] = true
	}
	for _, r := range mem {
		if have[r.Time.UnixMilli()] {
			continue
		}
		db = append(db, Point{Time: r.Time, N: 1,
			Temperature: Summary{r.Temperature, r.Temperature, r.Temperature},
			Humidity:    Summary{r.Humidity, r.Humidity, r.Humidity}})
	}
	slices.SortStableFunc(db, func(a, b Point) int { return a.Time.Compare(b.Time) })
	if len(db) > MaxRows {
		return nil, fmt.Errorf("%w: more than %d readings in the range; ask for a step", ErrTooManyRows, MaxRows)
	}
	return db, nil
}

// mergeStep adds the queued readings mem into the steps of db (steps of
// step ms from from), adding steps where db has none.
func mergeStep(db []Point, mem []sensor.Reading, from, step int64) []Point {
	if len(mem) == 0 {
		return db
	}
	at := make(map[int64]int, len(db))
	for i, p := range db {
		at[p.Time.UnixMilli()] = i
	}
	for _, r := range mem {
		b := from + (r.Time.UnixMilli()-from)/step*step
		i, ok := at[b]
		if !ok {
			db = append(db, Point{Time: time.UnixMilli(b)})
			i = len(db) - 1
			at[b] = i
		}
		p := &db[i]
		p.Temperature = p.Temperature.with(r.Temperature, p.N)
		p.Humidity = p.Humidity.with(r.Humidity, p.N)
		p.N++
	}
	slices.SortStableFunc(db, func(a, b Point) int { return a.Time.Compare(b.Time) })
	return db
}

// with adds v to a summary of n values.
func (s Summary) with(v sensor.Deci, n int) Summary {
	if n == 0 {
		return Summary{v, v, v}
	}
	return Summary{
		Min:  min(s.Min, v),
		Mean: mean(int64(s.Mean)*int64(n)+int64(v), int64(n)+1),
		Max:  max(s.Max, v),
	}
}

func (sn *snapshot) queryRaw(from, to int64) ([]Point, error) {
	ctx, tx := sn.ctx, sn.tx
	days, err := rawDays(ctx, tx)
	if err != nil {
		return nil, err
	}
	var out []Point
	for _, d := range daysIn(days, from, to) {
		rows, err := tx.QueryContext(ctx, `SELECT ?3 + ms, temp, hum FROM `+rawTable(d)+` WHERE ms >= ?1 - ?3 AND ms < ?2 - ?3 ORDER BY ms LIMIT ?4`,
			from, to, dayStart(d), MaxRows+1-len(out))
		if err != nil {
			return nil, fmt.Errorf("history: query: %w", err)
		}
		for rows.Next() {
			var t, temp, hum int64
			if err := rows.Scan(&t, &temp, &hum); err != nil {
				rows.Close()
				return nil, fmt.Errorf("history: query: %w", err)
			}
			if len(out) == MaxRows {
				rows.Close()
				return nil, fmt.Errorf("%w: more than %d readings in the range; ask for a step", ErrTooManyRows, MaxRows)
			}
			tc, hc := sensor.Deci(temp), sensor.Deci(hum)
			out = append(out, Point{Time: time.UnixMilli(t), N: 1, Temperature: Summary{tc, tc, tc}, Humidity: Summary{hc, hc, hc}})
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("history: query: %w", err)
		}
	}
	return out, nil
}

// stepSQL merges hour rows in [?4, ?5), minute rows in [?5, ?6) and raw
// rows in [?6, ?2) (%s is their UNION ALL over the days in range), and
// groups them into steps of ?3 ms from ?1. Each source has one lower and
// one upper bound, so SQLite scans just that range of its key.
const stepSQL = `WITH m(t, n, tmin, tsum, tmax, hmin, hsum, hmax) AS (
	SELECT t, n, tmin, tsum, tmax, hmin, hsum, hmax FROM hour WHERE t >= ?4 AND t < ?5
	UNION ALL
	SELECT t, n, tmin, tsum, tmax, hmin, hsum, hmax FROM minute WHERE t >= ?5 AND t < ?6
	%s
)
SELECT ?1 + (t - ?1) / ?3 * ?3 AS b, sum(n), min(tmin), sum(tsum), max(tmax), min(hmin), sum(hsum), max(hmax)
FROM m GROUP BY b ORDER BY b`

const stepRawSQL = `UNION ALL SELECT %[2]d + ms, 1, temp, temp, temp, hum, hum, hum FROM %[1]s
		WHERE ms >= ?6 - %[2]d AND ms < ?2 - %[2]d
	`

func (sn *snapshot) queryStep(from, to, step int64) ([]Point, error) {
	ctx, tx := sn.ctx, sn.tx
	// The three sources' ranges, each within [from, to) and each ending
	// where its rollup ends: hour rows up to the hourly mark (for steps of
	// whole hours from a whole hour), minute rows up to the rollup mark,
	// raw rows for the rest. No source reaches past to.
	hourTo := from
	if step%hourMS == 0 && from%hourMS == 0 {
		hourTo = min(max(min(sn.hourly, floorHour(to)), from), to)
	}
	minTo := min(max(min(sn.rolled, floorMinute(to)), hourTo), to)
	days, err := rawDays(ctx, tx)
	if err != nil {
		return nil, err
	}
	var raw strings.Builder
	for _, d := range daysIn(days, minTo, to) {
		fmt.Fprintf(&raw, stepRawSQL, rawTable(d), dayStart(d))
	}
	rows, err := tx.QueryContext(ctx, fmt.Sprintf(stepSQL, raw.String()), from, to, step, from, hourTo, minTo)
	if err != nil {
		return nil, fmt.Errorf("history: query: %w", err)
	}
	defer rows.Close()
	var out []Point
	for rows.Next() {
		var b, n, tmin, tsum, tmax, hmin, hsum, hmax int64
		if err := rows.Scan(&b, &n, &tmin, &tsum, &tmax, &hmin, &hsum, &hmax); err != nil {
			return nil, fmt.Errorf("history: query: %w", err)
		}
		if n <= 0 {
			continue
		}
		out = append(out, Point{
			Time:        time.UnixMilli(b),
			N:           int(n),
			Temperature: Summary{sensor.Deci(tmin), mean(tsum, n), sensor.Deci(tmax)},
			Humidity:    Summary{sensor.Deci(hmin), mean(hsum, n), sensor.Deci(hmax)},
		})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("history: query: %w", err)
	}
	return out, nil
}

func mean(sum, n int64) sensor.Deci {
	return sensor.Deci(math.Round(float64(sum) / float64(n)))
}

// Import writes readings and ready-made per-minute rows (each Point's Time
// is the minute's start, its Mean times N the sum) in one transaction,
// outside the queue: for bringing in history kept elsewhere, and for tests
// that need a store filled with past days. A minute with raw readings is
// summed from them when it is rolled up, replacing an imported row.
func (s *Store) Import(ctx context.Context, raw []sensor.Reading, minutes []Point) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("history: import: %w", err)
	}
	defer tx.Rollback()
	if len(minutes) > 0 {
		st, err := tx.PrepareContext(ctx, `INSERT OR REPLACE INTO minute (t, n, tmin, tsum, tmax, hmin, hsum, hmax) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`)
		if err != nil {
			return fmt.Errorf("history: import: %w", err)
		}
		defer st.Close()
		var end int64
		oldest := int64(math.MaxInt64)
		for _, p := range minutes {
			if p.N <= 0 {
				return fmt.Errorf("%w: import: a minute row with %d readings", ErrQuery, p.N)
			}
			n := int64(p.N)
			if _, err := st.ExecContext(ctx, floorMinute(p.Time.UnixMilli()), n,
				int64(p.Temperature.Min), int64(p.Temperature.Mean)*n, int64(p.Temperature.Max),
				int64(p.Humidity.Min), int64(p.Humidity.Mean)*n, int64(p.Humidity.Max)); err != nil {
				return fmt.Errorf("history: import: %w", err)
			}
			end = max(end, floorMinute(p.Time.UnixMilli())+minuteMS)
			oldest = min(oldest, floorMinute(p.Time.UnixMilli()))
		}
		// Queries read minute rows only before the rollup mark: move it
		// past the imported minutes, rolling up the raw rows it passes.
		if err := advanceMark(ctx, tx, end); err != nil {
			return err
		}
		if err := rerollHours(ctx, tx, oldest); err != nil {
			return err
		}
	}
	if len(raw) > 0 {
		oldest, err := insertRaw(ctx, tx, raw)
		if err != nil {
			return err
		}
		if err := reroll(ctx, tx, oldest); err != nil {
			return err
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("history: import: %w", err)
	}
	return nil
}
