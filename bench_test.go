package iox_test

// Benchmarks of the low-level ports and of the channel adapters (Pair, Pub/Sub)
// against the baselines a Go developer would otherwise use, measured in the same
// run: the kernel's paths between the same two processes (a Unix stream socket, a
// Unix seqpacket socket, a pipe: bench_kernel_test.go), a buffered Go channel
// within one process, and, for latency, the floor that iceoryx2 itself reaches from
// Rust (internal/native/src/bin/iox_floor.rs). BenchmarkIdleCPU measures what a
// quiet connection costs while nothing is sent; BenchmarkFanout
// (bench_fanout_test.go) one publisher to several reader processes, and
// bench_rpc_test.go calls.
//
// The far side of every cross-process benchmark is a copy of the test binary in a
// child role (see TestMain). Every run of a benchmark function uses its own
// namespace and child, and removes both before the next run; setup is outside the
// timer. `make bench` runs them all, prints tables of ratios and draws the
// throughput plot (cmd/benchtable).

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/iox-go/iox"
)

func init() {
	children["bench-echo-kernel"] = childEchoKernel
	children["bench-echo-ports"] = childEchoPorts
	children["bench-sink-kernel"] = childSinkKernel
	children["bench-sink-ports"] = childSinkPorts
	children["bench-echo-pair"] = childEchoPair
	children["bench-sink-pair"] = childSinkPair
	children["bench-sink-sub"] = childSinkSub
	children["bench-idle"] = childIdle
	children["bench-burn"] = childBurn
	children["bench-idle-pairs"] = childIdlePairs
	children["bench-open-pairs"] = childOpenPairs
}

// rtSize is the message size of the round-trip benchmarks.
const rtSize = 64

// rtWarmup round trips run before the timer starts.
const rtWarmup = 1000

// floorMinIterations is the fewest round trips the native floor measures, however
// small b.N is.
const floorMinIterations = 10000

// benchSize is a message size and its name in benchmark names: 64B, 4KiB, 1MiB.
type benchSize struct {
	name string
	size int
}

// tableSizes are the message sizes of the README's tables: every throughput case
// runs them.
var tableSizes = []benchSize{{"64B", 64}, {"4KiB", 4 << 10}, {"1MiB", 1 << 20}}

// sweepSizes are 64 B to 4 MiB by factors of 4: the throughput-against-size
// plot, run by the kernel paths and by iox's copying and zero-copy cases.
var sweepSizes = func() []benchSize {
	var s []benchSize
	for n := 64; n <= 4<<20; n *= 4 {
		s = append(s, benchSize{sizeName(n), n})
	}
	return s
}()

// sizeName is n bytes as a benchmark name: 64B, 16KiB, 4MiB.
func sizeName(n int) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return strconv.Itoa(n>>20) + "MiB"
	case n >= 1<<10 && n%(1<<10) == 0:
		return strconv.Itoa(n>>10) + "KiB"
	}
	return strconv.Itoa(n) + "B"
}

// queueDepth is how many messages may be in flight in the throughput benchmarks:
// the subscriber's buffer, and the Go channel's capacity. Large messages get a
// smaller queue so that the shared-memory pool stays around 64 MiB.
func queueDepth(size int) int { return min(256, max(16, (64<<20)/size)) }

// pairSpin is the busy-poll time of the low-latency pair cases (iox.WithSpin on
// both ends). In a ping-pong a receiver waits a whole round trip through the other
// process between two messages; 50 µs is many times the round trip of the raw
// ports and about that of a Unix socket, so a receiver should still be polling
// when the next message lands, while one whose traffic stopped burns at most
// 50 µs of CPU before it parks.
const pairSpin = 50 * time.Microsecond

// pairOptions are the options of both ends of a benchmark pair: none in the
// default mode, pairSpin in the low-latency mode.
func pairOptions(spin bool) []iox.Option {
	if spin {
		return []iox.Option{iox.WithSpin(pairSpin)}
	}
	return nil
}

// childPairOptions are pairOptions(IOX_BENCH_SPIN == "1").
func childPairOptions() []iox.Option { return pairOptions(os.Getenv("IOX_BENCH_SPIN") == "1") }

func spinEnv(spin bool) string {
	if spin {
		return "IOX_BENCH_SPIN=1"
	}
	return "IOX_BENCH_SPIN=0"
}

// openBenchPair opens this process's end of the pair name and starts the child
// role at the other end; it returns once the child said "ready" and both ends are
// connected. The pair is closed when the benchmark ends, before the child is
// waited for.
func openBenchPair(b *testing.B, ns namespace, name, role string, spin bool, env ...string) (*iox.Pair[[]byte], *child) {
	b.Helper()
	node := ns.node(b)
	p, err := iox.OpenPair(context.Background(), node, name, pairOptions(spin)...)
	if err != nil {
		b.Fatal(err)
	}
	c := spawn(b, ns, role, append([]string{"IOX_SERVICE=" + name, spinEnv(spin)}, env...)...)
	b.Cleanup(func() { p.Close() }) // runs before the child's cleanup, after an explicit Close
	c.expect("ready")
	eventually(b, "the pair to connect", p.Connected)
	return p, c
}

// openChildPair opens the child's end of the pair IOX_SERVICE and waits until
// the parent's end is there.
func openChildPair(node *iox.Node, extra ...iox.Option) (*iox.Pair[[]byte], error) {
	p, err := iox.OpenPair(context.Background(), node, os.Getenv("IOX_SERVICE"), append(childPairOptions(), extra...)...)
	if err != nil {
		return nil, err
	}
	if !waitUntil(20*time.Second, p.Connected) {
		p.Close()
		return nil, errors.New("the parent's end of the pair never appeared")
	}
	return p, nil
}

// closePair closes p and checks that it was this side's first Close.
func closePair(b *testing.B, p *iox.Pair[[]byte]) {
	b.Helper()
	if err := p.Close(); err != nil {
		b.Fatalf("close pair: %v", err)
	}
}

// benchDeadline bounds the blocking calls of the channel benchmarks: go test's
// -timeout does not cover benchmarks, so a message that never arrives would
// otherwise hang the whole run instead of failing one benchmark.
const benchDeadline = 2 * time.Minute

// benchContext is the context of a benchmark's Send and Recv calls.
func benchContext(b *testing.B) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), benchDeadline)
	b.Cleanup(cancel)
	return ctx
}

// udsAddr is an abstract Unix socket address (Linux): nothing to clean up on disk.
func udsAddr(ns namespace, what string) string { return "@" + ns.prefix + what }

func benchEnvInt(key string) (int, error) {
	v, err := strconv.Atoi(os.Getenv(key))
	if err != nil {
		return 0, fmt.Errorf("%s: %w", key, err)
	}
	return v, nil
}

// acceptOne accepts the child's connection, failing after 20 s.
func acceptOne(b *testing.B, ln net.Listener) net.Conn {
	b.Helper()
	ln.(*net.UnixListener).SetDeadline(time.Now().Add(20 * time.Second))
	conn, err := ln.Accept()
	if err != nil {
		b.Fatalf("accept: %v", err)
	}
	return conn
}

// ---------------------------------------------------------------------------
// round trip
// ---------------------------------------------------------------------------

