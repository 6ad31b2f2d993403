package iox_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/iox-go/iox"
)

func init() {
	children["rpc-server"] = childRPCServer
}

// childRPCServer serves IOX_SERVICE until its parent closes stdin. Requests are
// decimal numbers n; the answer depends on IOX_RPC_MODE:
//   - "square": one response, n*n;
//   - "count": n responses 0..n-1, then the end of the stream;
//   - "hold": no answer; the request is kept, and its Connected state is
//     printed ("gone n") once the caller went away; "crash" makes the child
//     kill itself while it holds a request.
func childRPCServer() error {
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
	mode := os.Getenv("IOX_RPC_MODE")
	go func() {
		parentSays()
		cancel()
	}()
	fmt.Println("ready")
	for {
		q, err := srv.Recv(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		n, err := strconv.Atoi(string(q.Value))
		if err != nil {
			return err
		}
		switch mode {
		case "square":
			if err := q.Reply(ctx, []byte(strconv.Itoa(n*n))); err != nil && !errors.Is(err, iox.ErrPeerClosed) {
				return err // a caller whose context ended goes away
			}
		case "count":
			gone := false
			for i := 0; i < n && !gone; i++ {
				err := q.Send(ctx, []byte(strconv.Itoa(i)))
				if gone = errors.Is(err, iox.ErrPeerClosed); err != nil && !gone {
					if ctx.Err() != nil {
						return nil // the parent is done
					}
					return err // a caller that took the first answer only goes away
				}
			}
			if err := q.Close(); err != nil && !gone {
				return err
			}
		case "hold":
			fmt.Println("holding", n)
			for q.Connected() {
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(time.Millisecond): // polls the request's state
				}
			}
			fmt.Println("gone", n)
			q.Close()
		case "crash":
			fmt.Println("holding", n)
			p, _ := os.FindProcess(os.Getpid())
			p.Kill()
		}
	}
}

func rpcChild(t *testing.T, ns namespace, service, mode string) *child {
	c := spawn(t, ns, "rpc-server", "IOX_SERVICE="+service, "IOX_RPC_MODE="+mode)
	c.expect("ready")
	return c
}

func TestRPCCallsAcrossProcesses(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	c := rpcChild(t, ns, "square", "square")
	defer c.wait()
	cl, err := iox.OpenClient(context.Background(), node, "square", iox.Raw{}, iox.Raw{})
	require.NoError(t, err)
	defer func() { require.NoError(t, cl.Close()) }()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// many goroutines, more than the client's request slots
	var wg sync.WaitGroup
	var bad atomic.Int64
	for g := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				n := g*1000 + i
				got, err := cl.Call(ctx, []byte(strconv.Itoa(n)))
				if err != nil || string(got) != strconv.Itoa(n*n) {
					t.Errorf("call %d: %q, %v", n, got, err)
					bad.Add(1)
					return
				}
			}
		}()
	}
	wg.Wait()
	assert.Zero(t, bad.Load())
}

func TestRPCStream(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	c := rpcChild(t, ns, "count", "count")
	defer c.wait()
	cl, err := iox.OpenClient(context.Background(), node, "count", iox.Raw{}, iox.Raw{})
	require.NoError(t, err)
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, n := range []int{0, 1, 100} {
		s, err := cl.Stream(ctx, []byte(strconv.Itoa(n)))
		require.NoError(t, err)
		var got []string
		for v := range s.In() {
			got = append(got, string(v))
		}
		require.NoError(t, s.Err())
		want := []string(nil)
		for i := range n {
			want = append(want, strconv.Itoa(i))
		}
		assert.Equal(t, want, got, "stream of %d", n)
		require.NoError(t, s.Close())
	}
	// A single-response Call on a stream of none gets ErrNoResponse.
	_, err = cl.Call(ctx, []byte("0"))
	assert.ErrorIs(t, err, iox.ErrNoResponse)
	// and the first of several
	v, err := cl.Call(ctx, []byte("3"))
	require.NoError(t, err)
	assert.Equal(t, "0", string(v))
}

