// Package fanout is the engine under package broadcast: it writes frames
// encoded once to thousands of WebSocket connections, replies to one of
// them, and reads what they send.
package fanout
