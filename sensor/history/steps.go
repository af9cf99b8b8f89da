package history

// A wall clock that steps (forward by years at a Pi's first NTP answer,
// back by minutes or hours at a correction) must not corrupt history.
// AddAt gives each reading its monotonic time too; two readings whose
// wall times are further apart or closer together than their monotonic
// times show a step between them. The new clock is taken for right: the
// readings of this run stored before the step were stamped off by the
// step, so they move by it, in the queue at once and on disk in the next
// commit, with the rollups of the minutes and hours they left and joined
// recomputed. So rows stay in the order taken, with no overlap and no
// stray rows at the old dates, and their times are their real ones, which
// is what retention measures. Only the readings of the last ShiftWindow
// (and of this run) move; older ones keep their stamps.
//
//	wall  ─ 10:00 10:02 ─step +2y─ 2026 10:06     (monotonic: 0, 2 s, 6 s)
//	moved:  2026 10:00 10:02   then 2026 10:06 as added

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"sensord/sensor"
)

const (
	// stepTolerance is the gap between the wall and monotonic clocks
	// that counts as a step; NTP slews smaller errors gradually.
	stepTolerance = time.Second
	// maxSlew: timesyncd and the kernel slew at most 500 ppm, which
	// over a long gap between two readings is no step either.
	maxSlew = 2000 // 1/maxSlew of a gap: 500 ppm
	// ShiftWindow bounds how far back a step moves readings (and never
	// further than the raw retention): a day of readings is 43,200 rows
	// rewritten at most, and a clock wrong for longer than that is beyond
	// repair by offset.
	ShiftWindow = 24 * time.Hour
)

// runClock is this run's readings on the current wall clock: the first
// and the last, each with its monotonic time. Every reading between has
// wall - mono equal to theirs (the steps so far have been applied).
type runClock struct {
	have                bool
	firstWall, lastWall time.Time // wall times, no monotonic reading
	firstMono, lastMono time.Duration
}

// shift moves the stored raw rows of [from, to] (Unix ms) by by ms.
// inflight: readings were in flight (being committed) when it came; if
// that commit fails, they are still in memory and move there (takeQueued).
type shift struct {
	from, to, by int64
	inflight     bool
}

// AddAt is Add for a reading taken at mono on Opts.Mono's clock: a wall
// clock step since the previous such reading moves the readings of this
// run stamped before it (see ShiftWindow).
func (s *Store) AddAt(r sensor.Reading, mono time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	wall := r.Time.Round(0)
	rc := &s.run
	if rc.have {
		gap := mono - rc.lastMono
		step := (wall.Sub(rc.lastWall) - gap).Round(time.Millisecond)
		if tol := stepTolerance + gap.Abs()/maxSlew; step > tol || step < -tol {
			s.shiftLocked(step)
		}
	} else {
		rc.have, rc.firstWall, rc.firstMono = true, wall, mono
	}
	rc.lastWall, rc.lastMono = wall, mono
	s.addLocked(r)
}

// shiftLocked moves this run's readings of the window before the last one
// by step, in the queue now and on disk at the next commit.
func (s *Store) shiftLocked(step time.Duration) {
	rc := &s.run
	window := min(ShiftWindow, s.o.RawRetention)
	if rc.lastMono-rc.firstMono > window {
		rc.firstWall, rc.firstMono = rc.lastWall.Add(-window), rc.lastMono-window
	}
	sh := shift{from: rc.firstWall.UnixMilli(), to: rc.lastWall.UnixMilli(), by: step.Milliseconds(), inflight: len(s.inflight) > 0}
	s.shifts = append(s.shifts, sh)
	// The queue moves now; the readings in flight belong to the writer
	// until its commit ends (takeQueued).
	sh.move(s.pending)
	rc.firstWall, rc.lastWall = rc.firstWall.Add(step), rc.lastWall.Add(step)
}