// Cancelling a call frees its slot and the server sees the caller go away.
func TestRPCCancelledCallReachesServer(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	c := rpcChild(t, ns, "hold", "hold")
	defer c.wait()
	cl, err := iox.OpenClient(context.Background(), node, "hold", iox.Raw{}, iox.Raw{}, iox.MaxActiveRequests(1))
	require.NoError(t, err)
	defer cl.Close()
	for i := range 3 { // with one slot, each call needs the slot the last one freed
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			_, err := cl.Call(ctx, []byte(strconv.Itoa(i)))
			done <- err
		}()
		c.expect("holding " + strconv.Itoa(i))
		cancel()
		assert.ErrorIs(t, <-done, context.Canceled)
		c.expect("gone " + strconv.Itoa(i))
	}
}

func TestRPCServerCrashFailsCallsAndRestartServes(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	cl, err := iox.OpenClient(context.Background(), node, "crash", iox.Raw{}, iox.Raw{})
	require.NoError(t, err)
	defer cl.Close()
	c := spawn(t, ns, "rpc-server", "IOX_SERVICE=crash", "IOX_RPC_MODE=crash")
	c.expect("ready")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err = cl.Call(ctx, []byte("7"))
	require.ErrorIs(t, err, iox.ErrPeerCrashed)
	require.NoError(t, ctx.Err(), "the crash was seen before the context ended")
	err = <-c.done // the child killed itself
	c.done <- err
	require.Error(t, err)

	c2 := rpcChild(t, ns, "crash", "square")
	defer c2.wait()
	v, err := cl.Call(ctx, []byte("7"))
	require.NoError(t, err)
	assert.Equal(t, "49", string(v))
}

// A Call made before any server exists waits for one.
func TestRPCCallWaitsForServer(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	cl, err := iox.OpenClient(context.Background(), node, "late", iox.Raw{}, iox.Raw{})
	require.NoError(t, err)
	defer cl.Close()
	short, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	_, err = cl.Call(short, []byte("2"))
	cancel()
	require.ErrorIs(t, err, context.DeadlineExceeded)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	got := make(chan string, 1)
	go func() {
		v, err := cl.Call(ctx, []byte("5"))
		if err != nil {
			got <- err.Error()
			return
		}
		got <- string(v)
	}()
	c := rpcChild(t, ns, "late", "square")
	defer c.wait()
	assert.Equal(t, "25", <-got)
}

