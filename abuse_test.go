package iox_test

// Hostile use of the channel core: Close racing every call, contexts ending
// while sends wait, loans and views across Close, loans of another channel,
// and peers stopped or killed in the middle of streams of packed, large and
// borrowed messages. Every call returns, every error is typed, and what a
// receiver gets is what its sender reported sent, once each, in order.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/iox-go/iox"
)

// abusePairs opens both ends of the pair name in this process and waits until
// they see each other.
func abusePairs(t *testing.T, ctx context.Context, node *iox.Node, name string, opts ...iox.Option) (*iox.Pair[[]byte], *iox.Pair[[]byte]) {
	t.Helper()
	a, err := iox.OpenPair(ctx, node, name, opts...)
	require.NoError(t, err)
	t.Cleanup(func() { a.Close() })
	b, err := iox.OpenPair(ctx, node, name, opts...)
	require.NoError(t, err)
	t.Cleanup(func() { b.Close() })
	eventually(t, "the ends to see each other", func() bool { return a.Connected() && b.Connected() })
	return a, b
}

// SendLoan refuses a Loan made by another channel's end with
// ErrInvalidArgument, and the loan stays as it was: its sample is the other
// end's publisher's, and would go out on the other channel (with this one's
// header, counted as sent here, while this channel's peer gets nothing and
// then drops every later message as out of sequence). Both channels go on,
// and the loan can then be sent where it was made.
func TestAbuseSendLoanOfAnotherChannelsLoan(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := advCtx(t)
	a0, a1 := abusePairs(t, ctx, node, "loan-a")
	b0, b1 := abusePairs(t, ctx, node, "loan-b")
	// one message each way first, so that each end knows its peer's word
	for _, p := range [][2]*iox.Pair[[]byte]{{a0, a1}, {b0, b1}} {
		require.NoError(t, p[0].Send(ctx, []byte("hello")))
		m, err := p[1].Recv(ctx)
		require.NoError(t, err)
		require.Equal(t, "hello", string(m))
	}
	l, err := a0.Loan(ctx, 5)
	require.NoError(t, err)
	copy(l.Bytes(), "loanA")
	err = b0.SendLoan(ctx, l)
	require.ErrorIs(t, err, iox.ErrInvalidArgument, "b0.SendLoan of a0's loan")
	require.Contains(t, err.Error(), "another channel end")
	require.Equal(t, "loanA", string(l.Bytes()), "the refused loan is as it was")
	require.NoError(t, b0.Send(ctx, []byte("b-next")))
	require.NoError(t, a0.SendLoan(ctx, l), "the loan goes where it was made")
	m, err := b1.Recv(ctx)
	require.NoError(t, err)
	require.Equal(t, "b-next", string(m))
	m, err = a1.Recv(ctx)
	require.NoError(t, err)
	require.Equal(t, "loanA", string(m))
}

// A Send, SendLoan or large Send whose context ends while it waits for room
// either delivers its message (nil) or does not (the context's error): the
// receiver gets exactly the messages whose sends returned nil, once each, in
// order.
func TestAbuseCancelWhileSendWaits(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := advCtx(t)
	a, b := abusePairs(t, ctx, node, "cancel-wait", iox.BufferSize(2), iox.WithChanCap(2))
	var accepted []uint64
	got := make(chan uint64, 100000)
	recvErr := make(chan error, 1)
	go func() {
		for {
			m, err := b.Recv(ctx)
			if err != nil {
				recvErr <- err
				return
			}
			got <- binary.LittleEndian.Uint64(m)
			if rand.IntN(4) == 0 {
				time.Sleep(time.Duration(rand.IntN(200)) * time.Microsecond) // a slow reader, so sends wait
			}
		}
	}()
	for i := uint64(0); i < 3000; i++ {
		sctx, cancel := context.WithTimeout(ctx, time.Duration(rand.IntN(300))*time.Microsecond)
		var err error
		switch i % 3 {
		case 0:
			err = a.Send(sctx, seqMsg(i))
		case 1:
			m := make([]byte, 80<<10)
			binary.LittleEndian.PutUint64(m, i)
			err = a.Send(sctx, m)
		case 2:
			var l *iox.Loan
			l, err = a.Loan(ctx, 8)
			require.NoError(t, err)
			binary.LittleEndian.PutUint64(l.Bytes(), i)
			err = a.SendLoan(sctx, l)
		}
		cancel()
		if err == nil {
			accepted = append(accepted, i)
			continue
		}
		require.True(t, errors.Is(err, context.DeadlineExceeded), "send %d: %v", i, err)
	}
	t.Logf("%d of 3000 sends accepted", len(accepted))
	require.NoError(t, a.Close(), "every accepted message confirmed")
	var rerr error
	select { // the receiver ends once it took everything
	case rerr = <-recvErr:
	case <-time.After(20 * time.Second):
		t.Fatal("the receiver did not end")
	}
	require.ErrorIs(t, rerr, iox.ErrPeerClosed)
	close(got)
	var seen []uint64
	for v := range got {
		seen = append(seen, v)
	}
	require.Equal(t, accepted, seen)
}

