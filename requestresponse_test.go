package iox_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
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
	children["rr-server"] = childRRServer
}

// rrPorts opens the request-response service name with opts and makes one
// server and one client on it.
func rrPorts(t *testing.T, node *iox.Node, name string, opts ...iox.Option) (*iox.RequestResponseService, *iox.Server, *iox.Client) {
	t.Helper()
	svc, err := node.RequestResponse(name, opts...)
	require.NoError(t, err)
	t.Cleanup(func() { svc.Close() })
	srv, err := svc.Server(iox.InitialMessageSize(64))
	require.NoError(t, err)
	t.Cleanup(func() { srv.Close() })
	cli, err := svc.Client(iox.InitialMessageSize(64))
	require.NoError(t, err)
	t.Cleanup(func() { cli.Close() })
	return svc, srv, cli
}

// nextRequest waits for the server's next request and returns it with its payload.
func nextRequest(t *testing.T, srv *iox.Server) (*iox.ActiveRequest, []byte) {
	t.Helper()
	buf := make([]byte, 1<<21)
	var req *iox.ActiveRequest
	var n int
	var err error
	eventually(t, "a request", func() bool {
		var ok bool
		req, n, ok, err = srv.TryReceive(buf)
		return ok || err != nil
	})
	require.NoError(t, err)
	t.Cleanup(func() { req.Close() })
	return req, bytes.Clone(buf[:n])
}

// responses receives every response of p until its stream ends.
func responses(t *testing.T, p *iox.PendingResponse) [][]byte {
	t.Helper()
	var got [][]byte
	var err error
	buf := make([]byte, 1<<21)
	eventually(t, "the end of the response stream", func() bool {
		for {
			live := p.Connected() // before the receive: nothing sent before the end is missed
			var n int
			var ok bool
			if n, ok, err = p.TryReceive(buf); err != nil {
				return true
			}
			if !ok {
				return !live
			}
			got = append(got, bytes.Clone(buf[:n]))
		}
	})
	require.NoError(t, err)
	return got
}

func TestRequestResponseStreamsAndEnds(t *testing.T) {
	ns := newNamespace(t)
	svc, srv, cli := rrPorts(t, ns.node(t), "rr-stream", iox.ResponseBufferSize(4))

	p, err := cli.Send([]byte("how many?"))
	require.NoError(t, err)
	defer p.Close()
	req, payload := nextRequest(t, srv)
	assert.Equal(t, "how many?", string(payload))
	assert.Equal(t, cli.ID(), req.Origin(), "the server sees the client's id")
	assert.True(t, req.Connected())

	for i := range 3 {
		require.NoError(t, req.Send(pattern(100+i, i)))
	}
	assert.True(t, p.Connected(), "the stream is open while the server holds the request")
	require.NoError(t, req.Close())
	got := responses(t, p)
	require.Len(t, got, 3)
	for i, m := range got {
		assert.Equal(t, pattern(100+i, i), m, "response %d", i)
	}
	assert.False(t, p.Connected())

	clients, servers, err := svc.Counts()
	require.NoError(t, err)
	assert.Equal(t, [2]int{1, 1}, [2]int{clients, servers})
	list, err := svc.Clients()
	require.NoError(t, err)
	require.Len(t, list, 1)
	assert.Equal(t, cli.ID(), list[0].Port)
	list, err = svc.Servers()
	require.NoError(t, err)
	require.Len(t, list, 1)
	assert.Equal(t, list[0].Node, mustClients(t, svc)[0].Node, "client and server share the node")
	cleaned, err := svc.CleanupDeadNodes()
	require.NoError(t, err)
	assert.Zero(t, cleaned)
}

func mustClients(t *testing.T, svc *iox.RequestResponseService) []iox.PortInfo {
	l, err := svc.Clients()
	require.NoError(t, err)
	return l
}