// move re-stamps the readings of rs in the shift's range.
func (sh shift) move(rs []sensor.Reading) {
	for i := range rs {
		if t := rs[i].Time.UnixMilli(); t >= sh.from && t <= sh.to {
			rs[i].Time = rs[i].Time.Add(time.Duration(sh.by) * time.Millisecond)
		}
	}
}

// youngFrom is the oldest stamp (Unix ms) of the rows this run stored
// less than age ago by the monotonic clock; retention keeps them whatever
// the wall clock says. Without such rows, the end of time.
func (s *Store) youngFrom(age time.Duration) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	rc := s.run
	if !rc.have {
		return 1<<63 - 1
	}
	at := rc.lastWall.Add(s.o.Mono() - age - rc.lastMono)
	if at.Before(rc.firstWall) {
		at = rc.firstWall
	}
	return at.UnixMilli()
}

// applyShift moves the raw rows of sh and recomputes the minute and hour
// rollups of the ranges they left and joined (those before the marks;
// later ones are rolled up by maintenance as usual).
func applyShift(ctx context.Context, tx *sql.Tx, sh shift) error {
	days, err := rawDays(ctx, tx)
	if err != nil {
		return err
	}
	var moved []sensor.Reading
	for _, d := range daysIn(days, sh.from, sh.to+1) {
		rows, err := tx.QueryContext(ctx, `SELECT ms, temp, hum FROM `+rawTable(d)+` WHERE ms >= ? AND ms <= ?`, sh.from-dayStart(d), sh.to-dayStart(d))
		if err != nil {
			return fmt.Errorf("history: shift: %w", err)
		}
		for rows.Next() {
			var ms, temp, hum int64
			if err := rows.Scan(&ms, &temp, &hum); err != nil {
				rows.Close()
				return fmt.Errorf("history: shift: %w", err)
			}
			moved = append(moved, sensor.Reading{Time: time.UnixMilli(dayStart(d) + ms + sh.by), Temperature: sensor.Deci(temp), Humidity: sensor.Deci(hum)})
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("history: shift: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM `+rawTable(d)+` WHERE ms >= ? AND ms <= ?`, sh.from-dayStart(d), sh.to-dayStart(d)); err != nil {
			return fmt.Errorf("history: shift: %w", err)
		}
	}
	if len(moved) > 0 {
		if _, err := insertRaw(ctx, tx, moved); err != nil {
			return err
		}
	}
	for _, r := range [][2]int64{{sh.from, sh.to}, {sh.from + sh.by, sh.to + sh.by}} {
		if err := rerollRange(ctx, tx, r[0], r[1]); err != nil {
			return err
		}
	}
	return nil
}

// rerollRange recomputes from the raw rows the minute rows, and from
// those the hour rows, of the minutes and hours that hold [from, to]
// (Unix ms) and lie before the rollup marks. Those minutes' raw rows are
// all there: they are younger than the raw retention (ShiftWindow).
func rerollRange(ctx context.Context, tx *sql.Tx, from, to int64) error {
	rolled, err := rollupMark(ctx, tx)
	if err != nil {
		return err
	}
	if lo, hi := floorMinute(from), min(rolled, floorMinute(to)+minuteMS); lo < hi {
		if _, err := tx.ExecContext(ctx, `DELETE FROM minute WHERE t >= ? AND t < ?`, lo, hi); err != nil {
			return fmt.Errorf("history: shift rollup: %w", err)
		}
		if err := rollup(ctx, tx, lo, hi); err != nil {
			return err
		}
	}
	hm, err := hourMark(ctx, tx)
	if err != nil {
		return err
	}
	if lo, hi := floorHour(from), min(hm, floorHour(to)+hourMS); lo < hi {
		if _, err := tx.ExecContext(ctx, `DELETE FROM hour WHERE t >= ? AND t < ?`, lo, hi); err != nil {
			return fmt.Errorf("history: shift rollup: %w", err)
		}
		if _, err := tx.ExecContext(ctx, hourSQL, lo, hi); err != nil {
			return fmt.Errorf("history: shift rollup: %w", err)
		}
	}
	return nil
}