func TestRPCBadInput(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv, err := iox.OpenServer(ctx, node, "bad", iox.Raw{}, iox.Raw{}, iox.MaxMessageSize(64))
	require.NoError(t, err)
	defer srv.Close()
	cl, err := iox.OpenClient(ctx, node, "bad", iox.Raw{}, iox.Raw{}, iox.MaxMessageSize(64))
	require.NoError(t, err)
	defer cl.Close()

	// oversized request: refused on the client, nothing sent
	_, err = cl.Call(ctx, make([]byte, 65))
	require.ErrorIs(t, err, iox.ErrMessageTooLarge)

	answer := func(f func(q *iox.Request[[]byte, []byte])) {
		q, err := srv.Recv(ctx)
		require.NoError(t, err)
		f(q)
	}
	call := func(req string) (chan []byte, chan error) {
		out, errc := make(chan []byte, 1), make(chan error, 1)
		go func() {
			v, err := cl.Call(ctx, []byte(req))
			out <- v
			errc <- err
		}()
		return out, errc
	}

	// oversized response: refused on the server; the request stays open
	out, errc := call("a")
	answer(func(q *iox.Request[[]byte, []byte]) {
		require.ErrorIs(t, q.Reply(ctx, make([]byte, 65)), iox.ErrMessageTooLarge)
		require.NoError(t, q.Reply(ctx, []byte("ok")))
		// a second reply to a single-response call
		err := q.Reply(ctx, []byte("again"))
		require.ErrorIs(t, err, iox.ErrClosed)
		require.ErrorIs(t, q.Close(), iox.ErrClosed)
	})
	require.NoError(t, <-errc)
	assert.Equal(t, "ok", string(<-out))

	// a reply after the caller went away
	cctx, ccancel := context.WithCancel(ctx)
	gone := make(chan error, 1)
	go func() {
		_, err := cl.Call(cctx, []byte("b"))
		gone <- err
	}()
	answer(func(q *iox.Request[[]byte, []byte]) {
		ccancel()
		require.ErrorIs(t, <-gone, context.Canceled)
		eventually(t, "the server sees the caller gone", func() bool { return !q.Connected() })
		require.ErrorIs(t, q.Reply(ctx, []byte("late")), iox.ErrPeerClosed)
	})

	// a request the server ends without answering
	_, errc = call("c")
	answer(func(q *iox.Request[[]byte, []byte]) { require.NoError(t, q.Close()) })
	require.ErrorIs(t, <-errc, iox.ErrNoResponse)

	// absurd options
	for _, o := range []iox.Option{iox.MaxActiveRequests(0), iox.MaxActiveRequests(1 << 40), iox.ResponseBufferSize(-1),
		iox.MaxClients(0), iox.MaxMessageSize(-1), iox.WithPoll(0)} {
		_, err := iox.OpenClient(ctx, node, "absurd", iox.Raw{}, iox.Raw{}, o)
		require.ErrorIs(t, err, iox.ErrInvalidArgument)
	}
	_, err = iox.OpenClient(ctx, node, "absurd", iox.Raw{}, iox.Raw{}, iox.Lossy())
	require.ErrorIs(t, err, iox.ErrInvalidArgument)
	_, err = iox.OpenClient(ctx, node, "absurd", iox.Raw{}, iox.Raw{}, iox.OnDrop(func(error) {}))
	require.ErrorIs(t, err, iox.ErrInvalidArgument)
	require.ErrorIs(t, srv.Serve(ctx, 0, nil), iox.ErrInvalidArgument)
}

// Too many calls in flight wait for a slot: with MaxActiveRequests(2) the
// server never holds more than two requests of the client at once.
func TestRPCTooManyCallsWait(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv, err := iox.OpenServer(ctx, node, "slots", iox.Raw{}, iox.Raw{}, iox.MaxActiveRequests(2))
	require.NoError(t, err)
	defer srv.Close()
	cl, err := iox.OpenClient(ctx, node, "slots", iox.Raw{}, iox.Raw{})
	require.NoError(t, err)
	defer cl.Close()
	var wg sync.WaitGroup
	for i := range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, err := cl.Call(ctx, []byte(strconv.Itoa(i)))
			assert.NoError(t, err)
			assert.Equal(t, strconv.Itoa(i), string(v))
		}()
	}
	var held []*iox.Request[[]byte, []byte]
	for range 2 {
		q, err := srv.Recv(ctx)
		require.NoError(t, err)
		held = append(held, q)
	}
	// A third request cannot be there while two are held.
	quick, qcancel := context.WithTimeout(ctx, 100*time.Millisecond)
	_, err = srv.Recv(quick)
	qcancel()
	require.ErrorIs(t, err, context.DeadlineExceeded)
	for _, q := range held {
		require.NoError(t, q.Reply(ctx, q.Value))
	}
	// The rest follow as slots free up.
	srvDone := make(chan error, 1)
	go func() {
		for range 3 {
			q, err := srv.Recv(ctx)
			if err != nil {
				srvDone <- err
				return
			}
			if err := q.Reply(ctx, q.Value); err != nil {
				srvDone <- err
				return
			}
		}
		srvDone <- nil
	}()
	wg.Wait()
	require.NoError(t, <-srvDone)
}

