package dht22

import (
	"errors"
	"fmt"
	"math/bits"
	"time"

	"sensord/sensor"
)

// Edge is one level change of the data line, as a capture saw it.
type Edge struct {
	// T is when the edge was seen on some monotonic clock; only the
	// differences between edges of one frame matter.
	T time.Duration
	// Slack is how much earlier than T the edge may have happened: zero for
	// kernel timestamps, the time since the previous sample for a busy loop
	// (longer when its thread lost the CPU).
	Slack time.Duration
	// Rising is true when the line went from low to high.
	Rising bool
}

// Frame is the 5 bytes of one transmission, in wire order: humidity high and
// low byte, temperature high and low byte, checksum.
type Frame [5]byte

// Decoder limits. They are wide on purpose: the bit threshold is learnt from
// each frame (see DecodeFrame), these only reject nonsense.
const (
	// maxEdges bounds the decoder's stack buffer. A clean frame has 84
	// edges; 128 leaves room for glitches and the release.
	maxEdges = 128
	// glitchMax: a pulse shorter than this is noise, not protocol; the
	// shortest protocol pulse is a 0 bit's ~26 µs high.
	glitchMax = 5 * time.Microsecond
	// thresholdMin and thresholdMax bound the learnt 0/1 cut. The nominal
	// cut is ~49 µs (the Linux dht11 driver's fixed value); the bounds let a
	// sensor whose clock runs up to ~30 % slow or fast still decode.
	thresholdMin = 30 * time.Microsecond
	thresholdMax = 70 * time.Microsecond
	// lowClampMin and lowClampMax keep one stretched low (a preempted busy
	// loop) from dragging the clock estimate far.
	lowClampMin = 20 * time.Microsecond
	lowClampMax = 100 * time.Microsecond
)

// Measuring range of the DHT22 in tenths, from its datasheet.
const (
	MinTemperature sensor.Deci = -400 // -40.0 °C
	MaxTemperature sensor.Deci = 800  // 80.0 °C
	MinHumidity    sensor.Deci = 0    // 0.0 %RH
	MaxHumidity    sensor.Deci = 1000 // 100.0 %RH
)

// dhtError is an error of this package that errors.Is matches against one of
// the sensor package's kinds while its text stays short.
type dhtError struct {
	kind error
	msg  string
	// lost marks a frame the capture lost its timing for: it also matches
	// ErrLostTiming.
	lost bool
}

func (e *dhtError) Error() string { return "dht22: " + e.msg }
func (e *dhtError) Unwrap() error { return e.kind }
func (e *dhtError) Is(target error) bool {
	return e.lost && target == ErrLostTiming
}

// ErrLostTiming matches (besides sensor.ErrTimeout) a read whose capture
// lost the CPU for long enough to blur a bit: the host's trouble, not the
// sensor's or the wiring's.
var ErrLostTiming = errors.New("dht22: the capture lost its timing")

func errorf(kind error, format string, args ...any) error {
	return &dhtError{kind: kind, msg: fmt.Sprintf(format, args...)}
}

