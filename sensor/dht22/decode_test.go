package dht22

import (
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	"sensord/sensor"
)

const us = time.Microsecond

// waveOpts shapes a synthetic answer for the decoder tests; the zero value
// is the datasheet's nominal waveform as a perfect capture sees it.
type waveOpts struct {
	scale      float64 // sensor clock: 1.25 = 25 % slow
	jitter     time.Duration
	seed       uint64
	drop       int  // edges lost at the start (late arming)
	keep       int  // if > 0, only the first keep edges (a cut capture)
	release    bool // the capture saw the line rise at the release
	glitchLow  int  // 1+bit index: a 2 µs spike inside that bit's low
	glitchHigh int  // 1+bit index: a 2 µs dip inside that bit's high
	dup        int  // 1+edge index: that edge is reported twice
	// late: edge index (in the clean answer, 0 = the response's fall) ->
	// how late a busy loop saw it, reported as its Slack.
	late map[int]time.Duration
	lose int // 1+bit index: that bit's high pulse fell between two samples
}

// wave builds the edges a capture sees for frame f.
func wave(f Frame, o waveOpts) []Edge {
	if o.scale == 0 {
		o.scale = 1
	}
	rng := rand.New(rand.NewPCG(o.seed, 1))
	var out []Edge
	at := 1000 * us // an arbitrary clock origin
	if o.release {
		out = append(out, Edge{T: at, Rising: true})
	}
	rising := false
	add := func(d time.Duration) {
		at += time.Duration(float64(d) * o.scale)
		t := at
		if o.jitter > 0 {
			t += time.Duration(rng.Int64N(int64(2*o.jitter+1))) - o.jitter
		}
		out = append(out, Edge{T: t, Rising: rising})
		rising = !rising
	}
	add(30 * us)
	add(80 * us)
	add(80 * us)
	for i := range 40 {
		if o.glitchLow == i+1 {
			out = append(out, Edge{T: at + 20*us, Rising: true}, Edge{T: at + 22*us, Rising: false})
		}
		add(50 * us)
		hi := 26 * us
		if f[i/8]&(0x80>>(i%8)) != 0 {
			hi = 70 * us
		}
		if o.glitchHigh == i+1 {
			out = append(out, Edge{T: at + 10*us, Rising: false}, Edge{T: at + 12*us, Rising: true})
		}
		add(hi)
	}
	add(50 * us)
	for i, d := range o.late {
		out[i+b2i(o.release)].T += d
		out[i+b2i(o.release)].Slack = d + us/2
	}
	if o.lose > 0 {
		i := 3 + 2*(o.lose-1) + b2i(o.release)
		out = append(out[:i], out[i+2:]...)
	}
	if o.dup > 0 {
		e := out[o.dup-1]
		e.T += us
		out = append(out[:o.dup], append([]Edge{e}, out[o.dup:]...)...)
	}
	out = out[min(o.drop, len(out)):]
	if o.keep > 0 {
		out = out[:min(o.keep, len(out))]
	}
	return out
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// framed returns the frame with bytes a..d and their checksum.
func framed(a, b, c, d byte) Frame { return Frame{a, b, c, d, a + b + c + d} }

func TestDecode(t *testing.T) {
	tests := []struct {
		name    string
		frame   Frame
		o       waveOpts
		wantT   sensor.Deci
		wantH   sensor.Deci
		wantErr error
	}{
		{name: "a typical room reading decodes", frame: Encode(214, 482), wantT: 214, wantH: 482},
		{name: "all zeros is 0.0 °C and 0.0 %RH", frame: Frame{}, wantT: 0, wantH: 0},
		{name: "all ones fails the checksum", frame: Frame{0xff, 0xff, 0xff, 0xff, 0xff}, wantErr: sensor.ErrChecksum},
		{name: "0x8065 is -10.1 °C (sign and magnitude)", frame: framed(0x02, 0x8c, 0x80, 0x65), wantT: -101, wantH: 652},
		{name: "0x8001 is -0.1 °C", frame: framed(0x01, 0xc2, 0x80, 0x01), wantT: -1, wantH: 450},
		{name: "0x8000 is 0.0 °C, not -3276.8", frame: framed(0x01, 0xc2, 0x80, 0x00), wantT: 0, wantH: 450},
		{name: "-40.0 °C is the bottom of the range", frame: Encode(-400, 100), wantT: -400, wantH: 100},
		{name: "80.0 °C is the top of the range", frame: Encode(800, 100), wantT: 800, wantH: 100},
		{name: "0 %RH is valid", frame: Encode(200, 0), wantT: 200, wantH: 0},
		{name: "100 %RH is valid", frame: Encode(200, 1000), wantT: 200, wantH: 1000},
		{name: "the checksum wraps at 8 bits", frame: Encode(800, 1000), wantT: 800, wantH: 1000},
		{name: "a flipped bit fails the checksum", frame: func() Frame { f := Encode(214, 482); f[1] ^= 0x10; return f }(), wantErr: sensor.ErrChecksum},
		{name: "a flipped checksum bit fails the checksum", frame: func() Frame { f := Encode(214, 482); f[4] ^= 0x01; return f }(), wantErr: sensor.ErrChecksum},
		{name: "-40.1 °C is out of range", frame: Encode(-401, 500), wantErr: sensor.ErrOutOfRange},
		{name: "80.1 °C is out of range", frame: Encode(801, 500), wantErr: sensor.ErrOutOfRange},
		{name: "100.1 %RH is out of range", frame: Encode(200, 1001), wantErr: sensor.ErrOutOfRange},
		{name: "a frame of 20 bits is short", frame: Encode(214, 482), o: waveOpts{keep: 3 + 40}, wantErr: sensor.ErrShortFrame},
		{name: "no edges at all is a short frame", frame: Encode(214, 482), o: waveOpts{drop: 200}, wantErr: sensor.ErrShortFrame},
		{name: "a capture cut after 39 bits is short, not shifted", frame: Encode(214, 482), o: waveOpts{keep: 3 + 78 + 1}, wantErr: sensor.ErrShortFrame},
		{name: "a cut capture that saw the release is short, not shifted", frame: Encode(214, 482), o: waveOpts{release: true, keep: 4 + 78 + 1}, wantErr: sensor.ErrShortFrame},
		{name: "a missed first preamble edge still decodes", frame: Encode(-101, 652), o: waveOpts{drop: 1}, wantT: -101, wantH: 652},
		{name: "a missed preamble still decodes from bit 0's low", frame: Encode(-101, 652), o: waveOpts{drop: 2}, wantT: -101, wantH: 652},
		{name: "a capture that starts inside bit 0 is short", frame: Encode(-101, 652), o: waveOpts{drop: 3}, wantErr: sensor.ErrShortFrame},
		{name: "the line's rise at the release is ignored", frame: Encode(214, 482), o: waveOpts{release: true}, wantT: 214, wantH: 482},
		{name: "a glitch spike inside a low is filtered", frame: Encode(214, 482), o: waveOpts{glitchLow: 7}, wantT: 214, wantH: 482},
		{name: "a glitch dip inside a 1 bit's high is filtered", frame: Encode(-1, 999), o: waveOpts{glitchHigh: 17}, wantT: -1, wantH: 999},
		{name: "a doubled edge is dropped", frame: Encode(214, 482), o: waveOpts{dup: 20}, wantT: 214, wantH: 482},
		{name: "a sensor clock 25 % slow decodes", frame: Encode(235, 611), o: waveOpts{scale: 1.25}, wantT: 235, wantH: 611},
		{name: "a sensor clock 25 % fast decodes", frame: Encode(235, 611), o: waveOpts{scale: 0.75}, wantT: 235, wantH: 611},
		{name: "a slow clock with all zero bits decodes", frame: Frame{}, o: waveOpts{scale: 1.3}, wantT: 0, wantH: 0},
		{name: "10 µs jitter on every edge decodes", frame: Encode(-123, 777), o: waveOpts{jitter: 10 * us, seed: 3}, wantT: -123, wantH: 777},
		{name: "an edge seen late by a busy loop still decodes when its slack keeps the bit clear", frame: Encode(-101, 652), o: waveOpts{late: map[int]time.Duration{3 + 2*16: 20 * us}}, wantT: -101, wantH: 652},
		{name: "an ambiguous bit is never guessed", frame: Encode(-101, 652), o: waveOpts{late: map[int]time.Duration{3 + 2*16: 40 * us}}, wantErr: sensor.ErrTimeout},
		{name: "two ambiguous bits that would cancel in the checksum fail", frame: framed(0x01, 0x00, 0x00, 0xc8), o: waveOpts{late: map[int]time.Duration{3 + 2*7: 40 * us, 4 + 2*15: 40 * us}}, wantErr: sensor.ErrTimeout},
		{name: "a high pulse lost between two samples is a short frame", frame: Encode(214, 482), o: waveOpts{lose: 11, release: true}, wantErr: sensor.ErrShortFrame},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gotT, gotH, err := Decode(wave(tt.frame, tt.o))
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("err = %v", err)
			}
			if gotT != tt.wantT || gotH != tt.wantH {
				t.Errorf("got %s °C %s %%RH, want %s °C %s %%RH", gotT, gotH, tt.wantT, tt.wantH)
			}
		})
	}
}

