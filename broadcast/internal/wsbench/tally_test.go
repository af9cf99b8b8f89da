package main

import "testing"

func TestTallyCountsLossGapsAndDuplicates(t *testing.T) {
	w := window{start: 100, end: 1000, stop: 1100}
	stopped := func(recs ...rec) *client {
		c := &client{recs: recs, frames: int64(len(recs)), done: make(chan struct{})}
		close(c.done)
		return c
	}
	at := func(id uint64, t int64) rec { return rec{id: id, t: t} }
	// Two clients; id 2 reaches one of them, id 3 reaches one twice, no
	// client gets id 4, id 9 arrives before the window.
	clients := []*client{
		stopped(at(9, 50), at(1, 200), at(2, 300), at(3, 400), at(5, 600)),
		stopped(at(9, 60), at(1, 210), at(3, 420), at(3, 430), at(5, 650)),
		nil,
	}
	o := opts{key: "id"}
	res := result{KeyUsed: "id"}
	tally(o, clients, w, &res)
	want := lossInfo{LostDeliveries: 3, PartialMsgs: 1, SeqGaps: 1, Ratio: 0.3, Duplicates: 1}
	if res.Loss != want {
		t.Errorf("loss: got %+v, want %+v", res.Loss, want)
	}
	if res.Messages != 4 || res.Deliveries != 8 || res.Frames != 10 || res.Disconnects != 0 {
		t.Errorf("got %d messages, %d deliveries, %d frames, %d disconnects; want 4, 8, 10, 0", res.Messages, res.Deliveries, res.Frames, res.Disconnects)
	}
	// Spreads: id 1 10 ns, id 3 30 ns, id 5 50 ns (id 2 reached one client).
	if res.SpreadMs.N != 3 || res.SpreadMs.Max != ms(50) {
		t.Errorf("spread: got %+v, want 3 spreads, max %v ms", res.SpreadMs, ms(50))
	}
	if res.MsgsPerS != round(4/900e-9, 2) || res.ExpectedPerS != round(res.MsgsPerS*2, 1) {
		t.Errorf("rates: got %v msgs/s, %v expected/s", res.MsgsPerS, res.ExpectedPerS)
	}
}
