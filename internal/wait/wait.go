// Package wait is how the tests wait for a condition: they look at it every
// millisecond on their own goroutine, so that a require inside it ends the
// test at once, and give up after a bound.
package wait

import (
	"testing"
	"time"
)

// Bound is how long Eventually waits.
const Bound = 20 * time.Second

// Until looks at cond every millisecond until it holds (true) or d has passed
// (false). Child processes of the tests, which have no testing.T, use it too.
func Until(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		<-tick.C
	}
	return true
}

// Eventually waits until cond holds, and fails the test after Bound, naming
// what it waited for.
func Eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	if !Until(Bound, cond) {
		t.Fatalf("timed out waiting for %s", what)
	}
}
