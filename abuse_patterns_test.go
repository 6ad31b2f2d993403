package iox_test

// Adversarial probes of the request/response, pipeline and event adapters:
// Close racing calls in flight, contexts that end at awkward points, peers
// stopped or killed mid-call, absurd arguments, and waiters left without a
// waker. (abuse_test.go does the same for pairs and pub/sub.)

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/iox-go/iox"
)

// A Call or Stream whose context ended before it was made fails without
// sending anything: the server never sees a request its caller gave up on
// before asking. (Push.Send looks at ctx after taking its turn; Call did
// not, so a select between a free slot and the ended context sent the
// request about half of the time.)
func TestPatCallWithEndedContextSendsNothing(t *testing.T) {
	ns := newNamespace(t)
	ctx := advCtx(t)
	node := ns.node(t)
	srv, err := iox.OpenServer(ctx, node, "pat-ended", iox.Raw{}, iox.Raw{})
	require.NoError(t, err)
	defer srv.Close()
	var got atomic.Int64
	sctx, stop := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() {
		served <- srv.Serve(sctx, 1, func(_ context.Context, b []byte) ([]byte, error) {
			got.Add(1)
			return b, nil
		})
	}()
	cli, err := iox.OpenClient(ctx, node, "pat-ended", iox.Raw{}, iox.Raw{})
	require.NoError(t, err)
	defer cli.Close()
	_, err = cli.Call(ctx, []byte("warm")) // the server is there and answers
	require.NoError(t, err)

	ended, cancel := context.WithCancel(ctx)
	cancel()
	const n = 64
	for i := range n {
		_, err := cli.Call(ended, []byte("ended"))
		require.ErrorIs(t, err, context.Canceled, "call %d", i)
		if s, err := cli.Stream(ended, []byte("ended")); err == nil {
			for range s.In() {
			}
			require.ErrorIs(t, s.Err(), context.Canceled, "stream %d", i)
		} else {
			require.ErrorIs(t, err, context.Canceled, "stream %d", i)
		}
	}
	// The server takes one client's requests in order: once the last live
	// call is answered, every request sent before it was received.
	_, err = cli.Call(ctx, []byte("last"))
	require.NoError(t, err)
	require.Equal(t, int64(2), got.Load(), "requests the server got: only the two live calls, none of the %d whose context had ended", 2*n)
	stop()
	require.ErrorIs(t, <-served, context.Canceled)
}

// A handler that waits on the context Serve gives it is not left waiting
// when the server closes: Serve returns after Close, and the handler's
// context ended with the server.
func TestPatServeHandlerContextEndsWithServer(t *testing.T) {
	ns := newNamespace(t)
	ctx := advCtx(t)
	node := ns.node(t)
	srv, err := iox.OpenServer(ctx, node, "pat-handler", iox.Raw{}, iox.Raw{})
	require.NoError(t, err)
	inHandler := make(chan struct{}, 1)
	served := make(chan error, 1)
	go func() {
		served <- srv.Serve(context.Background(), 2, func(hctx context.Context, b []byte) ([]byte, error) {
			inHandler <- struct{}{}
			<-hctx.Done() // a handler that works until its context says stop
			return nil, hctx.Err()
		})
	}()
	cli, err := iox.OpenClient(ctx, node, "pat-handler", iox.Raw{}, iox.Raw{})
	require.NoError(t, err)
	defer cli.Close()
	called := make(chan error, 1)
	go func() {
		_, err := cli.Call(ctx, []byte("work"))
		called <- err
	}()
	<-inHandler
	require.NoError(t, srv.Close())
	select {
	case err := <-served:
		requireTyped(t, err, "Serve after Close")
		require.ErrorIs(t, err, iox.ErrClosed)
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return within 5 s of the server's Close: its handler's context never ended")
	}
	err = <-called
	require.ErrorIs(t, err, iox.ErrNoResponse, "the call of a closed server")
}