func TestPendingResponseReceiveBatch(t *testing.T) {
	ns := newNamespace(t)
	_, srv, cli := rrPorts(t, ns.node(t), "rr-batch", iox.ResponseBufferSize(8))
	p, err := cli.Send(nil)
	require.NoError(t, err)
	defer p.Close()
	req, payload := nextRequest(t, srv)
	assert.Empty(t, payload)
	sizes := []int{0, 10, 3000, 70000, 1}
	for i, n := range sizes {
		require.NoError(t, req.Send(pattern(n, i)))
	}
	require.NoError(t, req.Close())

	b := iox.NewBatch(4096, 3) // the 70000-byte response grows it
	var got [][]byte
	eventually(t, "every response", func() bool {
		k, err := p.ReceiveBatch(b)
		if err != nil {
			t.Error(err)
			return true
		}
		for i := range k {
			got = append(got, bytes.Clone(b.Message(i)))
		}
		return len(got) >= len(sizes)
	})
	require.Len(t, got, len(sizes))
	for i, n := range sizes {
		assert.Equal(t, pattern(n, i), got[i], "response %d", i)
	}
	assert.False(t, p.Connected())
}

func TestClientGivingUpIsSeenByServer(t *testing.T) {
	ns := newNamespace(t)
	_, srv, cli := rrPorts(t, ns.node(t), "rr-give-up")
	p, err := cli.Send([]byte("long job"))
	require.NoError(t, err)
	req, _ := nextRequest(t, srv)
	require.True(t, req.Connected())
	require.NoError(t, req.Send([]byte("first")))

	require.NoError(t, p.Close())
	assert.False(t, req.Connected(), "the server sees the caller went away")
	err = req.Send([]byte("second"))
	require.ErrorIs(t, err, iox.ErrPeerClosed)
	assert.ErrorIs(t, err, iox.ErrPeerGone)

	// With fire-and-forget (the default) a server still gets a request whose
	// client gave up before it was received, already disconnected.
	p, err = cli.Send([]byte("forgotten"))
	require.NoError(t, err)
	require.NoError(t, p.Close())
	req, payload := nextRequest(t, srv)
	assert.Equal(t, "forgotten", string(payload))
	assert.False(t, req.Connected())
	require.ErrorIs(t, req.Send([]byte("late")), iox.ErrPeerClosed)
}

func TestNoFireAndForgetSkipsAbandonedRequests(t *testing.T) {
	ns := newNamespace(t)
	svc, srv, cli := rrPorts(t, ns.node(t), "rr-no-faf", iox.FireAndForget(false))
	assert.False(t, svc.Config().FireAndForget)
	p, err := cli.Send([]byte("abandoned"))
	require.NoError(t, err)
	require.NoError(t, p.Close())
	p, err = cli.Send([]byte("wanted"))
	require.NoError(t, err)
	defer p.Close()
	_, payload := nextRequest(t, srv)
	assert.Equal(t, "wanted", string(payload))
}

func TestTooManyRequestsInFlight(t *testing.T) {
	ns := newNamespace(t)
	_, _, cli := rrPorts(t, ns.node(t), "rr-in-flight", iox.MaxActiveRequests(2))
	a, err := cli.Send([]byte("a"))
	require.NoError(t, err)
	b, err := cli.Send([]byte("b"))
	require.NoError(t, err)
	defer b.Close()
	_, err = cli.Send([]byte("c"))
	require.ErrorIs(t, err, iox.ErrLimitReached)
	require.NoError(t, a.Close())
	c, err := cli.Send([]byte("c"))
	require.NoError(t, err, "closing a pending response frees its place")
	require.NoError(t, c.Close())
}

func TestSendWithoutServer(t *testing.T) {
	ns := newNamespace(t)
	svc, err := ns.node(t).RequestResponse("rr-alone")
	require.NoError(t, err)
	defer svc.Close()
	cli, err := svc.Client()
	require.NoError(t, err)
	defer cli.Close()
	_, err = cli.Send([]byte("anyone?"))
	require.ErrorIs(t, err, iox.ErrNoServer)
	assert.ErrorIs(t, err, iox.ErrPeerGone)
}

