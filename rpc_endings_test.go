package iox_test

// Regression tests for the ends of calls: a lead waiter that leaves, a reply
// that fails, a stream that ends, a server that holds as many requests as it
// may borrow. Each runs the server in a child process.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/iox-go/iox"
)

func init() {
	children["rpc-manual"] = childRPCManual
	children["rpc-serve"] = childRPCServe
	children["rpc-caller"] = childRPCCaller
}

// childRPCManual is a server of IOX_SERVICE that the parent drives line by
// line: it prints "got V" for each request V it receives and keeps it open;
// "reply V" answers V with "V!", "close V" ends V without an answer. It exits
// when the parent closes stdin, ending the requests it still holds.
func childRPCManual() error {
	node, err := nsFromEnv().childNode()
	if err != nil {
		return err
	}
	defer node.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv, err := iox.OpenServer(ctx, node, os.Getenv("IOX_SERVICE"), iox.Raw{}, iox.Raw{})
	if err != nil {
		return err
	}
	defer srv.Close()
	var mu sync.Mutex
	held := map[string]*iox.Request[[]byte, []byte]{}
	recvErr := make(chan error, 1)
	go func() {
		for {
			q, err := srv.Recv(ctx)
			if err != nil {
				if ctx.Err() != nil {
					err = nil
				}
				recvErr <- err
				return
			}
			mu.Lock()
			held[string(q.Value)] = q
			mu.Unlock()
			fmt.Println("got", string(q.Value))
		}
	}()
	fmt.Println("ready")
	for line := range parentLines() {
		verb, v, _ := strings.Cut(line, " ")
		mu.Lock()
		q := held[v]
		delete(held, v)
		mu.Unlock()
		if q == nil {
			return fmt.Errorf("%s: no request %q held", verb, v)
		}
		switch verb {
		case "reply":
			if err := q.Reply(ctx, []byte(v+"!")); err != nil {
				return fmt.Errorf("reply %s: %w", v, err)
			}
		case "close":
			q.Close()
		default:
			return fmt.Errorf("unknown verb %q", verb)
		}
	}
	cancel()
	return <-recvErr
}

// A lead waiter whose context ends hands the lead to a call still waiting:
// that call returns as soon as its answer comes, not at its own deadline.
// (The lead could pick itself as its successor, and nobody waited on the
// client's listener any more.)
func TestRPCLeadLeavingHandsOver(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	c := spawn(t, ns, "rpc-manual", "IOX_SERVICE=lead")
	c.expect("ready")
	defer c.wait()
	cl, err := iox.OpenClient(context.Background(), node, "lead", iox.Raw{}, iox.Raw{}, iox.WithSpin(0))
	require.NoError(t, err)
	defer cl.Close()
	type result struct {
		v   []byte
		err error
	}
	call := func(ctx context.Context, req string) chan result {
		out := make(chan result, 1)
		go func() {
			v, err := cl.Call(ctx, []byte(req))
			out <- result{v, err}
		}()
		return out
	}
	// Each round gives the successor a fresh choice between the leaving lead
	// and the call that stays.
	for i := range loops(10, 5, 200) {
		b, a := "b"+strconv.Itoa(i), "a"+strconv.Itoa(i)
		bctx, bcancel := context.WithCancel(context.Background())
		bres := call(bctx, b)
		c.expect("got " + b)
		waitParked(t, "iox.(*Caller[...]).lead", 1)
		// The call that stays has a deadline only as the test's bound: with
		// nobody leading it would return DeadlineExceeded after 5 s.
		actx, acancel := context.WithTimeout(context.Background(), 5*time.Second)
		ares := call(actx, a)
		c.expect("got " + a)
		waitParked(t, "iox.(*Caller[...]).park", 2)
		bcancel()
		require.ErrorIs(t, (<-bres).err, context.Canceled, "round %d", i)
		c.say("reply " + a)
		r := <-ares
		acancel()
		require.NoError(t, r.err, "round %d: the answer came, but nobody woke its call", i)
		require.Equal(t, a+"!", string(r.v))
		c.say("close " + b)
	}
}