// A handler that panics or fails answers that call with ErrNoResponse; the
// server goes on and reports the failure to OnDrop.
func TestRPCServeRecoversHandlerPanics(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var dropped []error
	var mu sync.Mutex
	srv, err := iox.OpenServer(ctx, node, "panic", iox.Raw{}, iox.Raw{}, iox.OnDrop(func(err error) {
		mu.Lock()
		dropped = append(dropped, err)
		mu.Unlock()
	}))
	require.NoError(t, err)
	defer srv.Close()
	sctx, stop := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() {
		served <- srv.Serve(sctx, 4, func(_ context.Context, req []byte) ([]byte, error) {
			switch string(req) {
			case "panic":
				panic("boom")
			case "fail":
				return nil, errors.New("no such thing")
			}
			return append([]byte("re:"), req...), nil
		})
	}()
	cl, err := iox.OpenClient(ctx, node, "panic", iox.Raw{}, iox.Raw{})
	require.NoError(t, err)
	defer cl.Close()
	_, err = cl.Call(ctx, []byte("panic"))
	require.ErrorIs(t, err, iox.ErrNoResponse)
	_, err = cl.Call(ctx, []byte("fail"))
	require.ErrorIs(t, err, iox.ErrNoResponse)
	v, err := cl.Call(ctx, []byte("x"))
	require.NoError(t, err)
	assert.Equal(t, "re:x", string(v))
	stop()
	require.ErrorIs(t, <-served, context.Canceled)
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, dropped, 2)
	assert.Contains(t, dropped[0].Error(), "boom")
	assert.Contains(t, dropped[1].Error(), "no such thing")
}

// Close of the server ends the requests it holds; use after Close fails.
func TestRPCCloseEndsCalls(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv, err := iox.OpenServer(ctx, node, "close", iox.Raw{}, iox.Raw{})
	require.NoError(t, err)
	cl, err := iox.OpenClient(ctx, node, "close", iox.Raw{}, iox.Raw{})
	require.NoError(t, err)
	errc := make(chan error, 1)
	go func() {
		_, err := cl.Call(ctx, []byte("x"))
		errc <- err
	}()
	q, err := srv.Recv(ctx)
	require.NoError(t, err)
	assert.Equal(t, 1, srv.Clients())
	require.NoError(t, srv.Close())
	assert.Equal(t, 0, srv.Clients())
	require.ErrorIs(t, <-errc, iox.ErrNoResponse)
	require.ErrorIs(t, q.Reply(ctx, []byte("late")), iox.ErrClosed)
	_, err = srv.Recv(ctx)
	require.ErrorIs(t, err, iox.ErrClosed)
	require.ErrorIs(t, srv.Close(), iox.ErrClosed)

	require.NoError(t, cl.Close())
	_, err = cl.Call(ctx, []byte("x"))
	require.ErrorIs(t, err, iox.ErrClosed)
	_, err = cl.Stream(ctx, []byte("x"))
	require.ErrorIs(t, err, iox.ErrClosed)
	require.ErrorIs(t, cl.Close(), iox.ErrClosed)
}

// serveInProcess opens a server of name in a new namespace that answers with
// handle until the test ends, and a client of it in the same process.
func serveInProcess[Req, Resp any](t *testing.T, ctx context.Context, name string, reqc iox.Codec[Req], respc iox.Codec[Resp],
	handle func(context.Context, Req) (Resp, error)) (*iox.Node, *iox.Caller[Req, Resp]) {
	t.Helper()
	node := newNamespace(t).node(t)
	srv, err := iox.OpenServer(ctx, node, name, reqc, respc)
	require.NoError(t, err)
	sctx, stop := context.WithCancel(ctx)
	served := make(chan struct{})
	go func() {
		defer close(served)
		srv.Serve(sctx, 1, handle)
	}()
	cl, err := iox.OpenClient(ctx, node, name, reqc, respc)
	require.NoError(t, err)
	t.Cleanup(func() {
		cl.Close()
		stop()
		<-served
		srv.Close()
	})
	return node, cl
}

// Typed requests and responses ride on fixed-layout codecs.
func TestRPCFixedTypes(t *testing.T) {
	type pair struct{ A, B int64 }
	reqc, err := iox.Fixed[pair]("rpc_test::Pair")
	require.NoError(t, err)
	respc, err := iox.Fixed[int64]("i64")
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	node, cl := serveInProcess(t, ctx, "add", reqc, respc, func(_ context.Context, p pair) (int64, error) { return p.A + p.B, nil })
	v, err := cl.Call(ctx, pair{40, 2})
	require.NoError(t, err)
	assert.Equal(t, int64(42), v)
	// a client whose request type differs is refused
	_, err = iox.OpenClient(ctx, node, "add", iox.Raw{}, respc)
	require.ErrorIs(t, err, iox.ErrIncompatible)
}