// Close of the client, twice at once, and Stream.Close, twice at once, race
// the iteration of a stream whose server keeps sending: everything returns,
// the stream's In closes with Err set, and nothing is left behind.
func TestPatStreamIterationRacesCloses(t *testing.T) {
	ns := newNamespace(t)
	ctx := advCtx(t)
	snode := ns.node(t)
	srv, err := iox.OpenServer(ctx, snode, "pat-stream", iox.Raw{}, iox.Raw{})
	require.NoError(t, err)
	defer srv.Close()
	sctx, stop := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() {
		served <- srv.Serve(sctx, 4, func(hctx context.Context, b []byte) ([]byte, error) {
			return b, nil
		})
	}()
	defer func() { stop(); <-served }()
	for round := range loops(20, 5, 200) {
		cnode := ns.node(t)
		cli, err := iox.OpenClient(ctx, cnode, "pat-stream", iox.Raw{}, iox.Raw{}, iox.WithChanCap(1))
		require.NoError(t, err)
		var streams []*iox.Stream[[]byte]
		for range 4 {
			s, err := cli.Stream(ctx, []byte("x"))
			require.NoError(t, err)
			streams = append(streams, s)
		}
		var wg sync.WaitGroup
		for _, s := range streams {
			wg.Add(3)
			go func() {
				defer wg.Done()
				for range s.In() {
				}
				// context.Canceled after Stream.Close (documented), the
				// client's ErrClosed, or the normal end
				if err := s.Err(); err != nil && !errors.Is(err, context.Canceled) {
					requireTyped(t, err, "stream's end")
				}
			}()
			go func() { defer wg.Done(); s.Close() }()
			go func() { defer wg.Done(); s.Close() }()
		}
		errs := make(chan error, 2)
		for range 2 {
			go func() { errs <- cli.Close() }()
		}
		e1, e2 := <-errs, <-errs
		require.True(t, (e1 == nil) != (e2 == nil), "round %d: one Close returns nil, the other ErrClosed: %v, %v", round, e1, e2)
		require.ErrorIs(t, errors.Join(e1, e2), iox.ErrClosed)
		within(t, 10*time.Second, "stream iteration and Closes", wg.Wait)
		_, err = cli.Call(ctx, []byte("after"))
		require.ErrorIs(t, err, iox.ErrClosed)
		_, err = cli.Stream(ctx, []byte("after"))
		require.ErrorIs(t, err, iox.ErrClosed)
		cnode.Close()
	}
}

