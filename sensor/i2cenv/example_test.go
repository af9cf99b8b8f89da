package i2cenv_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"periph.io/x/conn/v3/i2c/i2ctest"

	"sensord/sensor/i2cenv"
)

func Example() {
	// On a Pi the bus comes from periph's registry after host.Init():
	//
	//	bus, err := i2creg.Open("1")
	//
	// Here it is one recorded AM2320 read: the wake-up write, then function
	// 0x03 (read registers) from 0 for 4, answered with 48.2 %RH (0x01E2),
	// 21.4 °C (0x00D6) and the CRC.
	bus := &i2ctest.Playback{Ops: []i2ctest.IO{
		{Addr: 0x5c, W: []byte{0x00}},
		{Addr: 0x5c, W: []byte{0x03, 0x00, 0x04}, R: []byte{0x03, 0x04, 0x01, 0xE2, 0x00, 0xD6, 0xD1, 0xBC}},
	}}
	defer bus.Close()

	d, err := i2cenv.New(bus, "am2320")
	if err != nil {
		log.Fatal(err)
	}
	defer d.Halt()
	d.Now = func() time.Time { return time.UnixMilli(1763856000123) }

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := d.Read(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(d)
	fmt.Println(string(r.AppendJSON(nil)))
	fmt.Println("read at most every", i2cenv.MinPeriod("am2320"))
	// Output:
	// am2320 at 0x5c on playback
	// {"type":"sensor_update","temperature":21.4,"humidity":48.2,"timestamp":1763856000123}
	// read at most every 2s
}
