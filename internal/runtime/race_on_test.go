//go:build race

package runtime

// raceEnabled: every helper process is the race-instrumented test binary
// too, and starts ten times slower.
const raceEnabled = true
