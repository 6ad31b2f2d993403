package iox_test

// Backpressure: a lossless publisher holds back for a subscriber that cannot
// take more, instead of skipping it.

import (
	"context"
	"fmt"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/iox-go/iox"
)

// A lossless publisher must hold back for a subscriber that exists but has not
// received since the publisher appeared (its side of the connection is not set up
// yet): iceoryx2 skips such a subscriber without an error once its buffer is full.
func TestLosslessPublisherHoldsBackForASubscriberThatHasNotReceivedYet(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	c := spawn(t, ns, "rel-sub", "IOX_SERVICE=unconnected", "IOX_FROM_ZERO=1", "IOX_IDLE=5s", "IOX_SAY_IDLE=1")
	c.expect("ready")
	c.expect("idle") // the subscriber looked for messages: no publisher yet
	stopped := true
	defer func() {
		if stopped {
			c.cmd.Process.Signal(syscall.SIGCONT)
		}
	}()
	c.stop()
	ctx := context.Background()
	p, err := iox.OpenPub(ctx, node, "unconnected", iox.BufferSize(16), iox.WithChanCap(0))
	require.NoError(t, err)
	defer p.Close()
	waitSubscribers(t, p, 1)
	const n = 200
	var sent atomic.Int64
	sending, cancel := context.WithCancel(ctx)
	defer cancel()
	sendErr := make(chan error, 1)
	go func() {
		for i := 0; i < n; i++ {
			if err := p.Send(sending, seqMsg(uint64(i))); err != nil {
				sendErr <- err
				return
			}
			sent.Store(int64(i + 1))
		}
		sendErr <- nil
	}()
	waitHeldBack(t, "iox.(*Pub[...]).Send", sent.Load)
	cancel()
	require.ErrorIs(t, <-sendErr, context.Canceled, "Send returns when its context ends")
	accepted := int(sent.Load())
	t.Logf("a stopped subscriber's publisher accepted %d of %d messages, then held back", accepted, n)
	require.Less(t, accepted, n, "the publisher holds back")
	require.NoError(t, c.cmd.Process.Signal(syscall.SIGCONT))
	stopped = false
	// Whatever the publisher accepted must arrive, in order, without gaps.
	c.say(fmt.Sprintf("expect %d", accepted-1))
	c.expect(fmt.Sprintf("got %d first 0", accepted))
	require.NoError(t, p.Close())
	c.say("done")
	c.wait()
}
