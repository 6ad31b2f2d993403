package iox_test

// Backpressure: a lossless publisher holds back for a subscriber that cannot
// take more, instead of skipping it.

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/iox-go/iox"
)

// A lossless publisher must hold back for a subscriber that exists but has not
// received since the publisher appeared (its side of the connection is not set up
// yet): iceoryx2 skips such a subscriber without an error once its buffer is full.
func TestLosslessPublisherHoldsBackForASubscriberThatHasNotReceivedYet(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	c := spawn(t, ns, "rel-sub", "IOX_SERVICE=unconnected", "IOX_FROM_ZERO=1", "IOX_IDLE=5s")
	c.expect("ready")
	time.Sleep(50 * time.Millisecond) // the subscriber looked for messages: no publisher yet
	require.NoError(t, c.cmd.Process.Signal(syscall.SIGSTOP))
	stopped := true
	defer func() {
		if stopped {
			c.cmd.Process.Signal(syscall.SIGCONT)
		}
	}()
	ctx := context.Background()
	p, err := iox.OpenPub(ctx, node, "unconnected", iox.BufferSize(16), iox.WithChanCap(0))
	require.NoError(t, err)
	defer p.Close()
	waitSubscribers(t, p, 1)
	const n = 200
	accepted := 0
	deadline, cancel := context.WithTimeout(ctx, time.Second)
	for ; accepted < n; accepted++ {
		if err := p.Send(deadline, seqMsg(uint64(accepted))); err != nil {
			require.ErrorIs(t, err, context.DeadlineExceeded)
			break
		}
	}
	cancel()
	t.Logf("a stopped subscriber's publisher accepted %d of %d messages in 1 s", accepted, n)
	require.NoError(t, c.cmd.Process.Signal(syscall.SIGCONT))
	stopped = false
	// Whatever the publisher accepted must arrive, in order, without gaps.
	c.say(fmt.Sprintf("expect %d", accepted-1))
	c.expect(fmt.Sprintf("got %d first 0", accepted))
	require.NoError(t, p.Close())
	c.say("done")
	c.wait()
}
