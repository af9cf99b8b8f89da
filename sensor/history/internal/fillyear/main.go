// Command fillyear writes a year of history ending now into a sensord
// history database, as a daemon at default settings keeps it (per-minute
// rollups for the year, a reading every 2 s for the last 7 days), for the
// figures in BENCHMARKS.md:
//
//	go run ./sensor/history/internal/fillyear DIR/history.db
package main

import (
	"context"
	"fmt"
	"math"
	"os"
	"time"

	"sensord/sensor"
	"sensord/sensor/history"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: fillyear PATH")
		os.Exit(2)
	}
	if err := run(os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "fillyear:", err)
		os.Exit(1)
	}
}

func run(path string) error {
	s, err := history.Open(path, nil)
	if err != nil {
		return err
	}
	defer s.Close()
	now := time.Now().Truncate(time.Minute)
	value := func(ts time.Time) (sensor.Deci, sensor.Deci) {
		age := now.Sub(ts).Hours()
		c := 21 - 3*(1-math.Cos(2*math.Pi*age/(365*24))) - 2*(1-math.Cos(2*math.Pi*age/24))
		return sensor.Deci(math.Round(c * 10)), sensor.Deci(math.Round((45 + 2*(21-c)) * 10))
	}
	var mins []history.Point
	for ts := now.Add(-365 * 24 * time.Hour); ts.Before(now.Add(-history.DefaultRawRetention)); ts = ts.Add(time.Minute) {
		c, h := value(ts)
		mins = append(mins, history.Point{Time: ts, N: 30,
			Temperature: history.Summary{Min: c - 2, Mean: c, Max: c + 2},
			Humidity:    history.Summary{Min: h - 5, Mean: h, Max: h + 5}})
	}
	var raw []sensor.Reading
	for ts := now.Add(-history.DefaultRawRetention); ts.Before(now); ts = ts.Add(2 * time.Second) {
		c, h := value(ts)
		raw = append(raw, sensor.Reading{Temperature: c, Humidity: h, Time: ts})
	}
	ctx := context.Background()
	if err := s.Import(ctx, nil, mins); err != nil {
		return err
	}
	return s.Import(ctx, raw, nil)
}