// A Loan of 0 bytes goes as an empty message, in place and as a view.
func TestAbuseLoanOfZeroBytes(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := advCtx(t)
	a, b := abusePairs(t, ctx, node, "loan-zero")
	require.NoError(t, a.Send(ctx, []byte("x")))
	_, err := b.Recv(ctx)
	require.NoError(t, err)
	for i := 0; i < 4; i++ {
		l, err := a.Loan(ctx, 0)
		require.NoError(t, err)
		require.Len(t, l.Bytes(), 0)
		require.NoError(t, a.SendLoan(ctx, l))
		if i%2 == 0 {
			m, err := b.Recv(ctx)
			require.NoError(t, err)
			require.Len(t, m, 0)
		} else {
			v, err := b.RecvView(ctx)
			require.NoError(t, err)
			require.Len(t, v.Bytes(), 0)
			v.Release()
		}
	}
	require.NoError(t, a.Send(ctx, []byte("after")))
	m, err := b.Recv(ctx)
	require.NoError(t, err)
	require.Equal(t, "after", string(m))
}

// Loans and views held across Close are released afterwards (twice), and a
// loan sent after Close is refused with ErrClosed; a View stays readable.
func TestAbuseLoansAndViewsAcrossClose(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := advCtx(t)
	a, b := abusePairs(t, ctx, node, "across-close")
	require.NoError(t, a.Send(ctx, []byte("x")))
	_, err := b.Recv(ctx)
	require.NoError(t, err)
	l1, err := a.Loan(ctx, 64<<10)
	require.NoError(t, err)
	l2, err := a.Loan(ctx, 16)
	require.NoError(t, err)
	copy(l2.Bytes(), "in place please!")
	require.NoError(t, a.SendLoan(ctx, l2))
	v, err := b.RecvView(ctx)
	require.NoError(t, err)
	require.Equal(t, "in place please!", string(v.Bytes()))
	within(t, 10*time.Second, "closing both ends", func() {
		b.Close()
		a.Close()
	})
	require.Equal(t, "in place please!", string(v.Bytes()), "a view stays readable after Close")
	require.ErrorIs(t, a.SendLoan(ctx, l1), iox.ErrClosed)
	l1.Release()
	v.Release()
	v.Release()
	_, err = a.Loan(ctx, 8)
	require.ErrorIs(t, err, iox.ErrClosed)
	_, err = b.RecvView(ctx)
	require.ErrorIs(t, err, iox.ErrClosed)
}

// abuseMsg is message i of sender goroutine g, size bytes (at least 16).
func abuseMsg(g, i uint64, size int) []byte {
	m := make([]byte, max(size, 16))
	binary.LittleEndian.PutUint64(m, g)
	binary.LittleEndian.PutUint64(m[8:], i)
	return m
}

