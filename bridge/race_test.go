//go:build race

package bridge_test

// raceEnabled: the race detector slows every step many times.
const raceEnabled = true
