// Package mqtt is sensord's MQTT bridge: the broadcaster's output to, and
// input from, an MQTT broker (Mosquitto on a Pi or in Home Assistant, or a
// clustered broker for a fleet). It is a client of that broker, built on
// Eclipse Paho (MQTT 3.1.1).
//
// Out: each reading (a Publication) goes to <prefix>/<name>/<metric> as a
// plain number, and to <prefix>/<name>/state as the exact sensor_update
// JSON, retained, QoS 1. <prefix>/<name>/status says online (retained)
// while connected; the broker's last will turns it offline when the
// process dies or its network goes, and a clean stop publishes offline itself. With a discovery prefix,
// one retained Home Assistant discovery config for the device and all its
// entities goes to <discovery>/device/<device id>/config (or, in the
// entity form, one per entity to <discovery>/<platform>/<unique_id>/config),
// after Home Assistant's migrate_discovery hand-over from the other form,
// and again (after a short random delay, as Home Assistant asks) whenever
// <discovery>/status says online.
//
// While the broker is unreachable, readings wait in a bounded queue that
// drops the oldest (counted). On reconnect the newest reading goes out first
// on every topic, retained, so retained state is current at once; the older
// ones follow on the state topic only, not retained, oldest first (each
// carries its own timestamp), so they reach live subscribers without
// setting a retained value or a Home Assistant state back in time. With
// Opts.Backfill (a history of the readings), the ones the queue dropped
// follow the newest from there, the same way, at most BackfillRate a
// second; the bridge keeps the time up to which every reading is
// delivered, so a link lost halfway resumes without sending one twice.
// Reconnects back off exponentially with jitter, never faster than
// MinBackoff.
//
// In: every message matching the Subscribe filter reaches OnMessage as the
// dashboard hub's {"type":"mqtt",...} message, the shape the third reference
// flow's function node builds from Node-RED's mqtt-in node (a topic deeper
// than source and metric adds its whole topic, see HubMessage). The rate and
// size of what is passed on are bounded (MaxRate, MaxPayload) and what is
// refused is counted. The devices' control topics under the prefix, the
// command topic <prefix>/<name>/send and the client events
// <prefix>/<name>/client/..., are not passed on.
//
// Commands: with OnCommand, what arrives on the device's command topic
// (but retained messages) goes to it; PublishEvent sends the WebSocket
// clients' events to <prefix>/<name>/client/<event>, bounded in size,
// rate and number waiting (see commands.go).
//
// # Concurrency
//
// Publish, PublishEvent, State and Stats are safe from any goroutine and
// never wait for the network: Publish copies the reading into the queue
// under a mutex that no one holds across I/O, and wakes the bridge's
// goroutine. Run is called once and owns the broker connection; OnState,
// OnMessage and OnCommand are called from the bridge's and the client
// library's goroutines and must not block.
package mqtt
