package vm

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"
)

// fakeShell answers typed lines like a shell on a serial line would: it
// echoes each line back, runs it through answer, and lets noise (kernel
// messages) interleave.
func fakeShell(t *testing.T, answer func(cmd string) string, noise string) (*Console, func()) {
	t.Helper()
	inR, inW := io.Pipe()   // what the console types
	outR, outW := io.Pipe() // what the line carries back
	go func() {
		sc := bufio.NewScanner(inR)
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintf(outW, "# %s\r\n", line) // echo, as a tty does
			if noise != "" {
				fmt.Fprintf(outW, "%s\r\n", noise)
			}
			fmt.Fprint(outW, answer(line))
		}
		outW.Close()
	}()
	return NewConsole(outR, inW, nil), func() { inW.Close() }
}

// sh interprets the marker wrapper: echo @@"B"n; cmd; echo @@"E"n:$?
func sh(run func(cmd string) (string, int)) func(string) string {
	return func(line string) string {
		parts := strings.Split(line, "; ")
		if len(parts) == 1 && strings.HasPrefix(line, "echo ") {
			return strings.ReplaceAll(strings.TrimPrefix(line, "echo "), `"`, "") + "\r\n"
		}
		begin := strings.ReplaceAll(strings.TrimPrefix(parts[0], "echo "), `"`, "")
		end := strings.ReplaceAll(strings.TrimPrefix(parts[len(parts)-1], "echo "), `"`, "")
		out, status := run(strings.Join(parts[1:len(parts)-1], "; "))
		return begin + "\r\n" + out + strings.Replace(end, "$?", fmt.Sprint(status), 1) + "\r\n"
	}
}

func TestConsoleRunReturnsOutputBetweenMarkersDespiteEchoAndNoise(t *testing.T) {
	c, stop := fakeShell(t, sh(func(cmd string) (string, int) {
		switch cmd {
		case "systemctl is-active sensord":
			return "active\r\n", 0
		case "false":
			return "", 1
		}
		return "unknown command\r\n", 127
	}), "[   12.345678] random: crng init done")
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	r, err := c.Run(ctx, "systemctl is-active sensord")
	if err != nil {
		t.Fatal(err)
	}
	if !r.Has("active") || r.Status != 0 {
		t.Errorf("got %+v, want the line active and status 0", r)
	}
	r, err = c.Run(ctx, "false")
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != 1 || len(r.Lines()) != 0 {
		t.Errorf("got %+v, want no output and status 1", r)
	}
}

func TestConsoleRunRefusesMultiLineCommands(t *testing.T) {
	c := NewConsole(strings.NewReader(""), io.Discard, nil)
	if _, err := c.Run(context.Background(), "a\nb"); err == nil {
		t.Error("Run accepted a command with a line break")
	}
}

func TestConsoleRunGivesUpWhenTheLineIsSilent(t *testing.T) {
	r, w := io.Pipe()
	defer w.Close()
	c := NewConsole(r, io.Discard, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := c.Run(ctx, "true"); err == nil {
		t.Error("Run returned without an answer")
	}
}

func TestConsoleReadyPokesUntilAShellAnswers(t *testing.T) {
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	go func() {
		sc := bufio.NewScanner(inR)
		n := 0
		for sc.Scan() {
			// The first two pokes are typed before the shell exists: lost.
			if n++; n > 2 {
				fmt.Fprint(outW, "@@READY\r\n")
			}
		}
	}()
	c := NewConsole(outR, inW, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	pokes := 0
	err := c.Ready(ctx, func() <-chan struct{} {
		pokes++
		ch := make(chan struct{})
		go func() { time.Sleep(20 * time.Millisecond); close(ch) }()
		return ch
	})
	if err != nil {
		t.Fatal(err)
	}
	if pokes < 2 {
		t.Errorf("Ready poked %d times, want at least 2", pokes)
	}
	inW.Close()
}