// BenchmarkRoundTrip measures one 64-byte message to a child process and back (one
// op = one round trip).
//
//   - uds, seqpacket, pipe: ping-pong over a Unix stream socket, a Unix
//     SOCK_SEQPACKET socket, or two named pipes (bench_kernel_test.go), blocking
//     reads.
//   - ports: Publisher.Send on one service, the child busy-polls
//     Subscriber.TryReceive into a reused buffer and answers with Send on a second
//     service, which this side busy-polls the same way.
//   - native-floor: the same ping-pong in Rust (iox_floor, two processes, the
//     iceoryx2 crate directly). Its ns/op is the mean the program measures itself
//     over max(b.N, 10000) round trips after a warm-up; it replaces the wall-clock
//     ns/op, which would include starting two processes. B/op and allocs/op are
//     reported as 0: no Go code runs per round trip. The timer still runs so that
//     the framework scales b.N by wall-clock time as usual. The row is skipped when
//     the program is not built (make bench builds it).
//   - pair: a Pair with default settings used through its Go channels: this
//     side sends on Out and receives from In, the child echoes what arrives on
//     In through Out, as an application selecting over channels would.
//   - pair-sendrecv: the same with Pair.Send and Pair.Recv on both sides, which
//     send and receive on the caller's goroutine.
//   - pair-spin: pair-sendrecv with WithSpin(pairSpin) on both ends, a fixed
//     busy-poll time instead of the default adaptive one.
//
// Every case also reports the median and the 99th percentile of the single round
// trips (p50-ns, p99-ns).
func BenchmarkRoundTrip(b *testing.B) {
	for _, path := range kernelPaths {
		b.Run(string(path), func(b *testing.B) { benchRoundTripKernel(b, path) })
	}
	b.Run("ports", benchRoundTripPorts)
	b.Run("native-floor", benchRoundTripFloor)
	b.Run("pair", func(b *testing.B) { benchRoundTripPair(b, false, viaChannels) })
	b.Run("pair-sendrecv", func(b *testing.B) { benchRoundTripPair(b, false, viaCalls) })
	b.Run("pair-spin", func(b *testing.B) { benchRoundTripPair(b, true, viaCalls) })
}

// timeRoundTrips runs roundTrip rtWarmup times untimed, then b.N times timed,
// and reports the median and 99th percentile of the single round trips
// ("p50-ns", "p99-ns") beside the mean (ns/op).
func timeRoundTrips(b *testing.B, roundTrip func()) {
	b.Helper()
	for range rtWarmup {
		roundTrip()
	}
	lat := make([]time.Duration, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		start := time.Now()
		roundTrip()
		lat[i] = time.Since(start)
	}
	b.StopTimer()
	reportPercentiles(b, lat)
}

// reportPercentiles reports the median and the 99th percentile of lat
// ("p50-ns", "p99-ns"); it sorts lat.
func reportPercentiles(b *testing.B, lat []time.Duration) {
	slices.Sort(lat)
	at := func(q float64) float64 { return float64(lat[min(len(lat)-1, int(q*float64(len(lat))))].Nanoseconds()) }
	b.ReportMetric(at(0.50), "p50-ns")
	b.ReportMetric(at(0.99), "p99-ns")
}

func benchRoundTripKernel(b *testing.B, path kernelPath) {
	ns := newNamespace(b)
	conns, children := openKernel(b, ns, path, "bench-echo-kernel", 1)
	conn, c := conns[0], children[0]
	msg, reply := pattern(rtSize, 0), make([]byte, rtSize)
	timeRoundTrips(b, func() {
		if _, err := conn.Write(msg); err != nil {
			b.Fatalf("write: %v", err)
		}
		if _, err := io.ReadFull(conn, reply); err != nil {
			b.Fatalf("read: %v", err)
		}
	})
	conn.Close() // the child stops at end of stream
	c.wait()
}

// childEchoKernel writes back every rtSize bytes it reads on its kernel path
// until the parent hangs up.
func childEchoKernel() error {
	conn, err := dialKernel()
	if err != nil {
		return err
	}
	defer conn.Close()
	fmt.Println("ready")
	buf := make([]byte, rtSize)
	for {
		if _, err := io.ReadFull(conn, buf); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		if _, err := conn.Write(buf); err != nil {
			return err
		}
	}
}

// rtServiceOptions match the native floor: one publisher and one subscriber, a
// buffer of one message that the newest overwrites.
func rtServiceOptions() []iox.Option {
	return []iox.Option{iox.MaxPublishers(1), iox.MaxSubscribers(1), iox.BufferSize(1), iox.SafeOverflow(true)}
}

func benchRoundTripPorts(b *testing.B) {
	ns := newNamespace(b)
	node := ns.node(b)
	ping, err := node.PublishSubscribe("rt/ping", rtServiceOptions()...)
	if err != nil {
		b.Fatal(err)
	}
	defer ping.Close()
	pong, err := node.PublishSubscribe("rt/pong", rtServiceOptions()...)
	if err != nil {
		b.Fatal(err)
	}
	defer pong.Close()
	pub, err := ping.Publisher(iox.InitialMessageSize(rtSize), iox.MaxMessageSize(rtSize))
	if err != nil {
		b.Fatal(err)
	}
	defer pub.Close()
	sub, err := pong.Subscriber()
	if err != nil {
		b.Fatal(err)
	}
	defer sub.Close()
	c := spawn(b, ns, "bench-echo-ports", "IOX_SERVICE=rt")
	c.expect("ready")

	msg, reply := pattern(rtSize, 0), make([]byte, rtSize)
	roundTrip := func() {
		for {
			k, err := pub.Send(msg)
			if err != nil {
				b.Fatalf("send: %v", err)
			}
			if k == 1 {
				break
			}
			runtime.Gosched() // not connected yet: nobody got it
		}
		for {
			n, ok, err := sub.TryReceive(reply)
			if err != nil {
				b.Fatalf("receive: %v", err)
			}
			if ok {
				if n != rtSize {
					b.Fatalf("reply of %d bytes", n)
				}
				return
			}
		}
	}
	timeRoundTrips(b, roundTrip)
	if _, err := pub.Send(nil); err != nil { // an empty message stops the child
		b.Fatal(err)
	}
	c.wait()
}

// childEchoPorts answers every message of service IOX_SERVICE/ping on
// IOX_SERVICE/pong, busy-polling, until an empty message arrives or the parent
// closes standard input.
func childEchoPorts() error {
	node, err := nsFromEnv().childNode()
	if err != nil {
		return err
	}
	defer node.Close()
	name := os.Getenv("IOX_SERVICE")
	in, err := node.PublishSubscribe(name+"/ping", append(rtServiceOptions(), iox.OpenOnly())...)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := node.PublishSubscribe(name+"/pong", append(rtServiceOptions(), iox.OpenOnly())...)
	if err != nil {
		return err
	}
	defer out.Close()
	sub, err := in.Subscriber()
	if err != nil {
		return err
	}
	defer sub.Close()
	pub, err := out.Publisher(iox.InitialMessageSize(rtSize), iox.MaxMessageSize(rtSize))
	if err != nil {
		return err
	}
	defer pub.Close()

	var gone atomic.Bool
	go func() {
		parentSays()
		gone.Store(true)
	}()
	fmt.Println("ready")
	buf := make([]byte, rtSize)
	for !gone.Load() {
		n, ok, err := sub.TryReceive(buf)
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		if n == 0 {
			return nil
		}
		if _, err := pub.Send(buf[:n]); err != nil {
			return err
		}
	}
	return nil
}

// floorProgram is the native floor's executable: $IOX_FLOOR, or the build output
// of internal/native.
func floorProgram() string {
	if p := os.Getenv("IOX_FLOOR"); p != "" {
		return p
	}
	return filepath.Join("internal", "native", "target", "release", "iox_floor")
}