func TestFullBuffersWouldBlock(t *testing.T) {
	ns := newNamespace(t)
	_, srv, cli := rrPorts(t, ns.node(t), "rr-full",
		iox.SafeOverflow(false), iox.ResponseBufferSize(1), iox.MaxActiveRequests(1))

	// responses: the client's buffer holds one unread response
	p, err := cli.Send([]byte("q"))
	require.NoError(t, err)
	req, _ := nextRequest(t, srv)
	require.NoError(t, req.Send([]byte("r1")))
	require.ErrorIs(t, req.Send([]byte("r2")), iox.ErrWouldBlock)
	buf := make([]byte, 16)
	n, ok, err := p.TryReceive(buf)
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, "r1", string(buf[:n]))
	require.NoError(t, req.Send([]byte("r2")), "room again once the client took one")
	require.NoError(t, req.Close())
	got := responses(t, p)
	assert.Equal(t, [][]byte{[]byte("r2")}, got)
	require.NoError(t, p.Close())

	// requests: the server's buffer holds MaxActiveRequests unread requests;
	// an abandoned request stays there until the server takes it
	p, err = cli.Send([]byte("unread"))
	require.NoError(t, err)
	require.NoError(t, p.Close())
	_, err = cli.Send([]byte("next"))
	require.ErrorIs(t, err, iox.ErrWouldBlock)
	_, payload := nextRequest(t, srv)
	assert.Equal(t, "unread", string(payload))
	p, err = cli.Send([]byte("next"))
	require.NoError(t, err)
	require.NoError(t, p.Close())
}

func TestRequestResponseSizes(t *testing.T) {
	ns := newNamespace(t)
	svc, err := ns.node(t).RequestResponse("rr-sizes")
	require.NoError(t, err)
	defer svc.Close()
	srv, err := svc.Server(iox.MaxMessageSize(100))
	require.NoError(t, err)
	defer srv.Close()
	cli, err := svc.Client(iox.MaxMessageSize(50))
	require.NoError(t, err)
	defer cli.Close()

	_, err = cli.Send(make([]byte, 51))
	require.ErrorIs(t, err, iox.ErrMessageTooLarge)
	p, err := cli.Send(pattern(50, 1))
	require.NoError(t, err)
	defer p.Close()

	// a request larger than the server's buffer stays queued
	_, _, ok, err := srv.TryReceive(make([]byte, 10))
	var small *iox.BufferTooSmallError
	require.ErrorAs(t, err, &small)
	assert.False(t, ok)
	assert.Equal(t, 50, small.Need)
	req, payload := nextRequest(t, srv)
	assert.Equal(t, pattern(50, 1), payload)

	require.ErrorIs(t, req.Send(make([]byte, 101)), iox.ErrMessageTooLarge)
	require.NoError(t, req.Send(pattern(100, 2)))
	// a response larger than the client's buffer stays queued
	_, ok, err = p.TryReceive(make([]byte, 99))
	require.ErrorAs(t, err, &small)
	assert.False(t, ok)
	assert.Equal(t, 100, small.Need)
	require.NoError(t, req.Close())
	assert.True(t, p.Connected(), "a response still waits")
	assert.Equal(t, [][]byte{pattern(100, 2)}, responses(t, p))
}

func TestRequestResponseUseAfterClose(t *testing.T) {
	ns := newNamespace(t)
	svc, err := ns.node(t).RequestResponse("rr-closed")
	require.NoError(t, err)
	srv, err := svc.Server()
	require.NoError(t, err)
	cli, err := svc.Client()
	require.NoError(t, err)
	p, err := cli.Send([]byte("x"))
	require.NoError(t, err)
	req, _ := nextRequest(t, srv)

	// pending responses and active requests outlive their ports and service
	require.NoError(t, svc.Close())
	require.NoError(t, cli.Close())
	require.NoError(t, srv.Close())
	require.NoError(t, req.Send([]byte("after")))
	buf := make([]byte, 8)
	var n int
	var ok bool
	eventually(t, "the response", func() bool {
		n, ok, err = p.TryReceive(buf)
		return ok || err != nil
	})
	require.NoError(t, err)
	assert.Equal(t, "after", string(buf[:n]))
	require.NoError(t, req.Close())
	assert.Empty(t, responses(t, p))
	require.NoError(t, p.Close())

	for what, err := range map[string]error{
		"service close":  svc.Close(),
		"client close":   cli.Close(),
		"server close":   srv.Close(),
		"pending close":  p.Close(),
		"active close":   req.Close(),
		"active send":    req.Send([]byte("x")),
		"counts":         func() error { _, _, err := svc.Counts(); return err }(),
		"clients":        func() error { _, err := svc.Clients(); return err }(),
		"cleanup":        func() error { _, err := svc.CleanupDeadNodes(); return err }(),
		"new client":     func() error { _, err := svc.Client(); return err }(),
		"new server":     func() error { _, err := svc.Server(); return err }(),
		"client send":    func() error { _, err := cli.Send([]byte("x")); return err }(),
		"pending recv":   func() error { _, _, err := p.TryReceive(buf); return err }(),
		"pending batch":  func() error { _, err := p.ReceiveBatch(iox.NewBatch(8, 1)); return err }(),
		"server recv":    func() error { _, _, _, err := srv.TryReceive(buf); return err }(),
		"server has req": func() error { _, err := srv.HasRequests(); return err }(),
	} {
		assert.ErrorIs(t, err, iox.ErrClosed, what)
	}
	assert.False(t, p.Connected())
	assert.False(t, req.Connected())
}

