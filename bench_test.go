package iox_test

// Benchmarks of the low-level ports against the baselines a Go developer would
// otherwise use, measured in the same run: a Unix domain socket between the same two
// processes, a buffered Go channel within one process, and, for latency, the floor
// that iceoryx2 itself reaches from Rust (internal/native/src/bin/iox_floor.rs).
//
// The far side of every cross-process benchmark is a copy of the test binary in a
// child role (see TestMain). Every run of a benchmark function uses its own
// namespace and child, and removes both before the next run; setup is outside the
// timer. `make bench` runs them all and prints a table of ratios
// (cmd/benchtable).

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/iox-go/iox"
)

func init() {
	children["bench-echo-uds"] = childEchoUDS
	children["bench-echo-ports"] = childEchoPorts
	children["bench-sink-uds"] = childSinkUDS
	children["bench-sink-ports"] = childSinkPorts
}

// rtSize is the message size of the round-trip benchmarks.
const rtSize = 64

// rtWarmup round trips run before the timer starts.
const rtWarmup = 1000

// floorMinIterations is the fewest round trips the native floor measures, however
// small b.N is.
const floorMinIterations = 10000

// throughputSizes are the message sizes of BenchmarkThroughput.
var throughputSizes = []struct {
	name string
	size int
}{{"64B", 64}, {"4KiB", 4 << 10}, {"1MiB", 1 << 20}}

// queueDepth is how many messages may be in flight in the throughput benchmarks:
// the subscriber's buffer, and the Go channel's capacity. Large messages get a
// smaller queue so that the shared-memory pool stays around 64 MiB.
func queueDepth(size int) int { return min(256, max(16, (64<<20)/size)) }

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
//   - uds: ping-pong over a Unix domain stream socket, blocking reads.
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
func BenchmarkRoundTrip(b *testing.B) {
	b.Run("uds", benchRoundTripUDS)
	b.Run("ports", benchRoundTripPorts)
	b.Run("native-floor", benchRoundTripFloor)
}

func benchRoundTripUDS(b *testing.B) {
	ns := newNamespace(b)
	addr := udsAddr(ns, "rt")
	ln, err := net.Listen("unix", addr)
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	c := spawn(b, ns, "bench-echo-uds", "IOX_BENCH_ADDR="+addr)
	conn := acceptOne(b, ln)
	defer conn.Close()
	c.expect("ready")

	msg, reply := pattern(rtSize, 0), make([]byte, rtSize)
	roundTrip := func() {
		if _, err := conn.Write(msg); err != nil {
			b.Fatalf("write: %v", err)
		}
		if _, err := io.ReadFull(conn, reply); err != nil {
			b.Fatalf("read: %v", err)
		}
	}
	for range rtWarmup {
		roundTrip()
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		roundTrip()
	}
	b.StopTimer()
	conn.Close() // the child stops at end of stream
	c.wait()
}

