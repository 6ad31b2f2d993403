package iox_test

// The goroutine behind In lets the program run first after a hand-over.

import (
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/iox-go/iox"
	"github.com/iox-go/iox/internal/wait"
)

// A value handed to a receive that waits on an empty channel reaches the
// receiving goroutine before HandOver returns: on one processor, where the
// receiver could otherwise run only once the handing goroutine blocks. The
// scheduler sometimes runs its global queue first (once in 61 turns), so the
// test asks for most rounds, not all; without the yield none would pass.
func TestHandOverRunsTheWaitingReceiverFirst(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	out := make(chan int, 64) // as an In's channel
	var got atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		for v := range out {
			got.Store(int64(v))
		}
	}()
	const rounds = 200
	first := 0
	for i := 1; i <= rounds; i++ {
		require.True(t, iox.HandOver(out, i, nil))
		if got.Load() == int64(i) {
			first++
		}
		wait.Eventually(t, "the receiver took the value", func() bool { return got.Load() == int64(i) })
	}
	close(out)
	<-done
	assert.GreaterOrEqual(t, first, rounds/2, "rounds in which the receiver ran before HandOver returned")
}

// A hand-over that cannot go on gives up when stop closes, and the value
// stays out of the channel.
func TestHandOverGivesUpWhenStopped(t *testing.T) {
	out := make(chan int, 1)
	out <- 1
	stop := make(chan struct{})
	close(stop)
	assert.False(t, iox.HandOver(out, 2, stop))
	assert.Equal(t, 1, <-out)
	assert.Empty(t, out)
}