func TestRequestResponseAbsurdOptionsAreRefused(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	for _, tc := range []struct {
		name string
		opts []iox.Option
		kind error
	}{
		{"no clients", []iox.Option{iox.MaxClients(0)}, iox.ErrInvalidArgument},
		{"negative servers", []iox.Option{iox.MaxServers(-1)}, iox.ErrInvalidArgument},
		{"too many active", []iox.Option{iox.MaxActiveRequests(iox.MaxServiceCount + 1)}, iox.ErrInvalidArgument},
		{"no response buffer", []iox.Option{iox.ResponseBufferSize(0)}, iox.ErrInvalidArgument},
		{"no borrows", []iox.Option{iox.MaxBorrowedResponses(0)}, iox.ErrInvalidArgument},
		{"no nodes", []iox.Option{iox.MaxNodes(0)}, iox.ErrInvalidArgument},
		{"bad request type", []iox.Option{iox.WithRequestType(iox.PayloadType{Name: "x", Size: 4, Align: 3})}, iox.ErrInvalidArgument},
		{"bad response type", []iox.Option{iox.WithResponseType(iox.PayloadType{Name: "", Size: 4, Align: 4})}, iox.ErrInvalidArgument},
		{"huge alignment", []iox.Option{iox.WithResponseType(iox.PayloadType{Name: "y", Size: 1, Align: 1 << 30})}, iox.ErrInvalidArgument},
		// within the count bounds, but terabytes of shared memory
		{"huge service", []iox.Option{iox.MaxClients(1 << 16)}, iox.ErrOutOfMemory},
		{"huge streams", []iox.Option{iox.MaxActiveRequests(1 << 14), iox.ResponseBufferSize(1 << 10)}, iox.ErrOutOfMemory},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := leftovers(ns.prefix)
			svc, err := node.RequestResponse("rr-absurd", tc.opts...)
			require.ErrorIs(t, err, tc.kind)
			assert.Nil(t, svc)
			assert.Equal(t, before, leftovers(ns.prefix), "refused before anything was created")
		})
	}
	var e *iox.Error
	_, err := node.RequestResponse("rr-absurd", iox.MaxClients(1<<16))
	require.ErrorAs(t, err, &e)
	assert.Contains(t, e.Detail, "MaxClients at most", "the refusal names the setting to lower")

	svc, err := node.RequestResponse("rr-ports")
	require.NoError(t, err)
	defer svc.Close()
	_, err = svc.Client(iox.MaxLoans(3))
	require.ErrorIs(t, err, iox.ErrInvalidArgument)
	_, err = svc.Server(iox.FailWhenFull(iox.MaxSpin + 1))
	require.ErrorIs(t, err, iox.ErrInvalidArgument)
	_, err = svc.Client(iox.MaxMessageSize(-1))
	require.ErrorIs(t, err, iox.ErrInvalidArgument)
}