// Close racing every operation of both ends, from several goroutines, and a
// second Close at the same time: every call returns, every error is typed, and
// each sending goroutine's messages arrive once each and in order (a prefix of
// what it sent, up to the end).
func TestAbuseCloseRacesEverything(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := advCtx(t)
	for round := 0; round < 40; round++ {
		a, b := abusePairs(t, ctx, node, fmt.Sprintf("race-%d", round), iox.BufferSize(4), iox.WithChanCap(8))
		var wg sync.WaitGroup
		var mu sync.Mutex
		last := map[uint64]int64{} // sender goroutine -> last sequence seen
		var bad []string
		check := func(who string, m []byte) {
			if len(m) < 16 {
				mu.Lock()
				bad = append(bad, fmt.Sprintf("%s: message of %d bytes", who, len(m)))
				mu.Unlock()
				return
			}
			g, i := binary.LittleEndian.Uint64(m), int64(binary.LittleEndian.Uint64(m[8:]))
			mu.Lock()
			if l, ok := last[g]; ok && i <= l {
				bad = append(bad, fmt.Sprintf("%s: sender %d: %d after %d", who, g, i, l))
			}
			last[g] = i
			mu.Unlock()
		}
		errs := make(chan string, 1000)
		typed := func(what string, err error) bool {
			if err == nil {
				return true
			}
			if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
				errs <- what + ": " + err.Error()
				return false
			}
			var e *iox.Error
			if !errors.As(err, &e) {
				errs <- fmt.Sprintf("%s: untyped %v", what, err)
			}
			return false
		}
		gor := func(f func()) { wg.Add(1); go func() { defer wg.Done(); f() }() }
		rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		for g, sizes := range [][]int{{16}, {16, 100 << 10}, {16, 300}} {
			gor(func() {
				for i := uint64(0); ; i++ {
					if !typed("send", a.Send(rctx, abuseMsg(uint64(g), i, sizes[int(i)%len(sizes)]))) {
						return
					}
				}
			})
		}
		gor(func() { // loans
			for i := uint64(0); ; i++ {
				l, err := a.Loan(rctx, 16)
				if errors.Is(err, iox.ErrTooManyLoans) {
					continue
				}
				if !typed("loan", err) {
					return
				}
				copy(l.Bytes(), abuseMsg(9, i, 16))
				if !typed("send loan", a.SendLoan(rctx, l)) {
					return
				}
			}
		})
		gor(func() { // from b, on Out
			out := b.Out()
			for i := uint64(0); ; i++ {
				select {
				case out <- abuseMsg(20, i, 16):
				case <-b.Done():
					return
				case <-rctx.Done():
					errs <- "out: " + rctx.Err().Error()
					return
				}
			}
		})
		gor(func() { // Recv and RecvView in turn (one goroutine: the order is checked)
			for k := 0; ; k++ {
				var m []byte
				var v *iox.View
				var err error
				if k%2 == 0 {
					m, err = b.Recv(rctx)
				} else if v, err = b.RecvView(rctx); err == nil {
					m = v.Bytes()
				}
				if errors.Is(err, iox.ErrTooManyLoans) {
					continue
				}
				if !typed("recv", err) {
					return
				}
				check("b", m)
				if v != nil {
					v.Release()
				}
			}
		})
		gor(func() {
			in := a.In()
			for {
				select {
				case m, ok := <-in:
					if !ok {
						return
					}
					check("a", m)
				case <-rctx.Done():
					errs <- "in: " + rctx.Err().Error()
					return
				}
			}
		})
		// let it flow a little, then close from all sides
		eventually(t, "traffic", func() bool { mu.Lock(); defer mu.Unlock(); return len(last) >= 3 })
		closes := make(chan error, 4)
		for _, p := range []*iox.Pair[[]byte]{a, a, b, b} {
			gor(func() { closes <- p.Close() })
		}
		within(t, 30*time.Second, fmt.Sprintf("round %d: every call to return", round), wg.Wait)
		cancel()
		close(errs)
		for e := range errs {
			t.Errorf("round %d: %s", round, e)
		}
		close(closes)
		closed := 0
		for err := range closes {
			if errors.Is(err, iox.ErrClosed) {
				closed++
			} else if err != nil {
				typed("close", err)
			}
		}
		require.GreaterOrEqual(t, closed, 2, "round %d: second Close of each end says ErrClosed", round)
		require.Empty(t, bad, "round %d", round)
		if t.Failed() {
			return
		}
	}
}

func init() {
	children["abuse-pair-send"] = childAbusePairSend
	children["abuse-pair-hold"] = childAbusePairHold
	children["abuse-pair-quit"] = childAbusePairQuit
}

// childAbusePairQuit opens the pair IOX_SERVICE (BufferSize 2), reads
// nothing, says "ready", and when the parent says so closes its end without
// lingering and exits at once.
func childAbusePairQuit() error {
	node, err := nsFromEnv().childNode()
	if err != nil {
		return err
	}
	p, err := iox.OpenPair(context.Background(), node, os.Getenv("IOX_SERVICE"), iox.BufferSize(2), iox.WithLinger(0))
	if err != nil {
		return err
	}
	fmt.Println("ready")
	parentSays()
	p.Close()
	node.Close()
	return nil
}

