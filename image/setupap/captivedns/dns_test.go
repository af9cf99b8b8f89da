package captivedns

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"
)

var pi = netip.MustParseAddr("192.168.4.1")

// query builds a query for name and qtype as a stub resolver sends it.
func query(id uint16, name string, qtype uint16) []byte {
	b := []byte{byte(id >> 8), byte(id), 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0}
	for _, l := range strings.Split(strings.TrimSuffix(name, "."), ".") {
		b = append(b, byte(len(l)))
		b = append(b, l...)
	}
	b = append(b, 0)
	b = binary.BigEndian.AppendUint16(b, qtype)
	return binary.BigEndian.AppendUint16(b, classIN)
}

// serve runs Serve on a UDP socket of 127.0.0.1 for the test's life.
func serve(t *testing.T) (addr string, st *Stats) {
	t.Helper()
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	st = &Stats{}
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, conn, pi, st) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return conn.LocalAddr().String(), st
}

// TestEveryNameIsThePi: Go's own resolver, asking the responder over UDP,
// gets the Pi's address for the captive checks' names and any other.
func TestEveryNameIsThePi(t *testing.T) {
	addr, st := serve(t)
	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "udp", addr)
	}}
	for _, name := range []string{"connectivitycheck.gstatic.com", "captive.apple.com", "www.msftconnecttest.com", "example.org", "a.b.c.d.e.f"} {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			ips, err := r.LookupNetIP(ctx, "ip4", name)
			if err != nil {
				t.Fatal(err)
			}
			if len(ips) != 1 || ips[0] != pi {
				t.Errorf("got %v, want [%v]", ips, pi)
			}
		})
	}
	if st.Answered.Load() == 0 {
		t.Error("no query counted as answered")
	}
}

func TestAnswers(t *testing.T) {
	for _, tc := range []struct {
		name      string
		in        []byte
		wantNil   bool
		wantRcode int
		wantAn    int
	}{
		{name: "an A question is answered with the Pi's address", in: query(7, "captive.apple.com", typeA), wantAn: 1},
		{name: "an AAAA question gets an empty answer", in: query(7, "captive.apple.com", 28), wantAn: 0},
		{name: "a query too short for a header gets nothing", in: []byte{1, 2, 3}, wantNil: true},
		{name: "a response is never answered", in: func() []byte { b := query(1, "x.y", typeA); b[2] |= 0x80; return b }(), wantNil: true},
		{name: "two questions are a format error", in: func() []byte { b := query(1, "x.y", typeA); b[5] = 2; return b }(), wantRcode: rcodeFmt},
		{name: "a compression pointer in the question is a format error", in: append(query(1, "", typeA)[:12], 0xc0, 0x0c, 0, 1, 0, 1), wantRcode: rcodeFmt},
		{name: "a name that runs past the message is a format error", in: append(query(1, "", typeA)[:12], 10, 'a'), wantRcode: rcodeFmt},
		{name: "a name over 255 bytes is a format error", in: query(1, strings.Repeat(strings.Repeat("a", 63)+".", 5), typeA), wantRcode: rcodeFmt},
		{name: "a datagram over 512 bytes is a format error", in: append(query(1, "x.y", typeA), make([]byte, 600)...), wantRcode: rcodeFmt},
		{name: "an inverse query is not implemented", in: func() []byte { b := query(1, "x.y", typeA); b[2] |= 1 << 3; return b }(), wantRcode: rcodeImp},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var st Stats
			got := Answer(nil, tc.in, pi, &st)
			if tc.wantNil {
				if got != nil {
					t.Fatalf("got %x, want no answer", got)
				}
				return
			}
			if len(got) < headerLen {
				t.Fatalf("got %x, want a DNS header at least", got)
			}
			if got[0] != tc.in[0] || got[1] != tc.in[1] {
				t.Errorf("answer's ID %x, want the query's %x", got[:2], tc.in[:2])
			}
			flags := binary.BigEndian.Uint16(got[2:])
			if flags&flagQR == 0 {
				t.Error("QR not set")
			}
			if rc := int(flags & 0xf); rc != tc.wantRcode {
				t.Errorf("rcode %d, want %d", rc, tc.wantRcode)
			}
			if an := int(binary.BigEndian.Uint16(got[6:])); an != tc.wantAn {
				t.Errorf("%d answers, want %d", an, tc.wantAn)
			}
			if tc.wantAn == 1 && !strings.HasSuffix(string(got), string(pi.AsSlice())) {
				t.Errorf("answer %x does not end in the Pi's address", got)
			}
		})
	}
}

func TestParseErrorsAreMalformed(t *testing.T) {
	_, err := Parse([]byte{0, 1})
	if !errors.Is(err, ErrMalformed) {
		t.Errorf("got %v, want ErrMalformed", err)
	}
}

// FuzzAnswer: whatever arrives, the responder neither panics nor answers
// with more than a query's bytes and one address record, and an answer
// it gives parses as a response to the same ID. The seed corpus is in
// testdata/fuzz/FuzzAnswer.
func FuzzAnswer(f *testing.F) {
	f.Add(query(1, "connectivitycheck.gstatic.com", typeA))
	f.Add(query(2, "captive.apple.com", 28))
	f.Add([]byte{0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 0x0c})
	f.Fuzz(func(t *testing.T, b []byte) {
		var st Stats
		got := Answer(nil, b, pi, &st)
		if got == nil {
			return
		}
		if len(got) > min(len(b), MaxQueryBytes)+16 {
			t.Fatalf("answer of %d bytes to a query of %d", len(got), len(b))
		}
		if got[0] != b[0] || got[1] != b[1] || got[2]&0x80 == 0 {
			t.Fatalf("answer %x is not a response to %x", got, b)
		}
		if st.Answered.Load()+st.Empty.Load()+st.NotImp.Load()+st.Malformed.Load() != 1 {
			t.Fatalf("one query counted %+v", &st)
		}
	})
}
