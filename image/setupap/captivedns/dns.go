// Package captivedns is the setup access point's DNS responder: every
// name a phone looks up resolves to the Pi, so whatever page or
// connectivity check it opens reaches the setup page.
//
// It answers one question per query (RFC 1035 section 4): an A question
// (class IN or ANY type) gets the Pi's address, with TTL 0 (the answer
// is wrong once setup ends, so nothing may keep it); any other type gets
// an empty answer (NOERROR, so a phone falls back to IPv4); another
// opcode gets NOTIMP; a query that does not parse gets FORMERR when its
// header can carry it, else nothing. Nothing is ever looked up elsewhere.
//
// # Concurrency
//
// Serve reads and answers one datagram at a time on one goroutine, so the
// memory it takes is one buffer whatever arrives; Stats may be read from
// any goroutine.
package captivedns

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync/atomic"
	"time"
)

// DNS's limits and the responder's.
const (
	headerLen = 12
	// MaxQueryBytes is plain DNS over UDP's message limit (RFC 1035
	// 2.3.4); a longer datagram is refused (FORMERR), not read on.
	MaxQueryBytes = 512
	// maxNameBytes is a domain name's limit in wire form (RFC 1035 2.3.4).
	maxNameBytes = 255
	// readBuf is larger than MaxQueryBytes so an oversized datagram is
	// seen as such rather than silently cut.
	readBuf = 1500
	// writeWait bounds one answer's send.
	writeWait = time.Second
)

// DNS codes used here.
const (
	typeA    = 1
	typeANY  = 255
	classIN  = 1
	rcodeOK  = 0
	rcodeFmt = 1
	rcodeImp = 4
	flagQR   = 1 << 15
	flagAA   = 1 << 10
	flagRD   = 1 << 8
)

// ErrMalformed is wrapped by every parse error of a query.
var ErrMalformed = errors.New("captivedns: malformed query")

// Query is the part of a query the responder answers from.
type Query struct {
	ID     uint16
	Flags  uint16
	Opcode int
	// Question is the question section's bytes (name, type, class), as
	// the answer repeats them.
	Question []byte
	Type     uint16
	Class    uint16
}

// Parse parses a query message. A message that is a response (QR set) or
// asks other than exactly one question is malformed.
func Parse(b []byte) (Query, error) {
	if len(b) < headerLen {
		return Query{}, fmt.Errorf("%w: %d bytes, shorter than a header", ErrMalformed, len(b))
	}
	q := Query{ID: binary.BigEndian.Uint16(b), Flags: binary.BigEndian.Uint16(b[2:])}
	q.Opcode = int(q.Flags>>11) & 0xf
	if len(b) > MaxQueryBytes {
		return q, fmt.Errorf("%w: %d bytes, more than %d", ErrMalformed, len(b), MaxQueryBytes)
	}
	if q.Flags&flagQR != 0 {
		return q, fmt.Errorf("%w: a response, not a query", ErrMalformed)
	}
	if qd := binary.BigEndian.Uint16(b[4:]); qd != 1 {
		return q, fmt.Errorf("%w: %d questions, not 1", ErrMalformed, qd)
	}
	i := headerLen
	for {
		if i >= len(b) {
			return q, fmt.Errorf("%w: the name runs past the message", ErrMalformed)
		}
		n := int(b[i])
		if n&0xc0 != 0 {
			// A question's name comes first: nothing before it to point to.
			return q, fmt.Errorf("%w: a compressed or extended label in the question", ErrMalformed)
		}
		i += 1 + n
		if i-headerLen > maxNameBytes {
			return q, fmt.Errorf("%w: a name longer than %d bytes", ErrMalformed, maxNameBytes)
		}
		if n == 0 {
			break
		}
	}
	if i+4 > len(b) {
		return q, fmt.Errorf("%w: the question has no type and class", ErrMalformed)
	}
	q.Type = binary.BigEndian.Uint16(b[i:])
	q.Class = binary.BigEndian.Uint16(b[i+2:])
	q.Question = b[headerLen : i+4]
	return q, nil
}

// Stats counts what the responder did; safe from any goroutine.
type Stats struct {
	// Answered: queries answered with the Pi's address; Empty: answered
	// with no address (a type other than A); NotImp: another opcode.
	Answered, Empty, NotImp atomic.Uint64
	// Malformed: queries answered FORMERR; Dropped: datagrams too short
	// to answer at all.
	Malformed, Dropped atomic.Uint64
}

// Answer is the response to the query in b, appended to dst (nil when
// there is nothing to answer), with addr for an A question.
func Answer(dst, b []byte, addr netip.Addr, st *Stats) []byte {
	q, err := Parse(b)
	if err != nil {
		if len(b) < headerLen || q.Flags&flagQR != 0 {
			st.Dropped.Add(1) // too short to answer, or a response: never answer one
			return nil
		}
		st.Malformed.Add(1)
		return header(dst, q, rcodeFmt, 0, 0)
	}
	if q.Opcode != 0 {
		st.NotImp.Add(1)
		return header(dst, q, rcodeImp, 0, 0)
	}
	a4 := addr.As4()
	if q.Type != typeA && q.Type != typeANY || q.Class != classIN {
		st.Empty.Add(1)
		return append(header(dst, q, rcodeOK, 1, 0), q.Question...)
	}
	st.Answered.Add(1)
	out := append(header(dst, q, rcodeOK, 1, 1), q.Question...)
	// The answer: a pointer to the question's name, A, IN, TTL 0, 4 bytes.
	out = append(out, 0xc0, headerLen, 0, typeA, 0, classIN, 0, 0, 0, 0, 0, 4)
	return append(out, a4[:]...)
}

// header appends a response header for q with rcode and the counts.
func header(dst []byte, q Query, rcode int, qd, an uint16) []byte {
	flags := flagQR | flagAA | uint16(q.Opcode)<<11 | q.Flags&flagRD | uint16(rcode)
	dst = binary.BigEndian.AppendUint16(dst, q.ID)
	dst = binary.BigEndian.AppendUint16(dst, flags)
	dst = binary.BigEndian.AppendUint16(dst, qd)
	dst = binary.BigEndian.AppendUint16(dst, an)
	return append(dst, 0, 0, 0, 0)
}

// Serve answers the queries that arrive on conn with addr until ctx ends
// or conn fails; it closes conn when ctx ends.
func Serve(ctx context.Context, conn net.PacketConn, addr netip.Addr, st *Stats) error {
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	buf := make([]byte, readBuf)
	out := make([]byte, 0, readBuf)
	for {
		n, from, err := conn.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("captivedns: %w", err)
		}
		resp := Answer(out[:0], buf[:n], addr, st)
		if resp == nil {
			continue
		}
		_ = conn.SetWriteDeadline(time.Now().Add(writeWait))
		// A peer that is gone is its own problem: keep serving.
		_, _ = conn.WriteTo(resp, from)
	}
}
