//go:build race

package history

// raceEnabled: under -race the helper processes come from a build without
// it (helperBinary): the race detector slows SQLite's translated C many
// times over, and the helpers measure bytes and survive kills, not races.
const raceEnabled = true
