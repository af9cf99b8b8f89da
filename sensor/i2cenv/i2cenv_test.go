package i2cenv_test

import (
	"context"
	"encoding/binary"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"periph.io/x/conn/v3/i2c/i2ctest"

	"sensord/sensor"
	"sensord/sensor/i2cenv"
)

// stamp is the timestamp every test reading carries.
var stamp = time.UnixMilli(1763856000123)

func fixedNow() time.Time { return stamp }

// errNACK stands for what Linux's i2c-dev returns when no chip acknowledges
// its address (EREMOTEIO).
var errNACK = errors.New("i2c: remote I/O error (NACK)")

// faultBus is periph's Playback with injected bus errors: Tx call number n
// (counting from 0, failed calls included) returns fail[n] and consumes no
// scripted op, as a NACK on real hardware transfers nothing.
type faultBus struct {
	i2ctest.Playback
	mu    sync.Mutex
	calls int
	fail  map[int]error
}

func (f *faultBus) Tx(addr uint16, w, r []byte) error {
	f.mu.Lock()
	n := f.calls
	f.calls++
	err, ok := f.fail[n]
	f.mu.Unlock()
	if ok {
		return err
	}
	return f.Playback.Tx(addr, w, r)
}

// newBus scripts ops. DontPanic makes a wrong or missing op an error: a
// panic would come from the goroutine inside Read and kill the test binary.
func newBus(ops []i2ctest.IO, fail map[int]error) *faultBus {
	return &faultBus{Playback: i2ctest.Playback{Ops: ops, DontPanic: true}, fail: fail}
}

// closeBus fails the test if a scripted op was not used.
func closeBus(t *testing.T, b *faultBus) {
	t.Helper()
	if err := b.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}

func readJSON(t *testing.T, d *i2cenv.Dev) string {
	t.Helper()
	r, err := d.Read(t.Context())
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	return string(r.AppendJSON(nil))
}

// readsAs opens chip on bus, reads once, and checks the reading's JSON,
// that Halt succeeds and that every scripted op was used.
func readsAs(t *testing.T, bus *faultBus, chip, want string) {
	t.Helper()
	d, err := i2cenv.New(bus, chip)
	if err != nil {
		t.Fatal(err)
	}
	d.Now = fixedNow
	if got := readJSON(t, d); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	if err := d.Halt(); err != nil {
		t.Errorf("Halt: %v", err)
	}
	closeBus(t, bus)
}

func TestChipsAndMinPeriod(t *testing.T) {
	want := map[string]time.Duration{"bme280": time.Second, "aht20": time.Second, "am2320": 2 * time.Second}
	chips := i2cenv.Chips()
	if len(chips) != len(want) {
		t.Fatalf("Chips() = %v, want the keys of %v", chips, want)
	}
	for _, c := range chips {
		if got := i2cenv.MinPeriod(c); got != want[c] {
			t.Errorf("MinPeriod(%q) = %v, want %v", c, got, want[c])
		}
	}
	if got := i2cenv.MinPeriod("dht22"); got != 0 {
		t.Errorf("MinPeriod(dht22) = %v, want 0", got)
	}
}

func TestNewRejectsUnknownChipAndNilBus(t *testing.T) {
	_, err := i2cenv.New(newBus(nil, nil), "sht31")
	if err == nil || !strings.HasPrefix(err.Error(), `i2cenv: unknown chip "sht31"`) {
		t.Errorf("unknown chip: err = %v", err)
	}
	_, err = i2cenv.New(nil, "aht20")
	if err == nil || !strings.HasPrefix(err.Error(), "i2cenv: aht20") {
		t.Errorf("nil bus: err = %v", err)
	}
}

// ---- BME280 -------------------------------------------------------------

// bmeCal is one set of trimming parameters. T1..T3 and P1..P9 are the BMP280
// datasheet's worked example (section 3.12); H1..H6 are typical BME280
// values. Only temperature and humidity are compensated here.
type bmeCal struct {
	t1                             uint16
	t2, t3                         int16
	p1                             uint16
	p2, p3, p4, p5, p6, p7, p8, p9 int16
	h1                             uint8
	h2                             int16
	h3                             uint8
	h4, h5                         int16
	h6                             int8
}

