package iox_test

// Misuse of the channel API's faces: the Go channels behind In and Out used
// as no Go channel should be, Recycle given buffers twice or that are not
// its own, loans and views at and past their limits, As over hostile bytes,
// options at their bounds carrying real traffic, channels opened on a closed
// node, and many ends racing for the two ends of one pair. Every call returns,
// every error is typed, and what arrives is what was sent.

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/iox-go/iox"
)

// A program that closes the channel Out returned (as a producer closes the
// channel it sends on when it is done) makes the goroutine behind Out stop:
// it must not take the closed channel's zero values for messages and send
// them to the peer, an endless stream of messages nobody sent. What is sent
// afterwards with Send arrives next, and Close confirms it.
func TestAPIClosingOutSendsNoZeroValues(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := advCtx(t)
	a, b := abusePairs(t, ctx, node, "closed-out")
	out := a.Out()
	out <- []byte("first")
	close(out)
	require.NoError(t, a.Send(ctx, []byte("after close(Out)")))
	for _, want := range []string{"first", "after close(Out)"} {
		m, err := b.Recv(ctx)
		require.NoError(t, err)
		require.Equal(t, want, string(m), "b received a message a never sent (a zero value of the closed Out)")
	}
	require.NoError(t, a.Close())
	m, err := b.Recv(ctx)
	require.ErrorIs(t, err, iox.ErrPeerClosed, "after a's Close, b got %q", m)

	// the same for a publisher's Out
	pub, err := iox.OpenPub(ctx, node, "closed-out-pub")
	require.NoError(t, err)
	sub, err := iox.OpenSub(ctx, node, "closed-out-pub")
	require.NoError(t, err)
	defer sub.Close()
	waitSubscribers(t, pub, 1)
	pout := pub.Out()
	pout <- []byte("p-first")
	close(pout)
	require.NoError(t, pub.Send(ctx, []byte("p-after")))
	for _, want := range []string{"p-first", "p-after"} {
		m, err := sub.Recv(ctx)
		require.NoError(t, err)
		require.Equal(t, want, string(m), "the subscriber received a message the publisher never sent")
	}
	require.NoError(t, pub.Close())
}

// Recycle of one buffer twice hands the same memory to the free list twice;
// two later messages must still be two buffers, not one that the second
// message overwrites while the first is held.
func TestAPIRecycleTwiceDoesNotAlias(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := advCtx(t)
	a, b := abusePairs(t, ctx, node, "recycle-twice")
	require.NoError(t, a.Send(ctx, []byte("0123456789")))
	m, err := b.Recv(ctx)
	require.NoError(t, err)
	b.Recycle(nil)                // nothing to keep
	b.Recycle([]byte{})           // nothing to keep
	b.Recycle(make([]byte, 0, 1)) // a foreign buffer too small for what comes: dropped
	b.Recycle(m)
	b.Recycle(m)
	require.NoError(t, a.Send(ctx, []byte("AAAA")))
	require.NoError(t, a.Send(ctx, []byte("BBBB")))
	x, err := b.Recv(ctx)
	require.NoError(t, err)
	y, err := b.Recv(ctx)
	require.NoError(t, err)
	require.Equal(t, "AAAA", string(x), "the first message was overwritten by the second (one buffer recycled twice)")
	require.Equal(t, "BBBB", string(y))
}

// Loans at the limits of MaxMessageSize: exactly the limit goes and arrives
// whole, one byte more is ErrMessageTooLarge, and a limit as large as an int
// leaves a huge loan a typed error rather than a crash.
func TestAPILoanAtTheLimits(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := advCtx(t)
	const limit = 256 << 10
	a, b := abusePairs(t, ctx, node, "loan-limits", iox.MaxMessageSize(limit))
	l, err := a.Loan(ctx, limit)
	require.NoError(t, err)
	require.Len(t, l.Bytes(), limit)
	copy(l.Bytes(), pattern(limit, 3))
	require.NoError(t, a.SendLoan(ctx, l))
	m, err := b.Recv(ctx)
	require.NoError(t, err)
	require.Equal(t, pattern(limit, 3), m)
	_, err = a.Loan(ctx, limit+1)
	require.ErrorIs(t, err, iox.ErrMessageTooLarge)
	requireTyped(t, err, "Loan(limit+1)")
	_, err = a.Loan(ctx, math.MinInt)
	require.ErrorIs(t, err, iox.ErrInvalidArgument)

	c, d := abusePairs(t, ctx, node, "loan-huge", iox.MaxMessageSize(math.MaxInt))
	for _, n := range []int{math.MaxInt, 1 << 50} {
		l, err := c.Loan(ctx, n)
		if err == nil {
			l.Release()
			t.Fatalf("Loan(%d) succeeded", n)
		}
		requireTyped(t, err, fmt.Sprintf("Loan(%d)", n))
	}
	require.NoError(t, c.Send(ctx, []byte("still fine")))
	m, err = d.Recv(ctx)
	require.NoError(t, err)
	require.Equal(t, "still fine", string(m))
}

