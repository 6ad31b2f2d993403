package iox_test

// Adversarial tests of the pipeline: each one sets up a defect's exact
// circumstances and asserts what the documentation promises.

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/iox-go/iox"
)

// A value handed to Out is "handed over as by Send", and Close returns nil
// only when pullers took every message the pusher sent. A value Out's
// goroutine holds while Send waits for room is refused when Close ends the
// pusher: Close must then not report that everything was taken.
func TestAdvPushOutValueAtCloseIsReported(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := context.Background()
	pull, err := iox.OpenPull(ctx, node, "outclose", iox.BufferSize(1))
	require.NoError(t, err)
	push, err := iox.OpenPush(ctx, node, "outclose", iox.WithChanCap(1), iox.WithLinger(20*time.Second))
	require.NoError(t, err)
	eventually(t, "the pusher knows the puller", func() bool { return push.Pullers() == 1 })
	require.NoError(t, push.Send(ctx, []byte("m1"))) // into the puller's queue
	require.NoError(t, push.Send(ctx, []byte("m2"))) // waits in the pusher's queue
	push.Out() <- []byte("v")                        // Out's goroutine waits for room

	closed := make(chan error, 1)
	go func() { closed <- push.Close() }()
	waitParked(t, "iox.(*Push[...]).Close", 1) // Close waits for the pullers

	var mu sync.Mutex
	var got []string
	recvDone := make(chan struct{})
	go func() {
		defer close(recvDone)
		for {
			m, err := pull.Recv(ctx)
			if err != nil {
				return
			}
			mu.Lock()
			got = append(got, string(m))
			mu.Unlock()
		}
	}()
	cerr := <-closed
	require.NoError(t, pull.Close())
	<-recvDone
	mu.Lock()
	defer mu.Unlock()
	if cerr == nil {
		require.Equal(t, []string{"m1", "m2", "v"}, got, "Close returned nil, yet a value handed to Out never reached a puller")
	} else {
		require.ErrorIs(t, cerr, iox.ErrUndelivered)
	}
}

// WithSpin takes no negative time: -1 (one nanosecond below zero) is as
// absurd as any other, and must not pass as the adaptive default.
func TestAdvPullNegativeSpinRefused(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := context.Background()
	for _, d := range []time.Duration{-1, -time.Millisecond} {
		p, err := iox.OpenPull(ctx, node, "spin", iox.WithSpin(d))
		if err == nil {
			p.Close()
		}
		require.ErrorIs(t, err, iox.ErrInvalidArgument, "WithSpin(%v)", d)
	}
}
