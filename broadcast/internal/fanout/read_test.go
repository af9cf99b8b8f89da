package fanout

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/gorilla/websocket"

	"sensord/broadcast/internal/wstest"
)

func TestFrameReaderAssemblesFragmentsAndInterleavedControlFrames(t *testing.T) {
	k := [4]byte{1, 2, 3, 4}
	var in []byte
	in = append(in, wstest.ClientFrame(false, opText, []byte("hel"), k)...)
	in = append(in, wstest.ClientFrame(true, opPing, []byte("p"), k)...) // may come between fragments
	in = append(in, wstest.ClientFrame(false, 0, []byte("lo "), k)...)
	in = append(in, wstest.ClientFrame(true, 0, []byte("world"), k)...)
	in = append(in, wstest.ClientFrame(true, opBinary, bytes.Repeat([]byte{7}, 300), k)...)
	in = append(in, wstest.ClientFrame(true, opClose, []byte{0x03, 0xE8}, k)...)
	fr := &frameReader{r: bytes.NewReader(in), limit: 1000, mem: unbounded{}}
	want := []struct {
		op byte
		p  string
	}{{opPing, "p"}, {opText, "hello world"}, {opBinary, string(bytes.Repeat([]byte{7}, 300))}, {opClose, "\x03\xe8"}}
	for i, w := range want {
		op, p, err := fr.next()
		if err != nil || op != w.op || string(p) != w.p {
			t.Fatalf("event %d: op %d payload %.20q err %v, want op %d %.20q", i, op, p, err, w.op, w.p)
		}
	}
	if _, _, err := fr.next(); !errors.Is(err, io.ErrUnexpectedEOF) && err != io.EOF {
		t.Fatalf("at the end: %v", err)
	}
}

func TestFrameReaderRejectsWhatRFC6455Forbids(t *testing.T) {
	k := [4]byte{9, 9, 9, 9}
	unmasked := []byte{0x81, 0x02, 'h', 'i'}
	for _, tc := range []struct {
		name string
		in   []byte
		code int
	}{
		{"an unmasked client frame", unmasked, websocket.CloseProtocolError},
		{"reserved bits", append([]byte{0xC1}, wstest.ClientFrame(true, opText, []byte("x"), k)[1:]...), websocket.CloseProtocolError},
		{"an unknown opcode", wstest.ClientFrame(true, 0x3, []byte("x"), k), websocket.CloseProtocolError},
		{"a fragmented ping", wstest.ClientFrame(false, opPing, nil, k), websocket.CloseProtocolError},
		{"a control frame over 125 bytes", wstest.ClientFrame(true, opPing, make([]byte, 126), k), websocket.CloseProtocolError},
		{"a continuation without a message", wstest.ClientFrame(true, 0, []byte("x"), k), websocket.CloseProtocolError},
		{"a new message inside a fragmented one", append(wstest.ClientFrame(false, opText, []byte("a"), k), wstest.ClientFrame(true, opText, []byte("b"), k)...), websocket.CloseProtocolError},
		{"text that is not UTF-8", wstest.ClientFrame(true, opText, []byte{0xff, 0xfe}, k), websocket.CloseInvalidFramePayloadData},
		{"a message over the limit", wstest.ClientFrame(true, opBinary, make([]byte, 11), k), websocket.CloseMessageTooBig},
		{"fragments over the limit together", append(wstest.ClientFrame(false, opBinary, make([]byte, 6), k), wstest.ClientFrame(true, 0, make([]byte, 6), k)...), websocket.CloseMessageTooBig},
		{"a one-byte close frame", wstest.ClientFrame(true, opClose, []byte{3}, k), websocket.CloseProtocolError},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fr := &frameReader{r: bytes.NewReader(tc.in), limit: 10, mem: unbounded{}}
			_, _, err := fr.next()
			if code, ok := isProtocol(err); !ok || code != tc.code {
				t.Fatalf("err = %v, want close code %d", err, tc.code)
			}
		})
	}
}