func TestRequestResponseOpenModesAndSettings(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	_, err := node.RequestResponse("rr-modes", iox.OpenOnly())
	require.ErrorIs(t, err, iox.ErrServiceNotFound)
	svc, err := node.RequestResponse("rr-modes", iox.CreateOnly(), iox.MaxClients(3), iox.MaxServers(1),
		iox.MaxActiveRequests(5), iox.ResponseBufferSize(6), iox.MaxBorrowedResponses(2), iox.MaxNodes(4),
		iox.SafeOverflow(false), iox.FireAndForget(false))
	require.NoError(t, err)
	defer svc.Close()
	assert.Equal(t, "rr-modes", svc.Name())
	assert.Equal(t, iox.RequestResponseConfig{
		MaxClients: 3, MaxServers: 1, MaxNodes: 4, MaxActiveRequests: 5, ResponseBufferSize: 6,
		MaxBorrowedResponses: 2, MaxLoanedRequests: 2, RequestType: iox.Bytes, ResponseType: iox.Bytes,
		RequestHeader: noHeader, ResponseHeader: noHeader,
	}, svc.Config())
	described, err := node.RequestResponseSettings("rr-modes")
	require.NoError(t, err)
	assert.Equal(t, svc.Config(), described, "the settings read without joining are those in force")
	_, err = node.RequestResponse("rr-modes", iox.CreateOnly())
	require.ErrorIs(t, err, iox.ErrServiceExists)
	_, err = node.RequestResponse("rr-modes", iox.MaxClients(4))
	require.ErrorIs(t, err, iox.ErrIncompatible)
	_, err = node.RequestResponse("rr-modes", iox.SafeOverflow(true))
	require.ErrorIs(t, err, iox.ErrIncompatible)
	again, err := node.RequestResponse("rr-modes", iox.OpenOnly(), iox.MaxClients(2))
	require.NoError(t, err, "an existing service with more room satisfies a smaller request")
	require.NoError(t, again.Close())

	// one server only
	s1, err := svc.Server()
	require.NoError(t, err)
	defer s1.Close()
	_, err = svc.Server()
	require.ErrorIs(t, err, iox.ErrLimitReached)
	// a request-response service shares its name with other patterns
	ps, err := node.PublishSubscribe("rr-modes")
	require.NoError(t, err)
	require.NoError(t, ps.Close())
}

// Fixed-size request and response types, as a Rust `request_response::<Req, u64>()`
// with #[repr(C)] types would declare them.
func TestRequestResponseFixedTypes(t *testing.T) {
	reqType := iox.PayloadType{Name: "iox_test::Query", Size: 16, Align: 8, Fixed: true}
	respType := iox.PayloadType{Name: "u64", Size: 8, Align: 8, Fixed: true}
	ns := newNamespace(t)
	node := ns.node(t)
	svc, srv, cli := rrPorts(t, node, "rr-fixed", iox.WithRequestType(reqType), iox.WithResponseType(respType))
	c := svc.Config()
	assert.Equal(t, reqType, c.RequestType)
	assert.Equal(t, respType, c.ResponseType)

	_, err := cli.Send(make([]byte, 15))
	require.ErrorIs(t, err, iox.ErrInvalidArgument)
	p, err := cli.Send(pattern(16, 3))
	require.NoError(t, err)
	defer p.Close()
	req, payload := nextRequest(t, srv)
	assert.Equal(t, pattern(16, 3), payload)
	require.ErrorIs(t, req.Send(make([]byte, 4)), iox.ErrInvalidArgument)
	require.ErrorIs(t, req.Send(make([]byte, 16)), iox.ErrMessageTooLarge)
	require.NoError(t, req.Send(pattern(8, 4)))
	require.NoError(t, req.Close())
	assert.Equal(t, [][]byte{pattern(8, 4)}, responses(t, p))

	_, err = node.RequestResponse("rr-fixed")
	require.ErrorIs(t, err, iox.ErrIncompatibleType, "[u8] requests do not open a fixed-type service")
	_, err = node.RequestResponse("rr-fixed", iox.WithRequestType(reqType))
	require.ErrorIs(t, err, iox.ErrIncompatibleType, "nor [u8] responses")
}

