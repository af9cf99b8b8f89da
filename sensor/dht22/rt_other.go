//go:build !linux

package dht22

// realtime is Linux-only; elsewhere the busy loop runs at normal priority.
func realtime() (restore func() error, ok bool) { return nil, false }
