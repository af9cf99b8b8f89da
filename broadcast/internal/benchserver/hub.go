package main

import (
	"net/http"
	"time"

	"github.com/gorilla/websocket"
)

// The baseline: the shape of gorilla's chat example (examples/chat), with
// one change the browsers need: each message is its own frame (the chat
// example joins queued messages into one frame with newlines, which breaks
// JSON.parse). Default gorilla buffer sizes.
const (
	hubWriteWait  = 10 * time.Second
	hubPongWait   = 60 * time.Second
	hubPingPeriod = hubPongWait * 9 / 10
	hubSendBuffer = 256
)

type hub struct {
	clients    map[*hubClient]bool // owned by run
	broadcast  chan []byte
	register   chan *hubClient
	unregister chan *hubClient
	up         websocket.Upgrader
}

type hubClient struct {
	h    *hub
	conn *websocket.Conn
	send chan []byte
}

func newHub() *hub {
	return &hub{
		clients:    map[*hubClient]bool{},
		broadcast:  make(chan []byte, 64),
		register:   make(chan *hubClient),
		unregister: make(chan *hubClient),
		up:         websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }},
	}
}

func (h *hub) run() {
	for {
		select {
		case c := <-h.register:
			h.clients[c] = true
		case c := <-h.unregister:
			if h.clients[c] {
				delete(h.clients, c)
				close(c.send)
			}
		case m := <-h.broadcast:
			for c := range h.clients {
				select {
				case c.send <- m:
				default: // too slow: drop it
					close(c.send)
					delete(h.clients, c)
				}
			}
		}
	}
}

func (h *hub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	conn, err := h.up.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	c := &hubClient{h: h, conn: conn, send: make(chan []byte, hubSendBuffer)}
	h.register <- c
	go c.writePump()
	go c.readPump()
}

func (c *hubClient) readPump() {
	defer func() {
		c.h.unregister <- c
		c.conn.Close()
	}()
	c.conn.SetReadLimit(512)
	c.conn.SetReadDeadline(time.Now().Add(hubPongWait))
	c.conn.SetPongHandler(func(string) error { c.conn.SetReadDeadline(time.Now().Add(hubPongWait)); return nil })
	for {
		if _, _, err := c.conn.ReadMessage(); err != nil {
			return
		}
	}
}

func (c *hubClient) writePump() {
	t := time.NewTicker(hubPingPeriod)
	defer func() {
		t.Stop()
		c.conn.Close()
	}()
	for {
		select {
		case m, ok := <-c.send:
			c.conn.SetWriteDeadline(time.Now().Add(hubWriteWait))
			if !ok {
				c.conn.WriteMessage(websocket.CloseMessage, []byte{})
				return
			}
			if err := c.conn.WriteMessage(websocket.TextMessage, m); err != nil {
				return
			}
		case <-t.C:
			c.conn.SetWriteDeadline(time.Now().Add(hubWriteWait))
			if err := c.conn.WriteMessage(websocket.PingMessage, nil); err != nil {
				return
			}
		}
	}
}
