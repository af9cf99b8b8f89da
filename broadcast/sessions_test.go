package broadcast

import (
	"net"
	"strconv"
	"testing"
)

func TestRawJSONGoesAsItIsAlsoInTheWholeMessage(t *testing.T) {
	for _, whole := range []bool{false, true} {
		s, hs := testServer(t, &ServerOpts{WholeMsg: whole, NoReplay: true})
		c := dial(t, wsURL(hs, "/"), nil)
		waitClients(t, s, 1)
		s.Publish(Message{Topic: "t", Payload: RawJSON(`{"a":"<b> & c","n":1e21}`), ID: "x"})
		want := `{"a":"<b> & c","n":1e21}`
		if whole {
			want = `{"topic":"t","payload":{"a":"<b> & c","n":1e21},"_msgid":"x"}`
		}
		if _, got := read(t, c); got != want {
			t.Errorf("wholemsg %v: got %s, want %s", whole, got, want)
		}
	}
}

func TestClientListReachAndSessionsNameTheConnectedClients(t *testing.T) {
	s, hs := testServer(t, nil)
	a := dial(t, wsURL(hs, "/"), nil)
	waitClients(t, s, 1)
	b := dial(t, wsURL(hs, "/?topic=alerts/%23"), nil)
	waitClients(t, s, 2)
	list := s.ClientList()
	if len(list) != 2 || list[0].Since.After(list[1].Since) {
		t.Fatalf("ClientList = %+v, want two, oldest first", list)
	}
	for i, c := range []net.Addr{a.LocalAddr(), b.LocalAddr()} {
		if list[i].Remote != c.String() || len(list[i].Session) != 16 || !s.HasSession(list[i].Session) {
			t.Errorf("client %d: %+v, want remote %s and a 16-digit session", i, list[i], c)
		}
		if _, err := strconv.ParseUint(list[i].Session, 16, 64); err != nil {
			t.Errorf("session %q is not hex", list[i].Session)
		}
	}
	if len(list[0].Filters) != 0 || len(list[1].Filters) != 1 || list[1].Filters[0] != "alerts/#" {
		t.Errorf("filters %v, %v", list[0].Filters, list[1].Filters)
	}
	if got := s.Reach("alerts/hot"); got != 2 {
		t.Errorf("Reach(alerts/hot) = %d, want 2", got)
	}
	if got := s.Reach("readings"); got != 1 {
		t.Errorf("Reach(readings) = %d, want 1", got)
	}
	a.Close()
	waitClients(t, s, 1)
	if s.HasSession(list[0].Session) || len(s.ClientList()) != 1 {
		t.Errorf("the client that left is still listed")
	}
}

func TestALiveMessageIsNotReplayedToLateJoiners(t *testing.T) {
	s, hs := testServer(t, nil)
	s.Publish(Message{Topic: "t", Payload: "kept"})
	s.Publish(Message{Topic: "n", Payload: "notice", Live: true})
	c := dial(t, wsURL(hs, "/"), nil)
	if _, got := read(t, c); got != "kept" {
		t.Fatalf("replay began with %q", got)
	}
	s.Publish(Message{Topic: "n", Payload: "next"})
	if _, got := read(t, c); got != "next" {
		t.Errorf("got %q after the replay, want next (the live notice is not replayed)", got)
	}
}