var cal = bmeCal{
	t1: 27504, t2: 26435, t3: -1000,
	p1: 36477, p2: -10685, p3: 3024, p4: 2855, p5: 140, p6: -7, p7: 15500, p8: -14600, p9: 6000,
	h1: 75, h2: 362, h3: 0, h4: 316, h5: 50, h6: 30,
}

// regs88 is the 26 bytes at 0x88..0xA1 (datasheet table 16): little-endian
// words T1..P9, one unused byte, H1.
func (c bmeCal) regs88() []byte {
	b := make([]byte, 0, 26)
	for _, v := range []uint16{c.t1, uint16(c.t2), uint16(c.t3), c.p1, uint16(c.p2), uint16(c.p3),
		uint16(c.p4), uint16(c.p5), uint16(c.p6), uint16(c.p7), uint16(c.p8), uint16(c.p9)} {
		b = binary.LittleEndian.AppendUint16(b, v)
	}
	return append(b, 0, c.h1)
}

// regsE1 is the 7 bytes at 0xE1..0xE7: H2 (LE), H3, then H4 and H5 as 12-bit
// values sharing 0xE5 (H4 = E4<<4 | E5[3:0], H5 = E6<<4 | E5[7:4]), H6.
func (c bmeCal) regsE1() []byte {
	return []byte{byte(c.h2), byte(c.h2 >> 8), c.h3,
		byte(c.h4 >> 4), byte(c.h4&0xf) | byte(c.h5&0xf)<<4, byte(c.h5 >> 4), byte(c.h6)}
}

// compensate is the datasheet's 32-bit integer compensation (section 4.2.3),
// written from the datasheet independently of periph: centi-degrees Celsius
// and %RH in Q22.10. It proves the fixtures below mean what they say.
func (c bmeCal) compensate(adcT, adcH int32) (centiC int32, q10RH uint32) {
	v1 := (((adcT >> 3) - int32(c.t1)<<1) * int32(c.t2)) >> 11
	d := (adcT >> 4) - int32(c.t1)
	v2 := (((d * d) >> 12) * int32(c.t3)) >> 14
	tFine := v1 + v2
	centiC = (tFine*5 + 128) >> 8

	x := tFine - 76800
	x = (((adcH << 14) - int32(c.h4)<<20 - int32(c.h5)*x) + 16384) >> 15 *
		(((((((x*int32(c.h6))>>10)*(((x*int32(c.h3))>>11)+32768))>>10)+2097152)*int32(c.h2) + 8192) >> 14)
	x -= ((((x >> 15) * (x >> 15)) >> 7) * int32(c.h1)) >> 4
	x = min(max(x, 0), 419430400)
	return centiC, uint32(x >> 12)
}

// bmeData is the burst read at 0xF7..0xFE: pressure (skipped: 0x80000),
// temperature (20 bits), humidity (16 bits).
func bmeData(adcT, adcH int32) []byte {
	return []byte{0x80, 0x00, 0x00,
		byte(adcT >> 12), byte(adcT >> 4), byte(adcT<<4) & 0xf0,
		byte(adcH >> 8), byte(adcH)}
}

// bmeInit is New's traffic for a BME280 at addr with our settings
// (osrs_t=1x, osrs_p=skip, osrs_h=1x, filter off).
func bmeInit(addr uint16) []i2ctest.IO {
	return []i2ctest.IO{
		{Addr: addr, W: []byte{0xD0}, R: []byte{0x60}}, // chip id: BME280
		{Addr: addr, W: []byte{0x88}, R: cal.regs88()},
		{Addr: addr, W: []byte{0xE1}, R: cal.regsE1()},
		// ctrl_meas sleep (osrs_t=001, osrs_p=000), ctrl_hum osrs_h=001,
		// config t_sb=1 s filter off, ctrl_meas again (written last).
		{Addr: addr, W: []byte{0xF4, 0x20, 0xF2, 0x01, 0xF5, 0xA0, 0xF4, 0x20}},
	}
}

