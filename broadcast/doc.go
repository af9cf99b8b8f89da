// Package broadcast is sensord's WebSocket output: what Node-RED's
// websocket-out and websocket-in nodes do, as a library.
//
// A Server is the http.Handler of one path (server mode). Publish encodes a
// Message once (JSON, then the WebSocket frame) and stores it in a Ring;
// every connected client follows the ring at its own pace and gets the
// frames whose topic matches its ?topic= filters. A Message with a Session
// is a reply: it goes to that one client only. Frames the clients send
// reach ServerOpts.OnMessage with their session (the websocket-in pairing).
// A Client dials out to a ws:// or wss:// URL (client mode) and sends every
// published message, reconnecting with back-off.
//
// # Messages
//
// Payload []byte goes out as a binary frame, a string as text as is, anything
// else as JSON text; an empty payload is not sent. With WholeMsg the frame is
// {"topic":..,"payload":..,"_msgid":..} (never the session).
//
// # Concurrency
//
// Server: Publish, History, Clients, Stats, Progress and Close are safe from
// any goroutine; ServeHTTP is called by net/http. gorilla's Upgrader does
// the handshake; from then on each connection has one goroutine of its
// own, the reader (our frameReader, which calls OnMessage). Writing needs
// none while a client keeps up: one housekeeping goroutine per Server
// turns publishes into passes (held back up to Coalesce when the fan-out
// is large), and in a pass it and Writers-1 helpers go through every
// connection, each writing what is waiting for it with one non-blocking
// writev (see Server.pass). The frames were encoded once by Publish for
// everybody (server frames are not masked, so the bytes are the same for
// every client). A write the client's socket cannot take whole, a session
// reply, a pong and a close are done by a goroutine started for that
// connection (conn.drive), which waits for the socket and ends when
// nothing is left. At any moment one goroutine at most owns a
// connection's writes (conn.claim, release). The loop also sends
// heartbeats and marks Progress; Close stops it.
//
// Memory per idle connection: its one goroutine stays on the smallest
// stack (2 KiB: the reader's call chain is kept short, see readLoop),
// there is no per-connection read or write buffer (frames are read
// exactly, and written from the shared encoded frames through the pass
// workers' scratch space), and the reply queue is made at the first
// reply. What a client can make the server hold beyond that follows the
// bytes it sent (a frame header announcing 64 KiB costs nothing until the
// payload arrives) and is bounded for all clients of all servers sharing
// a Budget: partial messages and queued replies together.
//
// Ring: Publish is safe from any number of goroutines. It claims a sequence
// with one atomic add (the single claim point: wait-free, no publisher ever
// waits for another or for a reader) and then owns one slot; the rare case of
// two publishers a whole lap apart on one slot is settled by CAS, newest wins
// (see Ring.Publish). We chose a CAS claim over one publishing goroutine
// because the daemon publishes from several goroutines (readings, system
// stats) and a hand-off goroutine would need a queue of its own, which
// either blocks or drops. Each Reader belongs to one goroutine and reads
// slots without locks. One waker, the Server's housekeeping loop, takes
// the ring's kick after publishes and runs a pass (see Server.pass);
// publishers never wake readers themselves, because waking n readers
// costs O(n) and publish must not grow with the number of subscribers. All memory-ordering arguments are in the "Ordering:" comments
// of Ring.Publish, Reader.Next and Ring.Ack. They rely on one fact, stated
// once here: Go's sync/atomic operations are sequentially consistent (the Go
// memory model: all atomic operations behave as if executed in one total
// order). Published values and encoded frames are immutable.
//
// Client: Publish and State are safe from any goroutine; Run is called once
// and owns the connection (one writer, one reader goroutine per connection).
package broadcast
