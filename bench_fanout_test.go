package iox_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/iox-go/iox"
)

// fanoutReaders is how many processes receive every message in BenchmarkFanout.
const fanoutReaders = 4

// fanoutSizes are BenchmarkFanout's message sizes.
var fanoutSizes = []benchSize{{"4KiB", 4 << 10}, {"1MiB", 1 << 20}}

// fanoutDepth is the subscriber buffer of the ports case: smaller than
// queueDepth for large messages, since each of the readers has one and the
// publisher's pool holds them all (4 × 16 × 1 MiB).
func fanoutDepth(size int) int { return min(256, max(8, (16<<20)/size)) }

// BenchmarkFanout measures one publisher sending to fanoutReaders reader
// processes, each of which must get every message (one op = one message, sent
// to all; MB/s counts each message once). The timer covers sending b.N
// messages until every reader reports it has all of them.
//
//   - uds: a Unix stream socket to each reader; each message is written to the
//     four sockets in turn, as a server broadcasting to its clients would.
//   - pubsub: Pub.Send on a lossless Pub with default settings; each reader
//     process takes the messages from a Sub's In, recycling the buffers
//     (the default recycling), as in BenchmarkThroughput.
//   - ports-zerocopy: Publisher.Loan + SampleMut.Send of a sample in which the
//     sender writes only its sequence number; each reader borrows every sample,
//     checks that number in place and releases it (BenchmarkThroughput's
//     ports-zerocopy with four subscribers). The raw ports have no lossless
//     back-pressure for several subscribers (FailWhenFull may have reached some
//     of them when it fails), so the readers report their progress on a second
//     service every quarter of their buffer, and the sender keeps at most a
//     buffer's worth of messages ahead of the slowest reader. A send that still
//     finds a full reader fails the benchmark. A reader that finds nothing
//     yields the processor (sched_yield) before it looks again.
//
// Files built with other tags add cases through fanoutCases.
func BenchmarkFanout(b *testing.B) {
	for _, tc := range fanoutCases {
		b.Run(tc.name, func(b *testing.B) {
			for _, s := range fanoutSizes {
				b.Run(s.name, func(b *testing.B) { tc.run(b, s.size) })
			}
		})
	}
}

// fanoutCases are BenchmarkFanout's cases in the order they run.
var fanoutCases = []throughputCase{
	{name: string(kernelUDS), run: benchFanoutUDS},
	{name: "pubsub", run: benchFanoutPubSub},
	{name: "ports-zerocopy", run: benchFanoutPorts},
}

func benchFanoutUDS(b *testing.B, size int) {
	ns := newNamespace(b)
	conns, children := openKernel(b, ns, kernelUDS, "bench-sink-kernel", fanoutReaders, "IOX_BENCH_SIZE="+strconv.Itoa(size))
	msg := pattern(size, 0)
	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.ResetTimer()
	for _, c := range children {
		c.say(strconv.Itoa(b.N))
	}
	for range b.N {
		for _, conn := range conns {
			if _, err := conn.Write(msg); err != nil {
				b.Fatalf("write: %v", err)
			}
		}
	}
	for _, c := range children {
		c.expectCount(b.N)
	}
	b.StopTimer()
	for _, c := range children {
		c.wait()
	}
}

func benchFanoutPubSub(b *testing.B, size int) {
	ns := newNamespace(b)
	pub, err := iox.OpenPub(context.Background(), ns.node(b), "fan")
	if err != nil {
		b.Fatal(err)
	}
	var children []*child
	for range fanoutReaders {
		children = append(children, spawn(b, ns, "bench-sink-sub", "IOX_SERVICE=fan", "IOX_BENCH_SIZE="+strconv.Itoa(size)))
	}
	b.Cleanup(func() { pub.Close() }) // before the children's cleanups
	for _, c := range children {
		c.expect("ready")
	}
	eventually(b, "the subscribers", func() bool { return pub.Subscribers() == fanoutReaders })
	ctx := benchContext(b)
	msg := pattern(size, 0)
	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.ResetTimer()
	for _, c := range children {
		c.say(strconv.Itoa(b.N))
	}
	for range b.N {
		if err := pub.Send(ctx, msg); err != nil {
			b.Fatalf("send: %v", err)
		}
	}
	for _, c := range children {
		c.expectCount(b.N)
	}
	b.StopTimer()
	if err := pub.Close(); err != nil {
		b.Fatalf("close publisher: %v", err)
	}
	for _, c := range children {
		c.wait()
	}
}

// fanAck is a reader's progress report: its index and how many messages it has
// taken, 8 bytes each, little-endian.
const fanAckSize = 16

// fanAckOptions make the progress service: a reader's newer report replaces its
// older one, which it includes.
func fanAckOptions() []iox.Option {
	return []iox.Option{iox.MaxPublishers(fanoutReaders), iox.MaxSubscribers(1), iox.BufferSize(4), iox.SafeOverflow(true)}
}

