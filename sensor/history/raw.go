package history

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Raw readings live in one table per UTC day, raw_<days since 1970>.
// Purging a day is then a DROP TABLE, which puts the day's pages on the
// free list without writing them; deleting the same rows one by one would
// write every page twice more (WAL, then checkpoint), as much again as the
// readings cost to insert. Raw retention is therefore kept in whole days:
// a day goes once all of it is older than RawRetention.
//
// A day's table keys its rows by ms, the milliseconds since the day's start
// (dayStart): a 4-byte key where a Unix time in ms takes 6, and with it a
// row of 12 bytes instead of 14. Fewer bytes a row means fewer new pages a
// day, and each new page costs a few page writes (the page, its parent,
// the header, the free list).

const dayMS = int64(24 * 60 * 60 * 1000)

// querier is what both *sql.DB and *sql.Tx offer.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

func rawTable(day int64) string { return "raw_" + strconv.FormatInt(day, 10) }

func dayStart(day int64) int64 { return day * dayMS }

func dayOf(ms int64) int64 {
	if ms < 0 {
		return (ms - dayMS + 1) / dayMS
	}
	return ms / dayMS
}

// rawDays lists the days that have a raw table, oldest first.
func rawDays(ctx context.Context, q querier) ([]int64, error) {
	rows, err := q.QueryContext(ctx, `SELECT name FROM sqlite_schema WHERE type = 'table' AND name GLOB 'raw_[0-9]*'`)
	if err != nil {
		return nil, fmt.Errorf("history: listing days: %w", err)
	}
	defer rows.Close()
	var days []int64
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return nil, fmt.Errorf("history: listing days: %w", err)
		}
		d, err := strconv.ParseInt(strings.TrimPrefix(name, "raw_"), 10, 64)
		if err != nil {
			continue // not one of ours
		}
		days = append(days, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("history: listing days: %w", err)
	}
	slices.Sort(days)
	return days, nil
}

// daysIn returns the days of days that overlap [from, to).
func daysIn(days []int64, from, to int64) []int64 {
	var out []int64
	lo, hi := dayOf(from), dayOf(to-1)
	for _, d := range days {
		if d >= lo && d <= hi {
			out = append(out, d)
		}
	}
	return out
}

func createDay(ctx context.Context, q querier, day int64) error {
	if _, err := q.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS `+rawTable(day)+
		` (ms INTEGER PRIMARY KEY, temp INTEGER NOT NULL, hum INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("history: creating %s: %w", rawTable(day), err)
	}
	return nil
}