// A call reuses the state of finished calls and receives a response that fits
// its buffer in one look; the counts a wait asks for allocate nothing. What is
// left per call, with the server in the same process: the pending response and
// the server's request, the encoded values, a listing of the servers for the
// call that waits, and the waits' own contexts and timers.
func TestRPCCallAllocatesLittle(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates on its own")
	}
	c, err := iox.Fixed[int64]("i64")
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, cl := serveInProcess(t, ctx, "allocs", c, c, func(_ context.Context, v int64) (int64, error) { return v + 1, nil })
	var failure error
	call := func() {
		if v, err := cl.Call(ctx, 41); failure == nil && (err != nil || v != 42) {
			failure = fmt.Errorf("call: %d, %v", v, err)
		}
	}
	for range 100 {
		call()
	}
	allocs := testing.AllocsPerRun(500, call)
	require.NoError(t, failure)
	t.Logf("%v allocations per call, client and server", allocs)
	assert.LessOrEqual(t, allocs, 26.0, "34 when every call made its own state and looked twice")
}

// A Python iceoryx2 client calls a Go server: its requests are taken although
// it never notifies, and it receives every response of each stream.
func TestRPCPythonClientCallsGoServer(t *testing.T) {
	sizes := []int{0, 1, 63, 4096, 100000}
	ns := newNamespace(t)
	node := ns.node(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv, err := iox.OpenServer(ctx, node, "py-calls-server", iox.Raw{}, iox.Raw{})
	require.NoError(t, err)
	defer srv.Close()
	var list []string
	for _, n := range sizes {
		list = append(list, strconv.Itoa(n))
	}
	cmd, next := pyRR(t, ns, pyRRClient, "py-calls-server", strings.Join(list, ","))
	for i, n := range sizes {
		q, err := srv.Recv(ctx)
		require.NoError(t, err)
		require.Equal(t, pattern(n, 0), q.Value, "request %d", i)
		// three responses: the request in two halves, then its length
		require.NoError(t, q.Send(ctx, q.Value[:n/2]))
		require.NoError(t, q.Send(ctx, q.Value[n/2:]))
		require.NoError(t, q.Send(ctx, []byte{byte(n)}))
		require.NoError(t, q.Close())
	}
	for _, n := range sizes {
		sum := sha256.Sum256(append(pattern(n, 0), byte(n)))
		assert.Equal(t, fmt.Sprintf("%d 3 %s", n, hex.EncodeToString(sum[:])), next())
	}
	require.NoError(t, waitTimeout(cmd, 20*time.Second))
}

// A Go client calls a Python iceoryx2 server, which never notifies: Stream
// delivers both responses of each request and then ends.
func TestRPCGoClientCallsPythonServer(t *testing.T) {
	sizes := []int{0, 1, 63, 4096, 100000}
	ns := newNamespace(t)
	node := ns.node(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd, next := pyRR(t, ns, pyRRServer, "go-calls-server", strconv.Itoa(len(sizes)))
	cl, err := iox.OpenClient(ctx, node, "go-calls-server", iox.Raw{}, iox.Raw{})
	require.NoError(t, err)
	for _, n := range sizes {
		req := pattern(n, 0)
		s, err := cl.Stream(ctx, req)
		require.NoError(t, err)
		var got [][]byte
		for v := range s.In() {
			got = append(got, v)
		}
		require.NoError(t, s.Err())
		assert.Equal(t, [][]byte{reversed(req), []byte(strconv.Itoa(n))}, got, "request of %d bytes", n)
	}
	assert.Equal(t, fmt.Sprintf("served %d", len(sizes)), next())
	require.NoError(t, cl.Close())
	require.NoError(t, waitTimeout(cmd, 20*time.Second))
}

// Close racing calls in flight: every call ends, with an answer or ErrClosed,
// and nothing hangs.
func TestRPCCloseRacesCalls(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv, err := iox.OpenServer(ctx, node, "race", iox.Raw{}, iox.Raw{})
	require.NoError(t, err)
	defer srv.Close()
	sctx, stop := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() {
		served <- srv.Serve(sctx, 4, func(_ context.Context, req []byte) ([]byte, error) { return req, nil })
	}()
	cl, err := iox.OpenClient(ctx, node, "race", iox.Raw{}, iox.Raw{})
	require.NoError(t, err)
	var wg sync.WaitGroup
	var answered atomic.Int64
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				v, err := cl.Call(ctx, []byte(fmt.Sprint(g, i)))
				if err != nil {
					assert.ErrorIs(t, err, iox.ErrClosed)
					return
				}
				assert.Equal(t, fmt.Sprint(g, i), string(v))
				answered.Add(1)
			}
		}()
	}
	eventually(t, "calls answered", func() bool { return answered.Load() >= 100 })
	require.NoError(t, cl.Close())
	wg.Wait()
	stop()
	require.ErrorIs(t, <-served, context.Canceled)
}