// bmeSense is one forced-mode measurement.
func bmeSense(addr uint16, adcT, adcH int32) []i2ctest.IO {
	return []i2ctest.IO{
		{Addr: addr, W: []byte{0xF4, 0x21}},            // ctrl_meas: forced
		{Addr: addr, W: []byte{0xF3}, R: []byte{0x00}}, // status: not measuring
		{Addr: addr, W: []byte{0xF7}, R: bmeData(adcT, adcH)},
	}
}

func TestBME280(t *testing.T) {
	tests := []struct {
		name       string
		adcT, adcH int32
		centiC     int32  // the datasheet formula's result for adcT
		q10RH      uint32 // and for adcH
		want       string
	}{
		{
			name: "21.42 C and 48.21 %RH publish as 21.4 and 48.2",
			adcT: 508192, adcH: 28986, centiC: 2142, q10RH: 49368,
			want: `{"type":"sensor_update","temperature":21.4,"humidity":48.2,"timestamp":1763856000123}`,
		},
		{
			name: "-5.15 C rounds away from zero to -5.2",
			adcT: 423720, adcH: 35601, centiC: -515, q10RH: 83661,
			want: `{"type":"sensor_update","temperature":-5.2,"humidity":81.7,"timestamp":1763856000123}`,
		},
		{
			name: "21.45 C rounds up to 21.5",
			adcT: 508288, adcH: 28984, centiC: 2145, q10RH: 49360,
			want: `{"type":"sensor_update","temperature":21.5,"humidity":48.2,"timestamp":1763856000123}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if c, h := cal.compensate(tt.adcT, tt.adcH); c != tt.centiC || h != tt.q10RH {
				t.Fatalf("fixture: datasheet formula gives %d centi-C, %d/1024 %%RH; want %d, %d", c, h, tt.centiC, tt.q10RH)
			}
			bus := newBus(append(bmeInit(0x76), bmeSense(0x76, tt.adcT, tt.adcH)...), nil)
			readsAs(t, bus, "bme280", tt.want)
		})
	}
}

func TestBME280FoundAt0x77WhenNothingAnswersAt0x76(t *testing.T) {
	bus := newBus(append(bmeInit(0x77), bmeSense(0x77, 508192, 28986)...), map[int]error{0: errNACK})
	d, err := i2cenv.New(bus, "bme280")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := d.String(), "bme280 at 0x77 on playback"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	d.Now = fixedNow
	if got, want := readJSON(t, d), `{"type":"sensor_update","temperature":21.4,"humidity":48.2,"timestamp":1763856000123}`; got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	closeBus(t, bus)
}

func TestBME280NewNamesBothAddressesWhenNoChipAnswers(t *testing.T) {
	bus := newBus(nil, map[int]error{0: errNACK, 1: errNACK})
	_, err := i2cenv.New(bus, "bme280")
	if err == nil {
		t.Fatal("New succeeded on an empty bus")
	}
	msg := err.Error()
	for _, s := range []string{"i2cenv: bme280 at 0x76: ", "at 0x77: ", errNACK.Error()} {
		if !strings.Contains(msg, s) {
			t.Errorf("error %q does not contain %q", msg, s)
		}
	}
	if strings.Contains(msg, "\n") || strings.Contains(msg, ": :") {
		t.Errorf("error %q spans lines or has an empty part", msg)
	}
	closeBus(t, bus)
}

func TestBME280RejectsBMP280(t *testing.T) {
	ops := []i2ctest.IO{
		{Addr: 0x76, W: []byte{0xD0}, R: []byte{0x58}}, // chip id: BMP280
		{Addr: 0x76, W: []byte{0x88}, R: cal.regs88()},
		{Addr: 0x76, W: []byte{0xF4, 0x20, 0xF5, 0xA0, 0xF4, 0x20}}, // no ctrl_hum on a BMP280
	}
	bus := newBus(ops, map[int]error{3: errNACK}) // nothing at 0x77
	_, err := i2cenv.New(bus, "bme280")
	if err == nil || !strings.Contains(err.Error(), "i2cenv: bme280 at 0x76: found a BMP280, which has no humidity sensor") {
		t.Errorf("err = %v", err)
	}
	closeBus(t, bus)
}

func TestBME280BusErrorDuringRead(t *testing.T) {
	ops := append(bmeInit(0x76), bmeSense(0x76, 508192, 28986)...)
	bus := newBus(ops, map[int]error{4: errNACK}) // the forced-mode write
	d, err := i2cenv.New(bus, "bme280")
	if err != nil {
		t.Fatal(err)
	}
	_, err = d.Read(t.Context())
	if err == nil || !strings.HasPrefix(err.Error(), "i2cenv: bme280 at 0x76: ") || !strings.Contains(err.Error(), errNACK.Error()) {
		t.Fatalf("err = %v", err)
	}
	if got := sensor.ErrorKind(err); got != "other" {
		t.Errorf("Kind = %q, want other", got)
	}
	// The bus recovers: the next read goes through.
	d.Now = fixedNow
	if got := readJSON(t, d); !strings.Contains(got, `"temperature":21.4`) {
		t.Errorf("second read: %s", got)
	}
	closeBus(t, bus)
}

// ---- AHT20 --------------------------------------------------------------

// crc8 is the AHT20 datasheet's CRC: polynomial x^8+x^5+x^4+1, init 0xFF.
func crc8(b []byte) byte {
	c := byte(0xff)
	for _, v := range b {
		c ^= v
		for range 8 {
			if c&0x80 != 0 {
				c = c<<1 ^ 0x31
			} else {
				c <<= 1
			}
		}
	}
	return c
}

// ahtFrame is the 7-byte answer to a read: status, 20 bits humidity, 20 bits
// temperature, CRC. RH = raw/2^20*100 %, T = raw/2^20*200 - 50 °C.
func ahtFrame(status byte, rawH, rawT uint32) []byte {
	b := []byte{status, byte(rawH >> 12), byte(rawH >> 4), byte(rawH<<4) | byte(rawT>>16)&0xf, byte(rawT >> 8), byte(rawT)}
	return append(b, crc8(b))
}

const ahtAddr = 0x38

var (
	ahtStatusCalibrated = i2ctest.IO{Addr: ahtAddr, W: []byte{0x71}, R: []byte{0x18}}
	ahtTrigger          = i2ctest.IO{Addr: ahtAddr, W: []byte{0xAC, 0x33, 0x00}}
)

func ahtRead(frame []byte) i2ctest.IO { return i2ctest.IO{Addr: ahtAddr, R: frame} }

func TestAHT20(t *testing.T) {
	tests := []struct {
		name string
		ops  []i2ctest.IO
		want string
	}{
		{
			// 373293 -> 21.199989 C (truncation would say 21.1),
			// 505414 -> 48.200035 %RH.
			name: "21.199989 C and 48.200035 %RH publish as 21.2 and 48.2",
			ops:  []i2ctest.IO{ahtStatusCalibrated, ahtTrigger, ahtRead(ahtFrame(0x18, 505414, 373293))},
			want: `{"type":"sensor_update","temperature":21.2,"humidity":48.2,"timestamp":1763856000123}`,
		},
		{
			// 209192 -> -10.099792 C: truncating towards zero would say -10.0.
			name: "-10.099792 C rounds to -10.1, not -10.0",
			ops:  []i2ctest.IO{ahtStatusCalibrated, ahtTrigger, ahtRead(ahtFrame(0x18, 505414, 209192))},
			want: `{"type":"sensor_update","temperature":-10.1,"humidity":48.2,"timestamp":1763856000123}`,
		},
		{
			name: "an uncalibrated chip is initialised, and a busy chip is polled again",
			ops: []i2ctest.IO{
				{Addr: ahtAddr, W: []byte{0x71}, R: []byte{0x10}}, // CAL bit clear
				{Addr: ahtAddr, W: []byte{0xBE, 0x08, 0x00}},      // initialise
				ahtTrigger,
				ahtRead(ahtFrame(0x98, 0, 0)), // busy
				ahtRead(ahtFrame(0x18, 505414, 373293)),
			},
			want: `{"type":"sensor_update","temperature":21.2,"humidity":48.2,"timestamp":1763856000123}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bus := newBus(tt.ops, nil)
			readsAs(t, bus, "aht20", tt.want)
		})
	}
}

