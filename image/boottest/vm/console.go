// Package vm is the plumbing of a boot scenario: qemu as a Machine, the
// shell on its serial Console, the disk copy it boots and the FAT it
// boots from (through mtools, no mounts), and the OpenSSH client.
package vm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
)

// Console runs shell commands over a serial line that also carries kernel
// and systemd messages, and typed characters echoed back. Each command is
// wrapped in markers that the echo of the typed line cannot contain:
//
//	typed:  echo @@"B"7; systemctl is-active sensord; echo @@"E"7:$?
//	output: @@B7
//	        active
//	        @@E7:0
//
// so what lies between the two marker lines is the command's output, and
// the number after "@@E7:" its exit status. Lines that other writers
// interleave stay in the output; callers look for the lines they expect.
type Console struct {
	w io.Writer

	mu   sync.Mutex
	buf  []byte        // everything read so far
	wake chan struct{} // closed and replaced on each read
	err  error         // the reader's end
	n    int           // last command number
}

// NewConsole reads r (until it fails) and writes commands to w. Everything
// read is also copied to log, if not nil.
func NewConsole(r io.Reader, w io.Writer, log io.Writer) *Console {
	c := &Console{w: w, wake: make(chan struct{})}
	go func() {
		b := make([]byte, 4096)
		for {
			n, err := r.Read(b)
			if n > 0 && log != nil {
				log.Write(b[:n])
			}
			c.mu.Lock()
			c.buf = append(c.buf, b[:n]...)
			if err != nil {
				c.err = err
			}
			close(c.wake)
			c.wake = make(chan struct{})
			c.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	return c
}

// WaitFor returns the offset just past the first occurrence of marker at
// or after offset from, once it has arrived.
func (c *Console) WaitFor(ctx context.Context, from int, marker string) (int, error) {
	for {
		c.mu.Lock()
		if from > len(c.buf) {
			from = len(c.buf)
		}
		i := bytes.Index(c.buf[from:], []byte(marker))
		wake, err := c.wake, c.err
		if i >= 0 {
			c.mu.Unlock()
			return from + i + len(marker), nil
		}
		c.mu.Unlock()
		if err != nil {
			return 0, fmt.Errorf("console: %w (waiting for %q)", err, marker)
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("console: waiting for %q: %w", marker, ctx.Err())
		case <-wake:
		}
	}
}

func (c *Console) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.buf)
}

func (c *Console) slice(a, b int) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return string(c.buf[a:b])
}

// Result is one command's output and exit status.
type Result struct {
	Out    string
	Status int
}

// Lines returns the output's non-empty lines, trimmed.
func (r Result) Lines() []string {
	var l []string
	for _, s := range strings.Split(r.Out, "\n") {
		if s = strings.TrimSpace(s); s != "" {
			l = append(l, s)
		}
	}
	return l
}

// Has reports whether a line of the output is exactly s.
func (r Result) Has(s string) bool {
	for _, l := range r.Lines() {
		if l == s {
			return true
		}
	}
	return false
}

// Run types cmd (one line of shell) and returns its output once its end
// marker has arrived, or ctx's error.
func (c *Console) Run(ctx context.Context, cmd string) (Result, error) {
	if strings.ContainsAny(cmd, "\n\r") {
		return Result{}, errors.New("console: command must be one line")
	}
	c.n++
	n := c.n
	start := c.len()
	line := fmt.Sprintf("echo @@\"B\"%d; %s; echo @@\"E\"%d:$?\n", n, cmd, n)
	if _, err := io.WriteString(c.w, line); err != nil {
		return Result{}, fmt.Errorf("console: %w", err)
	}
	begin, err := c.WaitFor(ctx, start, fmt.Sprintf("@@B%d", n))
	if err != nil {
		return Result{}, err
	}
	endMarker := fmt.Sprintf("@@E%d:", n)
	after, err := c.WaitFor(ctx, begin, endMarker)
	if err != nil {
		return Result{}, err
	}
	// The status runs to the end of its line.
	eol, err := c.WaitFor(ctx, after, "\n")
	if err != nil {
		return Result{}, err
	}
	var status int
	fmt.Sscanf(strings.TrimSpace(c.slice(after, eol)), "%d", &status)
	return Result{Out: c.slice(begin, after-len(endMarker)), Status: status}, nil
}

// Ready pokes the line until a shell answers: the debug shell starts while
// systemd is still booting, and what was typed before it existed is lost.
func (c *Console) Ready(ctx context.Context, poke func() <-chan struct{}) error {
	for {
		start := c.len()
		if _, err := io.WriteString(c.w, "echo @@\"READY\"\n"); err != nil {
			return fmt.Errorf("console: %w", err)
		}
		wait, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() {
			_, err := c.WaitFor(wait, start, "@@READY")
			done <- err
		}()
		select {
		case err := <-done:
			cancel()
			return err
		case <-poke():
			cancel()
			<-done
			if ctx.Err() != nil {
				return fmt.Errorf("console: no shell: %w", ctx.Err())
			}
		}
	}
}