func benchRoundTripFloor(b *testing.B) {
	prog := floorProgram()
	if _, err := os.Stat(prog); err != nil {
		b.Skipf("native floor not built (%v): run make bench, or cargo build --release in internal/native", err)
	}
	ns := newNamespace(b) // iox_floor removes the namespace's files itself
	iters := max(b.N, floorMinIterations)
	cmd := exec.Command(prog, "ping", ns.prefix, ns.root, strconv.Itoa(iters))
	cmd.Stderr = os.Stderr
	timer := time.AfterFunc(2*time.Minute, func() { cmd.Process.Kill() })
	out, err := cmd.Output()
	timer.Stop()
	if err != nil {
		b.Fatalf("%s: %v", prog, err)
	}
	ns1, err := strconv.ParseFloat(strings.TrimSpace(string(out)), 64)
	if err != nil || ns1 <= 0 {
		b.Fatalf("%s printed %q, want nanoseconds per round trip", prog, out)
	}
	b.ReportMetric(ns1, "ns/op")
	b.ReportMetric(0, "B/op")
	b.ReportMetric(0, "allocs/op")
}

// pairMode is how a round-trip benchmark uses a pair: its Go channel ends
// (Out, In) or its calls (Send, Recv).
type pairMode string

const (
	viaChannels pairMode = "chan"
	viaCalls    pairMode = "call"
)

func benchRoundTripPair(b *testing.B, spin bool, mode pairMode) {
	ns := newNamespace(b)
	p, c := openBenchPair(b, ns, "rt", "bench-echo-pair", spin, "IOX_BENCH_MODE="+string(mode))
	ctx := benchContext(b)
	msg := pattern(rtSize, 0)
	check := func(reply []byte) {
		if len(reply) != rtSize {
			b.Fatalf("reply of %d bytes", len(reply))
		}
	}
	if mode == viaChannels {
		out, in := p.Out(), p.In()
		timeRoundTrips(b, func() {
			out <- msg
			reply, ok := <-in
			if !ok {
				b.Fatalf("the pair ended: %v", p.Err())
			}
			check(reply)
		})
	} else {
		timeRoundTrips(b, func() {
			if err := p.Send(ctx, msg); err != nil {
				b.Fatalf("send: %v", err)
			}
			reply, err := p.Recv(ctx)
			if err != nil {
				b.Fatalf("receive: %v", err)
			}
			check(reply)
		})
	}
	closePair(b, p) // the child's receive ends after the last message
	c.wait()
}

// childEchoPair sends back every message of the pair IOX_SERVICE until the parent
// closes its end, with the pair's channel ends or its calls (IOX_BENCH_MODE).
func childEchoPair() error {
	node, err := nsFromEnv().childNode()
	if err != nil {
		return err
	}
	defer node.Close()
	p, err := openChildPair(node)
	if err != nil {
		return err
	}
	defer p.Close()
	fmt.Println("ready")
	ctx := context.Background()
	if pairMode(os.Getenv("IOX_BENCH_MODE")) == viaChannels {
		out := p.Out()
		for m := range p.In() {
			select {
			case out <- m:
			case <-p.Done():
			}
		}
	} else {
		for {
			m, err := p.Recv(ctx)
			if err != nil {
				break
			}
			if err := p.Send(ctx, m); err != nil {
				return err
			}
		}
	}
	if !errors.Is(p.Err(), iox.ErrPeerClosed) {
		return fmt.Errorf("pair ended with %v", p.Err())
	}
	return nil
}

// BenchmarkRoundTripLoaded is BenchmarkRoundTrip's kernel paths (uds,
// seqpacket, pipe) and default pair cases while a third process keeps one of
// the two cores busy (a Go busy loop on one thread): what a loaded machine does
// to each, measured under the same load.
func BenchmarkRoundTripLoaded(b *testing.B) {
	burn := func(b *testing.B) {
		ns := newNamespace(b)
		c := spawn(b, ns, "bench-burn", "GOMAXPROCS=1")
		c.expect("burning")
		b.Cleanup(func() { c.cmd.Process.Kill() })
	}
	for _, path := range kernelPaths {
		b.Run(string(path), func(b *testing.B) { burn(b); benchRoundTripKernel(b, path) })
	}
	b.Run("pair", func(b *testing.B) { burn(b); benchRoundTripPair(b, false, viaChannels) })
	b.Run("pair-sendrecv", func(b *testing.B) { burn(b); benchRoundTripPair(b, false, viaCalls) })
}

// childBurn keeps one core busy until it is killed.
func childBurn() error {
	fmt.Println("burning")
	x := uint64(1)
	for {
		x = x*6364136223846793005 + 1442695040888963407
		if x == 0 {
			return nil
		}
	}
}

// ---------------------------------------------------------------------------
// throughput
// ---------------------------------------------------------------------------

// BenchmarkThroughput measures one-way messages from this process to a receiver
// that counts them (one op = one message; MB/s from b.SetBytes). The timer covers
// sending b.N messages until the receiver reports it has all of them. No message
// is lost: a full receiver makes the sender wait.
//
//   - uds, seqpacket, pipe: a Write of each message to a Unix stream socket, a
//     Unix SOCK_SEQPACKET socket (in records of up to 64 KiB) or a named pipe with
//     a 1 MiB buffer (bench_kernel_test.go); the child reads the bytes in chunks
//     of up to 64 KiB, or of the message size when that is larger.
//   - ports-copy: Publisher.Send (copy into shared memory) on a service without
//     safe overflow, FailWhenFull(0), retried after runtime.Gosched on
//     ErrWouldBlock; the child drains with Subscriber.ReceiveBatch.
//   - ports-zerocopy: the zero-copy path. Publisher.Loan + SampleMut.Send on the same
//     service; the sender writes an 8-byte sequence number in place and leaves the
//     rest of the sample as it is (a producer fills the loaned memory instead of
//     its own buffer), and the child borrows each sample (Subscriber.Borrow), checks
//     the sequence number in place and releases it: no copy on either side.
//   - pair: Pair.Send of the same buffer b.N times on a Pair with default settings
//     (Send copies each message into shared memory before it returns, so reusing
//     the buffer is safe); the child counts what arrives on In and hands each
//     buffer back with Recycle (the default recycling).
//   - pubsub: Pub.Send on a lossless Pub with default settings to one Sub in the
//     child, which counts what arrives on In and recycles the buffers the same
//     way. Timing starts once the publisher lists the subscriber.
//   - chan: a buffered Go channel to a goroutine in this process; buffers come
//     from a free list and the sender copies the message into one (a hand-over of
//     ownership, no allocation), the receiver hands them back.
//
// queueDepth sets both the subscriber buffer and the channel capacity of the
// ports and chan cases; pair and pubsub keep their defaults (a queue of 64
// messages in shared memory and Go channels of 64). Pair and Pub are closed after
// the timer stops; their Close waits until the child has taken everything.
//
// The cases of throughputCases marked sweep run every size of sweepSizes (64 B
// to 4 MiB, the throughput plot), the others the sizes of tableSizes.
func BenchmarkThroughput(b *testing.B) {
	for _, tc := range throughputCases {
		b.Run(tc.name, func(b *testing.B) {
			sizes := tableSizes
			if tc.sweep {
				sizes = sweepSizes
			}
			for _, s := range sizes {
				b.Run(s.name, func(b *testing.B) { tc.run(b, s.size) })
			}
		})
	}
}

// throughputCase is one case of BenchmarkThroughput.
type throughputCase struct {
	name  string
	sweep bool // runs sweepSizes, not only tableSizes
	run   func(b *testing.B, size int)
}