// Many goroutines share one client and one server.
func TestRequestResponseConcurrentCallers(t *testing.T) {
	const callers, calls = 4, 25
	ns := newNamespace(t)
	_, srv, cli := rrPorts(t, ns.node(t), "rr-concurrent")

	done := make(chan struct{})
	served := make(chan error, 1)
	go func() {
		buf := make([]byte, 64)
		for {
			req, n, ok, err := srv.TryReceive(buf)
			if err != nil {
				served <- err
				return
			}
			if !ok {
				select {
				case <-done:
					served <- nil
					return
				case <-time.After(50 * time.Microsecond): // poll for the next request
				}
				continue
			}
			err = req.Send(append([]byte("re:"), buf[:n]...))
			req.Close()
			if err != nil && !errors.Is(err, iox.ErrPeerClosed) {
				served <- err
				return
			}
		}
	}()
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for g := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 64)
			for i := range calls {
				q := fmt.Sprintf("%d/%d", g, i)
				p, err := cli.Send([]byte(q))
				if err != nil {
					errs <- err
					return
				}
				var got []string
				deadline := time.Now().Add(20 * time.Second)
				for time.Now().Before(deadline) {
					live := p.Connected()
					n, ok, err := p.TryReceive(buf)
					if err != nil {
						errs <- err
						return
					}
					if ok {
						got = append(got, string(buf[:n]))
					} else if !live {
						break
					}
				}
				p.Close()
				if len(got) != 1 || got[0] != "re:"+q {
					errs <- fmt.Errorf("call %s got %q", q, got)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(done)
	require.NoError(t, <-served)
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// The hot calls allocate nothing but the handles they return.
func TestRequestResponseAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates on its own")
	}
	ns := newNamespace(t)
	_, srv, cli := rrPorts(t, ns.node(t), "rr-allocs", iox.ResponseBufferSize(4))
	msg, buf := pattern(64, 1), make([]byte, 128)
	b := iox.NewBatch(1024, 4)
	var failure error
	fail := func(err error) {
		if failure == nil && err != nil {
			failure = err
		}
	}
	var p *iox.PendingResponse
	var req *iox.ActiveRequest
	roundTrip := func() {
		var err error
		p, err = cli.Send(msg)
		fail(err)
		var ok bool
		for !ok && err == nil {
			req, _, ok, err = srv.TryReceive(buf)
		}
		fail(err)
	}
	allocs := testing.AllocsPerRun(200, func() {
		roundTrip()
		fail(req.Close())
		fail(p.Close())
	})
	require.NoError(t, failure)
	t.Logf("a round trip with both closes: %v allocations", allocs)
	assert.LessOrEqual(t, allocs, 2.0, "Send and TryReceive allocate only the PendingResponse and the ActiveRequest")

	roundTrip()
	require.NoError(t, failure)
	defer p.Close()
	defer req.Close()
	allocs = testing.AllocsPerRun(200, func() {
		fail(req.Send(msg))
		n, ok, err := p.TryReceive(buf)
		fail(err)
		if failure == nil && (!ok || n != len(msg)) {
			failure = fmt.Errorf("response: %d bytes, ok %v", n, ok)
		}
		fail(req.Send(msg))
		k, err := p.ReceiveBatch(b)
		fail(err)
		if failure == nil && k != 1 {
			failure = fmt.Errorf("batch of %d", k)
		}
		_, ok, err = p.TryReceive(buf)
		fail(err)
		_ = ok
	})
	require.NoError(t, failure)
	assert.Zero(t, allocs, "responding and receiving responses allocate nothing")
}

// childRRServer serves the parent's requests until the parent says anything:
// "stream K SIZE" gets K responses pattern(SIZE, i), then the end of the stream;
// "hold" is kept open (the child says "holding") until the client gives up
// (the child says "client left").
func childRRServer() error {
	node, err := nsFromEnv().childNode()
	if err != nil {
		return err
	}
	defer node.Close()
	svc, err := node.RequestResponse(os.Getenv("IOX_SERVICE"), iox.OpenOnly())
	if err != nil {
		return err
	}
	defer svc.Close()
	srv, err := svc.Server(iox.InitialMessageSize(64))
	if err != nil {
		return err
	}
	defer srv.Close()
	fmt.Println("ready")
	quit := make(chan struct{})
	go func() {
		parentSays()
		close(quit)
	}()
	buf := make([]byte, 256)
	var held []*iox.ActiveRequest
	for {
		req, n, ok, err := srv.TryReceive(buf)
		if err != nil {
			return err
		}
		if !ok {
			for i, h := range held {
				if !h.Connected() {
					fmt.Println("client left")
					h.Close()
					held = append(held[:i], held[i+1:]...)
					break
				}
			}
			select {
			case <-quit:
				return nil
			case <-time.After(200 * time.Microsecond): // poll for the next request
			}
			continue
		}
		f := strings.Fields(string(buf[:n]))
		switch {
		case len(f) == 3 && f[0] == "stream":
			k, _ := strconv.Atoi(f[1])
			size, _ := strconv.Atoi(f[2])
			for i := range k {
				if err := req.Send(pattern(size, i)); err != nil {
					return err
				}
			}
			req.Close()
		case len(f) == 1 && f[0] == "hold":
			held = append(held, req)
			fmt.Println("holding")
		default:
			return fmt.Errorf("unknown request %q", buf[:n])
		}
	}
}

