package dht22_test

import (
	"context"
	"fmt"

	"periph.io/x/conn/v3/physic"

	"sensord/sensor"
	"sensord/sensor/dht22"
	"sensord/sensor/dht22/dht22sim"
)

func ExampleDecode() {
	// The edges of an answer carrying 65.2 %RH and -10.1 °C, as a capture
	// would timestamp them.
	edges := dht22sim.Waveform(dht22.Frame{0x02, 0x8c, 0x80, 0x65, 0x73})
	t, h, err := dht22.Decode(edges)
	fmt.Println(len(edges), "edges:", t, "°C", h, "%RH", err)
	// Output: 84 edges: -10.1 °C 65.2 %RH <nil>
}

func ExampleDecodeFrame() {
	// The first two edges were lost while the line switched to input.
	edges := dht22sim.Waveform(dht22.Encode(214, 482))[2:]
	f, err := dht22.DecodeFrame(edges)
	fmt.Printf("% x %v %v\n", f[:], f.Check(), err)
	// Output: 01 e2 00 d6 b9 <nil> <nil>
}

func ExampleFrame_Temperature() {
	// Bit 15 is a sign, not two's complement.
	for _, f := range []dht22.Frame{{0, 0, 0x80, 0x65}, {0, 0, 0x80, 0x01}, {0, 0, 0x00, 0xd6}} {
		fmt.Println(f.Temperature())
	}
	// Output:
	// -10.1
	// -0.1
	// 21.4
}

func ExampleFrame_Check() {
	f := dht22.Encode(214, 482)
	f[1] ^= 0x04 // one bit flipped on the wire
	fmt.Println(f.Check())
	// Output: dht22: checksum mismatch: 01+e6+00+d6 = bd, frame says b9
}

func ExampleNewEdge() {
	// A simulated sensor behind a fake character-device line: the driver's
	// real capture and decode code reads it. On a Pi, package sensors hands
	// NewEdge the GPIO character device instead.
	t, h := sensor.Deci(-101), sensor.Deci(652)
	sim, err := dht22sim.New(dht22sim.Config{Temperature: &t, Humidity: &h})
	if err != nil {
		fmt.Println(err)
		return
	}
	dev, err := dht22.NewEdge(sim.EdgeLine("GPIO4"), nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	r, err := dev.Read(context.Background())
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(dev, r.Temperature, r.Humidity)
	// Output: DHT22{GPIO4(sim), edge-timestamps} -10.1 65.2
}

func ExampleDev_Sense() {
	t, h := sensor.Deci(-101), sensor.Deci(652)
	sim, _ := dht22sim.New(dht22sim.Config{Temperature: &t, Humidity: &h})
	dev, _ := dht22.NewEdge(sim.EdgeLine("GPIO4"), nil)
	var e physic.Env
	if err := dev.Sense(&e); err != nil {
		fmt.Println(err)
		return
	}
	// physic.Temperature counts from absolute zero: -10.1 °C is 263.05 K.
	fmt.Println(e.Temperature, e.Humidity, int64(e.Temperature-physic.ZeroCelsius)/int64(physic.MilliCelsius), "m°C")
	// Output: -10.100°C 65.2%rH -10100 m°C
}
