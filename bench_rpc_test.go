package iox_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/rpc"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/iox-go/iox"
)

func init() {
	children["bench-rpc-netrpc"] = childNetRPC
	children["bench-rpc-uds"] = childUDSReqRep
	children["bench-rpc-iox"] = childIoxServer
}

// rpcCallers is how many goroutines call at once in the parallel cases.
const rpcCallers = 64

// rpcOptions size the benchmark's service for rpcCallers calls in flight from
// one client: the memory a service needs grows with the square of
// MaxActiveRequests, so the other counts stay small.
func rpcOptions() []iox.Option {
	return []iox.Option{iox.MaxActiveRequests(rpcCallers), iox.ResponseBufferSize(2), iox.MaxClients(2), iox.MaxServers(1)}
}

// BenchmarkRPC measures a call with a 64-byte request and a 64-byte response
// to a server in a child process (one op = one call).
//
//   - netrpc: the standard library's net/rpc over a Unix socket, one client.
//   - uds: a hand-written request/reply over a Unix socket: 64 bytes each way,
//     one connection per calling goroutine.
//   - iox: Caller.Call to a Responder that answers with Serve.
//
// "serial" makes one call at a time and reports the median and the 99th
// percentile (p50-ns, p99-ns); "parallel" runs 64 calling goroutines and
// reports calls per second (calls/s) beside ns/op.
func BenchmarkRPC(b *testing.B) {
	for _, kind := range []string{"netrpc", "uds", "iox"} {
		b.Run(kind+"/serial", func(b *testing.B) { benchRPC(b, kind, false) })
		b.Run(kind+"/parallel", func(b *testing.B) { benchRPC(b, kind, true) })
	}
}

// rpcCaller is one way of calling: call sends req and fills resp.
type rpcCaller interface {
	call(req, resp []byte) error
	close()
}

func benchRPC(b *testing.B, kind string, parallel bool) {
	ns := newNamespace(b)
	addr := udsAddr(ns, "rpc")
	c := spawn(b, ns, "bench-rpc-"+kind, "IOX_BENCH_ADDR="+addr, "IOX_SERVICE=rpc")
	c.expect("ready")
	defer c.wait()
	dial := func() rpcCaller { return dialRPC(b, ns, kind, addr) }
	shared := dial()
	defer shared.close()
	req := pattern(rtSize, 1)
	if !parallel {
		resp := make([]byte, rtSize)
		timeRoundTrips(b, func() {
			if err := shared.call(req, resp); err != nil {
				b.Fatal(err)
			}
		})
		return
	}
	// One caller per goroutine where a caller serves one call at a time (uds),
	// the shared one otherwise.
	callers := make(chan rpcCaller, rpcCallers)
	for range rpcCallers {
		if kind == "uds" {
			callers <- dial()
		} else {
			callers <- shared
		}
	}
	defer func() {
		close(callers)
		for cl := range callers {
			if cl != shared {
				cl.close()
			}
		}
	}()
	b.SetParallelism(max(1, rpcCallers/runtime.GOMAXPROCS(0)))
	b.ReportAllocs()
	start := time.Now()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		cl := <-callers
		defer func() { callers <- cl }()
		resp := make([]byte, rtSize)
		for pb.Next() {
			if err := cl.call(req, resp); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "calls/s")
}

func dialRPC(b *testing.B, ns namespace, kind, addr string) rpcCaller {
	b.Helper()
	switch kind {
	case "netrpc":
		cl, err := rpc.Dial("unix", addr)
		if err != nil {
			b.Fatal(err)
		}
		return netRPCCaller{cl}
	case "uds":
		conn, err := net.Dial("unix", addr)
		if err != nil {
			b.Fatal(err)
		}
		return udsCaller{conn}
	default:
		node := ns.node(b)
		cl, err := iox.OpenClient(context.Background(), node, "rpc", iox.Raw{}, iox.Raw{}, rpcOptions()...)
		if err != nil {
			b.Fatal(err)
		}
		return ioxCaller{cl}
	}
}

type netRPCCaller struct{ c *rpc.Client }

func (n netRPCCaller) call(req, resp []byte) error {
	var out []byte
	if err := n.c.Call("Echo.Echo", req, &out); err != nil {
		return err
	}
	copy(resp, out)
	return nil
}
func (n netRPCCaller) close() { n.c.Close() }

type udsCaller struct{ conn net.Conn }

func (u udsCaller) call(req, resp []byte) error {
	if _, err := u.conn.Write(req); err != nil {
		return err
	}
	_, err := io.ReadFull(u.conn, resp)
	return err
}
func (u udsCaller) close() { u.conn.Close() }

type ioxCaller struct {
	c *iox.Caller[[]byte, []byte]
}

func (x ioxCaller) call(req, resp []byte) error {
	out, err := x.c.Call(context.Background(), req)
	if err != nil {
		return err
	}
	if len(out) != len(resp) {
		return fmt.Errorf("response of %d bytes", len(out))
	}
	copy(resp, out)
	return nil
}
func (x ioxCaller) close() { x.c.Close() }

// Echo is the net/rpc service of the benchmark's child.
type Echo struct{}

// Echo answers with the request.
func (Echo) Echo(req []byte, resp *[]byte) error {
	*resp = req
	return nil
}

// serveUnix accepts connections on IOX_BENCH_ADDR and serves each with serve
// until the parent hangs up (stdin closes).
func serveUnix(serve func(net.Conn)) error {
	ln, err := net.Listen("unix", os.Getenv("IOX_BENCH_ADDR"))
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	go func() {
		parentSays() // returns when the parent is gone or closes stdin
		ln.Close()
	}()
	fmt.Println("ready")
	for {
		conn, err := ln.Accept()
		if err != nil {
			wg.Wait()
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer conn.Close()
			serve(conn)
		}()
	}
}

func childNetRPC() error {
	srv := rpc.NewServer()
	if err := srv.Register(Echo{}); err != nil {
		return err
	}
	return serveUnix(func(c net.Conn) { srv.ServeConn(c) })
}

func childUDSReqRep() error {
	return serveUnix(func(conn net.Conn) {
		buf := make([]byte, rtSize)
		for {
			if _, err := io.ReadFull(conn, buf); err != nil {
				return
			}
			if _, err := conn.Write(buf); err != nil {
				return
			}
		}
	})
}

func childIoxServer() error {
	node, err := nsFromEnv().childNode()
	if err != nil {
		return err
	}
	defer node.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv, err := iox.OpenServer(ctx, node, os.Getenv("IOX_SERVICE"), iox.Raw{}, iox.Raw{}, rpcOptions()...)
	if err != nil {
		return err
	}
	defer srv.Close()
	go func() {
		parentSays()
		cancel()
	}()
	fmt.Println("ready")
	err = srv.Serve(ctx, rpcCallers, func(_ context.Context, req []byte) ([]byte, error) { return req, nil })
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}
