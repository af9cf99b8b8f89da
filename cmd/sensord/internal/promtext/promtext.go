// Package promtext writes Prometheus's text exposition format, version
// 0.0.4: a HELP and a TYPE line per metric family, then one line per
// sample. sensord's few dozen counters and gauges do not earn a client
// library; this is the whole of the format they need.
//
// # Concurrency
//
// A Writer belongs to the goroutine writing one exposition. Handler's
// result is safe for concurrent use as long as its write func is.
package promtext

import (
	"fmt"
	"io"
	"net/http"
	"strings"
)

// ContentType is what Prometheus expects for this format.
const ContentType = "text/plain; version=0.0.4; charset=utf-8"

// Type is a metric family's type. It is not a string, so a family's type
// can only be one of the constants below, never a misspelt literal.
type Type int

// The metric types sensord uses.
const (
	Counter Type = iota + 1
	Gauge
)

// String is the type as the TYPE line spells it.
func (t Type) String() string {
	switch t {
	case Counter:
		return "counter"
	case Gauge:
		return "gauge"
	}
	return "untyped"
}

// Writer writes one exposition to w. Write errors are the caller's
// connection going away; the exposition is abandoned with it, so they are
// not reported.
type Writer struct {
	w io.Writer
}

// New returns a Writer on w.
func New(w io.Writer) *Writer { return &Writer{w: w} }

// Family starts a metric family: its help text (on one line) and its type.
func (p *Writer) Family(name string, typ Type, help string) {
	fmt.Fprintf(p.w, "# HELP %s %s\n# TYPE %s %s\n", name, strings.ReplaceAll(help, "\n", " "), name, typ)
}

// Sample writes one sample of the family name; labels is "" or the
// label pairs without braces, as Label makes them.
func (p *Writer) Sample(name, labels string, v float64) {
	if labels != "" {
		name += "{" + labels + "}"
	}
	fmt.Fprintf(p.w, "%s %g\n", name, v)
}

// One writes a family that has a single unlabelled sample.
func (p *Writer) One(name string, typ Type, help string, v float64) {
	p.Family(name, typ, help)
	p.Sample(name, "", v)
}

// Label is the pair name="value", the value quoted and escaped.
func Label(name, value string) string { return fmt.Sprintf("%s=%q", name, value) }

// Handler serves what write writes, with the format's content type and
// never cached (every scrape must see the counters as they are).
func Handler(write func(*Writer)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", ContentType)
		w.Header().Set("Cache-Control", "no-store")
		write(New(w))
	})
}
