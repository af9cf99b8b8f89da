// Package mosquitto runs a Mosquitto broker on the host for a boot
// scenario, and a client that records every message it carries.
package mosquitto

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"sensord/image/boottest/harness"
)

// startWait bounds Mosquitto's start to accepting on its port, and the
// watcher's connect.
const startWait = 20 * time.Second

// Broker is the host's Mosquitto and a client watching all of it.
type Broker struct {
	Port int // on 127.0.0.1
	proc *harness.Proc
	c    paho.Client

	mu   sync.Mutex
	msgs []Msg
}

// Msg is one message the watcher saw.
type Msg struct {
	Topic, Payload string
	Retained       bool
}

// Start starts Mosquitto on a free loopback port, its configuration and
// log in dir, and connects the watcher (subscribed to #). Both are stopped
// with t's run, pass or fail.
func Start(t *harness.T, dir string) (*Broker, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	b := &Broker{Port: port}
	conf := fmt.Sprintf("per_listener_settings false\npersistence false\nlog_dest stderr\nlistener %d 127.0.0.1\nallow_anonymous true\n", b.Port)
	if os.Geteuid() == 0 {
		conf += "user root\n" // it would otherwise drop to user mosquitto, which cannot read dir
	}
	path := filepath.Join(dir, "mosquitto.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		return nil, err
	}
	log, err := os.Create(filepath.Join(dir, "mosquitto.log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command("/usr/sbin/mosquitto", "-c", path)
	cmd.Stdout, cmd.Stderr = log, log
	b.proc, err = t.Start("mosquitto (make image-deps installs it)", cmd)
	if err != nil {
		log.Close()
		return nil, err
	}
	go func() { <-b.proc.Done(); log.Close() }()
	addr := b.Addr()
	for deadline := time.Now().Add(startWait); ; time.Sleep(50 * time.Millisecond) {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) || b.proc.Exited() {
			return nil, fmt.Errorf("mosquitto not accepting on %s: %w", addr, err)
		}
	}
	t.Logf("mosquitto pid %d on %s", b.proc.Pid(), addr)

	o := paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID("boottest-watcher").
		SetAutoReconnect(true).SetConnectRetry(true).SetConnectRetryInterval(time.Second)
	o.SetOnConnectHandler(func(c paho.Client) {
		c.Subscribe("#", 1, func(_ paho.Client, m paho.Message) {
			b.mu.Lock()
			b.msgs = append(b.msgs, Msg{m.Topic(), string(m.Payload()), m.Retained()})
			b.mu.Unlock()
		})
	})
	b.c = paho.NewClient(o)
	// Registered after the process, so it runs before its stop.
	t.Cleanup(func() { b.c.Disconnect(100) })
	if tok := b.c.Connect(); !tok.WaitTimeout(startWait) || tok.Error() != nil {
		return nil, fmt.Errorf("watching mosquitto: %v", tok.Error())
	}
	return b, nil
}

// Addr is the broker's host:port on the host.
func (b *Broker) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(b.Port)) }

// All is every message the watcher has seen, in order.
func (b *Broker) All() []Msg {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]Msg(nil), b.msgs...)
}

// Wait returns the index of the first message from index from on that
// matches, or -1 when none came before ctx ended.
func (b *Broker) Wait(ctx context.Context, from int, match func(Msg) bool) int {
	for {
		msgs := b.All()
		for i := from; i < len(msgs); i++ {
			if match(msgs[i]) {
				return i
			}
		}
		select {
		case <-ctx.Done():
			return -1
		case <-time.After(200 * time.Millisecond):
		}
	}
}
