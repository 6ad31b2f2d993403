package iox_test

// A receiver that spins (WithSpin) still ends promptly.

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/iox-go/iox"
)

// A subscriber that busy-polls (WithSpin) must still end promptly on Close.
func TestCloseEndsASpinningSubscriber(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := context.Background()
	const spin = 10 * time.Second
	s, err := iox.OpenSub(ctx, node, "spinning", iox.WithSpin(spin))
	require.NoError(t, err)
	time.Sleep(50 * time.Millisecond) // the receiver is spinning now: nothing arrives
	start := time.Now()
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	select {
	case err := <-closed:
		require.NoError(t, err)
		t.Logf("Close took %v", time.Since(start))
	case <-time.After(5 * time.Second):
		t.Fatalf("Close waits for the spin time (%v) to run out", spin)
	}
	c, cancelSub := context.WithCancel(ctx)
	s2, err := iox.OpenSub(c, node, "spinning2", iox.WithSpin(spin))
	require.NoError(t, err)
	time.Sleep(50 * time.Millisecond)
	cancelSub()
	select {
	case <-s2.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("cancelling the context does not end a spinning subscriber")
	}
	within(t, 5*time.Second, "Close after cancel", func() { s2.Close() })
}
