package iox_test

// Tests that hold the package to promises of its doc comments and README that
// no other test checked: each test names the promise it backs.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/iox-go/iox"
)

// Events: "Notifications of one id coalesce until they are delivered." An id
// signalled three times before anyone receives comes once; what comes next is
// the next signal, not a leftover copy of the first.
func TestClaimEventsCoalesceUntilDelivered(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := advCtx(t)
	ev, err := iox.OpenEvents(ctx, node, "coalesce")
	require.NoError(t, err)
	defer ev.Close()
	for range 3 {
		n, err := ev.Notify(7)
		require.NoError(t, err)
		require.Equal(t, 1, n, "Notify reaches this Events' own listener")
	}
	id, err := ev.Recv(ctx)
	require.NoError(t, err)
	require.Equal(t, iox.EventID(7), id)
	_, err = ev.Notify(9)
	require.NoError(t, err)
	id, err = ev.Recv(ctx)
	require.NoError(t, err)
	require.Equal(t, iox.EventID(9), id, "the three signals of 7 came as one")
}

// Events: "Close, or the end of the context it was opened with, ends it; …
// Notify and Recv then return Err." A Recv that waits is ended too.
func TestClaimEventsRecvAfterTheEndReturnsErr(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := advCtx(t)

	closed, err := iox.OpenEvents(ctx, node, "recv-end")
	require.NoError(t, err)
	waiting := make(chan error, 1)
	go func() {
		_, err := closed.Recv(ctx)
		waiting <- err
	}()
	waitParked(t, "iox.(*Events).Recv", 1)
	require.NoError(t, closed.Close())
	require.ErrorIs(t, <-waiting, iox.ErrClosed, "Close ends a waiting Recv")
	_, err = closed.Recv(ctx)
	require.ErrorIs(t, err, iox.ErrClosed)

	lctx, cancel := context.WithCancel(ctx)
	ended, err := iox.OpenEvents(lctx, node, "recv-end")
	require.NoError(t, err)
	defer ended.Close()
	_, err = ended.Notify(1) // pending, not delivered: dropped at the end
	require.NoError(t, err)
	cancel()
	<-ended.Done()
	_, err = ended.Recv(ctx)
	require.ErrorIs(t, err, context.Canceled)
	var e *iox.Error
	require.ErrorAs(t, err, &e)
	require.Equal(t, "recv-end", e.Name)
}

// ioxGoroutines counts this process's goroutines whose stack passes through
// a function whose name contains fn.
func ioxGoroutines(fn string) int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	count := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, fn) {
			count++
		}
	}
	return count
}

// Events: "In is fed by a goroutine that starts on its first use, so a quiet
// Events holds no goroutine"; Close waits for it.
func TestClaimQuietEventsHoldNoGoroutine(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := advCtx(t)
	ev, err := iox.OpenEvents(context.Background(), node, "quiet")
	require.NoError(t, err)
	_, err = ev.Notify(3)
	require.NoError(t, err)
	id, err := ev.Recv(ctx)
	require.NoError(t, err)
	require.Equal(t, iox.EventID(3), id)
	require.Zero(t, ioxGoroutines("iox.(*Events)"), "opened, notified and received on the caller's goroutine: none of its own")
	in := ev.In()
	eventually(t, "In's goroutine to wait", func() bool { return ioxGoroutines("iox.(*Events)") == 1 })
	_, err = ev.Notify(4)
	require.NoError(t, err)
	require.Equal(t, iox.EventID(4), <-in)
	require.NoError(t, ev.Close())
	require.Zero(t, ioxGoroutines("iox.(*Events)"), "Close waits for In's goroutine")
	_, ok := <-in
	require.False(t, ok)
}

// Zero copy: "a sender holds at most two [loans] at once, ErrTooManyLoans
// beyond"; "after SendLoan the loan's Bytes is nil"; Loan.Release "does
// nothing after SendLoan". For a pair and a publisher.
func TestClaimChannelLoansAtMostTwo(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := advCtx(t)
	a, err := iox.OpenPair(ctx, node, "loans")
	require.NoError(t, err)
	defer a.Close()
	b, err := iox.OpenPair(ctx, node, "loans")
	require.NoError(t, err)
	defer b.Close()
	pub, err := iox.OpenPub(ctx, node, "loans-pub")
	require.NoError(t, err)
	defer pub.Close()
	sub, err := iox.OpenSub(ctx, node, "loans-pub")
	require.NoError(t, err)
	defer sub.Close()

	for _, tc := range []struct {
		what     string
		loan     func(n int) (*iox.Loan, error)
		sendLoan func(*iox.Loan) error
		recv     func() ([]byte, error)
	}{
		{"pair", func(n int) (*iox.Loan, error) { return a.Loan(ctx, n) }, func(l *iox.Loan) error { return a.SendLoan(ctx, l) },
			func() ([]byte, error) { return b.Recv(ctx) }},
		{"pub", func(n int) (*iox.Loan, error) { return pub.Loan(ctx, n) }, func(l *iox.Loan) error { return pub.SendLoan(ctx, l) },
			func() ([]byte, error) { return sub.Recv(ctx) }},
	} {
		t.Run(tc.what, func(t *testing.T) {
			l1, err := tc.loan(8)
			require.NoError(t, err)
			l2, err := tc.loan(8)
			require.NoError(t, err)
			_, err = tc.loan(8)
			require.ErrorIs(t, err, iox.ErrTooManyLoans, "a third loan while two are out")
			l1.Release()
			l3, err := tc.loan(8)
			require.NoError(t, err, "a released loan frees its place")

			copy(l2.Bytes(), "second!!")
			require.NoError(t, tc.sendLoan(l2))
			require.Nil(t, l2.Bytes(), "a sent loan no longer reaches the memory")
			l2.Release() // does nothing after SendLoan
			copy(l3.Bytes(), "third!!!")
			require.NoError(t, tc.sendLoan(l3))
			for _, want := range []string{"second!!", "third!!!"} {
				m, err := tc.recv()
				require.NoError(t, err)
				require.Equal(t, want, string(m))
			}
			for range 2 { // the sent loans are spent: two can be had again
				l, err := tc.loan(8)
				require.NoError(t, err)
				defer l.Release()
			}
		})
	}
}