// Absurd options and arguments of clients, servers, Serve and Events are
// refused with a typed error (or work), never a panic.
func TestPatRPCAbsurdArguments(t *testing.T) {
	ns := newNamespace(t)
	ctx := advCtx(t)
	node := ns.node(t)
	bad := map[string]iox.Option{
		"MaxActiveRequests(0)":    iox.MaxActiveRequests(0),
		"MaxActiveRequests(-1)":   iox.MaxActiveRequests(-1),
		"MaxActiveRequests(huge)": iox.MaxActiveRequests(math.MaxInt),
		"ResponseBufferSize(0)":   iox.ResponseBufferSize(0),
		"ResponseBufferSize(-5)":  iox.ResponseBufferSize(-5),
		"MaxClients(0)":           iox.MaxClients(0),
		"MaxServers(-1)":          iox.MaxServers(-1),
		"MaxClients(huge)":        iox.MaxClients(math.MaxInt),
		"MaxMessageSize(-1)":      iox.MaxMessageSize(-1),
		"WithPoll(0)":             iox.WithPoll(0),
		"WithPoll(-1s)":           iox.WithPoll(-time.Second),
		"WithPeerTimeout(0)":      iox.WithPeerTimeout(0),
		"WithChanCap(-1)":         iox.WithChanCap(-1),
		"WithSpin(-2ns)":          iox.WithSpin(-2),
		"BufferSize(4)":           iox.BufferSize(4),
		"WithLinger(1s)":          iox.WithLinger(time.Second),
		"Lossy()":                 iox.Lossy(),
	}
	for name, opt := range bad {
		for _, end := range []string{"client", "server"} {
			var err error
			func() {
				defer func() {
					if p := recover(); p != nil {
						t.Fatalf("%s with %s panicked: %v", end, name, p)
					}
				}()
				if end == "client" {
					var c *iox.Caller[[]byte, []byte]
					if c, err = iox.OpenClient(ctx, node, "pat-absurd", iox.Raw{}, iox.Raw{}, opt); err == nil {
						c.Close()
					}
				} else {
					var s *iox.Responder[[]byte, []byte]
					if s, err = iox.OpenServer(ctx, node, "pat-absurd", iox.Raw{}, iox.Raw{}, opt); err == nil {
						s.Close()
					}
				}
			}()
			requireTyped(t, err, end+" with "+name)
		}
	}
	srv, err := iox.OpenServer(ctx, node, "pat-absurd", iox.Raw{}, iox.Raw{})
	require.NoError(t, err)
	defer srv.Close()
	echo := func(_ context.Context, b []byte) ([]byte, error) { return b, nil }
	for _, w := range []int{0, -1, math.MinInt, math.MaxInt} {
		err := srv.Serve(ctx, w, echo)
		requireTyped(t, err, fmt.Sprintf("Serve with %d workers", w))
		require.ErrorIs(t, err, iox.ErrInvalidArgument)
	}
	ev, err := iox.OpenEvents(ctx, node, "pat-absurd-ev")
	require.NoError(t, err)
	defer ev.Close()
	for _, id := range []iox.EventID{math.MaxUint32, 1 << 40, math.MaxUint64} {
		_, err := ev.Notify(id)
		requireTyped(t, err, fmt.Sprintf("Notify(%d)", uint64(id)))
	}
	_, err = ev.Notify(1) // the events go on
	require.NoError(t, err)
	got, err := ev.Recv(ctx)
	require.NoError(t, err)
	require.Equal(t, iox.EventID(1), got)
}

// A Pull.Recv whose context has ended loses nothing: every message pushed is
// received exactly once by the live receives that follow, however many
// receives with an ended context came between.
func TestPatPullRecvEndedContextLosesNothing(t *testing.T) {
	ns := newNamespace(t)
	ctx := advCtx(t)
	node := ns.node(t)
	pull, err := iox.OpenPull(ctx, node, "pat-pull")
	require.NoError(t, err)
	defer pull.Close()
	push, err := iox.OpenPush(ctx, node, "pat-pull")
	require.NoError(t, err)
	ended, cancel := context.WithCancel(ctx)
	cancel()
	const n = 500
	sent := make(chan error, 1)
	go func() {
		for i := range n {
			if err := push.Send(ctx, seqMsg(uint64(i))); err != nil {
				sent <- err
				return
			}
			if err := push.Send(ended, seqMsg(math.MaxUint64)); !errors.Is(err, context.Canceled) {
				sent <- fmt.Errorf("Send with an ended context: %v", err)
				return
			}
		}
		sent <- nil
	}()
	seen := make([]bool, n)
	for k := 0; k < n; {
		for range 3 {
			if m, err := pull.Recv(ended); err == nil {
				require.Len(t, m, 8)
				i := binaryLE(m)
				require.Less(t, i, uint64(n), "a message sent with an ended context arrived")
				require.False(t, seen[i], "message %d twice", i)
				seen[i] = true
				k++
			} else {
				require.ErrorIs(t, err, context.Canceled)
			}
		}
		if k == n {
			break
		}
		m, err := pull.Recv(ctx)
		require.NoError(t, err)
		i := binaryLE(m)
		require.Less(t, i, uint64(n), "a message sent with an ended context arrived")
		require.False(t, seen[i], "message %d twice", i)
		seen[i] = true
		k++
	}
	require.NoError(t, <-sent)
	require.NoError(t, push.Close())
}