func TestCloseCodeEchoRules(t *testing.T) {
	for _, tc := range []struct {
		p    []byte
		code int
		bad  bool
	}{
		{nil, websocket.CloseNormalClosure, false},
		{[]byte{0x03, 0xE9}, 1001, false},
		{[]byte{0x0B, 0xB8, 'o', 'k'}, 3000, false},
		{[]byte{0x03, 0xED}, 0, true}, // 1005 may not be sent
		{[]byte{0x03, 0xE8, 0xff}, 0, true},
		{[]byte{0x00, 0x10}, 0, true},
	} {
		code, err := closeCode(tc.p)
		if (err != nil) != tc.bad || (!tc.bad && code != tc.code) {
			t.Errorf("closeCode(%v) = %d, %v; want %d bad=%v", tc.p, code, err, tc.code, tc.bad)
		}
	}
}

func FuzzFrameReader(f *testing.F) {
	k := [4]byte{1, 2, 3, 4}
	f.Add(wstest.ClientFrame(true, opText, []byte("hello"), k))
	f.Add(append(wstest.ClientFrame(false, opText, []byte("he"), k), wstest.ClientFrame(true, 0, []byte("llo"), k)...))
	f.Add(wstest.ClientFrame(true, opBinary, make([]byte, 200), k))
	f.Add(wstest.ClientFrame(true, opClose, []byte{3, 0xE8, 'b', 'y', 'e'}, k))
	f.Add([]byte{0x81, 0xFF, 0, 0, 0, 0, 0, 0, 0x10, 0})
	f.Add([]byte{0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4})
	f.Fuzz(func(t *testing.T, in []byte) {
		const limit = 512
		fr := &frameReader{r: bytes.NewReader(in), limit: limit, mem: unbounded{}}
		for range 1000 {
			op, p, err := fr.next()
			if err != nil {
				if code, ok := isProtocol(err); ok && code != websocket.CloseProtocolError && code != websocket.CloseInvalidFramePayloadData && code != websocket.CloseMessageTooBig {
					t.Fatalf("unexpected close code %d", code)
				}
				return
			}
			switch op {
			case opText, opBinary:
				if len(p) > limit {
					t.Fatalf("message of %d bytes over the %d limit", len(p), limit)
				}
			case opPing, opPong, opClose:
				if len(p) > 125 {
					t.Fatalf("control payload of %d bytes", len(p))
				}
			default:
				t.Fatalf("op %d returned", op)
			}
		}
	})
}

func FuzzFrameReaderRoundTrip(f *testing.F) {
	f.Add([]byte("hello world"), uint8(3), false)
	f.Add([]byte{0xff, 0, 1}, uint8(1), true)
	f.Fuzz(func(t *testing.T, msg []byte, pieces uint8, binary bool) {
		op := byte(opText)
		if binary {
			op = opBinary
		}
		// Split msg into fragments, masked with changing keys.
		n := int(pieces%8) + 1
		var in []byte
		for i := 0; i < n; i++ {
			lo, hi := len(msg)*i/n, len(msg)*(i+1)/n
			fop := op
			if i > 0 {
				fop = 0
			}
			in = append(in, wstest.ClientFrame(i == n-1, fop, msg[lo:hi], [4]byte{byte(i), 0x5a, byte(len(msg)), 7})...)
		}
		fr := &frameReader{r: bytes.NewReader(in), limit: 1 << 20, mem: unbounded{}}
		gotOp, got, err := fr.next()
		if !binary && !utf8Valid(msg) {
			if code, _ := isProtocol(err); code != websocket.CloseInvalidFramePayloadData {
				t.Fatalf("invalid UTF-8 text: err %v", err)
			}
			return
		}
		if err != nil || gotOp != op || !bytes.Equal(got, msg) {
			t.Fatalf("got op %d %q err %v, want op %d %q", gotOp, got, err, op, msg)
		}
	})
}

func utf8Valid(b []byte) bool { return strings.ToValidUTF8(string(b), "\uFFFD") == string(b) }