func benchFanoutPorts(b *testing.B, size int) {
	ns := newNamespace(b)
	node := ns.node(b)
	depth := fanoutDepth(size)
	svc, err := node.PublishSubscribe("fan", tpServiceOptions(fanoutReaders, depth)...)
	if err != nil {
		b.Fatal(err)
	}
	defer svc.Close()
	pub, err := svc.Publisher(iox.FailWhenFull(0), iox.InitialMessageSize(size), iox.MaxMessageSize(size))
	if err != nil {
		b.Fatal(err)
	}
	defer pub.Close()
	ackSvc, err := node.PublishSubscribe("fan-ack", fanAckOptions()...)
	if err != nil {
		b.Fatal(err)
	}
	defer ackSvc.Close()
	acks, err := ackSvc.Subscriber()
	if err != nil {
		b.Fatal(err)
	}
	defer acks.Close()
	every := max(1, depth/4)
	var children []*child
	for i := range fanoutReaders {
		c := spawn(b, ns, "bench-sink-ports", "IOX_SERVICE=fan", "IOX_BENCH_SIZE="+strconv.Itoa(size),
			"IOX_BENCH_BORROW=1", "IOX_BENCH_SUBS="+strconv.Itoa(fanoutReaders), "IOX_BENCH_DEPTH="+strconv.Itoa(depth),
			"IOX_BENCH_ACK="+strconv.Itoa(every), "IOX_BENCH_INDEX="+strconv.Itoa(i))
		children = append(children, c)
	}
	for _, c := range children {
		c.expect("ready")
	}

	var taken [fanoutReaders]int // what each reader last reported
	slowest := func() int { return min(taken[0], taken[1], taken[2], taken[3]) }
	report := make([]byte, fanAckSize)
	// waitForRoom reads progress reports until the slowest reader is fewer than
	// depth messages behind sent, yielding the processor between empty polls.
	waitForRoom := func(sent int) {
		deadline := time.Now().Add(benchDeadline)
		for polls := 0; sent-slowest() >= depth; polls++ {
			n, ok, err := acks.TryReceive(report)
			switch {
			case err != nil:
				b.Fatalf("progress: %v", err)
			case ok && n == fanAckSize:
				if i := binary.LittleEndian.Uint64(report); i < fanoutReaders {
					taken[i] = max(taken[i], int(binary.LittleEndian.Uint64(report[8:])))
				}
				continue
			case polls%1024 == 1023 && time.Now().After(deadline):
				b.Fatalf("readers stuck at %v of %d messages", taken, sent)
			}
			unix.Syscall(unix.SYS_SCHED_YIELD, 0, 0, 0) // the readers need the processor

		}
	}
	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.ResetTimer()
	for _, c := range children {
		c.say(strconv.Itoa(b.N))
	}
	for seq := range b.N {
		waitForRoom(seq)
		s, err := pub.Loan(size)
		if err != nil {
			b.Fatalf("loan: %v", err)
		}
		if p := s.Bytes(); len(p) >= 8 {
			binary.LittleEndian.PutUint64(p, uint64(seq))
		}
		if k, err := s.Send(); err != nil || k != fanoutReaders {
			b.Fatalf("message %d reached %d of %d readers: %v", seq, k, fanoutReaders, err)
		}
	}
	for _, c := range children {
		c.expectCount(b.N)
	}
	b.StopTimer()
	for _, c := range children {
		c.wait()
	}
}

// fanAcker is a ports reader's progress reporter (IOX_BENCH_ACK = every how
// many messages, IOX_BENCH_INDEX = its index); nil when the reader reports
// nothing.
type fanAcker struct {
	svc   *iox.PubSubService
	pub   *iox.Publisher
	index uint64
	every int
	buf   []byte
}

func newFanAcker(node *iox.Node) (*fanAcker, error) {
	if os.Getenv("IOX_BENCH_ACK") == "" {
		return nil, nil
	}
	every, err := benchEnvInt("IOX_BENCH_ACK")
	if err != nil {
		return nil, err
	}
	index, err := benchEnvInt("IOX_BENCH_INDEX")
	if err != nil {
		return nil, err
	}
	svc, err := node.PublishSubscribe(os.Getenv("IOX_SERVICE")+"-ack", append(fanAckOptions(), iox.OpenOnly())...)
	if err != nil {
		return nil, err
	}
	pub, err := svc.Publisher(iox.InitialMessageSize(fanAckSize), iox.MaxMessageSize(fanAckSize))
	if err != nil {
		svc.Close()
		return nil, err
	}
	return &fanAcker{svc: svc, pub: pub, index: uint64(index), every: max(1, every), buf: make([]byte, fanAckSize)}, nil
}

// took reports got taken messages every a.every messages.
func (a *fanAcker) took(got int) error {
	if a == nil || got%a.every != 0 {
		return nil
	}
	binary.LittleEndian.PutUint64(a.buf, a.index)
	binary.LittleEndian.PutUint64(a.buf[8:], uint64(got))
	k, err := a.pub.Send(a.buf)
	if err == nil && k != 1 {
		err = errors.New("the sender's progress subscriber is gone")
	}
	if err != nil {
		return fmt.Errorf("progress report: %w", err)
	}
	return nil
}

// idle gives the processor to another thread or process when a fan-out
// reader found nothing: four readers that only spin would leave the sender of
// a two-core machine little time to send.
func (a *fanAcker) idle() {
	if a != nil {
		unix.Syscall(unix.SYS_SCHED_YIELD, 0, 0, 0)
	}
}

func (a *fanAcker) close() {
	if a != nil {
		a.pub.Close()
		a.svc.Close()
	}
}
