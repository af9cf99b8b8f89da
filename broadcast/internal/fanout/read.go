package fanout

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"

	"github.com/gorilla/websocket"
)

// frameReader reads the frames a client sends (RFC 6455 section 5), after
// gorilla's Upgrader has done the handshake. We read them ourselves rather
// than through gorilla's Conn for two reasons:
//
//   - memory: it reads exactly the bytes of each frame, straight from the
//     socket, so an idle connection holds no read buffer, and the reader
//     goroutine waits in a shallow call chain that fits the smallest
//     goroutine stack (gorilla's NextReader path does not, and a stack that
//     has grown never shrinks back while it is that deep);
//   - one writer: gorilla's reader writes close frames itself on protocol
//     errors and over its read limit; ours only reports them, and the
//     connection's writes stay with their one owner (conn.claim).
//
// It is used by one goroutine (the connection's reader).
type frameReader struct {
	r     io.Reader
	limit int64  // largest message; over it: errTooBig
	mem   Memory // what msg's room is taken from
	held  int64  // bytes of msg's room taken from mem (release gives them back)

	hdr   [14]byte // one frame header: 2 bytes + 8 length + 4 mask
	msgOp byte     // opcode of the fragmented message in progress, 0: none
	msg   []byte   // its payload so far
}

// protocolError is a fault of the peer that closes the connection with
// code (1002 protocol error, 1007 bad data, 1009 too big).
type protocolError struct {
	code   int
	reason string
}

func (e *protocolError) Error() string {
	return fmt.Sprintf("fanout: client broke the protocol (%d): %s", e.code, e.reason)
}

var (
	errTooBig = &protocolError{websocket.CloseMessageTooBig, "message over the read limit"}
	errBusy   = &protocolError{websocket.CloseTryAgainLater, "server busy: its memory for incoming messages is in use"}
)

// FirstChunk is the room a reader makes for a message once its first
// payload bytes have arrived (they are awaited in the header's space).
// Memory follows the bytes received, not the length a header announces: a
// client that sends a header promising 64 KiB and then nothing costs
// nothing more. The room doubles each time it fills (up to what
// the message still needs), so a whole 64 KiB message takes 8 allocations
// and never more than twice the bytes that arrived.
const FirstChunk = 512

// next reads frames until it has one event: a whole data message (op is
// opText or opBinary; payload is the message), or one control frame (op is
// opPing, opPong or opClose; payload is the frame's, at most 125 bytes).
// The returned payload is the caller's.
func (fr *frameReader) next() (op byte, payload []byte, err error) {
	for {
		// An idle connection waits here, in as few frames as possible.
		if err := fr.fill(fr.hdr[:2]); err != nil {
			return 0, nil, err
		}
		fin, op, n, mask, err := fr.header()
		if err != nil {
			return 0, nil, err
		}
		if op >= 0x8 { // control frame
			if !fin || n > 125 {
				return 0, nil, &protocolError{websocket.CloseProtocolError, "fragmented or long control frame"}
			}
			p := make([]byte, n)
			if _, err := io.ReadFull(fr.r, p); err != nil {
				return 0, nil, err
			}
			unmask(p, mask)
			if op == opClose && n == 1 {
				return 0, nil, &protocolError{websocket.CloseProtocolError, "close frame of one byte"}
			}
			return op, p, nil
		}
		switch {
		case op == 0 && fr.msgOp == 0:
			return 0, nil, &protocolError{websocket.CloseProtocolError, "continuation without a message"}
		case op != 0 && fr.msgOp != 0:
			return 0, nil, &protocolError{websocket.CloseProtocolError, "new message inside a fragmented one"}
		case op != 0:
			fr.msgOp = op
			fr.msg = nil
		}
		have := int64(len(fr.msg))
		if n > fr.limit-have {
			return 0, nil, errTooBig
		}
		if err := fr.payload(have + n); err != nil {
			return 0, nil, err
		}
		unmask(fr.msg[have:], mask)
		if !fin {
			continue
		}
		op, p := fr.msgOp, fr.msg
		fr.msgOp, fr.msg = 0, nil
		if op == opText && !utf8.Valid(p) {
			return 0, nil, &protocolError{websocket.CloseInvalidFramePayloadData, "text message is not UTF-8"}
		}
		return op, p, nil
	}
}