// throughputCases are BenchmarkThroughput's cases in the order they run; files
// built with other tags add theirs in init.
var throughputCases = []throughputCase{
	{string(kernelUDS), true, func(b *testing.B, size int) { benchThroughputKernel(b, kernelUDS, size) }},
	{string(kernelSeqpacket), true, func(b *testing.B, size int) { benchThroughputKernel(b, kernelSeqpacket, size) }},
	{string(kernelPipe), true, func(b *testing.B, size int) { benchThroughputKernel(b, kernelPipe, size) }},
	{"ports-copy", false, func(b *testing.B, size int) { benchThroughputPorts(b, size, false) }},
	{"ports-zerocopy", true, func(b *testing.B, size int) { benchThroughputPorts(b, size, true) }},
	{"pair", true, benchThroughputPair},
	{"pubsub", false, benchThroughputPubSub},
	{"chan", false, benchThroughputChan},
}

// expectCount waits for the child's "got N" and checks N.
func (c *child) expectCount(n int) {
	c.t.Helper()
	c.expect(fmt.Sprintf("got %d", n))
}

func benchThroughputKernel(b *testing.B, path kernelPath, size int) {
	ns := newNamespace(b)
	conns, children := openKernel(b, ns, path, "bench-sink-kernel", 1, "IOX_BENCH_SIZE="+strconv.Itoa(size))
	conn, c := conns[0], children[0]
	msg := pattern(size, 0)
	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.ResetTimer()
	c.say(strconv.Itoa(b.N))
	for range b.N {
		if _, err := conn.Write(msg); err != nil {
			b.Fatalf("write: %v", err)
		}
	}
	c.expectCount(b.N)
	b.StopTimer()
	c.wait()
}

// childSinkKernel reads the number of messages from the parent, then that many
// messages of IOX_BENCH_SIZE bytes from its kernel path, and says "got N".
func childSinkKernel() error {
	size, err := benchEnvInt("IOX_BENCH_SIZE")
	if err != nil {
		return err
	}
	conn, err := dialKernel()
	if err != nil {
		return err
	}
	defer conn.Close()
	fmt.Println("ready")
	n, err := strconv.Atoi(parentSays())
	if err != nil {
		return fmt.Errorf("message count: %w", err)
	}
	buf := make([]byte, max(size, 64<<10))
	for left := n * size; left > 0; {
		k, err := conn.Read(buf[:min(len(buf), left)])
		if err != nil {
			return fmt.Errorf("after %d of %d bytes: %w", n*size-left, n*size, err)
		}
		left -= k
	}
	fmt.Printf("got %d\n", n)
	return nil
}

// tpServiceOptions make the lossless service of the throughput and fan-out
// benchmarks: one publisher, subs subscribers with a buffer of depth messages.
func tpServiceOptions(subs, depth int) []iox.Option {
	return []iox.Option{iox.MaxPublishers(1), iox.MaxSubscribers(subs),
		iox.BufferSize(depth), iox.SafeOverflow(false)}
}

func benchThroughputPorts(b *testing.B, size int, loan bool) {
	ns := newNamespace(b)
	node := ns.node(b)
	svc, err := node.PublishSubscribe("tp", tpServiceOptions(1, queueDepth(size))...)
	if err != nil {
		b.Fatal(err)
	}
	defer svc.Close()
	pub, err := svc.Publisher(iox.FailWhenFull(0), iox.InitialMessageSize(size), iox.MaxMessageSize(size))
	if err != nil {
		b.Fatal(err)
	}
	defer pub.Close()
	env := []string{"IOX_SERVICE=tp", "IOX_BENCH_SIZE=" + strconv.Itoa(size)}
	if loan {
		env = append(env, "IOX_BENCH_BORROW=1")
	}
	c := spawn(b, ns, "bench-sink-ports", env...)
	c.expect("ready")

	msg := pattern(size, 0)
	// delivered reports whether a send reached the subscriber; false means retry.
	delivered := func(k int, err error) bool {
		switch {
		case err == nil && k == 1:
			return true
		case err != nil && !errors.Is(err, iox.ErrWouldBlock):
			b.Fatalf("send: %v", err)
		}
		runtime.Gosched()
		return false
	}
	sendCopy := func(int) {
		for !delivered(pub.Send(msg)) {
		}
	}
	sendLoan := func(seq int) {
		for {
			s, err := pub.Loan(size)
			if err != nil {
				b.Fatalf("loan: %v", err)
			}
			if p := s.Bytes(); len(p) >= 8 {
				binary.LittleEndian.PutUint64(p, uint64(seq))
			}
			if delivered(s.Send()) {
				return
			}
		}
	}
	send := sendCopy
	if loan {
		send = sendLoan
	}
	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.ResetTimer()
	c.say(strconv.Itoa(b.N))
	for i := range b.N {
		send(i)
	}
	c.expectCount(b.N)
	b.StopTimer()
	c.wait()
}

// childSinkPorts reads the number of messages from the parent, drains that many
// messages of IOX_BENCH_SIZE bytes from service IOX_SERVICE with ReceiveBatch
// (busy-polling), or borrows them one by one (IOX_BENCH_BORROW), and says "got
// N". The service has IOX_BENCH_SUBS subscribers (default 1) with buffers of
// IOX_BENCH_DEPTH messages (default queueDepth); with IOX_BENCH_ACK, the
// borrowing sink reports its progress (see BenchmarkFanout).
func childSinkPorts() error {
	size, err := benchEnvInt("IOX_BENCH_SIZE")
	if err != nil {
		return err
	}
	subs, depth := 1, queueDepth(size)
	if os.Getenv("IOX_BENCH_SUBS") != "" {
		if subs, err = benchEnvInt("IOX_BENCH_SUBS"); err != nil {
			return err
		}
		if depth, err = benchEnvInt("IOX_BENCH_DEPTH"); err != nil {
			return err
		}
	}
	node, err := nsFromEnv().childNode()
	if err != nil {
		return err
	}
	defer node.Close()
	svc, err := node.PublishSubscribe(os.Getenv("IOX_SERVICE"), append(tpServiceOptions(subs, depth), iox.OpenOnly())...)
	if err != nil {
		return err
	}
	defer svc.Close()
	sub, err := svc.Subscriber()
	if err != nil {
		return err
	}
	defer sub.Close()
	acker, err := newFanAcker(node)
	if err != nil {
		return err
	}
	defer acker.close()
	fmt.Println("ready")
	n, err := strconv.Atoi(parentSays())
	if err != nil {
		return fmt.Errorf("message count: %w", err)
	}
	var gone atomic.Bool
	go func() {
		parentSays()
		gone.Store(true)
	}()
	got := 0
	if os.Getenv("IOX_BENCH_BORROW") != "" { // zero copy: read the sequence number in place
		for got < n {
			s, ok, err := sub.Borrow()
			if err != nil {
				return err
			}
			if !ok {
				if gone.Load() {
					return fmt.Errorf("parent left after %d of %d messages", got, n)
				}
				acker.idle()
				continue
			}
			if m := s.Bytes(); len(m) != size || size >= 8 && binary.LittleEndian.Uint64(m) != uint64(got) {
				return fmt.Errorf("message %d: %d bytes or out of order", got, len(m))
			}
			s.Release()
			got++
			if err := acker.took(got); err != nil {
				return err
			}
		}
		fmt.Printf("got %d\n", got)
		return nil
	}
	room := min(queueDepth(size)*size, 8<<20)
	batch := iox.NewBatch(room, max(room/max(size, 1), 1))
	for got < n {
		k, err := sub.ReceiveBatch(batch)
		if err != nil {
			return err
		}
		for i := range k {
			if m := batch.Message(i); len(m) != size {
				return fmt.Errorf("message %d has %d bytes, want %d", got+i, len(m), size)
			}
		}
		got += k
		if k == 0 && gone.Load() {
			return fmt.Errorf("parent left after %d of %d messages", got, n)
		}
	}
	fmt.Printf("got %d\n", got)
	return nil
}