func binaryLE(m []byte) uint64 {
	var v uint64
	for i := 7; i >= 0; i-- {
		v = v<<8 | uint64(m[i])
	}
	return v
}

// A server's stream Send that waits for room in its caller's full buffer
// ends when the caller closes its client (in-process: the same node
// machinery as a caller that closes cleanly in another process), with
// ErrPeerClosed, not a crash and not a hang.
func TestPatServerSendToClosingClientEnds(t *testing.T) {
	ns := newNamespace(t)
	ctx := advCtx(t)
	srv, err := iox.OpenServer(ctx, ns.node(t), "pat-full", iox.Raw{}, iox.Raw{})
	require.NoError(t, err)
	defer srv.Close()
	cnode := ns.node(t)
	cli, err := iox.OpenClient(ctx, cnode, "pat-full", iox.Raw{}, iox.Raw{}, iox.WithChanCap(0))
	require.NoError(t, err)
	s, err := cli.Stream(ctx, []byte("go"))
	require.NoError(t, err)
	q, err := srv.Recv(ctx)
	require.NoError(t, err)
	var sent atomic.Int64
	sendErr := make(chan error, 1)
	go func() {
		for {
			if err := q.Send(context.Background(), []byte(strconv.Itoa(int(sent.Load())))); err != nil {
				sendErr <- err
				return
			}
			sent.Add(1)
		}
	}()
	waitHeldBack(t, "iox.(*Request[...]).send", sent.Load)
	require.NoError(t, cli.Close())
	select {
	case err := <-sendErr:
		requireTyped(t, err, "Send to a closed client")
		require.ErrorIs(t, err, iox.ErrPeerClosed, "a client that closed is no crash")
	case <-time.After(5 * time.Second):
		t.Fatal("the server's Send still waits 5 s after its caller's client closed")
	}
	for range s.In() {
	}
	require.ErrorIs(t, s.Err(), iox.ErrClosed)
	require.ErrorIs(t, q.Close(), iox.ErrClosed, "the request ended with the caller's leaving")
}

// A server process stopped (SIGSTOP) mid-call: calls with a deadline end at
// it, the calls without one are answered once the server goes on (the lead
// that left by its deadline handed the wait over), and a client with calls
// in flight to the stopped server closes at once, its calls ending with
// ErrClosed.
func TestPatServerStoppedMidCall(t *testing.T) {
	ns := newNamespace(t)
	ctx := advCtx(t)
	c := rpcChild(t, ns, "pat-stopped", "square")
	t.Cleanup(func() { c.cmd.Process.Signal(syscall.SIGCONT) })
	node := ns.node(t)
	cli, err := iox.OpenClient(ctx, node, "pat-stopped", iox.Raw{}, iox.Raw{})
	require.NoError(t, err)
	defer cli.Close()
	other, err := iox.OpenClient(ctx, node, "pat-stopped", iox.Raw{}, iox.Raw{})
	require.NoError(t, err)
	v, err := cli.Call(ctx, []byte("3"))
	require.NoError(t, err)
	require.Equal(t, "9", string(v))

	c.stop()
	type result struct {
		i   int
		v   []byte
		err error
	}
	short, long, closed := make(chan result, 3), make(chan result, 3), make(chan result, 3)
	for i := range 3 {
		go func() {
			sctx, cancel := context.WithTimeout(ctx, time.Duration(50*(i+1))*time.Millisecond)
			defer cancel()
			v, err := cli.Call(sctx, []byte(strconv.Itoa(10+i)))
			short <- result{i, v, err}
		}()
		go func() {
			v, err := cli.Call(ctx, []byte(strconv.Itoa(20+i)))
			long <- result{20 + i, v, err}
		}()
		go func() {
			v, err := other.Call(ctx, []byte(strconv.Itoa(30+i)))
			closed <- result{30 + i, v, err}
		}()
	}
	for range 3 {
		select {
		case r := <-short:
			require.ErrorIs(t, r.err, context.DeadlineExceeded, "call %d with a deadline to a stopped server", r.i)
		case <-time.After(5 * time.Second):
			t.Fatal("a call with a deadline of at most 150 ms to a stopped server still waits after 5 s")
		}
	}
	waitParked(t, "iox.(*Caller[...]).Call", 6)
	within(t, 2*time.Second, "Close of a client whose calls wait for a stopped server", func() {
		require.NoError(t, other.Close())
	})
	for range 3 {
		r := <-closed
		require.ErrorIs(t, r.err, iox.ErrClosed, "call %d of the closed client", r.i)
	}
	require.NoError(t, c.cmd.Process.Signal(syscall.SIGCONT))
	for range 3 {
		select {
		case r := <-long:
			require.NoError(t, r.err, "call %d after the server went on", r.i)
			require.Equal(t, strconv.Itoa(r.i*r.i), string(r.v))
		case <-time.After(5 * time.Second):
			t.Fatal("a call without a deadline was not answered 5 s after its stopped server went on: a waiter without a waker")
		}
	}
	v, err = cli.Call(ctx, []byte("7"))
	require.NoError(t, err)
	require.Equal(t, "49", string(v))
}

