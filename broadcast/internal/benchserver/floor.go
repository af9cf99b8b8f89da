package main

import (
	"net"
	"net/http"
	"sync"

	"github.com/gorilla/websocket"
)

// floor is not a server anyone should run: it is the least work a Go
// server can do per delivery, to tell the machine's floor from our costs.
// It keeps the upgraded sockets in a slice and writes each message's frame
// to all of them in one loop on the publishing goroutine, with nothing
// else: no reader, no heartbeat, no deadline, no goroutine per client.
type floor struct {
	up    websocket.Upgrader
	mu    sync.Mutex
	conns []net.Conn
}

func (f *floor) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ws, err := f.up.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	f.mu.Lock()
	f.conns = append(f.conns, ws.NetConn())
	f.mu.Unlock()
}

// publish writes payload as one text frame to every client.
func (f *floor) publish(payload []byte) {
	fr := append([]byte{0x81, byte(len(payload))}, payload...) // payloads here are < 126 bytes
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.conns {
		_, _ = c.Write(fr)
	}
}