func TestAHT20CorruptFrameIsAChecksumError(t *testing.T) {
	frame := ahtFrame(0x18, 505414, 373293)
	frame[2] ^= 0x01
	bus := newBus([]i2ctest.IO{ahtStatusCalibrated, ahtTrigger, ahtRead(frame)}, nil)
	d, err := i2cenv.New(bus, "aht20")
	if err != nil {
		t.Fatal(err)
	}
	_, err = d.Read(t.Context())
	if !errors.Is(err, sensor.ErrChecksum) || !strings.HasPrefix(err.Error(), "i2cenv: aht20 at 0x38: ") {
		t.Errorf("err = %v, want sensor.ErrChecksum with the chip and address", err)
	}
	closeBus(t, bus)
}

func TestAHT20BusErrors(t *testing.T) {
	t.Run("New reports a chip that does not answer", func(t *testing.T) {
		bus := newBus(nil, map[int]error{0: errNACK})
		_, err := i2cenv.New(bus, "aht20")
		if err == nil || !strings.HasPrefix(err.Error(), "i2cenv: aht20 at 0x38: ") || !errors.Is(err, errNACK) {
			t.Errorf("err = %v", err)
		}
		closeBus(t, bus)
	})
	t.Run("Read reports a failed trigger", func(t *testing.T) {
		bus := newBus([]i2ctest.IO{ahtStatusCalibrated}, map[int]error{1: errNACK})
		d, err := i2cenv.New(bus, "aht20")
		if err != nil {
			t.Fatal(err)
		}
		_, err = d.Read(t.Context())
		if !errors.Is(err, errNACK) || sensor.ErrorKind(err) != "other" {
			t.Errorf("err = %v (kind %q)", err, sensor.ErrorKind(err))
		}
		closeBus(t, bus)
	})
}

