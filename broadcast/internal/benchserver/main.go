// Command benchserver serves one WebSocket path for the end-to-end
// benchmark (bench.sh, with broadcast/internal/wsbench as the load): either
// our broadcast.Server or the baseline, the classic gorilla chat-example
// hub (a map of clients owned by one goroutine, a buffered channel and a
// write pump per client, one WriteMessage per message). Both publish the
// same sensor_update JSON at -rate messages per second.
//
//	benchserver -mode ours -listen 127.0.0.1:9001 -rate 100
//
// It prints "ready <pid> <addr>" once listening, and exits by itself after
// -max. With -report it prints bench.sh's comparison table instead.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	_ "net/http/pprof"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"syscall"
	"time"

	"github.com/gorilla/websocket"

	"sensord/broadcast"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "benchserver:", err)
		os.Exit(1)
	}
}

func run() error {
	mode := flag.String("mode", "ours", "ours (broadcast.Server), hub (gorilla chat-example baseline) or floor (the least a server can do: one write loop, see floor.go)")
	listen := flag.String("listen", "127.0.0.1:9001", "address")
	rate := flag.Float64("rate", 100, "messages per second")
	maxRun := flag.Duration("max", 3*time.Minute, "exit after this long, whatever happens")
	coalesce := flag.Duration("coalesce", 0, "ours: ServerOpts.Coalesce (0: the default)")
	noCoalesce := flag.Bool("no-coalesce", false, "ours: ServerOpts.NoCoalesce, a write after every publish")
	writers := flag.Int("writers", 0, "ours: ServerOpts.Writers (0 = default, GOMAXPROCS)")
	pprofAddr := flag.String("pprof", "", "serve net/http/pprof on this address (investigation only)")
	memEvery := flag.Duration("memstats", 0, "print Go memory statistics to stderr this often (0: never)")
	reportFile := flag.String("report", "", "print the comparison table of this wsbench JSON-lines file and exit")
	flag.Parse()
	if *reportFile != "" {
		return report(os.Stdout, *reportFile)
	}
	if *pprofAddr != "" {
		go http.ListenAndServe(*pprofAddr, nil) // DefaultServeMux: net/http/pprof
	}
	if *memEvery > 0 {
		go func() {
			for range time.Tick(*memEvery) {
				var m runtime.MemStats
				runtime.ReadMemStats(&m)
				fmt.Fprintf(os.Stderr, "goroutines %d heap_inuse_kb %d heap_alloc_kb %d stack_inuse_kb %d sys_kb %d gc %d\n",
					runtime.NumGoroutine(), m.HeapInuse>>10, m.HeapAlloc>>10, m.StackInuse>>10, m.Sys>>10, m.NumGC)
			}
		}()
	}
	if *rate <= 0 {
		return errors.New("-rate must be > 0")
	}

	var h http.Handler
	var publish func([]byte)
	var stop func()
	switch *mode {
	case "ours":
		s := broadcast.NewServer(&broadcast.ServerOpts{Coalesce: *coalesce, NoCoalesce: *noCoalesce, Writers: *writers, MaxClients: 20000})
		h, stop = s, func() {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			_ = s.Close(ctx)
		}
		publish = func(b []byte) { _ = s.Publish(broadcast.Message{Topic: "sensors/dht22", Payload: string(b)}) }
	case "hub":
		hub := newHub()
		go hub.run()
		h, stop = hub, func() {}
		publish = func(b []byte) { hub.broadcast <- b }
	case "floor":
		f := &floor{up: websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}}
		h, stop, publish = f, func() {}, f.publish
	default:
		return fmt.Errorf("-mode %q: want ours, hub or floor", *mode)
	}

	l, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(l)
	fmt.Println("ready", os.Getpid(), l.Addr())

	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	ctx, cancel2 := context.WithTimeout(ctx, *maxRun)
	defer cancel2()

	// The reading as the dashboard gets it, plus a sequence number so that
	// wsbench can find gaps; ~110 bytes like a real sensor_update. The
	// schedule is by the clock: a late tick (a busy machine) publishes
	// what is due, so the rate holds on average.
	t := time.NewTicker(min(time.Duration(float64(time.Second) / *rate), 100*time.Millisecond))
	defer t.Stop()
	start := time.Now()
	var seq uint64
	buf := make([]byte, 0, 160)
	for {
		select {
		case <-ctx.Done():
			stop()
			_ = srv.Close()
			return nil
		case now := <-t.C:
			for due := uint64(now.Sub(start).Seconds() * *rate); seq < due; {
				seq++
				buf = append(buf[:0], `{"type":"sensor_update","temperature":21.4,"humidity":48.2,"timestamp":`...)
				buf = strconv.AppendInt(buf, now.UnixMilli(), 10)
				buf = append(buf, `,"seq":`...)
				buf = strconv.AppendUint(buf, seq, 10)
				buf = append(buf, '}')
				publish(append([]byte(nil), buf...))
			}
		}
	}
}
