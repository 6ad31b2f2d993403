package iox_test

// The zero-copy cases of the channel adapters: BenchmarkThroughput/pair-zerocopy
// (every size of sweepSizes, a line of the throughput plot) and
// BenchmarkFanout/zerocopy. The sender loans each message (Loan), writes its
// 8-byte sequence number in place and leaves the rest as it is, as a producer
// that fills the loaned memory instead of its own buffer would, then sends it
// (SendLoan); the receiver takes a view of it in place (RecvView), checks the
// sequence number and releases it: no copy on either side.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strconv"
	"testing"

	"github.com/iox-go/iox"
)

func init() {
	children["bench-sink-pair-view"] = childSinkPairView
	children["bench-sink-sub-view"] = childSinkSubView
	throughputCases = append(throughputCases, throughputCase{"pair-zerocopy", true, benchThroughputPairZeroCopy})
	fanoutCases = append(fanoutCases, throughputCase{name: "zerocopy", run: benchFanoutZeroCopy})
}

// loaner is the sending side of a zero-copy channel: *iox.Pair and *iox.Pub.
type loaner interface {
	Loan(ctx context.Context, n int) (*iox.Loan, error)
	SendLoan(ctx context.Context, l *iox.Loan) error
}

// sendLoaned loans a message of size bytes from ch, writes seq into its first 8
// bytes and sends it.
func sendLoaned(ctx context.Context, ch loaner, size, seq int) error {
	l, err := ch.Loan(ctx, size)
	if err != nil {
		return fmt.Errorf("loan: %w", err)
	}
	if p := l.Bytes(); len(p) >= 8 {
		binary.LittleEndian.PutUint64(p, uint64(seq))
	}
	if err := ch.SendLoan(ctx, l); err != nil {
		return fmt.Errorf("send loan: %w", err)
	}
	return nil
}

// viewer is the receiving side of a zero-copy channel: *iox.Pair and *iox.Sub.
type viewer interface {
	RecvView(ctx context.Context) (*iox.View, error)
}

// takeViews receives n messages of size bytes from ch as views, checks each
// one's length and sequence number in place, releases it and says "got N".
func takeViews(ctx context.Context, ch viewer, n, size int) error {
	for got := range n {
		v, err := ch.RecvView(ctx)
		if err != nil {
			return fmt.Errorf("after %d of %d messages: %w", got, n, err)
		}
		m := v.Bytes()
		bad := len(m) != size || size >= 8 && binary.LittleEndian.Uint64(m) != uint64(got)
		v.Release()
		if bad {
			return fmt.Errorf("message %d: %d bytes or out of order", got, len(m))
		}
	}
	fmt.Printf("got %d\n", n)
	return nil
}

func benchThroughputPairZeroCopy(b *testing.B, size int) {
	ns := newNamespace(b)
	p, c := openBenchPair(b, ns, "tp", "bench-sink-pair-view", false, "IOX_BENCH_SIZE="+strconv.Itoa(size))
	ctx := benchContext(b)
	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.ResetTimer()
	c.say(strconv.Itoa(b.N))
	for seq := range b.N {
		if err := sendLoaned(ctx, p, size, seq); err != nil {
			b.Fatal(err)
		}
	}
	c.expectCount(b.N)
	b.StopTimer()
	closePair(b, p)
	c.wait()
}

// childSinkPairView is childSinkPair with RecvView instead of In.
func childSinkPairView() error {
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
	ctx := context.Background()
	if err := takeViews(ctx, p, n, size); err != nil {
		return err
	}
	if v, err := p.RecvView(ctx); err == nil {
		v.Release()
		return fmt.Errorf("more than %d messages", n)
	}
	if !errors.Is(p.Err(), iox.ErrPeerClosed) {
		return fmt.Errorf("pair ended with %v", p.Err())
	}
	return nil
}

func benchFanoutZeroCopy(b *testing.B, size int) {
	ns := newNamespace(b)
	pub, err := iox.OpenPub(context.Background(), ns.node(b), "fan")
	if err != nil {
		b.Fatal(err)
	}
	var children []*child
	for range fanoutReaders {
		children = append(children, spawn(b, ns, "bench-sink-sub-view", "IOX_SERVICE=fan", "IOX_BENCH_SIZE="+strconv.Itoa(size)))
	}
	b.Cleanup(func() { pub.Close() }) // before the children's cleanups
	for _, c := range children {
		c.expect("ready")
	}
	eventually(b, "the subscribers", func() bool { return pub.Subscribers() == fanoutReaders })
	ctx := benchContext(b)
	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.ResetTimer()
	for _, c := range children {
		c.say(strconv.Itoa(b.N))
	}
	for seq := range b.N {
		if err := sendLoaned(ctx, pub, size, seq); err != nil {
			b.Fatal(err)
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

// childSinkSubView is childSinkSub with RecvView instead of In.
func childSinkSubView() error {
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
	if err := takeViews(context.Background(), sub, n, size); err != nil {
		return err
	}
	parentSays() // the publisher closes first and waits until this side took everything
	return sub.Close()
}
