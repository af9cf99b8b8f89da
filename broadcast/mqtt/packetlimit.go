package mqtt

import (
	"errors"
	"fmt"
	"io"
	"net"
)

// MaxPacket bounds an MQTT packet the bridge lets the client library read
// from the broker: the library (MQTT 3.1.1, which has no Maximum Packet
// Size) allocates a whole packet as soon as its header announces it, up to
// the protocol's 256 MiB. A reading, a discovery config or a dashboard
// message is far below 4 KiB (MaxPayload); 64 KiB leaves room for a
// broker's largest legitimate packets (a SUBACK of many filters) and is
// nothing on a 512 MB Pi.
const MaxPacket = 64 << 10

// ErrPacketTooLarge: the broker sent a packet over MaxPacket that cannot be
// skipped (anything but a QoS 0 PUBLISH); the connection is ended.
var ErrPacketTooLarge = errors.New("mqtt: packet from the broker over the size limit")

// errMalformedLength: a remaining length of more than four bytes.
var errMalformedLength = errors.New("mqtt: malformed packet length from the broker")

// Packet types and flags of the MQTT fixed header (MQTT 3.1.1, 2.2).
const (
	packetPublish = 3
	qosMask       = 0x06 // of a PUBLISH's first byte
	maxLenBytes   = 4    // of the remaining length
	limitBufSize  = 4096 // read from the socket at a time
)

// limitConn passes the broker's byte stream to the client library packet
// by packet, parsing each fixed header as it arrives: a header is held back
// until its remaining length is known; a packet within max then flows
// through as it comes; a QoS 0 PUBLISH over max is read and dropped in
// pieces without ever being whole in memory (the bridge subscribes at QoS
// 0, so every message the broker sends it is one, and nothing is owed for
// it), and counted by onSkip; any other packet over max ends the
// connection with ErrPacketTooLarge. Memory is its two buffers, whatever
// the broker sends.
//
// Reads belong to the client library's one reading goroutine; writes pass
// through untouched.
type limitConn struct {
	net.Conn
	max    int
	onSkip func(size int) // called once per dropped packet, as its header arrives

	raw  [limitBufSize]byte
	obuf [limitBufSize + maxLenBytes + 1]byte
	out  []byte // what the library gets next, within obuf
	err  error  // the socket's error, returned once out is drained

	hdr       [maxLenBytes + 1]byte // the fixed header being read
	nhdr      int
	remaining int  // of the current packet's body, after its header
	skip      bool // the current body is dropped, not passed on
}

func newLimitConn(c net.Conn, max int, onSkip func(int)) *limitConn {
	return &limitConn{Conn: c, max: max, onSkip: onSkip}
}

func (c *limitConn) Read(p []byte) (int, error) {
	for len(c.out) == 0 {
		if c.err != nil {
			return 0, c.err
		}
		n, err := c.Conn.Read(c.raw[:])
		c.out = c.obuf[:0]
		if perr := c.process(c.raw[:n]); perr != nil {
			c.err = perr
			c.Conn.Close()
			return 0, perr
		}
		if err != nil {
			c.err = err
		}
	}
	n := copy(p, c.out)
	c.out = c.out[n:]
	return n, nil
}

// process moves in's bytes through the header parser, appending what the
// library may see to c.out.
func (c *limitConn) process(in []byte) error {
	for len(in) > 0 {
		if c.remaining > 0 {
			n := min(c.remaining, len(in))
			if !c.skip {
				c.out = append(c.out, in[:n]...)
			}
			c.remaining -= n
			in = in[n:]
			continue
		}
		// A fixed header: the type byte, then the remaining length in
		// seven-bit groups, low first; the top bit says another follows.
		c.hdr[c.nhdr] = in[0]
		c.nhdr++
		in = in[1:]
		if c.nhdr == 1 || c.hdr[c.nhdr-1]&0x80 != 0 {
			if c.nhdr == len(c.hdr) {
				return errMalformedLength
			}
			continue
		}
		length, shift := 0, 0
		for _, b := range c.hdr[1:c.nhdr] {
			length |= int(b&0x7f) << shift
			shift += 7
		}
		first := c.hdr[0]
		c.remaining, c.skip = length, false
		if length > c.max {
			if first>>4 != packetPublish || first&qosMask != 0 {
				return fmt.Errorf("%w: a packet of type %d announcing %d bytes (at most %d)", ErrPacketTooLarge, first>>4, length, c.max)
			}
			c.skip = true
			if c.onSkip != nil {
				c.onSkip(length)
			}
		} else {
			c.out = append(c.out, c.hdr[:c.nhdr]...)
		}
		c.nhdr = 0
	}
	return nil
}

var _ io.Reader = (*limitConn)(nil)
