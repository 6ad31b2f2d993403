package wait

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestUntilTellsWhetherTheConditionCameInTime(t *testing.T) {
	n := 0
	require.True(t, Until(Bound, func() bool { n++; return n == 3 }))
	require.Equal(t, 3, n, "looked until it held, then no more")
	require.False(t, Until(5*time.Millisecond, func() bool { return false }))
}

// The condition runs on the caller's goroutine: what it writes is there
// without synchronisation, and a failure inside it is the caller's.
func TestEventuallyRunsTheConditionOnTheCallersGoroutine(t *testing.T) {
	seen := 0
	Eventually(t, "three looks", func() bool { seen++; return seen == 3 })
	require.Equal(t, 3, seen)
}