// Closing a stream midway frees its slot, and the server's next Send learns
// that the caller went away.
func TestRPCStreamClosedMidway(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv, err := iox.OpenServer(ctx, node, "midway", iox.Raw{}, iox.Raw{}, iox.MaxActiveRequests(1))
	require.NoError(t, err)
	defer srv.Close()
	cl, err := iox.OpenClient(ctx, node, "midway", iox.Raw{}, iox.Raw{})
	require.NoError(t, err)
	defer cl.Close()
	s, err := cl.Stream(ctx, []byte("many"))
	require.NoError(t, err)
	q, err := srv.Recv(ctx)
	require.NoError(t, err)
	sent := make(chan error, 1)
	go func() {
		for i := 0; ; i++ { // more than any buffer holds: Send waits for the reader
			if err := q.Send(ctx, []byte(strconv.Itoa(i))); err != nil {
				sent <- err
				return
			}
		}
	}()
	for i := range 3 {
		assert.Equal(t, strconv.Itoa(i), string(<-s.In()))
	}
	require.NoError(t, s.Close())
	require.ErrorIs(t, <-sent, iox.ErrPeerClosed)
	require.ErrorIs(t, s.Err(), context.Canceled)
	// the one request slot is free again
	done := make(chan error, 1)
	go func() {
		_, err := cl.Call(ctx, []byte("again"))
		done <- err
	}()
	q2, err := srv.Recv(ctx)
	require.NoError(t, err)
	assert.Equal(t, "again", string(q2.Value))
	require.NoError(t, q2.Reply(ctx, []byte("ok")))
	require.NoError(t, <-done)
}

// A client whose server closed (its process lives on) and was replaced by a
// server in another process, while no call waited, watches the new one: a
// call that the new server holds when it crashes fails with ErrPeerCrashed.
// The number of servers is the same before and after.
func TestRPCReplacedServerCrashFailsCall(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	cl, err := iox.OpenClient(context.Background(), node, "swap", iox.Raw{}, iox.Raw{})
	require.NoError(t, err)
	defer cl.Close()

	sctx, scancel := context.WithCancel(context.Background())
	srv, err := iox.OpenServer(sctx, ns.node(t), "swap", iox.Raw{}, iox.Raw{})
	require.NoError(t, err)
	served := make(chan error, 1)
	go func() {
		q, err := srv.Recv(sctx)
		if err == nil {
			err = q.Reply(sctx, []byte("here"))
		}
		served <- err
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	v, err := cl.Call(ctx, []byte("1"))
	require.NoError(t, err)
	require.Equal(t, "here", string(v))
	require.NoError(t, <-served)
	require.NoError(t, srv.Close())
	scancel()

	c := spawn(t, ns, "rpc-server", "IOX_SERVICE=swap", "IOX_RPC_MODE=crash")
	c.expect("ready")
	_, err = cl.Call(ctx, []byte("7"))
	require.ErrorIs(t, err, iox.ErrPeerCrashed)
	require.NoError(t, ctx.Err(), "the crash was seen before the context ended")
	err = <-c.done // the child killed itself
	c.done <- err
	require.Error(t, err)
}
