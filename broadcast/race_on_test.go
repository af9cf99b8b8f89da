//go:build race

package broadcast

// raceEnabled: the race detector's instrumentation makes stack frames
// larger, so stack-size assertions do not hold under -race.
const raceEnabled = true