// Zero copy: "A receiving end holds at most MaxBorrowed views at once
// (default 4 …): one more RecvView, or a Recv while they hold every slot,
// returns ErrTooManyLoans at once, and nothing is lost."
func TestClaimDefaultMaxBorrowedIsFour(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := advCtx(t)
	a, err := iox.OpenPair(ctx, node, "borrowed")
	require.NoError(t, err)
	defer a.Close()
	b, err := iox.OpenPair(ctx, node, "borrowed")
	require.NoError(t, err)
	defer b.Close()

	send := func(i int) {
		l, err := a.Loan(ctx, 8)
		require.NoError(t, err)
		binary.LittleEndian.PutUint64(l.Bytes(), uint64(i))
		require.NoError(t, a.SendLoan(ctx, l))
	}
	// A view taken by a receiver that waits for the message stays in place
	// and holds a borrow slot (see TestZeroCopyRules).
	inPlace := func(i int) *iox.View {
		got := make(chan *iox.View, 1)
		go func() {
			v, err := b.RecvView(ctx)
			if err != nil {
				t.Errorf("view %d: %v", i, err)
			}
			got <- v
		}()
		waitParked(t, "iox.(*Pair[...]).RecvView", 1)
		send(i)
		v := <-got
		require.NotNil(t, v)
		require.Equal(t, uint64(i), binary.LittleEndian.Uint64(v.Bytes()))
		return v
	}
	var views []*iox.View
	for i := range 4 {
		views = append(views, inPlace(i))
	}
	send(4)
	_, err = b.RecvView(ctx)
	require.ErrorIs(t, err, iox.ErrTooManyLoans, "four views hold every slot of the default")
	_, err = b.Recv(ctx)
	require.ErrorIs(t, err, iox.ErrTooManyLoans, "Recv needs a slot too")
	views[0].Release()
	m, err := b.Recv(ctx)
	require.NoError(t, err)
	require.Equal(t, uint64(4), binary.LittleEndian.Uint64(m), "nothing was lost")
	for _, v := range views[1:] {
		v.Release()
	}
}

// Options: the bounds of the channel settings that their doc comments state,
// each refused with ErrInvalidArgument, and the edges accepted.
func TestClaimChannelOptionBounds(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := advCtx(t)
	for _, tc := range []struct {
		what string
		opt  iox.Option
	}{
		{"BufferSize over 1<<16", iox.BufferSize(1<<16 + 1)},
		{"MaxSubscribers over 1<<16", iox.MaxSubscribers(1<<16 + 1)},
		{"MaxPublishers over 1<<16", iox.MaxPublishers(1<<16 + 1)},
		{"MaxBorrowed over 1<<16", iox.MaxBorrowed(1<<16 + 1)},
		{"MaxBorrowed 0", iox.MaxBorrowed(0)},
		{"WithChanCap negative", iox.WithChanCap(-1)},
		{"WithChanCap over 1<<20", iox.WithChanCap(1<<20 + 1)},
		{"WithPeerTimeout under 4ms", iox.WithPeerTimeout(3 * time.Millisecond)},
		{"WithPoll 0", iox.WithPoll(0)},
		{"WithLinger negative", iox.WithLinger(-time.Millisecond)},
		{"WithSpin over a minute", iox.WithSpin(time.Minute + 1)},
		{"WithRecycling over 1<<20", iox.WithRecycling(1<<20 + 1)},
		{"MaxMessageSize negative", iox.MaxMessageSize(-1)},
	} {
		p, err := iox.OpenPair(ctx, node, "bounds", tc.opt)
		if err == nil {
			p.Close()
		}
		require.ErrorIs(t, err, iox.ErrInvalidArgument, tc.what)
		requireTyped(t, err, tc.what)
	}
	p, err := iox.OpenPair(ctx, node, "bounds", iox.WithChanCap(0), iox.WithPeerTimeout(4*time.Millisecond),
		iox.WithLinger(0), iox.WithSpin(time.Minute), iox.WithRecycling(0), iox.MaxMessageSize(0))
	require.NoError(t, err, "the edges of the ranges")
	require.NoError(t, p.Close())
}

