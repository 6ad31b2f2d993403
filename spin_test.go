package iox_test

// A receiver that spins (WithSpin) still ends promptly.

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/iox-go/iox"
)

// spinTime is a spin far longer than any of the waits below: a receiver that
// only stops when its spin runs out fails them.
const spinTime = 10 * time.Second

// waitSpinning waits until a receiver of this process spins.
func waitSpinning(t *testing.T) {
	t.Helper()
	eventually(t, "a receiver to spin", func() bool { return goroutinesIn("iox.(*spinner).spin", false) > 0 })
}

// A subscriber whose receiver busy-polls (WithSpin) must still end promptly on
// Close and on the end of its context.
func TestCloseEndsASpinningSubscriber(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := context.Background()
	s, err := iox.OpenSub(ctx, node, "spinning", iox.WithSpin(spinTime))
	require.NoError(t, err)
	received := make(chan error, 1)
	go func() { _, err := s.Recv(ctx); received <- err }()
	waitSpinning(t) // nothing arrives: the receiver spins
	start := time.Now()
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	select {
	case err := <-closed:
		require.NoError(t, err)
		t.Logf("Close took %v", time.Since(start))
	case <-time.After(5 * time.Second):
		t.Fatalf("Close waits for the spin time (%v) to run out", spinTime)
	}
	select {
	case err := <-received:
		require.ErrorIs(t, err, iox.ErrClosed)
	case <-time.After(5 * time.Second):
		t.Fatal("the spinning Recv did not return after Close")
	}

	c, cancelSub := context.WithCancel(ctx)
	s2, err := iox.OpenSub(c, node, "spinning2", iox.WithSpin(spinTime))
	require.NoError(t, err)
	in := s2.In() // the goroutine behind In receives
	waitSpinning(t)
	cancelSub()
	select {
	case <-s2.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("cancelling the context does not end a spinning subscriber")
	}
	within(t, 5*time.Second, "In closing after cancel", func() {
		for range in {
		}
	})
	within(t, 5*time.Second, "Close after cancel", func() { s2.Close() })
}

// A Recv that spins returns promptly when its own context ends, as it does
// when it waits in the poller.
func TestRecvContextEndsASpin(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := context.Background()
	s, err := iox.OpenSub(ctx, node, "spinning-recv", iox.WithSpin(spinTime))
	require.NoError(t, err)
	defer s.Close()
	rctx, cancel := context.WithCancel(ctx)
	received := make(chan error, 1)
	go func() { _, err := s.Recv(rctx); received <- err }()
	waitSpinning(t)
	cancel()
	select {
	case err := <-received:
		require.ErrorIs(t, err, context.Canceled)
	case <-time.After(5 * time.Second):
		t.Fatalf("Recv goes on spinning after its context ended, until its spin time (%v) runs out", spinTime)
	}
	require.NoError(t, s.Err(), "the end of one Recv's context does not end the subscriber")
	require.NoError(t, s.Close())
}

// A subscriber that shares its publisher with another subscriber gives up its
// processor between the looks of a spin; a lone one does not.
func TestSpinYieldsOnlyInACrowd(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := context.Background()
	spinLooks := func(s *iox.Sub[[]byte], looks uint64) (yields uint64) {
		t.Helper()
		rctx, cancel := context.WithCancel(ctx)
		got := make(chan error, 1)
		go func() { _, err := s.Recv(rctx); got <- err }()
		start, _ := s.SpinCounts()
		eventually(t, "looks while spinning", func() bool { l, _ := s.SpinCounts(); return l >= start+looks })
		cancel()
		require.ErrorIs(t, <-got, context.Canceled)
		_, yields = s.SpinCounts()
		return yields
	}
	lone, err := iox.OpenSub(ctx, node, "crowd", iox.WithSpin(spinTime))
	require.NoError(t, err)
	defer lone.Close()
	require.Zero(t, spinLooks(lone, 2000), "a lone subscriber yielded")

	other, err := iox.OpenSub(ctx, node, "crowd", iox.WithSpin(spinTime))
	require.NoError(t, err)
	defer other.Close()
	// The crowd is asked again a millisecond after the last answer at most.
	eventually(t, "yields in a crowd", func() bool { return spinLooks(lone, 200) > 0 })
}

// A puller that shares its pipeline with another puller gives up its processor
// between the looks of a spin, as a subscriber in a crowd does; a lone one
// does not.
func TestSpinPullersYieldOnlyInACrowd(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := context.Background()
	spinLooks := func(p *iox.Pull[[]byte], looks uint64) (yields uint64) {
		t.Helper()
		rctx, cancel := context.WithCancel(ctx)
		got := make(chan error, 1)
		go func() { _, err := p.Recv(rctx); got <- err }()
		start, _ := p.SpinCounts()
		eventually(t, "looks while spinning", func() bool { l, _ := p.SpinCounts(); return l >= start+looks })
		cancel()
		require.ErrorIs(t, <-got, context.Canceled)
		_, yields = p.SpinCounts()
		return yields
	}
	lone, err := iox.OpenPull(ctx, node, "crowd", iox.WithSpin(spinTime))
	require.NoError(t, err)
	defer lone.Close()
	require.Zero(t, spinLooks(lone, 2000), "a lone puller yielded")

	other, err := iox.OpenPull(ctx, node, "crowd", iox.WithSpin(spinTime))
	require.NoError(t, err)
	defer other.Close()
	eventually(t, "yields in a crowd", func() bool { return spinLooks(lone, 200) > 0 })
}