// DecodeFrame turns the edges of one transmission into its 5 bytes. It is
// pure and does not allocate unless it returns an error.
//
// The steps:
//
//  1. Edges in the same direction as the previous one are dropped (an edge
//     in between was lost), and any pulse shorter than 5 µs is a glitch: its
//     two edges are removed, merging it into the surrounding level.
//  2. Every complete high pulse (rising then falling edge) is a candidate.
//     The last 40 are the data bits. The high pulse before them must be the
//     sensor's ~80 µs preamble; when it was not captured (the capture was
//     armed late and missed the first edges), the first bit's ~50 µs low
//     must have been, so a frame that lost its tail is never shifted by one.
//  3. The 0/1 cut is learnt from the frame itself: first the mean of the 40
//     bit lows (~50 µs on the sensor's own clock, so a slow or fast sensor
//     scales with it), then refined to the midpoint between the mean 0 and
//     the mean 1 high, and kept within 30..70 µs.
//
// An edge with Slack is placed in the middle of its window. A bit whose high
// width, within the slack of its two edges, could fall on either side of the
// cut is not guessed: the frame fails with an error wrapping
// sensor.ErrTimeout (the capture lost its timing), because the checksum does
// not catch two errors that cancel out.
//
// Errors wrap sensor.ErrShortFrame when fewer than 40 bits or no start of
// frame are found. DecodeFrame does not check the checksum: see Frame.Check.
func DecodeFrame(edges []Edge) (Frame, error) {
	if len(edges) > maxEdges {
		// The frame is at the end of a long capture.
		edges = edges[len(edges)-maxEdges:]
	}
	// Step 1: alternate and de-glitch into ts; lvl0 is the direction of
	// ts[0], every later edge alternates.
	var ts, sl [maxEdges]time.Duration // time (window middle), slack
	k := 0
	lvl0 := false
	for _, e := range edges {
		if k > 0 {
			if lastRising := ((k-1)%2 == 0) == lvl0; e.Rising == lastRising {
				continue // an edge in between was lost; keep the earlier one
			}
		} else {
			lvl0 = e.Rising
		}
		ts[k], sl[k] = e.T-e.Slack/2, e.Slack
		if k > 0 && ts[k] < ts[k-1] {
			return Frame{}, errorf(sensor.ErrShortFrame, "edges out of order at %v", e.T)
		}
		k++
		if k >= 2 && ts[k-1]-ts[k-2] < glitchMax {
			k -= 2 // drop both edges of the glitch
		}
	}
	// Step 2: the complete high pulses are the rising edges followed by a
	// falling one. r is the index in ts of the last one's rising edge; bit j
	// rises at r-2*(39-j), the pulse before bit 0 rises at r-80.
	r := k - 2
	if r >= 0 && (r%2 == 0) != lvl0 {
		r-- // ts ends with a rising edge (the sensor's release)
	}
	nh := 0
	if r >= 0 {
		nh = r/2 + 1
	}
	if nh < 40 {
		return Frame{}, errorf(sensor.ErrShortFrame, "%d high pulses, 40 bits needed", nh)
	}
	first := r - 78 // bit 0's rising edge
	high := func(j int) time.Duration { i := first + 2*j; return ts[i+1] - ts[i] }
	low := func(j int) time.Duration { i := first + 2*j; return ts[i] - ts[i-1] }
	if first == 0 {
		return Frame{}, errorf(sensor.ErrShortFrame, "no start of frame before the 40 bits")
	}

	// Step 3: learn the cut.
	var sumLow time.Duration
	for j := range 40 {
		sumLow += min(max(low(j), lowClampMin), lowClampMax)
	}
	ref := sumLow / 40
	if first == 1 {
		// Without a preamble, bit 0's low must be a bit low (~50 µs), not
		// the ~80 µs response low: otherwise the frame's last bit is
		// missing and everything would shift by one.
		if rest := (sumLow - min(max(low(0), lowClampMin), lowClampMax)) / 39; low(0) > rest*13/10 {
			return Frame{}, errorf(sensor.ErrShortFrame, "frame ends early (%d of 40 bits)", 39)
		}
	}
	// A high pulse lost between two samples (a busy loop that lost the CPU
	// for longer than the pulse) merges two lows into one of ~126 µs; a lost
	// low merges two highs. Neither fits a frame, whatever the bit count.
	for j := range 40 {
		i := first + 2*j
		if lo := low(j) - (sl[i]+sl[i-1])/2; lo > 2*ref {
			return Frame{}, errorf(sensor.ErrShortFrame, "a pulse was lost before bit %d (low of %v)", j, low(j))
		}
	}
	thr := min(max(ref, thresholdMin), thresholdMax)
	var sum0, sum1 time.Duration
	var n0, n1 int
	for j := range 40 {
		if h := high(j); h >= thr {
			sum1 += h
			n1++
		} else {
			sum0 += h
			n0++
		}
	}
	if n0 > 0 && n1 > 0 {
		// Two estimates of the cut: the midpoint of the mean 0 and mean 1
		// highs, and 0.96 × the mean bit low (the datasheet's 26/70 µs
		// highs against 50 µs lows put the cut at 48/50). The first is
		// noisy when one kind of bit is rare (a mean of 3 ones), the second
		// is a mean of 40 lows; each is weighted by the inverse of its
		// variance for equal per-edge jitter: (1/n0 + 1/n1)/4 and 0.96²/40.
		mid := (sum0/time.Duration(n0) + sum1/time.Duration(n1)) / 2
		byLow := ref * 24 / 25
		wMid := 4 * n0 * n1 / (n0 + n1) // ∝ 1/((1/n0 + 1/n1)/4)
		const wLow = 43                 // ≈ 40/0.96²
		est := (mid*time.Duration(wMid) + byLow*wLow) / time.Duration(wMid+wLow)
		thr = min(max(est, thr*3/4, thresholdMin), thr*5/4, thresholdMax)
	}
	for j := range 40 {
		i := first + 2*j
		if hi := high(j) - (sl[i]+sl[i+1])/2; hi > 2*thr {
			return Frame{}, errorf(sensor.ErrShortFrame, "a pulse was lost in bit %d (high of %v)", j, high(j))
		}
	}
	if first >= 2 {
		// The pulse before the bits must be the ~80 µs preamble; a short
		// one is the line's rise at the release or a bit, so bits are
		// missing at the end.
		if pre := high(-1); pre < thr {
			return Frame{}, errorf(sensor.ErrShortFrame, "no preamble before the last 40 bits (high of %v)", pre)
		}
	}
	var word, amb uint64 // the 40 bits, and those slack leaves open
	for j := range 40 {
		h := high(j)
		word <<= 1
		amb <<= 1
		if h >= thr {
			word |= 1
		}
		if i := first + 2*j; sl[i] > 0 || sl[i+1] > 0 {
			if u := (sl[i] + sl[i+1]) / 2; h-u < thr && h+u >= thr {
				amb |= 1
			}
		}
	}
	if amb != 0 {
		// Never guess: the checksum cannot settle an open bit, because a
		// corrupted frame would then be "repaired" into a wrong value
		// whenever the open bit happens to cancel the corruption.
		err := errorf(sensor.ErrTimeout, "%d bits ambiguous, first bit %d (the capture lost the CPU)", bits.OnesCount64(amb), 39-(63-bits.LeadingZeros64(amb)))
		err.(*dhtError).lost = true
		return Frame{}, err
	}
	return frameOf(word), nil
}

