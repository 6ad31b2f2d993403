package iox_test

// Misuse of the channel API's faces: the Go channels behind In and Out used
// as no Go channel should be, Recycle given buffers twice or that are not
// its own, loans and views at and past their limits, As over hostile bytes,
// options at their bounds carrying real traffic, channels opened on a closed
// node, and many ends racing for the two ends of one pair. Every call returns,
// every error is typed, and what arrives is what was sent.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
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
	closeOutThenSend(t, ctx, a.Out(), a.Send, b.Recv)
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
	closeOutThenSend(t, ctx, pub.Out(), pub.Send, sub.Recv)
	require.NoError(t, pub.Close())
}

// closeOutThenSend sends a message on out, closes out, sends another with
// send once the first arrived (Out's goroutine is a sender of its own, not
// ordered with Send), and checks that recv gets exactly those two, in order:
// nothing that was never sent (a zero value of the closed channel).
func closeOutThenSend(t *testing.T, ctx context.Context, out chan<- []byte, send func(context.Context, []byte) error, recv func(context.Context) ([]byte, error)) {
	t.Helper()
	out <- []byte("first")
	close(out)
	m, err := recv(ctx)
	require.NoError(t, err)
	require.Equal(t, "first", string(m))
	require.NoError(t, send(ctx, []byte("after close(Out)")))
	m, err = recv(ctx)
	require.NoError(t, err)
	require.Equal(t, "after close(Out)", string(m), "a message that was never sent (a zero value of the closed Out)")
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

// oddCodec refuses to encode odd values and to decode values that are 3 mod
// 4 (it encodes them, the receiving side cannot read them back).
type oddCodec struct{}

func (oddCodec) Append(dst []byte, v uint64) ([]byte, error) {
	if v%2 == 1 && v%4 != 3 {
		return dst, fmt.Errorf("odd value %d", v)
	}
	return append(dst, seqMsg(v)...), nil
}

func (oddCodec) Decode(b []byte) (uint64, error) {
	if len(b) != 8 {
		return 0, fmt.Errorf("%d bytes", len(b))
	}
	v := binary.LittleEndian.Uint64(b)
	if v%4 == 3 {
		return 0, fmt.Errorf("value %d", v)
	}
	return v, nil
}

// A codec that fails only sometimes, on both sides, through every face:
// values it cannot encode fail their Send (or go to OnDrop from Out), values
// it cannot decode come back from Recv as errors (or go to OnDrop from In),
// the channel goes on, everything else arrives once and in order, and the
// senders' Closes confirm (a message the receiver could not decode counts as
// taken: its error told the application).
func TestAPICodecFailingSometimes(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := advCtx(t)
	var outDrops, inDrops atomic.Int64
	a, err := iox.OpenPairOf[uint64](ctx, node, "odd-codec", oddCodec{}, iox.OnDrop(func(error) { outDrops.Add(1) }))
	require.NoError(t, err)
	b, err := iox.OpenPairOf[uint64](ctx, node, "odd-codec", oddCodec{}, iox.OnDrop(func(error) { inDrops.Add(1) }))
	require.NoError(t, err)
	const n = 400
	want := func(v uint64) bool { return v%2 == 0 }
	// Send and Recv
	go func() {
		for v := uint64(0); v < n; v++ {
			err := a.Send(ctx, v)
			if v%2 == 1 && v%4 != 3 {
				assert.ErrorIs(t, err, iox.ErrInvalidArgument, "Send(%d)", v)
			} else {
				assert.NoError(t, err, "Send(%d)", v)
			}
		}
	}()
	for v := uint64(0); v < n; v++ {
		if v%2 == 1 && v%4 != 3 {
			continue // never sent
		}
		got, err := b.Recv(ctx)
		if v%4 == 3 {
			require.ErrorIs(t, err, iox.ErrInvalidArgument, "Recv of undecodable %d", v)
			continue
		}
		require.NoError(t, err)
		require.Equal(t, v, got)
	}
	// Out and In
	go func() {
		for v := uint64(0); v < n; v++ {
			select {
			case a.Out() <- v:
			case <-a.Done():
				return
			}
		}
	}()
	for v := uint64(0); v < n; v++ {
		if !want(v) {
			continue
		}
		got, ok := <-b.In()
		require.True(t, ok, "In closed: %v", b.Err())
		require.Equal(t, v, got)
	}
	eventually(t, "the drops to be reported", func() bool { return outDrops.Load() == n/4 && inDrops.Load() == n/4 })
	require.NoError(t, a.Close())
	_, ok := <-b.In()
	require.False(t, ok)
	require.ErrorIs(t, b.Err(), iox.ErrPeerClosed)
	require.NoError(t, b.Close())
}

// Four goroutines send on Out and four read In while the sender closes:
// every goroutine returns, nothing arrives twice or out of its sender's
// order, and when Close reports success every value handed to Out arrived.
func TestAPIManyOnOutAndInWhileClosing(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := advCtx(t)
	for round := range loops(4, 2, 40) {
		name := fmt.Sprintf("many-out-%d", round)
		a, b := abusePairs(t, ctx, node, name, iox.WithChanCap(4), iox.BufferSize(4))
		const senders, readers = 4, 4
		var handed [senders]atomic.Uint64 // values handed to Out, per sender
		var sendWG, readWG sync.WaitGroup
		for g := range senders {
			sendWG.Add(1)
			go func() {
				defer sendWG.Done()
				for i := uint64(0); ; i++ {
					select {
					case a.Out() <- seqMsg(uint64(g)<<32 | i):
						handed[g].Add(1)
					case <-a.Done():
						return
					}
				}
			}()
		}
		var mu sync.Mutex
		got := map[uint64]bool{}
		last := [senders]int64{-1, -1, -1, -1}
		var bad []string
		for range readers {
			readWG.Add(1)
			go func() {
				defer readWG.Done()
				for m := range b.In() {
					v := binary.LittleEndian.Uint64(m)
					g, i := v>>32, int64(v&0xffffffff)
					mu.Lock()
					if got[v] {
						bad = append(bad, fmt.Sprintf("sender %d's %d twice", g, i))
					}
					got[v] = true
					mu.Unlock()
				}
			}()
		}
		eventually(t, "some traffic", func() bool { mu.Lock(); defer mu.Unlock(); return len(got) > 100 })
		var closeErr error
		within(t, 20*time.Second, "Close", func() { closeErr = a.Close() })
		within(t, 20*time.Second, "the senders on Out", sendWG.Wait)
		within(t, 20*time.Second, "the readers of In", readWG.Wait)
		require.Empty(t, bad)
		// in order per sender: what arrived of each is a prefix of what it sent
		for g := range senders {
			n := int64(0)
			for got[uint64(g)<<32|uint64(n)] {
				n++
			}
			for v := range got {
				if int(v>>32) == g {
					require.Less(t, int64(v&0xffffffff), n, "round %d: sender %d's messages arrived with a gap", round, g)
				}
			}
			last[g] = n
			if closeErr == nil {
				require.Equal(t, int64(handed[g].Load()), n, "round %d: Close returned nil but sender %d's values did not all arrive", round, g)
			}
		}
		if closeErr != nil {
			require.ErrorIs(t, closeErr, iox.ErrUndelivered, "round %d", round)
		}
		require.ErrorIs(t, b.Err(), iox.ErrPeerClosed)
		b.Close()
	}
}

// Pub and Sub outlive the node they were opened on, as pairs do: traffic
// goes on after Node.Close, and their Closes confirm it.
func TestAPIPubSubOutliveTheirClosedNode(t *testing.T) {
	ns := newNamespace(t)
	ctx := advCtx(t)
	node, err := iox.NewNode(iox.WithIsolation(ns.prefix, ns.root))
	require.NoError(t, err)
	pub, err := iox.OpenPub(ctx, node, "outlive-ps")
	require.NoError(t, err)
	sub, err := iox.OpenSub(ctx, node, "outlive-ps")
	require.NoError(t, err)
	waitSubscribers(t, pub, 1)
	require.NoError(t, node.Close())
	for i := range 100 {
		require.NoError(t, pub.Send(ctx, seqMsg(uint64(i))))
	}
	for i := range 100 {
		m, err := sub.Recv(ctx)
		require.NoError(t, err)
		require.Equal(t, seqMsg(uint64(i)), m)
	}
	within(t, 20*time.Second, "the Closes", func() {
		require.NoError(t, pub.Close())
		require.NoError(t, sub.Close())
	})
}

// A pusher and a puller that know each other go on after their node was
// closed, as every channel does ("Services and ports opened through a node
// stay usable after the node is closed"): the puller receives what the
// pusher sent.
func TestAPIPipelineOutlivesItsClosedNode(t *testing.T) {
	ns := newNamespace(t)
	ctx := advCtx(t)
	node, err := iox.NewNode(iox.WithIsolation(ns.prefix, ns.root))
	require.NoError(t, err)
	push, err := iox.OpenPush(ctx, node, "outlive-pp", iox.WithLinger(100*time.Millisecond))
	require.NoError(t, err)
	defer push.Close()
	pull, err := iox.OpenPull(ctx, node, "outlive-pp", iox.WithLinger(100*time.Millisecond))
	require.NoError(t, err)
	defer pull.Close()
	eventually(t, "the pusher to know its puller", func() bool { return push.Pullers() == 1 })
	require.NoError(t, node.Close())
	for i := range 10 {
		require.NoError(t, push.Send(ctx, seqMsg(uint64(i))))
	}
	short, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	for i := range 10 {
		m, err := pull.Recv(short)
		require.NoError(t, err, "message %d", i)
		require.Equal(t, seqMsg(uint64(i)), m)
	}
	require.NoError(t, push.Close())
	require.NoError(t, pull.Close())
}

// A publisher waiting for three subscribers counts only live ones: a
// subscriber process that joined and was killed is not one of the three, so
// with two live subscribers nothing goes out; once a third joins, each of
// the three gets every message.
func TestAPIWaitSubscribersCountsOnlyTheLiving(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := advCtx(t)
	const name = "wait-living"
	pub, err := iox.OpenPub(ctx, node, name, iox.WaitSubscribers(3))
	require.NoError(t, err)
	defer pub.Close()
	s1, err := iox.OpenSub(ctx, node, name)
	require.NoError(t, err)
	defer s1.Close()
	for i := range 10 {
		require.NoError(t, pub.Send(ctx, seqMsg(uint64(i))))
	}
	c := spawn(t, ns, "adv-sub-idle", "IOX_SERVICE="+name)
	c.expect("ready")
	waitSubscribers(t, pub, 2)
	c.kill()
	s2, err := iox.OpenSub(ctx, node, name)
	require.NoError(t, err)
	defer s2.Close()
	waitSubscribers(t, pub, 2) // the dead one gone, s2 there
	// A negative check: 300 ms is how long we look, not a synchronisation.
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	m, err := s1.Recv(short)
	cancel()
	require.ErrorIs(t, err, context.DeadlineExceeded, "with two live subscribers of three, %x arrived", m)
	s3, err := iox.OpenSub(ctx, node, name)
	require.NoError(t, err)
	defer s3.Close()
	for k, s := range []*iox.Sub[[]byte]{s1, s2, s3} {
		for i := range 10 {
			m, err := s.Recv(ctx)
			require.NoError(t, err, "subscriber %d, message %d", k+1, i)
			require.Equal(t, seqMsg(uint64(i)), m, "subscriber %d", k+1)
		}
	}
	require.NoError(t, pub.Close())
	sweepDead(t, ns)
}

// A pusher whose node was closed still reaches a puller that comes later,
// as pullers and pushers "may come and go in any order" and channels
// outlive their node: its messages must not wait forever in the pusher
// while a puller waits for them.
func TestAPIPushAfterNodeCloseReachesANewPuller(t *testing.T) {
	ns := newNamespace(t)
	ctx := advCtx(t)
	node, err := iox.NewNode(iox.WithIsolation(ns.prefix, ns.root))
	require.NoError(t, err)
	push, err := iox.OpenPush(ctx, node, "late-after-close", iox.WithLinger(100*time.Millisecond))
	require.NoError(t, err)
	defer push.Close()
	require.NoError(t, node.Close())
	pull, err := iox.OpenPull(ctx, ns.node(t), "late-after-close")
	require.NoError(t, err)
	defer pull.Close()
	for i := range 10 {
		require.NoError(t, push.Send(ctx, seqMsg(uint64(i))))
	}
	short, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	for i := range 10 {
		m, err := pull.Recv(short)
		require.NoError(t, err, "message %d: the pusher knows %d pullers", i, push.Pullers())
		require.Equal(t, seqMsg(uint64(i)), m)
	}
	require.NoError(t, push.Close())
}

// Odd namespaces: prefixes that cannot name shared memory are ErrInvalidName,
// an empty one (the default namespace's) is ErrInvalidArgument;
// a relative root, which iceoryx2 would put under the working directory and
// RemoveIsolation refuses (so its node-counter segment would stay in
// /dev/shm for good), is ErrInvalidArgument and makes nothing; a root with
// ".." and spaces works and is removed whole.
func TestAPIOddIsolation(t *testing.T) {
	ns := newNamespace(t)
	cwd := t.TempDir()
	t.Chdir(cwd)
	for _, prefix := range []string{"a/b_", "..", "z\n_", "t*?_"} {
		_, err := iox.NewNode(iox.WithIsolation(prefix, ns.root))
		require.ErrorIs(t, err, iox.ErrInvalidName, "prefix %q", prefix)
		requireTyped(t, err, prefix)
	}
	// an empty prefix would be iceoryx2's default one: the default
	// namespace's shared memory, under another root folder
	_, err := iox.NewNode(iox.WithIsolation("", ns.root))
	require.ErrorIs(t, err, iox.ErrInvalidArgument)
	requireTyped(t, err, "empty prefix")
	_, err = iox.NewNode(iox.WithIsolation(ns.prefix+"rel_", "relative/dir"))
	require.ErrorIs(t, err, iox.ErrInvalidArgument, "a relative root")
	requireTyped(t, err, "a relative root")
	entries, _ := os.ReadDir(cwd)
	require.Empty(t, entries, "a refused root made something in the working directory")
	require.Empty(t, leftovers(ns.prefix+"rel_"), "a refused root left shared memory")

	odd := ns.root + "../" + filepath.Base(ns.root) + "/with space/"
	node, err := iox.NewNode(iox.WithIsolation(ns.prefix+"odd_", odd))
	require.NoError(t, err)
	ctx := advCtx(t)
	a, b := abusePairs(t, ctx, node, "odd")
	require.NoError(t, a.Send(ctx, []byte("x")))
	m, err := b.Recv(ctx)
	require.NoError(t, err)
	require.Equal(t, "x", string(m))
	closeBoth(t, a, b)
	require.NoError(t, node.Close())
	require.NoError(t, iox.RemoveIsolation(ns.prefix+"odd_", odd))
	require.Empty(t, leftovers(ns.prefix+"odd_"))
}