func TestDecodeFrameBits(t *testing.T) {
	for _, f := range []Frame{{}, {0xff, 0xff, 0xff, 0xff, 0xff}, {0xaa, 0x55, 0x0f, 0xf0, 0x01}, {0x80, 0, 0, 0, 1}} {
		got, err := DecodeFrame(wave(f, waveOpts{}))
		if err != nil || got != f {
			t.Errorf("DecodeFrame(%x) = %x, %v", f, got, err)
		}
	}
}

func TestDecodeRejectsEdgesOutOfOrder(t *testing.T) {
	e := wave(Encode(1, 1), waveOpts{})
	e[10].T, e[11].T = e[11].T, e[10].T
	if _, err := DecodeFrame(e); !errors.Is(err, sensor.ErrShortFrame) {
		t.Errorf("err = %v, want a short frame", err)
	}
}

func TestDecodeSurvivesJitterAcrossValues(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	for i := range 2000 {
		tt := sensor.Deci(rng.IntN(1201) - 400)
		h := sensor.Deci(rng.IntN(1001))
		// ±10 µs per edge at the nominal clock, or ±5 µs with the clock
		// 20 % fast to 25 % slow: beyond that the widths of 0 and 1 overlap.
		o := waveOpts{jitter: 10 * us, seed: uint64(i)}
		if i%2 == 1 {
			o = waveOpts{jitter: 5 * us, seed: uint64(i), scale: 0.8 + 0.45*rng.Float64()}
		}
		gt, gh, err := Decode(wave(Encode(tt, h), o))
		if err != nil || gt != tt || gh != h {
			t.Fatalf("frame %d (%s °C %s %%RH, %+v): got %s %s, %v", i, tt, h, o, gt, gh, err)
		}
	}
}

