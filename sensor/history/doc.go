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
// Two tables: raw readings, kept for Opts.RawRetention (default 7 days), and
// per-minute rollups (count, min, sum and max of temperature and humidity in
// tenths), kept for Opts.RollupRetention (default 1 year). Sums rather than
// means make rollups merge exactly into coarser steps.
//
// # Writes and an SD card
//
// An SD card wears out with writes, so readings are queued in memory and
// committed in one transaction every Opts.CommitInterval (default a minute),
// and on Run's return. The database uses 512-byte pages, SQLite's smallest:
// each commit rewrites the page the new rows went to, and a small one is
// cheap to rewrite. Raw rows live in one table per day (raw.go), so a
// day past its retention goes with a DROP TABLE instead of row deletes. Minutes are rolled up and old
// rows purged once every Opts.MaintainEvery (default an hour), inside a
// commit. A query covering minutes not yet rolled up aggregates the raw rows
// of those minutes on the fly, so a rollup's delay never shows.
//
// The connection takes SQLite's exclusive lock before entering WAL mode, so
// the WAL index lives in the heap instead of a memory-mapped -shm file that
// the kernel would write back after every commit (three quarters of the
// bytes reaching the card, see BENCHMARKS.md). The store therefore uses a
// single connection: queries and commits take turns, which at one commit a
// minute and queries of tens of milliseconds nobody notices.
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
// run in exactly one goroutine. Query and Stats are safe from anywhere, also
// while Run writes (they wait for the one connection). Close after Run has
// returned. One process at a time: a second Open of the same file, in
// another process, fails while the first holds it.
package history