func TestRequestResponseAcrossProcesses(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	svc, err := node.RequestResponse("rr-cross", iox.MaxClients(2), iox.ResponseBufferSize(8), iox.SafeOverflow(false))
	require.NoError(t, err)
	defer svc.Close()
	cli, err := svc.Client()
	require.NoError(t, err)
	defer cli.Close()

	c := spawn(t, ns, "rr-server", "IOX_SERVICE=rr-cross")
	c.expect("ready")
	servers, err := svc.Servers()
	require.NoError(t, err)
	require.Len(t, servers, 1)
	assert.NotEqual(t, mustClients(t, svc)[0].Node, servers[0].Node, "the server is another process's node")

	for _, tc := range []struct{ k, size int }{{1, 0}, {3, 63}, {5, 4096}, {2, 1 << 20}, {8, 7}} {
		p, err := cli.Send([]byte(fmt.Sprintf("stream %d %d", tc.k, tc.size)))
		require.NoError(t, err)
		got := responses(t, p)
		require.Len(t, got, tc.k, "stream of %d × %d bytes", tc.k, tc.size)
		for i, m := range got {
			assert.Equal(t, pattern(tc.size, i), m, "response %d of %d bytes", i, tc.size)
		}
		require.NoError(t, p.Close())
	}

	p, err := cli.Send([]byte("hold"))
	require.NoError(t, err)
	c.expect("holding")
	assert.True(t, p.Connected())
	require.NoError(t, p.Close())
	c.expect("client left")
	c.say("quit")
	c.wait()
}

// pyRRPrelude opens the request-response service argv[1] of [u8] requests and
// responses in the namespace argv[2] (prefix), argv[3] (root).
const pyRRPrelude = `
import ctypes, hashlib, sys, time
import iceoryx2 as iox2
iox2.set_log_level(iox2.LogLevel.Error)
name, prefix, root = sys.argv[1:4]
cfg = iox2.config.default()
cfg.global_cfg.prefix = iox2.FileName.new(prefix)
cfg.global_cfg.root_path = iox2.Path.new(root)
node = (iox2.NodeBuilder.new().config(cfg)
        .signal_handling_mode(iox2.SignalHandlingMode.Disabled).create(iox2.ServiceType.Ipc))
svc = (node.service_builder(iox2.ServiceName.new(name))
       .request_response(iox2.Slice[ctypes.c_uint8], iox2.Slice[ctypes.c_uint8]).open_or_create())

def deadline_loop(seconds):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        yield
        time.sleep(0.001)
    raise SystemExit("python peer: timed out")

def pattern(n):
    return bytes((i * 7 + n) % 256 for i in range(n))

def payload(m):
    n = m.payload().number_of_elements
    return ctypes.string_at(m.payload_ptr, n) if n else b""

def send(port, data):
    m = port.loan_slice_uninit(len(data))
    if data:
        ctypes.memmove(m.payload_ptr, data, len(data))
    return m.assume_init().send()
`

// A Python client sends requests of argv[4] (comma-separated sizes) and prints
// "size count sha256(concatenated responses)" per request.
const pyRRClient = pyRRPrelude + `
sizes = [int(x) for x in sys.argv[4].split(",")]
client = (svc.client_builder().initial_max_slice_len(4096)
          .allocation_strategy(iox2.AllocationStrategy.PowerOfTwo).create())
print("ready", flush=True)
for _ in deadline_loop(20):
    if svc.dynamic_config.number_of_servers > 0:
        break
for n in sizes:
    pending = send(client, pattern(n))
    got = []
    for _ in deadline_loop(20):
        live = pending.is_connected
        while True:
            r = pending.receive()
            if r is None:
                break
            got.append(payload(r))
            r.delete()
        if not live:
            break
    pending.delete()
    print(n, len(got), hashlib.sha256(b"".join(got)).hexdigest(), flush=True)
client.delete()
`