func benchThroughputPair(b *testing.B, size int) {
	ns := newNamespace(b)
	p, c := openBenchPair(b, ns, "tp", "bench-sink-pair", false, "IOX_BENCH_SIZE="+strconv.Itoa(size))
	ctx := benchContext(b)
	msg := pattern(size, 0)
	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.ResetTimer()
	c.say(strconv.Itoa(b.N))
	for range b.N {
		if err := p.Send(ctx, msg); err != nil {
			b.Fatalf("send: %v", err)
		}
	}
	c.expectCount(b.N)
	b.StopTimer()
	closePair(b, p)
	c.wait()
}

// countMessages takes n messages of size bytes from in, hands each buffer
// back with recycle, then says "got N".
func countMessages(in <-chan []byte, n, size int, ended func() error, recycle func([]byte)) error {
	for got := range n {
		m, ok := <-in
		if !ok {
			return fmt.Errorf("ended after %d of %d messages: %v", got, n, ended())
		}
		if len(m) != size {
			return fmt.Errorf("message %d has %d bytes, want %d", got, len(m), size)
		}
		recycle(m)
	}
	fmt.Printf("got %d\n", n)
	return nil
}

// childSinkPair reads the number of messages from the parent, takes that many
// messages of IOX_BENCH_SIZE bytes from the pair IOX_SERVICE, says "got N", and
// returns when the parent has closed its end (nothing more may arrive).
func childSinkPair() error {
	size, err := benchEnvInt("IOX_BENCH_SIZE")
	if err != nil {
		return err
	}
	node, err := nsFromEnv().childNode()
	if err != nil {
		return err
	}
	defer node.Close()
	p, err := openChildPair(node)
	if err != nil {
		return err
	}
	defer p.Close()
	fmt.Println("ready")
	n, err := strconv.Atoi(parentSays())
	if err != nil {
		return fmt.Errorf("message count: %w", err)
	}
	if err := countMessages(p.In(), n, size, p.Err, p.Recycle); err != nil {
		return err
	}
	if _, ok := <-p.In(); ok {
		return fmt.Errorf("more than %d messages", n)
	}
	if !errors.Is(p.Err(), iox.ErrPeerClosed) {
		return fmt.Errorf("pair ended with %v", p.Err())
	}
	return nil
}

func benchThroughputPubSub(b *testing.B, size int) {
	ns := newNamespace(b)
	pub, err := iox.OpenPub(context.Background(), ns.node(b), "tp")
	if err != nil {
		b.Fatal(err)
	}
	c := spawn(b, ns, "bench-sink-sub", "IOX_SERVICE=tp", "IOX_BENCH_SIZE="+strconv.Itoa(size))
	b.Cleanup(func() { pub.Close() }) // before the child's cleanup
	c.expect("ready")
	eventually(b, "the subscriber", func() bool { return pub.Subscribers() == 1 })
	ctx := benchContext(b)
	msg := pattern(size, 0)
	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.ResetTimer()
	c.say(strconv.Itoa(b.N))
	for range b.N {
		if err := pub.Send(ctx, msg); err != nil {
			b.Fatalf("send: %v", err)
		}
	}
	c.expectCount(b.N)
	b.StopTimer()
	if err := pub.Close(); err != nil {
		b.Fatalf("close publisher: %v", err)
	}
	c.wait()
}

// childSinkSub subscribes to IOX_SERVICE, reads the number of messages from the
// parent, takes that many messages of IOX_BENCH_SIZE bytes, says "got N", and
// closes the subscriber when the parent closes standard input.
func childSinkSub() error {
	size, err := benchEnvInt("IOX_BENCH_SIZE")
	if err != nil {
		return err
	}
	node, err := nsFromEnv().childNode()
	if err != nil {
		return err
	}
	defer node.Close()
	sub, err := iox.OpenSub(context.Background(), node, os.Getenv("IOX_SERVICE"))
	if err != nil {
		return err
	}
	defer sub.Close()
	fmt.Println("ready")
	n, err := strconv.Atoi(parentSays())
	if err != nil {
		return fmt.Errorf("message count: %w", err)
	}
	if err := countMessages(sub.In(), n, size, sub.Err, sub.Recycle); err != nil {
		return err
	}
	parentSays() // the publisher closes first and waits until this side took everything
	return sub.Close()
}

func benchThroughputChan(b *testing.B, size int) {
	depth := queueDepth(size)
	free := make(chan []byte, depth+2)
	for range depth + 2 {
		free <- make([]byte, size)
	}
	ch := make(chan []byte, depth)
	total := make(chan int)
	go func() {
		n := 0
		for m := range ch {
			n += len(m)
			free <- m
		}
		total <- n
	}()
	msg := pattern(size, 0)
	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		m := <-free
		copy(m, msg)
		ch <- m
	}
	close(ch)
	n := <-total
	b.StopTimer()
	if n != b.N*size {
		b.Fatalf("received %d bytes, want %d", n, b.N*size)
	}
}

// ---------------------------------------------------------------------------
// idle CPU
// ---------------------------------------------------------------------------

// idleSettle is how long a fresh connection runs before the idle window, so
// that the window sees the steady state and not the start-up.
const idleSettle = 300 * time.Millisecond

// idleWindow is how long BenchmarkIdleCPU watches a quiet connection: 2 s, or the
// -benchtime duration when that is longer (see BenchmarkIdleCPU).
func idleWindow() time.Duration {
	w := 2 * time.Second
	if f := flag.Lookup("test.benchtime"); f != nil {
		if d, err := time.ParseDuration(f.Value.String()); err == nil && d > w {
			w = d
		}
	}
	return w
}

// cpuUsage is a process's CPU time (user + system) and context switches
// (voluntary + involuntary, across all its threads) so far.
type cpuUsage struct {
	cpu time.Duration
	csw int64
}

func selfUsage() (cpuUsage, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return cpuUsage{}, err
	}
	return cpuUsage{time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), ru.Nvcsw + ru.Nivcsw}, nil
}

// BenchmarkIdleCPU measures what a quiet connection costs while nothing is sent:
// the CPU time of this process (getrusage RUSAGE_SELF: every thread, the test
// framework's included) and of the child at the other end (its own getrusage,
// which it reports) over one idle window, as a percentage of one core:
// "cpu%-self" and "cpu%-peer". It also reports context switches per second on
// each side ("csw/s-self", "csw/s-peer"): roughly how often their threads wake.
//
//   - uds: a connected Unix stream socket, the child blocked reading it; what two
//     idle Go processes cost, the baseline.
//   - pair: a Pair with default settings at both ends.
//   - pair-spin: a Pair with WithSpin(pairSpin) at both ends.
//   - pubsub: a lossless Pub here and a Sub in the child, default settings.
//
// The window is a fixed wall-clock time, not b.N of anything: every run of the
// function watches one window whatever b.N is, with the timer running, so the
// first run (b.N = 1) already lasts at least -benchtime and the framework does not
// run the function again. The window is therefore 2 s or -benchtime, whichever is
// longer. (With a count, -benchtime=Nx, the framework runs the function a second
// time with b.N = N; that run again watches one window.) ns/op reports the length
// of the window, not divided by b.N; setup, the settling time and teardown are
// outside the timer.
func BenchmarkIdleCPU(b *testing.B) {
	b.Run("uds", func(b *testing.B) { benchIdle(b, "uds", idleUDS) })
	b.Run("pair", func(b *testing.B) { benchIdle(b, "pair", idlePair(false)) })
	b.Run("pair-spin", func(b *testing.B) { benchIdle(b, "pair", idlePair(true)) })
	b.Run("pubsub", func(b *testing.B) { benchIdle(b, "pubsub", idlePubSub) })
}