// ---- AM2320 -------------------------------------------------------------

// crc16 is the AM2320 datasheet's CRC (Modbus: polynomial 0xA001
// reflected, init 0xFFFF), sent low byte first.
func crc16(b []byte) uint16 {
	c := uint16(0xffff)
	for _, v := range b {
		c ^= uint16(v)
		for range 8 {
			if c&1 != 0 {
				c = c>>1 ^ 0xa001
			} else {
				c >>= 1
			}
		}
	}
	return c
}

const amAddr = 0x5c

var amWake = i2ctest.IO{Addr: amAddr, W: []byte{0x00}}

// amRead is the read of registers 0..3 (function 0x03, start 0, count 4) and
// its answer: function, count, RH hi/lo, T hi/lo, CRC lo/hi. T's bit 15 is
// the sign.
func amRead(rh, t uint16) i2ctest.IO {
	r := []byte{0x03, 0x04, byte(rh >> 8), byte(rh), byte(t >> 8), byte(t)}
	r = binary.LittleEndian.AppendUint16(r, crc16(r))
	return i2ctest.IO{Addr: amAddr, W: []byte{0x03, 0x00, 0x04}, R: r}
}

func TestAM2320(t *testing.T) {
	tests := []struct {
		name  string
		rh, t uint16
		want  string
	}{
		{"21.4 C and 48.2 %RH", 482, 214, `{"type":"sensor_update","temperature":21.4,"humidity":48.2,"timestamp":1763856000123}`},
		{"sign bit set: 0x8065 is -10.1 C", 650, 0x8065, `{"type":"sensor_update","temperature":-10.1,"humidity":65,"timestamp":1763856000123}`},
		{"sign bit set: 0x8001 is -0.1 C", 999, 0x8001, `{"type":"sensor_update","temperature":-0.1,"humidity":99.9,"timestamp":1763856000123}`},
		{"-40.0 C and 0 %RH, the bottom of the range", 0, 0x8190, `{"type":"sensor_update","temperature":-40,"humidity":0,"timestamp":1763856000123}`},
		{"80.0 C, the top of the range", 100, 800, `{"type":"sensor_update","temperature":80,"humidity":10,"timestamp":1763856000123}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bus := newBus([]i2ctest.IO{amWake, amRead(tt.rh, tt.t)}, nil)
			readsAs(t, bus, "am2320", tt.want)
		})
	}
}

func TestAM2320OutOfRange(t *testing.T) {
	tests := []struct {
		name  string
		rh, t uint16
		what  string
	}{
		{"80.1 C is above the measuring range", 400, 801, "temperature 80.1"},
		{"-40.1 C is below it", 400, 0x8191, "temperature -40.1"},
		{"100.0 %RH is above 99.9", 1000, 214, "humidity 100.0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bus := newBus([]i2ctest.IO{amWake, amRead(tt.rh, tt.t)}, nil)
			d, err := i2cenv.New(bus, "am2320")
			if err != nil {
				t.Fatal(err)
			}
			_, err = d.Read(t.Context())
			if !errors.Is(err, sensor.ErrOutOfRange) || !strings.Contains(err.Error(), tt.what) ||
				!strings.HasPrefix(err.Error(), "i2cenv: am2320 at 0x5c: ") {
				t.Errorf("err = %v, want sensor.ErrOutOfRange naming %q", err, tt.what)
			}
			closeBus(t, bus)
		})
	}
}

// The AM2320 sleeps and does not acknowledge the wake-up write; the driver
// tries again 100 ms later, when the chip is awake.
func TestAM2320WakeUpNACKIsRetried(t *testing.T) {
	bus := newBus([]i2ctest.IO{amWake, amRead(482, 214)}, map[int]error{0: errNACK})
	d, err := i2cenv.New(bus, "am2320")
	if err != nil {
		t.Fatal(err)
	}
	d.Now = fixedNow
	if got, want := readJSON(t, d), `{"type":"sensor_update","temperature":21.4,"humidity":48.2,"timestamp":1763856000123}`; got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	closeBus(t, bus)
}

// periph's am2320 sleeps 2 s after a corrupt frame before it tries again and
// takes no context. Read must still return at its deadline, and the next Read
// must wait for the abandoned one instead of sharing the bus with it.
func TestReadReturnsAtDeadlineWhileTheDriverRetries(t *testing.T) {
	bad := amRead(482, 214)
	bad.R = append([]byte(nil), bad.R...)
	bad.R[6] ^= 0xff // CRC
	bus := newBus([]i2ctest.IO{
		amWake, bad, amRead(482, 214), // the abandoned read: retried after 2 s
		amWake, amRead(483, 215), // the next read
	}, nil)
	d, err := i2cenv.New(bus, "am2320")
	if err != nil {
		t.Fatal(err)
	}
	d.Now = fixedNow

	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = d.Read(ctx)
	if took := time.Since(start); took > time.Second {
		t.Errorf("Read took %v after a 50ms deadline", took)
	}
	if !errors.Is(err, sensor.ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want sensor.ErrTimeout and context.DeadlineExceeded", err)
	}

	if got, want := readJSON(t, d), `{"type":"sensor_update","temperature":21.5,"humidity":48.3,"timestamp":1763856000123}`; got != want {
		t.Errorf("next read: got  %s\nwant %s", got, want)
	}
	if err := d.Halt(); err != nil {
		t.Errorf("Halt: %v", err)
	}
	closeBus(t, bus)
}

func TestReadWithCancelledContextTouchesNoBus(t *testing.T) {
	bus := newBus([]i2ctest.IO{amWake, amRead(482, 214)}, nil)
	d, err := i2cenv.New(bus, "am2320")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err = d.Read(ctx)
	if !errors.Is(err, context.Canceled) || errors.Is(err, sensor.ErrTimeout) {
		t.Errorf("err = %v, want context.Canceled and not a sensor timeout", err)
	}
	if bus.Count != 0 {
		t.Errorf("%d ops used, want 0", bus.Count)
	}
}
