// Package history keeps sensord's readings on disk, in an SQLite database
// (modernc.org/sqlite: pure Go, so the daemon stays one static binary) in
// WAL mode, and answers range queries over them. It knows nothing of HTTP.
//
// Why SQLite: transactions that survive a crash or a power cut mid-write
// (proven by a test that kills the writer 200 times), aggregation in SQL
// (min/mean/max per step) instead of in Go over every row, and a file any
// sqlite3 shell can open. A key-value store (bbolt) would leave the
// rollups to us and rewrite a whole 4 KiB page per commit; a file format of
// our own would have to earn the crash safety SQLite already has.
//
// Three kinds of table: raw readings, one table per day, kept for
// Opts.RawRetention (default 7 days); per-minute rollups (count, min, sum
// and max of temperature and humidity in tenths) and per-hour rollups of
// the same, kept for Opts.RollupRetention (default 1 year), so a year's
// chart reads 8,760 hour rows instead of half a million minutes. Sums
// rather than means make rollups merge exactly into coarser steps. A meta
// table holds how far minutes and hours have been rolled up.
//
// # Writes and an SD card
//
// An SD card wears out with writes, so readings are queued in memory and
// committed in one transaction every Opts.CommitInterval (default a minute),
// and on Run's return. The database uses 512-byte pages, SQLite's smallest:
// each commit rewrites the page the new rows went to, and a small one is
// cheap to rewrite. Raw rows live in one table per day (raw.go), so a day
// past its retention goes with a DROP TABLE instead of row deletes. Minutes
// are rolled up and old
// rows purged once every Opts.MaintainEvery (default an hour), inside a
// commit. A query covering minutes not yet rolled up aggregates the raw rows
// of those minutes on the fly, so a rollup's delay never shows.
//
// # Readers beside the writer
//
// One writer connection (Run's commits, Import, Restore) and up to
// MaxReaders read connections. Under WAL a reader reads a snapshot while
// the writer commits, so a long query holds up neither the commits nor
// the other queries; the -shm file that WAL's readers share is the price
// (see BENCHMARKS.md). A query over more than LightSpan is heavy: at most
// MaxHeavy run at once and one more fails at once with ErrBusy, so that
// light queries and the writer keep a core. Steps of whole hours read the
// hourly rollups whatever the query's from (they start on the hour).
//
// Backup streams a consistent copy (VACUUM INTO a file beside the
// database) that any sqlite3 shell opens; Restore checks a file
// (integrity_check, the schema) before it replaces the history in one
// transaction through SQLite's online backup. Export streams any range
// without a row limit.
//
// A flock on the database's ".lock" file, holding the owner's process
// ID, keeps a second process off it: Open fails with ErrInUse at once.
//
// # Power loss
//
// synchronous=FULL makes every commit durable when it returns; WAL keeps the
// database whole when the process or the power dies mid-write. A power cut
// therefore loses at most the readings queued since the last commit.
//
// # Concurrency
//
// Add may be called from any goroutine and never blocks: a full queue drops
// the reading and counts it (Stats.Dropped). Run is the one writer and must
// run in exactly one goroutine. Query, Export, Backup, Restore, Start and
// Stats are safe from anywhere, also while Run writes; when Run's context
// ends, the queries running are cancelled (ErrClosed). Close after Run has
// returned. One process at a time (ErrInUse).
package history