// A Python server answers argv[4] requests, each with the request reversed and
// then its length as text, and waits until no client is left.
const pyRRServer = pyRRPrelude + `
count = int(sys.argv[4])
server = (svc.server_builder().initial_max_slice_len(4096)
          .allocation_strategy(iox2.AllocationStrategy.PowerOfTwo).create())
print("ready", flush=True)
served = 0
for _ in deadline_loop(20):
    while served < count:
        active = server.receive()
        if active is None:
            break
        data = payload(active)
        send(active, data[::-1])
        send(active, str(len(data)).encode())
        active.delete()
        served += 1
    if served >= count:
        break
print("served", served, flush=True)
for _ in deadline_loop(20):
    if svc.dynamic_config.number_of_clients == 0:
        break
server.delete()
`

// pyRR runs one of the inline Python peers and waits until it says "ready".
func pyRR(t *testing.T, ns namespace, script, name string, args ...string) (*exec.Cmd, func() string) {
	t.Helper()
	cmd, _, sc := startPython(t, exec.Command(python(t), append([]string{"-c", script, name, ns.prefix, ns.root}, args...)...))
	lines := make(chan string, 64)
	go func() {
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	next := func() string {
		t.Helper()
		select {
		case l, ok := <-lines:
			require.True(t, ok, "python peer exited early")
			return l
		case <-time.After(20 * time.Second):
			t.Fatal("python peer said nothing for 20 s")
		}
		return ""
	}
	require.Equal(t, "ready", next())
	return cmd, next
}

func TestPythonClientCallsGoServer(t *testing.T) {
	sizes := []int{0, 1, 63, 4096, 100000}
	ns := newNamespace(t)
	svc, err := ns.node(t).RequestResponse("py-calls-go", iox.ResponseBufferSize(4)) // room for the 3 responses
	require.NoError(t, err)
	defer svc.Close()
	srv, err := svc.Server(iox.InitialMessageSize(64))
	require.NoError(t, err)
	defer srv.Close()

	var list []string
	for _, n := range sizes {
		list = append(list, strconv.Itoa(n))
	}
	cmd, next := pyRR(t, ns, pyRRClient, "py-calls-go", strings.Join(list, ","))
	buf := make([]byte, 1<<20)
	var failure error
	for served := 0; served < len(sizes); {
		var req *iox.ActiveRequest
		var n int
		eventually(t, "a request from Python", func() bool {
			var ok bool
			req, n, ok, failure = srv.TryReceive(buf)
			return ok || failure != nil
		})
		require.NoError(t, failure)
		assert.Equal(t, pattern(sizes[served], 0), buf[:n], "request %d", served)
		// answer in two halves, then one byte: three responses
		require.NoError(t, req.Send(buf[:n/2]))
		require.NoError(t, req.Send(buf[n/2:n]))
		require.NoError(t, req.Send([]byte{byte(n)}))
		require.NoError(t, req.Close())
		served++
	}
	for _, n := range sizes {
		sum := sha256.Sum256(append(pattern(n, 0), byte(n)))
		assert.Equal(t, fmt.Sprintf("%d 3 %s", n, hex.EncodeToString(sum[:])), next())
	}
	require.NoError(t, waitTimeout(cmd, 20*time.Second))
}

func TestGoClientCallsPythonServer(t *testing.T) {
	sizes := []int{0, 1, 63, 4096, 100000}
	ns := newNamespace(t)
	svc, err := ns.node(t).RequestResponse("go-calls-py")
	require.NoError(t, err)
	defer svc.Close()
	cli, err := svc.Client(iox.InitialMessageSize(64))
	require.NoError(t, err)

	cmd, next := pyRR(t, ns, pyRRServer, "go-calls-py", strconv.Itoa(len(sizes)))
	for _, n := range sizes {
		req := pattern(n, 0)
		p, err := cli.Send(req)
		require.NoError(t, err)
		got := responses(t, p)
		require.NoError(t, p.Close())
		want := [][]byte{reversed(req), []byte(strconv.Itoa(n))}
		assert.Equal(t, want, got, "request of %d bytes", n)
	}
	assert.Equal(t, fmt.Sprintf("served %d", len(sizes)), next())
	require.NoError(t, cli.Close())
	require.NoError(t, waitTimeout(cmd, 20*time.Second))
}

func reversed(b []byte) []byte {
	r := make([]byte, len(b))
	for i, c := range b {
		r[len(b)-1-i] = c
	}
	return r
}
