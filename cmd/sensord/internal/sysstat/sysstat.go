// Package sysstat reads what the dashboard shows of the system: the
// 1-minute load average and the share of memory in use for the hub
// stream, from Linux's /proc; the device panel (Device); and the daemon's
// own heap (HeapBytes).
package sysstat

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"runtime/metrics"
	"strconv"
)

// Stats is one sample.
type Stats struct {
	Load1          float64 // 1-minute load average
	MemUsedPercent float64 // (MemTotal - MemAvailable) / MemTotal, in percent, one decimal
}

// Read samples /proc/loadavg and /proc/meminfo.
func Read() (Stats, error) {
	la, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return Stats{}, fmt.Errorf("sysstat: %w", err)
	}
	mi, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return Stats{}, fmt.Errorf("sysstat: %w", err)
	}
	return Parse(la, mi)
}

// Parse computes Stats from the contents of /proc/loadavg and /proc/meminfo.
func Parse(loadavg, meminfo []byte) (Stats, error) {
	f := bytes.Fields(loadavg)
	if len(f) == 0 {
		return Stats{}, errors.New("sysstat: empty /proc/loadavg")
	}
	load, err := strconv.ParseFloat(string(f[0]), 64)
	if err != nil || load < 0 || math.IsInf(load, 0) || math.IsNaN(load) {
		return Stats{}, fmt.Errorf("sysstat: bad load average %q", f[0])
	}
	total, okT := memField(meminfo, "MemTotal:")
	avail, okA := memField(meminfo, "MemAvailable:")
	if !okT || !okA || total == 0 || avail > total {
		return Stats{}, errors.New("sysstat: /proc/meminfo lacks sane MemTotal and MemAvailable")
	}
	used := float64(total-avail) / float64(total) * 100
	return Stats{Load1: load, MemUsedPercent: math.Round(used*10) / 10}, nil
}

// memField finds "Name:   1234 kB" and returns 1234.
func memField(meminfo []byte, name string) (uint64, bool) {
	for line := range bytes.Lines(meminfo) {
		rest, ok := bytes.CutPrefix(line, []byte(name))
		if !ok {
			continue
		}
		f := bytes.Fields(rest)
		if len(f) == 0 {
			return 0, false
		}
		v, err := strconv.ParseUint(string(f[0]), 10, 64)
		return v, err == nil
	}
	return 0, false
}

// HeapBytes reads the live heap without stopping the world, unlike
// runtime.ReadMemStats, so a flood of get_status or /metrics requests
// cannot stall the daemon.
func HeapBytes() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}
