// Package wstest builds WebSocket frames byte by byte, as a browser sends
// them, for the tests of the server's own frame reader: gorilla's client
// would never send the malformed, split or oversized frames those tests
// need.
package wstest

import "encoding/binary"

// ClientFrame builds one masked frame with opcode op (RFC 6455 section
// 5.2): fin set or not, the payload masked with key.
func ClientFrame(fin bool, op byte, payload []byte, key [4]byte) []byte {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	var b []byte
	n := len(payload)
	switch {
	case n <= 125:
		b = []byte{b0, 0x80 | byte(n)}
	case n <= 0xFFFF:
		b = []byte{b0, 0x80 | 126, byte(n >> 8), byte(n)}
	default:
		b = binary.BigEndian.AppendUint64([]byte{b0, 0x80 | 127}, uint64(n))
	}
	b = append(b, key[:]...)
	start := len(b)
	b = append(b, payload...)
	for i := range b[start:] {
		b[start+i] ^= key[i&3]
	}
	return b
}