// A server process killed while it streams the responses to a call: the
// stream's In closes within moments, with ErrPeerCrashed, after the
// responses that came, each once and in order.
func TestPatServerKilledMidStream(t *testing.T) {
	ns := newNamespace(t)
	ctx := advCtx(t)
	c := rpcChild(t, ns, "pat-killed", "count")
	cli, err := iox.OpenClient(ctx, ns.node(t), "pat-killed", iox.Raw{}, iox.Raw{}, iox.WithChanCap(0))
	require.NoError(t, err)
	defer cli.Close()
	s, err := cli.Stream(ctx, []byte("100000000"))
	require.NoError(t, err)
	next := 0
	for v := range s.In() {
		require.Equal(t, strconv.Itoa(next), string(v), "response %d", next)
		next++
		if next == 50 {
			c.kill()
			break
		}
	}
	within(t, 5*time.Second, "the end of a stream whose server was killed", func() {
		for v := range s.In() {
			require.Equal(t, strconv.Itoa(next), string(v), "response %d", next)
			next++
		}
	})
	requireTyped(t, s.Err(), "the stream's end")
	require.ErrorIs(t, s.Err(), iox.ErrPeerCrashed)
	// With no server left a call waits, bounded by its context; one sent
	// while the dead server's port is still being removed had it, and
	// fails as crashed.
	var wrong error
	eventually(t, "a call that waits for a server", func() bool {
		sctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
		defer cancel()
		_, err := cli.Call(sctx, []byte("1"))
		if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, iox.ErrPeerCrashed) {
			wrong = err
		}
		return wrong != nil || errors.Is(err, context.DeadlineExceeded)
	})
	require.NoError(t, wrong, "a call after the server was killed: it waits for a server, or fails as crashed")
	require.NoError(t, cli.Close())
	sweepDead(t, ns)
}