// payload reads the message's bytes until it is end bytes long, growing
// its room only as bytes arrive (see FirstChunk), within mem.
func (fr *frameReader) payload(end int64) error {
	if cap(fr.msg) == 0 && end > 0 {
		// Wait for the first bytes in the header's space, which is free
		// now: a client that sends a header and then nothing costs no
		// allocation at all.
		n, err := fr.r.Read(fr.hdr[:min(end, int64(len(fr.hdr)))])
		if n > 0 {
			if err := fr.grow(end); err != nil {
				return err
			}
			fr.msg = append(fr.msg, fr.hdr[:n]...)
		}
		if err != nil && int64(n) < end {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
	}
	for int64(len(fr.msg)) < end {
		if len(fr.msg) == cap(fr.msg) {
			if err := fr.grow(end); err != nil {
				return err
			}
		}
		top := min(int64(cap(fr.msg)), end)
		n, err := fr.r.Read(fr.msg[len(fr.msg):top])
		fr.msg = fr.msg[:len(fr.msg)+n]
		if err != nil && int64(len(fr.msg)) < end {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
	}
	return nil
}

// grow doubles msg's room (at least FirstChunk, at most end bytes),
// taking the added bytes from mem: errBusy when it has none left.
func (fr *frameReader) grow(end int64) error {
	old := int64(cap(fr.msg))
	room := min(max(2*old, FirstChunk), end)
	if !fr.mem.Take(room - old) {
		return errBusy
	}
	fr.held += room - old
	m := make([]byte, len(fr.msg), room)
	copy(m, fr.msg)
	fr.msg = m
	return nil
}

// handled gives the room of the message next returned back to mem, once
// the caller is done with it. A control frame that arrived between the
// fragments of a message leaves that message's room held.
func (fr *frameReader) handled() {
	if fr.msgOp == 0 {
		fr.release()
	}
}

// release gives all the room back (the connection has ended, maybe with
// a message half read).
func (fr *frameReader) release() {
	if fr.held != 0 {
		fr.mem.Give(fr.held)
		fr.held = 0
	}
}

// fill reads exactly len(p) bytes (io.ReadFull in fewer stack frames).
//
//go:noinline
func (fr *frameReader) fill(p []byte) error {
	for len(p) > 0 {
		n, err := fr.r.Read(p)
		p = p[n:]
		if err != nil && len(p) > 0 {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
	}
	return nil
}

// header parses the frame header whose first two bytes are in fr.hdr and
// reads the rest of it. Client frames must be masked and carry no RSV bits
// (we negotiate no extensions).
func (fr *frameReader) header() (fin bool, op byte, n int64, mask [4]byte, err error) {
	h := fr.hdr[:]
	fin, op = h[0]&0x80 != 0, h[0]&0x0F
	if h[0]&0x70 != 0 {
		err = &protocolError{websocket.CloseProtocolError, "reserved bits set"}
		return
	}
	switch op {
	case 0, opText, opBinary, opClose, opPing, opPong:
	default:
		err = &protocolError{websocket.CloseProtocolError, fmt.Sprintf("unknown opcode %d", op)}
		return
	}
	if h[1]&0x80 == 0 {
		err = &protocolError{websocket.CloseProtocolError, "client frame not masked"}
		return
	}
	ext := 0
	switch n = int64(h[1] & 0x7F); n {
	case 126:
		ext = 2
	case 127:
		ext = 8
	}
	if err = fr.fill(h[2 : 2+ext+4]); err != nil {
		return
	}
	switch ext {
	case 2:
		n = int64(binary.BigEndian.Uint16(h[2:]))
	case 8:
		u := binary.BigEndian.Uint64(h[2:])
		if u > 1<<62 {
			err = &protocolError{websocket.CloseProtocolError, "frame length out of range"}
			return
		}
		n = int64(u)
	}
	copy(mask[:], h[2+ext:])
	return
}

// unmask XORs p with the frame's masking key (RFC 6455 section 5.3).
func unmask(p []byte, key [4]byte) {
	for i := range p {
		p[i] ^= key[i&3]
	}
}

// closeCode returns the code to echo for a received close frame payload,
// or a protocol error for a code a peer may not send (RFC 6455 7.4).
func closeCode(p []byte) (int, error) {
	if len(p) == 0 {
		return websocket.CloseNormalClosure, nil // no code: answer with 1000
	}
	code := int(binary.BigEndian.Uint16(p))
	switch {
	case code >= 1000 && code <= 1003, code >= 1007 && code <= 1014, code >= 3000 && code <= 4999:
	default:
		return 0, &protocolError{websocket.CloseProtocolError, fmt.Sprintf("bad close code %d", code)}
	}
	if !utf8.Valid(p[2:]) {
		return 0, &protocolError{websocket.CloseInvalidFramePayloadData, "close reason is not UTF-8"}
	}
	return code, nil
}

// isProtocol reports whether err is the peer's protocol fault, and its code.
func isProtocol(err error) (int, bool) {
	var pe *protocolError
	if errors.As(err, &pe) {
		return pe.code, true
	}
	return 0, false
}