// Pull.Recycle: a puller recycles receive buffers by default, as every
// channel does (WithRecycling), and keeps none with WithRecycling(0).
func TestClaimPullRecyclesByDefault(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := advCtx(t)
	push, err := iox.OpenPush(ctx, node, "recycle")
	require.NoError(t, err)
	defer push.Close()
	pull, err := iox.OpenPull(ctx, node, "recycle")
	require.NoError(t, err)
	defer pull.Close()
	eventually(t, "the pusher to know its puller", func() bool { return push.Pullers() == 1 })
	require.NoError(t, push.Send(ctx, []byte("first message")))
	first, err := pull.Recv(ctx)
	require.NoError(t, err)
	require.Equal(t, "first message", string(first))
	pull.Recycle(first)
	require.NoError(t, push.Send(ctx, []byte("second")))
	second, err := pull.Recv(ctx)
	require.NoError(t, err)
	require.Equal(t, "second", string(second))
	require.Same(t, &first[:1][0], &second[:1][0], "the recycled buffer carries the next message")

	none, err := iox.OpenPull(ctx, node, "recycle-none", iox.WithRecycling(0))
	require.NoError(t, err)
	defer none.Close()
	push2, err := iox.OpenPush(ctx, node, "recycle-none")
	require.NoError(t, err)
	defer push2.Close()
	eventually(t, "the pusher to know its puller", func() bool { return push2.Pullers() == 1 })
	require.NoError(t, push2.Send(ctx, []byte("first message")))
	first, err = none.Recv(ctx)
	require.NoError(t, err)
	none.Recycle(first)
	require.NoError(t, push2.Send(ctx, []byte("second")))
	second, err = none.Recv(ctx)
	require.NoError(t, err)
	require.NotSame(t, &first[:1][0], &second[:1][0], "WithRecycling(0) keeps none")
}

// Pull.Close: "With no pusher there it does not wait", however long the
// linger.
func TestClaimPullCloseWithoutPusherDoesNotWait(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	pull, err := iox.OpenPull(advCtx(t), node, "alone", iox.WithLinger(time.Hour))
	require.NoError(t, err)
	within(t, 20*time.Second, "Close of a puller no pusher knows", func() { require.NoError(t, pull.Close()) })
}

// Call: "ErrMessageTooLarge: req or the response exceeds MaxMessageSize" —
// a response larger than the client's own MaxMessageSize, from a server that
// allows it, fails the Call with ErrMessageTooLarge, and the client goes on.
func TestClaimCallResponseOverTheClientsLimit(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := advCtx(t)
	srv, err := iox.OpenServer(ctx, node, "big-answer", iox.Raw{}, iox.Raw{}, iox.MaxMessageSize(4096))
	require.NoError(t, err)
	defer srv.Close()
	cl, err := iox.OpenClient(ctx, node, "big-answer", iox.Raw{}, iox.Raw{}, iox.MaxMessageSize(64))
	require.NoError(t, err)
	defer cl.Close()
	served := make(chan error, 1)
	go func() {
		served <- srv.Serve(ctx, 1, func(_ context.Context, req []byte) ([]byte, error) {
			if string(req) == "big" {
				return make([]byte, 1000), nil
			}
			return []byte("small"), nil
		})
	}()
	_, err = cl.Call(ctx, []byte("big"))
	require.ErrorIs(t, err, iox.ErrMessageTooLarge)
	requireTyped(t, err, "a response over the client's MaxMessageSize")
	m, err := cl.Call(ctx, []byte("next"))
	require.NoError(t, err, "the client goes on")
	require.Equal(t, "small", string(m))
	require.NoError(t, srv.Close())
	require.ErrorIs(t, <-served, iox.ErrClosed)
}

// Pull.Close "waits up to the linger time … for each pusher that sent it
// messages to confirm that it let it go; without that confirmation it returns
// an error matching ErrUndelivered": the pusher, in another process, is
// stopped and cannot confirm.
func TestClaimPullCloseWithoutThePushersConfirmation(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := advCtx(t)
	pull, err := iox.OpenPull(ctx, node, "unconfirmed", iox.BufferSize(4), iox.WithLinger(50*time.Millisecond))
	require.NoError(t, err)
	c := spawn(t, ns, "pipe-push", "IOX_SERVICE=unconfirmed", "IOX_PULLERS=1", "IOX_COUNT=3")
	t.Cleanup(func() { c.cmd.Process.Kill() }) // also when the test fails while the child is stopped
	c.expect("sent")
	m, err := pull.Recv(ctx)
	require.NoError(t, err)
	require.Equal(t, seqMsg(0), m)
	c.stop()
	err = pull.Close()
	require.ErrorIs(t, err, iox.ErrUndelivered, "a stopped pusher cannot have let the puller go")
	requireTyped(t, err, "Close without the pusher's confirmation")
	c.kill()
	sweepDead(t, ns)
}