// A large Send that waits for room while its peer closes its end and exits
// at once (its process gone before its bye or its leaving was read, or
// after) returns a typed error, never the internal end of a wait.
func TestAbuseLargeSendWhilePeerQuits(t *testing.T) {
	largeSendWhilePeerEnds(t, func(c *child) { c.say("quit"); c.wait() }, iox.ErrPeerClosed)
}

// A large Send that waits for room while its peer's process is killed ends
// with ErrPeerCrashed: the pair's end, or the end on its way when the send
// gives up before the pair has ended.
func TestAbuseLargeSendWhilePeerKilled(t *testing.T) {
	largeSendWhilePeerEnds(t, (*child).kill, iox.ErrPeerCrashed)
}

// largeSendWhilePeerEnds sends 100 KiB messages on a pair whose peer reads
// nothing until Send waits for room, then ends the peer with end, and checks
// that Send returns an *iox.Error of kind want. end returns once the peer's
// process is gone.
func largeSendWhilePeerEnds(t *testing.T, end func(*child), want error) {
	for round := range loops(20, 8, 100) {
		ns := newNamespace(t)
		node := ns.node(t)
		ctx := advCtx(t)
		c := spawn(t, ns, "abuse-pair-quit", "IOX_SERVICE=quit")
		c.expect("ready")
		p, err := iox.OpenPair(ctx, node, "quit", iox.BufferSize(2), iox.WithPeerTimeout(100*time.Millisecond))
		require.NoError(t, err)
		eventually(t, "the pair to connect", p.Connected)
		sent, done := sendSeq(ctx, p.Send, 100<<10, -1)
		waitHeldBack(t, "iox.(*Pair[...]).Send", sent.Load)
		end(c)
		err = <-done
		var e *iox.Error
		require.ErrorAs(t, err, &e, "round %d: %v", round, err)
		require.ErrorIs(t, err, want, "round %d", round)
		p.Close()
		sweepDead(t, ns)
	}
}

// childAbusePairSend opens the pair IOX_SERVICE (peer timeout 200 ms), sends
// IOX_COUNT messages of IOX_SIZE bytes (seqMsg at their start) once the peer
// is there, and says "closed KIND" with its Close's result.
func childAbusePairSend() error {
	node, err := nsFromEnv().childNode()
	if err != nil {
		return err
	}
	defer node.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	p, err := iox.OpenPair(ctx, node, os.Getenv("IOX_SERVICE"), iox.WithPeerTimeout(200*time.Millisecond), iox.WithLinger(10*time.Second))
	if err != nil {
		return err
	}
	if !waitUntil(20*time.Second, p.Connected) {
		return errors.New("no peer")
	}
	fmt.Println("ready")
	n, size := envInt("IOX_COUNT"), envInt("IOX_SIZE")
	for i := range uint64(n) {
		m := make([]byte, max(size, 8))
		binary.LittleEndian.PutUint64(m, i)
		if err := p.Send(ctx, m); err != nil {
			return fmt.Errorf("send %d: %w", i, err)
		}
	}
	fmt.Println("closed", kindOf(p.Close()))
	return nil
}

// childAbusePairHold opens the pair IOX_SERVICE with MaxBorrowed(4), takes
// three messages as views and holds them, says "holding", and waits to be
// killed.
func childAbusePairHold() error {
	node, err := nsFromEnv().childNode()
	if err != nil {
		return err
	}
	ctx := context.Background()
	p, err := iox.OpenPair(ctx, node, os.Getenv("IOX_SERVICE"), iox.MaxBorrowed(4), iox.BufferSize(8))
	if err != nil {
		return err
	}
	fmt.Println("ready")
	for i := 0; i < 3; i++ {
		if _, err := p.RecvView(ctx); err != nil {
			return err
		}
	}
	fmt.Println("holding")
	parentSays()
	return nil
}