// idleSetup starts the child role bench-idle with the given environment, connects
// to it, and returns it with a function that closes this side cleanly.
type idleSetup func(b *testing.B, ns namespace, env ...string) (*child, func())

func idleUDS(b *testing.B, ns namespace, env ...string) (*child, func()) {
	addr := udsAddr(ns, "idle")
	ln, err := net.Listen("unix", addr)
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	c := spawn(b, ns, "bench-idle", append(env, "IOX_BENCH_ADDR="+addr)...)
	conn := acceptOne(b, ln)
	b.Cleanup(func() { conn.Close() })
	c.expect("ready")
	return c, func() { conn.Close() }
}

func idlePair(spin bool) idleSetup {
	return func(b *testing.B, ns namespace, env ...string) (*child, func()) {
		p, c := openBenchPair(b, ns, "idle", "bench-idle", spin, env...)
		return c, func() {
			if err := p.Err(); err != nil {
				b.Fatalf("the pair did not stay open: %v", err)
			}
			closePair(b, p)
		}
	}
}

func idlePubSub(b *testing.B, ns namespace, env ...string) (*child, func()) {
	pub, err := iox.OpenPub(context.Background(), ns.node(b), "idle")
	if err != nil {
		b.Fatal(err)
	}
	c := spawn(b, ns, "bench-idle", append(env, "IOX_SERVICE=idle")...)
	b.Cleanup(func() { pub.Close() }) // before the child's cleanup
	c.expect("ready")
	eventually(b, "the subscriber", func() bool { return pub.Subscribers() == 1 })
	return c, func() {
		if err := pub.Close(); err != nil {
			b.Fatalf("close publisher: %v", err)
		}
	}
}

func benchIdle(b *testing.B, kind string, setup idleSetup) {
	ns := newNamespace(b)
	c, closeSide := setup(b, ns, "IOX_BENCH_KIND="+kind)
	window := idleWindow()
	time.Sleep(idleSettle) // part of the measurement: the window starts after the start-up
	// Collect the garbage of earlier benchmarks and return freed memory to the OS
	// now, so that neither happens during the window.
	debug.FreeOSMemory()

	watchIdle(b, c, window)
	closeSide()
	c.wait()
}