// noPidfdChild begins a child that runs where no pidfd can be had: its node
// and a context of 30 s for its work.
func noPidfdChild() (*iox.Node, context.Context, context.CancelFunc, error) {
	iox.WithoutPidfds()
	node, err := nsFromEnv().childNode()
	if err != nil {
		return nil, nil, nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	return node, ctx, cancel, nil
}

func init() { children["claim-pair-no-pidfd"] = childClaimPairNoPidfd }

// childClaimPairNoPidfd opens the pair IOX_SERVICE where no pidfd can be had
// (WithPeerTimeout 100 ms), says "ready", sends "ping", takes the echo, says
// "paired", and once the pair ended says "ended KIND".
func childClaimPairNoPidfd() error {
	node, ctx, cancel, err := noPidfdChild()
	if err != nil {
		return err
	}
	defer node.Close()
	defer cancel()
	p, err := iox.OpenPair(ctx, node, os.Getenv("IOX_SERVICE"), iox.WithPeerTimeout(100*time.Millisecond))
	if err != nil {
		return err
	}
	defer p.Close()
	fmt.Println("ready")
	if err := p.Send(ctx, []byte("ping")); err != nil {
		return err
	}
	if _, err := p.Recv(ctx); err != nil {
		return err
	}
	fmt.Println("paired")
	select {
	case <-p.Done():
	case <-ctx.Done():
		return fmt.Errorf("the pair did not end: %v", ctx.Err())
	}
	fmt.Println("ended", kindOf(p.Err()))
	return nil
}

// Pair: "Where no pidfd can be had, the pair looks every quarter of
// WithPeerTimeout (default 1 s) instead": a pair end in a process without
// pidfds reports its peer's SIGKILL as ErrPeerCrashed.
func TestClaimPeerCrashSeenWithoutPidfds(t *testing.T) {
	ns := newNamespace(t)
	watcher := spawn(t, ns, "claim-pair-no-pidfd", "IOX_SERVICE=no-pidfd")
	watcher.expect("ready")
	peer := spawn(t, ns, "adv-pair-echo-one", "IOX_SERVICE=no-pidfd")
	peer.expect("ready")
	peer.expect("echoed")
	watcher.expect("paired")
	peer.kill()
	watcher.expect("ended ErrPeerCrashed")
	watcher.wait()
	sweepDead(t, ns)
}

func init() { children["claim-pub-no-pidfd"] = childClaimPubNoPidfd }

// childClaimPubNoPidfd opens the lossless publisher IOX_SERVICE where no pidfd
// can be had (WithPeerTimeout 100 ms), says "ready", then prints each event of
// Peers ("peer joined", ...) and ends after the first that is not a join.
func childClaimPubNoPidfd() error {
	node, ctx, cancel, err := noPidfdChild()
	if err != nil {
		return err
	}
	defer node.Close()
	defer cancel()
	p, err := iox.OpenPub(ctx, node, os.Getenv("IOX_SERVICE"), iox.WithPeerTimeout(100*time.Millisecond), iox.WithLinger(0))
	if err != nil {
		return err
	}
	defer p.Close()
	peers := p.Peers()
	fmt.Println("ready")
	for {
		select {
		case e, ok := <-peers:
			if !ok {
				return fmt.Errorf("Peers closed: %v", p.Err())
			}
			fmt.Println("peer", e.Kind)
			if e.Kind != iox.PeerJoined {
				return nil
			}
		case <-ctx.Done():
			return fmt.Errorf("no event: %v", ctx.Err())
		}
	}
}

// peer.go: "Where no pidfd can be had ... a channel falls back to looking
// every quarter of its peer timeout", here a publisher watching its
// subscribers: a subscriber's SIGKILL is reported on Peers as PeerCrashed.
func TestClaimSubscriberCrashSeenWithoutPidfds(t *testing.T) {
	ns := newNamespace(t)
	watcher := spawn(t, ns, "claim-pub-no-pidfd", "IOX_SERVICE=no-pidfd-pub")
	watcher.expect("ready")
	sub := spawn(t, ns, "advr-hold", "IOX_SERVICE=no-pidfd-pub")
	sub.expect("ready")
	watcher.expect("peer joined")
	sub.kill()
	watcher.expect("peer crashed")
	watcher.wait()
	sweepDead(t, ns)
}

// peer.go's fallback for a client: a call in a process without pidfds whose
// server is killed while it holds the request ends with ErrPeerCrashed.
func TestClaimServerCrashSeenWithoutPidfds(t *testing.T) {
	ns := newNamespace(t)
	srv := spawn(t, ns, "rpc-manual", "IOX_SERVICE=no-pidfd-rpc")
	srv.expect("ready")
	caller := spawn(t, ns, "rpc-caller", "IOX_SERVICE=no-pidfd-rpc", "IOX_NO_PIDFD=1")
	caller.expect("ready")
	caller.say("call a")
	srv.expect("got a")
	srv.kill()
	caller.expect("result a ErrPeerCrashed")
	caller.wait()
	sweepDead(t, ns)
}

// peer.go's fallback for a pipeline: a pusher in a process without pidfds
// gives what a killed puller held and never handed over to the next puller.
func TestClaimPullerCrashSeenWithoutPidfds(t *testing.T) {
	const n = 20
	ns := newNamespace(t)
	held := spawn(t, ns, "pipe-pull", "IOX_SERVICE=no-pidfd-pipe", "IOX_BUFFER=64", "IOX_GATE=1")
	held.expect("ready")
	pusher := spawn(t, ns, "pipe-push", "IOX_SERVICE=no-pidfd-pipe", "IOX_PULLERS=1", fmt.Sprintf("IOX_COUNT=%d", n), "IOX_NO_PIDFD=1")
	pusher.expect("sent")
	held.kill()
	ctx := advCtx(t)
	pull, err := iox.OpenPull(ctx, ns.node(t), "no-pidfd-pipe")
	require.NoError(t, err)
	defer pull.Close()
	for i := range uint64(n) {
		m, err := pull.Recv(ctx)
		require.NoError(t, err)
		require.Equal(t, seqMsg(i), m)
	}
	pusher.kill()
	sweepDead(t, ns)
}

// The context rule: "when it ends, the channel ends at once and Err() is an
// *iox.Error naming the channel and wrapping the context's cause" — for every
// adapter, with a cause of the program's own.
func TestClaimContextCauseEndsEveryAdapter(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	lctx, cancel := context.WithCancelCause(advCtx(t))
	type adapter interface {
		Done() <-chan struct{}
		Err() error
		Close() error
	}
	var ends []adapter
	open := func(a adapter, err error) {
		t.Helper()
		require.NoError(t, err)
		ends = append(ends, a)
	}
	open(iox.OpenPair(lctx, node, "cause"))
	open(iox.OpenPub(lctx, node, "cause"))
	open(iox.OpenSub(lctx, node, "cause"))
	open(iox.OpenPush(lctx, node, "cause"))
	open(iox.OpenPull(lctx, node, "cause"))
	open(iox.OpenEvents(lctx, node, "cause"))
	open(iox.OpenClient(lctx, node, "cause", iox.Raw{}, iox.Raw{}))
	open(iox.OpenServer(lctx, node, "cause", iox.Raw{}, iox.Raw{}))
	for _, a := range ends {
		require.NoError(t, a.Err(), "%T is open", a)
	}
	cause := errors.New("the program shuts down")
	cancel(cause)
	for _, a := range ends {
		<-a.Done()
		err := a.Err()
		require.ErrorIs(t, err, cause, "%T", a)
		var e *iox.Error
		require.ErrorAs(t, err, &e, "%T", a)
		require.Equal(t, "cause", e.Name, "%T: the error names the channel", a)
		a.Close()
	}
}

// Publisher.Loan: MaxLoans "0 = iceoryx2's default of 2": two samples may be
// loaned at once, a third is ErrTooManyLoans, and MaxLoans(3) allows three.
func TestClaimPublisherPortLoans(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	svc, err := node.PublishSubscribe("port-loans")
	require.NoError(t, err)
	defer svc.Close()
	for _, tc := range []struct {
		what  string
		opts  []iox.Option
		loans int
	}{{"default", nil, 2}, {"MaxLoans(0)", []iox.Option{iox.MaxLoans(0)}, 2}, {"MaxLoans(3)", []iox.Option{iox.MaxLoans(3)}, 3}} {
		pub, err := svc.Publisher(tc.opts...)
		require.NoError(t, err, tc.what)
		var held []*iox.SampleMut
		for range tc.loans {
			s, err := pub.Loan(8)
			require.NoError(t, err, tc.what)
			held = append(held, s)
		}
		_, err = pub.Loan(8)
		require.ErrorIs(t, err, iox.ErrTooManyLoans, tc.what)
		for _, s := range held {
			require.NoError(t, s.Discard())
		}
		require.NoError(t, pub.Close())
	}
}

// Messages "are 0 bytes up to MaxMessageSize (default 64 MiB)": one byte more
// fails that Send alone, and the channel goes on.
func TestClaimDefaultMaxMessageSize(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := advCtx(t)
	a, err := iox.OpenPair(ctx, node, "default-max")
	require.NoError(t, err)
	defer a.Close()
	b, err := iox.OpenPair(ctx, node, "default-max")
	require.NoError(t, err)
	defer b.Close()
	require.Equal(t, 64<<20, iox.DefaultMaxMessageSize)
	err = a.Send(ctx, make([]byte, 64<<20+1))
	require.ErrorIs(t, err, iox.ErrMessageTooLarge)
	requireTyped(t, err, "one byte over the default")
	require.NoError(t, a.Send(ctx, []byte{}))
	m, err := b.Recv(ctx)
	require.NoError(t, err)
	require.Empty(t, m, "the empty message comes next: nothing of the refused one was sent")
	require.NoError(t, a.Send(ctx, []byte("after")))
	m, err = b.Recv(ctx)
	require.NoError(t, err)
	require.Equal(t, "after", string(m))
}

func init() { children["claim-pub-once"] = childClaimPubOnce }

// childClaimPubOnce publishes IOX_MSG on the channel IOX_SERVICE once a
// subscriber is there, closes the publisher and says "closed KIND" with
// Close's result.
func childClaimPubOnce() error {
	node, err := nsFromEnv().childNode()
	if err != nil {
		return err
	}
	defer node.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := iox.OpenPub(ctx, node, os.Getenv("IOX_SERVICE"), iox.WaitSubscribers(1))
	if err != nil {
		return err
	}
	if err := p.Send(ctx, []byte(os.Getenv("IOX_MSG"))); err != nil {
		p.Close()
		return err
	}
	fmt.Println("closed", kindOf(p.Close()))
	return nil
}

// PubSub: "A subscriber stays open while publishers come and go": publishers
// in other processes, one after the other, each publishing and closing; the
// subscriber gets every message and does not end.
func TestClaimSubscriberOutlivesItsPublishers(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := advCtx(t)
	sub, err := iox.OpenSub(ctx, node, "come-and-go")
	require.NoError(t, err)
	defer sub.Close()
	for _, msg := range []string{"one", "two", "three"} {
		c := spawn(t, ns, "claim-pub-once", "IOX_SERVICE=come-and-go", "IOX_MSG="+msg)
		m, err := sub.Recv(ctx)
		require.NoError(t, err)
		require.Equal(t, msg, string(m))
		c.expect("closed nil")
		c.wait()
		require.NoError(t, sub.Err(), "a publisher that closed does not end the subscriber")
	}
}

// Pair: "while … the peer is not there yet, small messages wait in a bounded
// queue (WithChanCap, default 64) and Send blocks once it is full": the 65th
// Send waits until its context ends and is not sent; the 64 arrive, in
// order, when the peer does.
func TestClaimPairQueueHoldsSixtyFourByDefault(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := advCtx(t)
	a, err := iox.OpenPair(ctx, node, "queue-64")
	require.NoError(t, err)
	defer a.Close()
	for i := range 64 {
		require.NoError(t, a.Send(ctx, seqMsg(uint64(i))), "message %d", i)
	}
	sctx, cancel := context.WithCancel(ctx)
	blocked := make(chan error, 1)
	go func() { blocked <- a.Send(sctx, seqMsg(64)) }()
	waitParked(t, "iox.(*Pair[...]).Send", 1)
	cancel()
	require.ErrorIs(t, <-blocked, context.Canceled, "the 65th Send waited for room")
	b, err := iox.OpenPair(ctx, node, "queue-64")
	require.NoError(t, err)
	defer b.Close()
	for i := range 64 {
		m, err := b.Recv(ctx)
		require.NoError(t, err)
		require.Equal(t, seqMsg(uint64(i)), m)
	}
	require.NoError(t, a.Send(ctx, []byte("after")))
	m, err := b.Recv(ctx)
	require.NoError(t, err)
	require.Equal(t, "after", string(m), "the refused 65th was not sent")
}

// Pub.Peers: "Events are dropped when nobody reads them and 64 are waiting":
// the publisher goes on, 64 wait, and the rest were dropped.
func TestClaimPeersKeepsSixtyFourUnread(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := advCtx(t)
	p, err := iox.OpenPub(ctx, node, "peers-unread")
	require.NoError(t, err)
	defer p.Close()
	peers := p.Peers()
	for round := range 40 { // 80 events
		s, err := iox.OpenSub(ctx, node, "peers-unread")
		require.NoError(t, err)
		// Each wait is for the look that reports on Peers, so that every
		// round is one join and one leave, and no look is still to come
		// when the events are read.
		eventually(t, "the publisher to see the subscriber", func() bool { return p.Known() == 1 })
		require.NoError(t, p.Send(ctx, []byte("hello")), "round %d", round)
		m, err := s.Recv(ctx)
		require.NoError(t, err)
		require.Equal(t, "hello", string(m))
		require.NoError(t, s.Close())
		eventually(t, "the publisher to see the subscriber leave", func() bool { return p.Known() == 0 })
	}
	eventually(t, "64 events waiting", func() bool { return len(peers) == 64 })
	for i := range 64 {
		e := <-peers
		want := iox.PeerJoined
		if i%2 == 1 {
			want = iox.PeerLeft
		}
		require.Equal(t, want, e.Kind, "event %d: the first 64 are kept, in order", i)
	}
	require.Empty(t, peers, "the rest were dropped")
}

// Stream.Err "is nil while the stream goes on, then why it ended": nil at
// the normal end, also of a stream the server ended without a response (a
// stream may have none), and context.Canceled after Stream.Close.
func TestClaimStreamErr(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := advCtx(t)
	srv, err := iox.OpenServer(ctx, node, "stream-err", iox.Raw{}, iox.Raw{})
	require.NoError(t, err)
	defer srv.Close()
	cl, err := iox.OpenClient(ctx, node, "stream-err", iox.Raw{}, iox.Raw{})
	require.NoError(t, err)
	defer cl.Close()
	drain := func(s *iox.Stream[[]byte]) (got []string) {
		for m := range s.In() {
			got = append(got, string(m))
		}
		return got
	}

	s, err := cl.Stream(ctx, []byte("two"))
	require.NoError(t, err)
	q, err := srv.Recv(ctx)
	require.NoError(t, err)
	require.NoError(t, s.Err(), "the stream goes on")
	require.NoError(t, q.Send(ctx, []byte("a")))
	require.NoError(t, q.Send(ctx, []byte("b")))
	require.NoError(t, q.Close())
	require.Equal(t, []string{"a", "b"}, drain(s))
	require.NoError(t, s.Err(), "the normal end")

	s, err = cl.Stream(ctx, []byte("none"))
	require.NoError(t, err)
	q, err = srv.Recv(ctx)
	require.NoError(t, err)
	require.NoError(t, q.Close())
	require.Empty(t, drain(s))
	require.NoError(t, s.Err(), "a stream without responses ends normally")

	s, err = cl.Stream(ctx, []byte("closed"))
	require.NoError(t, err)
	q, err = srv.Recv(ctx)
	require.NoError(t, err)
	require.NoError(t, s.Close())
	require.Empty(t, drain(s))
	require.ErrorIs(t, s.Err(), context.Canceled, "after Close")
	require.NoError(t, q.Close())
}

// WithIsolation: "Only nodes with the same prefix and rootDir see each
// other's services": a node that shares only one of the two finds nothing.
func TestClaimIsolationNeedsPrefixAndRoot(t *testing.T) {
	a, b := newNamespace(t), newNamespace(t)
	owner := a.node(t)
	svc, err := owner.PublishSubscribe("isolated")
	require.NoError(t, err)
	defer svc.Close()
	for _, tc := range []struct {
		what string
		ns   namespace
		sees bool
	}{
		{"same prefix and root", a, true},
		{"another prefix, same root", namespace{prefix: b.prefix, root: a.root}, false},
		{"same prefix, another root", namespace{prefix: a.prefix, root: b.root}, false},
	} {
		node, err := iox.NewNode(iox.WithIsolation(tc.ns.prefix, tc.ns.root))
		require.NoError(t, err, tc.what)
		other, err := node.PublishSubscribe("isolated", iox.OpenOnly())
		if tc.sees {
			require.NoError(t, err, tc.what)
			require.NoError(t, other.Close())
		} else {
			require.ErrorIs(t, err, iox.ErrServiceNotFound, tc.what)
		}
		require.NoError(t, node.Close())
	}
}

// ResponseBufferSize: "When it is full, a server's Send replaces the oldest
// unread response (SafeOverflow, iceoryx2's default)".
func TestClaimFullResponseBufferDropsTheOldest(t *testing.T) {
	ns := newNamespace(t)
	svc, err := ns.node(t).RequestResponse("rr-overflow", iox.ResponseBufferSize(2))
	require.NoError(t, err)
	defer svc.Close()
	srv, err := svc.Server()
	require.NoError(t, err)
	defer srv.Close()
	cli, err := svc.Client()
	require.NoError(t, err)
	defer cli.Close()
	p, err := cli.Send([]byte("req"))
	require.NoError(t, err)
	defer p.Close()
	req, _ := nextRequest(t, srv)
	for _, r := range []string{"a", "b", "c"} {
		require.NoError(t, req.Send([]byte(r)), "a full buffer does not refuse")
	}
	require.NoError(t, req.Close())
	var got []string
	for _, r := range responses(t, p) {
		got = append(got, string(r))
	}
	require.Equal(t, []string{"b", "c"}, got, "the oldest unread response made room")
}

// WithChanCap "sets the capacity of the Go channels (default 64)": those of
// In; Out "has no buffer", nor has a puller's In.
func TestClaimChannelCapacities(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := advCtx(t)
	for _, c := range []int{64, 5} {
		var opts []iox.Option
		if c != 64 {
			opts = append(opts, iox.WithChanCap(c))
		}
		var ends []interface{ Close() error }
		closeAll := func() {
			for _, e := range ends {
				e.Close()
			}
			ends = nil
		}
		t.Cleanup(closeAll) // also when the test fails
		add := func(e interface{ Close() error }, err error) {
			t.Helper()
			require.NoError(t, err)
			ends = append(ends, e)
		}
		pair, err := iox.OpenPair(ctx, node, "caps", opts...)
		add(pair, err)
		sub, err := iox.OpenSub(ctx, node, "caps", opts...)
		add(sub, err)
		pub, err := iox.OpenPub(ctx, node, "caps-pub", opts...)
		add(pub, err)
		ev, err := iox.OpenEvents(ctx, node, "caps", opts...)
		add(ev, err)
		push, err := iox.OpenPush(ctx, node, "caps", opts...)
		add(push, err)
		pull, err := iox.OpenPull(ctx, node, "caps")
		add(pull, err)
		require.Equal(t, c, cap(pair.In()), "pair In")
		require.Equal(t, c, cap(sub.In()), "sub In")
		require.Equal(t, c, cap(ev.In()), "events In")
		require.Zero(t, cap(pair.Out()), "pair Out")
		require.Zero(t, cap(pub.Out()), "pub Out")
		require.Zero(t, cap(push.Out()), "push Out")
		require.Zero(t, cap(pull.In()), "pull In")
		closeAll()
	}
}

// Node: "Services and ports opened through a node stay usable after the node
// is closed"; RequestResponse: "A request-response service may share its name
// with a publish-subscribe or event service."
func TestClaimPortsOutliveTheirNodeAndKindsShareAName(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ps, err := node.PublishSubscribe("shared-name")
	require.NoError(t, err)
	defer ps.Close()
	ev, err := node.Event("shared-name")
	require.NoError(t, err)
	defer ev.Close()
	rr, err := node.RequestResponse("shared-name")
	require.NoError(t, err, "a request-response service beside the others of its name")
	defer rr.Close()
	pub, err := ps.Publisher()
	require.NoError(t, err)
	defer pub.Close()
	sub, err := ps.Subscriber()
	require.NoError(t, err)
	defer sub.Close()
	srv, err := rr.Server()
	require.NoError(t, err)
	defer srv.Close()
	cli, err := rr.Client()
	require.NoError(t, err)
	defer cli.Close()

	require.NoError(t, node.Close())
	n, err := pub.Send([]byte("after"))
	require.NoError(t, err)
	require.Equal(t, 1, n)
	buf := make([]byte, 16)
	k, ok, err := sub.TryReceive(buf)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, "after", string(buf[:k]))
	p, err := cli.Send([]byte("call"))
	require.NoError(t, err)
	defer p.Close()
	req, got := nextRequest(t, srv)
	require.Equal(t, "call", string(got))
	require.NoError(t, req.Send([]byte("answer")))
	require.NoError(t, req.Close())
	var answers []string
	for _, r := range responses(t, p) {
		answers = append(answers, string(r))
	}
	require.Equal(t, []string{"answer"}, answers)
}