// As over hostile bytes and types: nil and empty slices, sizes one short and
// one long, every misalignment, types that hold pointers, strings, slices,
// maps, interfaces, funcs or channels, and types of no size. Each is a typed
// ErrInvalidArgument, never a panic.
func TestAPIAsRefusesHostileInput(t *testing.T) {
	type rec struct {
		A uint64
		B int32
		C bool
		_ [3]byte
	}
	buf := make([]byte, 64)
	refuse := func(what string, f func() error) {
		t.Helper()
		var err error
		require.NotPanics(t, func() { err = f() }, what)
		require.ErrorIs(t, err, iox.ErrInvalidArgument, what)
		requireTyped(t, err, what)
	}
	refuse("nil", func() error { _, err := iox.As[rec](nil); return err })
	refuse("empty", func() error { _, err := iox.As[rec](buf[:0]); return err })
	refuse("short", func() error { _, err := iox.As[rec](buf[:15]); return err })
	refuse("long", func() error { _, err := iox.As[rec](buf[:17]); return err })
	for off := 1; off < 8; off++ {
		refuse(fmt.Sprintf("offset %d", off), func() error { _, err := iox.As[rec](buf[off : off+16]); return err })
	}
	refuse("string", func() error { _, err := iox.As[string](buf[:16]); return err })
	refuse("slice", func() error { _, err := iox.As[[]byte](buf[:24]); return err })
	refuse("map", func() error { _, err := iox.As[map[int]int](buf[:8]); return err })
	refuse("interface", func() error { _, err := iox.As[any](buf[:16]); return err })
	refuse("func", func() error { _, err := iox.As[func()](buf[:8]); return err })
	refuse("chan", func() error { _, err := iox.As[chan int](buf[:8]); return err })
	refuse("uintptr-free pointer in array", func() error { _, err := iox.As[[2]*int](buf[:16]); return err })
	refuse("nested string", func() error {
		_, err := iox.As[struct {
			A int64
			S struct{ S string }
		}](buf[:24])
		return err
	})
	refuse("huge array over small bytes", func() error { _, err := iox.As[[1 << 40]byte](buf); return err })
	// a type of no size over no bytes: no memory to point at
	var zp *struct{}
	var zerr error
	require.NotPanics(t, func() { zp, zerr = iox.As[struct{}](nil) })
	if zerr == nil {
		require.NotNil(t, zp, "As of a zero-size type returned neither a pointer nor an error")
	} else {
		requireTyped(t, zerr, "As[struct{}](nil)")
	}
	b := make([]byte, 16)
	b[12] = 1
	p, err := iox.As[rec](b)
	require.NoError(t, err)
	require.True(t, p.C)
}

// Channels opened on a closed node are refused with a typed error and leave
// nothing behind (the namespace check at the end of the test).
func TestAPIOpenOnAClosedNode(t *testing.T) {
	ns := newNamespace(t)
	ctx := advCtx(t)
	node := ns.node(t)
	require.NoError(t, node.Close())
	opens := map[string]func() (interface{ Close() error }, error){
		"pair": func() (interface{ Close() error }, error) { return iox.OpenPair(ctx, node, "closed-node") },
		"pub":  func() (interface{ Close() error }, error) { return iox.OpenPub(ctx, node, "closed-node") },
		"sub":  func() (interface{ Close() error }, error) { return iox.OpenSub(ctx, node, "closed-node") },
		"push": func() (interface{ Close() error }, error) { return iox.OpenPush(ctx, node, "closed-node") },
		"pull": func() (interface{ Close() error }, error) { return iox.OpenPull(ctx, node, "closed-node") },
	}
	for what, open := range opens {
		var c interface{ Close() error }
		var err error
		within(t, 10*time.Second, "opening a "+what+" on a closed node", func() { c, err = open() })
		if err == nil {
			c.Close()
			t.Fatalf("%s opened on a closed node", what)
		}
		require.ErrorIs(t, err, iox.ErrClosed, what)
		requireTyped(t, err, what)
	}
}