// childEchoUDS writes back everything it reads until the parent hangs up.
func childEchoUDS() error {
	conn, err := net.Dial("unix", os.Getenv("IOX_BENCH_ADDR"))
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
func rtServiceOptions() []iox.ServiceOption {
	return []iox.ServiceOption{iox.MaxPublishers(1), iox.MaxSubscribers(1), iox.BufferSize(1), iox.SafeOverflow(true)}
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
	for range rtWarmup {
		roundTrip()
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		roundTrip()
	}
	b.StopTimer()
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

// ---------------------------------------------------------------------------
// throughput
// ---------------------------------------------------------------------------

// BenchmarkThroughput measures one-way messages from this process to a receiver
// that counts them (one op = one message; MB/s from b.SetBytes). The timer covers
// sending b.N messages until the receiver reports it has all of them. No message
// is lost: a full receiver makes the sender wait.
//
//   - uds: conn.Write of each message to a Unix stream socket; the child reads the
//     byte stream in chunks of up to 64 KiB.
//   - ports-copy: Publisher.Send (copy into shared memory) on a service without
//     safe overflow, FailWhenFull(0), retried after runtime.Gosched on
//     ErrWouldBlock; the child drains with Subscriber.ReceiveBatch.
//   - ports-loan: Publisher.Loan + SampleMut.Send on the same service. The sender
//     writes an 8-byte sequence number in place and leaves the rest of the sample
//     as it is: a producer fills the loaned memory instead of its own buffer, so
//     what the loan saves is ports-copy's memcpy (the receiver still copies out).
//   - chan: a buffered Go channel to a goroutine in this process; buffers come
//     from a free list and the sender copies the message into one (a hand-over of
//     ownership, no allocation), the receiver hands them back.
//
// queueDepth sets both the subscriber buffer and the channel capacity.
func BenchmarkThroughput(b *testing.B) {
	for _, impl := range []struct {
		name string
		run  func(*testing.B, int)
	}{
		{"uds", benchThroughputUDS},
		{"ports-copy", func(b *testing.B, size int) { benchThroughputPorts(b, size, false) }},
		{"ports-loan", func(b *testing.B, size int) { benchThroughputPorts(b, size, true) }},
		{"chan", benchThroughputChan},
	} {
		b.Run(impl.name, func(b *testing.B) {
			for _, s := range throughputSizes {
				b.Run(s.name, func(b *testing.B) { impl.run(b, s.size) })
			}
		})
	}
}

// expectCount waits for the child's "got N" and checks N.
func (c *child) expectCount(n int) {
	c.t.Helper()
	c.expect(fmt.Sprintf("got %d", n))
}

func benchThroughputUDS(b *testing.B, size int) {
	ns := newNamespace(b)
	addr := udsAddr(ns, "tp")
	ln, err := net.Listen("unix", addr)
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	c := spawn(b, ns, "bench-sink-uds", "IOX_BENCH_ADDR="+addr, "IOX_BENCH_SIZE="+strconv.Itoa(size))
	conn := acceptOne(b, ln)
	defer conn.Close()
	c.expect("ready")

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

// childSinkUDS reads the number of messages from the parent, then that many
// messages of IOX_BENCH_SIZE bytes from the socket, and says "got N".
func childSinkUDS() error {
	size, err := benchEnvInt("IOX_BENCH_SIZE")
	if err != nil {
		return err
	}
	conn, err := net.Dial("unix", os.Getenv("IOX_BENCH_ADDR"))
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

// tpServiceOptions make the lossless service of the throughput benchmarks.
func tpServiceOptions(size int) []iox.ServiceOption {
	return []iox.ServiceOption{iox.MaxPublishers(1), iox.MaxSubscribers(1),
		iox.BufferSize(queueDepth(size)), iox.SafeOverflow(false)}
}

func benchThroughputPorts(b *testing.B, size int, loan bool) {
	ns := newNamespace(b)
	node := ns.node(b)
	svc, err := node.PublishSubscribe("tp", tpServiceOptions(size)...)
	if err != nil {
		b.Fatal(err)
	}
	defer svc.Close()
	pub, err := svc.Publisher(iox.FailWhenFull(0), iox.InitialMessageSize(size), iox.MaxMessageSize(size))
	if err != nil {
		b.Fatal(err)
	}
	defer pub.Close()
	c := spawn(b, ns, "bench-sink-ports", "IOX_SERVICE=tp", "IOX_BENCH_SIZE="+strconv.Itoa(size))
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
// (busy-polling), and says "got N".
func childSinkPorts() error {
	size, err := benchEnvInt("IOX_BENCH_SIZE")
	if err != nil {
		return err
	}
	node, err := nsFromEnv().childNode()
	if err != nil {
		return err
	}
	defer node.Close()
	svc, err := node.PublishSubscribe(os.Getenv("IOX_SERVICE"), append(tpServiceOptions(size), iox.OpenOnly())...)
	if err != nil {
		return err
	}
	defer svc.Close()
	sub, err := svc.Subscriber()
	if err != nil {
		return err
	}
	defer sub.Close()
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
	room := min(queueDepth(size)*size, 8<<20)
	batch := iox.NewBatch(room, max(room/max(size, 1), 1))
	got := 0
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

// The hot paths of the ports must not allocate: one native call per message into
// a buffer the caller reuses.
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

	msg, buf := pattern(64, 1), make([]byte, 64)
	batch := iox.NewBatch(1024, 4)
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
	drain := func() {
		for {
			_, ok, err := sub.TryReceive(buf)
			if err != nil {
				t.Fatal(err)
			}
			if !ok {
				return
			}
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