// Messages: "a larger message arriving is dropped where it is … (through In,
// the error goes to OnDrop)", and the channel goes on.
func TestClaimTooLargeThroughInGoesToOnDrop(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := advCtx(t)
	drops := make(chan error, 4)
	a, err := iox.OpenPair(ctx, node, "large-in")
	require.NoError(t, err)
	defer a.Close()
	b, err := iox.OpenPair(ctx, node, "large-in", iox.MaxMessageSize(16), iox.OnDrop(func(err error) { drops <- err }))
	require.NoError(t, err)
	defer b.Close()
	require.NoError(t, a.Send(ctx, make([]byte, 100)))
	require.NoError(t, a.Send(ctx, []byte("fits")))
	select {
	case m := <-b.In():
		require.Equal(t, "fits", string(m), "the large message was not delivered")
	case <-ctx.Done():
		t.Fatal("nothing came through In")
	}
	select {
	case err := <-drops:
		require.ErrorIs(t, err, iox.ErrMessageTooLarge)
		requireTyped(t, err, "the dropped message's error")
	default:
		t.Fatal("OnDrop did not get the dropped message's error before the next message")
	}
	require.NoError(t, b.Err())
}

// The numbers the README and doc comments state: the pipeline's bounds
// (MaxPushers 16, MaxPullers 64), the bounds of every count and spin, the
// blackboard's key size, and the settings a client's service is created with
// ("MaxActiveRequests (default 16)", "MaxClients 4, MaxServers 1,
// ResponseBufferSize 4").
func TestClaimDocumentedNumbers(t *testing.T) {
	require.Equal(t, 16, iox.MaxPushers)
	require.Equal(t, 64, iox.MaxPullers)
	require.Equal(t, 1<<20, iox.MaxServiceCount)
	require.Equal(t, 10000, iox.MaxSpin)
	require.Equal(t, 64, iox.MaxBlackboardKeySize)

	ns := newNamespace(t)
	node := ns.node(t)
	cl, err := iox.OpenClient(advCtx(t), node, "rpc-defaults", iox.Raw{}, iox.Raw{})
	require.NoError(t, err)
	defer cl.Close()
	svc, err := node.RequestResponse("rpc-defaults", iox.OpenOnly())
	require.NoError(t, err)
	defer svc.Close()
	cfg := svc.Config()
	require.Equal(t, 16, cfg.MaxActiveRequests)
	require.Equal(t, 4, cfg.MaxClients)
	require.Equal(t, 1, cfg.MaxServers)
	require.Equal(t, 4, cfg.ResponseBufferSize)
}

