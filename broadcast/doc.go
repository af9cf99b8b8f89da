// Package broadcast is sensord's WebSocket output: what Node-RED's
// websocket-out and websocket-in nodes do, as a library.
//
// A Server is the http.Handler of one path (server mode). Publish encodes a
// Message once (JSON, then the WebSocket frame) for every client; each
// connected client gets, at its own pace, the messages whose topic matches
// its ?topic= filters, and a late joiner first gets the newest retained
// ones (ServerOpts.Replay). A Message with a Session is a reply: it goes to
// that one client only. Frames the clients send reach ServerOpts.OnMessage
// with their session (the websocket-in pairing). A Client dials out to a
// ws:// or wss:// URL (client mode) and sends every published message,
// reconnecting with back-off. The engine that writes to the clients is in
// broadcast/internal/fanout; its package doc has the internals.
//
// # Messages
//
// Payload []byte goes out as a binary frame, a string as text as is, anything
// else as JSON text (RawJSON as it is); an empty payload is not sent. With
// WholeMsg the frame is {"topic":..,"payload":..,"_msgid":..} (never the
// session). A Live message skips late joiners' replay.
//
// # Sessions
//
// Every client gets a session id when it connects, 16 lower-case hex
// digits like the id Node-RED's websocket nodes give a client (its
// _session is {"type":"websocket","id":<id>}). A Message with Session
// reaches that client only; one for a client that has gone is dropped
// and counted (ServerStats.RepliesDropped), never broadcast. ClientList
// names the connected clients and their sessions.
//
// # Concurrency
//
// Server: Publish, PublishRetained, History, Clients, ClientList,
// HasSession, Reach, Stats, Progress and Close are safe from any number
// of goroutines; neither publish waits for a client (PublishRetained only
// for other PublishRetained calls and joining clients' look at the
// retained messages). ServeHTTP is
// called by net/http. OnMessage runs on the sending client's reader
// goroutine and OnEvent on the client's own goroutines: neither may block
// for long; both may call Publish (that is how a reply is sent).
// Client: Publish and State are safe from any goroutine; Run is called
// once and owns the connection; OnState runs on Run's goroutine, OnMessage
// on the reader's. A Budget is safe from any goroutine: share one between
// the servers of a process.
package broadcast