// frameOf splits the low 40 bits of w into a frame, most significant first.
func frameOf(w uint64) Frame {
	return Frame{byte(w >> 32), byte(w >> 24), byte(w >> 16), byte(w >> 8), byte(w)}
}

// Encode builds the frame a DHT22 sends for t (tenths of °C) and h (tenths
// of %RH), checksum included. Values are clamped to what fits the wire
// format (15-bit magnitudes). The simulation and tests use it.
func Encode(t, h sensor.Deci) Frame {
	hu := uint16(min(max(h, 0), 0xffff))
	m := t
	if m < 0 {
		m = -m
	}
	tu := uint16(min(m, 0x7fff))
	if t < 0 {
		tu |= 0x8000
	}
	f := Frame{byte(hu >> 8), byte(hu), byte(tu >> 8), byte(tu)}
	f[4] = f.sum()
	return f
}

func (f Frame) sum() byte { return f[0] + f[1] + f[2] + f[3] }

// Humidity returns the frame's humidity in tenths of %RH, unchecked.
func (f Frame) Humidity() sensor.Deci { return sensor.Deci(uint16(f[0])<<8 | uint16(f[1])) }

// Temperature returns the frame's temperature in tenths of °C, unchecked.
// The wire format is sign and magnitude, not two's complement: bit 15 is the
// sign, so 0x8065 is -10.1 °C and 0x8001 is -0.1 °C.
func (f Frame) Temperature() sensor.Deci {
	m := sensor.Deci(uint16(f[2]&0x7f)<<8 | uint16(f[3]))
	if f[2]&0x80 != 0 {
		return -m
	}
	return m
}

// Check verifies the checksum (the low 8 bits of the sum of the first four
// bytes) and that both values are within the sensor's range. Errors wrap
// sensor.ErrChecksum or sensor.ErrOutOfRange.
func (f Frame) Check() error {
	if s := f.sum(); s != f[4] {
		return errorf(sensor.ErrChecksum, "checksum mismatch: %02x+%02x+%02x+%02x = %02x, frame says %02x", f[0], f[1], f[2], f[3], s, f[4])
	}
	if t := f.Temperature(); t < MinTemperature || t > MaxTemperature {
		return errorf(sensor.ErrOutOfRange, "temperature %s °C out of range", t)
	}
	if h := f.Humidity(); h < MinHumidity || h > MaxHumidity {
		return errorf(sensor.ErrOutOfRange, "humidity %s %%RH out of range", h)
	}
	return nil
}

// Decode is DecodeFrame followed by Frame.Check: edges in, validated
// temperature and humidity in tenths out.
func Decode(edges []Edge) (t, h sensor.Deci, err error) {
	f, err := DecodeFrame(edges)
	if err != nil {
		return 0, 0, err
	}
	if err := f.Check(); err != nil {
		return 0, 0, err
	}
	return f.Temperature(), f.Humidity(), nil
}