// InitialMessageSize: "larger values are cut to MaxMessageSize": a first
// segment for 1 TiB messages on a port whose messages are at most 1 KiB is
// one for 1 KiB messages.
func TestClaimInitialMessageSizeIsCutToTheMaximum(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	svc, err := node.PublishSubscribe("initial-cut")
	require.NoError(t, err)
	defer svc.Close()
	pub, err := svc.Publisher(iox.MaxMessageSize(1024), iox.InitialMessageSize(1<<40))
	require.NoError(t, err, "1 TiB is cut to 1 KiB")
	defer pub.Close()
	sub, err := svc.Subscriber()
	require.NoError(t, err)
	defer sub.Close()
	n, err := pub.Send(make([]byte, 1024))
	require.NoError(t, err)
	require.Equal(t, 1, n)
	_, err = pub.Send(make([]byte, 1025))
	require.ErrorIs(t, err, iox.ErrMessageTooLarge)
}

// SubscriberBuffer "sets this subscriber's buffer: 1 to the service's
// BufferSize (0 = the service's BufferSize)": with iceoryx2's safe overflow,
// a subscriber of buffer 2 keeps the last two of four messages, one of
// buffer 0 all four.
func TestClaimSubscriberBuffer(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	svc, err := node.PublishSubscribe("sub-buffer", iox.BufferSize(4))
	require.NoError(t, err)
	defer svc.Close()
	two, err := svc.Subscriber(iox.SubscriberBuffer(2))
	require.NoError(t, err)
	defer two.Close()
	all, err := svc.Subscriber(iox.SubscriberBuffer(0))
	require.NoError(t, err)
	defer all.Close()
	pub, err := svc.Publisher()
	require.NoError(t, err)
	defer pub.Close()
	for i := range 4 {
		n, err := pub.Send([]byte{byte(i)})
		require.NoError(t, err)
		require.Equal(t, 2, n)
	}
	take := func(s *iox.Subscriber) (got []byte) {
		buf := make([]byte, 8)
		for {
			n, ok, err := s.TryReceive(buf)
			require.NoError(t, err)
			if !ok {
				return got
			}
			got = append(got, buf[:n]...)
		}
	}
	require.Equal(t, []byte{2, 3}, take(two), "a buffer of 2 keeps the last two")
	require.Equal(t, []byte{0, 1, 2, 3}, take(all), "0 is the service's buffer")
}