// watchIdle measures both processes over one idle window, timed, and reports
// the window as ns/op with cpu%-self, cpu%-peer, csw/s-self and csw/s-peer; the
// child serves it with reportIdle.
func watchIdle(b *testing.B, c *child, window time.Duration) {
	b.Helper()
	c.say("start")
	c.expect("started")
	before, err := selfUsage()
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	start := time.Now()
	time.Sleep(window) // the measurement: the idle window
	after, err := selfUsage()
	if err != nil {
		b.Fatal(err)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	c.say("stop")
	var peer cpuUsage
	var peerElapsed time.Duration
	if _, err := fmt.Sscanf(c.line(), "idle %d %d %d", &peer.cpu, &peer.csw, &peerElapsed); err != nil || peerElapsed <= 0 {
		b.Fatalf("child's report: %v", err)
	}
	percent := func(cpu, wall time.Duration) float64 { return 100 * cpu.Seconds() / wall.Seconds() }
	perSecond := func(n int64, wall time.Duration) float64 { return float64(n) / wall.Seconds() }
	b.ReportMetric(float64(elapsed.Nanoseconds()), "ns/op") // the window, whatever b.N is
	b.ReportMetric(percent(after.cpu-before.cpu, elapsed), "cpu%-self")
	b.ReportMetric(percent(peer.cpu, peerElapsed), "cpu%-peer")
	b.ReportMetric(perSecond(after.csw-before.csw, elapsed), "csw/s-self")
	b.ReportMetric(perSecond(peer.csw, peerElapsed), "csw/s-peer")
}

// childIdle holds its end of an IOX_BENCH_KIND connection (uds, pair or pubsub)
// open without sending. On "start" from the parent it notes its CPU usage and says
// "started"; on "stop" it says "idle <cpu ns> <context switches> <wall ns>" for
// the time in between. It closes its end when the parent closes standard input.
func childIdle() error {
	var closeEnd func() error
	switch kind := os.Getenv("IOX_BENCH_KIND"); kind {
	case "uds":
		conn, err := net.Dial("unix", os.Getenv("IOX_BENCH_ADDR"))
		if err != nil {
			return err
		}
		defer conn.Close()
		go io.Copy(io.Discard, conn) // a reader blocked on the socket, as a server would have
		closeEnd = conn.Close
	case "pair", "pubsub":
		node, err := nsFromEnv().childNode()
		if err != nil {
			return err
		}
		defer node.Close()
		if kind == "pair" {
			p, err := openChildPair(node)
			if err != nil {
				return err
			}
			defer p.Close()
			closeEnd = func() error {
				if err := p.Err(); err != nil && !errors.Is(err, iox.ErrPeerClosed) {
					return fmt.Errorf("pair ended with %v", err)
				}
				return p.Close()
			}
		} else {
			sub, err := iox.OpenSub(context.Background(), node, os.Getenv("IOX_SERVICE"))
			if err != nil {
				return err
			}
			defer sub.Close()
			closeEnd = sub.Close
		}
	default:
		return fmt.Errorf("unknown IOX_BENCH_KIND %q", kind)
	}
	fmt.Println("ready")
	return reportIdle(closeEnd)
}

// reportIdle serves a child's idle window: on "start" it returns freed memory to
// the OS (as the parent does), notes its CPU usage and says "started"; on "stop"
// it says "idle <cpu ns> <context switches> <wall ns>" for the time in between;
// on "close", or when the parent closes standard input, it returns closeEnd().
func reportIdle(closeEnd func() error) error {
	var before cpuUsage
	var start time.Time
	for {
		switch cmd := parentSays(); cmd {
		case "start":
			debug.FreeOSMemory()
			var err error
			if before, err = selfUsage(); err != nil {
				return err
			}
			start = time.Now()
			fmt.Println("started")
		case "stop":
			after, err := selfUsage()
			if err != nil {
				return err
			}
			fmt.Printf("idle %d %d %d\n", int64(after.cpu-before.cpu), after.csw-before.csw, int64(time.Since(start)))
		case "", "close":
			return closeEnd()
		default:
			return fmt.Errorf("unknown command %q", cmd)
		}
	}
}

// ---------------------------------------------------------------------------
// allocations
// ---------------------------------------------------------------------------

// builtWithRace reports whether the test binary has the race detector, which
// allocates on its own (and makes sync.Pool drop items at random).
func builtWithRace() bool {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range info.Settings {
		if s.Key == "-race" {
			return s.Value == "true"
		}
	}
	return false
}

// The hot paths of the ports and events must not allocate: one native call per
// message or notification, into buffers and slices the caller reuses.
func TestSendAndReceiveIntoDoNotAllocate(t *testing.T) {
	if builtWithRace() {
		t.Skip("the race detector allocates on its own")
	}
	ns := newNamespace(t)
	node := ns.node(t)
	svc, err := node.PublishSubscribe("allocs", iox.BufferSize(4), iox.SafeOverflow(true))
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	pub, err := svc.Publisher(iox.InitialMessageSize(64))
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	sub, err := svc.Subscriber()
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	ev, err := node.Event("allocs-ev")
	if err != nil {
		t.Fatal(err)
	}
	defer ev.Close()
	ntf, err := ev.Notifier()
	if err != nil {
		t.Fatal(err)
	}
	defer ntf.Close()
	lis, err := ev.Listener()
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()

	msg, buf := pattern(64, 1), make([]byte, 64)
	batch := iox.NewBatch(1024, 4)
	four, fourLens := pattern(4*16, 2), []uint64{16, 16, 16, 16}
	ids := make([]iox.EventID, 0, 8)
	var failure error
	check := func(what string, err error, ok bool) {
		if failure == nil && err != nil {
			failure = fmt.Errorf("%s: %w", what, err)
		} else if failure == nil && !ok {
			failure = fmt.Errorf("%s: wrong result", what)
		}
	}
	send := func() {
		k, err := pub.Send(msg)
		check("send", err, k == 1)
	}
	tryReceive := func(want bool) {
		n, ok, err := sub.TryReceive(buf)
		check("try receive", err, ok == want && (!ok || n == len(msg)))
	}
	// gotEvent checks that ids holds id alone.
	gotEvent := func(what string, err error, id iox.EventID) {
		check(what, err, len(ids) == 1 && ids[0] == id)
	}
	drain := func() {
		for {
			_, ok, err := sub.TryReceive(buf)
			if err != nil {
				t.Fatal(err)
			}
			if !ok {
				break
			}
		}
		if _, err := lis.TryWait(); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name string
		run  func()
	}{
		{"Send", send}, // a full buffer loses its oldest message (safe overflow)
		{"TryReceive-empty", func() { tryReceive(false) }},
		{"Send+TryReceive", func() { send(); tryReceive(true) }},
		{"Send+ReceiveBatch", func() {
			send()
			k, err := sub.ReceiveBatch(batch)
			check("receive batch", err, k == 1 && len(batch.Message(0)) == len(msg))
		}},
		{"SendBatch+ReceiveBatch", func() {
			k, err := pub.SendBatch(four, fourLens)
			check("send batch", err, k == 4)
			k, err = sub.ReceiveBatch(batch)
			check("receive batch", err, k == 4 && bytes.Equal(batch.Message(3), four[48:]))
		}},
		{"Send+HasMessages+TryReceive", func() {
			send()
			has, err := sub.HasMessages()
			check("has messages", err, has)
			tryReceive(true)
		}},
		{"TryWait-empty", func() {
			var err error
			ids, err = lis.TryWaitInto(ids[:0])
			check("try wait", err, len(ids) == 0)
		}},
		{"Notify+TryWait", func() {
			k, err := ntf.Notify(3)
			check("notify", err, k == 1)
			ids, err = lis.TryWaitInto(ids[:0])
			gotEvent("try wait", err, 3)
		}},
		{"Notify+Wait", func() {
			k, err := ntf.Notify(4)
			check("notify", err, k == 1)
			ids, err = lis.WaitInto(context.Background(), ids[:0])
			gotEvent("wait", err, 4)
		}},
		{"SendNotify+Wait+TryReceive", func() {
			k, err := pub.SendNotify(msg, nil, ntf, 5)
			check("send notify", err, k == 1)
			ids, err = lis.WaitInto(context.Background(), ids[:0])
			gotEvent("wait", err, 5)
			tryReceive(true)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			drain()
			failure = nil
			allocs := testing.AllocsPerRun(1000, tc.run)
			if failure != nil {
				t.Fatal(failure)
			}
			if allocs != 0 {
				t.Errorf("%s: %v allocations per call, want 0", tc.name, allocs)
			}
		})
	}
}

// BenchmarkCall measures one call on each side of a 64-byte message, in one
// process: the cost a caller pays, without the other process's work.
//   - send: Publisher.Send to a subscriber whose queue never fills (safe
//     overflow): loan, copy and deliver in one native call.
//   - receive: Subscriber.TryReceive of a waiting message into a reused buffer;
//     the message is sent with the timer stopped.
//   - uds-write: conn.Write of 64 bytes on a Unix stream socket whose other end a
//     goroutine drains (the baseline for send).
//   - uds-read: conn.Read of 64 bytes that are already waiting (the baseline for
//     receive); they are written with the timer stopped.
func BenchmarkCall(b *testing.B) {
	msg := make([]byte, 64)
	ports := func(b *testing.B) (*iox.Publisher, *iox.Subscriber) {
		ns := newNamespace(b)
		node := ns.node(b)
		svc, err := node.PublishSubscribe("call", iox.BufferSize(1024), iox.SafeOverflow(true))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { svc.Close() })
		sub, err := svc.Subscriber()
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { sub.Close() })
		pub, err := svc.Publisher()
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { pub.Close() })
		return pub, sub
	}
	b.Run("send", func(b *testing.B) {
		pub, _ := ports(b)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := pub.Send(msg); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("receive", func(b *testing.B) {
		pub, sub := ports(b)
		buf := make([]byte, 64)
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			if _, err := pub.Send(msg); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			if _, ok, err := sub.TryReceive(buf); err != nil || !ok {
				b.Fatalf("receive: %v %v", ok, err)
			}
		}
	})
	sockets := func(b *testing.B) (net.Conn, net.Conn) {
		fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
		if err != nil {
			b.Fatal(err)
		}
		conn := func(fd int) net.Conn {
			f := os.NewFile(uintptr(fd), "uds")
			c, err := net.FileConn(f)
			f.Close()
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { c.Close() })
			return c
		}
		return conn(fds[0]), conn(fds[1])
	}
	b.Run("uds-write", func(b *testing.B) {
		w, r := sockets(b)
		go io.Copy(io.Discard, r)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := w.Write(msg); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("uds-read", func(b *testing.B) {
		w, r := sockets(b)
		buf := make([]byte, 64)
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			if _, err := w.Write(msg); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			if _, err := io.ReadFull(r, buf); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// ---------------------------------------------------------------------------
// many idle pairs, opening, crash detection
// ---------------------------------------------------------------------------

// idlePairs is how many pairs BenchmarkIdlePairs keeps open: as many as fit in
// this machine's limit of 20,000 file descriptors per process (a hard limit
// that not even root may raise in its sandbox), since each end of a pair holds
// about 20 (iceoryx2 keeps a static-config and a dynamic-config descriptor per
// service handle and a tag file per port; a pair end opens four services and
// four ports; its wait words hold no descriptor).
const idlePairs = 800

// BenchmarkIdlePairs opens idlePairs pairs between this process and a child,
// sends one message each way on every pair (so that both ends know each other),
// then watches both processes over an idle window, as BenchmarkIdleCPU does:
// cpu%-self and cpu%-peer (percent of one core), csw/s-self and csw/s-peer
// (context switches per second), and goroutines/pair in this process.
//
// The namespace's root folder is under /dev/shm, only to open the pairs faster
// (see BenchmarkOpenPair); the idle cost does not depend on it.
//
// Each end of a pair holds about 20 file descriptors (shared-memory segments,
// sockets, locks), so both processes raise their descriptor limit first when
// they may (root may raise the hard limit too).
func BenchmarkIdlePairs(b *testing.B) {
	raiseFileLimit()
	b.Cleanup(func() { os.Remove("/dev/shm/ioxt") })
	ns := newNamespaceIn(b, "/dev/shm/ioxt")
	node := ns.node(b)
	c := spawn(b, ns, "bench-idle-pairs", "IOX_COUNT="+strconv.Itoa(idlePairs))
	c.expect("ready")
	before := runtime.NumGoroutine()
	ctx := benchContext(b)
	pairs := make([]*iox.Pair[[]byte], 0, idlePairs)
	b.Cleanup(func() {
		for _, p := range pairs {
			p.Close()
		}
	})
	opening := time.Now()
	for i := range idlePairs {
		p, err := iox.OpenPair(ctx, node, fmt.Sprintf("idle-%d", i))
		if err != nil {
			b.Fatal(err)
		}
		pairs = append(pairs, p)
	}
	b.Logf("opened %d pairs in %v", idlePairs, time.Since(opening))
	c.say("open")
	for _, p := range pairs {
		if err := p.Send(ctx, []byte("hello")); err != nil {
			b.Fatal(err)
		}
		if _, err := p.Recv(ctx); err != nil {
			b.Fatal(err)
		}
	}
	c.expect("exchanged")
	time.Sleep(idleSettle) // part of the measurement: the window starts after the start-up
	debug.FreeOSMemory()
	goroutines := runtime.NumGoroutine() - before
	watchIdle(b, c, idleWindow())
	for _, p := range pairs {
		if err := p.Err(); err != nil {
			b.Fatalf("a pair did not stay open: %v", err)
		}
	}
	b.ReportMetric(float64(goroutines)/idlePairs, "goroutines/pair")
	c.say("close")
	for _, p := range pairs {
		p.Recv(ctx) // the child's bye: its Close then knows everything arrived
		if err := p.Close(); err != nil {
			b.Fatalf("close: %v", err)
		}
	}
	pairs = nil
	c.wait()
}

// childIdlePairs opens IOX_COUNT pairs idle-<i>, echoes one message on each,
// then reports its CPU use between "start" and "stop" like childIdle.
func childIdlePairs() error {
	raiseFileLimit()
	n, err := benchEnvInt("IOX_COUNT")
	if err != nil {
		return err
	}
	node, err := nsFromEnv().childNode()
	if err != nil {
		return err
	}
	defer node.Close()
	fmt.Println("ready")
	if cmd := parentSays(); cmd != "open" {
		return fmt.Errorf("got %q, want open", cmd)
	}
	ctx := context.Background()
	pairs := make([]*iox.Pair[[]byte], 0, n)
	defer func() {
		for _, p := range pairs {
			p.Close()
		}
	}()
	for i := range n {
		p, err := iox.OpenPair(ctx, node, fmt.Sprintf("idle-%d", i))
		if err != nil {
			return err
		}
		pairs = append(pairs, p)
	}
	for _, p := range pairs {
		m, err := p.Recv(ctx)
		if err != nil {
			return err
		}
		if err := p.Send(ctx, m); err != nil {
			return err
		}
	}
	fmt.Println("exchanged")
	return reportIdle(func() error {
		for _, p := range pairs {
			if err := p.Close(); err != nil {
				return err
			}
		}
		pairs = nil
		return nil
	})
}

// raiseFileLimit lifts this process's descriptor limit to 64 Ki where it may.
func raiseFileLimit() {
	var lim syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim) != nil || lim.Cur >= 1<<16 {
		return
	}
	want := syscall.Rlimit{Cur: 1 << 16, Max: max(lim.Max, 1<<16)}
	if syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want) != nil {
		want.Max = lim.Max
		want.Cur = lim.Max
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want)
	}
}

// BenchmarkOpenPair measures OpenPair of an end whose peer is already there
// (one op = one open; the child opened b.N pairs first), with the median and
// 99th percentile of the single opens (p50-ns, p99-ns). iceoryx2 creates a few
// small files per port under its root folder (/tmp/iceoryx2 by default), so
// the time depends on that file system: "disk" keeps the root on /tmp as the
// other benchmarks do, "tmpfs" puts it under /dev/shm.
func BenchmarkOpenPair(b *testing.B) {
	b.Run("disk", func(b *testing.B) { benchOpenPair(b, newNamespace(b)) })
	b.Run("tmpfs", func(b *testing.B) {
		b.Cleanup(func() { os.Remove("/dev/shm/ioxt") })
		benchOpenPair(b, newNamespaceIn(b, "/dev/shm/ioxt"))
	})
}

func benchOpenPair(b *testing.B, ns namespace) {
	node := ns.node(b)
	c := spawn(b, ns, "bench-open-pairs", "IOX_COUNT="+strconv.Itoa(b.N))
	c.expect("ready")
	ctx := benchContext(b)
	pairs := make([]*iox.Pair[[]byte], 0, b.N)
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		start := time.Now()
		p, err := iox.OpenPair(ctx, node, fmt.Sprintf("open-%d", i))
		if err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
		pairs = append(pairs, p)
	}
	b.StopTimer()
	reportPercentiles(b, lat)
	c.say("close")
	for _, p := range pairs {
		p.Recv(ctx) // the child's bye
		p.Close()
	}
	c.wait()
}

