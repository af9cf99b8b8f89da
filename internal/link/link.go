// Package link is what every link of sensord's to another machine shares
// (client mode's connection to -url, the MQTT bridge's to its broker, the
// alert webhook) and what the sensor watch shares with them: the link's
// state as a typed word, the retry delay (Backoff), and the timing of the
// journal's "down, still down, back" lines (Outage, and Log over it).
//
// # Concurrency
//
// State and Backoff are values. A Log's methods may be called from any
// goroutine; an Outage belongs to its owner, who guards it.
package link

// State is a link's state, one word, as /healthz and the dashboard show it.
type State string

// The states a link may be in; each link uses those that fit it.
const (
	Connecting State = "connecting" // an attempt is under way
	Connected  State = "connected"  // the link works
	// BackingOff: the last attempt failed or the connection was lost,
	// and the link waits out its Backoff before the next (client mode).
	BackingOff State = "backoff"
	// Disconnected: the link is down and retries by itself (the MQTT
	// bridge, which says why in its reason).
	Disconnected State = "disconnected"
	Stopped      State = "stopped" // the link's owner stopped it
)