// childRPCServe serves IOX_SERVICE with Serve and MaxMessageSize(64): "big"
// is answered with 100 bytes, "bad" with a value the response codec refuses,
// anything else with itself. Each OnDrop prints "dropped KIND".
func childRPCServe() error {
	node, err := nsFromEnv().childNode()
	if err != nil {
		return err
	}
	defer node.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv, err := iox.OpenServer(ctx, node, os.Getenv("IOX_SERVICE"), iox.Raw{}, pickyCodec{}, iox.MaxMessageSize(64),
		iox.OnDrop(func(err error) { fmt.Println("dropped", kindOf(err)) }))
	if err != nil {
		return err
	}
	defer srv.Close()
	go func() {
		parentSays()
		cancel()
	}()
	fmt.Println("ready")
	err = srv.Serve(ctx, 2, func(_ context.Context, req []byte) ([]byte, error) {
		switch string(req) {
		case "big":
			return make([]byte, 100), nil
		case "bad":
			return []byte("refused"), nil
		}
		return req, nil
	})
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// pickyCodec is Raw that refuses to encode "refused".
type pickyCodec struct{ iox.Raw }

func (pickyCodec) Append(dst []byte, v []byte) ([]byte, error) {
	if string(v) == "refused" {
		return dst, errors.New("this value has no encoding")
	}
	return append(dst, v...), nil
}

// A reply that Serve cannot send (over MaxMessageSize, or refused by the
// codec) ends the request: the caller gets ErrNoResponse at once instead of
// waiting for its deadline, and OnDrop says why.
func TestRPCFailedReplyEndsCall(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	c := spawn(t, ns, "rpc-serve", "IOX_SERVICE=failed-reply")
	c.expect("ready")
	defer c.wait()
	cl, err := iox.OpenClient(context.Background(), node, "failed-reply", iox.Raw{}, iox.Raw{}, iox.MaxMessageSize(64))
	require.NoError(t, err)
	defer cl.Close()
	for _, tc := range []struct{ req, kind string }{{"big", "ErrMessageTooLarge"}, {"bad", "ErrInvalidArgument"}} {
		// The deadline only bounds the test: the caller must not need it.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := cl.Call(ctx, []byte(tc.req))
		cancel()
		require.ErrorIs(t, err, iox.ErrNoResponse, tc.req)
		c.expect("dropped " + tc.kind)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	v, err := cl.Call(ctx, []byte("fine"))
	require.NoError(t, err)
	require.Equal(t, "fine", string(v))
}

// A stream ended by its context has Err set by the time In closes, as every
// adapter promises. (In used to close a moment before Err was set.) The
// window is narrow, so the test ends many streams; IOX_TORTURE ends more.
func TestRPCStreamErrSetBeforeInCloses(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	c := rpcChild(t, ns, "stream-err", "count")
	defer c.wait()
	cl, err := iox.OpenClient(context.Background(), node, "stream-err", iox.Raw{}, iox.Raw{})
	require.NoError(t, err)
	defer cl.Close()
	n := loops(500, 200, 20000)
	var early int
	for i := range n {
		ctx, cancel := context.WithCancel(context.Background())
		s, err := cl.Stream(ctx, []byte("1000000")) // more than anyone reads
		require.NoError(t, err)
		if i%2 == 0 { // half of them end while a response waits in In
			<-s.In()
		}
		cancel()
		// Look at In without parking, so that its close is seen at once.
		for open := true; open; {
			select {
			case _, open = <-s.In():
			default:
			}
		}
		if s.Err() == nil {
			early++
		}
		require.NoError(t, s.Close())
	}
	require.Zero(t, early, "of %d streams ended by their context, %d had no Err when In closed", n, early)
}

// childRPCCaller is a client of IOX_SERVICE that the parent drives: "call V"
// starts a call of V, "cancel V" ends its context; when the call returns it
// prints "result V ANSWER" or "result V KIND". With IOX_NO_PIDFD=1 it runs
// where no pidfd can be had, with WithPeerTimeout(100ms).
func childRPCCaller() error {
	var opts []iox.Option
	if os.Getenv("IOX_NO_PIDFD") == "1" {
		iox.WithoutPidfds()
		opts = append(opts, iox.WithPeerTimeout(100*time.Millisecond))
	}
	node, err := nsFromEnv().childNode()
	if err != nil {
		return err
	}
	defer node.Close()
	cl, err := iox.OpenClient(context.Background(), node, os.Getenv("IOX_SERVICE"), iox.Raw{}, iox.Raw{}, opts...)
	if err != nil {
		return err
	}
	defer cl.Close()
	var wg sync.WaitGroup
	defer wg.Wait()
	cancels := map[string]context.CancelFunc{}
	defer func() {
		for _, cancel := range cancels {
			cancel()
		}
	}()
	fmt.Println("ready")
	for line := range parentLines() {
		verb, v, _ := strings.Cut(line, " ")
		switch verb {
		case "call":
			ctx, cancel := context.WithCancel(context.Background())
			cancels[v] = cancel
			wg.Add(1)
			go func() {
				defer wg.Done()
				got, err := cl.Call(ctx, []byte(v))
				if err != nil {
					fmt.Println("result", v, kindOf(err))
					return
				}
				fmt.Println("result", v, string(got))
			}()
		case "cancel":
			cancels[v]()
		default:
			return fmt.Errorf("unknown verb %q", verb)
		}
	}
	return nil
}

// heldRequestRefusesTheNext sets up a server (MaxActiveRequests(1)) that holds
// the request of a caller in a child process that has given up on it, while
// that caller sends another: iceoryx2 then refuses to hand the server the
// second request (ErrTooManyLoans) until the first is released.
func heldRequestRefusesTheNext(t *testing.T, c *child, held func() bool) {
	t.Helper()
	c.say("call first")
	eventually(t, "the server to hold the first request", held)
	c.say("cancel first")
	c.expect("result first context.Canceled")
	c.say("call second")
}

// Serve waits for a held request to be released when iceoryx2 refuses the
// next one (ErrTooManyLoans), rather than trying again at once: it used to
// spin, reporting millions of ErrTooManyLoans to OnDrop.
func TestRPCServeWaitsForHeldRequest(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var mu sync.Mutex
	var dropped []string
	srv, err := iox.OpenServer(ctx, node, "loans", iox.Raw{}, iox.Raw{}, iox.MaxActiveRequests(1),
		iox.OnDrop(func(err error) {
			mu.Lock()
			dropped = append(dropped, kindOf(err))
			mu.Unlock()
		}))
	require.NoError(t, err)
	defer srv.Close()
	release := make(chan struct{})
	var holding sync.WaitGroup
	holding.Add(1)
	sctx, stop := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() {
		served <- srv.Serve(sctx, 2, func(_ context.Context, req []byte) ([]byte, error) {
			if string(req) == "first" {
				holding.Done()
				<-release
			}
			return req, nil
		})
	}()
	c := spawn(t, ns, "rpc-caller", "IOX_SERVICE=loans")
	c.expect("ready")
	defer c.wait()
	heldRequestRefusesTheNext(t, c, func() bool { holding.Wait(); return true })
	// Either the second worker waits for the release, or (as it used to) it
	// spins and reports each refusal to OnDrop.
	eventually(t, "the second worker to wait for the held request, or to spin", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return goroutinesIn("iox.(*Responder[...]).waitReleased", true) == 1 || len(dropped) >= 100
	})
	close(release)
	c.expect("result second second")
	stop()
	require.ErrorIs(t, <-served, context.Canceled)
	mu.Lock()
	defer mu.Unlock()
	kinds := map[string]int{}
	for _, k := range dropped {
		kinds[k]++
	}
	// The only drop is the answer to the caller that gave up.
	require.Equal(t, map[string]int{"ErrPeerClosed": 1}, kinds)
}

// Recv waits, bounded by its context, while iceoryx2 refuses the next request
// because the server holds as many of that client's requests as it may
// borrow; closing the held one lets it go on. (It used to return
// ErrTooManyLoans at once, so a Recv loop spun.)
func TestRPCRecvWaitsForHeldRequest(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv, err := iox.OpenServer(ctx, node, "loans", iox.Raw{}, iox.Raw{}, iox.MaxActiveRequests(1))
	require.NoError(t, err)
	defer srv.Close()
	c := spawn(t, ns, "rpc-caller", "IOX_SERVICE=loans")
	c.expect("ready")
	defer c.wait()
	var first *iox.Request[[]byte, []byte]
	heldRequestRefusesTheNext(t, c, func() bool {
		q, err := srv.Recv(ctx)
		require.NoError(t, err)
		first = q
		return true
	})
	// Until the first request is released the second cannot be taken.
	quick, qcancel := context.WithTimeout(ctx, 200*time.Millisecond)
	_, err = srv.Recv(quick)
	qcancel()
	require.ErrorIs(t, err, context.DeadlineExceeded, "Recv while the server holds what it may borrow")
	got := make(chan *iox.Request[[]byte, []byte], 1)
	go func() {
		q, err := srv.Recv(ctx)
		assert.NoError(t, err)
		got <- q
	}()
	waitParked(t, "iox.(*Responder[...]).waitReleased", 1)
	require.NoError(t, first.Close())
	q := <-got
	require.NotNil(t, q)
	require.Equal(t, "second", string(q.Value))
	require.NoError(t, q.Reply(ctx, []byte("2")))
	c.expect("result second 2")
}

// Calls that wait together, some of which leave (their context ends) while
// the others stay: whichever leaves, the lead among them or not, each call
// that stays returns its answer when it comes. A call left without a lead
// would return DeadlineExceeded after 5 s. IOX_TORTURE runs many more rounds.
func TestRPCWaitersLeavingTorture(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	c := spawn(t, ns, "rpc-manual", "IOX_SERVICE=leaving")
	c.expect("ready")
	defer c.wait()
	cl, err := iox.OpenClient(context.Background(), node, "leaving", iox.Raw{}, iox.Raw{}, iox.WithSpin(0))
	require.NoError(t, err)
	defer cl.Close()
	rnd := seeded(t)
	type waiter struct {
		req    string
		cancel context.CancelFunc
		out    chan error
		leaves bool
	}
	for round := range loops(20, 10, 500) {
		k := 2 + rnd.IntN(5)
		ws := make([]*waiter, k)
		for i := range ws {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			w := &waiter{req: fmt.Sprintf("r%d-%d", round, i), cancel: cancel, out: make(chan error, 1)}
			ws[i] = w
			go func() {
				v, err := cl.Call(ctx, []byte(w.req))
				if err == nil && string(v) != w.req+"!" {
					err = fmt.Errorf("answer %q", v)
				}
				w.out <- err
			}()
		}
		for range k {
			require.True(t, strings.HasPrefix(c.line(), "got r"))
		}
		waitParked(t, "iox.(*Caller[...]).park", k)
		leaving := 1 + rnd.IntN(k-1)
		for _, i := range rnd.Perm(k)[:leaving] {
			ws[i].leaves = true
			ws[i].cancel()
			require.ErrorIs(t, <-ws[i].out, context.Canceled, "round %d: %s", round, ws[i].req)
			c.say("close " + ws[i].req)
		}
		for _, i := range rnd.Perm(k) {
			if w := ws[i]; !w.leaves {
				c.say("reply " + w.req)
				require.NoError(t, <-w.out, "round %d: %s stayed, and its answer came", round, w.req)
				w.cancel()
			}
		}
	}
}

// A server process that closes its server and exits ends the calls it held
// with ErrNoResponse, as any server that closes does: its exit is not a
// crash.
func TestRPCServerExitAfterCloseIsNoCrash(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	cl, err := iox.OpenClient(context.Background(), node, "exit", iox.Raw{}, iox.Raw{})
	require.NoError(t, err)
	defer cl.Close()
	for round := range loops(5, 3, 50) {
		c := spawn(t, ns, "rpc-manual", "IOX_SERVICE=exit")
		c.expect("ready")
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		out := make(chan error, 1)
		go func() {
			_, err := cl.Call(ctx, []byte("held"))
			out <- err
		}()
		c.expect("got held")
		c.wait() // the child closes its server and node, then exits
		err := <-out
		cancel()
		require.ErrorIs(t, err, iox.ErrNoResponse, "round %d: %v", round, err)
	}
}

// Two clients of one process wait on calls to a server whose process is
// killed: both calls fail with ErrPeerCrashed. (The first client to see the
// death removes the dead server's port; the second must still tell a crash.)
func TestRPCServerCrashFailsCallsOfEveryClient(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	var cls []*iox.Caller[[]byte, []byte]
	for range 2 {
		cl, err := iox.OpenClient(context.Background(), node, "crash-all", iox.Raw{}, iox.Raw{})
		require.NoError(t, err)
		defer cl.Close()
		cls = append(cls, cl)
	}
	for round := range loops(3, 2, 20) {
		c := spawn(t, ns, "rpc-manual", "IOX_SERVICE=crash-all")
		c.expect("ready")
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		var outs []chan error
		for i, cl := range cls {
			out := make(chan error, 1)
			go func() {
				_, err := cl.Call(ctx, []byte(strconv.Itoa(i)))
				out <- err
			}()
			c.expect(fmt.Sprintf("got %d", i))
			outs = append(outs, out)
		}
		c.kill()
		for i, out := range outs {
			require.ErrorIs(t, <-out, iox.ErrPeerCrashed, "round %d, client %d", round, i)
		}
		cancel()
	}
}

// Clients that live on while their server's process is killed and started
// again, many times, keep calling: every call a dead server held fails with
// ErrPeerCrashed, and each client forgets each dead server once no call can
// ask about it any more. A client watches only the server alive, and this
// process keeps no record of the dead ones. (Two clients of the service in
// one process: the first to see a crash removes the server's port, the other
// learns of it from the record.)
func TestRPCClientForgetsDeadServers(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	const name = "restarts"
	var cls []*iox.Caller[[]byte, []byte]
	for range 2 {
		cl, err := iox.OpenClient(context.Background(), node, name, iox.Raw{}, iox.Raw{})
		require.NoError(t, err)
		defer cl.Close()
		cls = append(cls, cl)
	}
	call := func(ctx context.Context, cl *iox.Caller[[]byte, []byte], req string) chan error {
		out := make(chan error, 1)
		go func() {
			v, err := cl.Call(ctx, []byte(req))
			if err == nil && string(v) != req+"!" {
				err = fmt.Errorf("answer %q to %q", v, req)
			}
			out <- err
		}()
		return out
	}
	bounded := func(most int) bool {
		for _, cl := range cls {
			if cl.WatchedServers() > most {
				return false
			}
		}
		return iox.ServerRecords(name) <= most
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	restarts := loops(20, 10, 100)
	for round := range restarts + 1 {
		c := spawn(t, ns, "rpc-manual", "IOX_SERVICE="+name)
		c.expect("ready")
		for i, cl := range cls {
			answered := fmt.Sprintf("a%d-%d", round, i)
			out := call(ctx, cl, answered)
			c.expect("got " + answered)
			c.say("reply " + answered)
			require.NoError(t, <-out, "round %d, client %d", round, i)
		}
		if round == restarts {
			c.wait()
			break
		}
		var held []chan error
		for i, cl := range cls {
			for k := range 2 {
				req := fmt.Sprintf("h%d-%d-%d", round, i, k)
				held = append(held, call(ctx, cl, req))
				c.expect("got " + req)
			}
		}
		c.kill()
		for i, out := range held {
			require.ErrorIs(t, <-out, iox.ErrPeerCrashed, "round %d, call %d", round, i)
		}
		// At most the server of this round and the one before.
		require.True(t, bounded(2), "round %d: watched %d and %d, %d records", round,
			cls[0].WatchedServers(), cls[1].WatchedServers(), iox.ServerRecords(name))
	}
	// The last server closed cleanly and no call is in flight: the clients
	// need to know about no server but the last, whose process is gone too.
	eventually(t, "the clients to forget the servers of earlier rounds", func() bool { return bounded(1) })
}

// The client and the server (in another process) close at the same moment
// while calls wait: every call ends, with ErrClosed (the client's end came
// first) or ErrNoResponse (the server's did), and the client's Close returns
// nil.
func TestRPCBothEndsCloseAtOnce(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	for round := range loops(3, 2, 30) {
		c := spawn(t, ns, "rpc-manual", "IOX_SERVICE=both")
		c.expect("ready")
		cl, err := iox.OpenClient(context.Background(), node, "both", iox.Raw{}, iox.Raw{})
		require.NoError(t, err)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		const calls = 4
		out := make(chan error, calls)
		for i := range calls {
			go func() {
				_, err := cl.Call(ctx, []byte(strconv.Itoa(i)))
				out <- err
			}()
		}
		for range calls {
			require.True(t, strings.HasPrefix(c.line(), "got "))
		}
		closed := make(chan error, 1)
		go func() { closed <- cl.Close() }()
		c.stdin.Close() // the child closes its server
		for range calls {
			err := <-out
			require.True(t, errors.Is(err, iox.ErrClosed) || errors.Is(err, iox.ErrNoResponse),
				"round %d: a call ended with %v", round, err)
		}
		require.NoError(t, <-closed)
		c.wait()
		cancel()
	}
}

// A caller whose process dies while the server streams to it: the server's
// Send does not wait for room for ever; it fails once the caller is gone.
func TestRPCSendToDeadCallerEnds(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv, err := iox.OpenServer(ctx, node, "dead-caller", iox.Raw{}, iox.Raw{})
	require.NoError(t, err)
	defer srv.Close()
	c := spawn(t, ns, "rpc-caller", "IOX_SERVICE=dead-caller")
	c.expect("ready")
	c.say("call stream")
	q, err := srv.Recv(ctx)
	require.NoError(t, err)
	c.kill()
	var sendErr error
	within(t, 20*time.Second, "Send to a dead caller", func() {
		for i := 0; sendErr == nil; i++ {
			sendErr = q.Send(ctx, []byte(strconv.Itoa(i)))
		}
	})
	require.ErrorIs(t, sendErr, iox.ErrPeerGone)
}

// The end of the context a client was opened with fails its calls in flight
// with the client's reason: an *iox.Error wrapping the context's cause.
func TestRPCClientContextEndFailsCalls(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	c := spawn(t, ns, "rpc-manual", "IOX_SERVICE=client-ctx")
	c.expect("ready")
	defer c.wait()
	octx, end := context.WithCancel(context.Background())
	cl, err := iox.OpenClient(octx, node, "client-ctx", iox.Raw{}, iox.Raw{})
	require.NoError(t, err)
	const calls = 3
	out := make(chan error, calls)
	for i := range calls {
		go func() {
			_, err := cl.Call(context.Background(), []byte(strconv.Itoa(i)))
			out <- err
		}()
	}
	for range calls {
		require.True(t, strings.HasPrefix(c.line(), "got "))
	}
	end()
	for range calls {
		err := <-out
		require.ErrorIs(t, err, context.Canceled)
		requireTyped(t, err, "a call of a client whose context ended")
	}
	<-cl.Done()
	require.ErrorIs(t, cl.Err(), context.Canceled)
	require.NoError(t, cl.Close()) // the first Close after the end
	require.ErrorIs(t, cl.Close(), iox.ErrClosed)
}