// Three goroutines, each with a node of its own, open the same pair at once:
// exactly two get an end, the third ErrPairFull (not ErrBusy, not a service
// error), and the two that got one see each other and carry a stream both
// ways.
func TestAPIThreeOpenOnePairAtOnce(t *testing.T) {
	ns := newNamespace(t)
	ctx := advCtx(t)
	nodes := []*iox.Node{ns.node(t), ns.node(t), ns.node(t)}
	for round := range loops(6, 3, 40) {
		name := fmt.Sprintf("three-%d", round)
		var wg sync.WaitGroup
		ends := make([]*iox.Pair[[]byte], 3)
		errs := make([]error, 3)
		start := make(chan struct{})
		for i := range 3 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				ends[i], errs[i] = iox.OpenPair(ctx, nodes[i], name)
			}()
		}
		close(start)
		wg.Wait()
		var got []*iox.Pair[[]byte]
		for i, err := range errs {
			if err == nil {
				got = append(got, ends[i])
				continue
			}
			require.ErrorIs(t, err, iox.ErrPairFull, "round %d, opener %d: %s", round, i, kindOf(err))
		}
		require.Len(t, got, 2, "round %d: ends opened", round)
		eventually(t, "the ends to see each other", func() bool { return got[0].Connected() && got[1].Connected() })
		require.NoError(t, exchange(ctx, got[0], got[1], 200), "round %d", round)
		closeBoth(t, got[0], got[1])
	}
}

// exchange sends n sequence numbers each way between the ends a and b at
// once and checks that they arrive in order.
func exchange(ctx context.Context, a, b *iox.Pair[[]byte], n uint64) error {
	errc := make(chan error, 1)
	go func() { errc <- streamBoth(ctx, a, n) }()
	return errors.Join(streamBoth(ctx, b, n), <-errc)
}

// closeBoth closes two ends of a pair at once and requires both Closes to
// return nil: each peer read everything.
func closeBoth(t *testing.T, a, b *iox.Pair[[]byte]) {
	t.Helper()
	errc := make(chan error, 2)
	go func() { errc <- a.Close() }()
	go func() { errc <- b.Close() }()
	require.NoError(t, errors.Join(<-errc, <-errc))
}

// The smallest settings that carry traffic: a one-message queue, no Go
// channel capacity and no spinning, so that every message waits for room and
// every receiver parks. Messages go both ways through Send/Recv and through
// Out/In, all arrive in order, and Close confirms them; a linger of an hour
// and the shortest peer timeout change nothing of that.
func TestAPISmallestSettingsCarryTraffic(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := advCtx(t)
	opts := []iox.Option{iox.BufferSize(1), iox.WithChanCap(0), iox.WithSpin(0), iox.WithRecycling(0),
		iox.WithLinger(time.Hour), iox.WithPeerTimeout(4 * time.Millisecond)}
	a, b := abusePairs(t, ctx, node, "smallest", opts...)
	n := uint64(loops(2000, 500, 50000))
	require.NoError(t, exchange(ctx, a, b, n))
	// through the Go channels
	errc := make(chan error, 2)
	go func() {
		for i := uint64(0); i < n; i++ {
			select {
			case a.Out() <- seqMsg(i):
			case <-a.Done():
				errc <- a.Err()
				return
			}
		}
		errc <- nil
	}()
	go func() {
		for i := uint64(0); i < n; i++ {
			m, ok := <-b.In()
			if !ok {
				errc <- fmt.Errorf("In closed after %d: %w", i, b.Err())
				return
			}
			if string(m) != string(seqMsg(i)) {
				errc <- fmt.Errorf("message %d: got %x", i, m)
				return
			}
		}
		errc <- nil
	}()
	require.NoError(t, errors.Join(<-errc, <-errc))
	closeBoth(t, a, b)
}