// A sending peer stopped (SIGSTOP) in the middle of a stream, for longer than
// its peer timeout, then continued: every message arrives once, in order, and
// its Close is confirmed. Small (packed) and large messages.
func TestAbusePairPeerStoppedMidStream(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := advCtx(t)
	for round, size := range []int{8, 100 << 10} {
		n := uint64(200000)
		if size > 1000 {
			n = 3000
		}
		name := fmt.Sprintf("stopped-%d", round)
		p, err := iox.OpenPair(ctx, node, name, iox.WithPeerTimeout(200*time.Millisecond))
		require.NoError(t, err)
		c := spawn(t, ns, "abuse-pair-send", "IOX_SERVICE="+name, fmt.Sprintf("IOX_COUNT=%d", n), fmt.Sprintf("IOX_SIZE=%d", size))
		t.Cleanup(func() { c.cmd.Process.Kill() })
		c.expect("ready")
		for i := uint64(0); i < n; i++ {
			if i == n/3 {
				c.stop()
				time.Sleep(time.Second) // the stimulus: stopped for 5 peer timeouts
				require.NotErrorIs(t, p.Err(), iox.ErrPeerCrashed, "a stopped peer is not gone")
				require.NoError(t, c.cmd.Process.Signal(syscall.SIGCONT))
			}
			m, err := p.Recv(ctx)
			require.NoError(t, err, "round %d: message %d", round, i)
			require.Equal(t, i, binary.LittleEndian.Uint64(m), "round %d", round)
			require.Len(t, m, max(size, 8))
		}
		_, err = p.Recv(ctx)
		require.ErrorIs(t, err, iox.ErrPeerClosed, "round %d", round)
		require.Equal(t, "nil", c.expectPrefix("closed "), "round %d: the sender's Close", round)
		c.wait()
		require.NoError(t, p.Close())
	}
}

// A sending peer killed in the middle of a stream: the receiver gets a prefix
// of the stream, once each and in order, then ErrPeerCrashed; nothing hangs.
func TestAbusePairPeerKilledMidStream(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := advCtx(t)
	for round, size := range []int{8, 100 << 10, 8, 100 << 10} {
		const n = 1 << 30
		name := fmt.Sprintf("killed-%d", round)
		p, err := iox.OpenPair(ctx, node, name, iox.WithPeerTimeout(200*time.Millisecond))
		require.NoError(t, err)
		c := spawn(t, ns, "abuse-pair-send", "IOX_SERVICE="+name, fmt.Sprintf("IOX_COUNT=%d", n), fmt.Sprintf("IOX_SIZE=%d", size))
		c.expect("ready")
		var i uint64
		for ; ; i++ {
			if i == 500 {
				c.kill()
			}
			rctx, cancel := context.WithTimeout(ctx, 20*time.Second)
			m, err := p.Recv(rctx)
			cancel()
			if err != nil {
				require.ErrorIs(t, err, iox.ErrPeerCrashed, "round %d after %d messages", round, i)
				break
			}
			require.Equal(t, i, binary.LittleEndian.Uint64(m), "round %d", round)
		}
		require.GreaterOrEqual(t, i, uint64(500))
		within(t, 10*time.Second, "Close after the crash", func() { p.Close() })
		sweepDead(t, ns)
	}
}

// A receiving peer killed while it holds views: the sender's Send ends with
// ErrPeerCrashed, and Close reports ErrUndelivered, without hanging.
func TestAbusePairReceiverKilledHoldingViews(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := advCtx(t)
	for round, size := range []int{8, 100 << 10} {
		name := fmt.Sprintf("holdviews-%d", round)
		p, err := iox.OpenPair(ctx, node, name, iox.MaxBorrowed(4), iox.BufferSize(8), iox.WithChanCap(4))
		require.NoError(t, err)
		c := spawn(t, ns, "abuse-pair-hold", "IOX_SERVICE="+name)
		c.expect("ready")
		sent, done := sendSeq(ctx, p.Send, size, -1)
		c.expect("holding")
		waitHeldBack(t, "iox.(*Pair[...]).Send", sent.Load)
		c.kill()
		select {
		case err := <-done:
			require.ErrorIs(t, err, iox.ErrPeerCrashed, "round %d", round)
		case <-time.After(20 * time.Second):
			t.Fatalf("round %d: Send still waits after the peer was killed", round)
		}
		var cerr error
		within(t, 10*time.Second, "Close", func() { cerr = p.Close() })
		require.ErrorIs(t, cerr, iox.ErrUndelivered, "round %d", round)
		sweepDead(t, ns)
	}
}