func TestEncodeRoundTrip(t *testing.T) {
	for _, tc := range []struct{ t, h sensor.Deci }{{0, 0}, {-1, 1}, {-101, 652}, {-400, 0}, {800, 1000}, {214, 482}} {
		f := Encode(tc.t, tc.h)
		if err := f.Check(); err != nil || f.Temperature() != tc.t || f.Humidity() != tc.h {
			t.Errorf("Encode(%s, %s) = %x: %s %s %v", tc.t, tc.h, f, f.Temperature(), f.Humidity(), err)
		}
	}
}

func TestDecodeDoesNotAllocate(t *testing.T) {
	e := wave(Encode(-101, 652), waveOpts{jitter: 5 * us, release: true, glitchLow: 3})
	if n := testing.AllocsPerRun(100, func() { _, _, _ = Decode(e) }); n != 0 {
		t.Errorf("Decode allocates %v times per call", n)
	}
}

// fixedDecode is the baseline for the benchmark: the Linux dht11 driver's
// approach, a fixed 49 µs cut over the last 80 edges, no glitch handling.
func fixedDecode(e []Edge) (Frame, bool) {
	var f Frame
	if len(e) < 81 {
		return f, false
	}
	e = e[len(e)-81:]
	for i := range 40 {
		r, fl := e[2*i], e[2*i+1]
		if !r.Rising || fl.Rising {
			return f, false
		}
		f[i/8] <<= 1
		if fl.T-r.T >= 49*us {
			f[i/8] |= 1
		}
	}
	return f, true
}

func BenchmarkDecode(b *testing.B) {
	e := wave(Encode(-101, 652), waveOpts{jitter: 5 * us, seed: 1})
	b.Run("adaptive", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, _, err := Decode(e); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("baseline-fixed-49us", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, ok := fixedDecode(e); !ok {
				b.Fatal("baseline failed")
			}
		}
	})
}
