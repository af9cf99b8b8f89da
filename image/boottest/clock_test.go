package main

import (
	"encoding/binary"
	"testing"
	"time"
)

func TestSNTPReplyAnswersAClientRequest(t *testing.T) {
	req := make([]byte, 48)
	req[0] = 4<<3 | 3 // v4, client
	req[2] = 6
	binary.BigEndian.PutUint64(req[40:], 0x1234567890abcdef)
	now := time.Date(2026, 12, 6, 8, 0, 0, 500_000_000, time.UTC)
	b, ok := sntpReply(req, now)
	if !ok {
		t.Fatal("no reply to a client request")
	}
	if b[0] != 4<<3|4 || b[1] != 2 || b[2] != 6 {
		t.Errorf("header %x %x %x, want v4 server, stratum 2, the client's poll", b[0], b[1], b[2])
	}
	if got := binary.BigEndian.Uint64(b[24:]); got != 0x1234567890abcdef {
		t.Errorf("originate %x, want the client's transmit time", got)
	}
	tx := binary.BigEndian.Uint64(b[40:])
	if secs := int64(tx>>32) - ntpEpochOffset; secs != now.Unix() || tx&0xffffffff != 1<<31 {
		t.Errorf("transmit %x: %d s, fraction %x; want %d and half a second", tx, secs, tx&0xffffffff, now.Unix())
	}
	if _, ok := sntpReply(append([]byte{4<<3 | 4}, req[1:]...), now); ok {
		t.Error("answered a server's packet")
	}
	if _, ok := sntpReply(req[:47], now); ok {
		t.Error("answered a short packet")
	}
}