// childOpenPairs opens IOX_COUNT pairs open-<i>, says ready, and closes them
// when the parent says close.
func childOpenPairs() error {
	n, err := benchEnvInt("IOX_COUNT")
	if err != nil {
		return err
	}
	node, err := nsFromEnv().childNode()
	if err != nil {
		return err
	}
	defer node.Close()
	pairs := make([]*iox.Pair[[]byte], 0, n)
	for i := range n {
		p, err := iox.OpenPair(context.Background(), node, fmt.Sprintf("open-%d", i))
		if err != nil {
			return err
		}
		pairs = append(pairs, p)
	}
	fmt.Println("ready")
	parentSays()
	for _, p := range pairs {
		p.Close()
	}
	return nil
}

// BenchmarkCrashDetect measures the time from SIGKILL of a pair's peer process
// to the pair's Done (one op = one kill; reported as the mean, p50-ns and
// p99-ns of those times alone: starting the children is not timed).
func BenchmarkCrashDetect(b *testing.B) {
	ns := newNamespace(b)
	node := ns.node(b)
	ctx := benchContext(b)
	lat := make([]time.Duration, 0, b.N)
	b.StopTimer()
	for i := range b.N {
		name := fmt.Sprintf("crash-%d", i)
		p, err := iox.OpenPair(ctx, node, name)
		if err != nil {
			b.Fatal(err)
		}
		c := spawn(b, ns, "bench-echo-pair", "IOX_SERVICE="+name, "IOX_BENCH_MODE=call")
		c.expect("ready")
		if err := p.Send(ctx, []byte("ping")); err != nil {
			b.Fatal(err)
		}
		if _, err := p.Recv(ctx); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		start := time.Now()
		c.cmd.Process.Kill()
		select {
		case <-p.Done():
		case <-time.After(20 * time.Second):
			b.Fatal("crash not detected within 20 s")
		}
		lat = append(lat, time.Since(start))
		b.StopTimer()
		if !errors.Is(p.Err(), iox.ErrPeerCrashed) {
			b.Fatalf("pair ended with %v", p.Err())
		}
		p.Close()
		<-c.done
		c.done <- nil
	}
	var sum time.Duration
	for _, d := range lat {
		sum += d
	}
	b.ReportMetric(float64(sum.Nanoseconds())/float64(len(lat)), "ns/op")
	reportPercentiles(b, lat)
}