func init() { children["claim-notifier"] = childClaimNotifier }

// childClaimNotifier makes a notifier of the event service IOX_SERVICE, says
// "ready" and waits to be killed.
func childClaimNotifier() error {
	node, err := nsFromEnv().childNode()
	if err != nil {
		return err
	}
	defer node.Close()
	ev, err := node.Event(os.Getenv("IOX_SERVICE"), iox.OpenOnly())
	if err != nil {
		return err
	}
	defer ev.Close()
	n, err := ev.Notifier()
	if err != nil {
		return err
	}
	defer n.Close()
	fmt.Println("ready")
	parentSays()
	return nil
}

// NotifierCreatedEvent, NotifierDroppedEvent and NotifierDeadEvent "make
// iceoryx2 signal id" to the listeners when a notifier is created, closed, or
// its process dies ("seen when dead nodes are cleaned up").
func TestClaimNotifierLifeEvents(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := advCtx(t)
	ev, err := node.Event("notifier-life", iox.NotifierCreatedEvent(1), iox.NotifierDroppedEvent(2), iox.NotifierDeadEvent(3))
	require.NoError(t, err)
	defer ev.Close()
	l, err := ev.Listener()
	require.NoError(t, err)
	defer l.Close()
	next := func(what string, want iox.EventID) {
		t.Helper()
		ids, err := l.Wait(ctx)
		require.NoError(t, err, what)
		require.Equal(t, []iox.EventID{want}, ids, what)
	}

	n, err := ev.Notifier()
	require.NoError(t, err)
	next("a notifier created", 1)
	require.NoError(t, n.Close())
	next("a notifier closed", 2)

	c := spawn(t, ns, "claim-notifier", "IOX_SERVICE=notifier-life")
	c.expect("ready")
	next("a notifier created in another process", 1)
	c.kill()
	cleaned, err := node.CleanupDeadNodes()
	require.NoError(t, err)
	require.Equal(t, 1, cleaned)
	next("a notifier's process died", 3)
}