// A lossless publisher with three subscribers, one of which (in a child
// process, reading nothing) is killed while it holds the publisher back: the
// publisher goes on, and the two others get every message once, in order.
func TestAbusePubSubscriberKilledMidStream(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := advCtx(t)
	for round, size := range []int{8, 100 << 10} {
		name := fmt.Sprintf("pubkill-%d", round)
		pub, err := iox.OpenPub(ctx, node, name, iox.BufferSize(8), iox.WithChanCap(8), iox.WithPeerTimeout(200*time.Millisecond))
		require.NoError(t, err)
		var subs []*iox.Sub[[]byte]
		for k := 0; k < 2; k++ {
			s, err := iox.OpenSub(ctx, node, name, iox.BufferSize(8))
			require.NoError(t, err)
			subs = append(subs, s)
		}
		c := spawn(t, ns, "adv-sub-idle", "IOX_SERVICE="+name)
		c.expect("ready")
		waitSubscribers(t, pub, 3)
		const n = 4000
		sent, pubErr := sendSeq(ctx, pub.Send, size, n)
		recvErr := make(chan error, 2)
		for k, s := range subs {
			go func() {
				for i := uint64(0); i < n; i++ {
					m, err := s.Recv(ctx)
					if err != nil {
						recvErr <- fmt.Errorf("sub %d: receive %d: %w", k, i, err)
						return
					}
					if got := binary.LittleEndian.Uint64(m); got != i || len(m) != max(size, 8) {
						recvErr <- fmt.Errorf("sub %d: message %d is %d (%d bytes)", k, i, got, len(m))
						return
					}
				}
				recvErr <- nil
			}()
		}
		waitHeldBack(t, "iox.(*Pub[...]).Send", sent.Load)
		require.Less(t, sent.Load(), int64(n), "round %d: the idle subscriber holds the publisher back", round)
		c.kill()
		for k := 0; k < 3; k++ {
			var err error
			select {
			case err = <-pubErr:
			case err = <-recvErr:
			case <-time.After(30 * time.Second):
				t.Fatalf("round %d: stuck after the kill, %d sent", round, sent.Load())
			}
			require.NoError(t, err, "round %d", round)
		}
		within(t, 10*time.Second, "Close", func() { require.NoError(t, pub.Close(), "round %d", round) })
		for _, s := range subs {
			s.Close()
		}
		sweepDead(t, ns)
	}
}

// As TestAbuseSendLoanOfAnotherChannelsLoan, on publishers: Pub.SendLoan
// refuses another publisher's Loan, which then goes out on its own.
func TestAbusePubSendLoanOfAnotherPublishersLoan(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := advCtx(t)
	px, err := iox.OpenPub(ctx, node, "loan-x")
	require.NoError(t, err)
	defer px.Close()
	py, err := iox.OpenPub(ctx, node, "loan-y")
	require.NoError(t, err)
	defer py.Close()
	sx, err := iox.OpenSub(ctx, node, "loan-x")
	require.NoError(t, err)
	defer sx.Close()
	sy, err := iox.OpenSub(ctx, node, "loan-y")
	require.NoError(t, err)
	defer sy.Close()
	waitSubscribers(t, px, 1)
	waitSubscribers(t, py, 1)
	for _, p := range []struct {
		pub *iox.Pub[[]byte]
		sub *iox.Sub[[]byte]
	}{{px, sx}, {py, sy}} { // so that loans go in place
		require.NoError(t, p.pub.Send(ctx, []byte("hello")))
		_, err := p.sub.Recv(ctx)
		require.NoError(t, err)
	}
	l, err := px.Loan(ctx, 5)
	require.NoError(t, err)
	copy(l.Bytes(), "loanX")
	require.ErrorIs(t, py.SendLoan(ctx, l), iox.ErrInvalidArgument)
	require.NoError(t, py.Send(ctx, []byte("y-next")))
	require.NoError(t, px.SendLoan(ctx, l))
	m, err := sy.Recv(ctx)
	require.NoError(t, err)
	require.Equal(t, "y-next", string(m))
	m, err = sx.Recv(ctx)
	require.NoError(t, err)
	require.Equal(t, "loanX", string(m))
}

// sendSeq sends sizedMsg(i, size) for i = 0, 1, … with send, on a goroutine
// of its own, n messages (n < 0: until a send fails); sent counts those that
// went, and done gets the first failure (naming its message) or, after n, nil.
func sendSeq(ctx context.Context, send func(context.Context, []byte) error, size int, n int64) (sent *atomic.Int64, done <-chan error) {
	sent = new(atomic.Int64)
	out := make(chan error, 1)
	go func() {
		for i := int64(0); n < 0 || i < n; i++ {
			if err := send(ctx, sizedMsg(uint64(i), size)); err != nil {
				out <- fmt.Errorf("send %d: %w", i, err)
				return
			}
			sent.Add(1)
		}
		out <- nil
	}()
	return sent, out
}
