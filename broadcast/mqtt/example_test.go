package mqtt_test

import (
	"context"
	"fmt"
	"time"

	"sensord/broadcast/mqtt"
)

// A message from another Pi, as the dashboard hub gets it.
func ExampleNewHubMessage() {
	m := mqtt.NewHubMessage("sensors/kitchen/temperature", []byte("21.4"), time.UnixMilli(1763856000123))
	fmt.Println(string(m.AppendJSON(nil)))
	// Output: {"type":"mqtt","source":"kitchen","metric":"temperature","value":"21.4","timestamp":1763856000123}
}

// The broker URL as logs and /healthz show it: without the password.
func ExampleParseURL() {
	b, err := mqtt.ParseURL("mqtt://sensord:s3cret@homeassistant.local")
	if err != nil {
		panic(err)
	}
	fmt.Println(b, b.Username)
	fmt.Println(mqtt.Redact("mqtt://sensord:s3cret@homeassistant.local"))
	// Output:
	// mqtt://homeassistant.local:1883 sensord
	// mqtt://sensord:xxxxx@homeassistant.local
}

// A bridge publishing one reading; Run reconnects by itself until ctx ends.
func ExampleBridge() {
	b, err := mqtt.New(mqtt.Opts{
		URL:       "mqtt://homeassistant.local:1883",
		Name:      "kitchen",
		Discovery: "homeassistant",
		Period:    2 * time.Second,
		Device:    mqtt.Device{ID: "4413b9f7fd464c5e", Model: "DHT22", ConfigURL: "http://kitchen.local/"},
	})
	if err != nil {
		panic(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	go b.Run(ctx)
	b.Publish(mqtt.Publication{
		Values: []mqtt.Value{{Metric: "temperature", Value: "21.4"}, {Metric: "humidity", Value: "48.2"}},
		State:  []byte(`{"type":"sensor_update","temperature":21.4,"humidity":48.2,"timestamp":1763856000123}`),
		Time:   time.UnixMilli(1763856000123),
	})
	fmt.Println(b.Topic("temperature"))
}