// A server process killed at a random moment of its opening, while a call
// waits for a server: the call ends (answered by the server that comes next,
// or ErrPeerCrashed when the dead one had its request, or ErrNoResponse when
// its port was removed from the service before its death was seen: see the
// README), never hangs, and the next call is answered.
func TestPatServerKilledWhileOpening(t *testing.T) {
	ns := newNamespace(t)
	ctx := advCtx(t)
	rnd := seeded(t)
	node, snode := ns.node(t), ns.node(t)
	for round := range loops(4, 2, 30) {
		name := fmt.Sprintf("pat-opening-%d", round)
		cli, err := iox.OpenClient(ctx, node, name, iox.Raw{}, iox.Raw{})
		require.NoError(t, err)
		called := make(chan error, 1)
		go func() {
			cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
			defer cancel()
			_, err := cli.Call(cctx, []byte("5"))
			called <- err
		}()
		c := spawn(t, ns, "rpc-server", "IOX_SERVICE="+name, "IOX_RPC_MODE=square")
		time.Sleep(time.Duration(rnd.IntN(40)) * time.Millisecond) // the stimulus: a moment of its opening
		c.kill()
		srv, err := iox.OpenServer(ctx, snode, name, iox.Raw{}, iox.Raw{})
		require.NoError(t, err, "round %d: a server after the killed one", round)
		sctx, stop := context.WithCancel(ctx)
		served := make(chan error, 1)
		go func() {
			served <- srv.Serve(sctx, 1, func(_ context.Context, b []byte) ([]byte, error) { return b, nil })
		}()
		select {
		case err := <-called:
			if err != nil && !errors.Is(err, iox.ErrPeerCrashed) {
				require.ErrorIs(t, err, iox.ErrNoResponse, "round %d: a crash, or a call left unanswered", round)
				t.Logf("round %d: the killed server's port was gone before its death was seen: %v", round, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("round %d: the call still waits 10 s after the killed server's successor came", round)
		}
		v, err := cli.Call(ctx, []byte("after"))
		require.NoError(t, err, "round %d", round)
		require.Equal(t, "after", string(v))
		stop()
		<-served
		require.NoError(t, cli.Close())
		require.NoError(t, srv.Close())
		_, err = node.CleanupDeadNodes()
		require.NoError(t, err)
	}
	// A child killed while it made its node may leave that node's files
	// half-made, which no cleanup recognises (iceoryx2's creation is not
	// crash-consistent); they did not stop the next runs above.
	require.NoError(t, node.Close())
	require.NoError(t, snode.Close())
	shm, root := sweepCrashLeftovers(t, ns)
	t.Logf("left behind by children killed while opening: %v %v", shm, root)
}

// A puller process stopped (SIGSTOP) while it holds messages it has not
// handed over, then killed: it never holds the pusher back from a live
// puller, and once it is killed what it held goes to the live puller; every
// message arrives once, and the pusher's Close confirms them all.
func TestPatPullerStoppedThenKilledHolding(t *testing.T) {
	ns := newNamespace(t)
	ctx := advCtx(t)
	c := spawn(t, ns, "pipe-pull", "IOX_SERVICE=pat-held", "IOX_BUFFER=4", "IOX_GATE=1")
	c.expect("ready")
	node := ns.node(t)
	push, err := iox.OpenPush(ctx, node, "pat-held")
	require.NoError(t, err)
	eventually(t, "the child puller", func() bool { return push.Pullers() == 1 })
	const first = 4
	for i := range first { // the child's buffer: it has them, and takes none
		require.NoError(t, push.Send(ctx, seqMsg(uint64(i))))
	}
	c.stop()
	pull, err := iox.OpenPull(ctx, node, "pat-held", iox.BufferSize(4))
	require.NoError(t, err)
	defer pull.Close()
	eventually(t, "both pullers", func() bool { return push.Pullers() == 2 })
	const n = 300
	sent := make(chan error, 1)
	go func() {
		for i := first; i < n; i++ {
			if err := push.Send(ctx, seqMsg(uint64(i))); err != nil {
				sent <- err
				return
			}
		}
		sent <- nil
	}()
	seen := map[uint64]bool{}
	take := func(k int) {
		for range k {
			rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			m, err := pull.Recv(rctx)
			cancel()
			require.NoError(t, err, "after %d messages", len(seen))
			i := binaryLE(m)
			require.False(t, seen[i], "message %d twice", i)
			seen[i] = true
		}
	}
	take(n - first) // what the stopped puller could not take goes here
	require.NoError(t, <-sent)
	c.kill()
	take(first) // and what it held, once it died
	require.Len(t, seen, n)
	within(t, 5*time.Second, "the pusher's Close", func() { require.NoError(t, push.Close()) })
	sweepDead(t, ns)
}
