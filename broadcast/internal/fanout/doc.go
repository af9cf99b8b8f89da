// Package fanout is the engine under package broadcast: it writes frames
// encoded once to every WebSocket connection that wants them, replies to
// one connection, and reads what the connections send.
//
// An Engine takes connections after gorilla's Upgrader has done the
// handshake (Join, with the connection's topic filters and session) and
// from then on owns them: it reads their frames with its own frame reader
// and writes pre-framed bytes (server frames are not masked, so the bytes
// of a published frame are the same for every client). Publish puts a
// Frame in a Ring; Reply queues one for a single session. The engine
// calls its user only through Options: OnMessage, OnJoin, OnLeave, Match
// and Memory.
//
// # Who may call what
//
// Publish, PublishHeld, Reply, Retained, Mark, Clients, Conns, Wanting,
// Has, Stats, Progress, Closing and Close are safe from any number of goroutines. Join is called from the
// goroutine that did the upgrade and returns once the connection's replay
// is written. OnMessage runs on the connection's reader goroutine,
// OnJoin on Join's, OnLeave on the connection's last writer.
//
// # Goroutines and writes
//
// Each connection has one goroutine of its own, the reader (conn.readLoop),
// which hands pings to the writer, gives messages to OnMessage and keeps
// the pong deadline. Writing needs no goroutine while a client keeps up:
// one loop per Engine turns publishes into passes (held back up to
// Coalesce when the fan-out is large, see wakeBudget), and in a pass it
// and Writers-1 helpers go through every connection, each writing what is
// waiting for it with one non-blocking writev (Engine.pass, conn.service).
// A write the client's socket cannot take whole, a reply, a pong and a
// close are done by a goroutine started for that connection (conn.drive),
// which waits for the socket (up to WriteWait) and ends when nothing is
// left. At any moment one goroutine at most owns a connection's writes:
// conn.claim and conn.release pass that ownership on, and a claim that
// finds an owner tells it to look again. The loop also sends heartbeats
// and marks Progress; Close stops it.
//
// # The ring
//
// Ring.Publish is safe from any number of goroutines (readings, system
// stats and MQTT messages publish from different ones). It claims a
// sequence with one atomic add (the single claim point: wait-free, no
// publisher ever waits for another or for a reader) and then owns one
// slot; the rare case of two publishers a whole lap apart on one slot is
// settled by CAS, newest wins. A CAS claim rather than one publishing
// goroutine: a hand-off goroutine would need a queue of its own, which
// either blocks or drops. Each Reader belongs to one goroutine (here, the
// owner of its connection's writes) and reads slots without locks.
// Publishers never wake readers: waking n of them costs O(n), and publish
// must not grow with the number of subscribers; one kick per burst tells
// the loop to run a pass.
//
// All memory-ordering arguments are in the "Ordering:" comments of
// Ring.Publish, Reader.Next, Ring.Ack, Engine.pass and conn.release. They
// rely on one fact, stated once here: Go's sync/atomic operations are
// sequentially consistent (the Go memory model: all atomic operations
// behave as if executed in one total order). Published frames are
// immutable.
//
// # Memory per connection
//
// An idle connection's one goroutine stays on the smallest stack (2 KiB:
// the reader's call chain is kept short, see conn.readLoop); there is no
// per-connection read or write buffer (frames are read exactly, and
// written from the shared frames through the pass workers' batches), and
// the reply queue is made at the first reply. What a client can make the
// engine hold beyond that follows the bytes it sent (a frame header
// announcing 64 KiB costs nothing until the payload arrives, see
// FirstChunk) and is bounded by Options.Memory for all connections of all
// engines sharing it: partial messages and queued replies together.
package fanout
