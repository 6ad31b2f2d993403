package iox_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/iox-go/iox"
)

func init() {
	children["pair-stream"] = childPairStream
	children["pair-echo"] = childPairEcho
	children["pair-send-close"] = childPairSendClose
	children["pair-flood"] = childPairFlood
	children["pair-packed"] = childPairPacked
}

// burstOptions make a pair whose peer holds 4 samples while the sender queues
// thousands of messages: what waits is packed in the queue, into samples
// larger than the largest message either end accepts.
func burstOptions() []iox.Option {
	return []iox.Option{iox.BufferSize(4), iox.WithChanCap(4096), iox.MaxMessageSize(4 << 10)}
}

// childPairPacked sends IOX_COUNT messages of IOX_BENCH_SIZE bytes at once,
// says "sent" once every Send returned, and closes after the parent said so.
func childPairPacked() error {
	size, n, node, err := burstChild()
	if err != nil {
		return err
	}
	defer node.Close()
	p, err := openChildPair(node, burstOptions()...)
	if err != nil {
		return err
	}
	defer p.Close()
	ctx := context.Background()
	for i := range uint64(n) {
		if err := p.Send(ctx, burstMsg(i, size)); err != nil {
			return fmt.Errorf("send %d: %w", i, err)
		}
	}
	fmt.Println("sent")
	parentSays()
	return p.Close()
}

// TestPairPacksWaitingMessagesLarge: 4 KiB messages that wait in the sender's
// queue (its peer reads nothing yet) go out packed up to 56 KiB to a sample,
// beyond the samples the pair starts with: the receiver grows its batch once
// to take them, and every message arrives whole and in order, across
// processes.
func TestPairPacksWaitingMessagesLarge(t *testing.T) {
	const n, size = 2000, 4 << 10
	ns := newNamespace(t)
	node := ns.node(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p, err := iox.OpenPair(ctx, node, "burst", append(childPairOptions(), burstOptions()...)...)
	require.NoError(t, err)
	defer p.Close()
	start := p.LargestTake()
	c := spawn(t, ns, "pair-packed", "IOX_SERVICE=burst", "IOX_COUNT="+strconv.Itoa(n), "IOX_BENCH_SIZE="+strconv.Itoa(size))
	c.expect("sent")
	for i := range uint64(n) {
		m, err := p.Recv(ctx)
		require.NoError(t, err, "message %d", i)
		require.Equal(t, burstMsg(i, size), m, "message %d", i)
	}
	assert.Greater(t, p.LargestTake(), start, "packs larger than the first samples arrived")
	c.say("done")
	_, err = p.Recv(ctx) // the child's bye: its Close then knows everything arrived
	require.ErrorIs(t, err, io.EOF)
	c.wait()
}

// childPairFlood sends sequence numbers until it is killed.
func childPairFlood() error {
	node, err := nsFromEnv().childNode()
	if err != nil {
		return err
	}
	defer node.Close()
	ctx := context.Background()
	p, err := iox.OpenPair(ctx, node, os.Getenv("IOX_SERVICE"), iox.BufferSize(8))
	if err != nil {
		return err
	}
	defer p.Close()
	for i := uint64(0); ; i++ {
		if err := p.Send(ctx, seqMsg(i)); err != nil {
			return err
		}
	}
}

func childPairStream() error {
	node, err := nsFromEnv().childNode()
	if err != nil {
		return err
	}
	defer node.Close()
	n, _ := strconv.ParseUint(os.Getenv("IOX_COUNT"), 10, 64)
	ctx := context.Background()
	p, err := iox.OpenPair(ctx, node, os.Getenv("IOX_SERVICE"), iox.BufferSize(8), iox.WithChanCap(16))
	if err != nil {
		return err
	}
	if err := streamBoth(ctx, p, n); err != nil {
		p.Close()
		return err
	}
	fmt.Println("streamed")
	parentSays() // the parent has everything too
	return p.Close()
}

func TestPairStreamsBothWaysWithoutLossDuplicationOrReordering(t *testing.T) {
	n := uint64(1_000_000)
	if raceEnabled {
		n = 50_000 // the race detector slows every step ~20x
	}
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := context.Background()
	p, err := iox.OpenPair(ctx, node, "stream", iox.BufferSize(8), iox.WithChanCap(16))
	require.NoError(t, err)
	defer p.Close()
	c := spawn(t, ns, "pair-stream", "IOX_SERVICE=stream", "IOX_COUNT="+strconv.FormatUint(n, 10))
	start := time.Now()
	require.NoError(t, streamBoth(ctx, p, n))
	c.expect("streamed")
	t.Logf("%d messages each way in %v", n, time.Since(start))
	c.say("done")
	_, err = p.Recv(ctx) // the child's bye: its Close then knows everything arrived
	require.ErrorIs(t, err, io.EOF)
	c.wait()
}

// childPairEcho sends back every message until the parent closes the pair.
func childPairEcho() error {
	node, err := nsFromEnv().childNode()
	if err != nil {
		return err
	}
	defer node.Close()
	ctx := context.Background()
	p, err := iox.OpenPair(ctx, node, os.Getenv("IOX_SERVICE"))
	if err != nil {
		return err
	}
	defer p.Close()
	fmt.Println("ready")
	for m := range p.In() {
		if err := p.Send(ctx, m); err != nil {
			return err
		}
	}
	if !errors.Is(p.Err(), iox.ErrPeerClosed) {
		return fmt.Errorf("pair ended with %v", p.Err())
	}
	return nil
}

func TestPairSelectOverThreePairsAndAContext(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var pairs []*iox.Pair[[]byte]
	for i := 0; i < 3; i++ {
		name := fmt.Sprintf("select-%d", i)
		p, err := iox.OpenPair(ctx, node, name)
		require.NoError(t, err)
		pairs = append(pairs, p)
		spawn(t, ns, "pair-echo", "IOX_SERVICE="+name).expect("ready")
	}
	for round := 0; round < 20; round++ {
		k := round % 3
		msg := []byte(fmt.Sprintf("round %d to %d", round, k))
		select {
		case pairs[k].Out() <- msg:
		case <-time.After(20 * time.Second):
			t.Fatal("send blocked")
		}
		select {
		case m := <-pairs[0].In():
			assert.Equal(t, 0, k)
			assert.Equal(t, msg, m)
		case m := <-pairs[1].In():
			assert.Equal(t, 1, k)
			assert.Equal(t, msg, m)
		case m := <-pairs[2].In():
			assert.Equal(t, 2, k)
			assert.Equal(t, msg, m)
		case <-ctx.Done():
			t.Fatal("context ended")
		case <-time.After(20 * time.Second):
			t.Fatal("no echo")
		}
	}
	for _, p := range pairs {
		require.NoError(t, p.Close())
		assert.ErrorIs(t, p.Close(), iox.ErrClosed)
		assert.ErrorIs(t, p.Send(ctx, []byte("late")), iox.ErrClosed)
	}
}

// childPairSendClose queues IOX_COUNT messages, says "closing" and closes the
// pair right away.
func childPairSendClose() error {
	node, err := nsFromEnv().childNode()
	if err != nil {
		return err
	}
	defer node.Close()
	ctx := context.Background()
	n := envInt("IOX_COUNT")
	// The send queue holds every message, so that all Sends return while nobody
	// reads and Close begins with the queue full.
	p, err := iox.OpenPair(ctx, node, os.Getenv("IOX_SERVICE"), iox.BufferSize(4), iox.WithChanCap(n),
		iox.WithLinger(20*time.Second))
	if err != nil {
		return err
	}
	for i := 0; i < n; i++ {
		if err := p.Send(ctx, seqMsg(uint64(i))); err != nil {
			return err
		}
	}
	fmt.Println("closing")
	return p.Close()
}

func TestPairPeerCloseIsACleanEndAfterEveryMessage(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := context.Background()
	p, err := iox.OpenPair(ctx, node, "clean-end", iox.BufferSize(4))
	require.NoError(t, err)
	defer p.Close()
	c := spawn(t, ns, "pair-send-close", "IOX_SERVICE=clean-end", "IOX_COUNT=100")
	c.expect("closing") // the child's queue is full and it closes: nothing was read yet
	var got uint64
	for m := range p.In() {
		require.Equal(t, got, binary.LittleEndian.Uint64(m))
		got++
	}
	assert.Equal(t, uint64(100), got)
	assert.ErrorIs(t, p.Err(), iox.ErrPeerClosed)
	assert.ErrorIs(t, p.Err(), iox.ErrPeerGone)
	assert.ErrorIs(t, p.Send(ctx, []byte("x")), iox.ErrPeerClosed)
	c.wait()
}

func TestPairMessagesSentBeforeThePeerArriveLater(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := context.Background()
	a, err := iox.OpenPair(ctx, node, "early")
	require.NoError(t, err)
	defer a.Close()
	for i := 0; i < 10; i++ {
		require.NoError(t, a.Send(ctx, seqMsg(uint64(i))))
	}
	assert.False(t, a.Connected())
	// The queue's goroutine found nobody to deliver to and waits for the peer.
	waitParked(t, "iox.(*sender[...]).pump", 1)
	b, err := iox.OpenPair(ctx, node, "early")
	require.NoError(t, err)
	defer b.Close()
	for i := 0; i < 10; i++ {
		m, err := b.Recv(ctx)
		require.NoError(t, err)
		assert.Equal(t, uint64(i), binary.LittleEndian.Uint64(m))
	}
	eventually(t, "connected", a.Connected)
}

func TestPairThirdEndIsRefused(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := context.Background()
	a, err := iox.OpenPair(ctx, node, "two")
	require.NoError(t, err)
	defer a.Close()
	b, err := iox.OpenPair(ctx, node, "two")
	require.NoError(t, err)
	defer b.Close()
	_, err = iox.OpenPair(ctx, node, "two")
	assert.ErrorIs(t, err, iox.ErrPairFull)
}

func TestPairCancelDuringABlockedSend(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	life, stop := context.WithCancel(context.Background())
	p, err := iox.OpenPair(life, node, "blocked", iox.WithChanCap(0))
	require.NoError(t, err)
	defer p.Close()
	// no peer: the pump holds the first message, the second send blocks
	require.NoError(t, p.Send(context.Background(), []byte("held")))
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- p.Send(ctx, []byte("blocked")) }()
	waitParked(t, "iox.(*Pair[...]).Send", 1)
	cancel()
	select {
	case err := <-errc:
		assert.ErrorIs(t, err, context.Canceled)
	case <-time.After(20 * time.Second):
		t.Fatal("send ignored its context")
	}
	// cancelling the pair's own context ends it
	go func() { errc <- p.Send(context.Background(), []byte("blocked again")) }()
	waitParked(t, "iox.(*Pair[...]).Send", 1)
	stop()
	select {
	case err := <-errc:
		assert.ErrorIs(t, err, context.Canceled)
	case <-time.After(20 * time.Second):
		t.Fatal("send ignored the pair's end")
	}
	<-p.Done()
	assert.ErrorIs(t, p.Err(), context.Canceled)
	_, ok := <-p.In()
	assert.False(t, ok, "In is closed")
}

func TestPairInvalidInput(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := context.Background()
	_, err := iox.OpenPair(ctx, node, "")
	assert.ErrorIs(t, err, iox.ErrInvalidName)
	_, err = iox.OpenPair(ctx, node, string(make([]byte, 250)))
	assert.ErrorIs(t, err, iox.ErrInvalidName)
	_, err = iox.OpenPair(ctx, node, "bad-queue", iox.BufferSize(0))
	assert.ErrorIs(t, err, iox.ErrInvalidArgument)
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	_, err = iox.OpenPair(cancelled, node, "cancelled")
	assert.ErrorIs(t, err, context.Canceled)

	a, err := iox.OpenPair(ctx, node, "limits", iox.MaxMessageSize(16))
	require.NoError(t, err)
	defer a.Close()
	assert.ErrorIs(t, a.Send(ctx, make([]byte, 17)), iox.ErrMessageTooLarge)
	_, err = iox.OpenPairOf(ctx, node, "limits", mustFixed[point](t, "iox_test::Point"))
	assert.ErrorIs(t, err, iox.ErrIncompatibleType)
}

type point struct {
	X, Y int32
	Z    float64
}

func mustFixed[T any](t *testing.T, name string) iox.FixedCodec[T] {
	t.Helper()
	c, err := iox.Fixed[T](name)
	require.NoError(t, err)
	return c
}

func TestTypedPairCarriesFixedLayoutValues(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := context.Background()
	codec := mustFixed[point](t, "iox_test::Point")
	a, err := iox.OpenPairOf(ctx, node, "typed", codec)
	require.NoError(t, err)
	defer a.Close()
	b, err := iox.OpenPairOf(ctx, node, "typed", codec)
	require.NoError(t, err)
	defer b.Close()
	want := point{X: 1, Y: -2, Z: 3.5}
	require.NoError(t, a.Send(ctx, want))
	got, err := b.Recv(ctx)
	require.NoError(t, err)
	assert.Equal(t, want, got)

	_, err = iox.Fixed[struct{ S string }]("x")
	assert.ErrorIs(t, err, iox.ErrInvalidArgument)
}

func TestPairPeerCrashIsReportedAndARestartedPeerPairsAgain(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := context.Background()
	p, err := iox.OpenPair(ctx, node, "crash", iox.WithPeerTimeout(time.Second), iox.BufferSize(8))
	require.NoError(t, err)
	c := spawn(t, ns, "pair-flood", "IOX_SERVICE=crash")
	for i := uint64(0); i < 1000; i++ { // mid-stream: the peer keeps sending
		m, err := p.Recv(ctx)
		require.NoError(t, err)
		require.Equal(t, i, binary.LittleEndian.Uint64(m))
	}
	killed := time.Now()
	require.NoError(t, c.cmd.Process.Signal(syscall.SIGKILL))
	select {
	case <-p.Done():
	case <-time.After(20 * time.Second):
		t.Fatal("crash not detected")
	}
	t.Logf("crash detected after %v", time.Since(killed))
	for range p.In() { // what arrived before the crash is still delivered, then In closes
	}
	assert.ErrorIs(t, p.Err(), iox.ErrPeerCrashed)
	assert.ErrorIs(t, p.Send(ctx, []byte("x")), iox.ErrPeerCrashed)
	require.NoError(t, p.Close())

	// a restarted peer pairs again under the same name, no manual cleanup
	q, err := iox.OpenPair(ctx, node, "crash")
	require.NoError(t, err)
	defer q.Close()
	spawn(t, ns, "pair-echo", "IOX_SERVICE=crash").expect("ready")
	require.NoError(t, q.Send(ctx, []byte("again")))
	m, err := q.Recv(ctx)
	require.NoError(t, err)
	assert.Equal(t, []byte("again"), m)
}

func TestPairConcurrentUse(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := context.Background()
	a, err := iox.OpenPair(ctx, node, "conc")
	require.NoError(t, err)
	defer a.Close()
	b, err := iox.OpenPair(ctx, node, "conc")
	require.NoError(t, err)
	defer b.Close()
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 100; i++ {
				assert.NoError(t, a.Send(ctx, []byte{byte(g), byte(i)}))
			}
		}()
	}
	seen := map[[2]byte]bool{}
	for len(seen) < 400 {
		m, err := b.Recv(ctx)
		require.NoError(t, err)
		seen[[2]byte{m[0], m[1]}] = true
	}
	wg.Wait()
}

// TestStreamRecyclingAllocatesNothing: a reader that hands back every message
// it is done with allocates nothing per message with the default settings,
// also while a stream of small messages (packed many to a sample) runs ahead
// of it, and neither does the sender: on a pair and on a lossless
// publish-subscribe channel. What remains is a few objects each time the
// sender waits for room (a timer), once per many messages.
func TestStreamRecyclingAllocatesNothing(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates on its own (and sync.Pool drops items)")
	}
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := context.Background()
	a, err := iox.OpenPair(ctx, node, "stream-recycle")
	require.NoError(t, err)
	defer a.Close()
	b, err := iox.OpenPair(ctx, node, "stream-recycle")
	require.NoError(t, err)
	defer b.Close()
	pub, err := iox.OpenPub(ctx, node, "stream-recycle-pub", iox.WaitSubscribers(1))
	require.NoError(t, err)
	defer pub.Close()
	sub, err := iox.OpenSub(ctx, node, "stream-recycle-pub")
	require.NoError(t, err)
	defer sub.Close()
	for _, ch := range []struct {
		name    string
		send    func(context.Context, []byte) error
		in      <-chan []byte
		recycle func([]byte)
		err     func() error
	}{
		{"pair", a.Send, b.In(), b.Recycle, b.Err},
		{"pubsub", pub.Send, sub.In(), sub.Recycle, sub.Err},
	} {
		for _, size := range []int{64, 4 << 10} {
			msg := make([]byte, size)
			stream := func(n int) {
				done := make(chan error, 1)
				go func() {
					for i := range n {
						m, ok := <-ch.in
						if !ok || len(m) != size {
							done <- fmt.Errorf("message %d: %d bytes, open %v: %v", i, len(m), ok, ch.err())
							return
						}
						ch.recycle(m)
					}
					done <- nil
				}()
				for range n {
					require.NoError(t, ch.send(ctx, msg))
				}
				require.NoError(t, <-done)
			}
			stream(5000) // the free lists fill
			const n = 20000
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			stream(n)
			runtime.ReadMemStats(&after)
			perMessage := float64(after.Mallocs-before.Mallocs) / n
			assert.Less(t, perMessage, 0.05, "%s, %d B messages: allocations per message", ch.name, size)
		}
	}
}

// TestPairAnswersGoStraightOut: a Send that answers a message received goes
// straight into shared memory, however quick the round trip, while sends in a
// stream go through the queue, which packs them.
func TestPairAnswersGoStraightOut(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := context.Background()
	a, err := iox.OpenPair(ctx, node, "answers", iox.WithSpin(time.Millisecond))
	require.NoError(t, err)
	defer a.Close()
	b, err := iox.OpenPair(ctx, node, "answers", iox.WithSpin(time.Millisecond))
	require.NoError(t, err)
	defer b.Close()
	const n = 5000
	echoed := make(chan error, 1)
	go func() {
		for range n {
			m, err := b.Recv(ctx)
			if err == nil {
				err = b.Send(ctx, m)
			}
			if err != nil {
				echoed <- err
				return
			}
		}
		echoed <- nil
	}()
	msg := []byte("ping")
	for range n {
		require.NoError(t, a.Send(ctx, msg))
		reply, err := a.Recv(ctx)
		require.NoError(t, err)
		require.Equal(t, msg, reply)
	}
	require.NoError(t, <-echoed)
	assert.Zero(t, a.QueueRuns(), "a ping-pong's sends went through the queue")
	assert.Zero(t, b.QueueRuns(), "a ping-pong's answers went through the queue")

	drained := make(chan error, 1)
	go func() { // a reader, so that the stream never waits for good
		for range n {
			if _, err := b.Recv(ctx); err != nil {
				drained <- err
				return
			}
		}
		drained <- nil
	}()
	for range n { // a stream
		require.NoError(t, a.Send(ctx, msg))
	}
	require.NoError(t, <-drained)
	assert.Positive(t, a.QueueRuns(), "a stream of sends is packed through the queue")
}

// TestPairLargeMessagesStayFewAhead: a sender of 1 MiB messages keeps at most
// 4 MiB of them unread at its peer, though the peer's buffer holds 64 samples.
func TestPairLargeMessagesStayFewAhead(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := context.Background()
	a, err := iox.OpenPair(ctx, node, "large-ahead")
	require.NoError(t, err)
	defer a.Close()
	b, err := iox.OpenPair(ctx, node, "large-ahead")
	require.NoError(t, err)
	defer b.Close()
	const n, size = 200, 1 << 20
	read := make(chan error, 1)
	go func() {
		for i := range n {
			m, err := b.Recv(ctx)
			if err == nil && (len(m) != size || m[0] != byte(i)) {
				err = fmt.Errorf("message %d: %d bytes, first %d", i, len(m), m[0])
			}
			if err != nil {
				read <- err
				return
			}
			b.Recycle(m)
		}
		read <- nil
	}()
	msg := make([]byte, size)
	most, told := uint64(0), 0
	for i := range n {
		msg[0] = byte(i)
		require.NoError(t, a.Send(ctx, msg))
		if k, ok := a.Unread(); ok {
			most, told = max(most, k), told+1
		}
	}
	require.NoError(t, <-read)
	require.Positive(t, told, "the peer's wait word never told")
	assert.LessOrEqual(t, most, uint64(4), "1 MiB samples unread at the peer")
}

func TestPairRecyclesReceiveBuffers(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := context.Background()
	a, err := iox.OpenPair(ctx, node, "recycle")
	require.NoError(t, err)
	defer a.Close()
	b, err := iox.OpenPair(ctx, node, "recycle", iox.WithRecycling(4))
	require.NoError(t, err)
	defer b.Close()
	require.NoError(t, a.Send(ctx, []byte("first message")))
	first, err := b.Recv(ctx)
	require.NoError(t, err)
	require.Equal(t, []byte("first message"), first)
	b.Recycle(first)
	require.NoError(t, a.Send(ctx, []byte("second")))
	second, err := b.Recv(ctx)
	require.NoError(t, err)
	assert.Equal(t, []byte("second"), second)
	assert.Same(t, &first[:1][0], &second[:1][0], "the recycled buffer carries the next message")

	_, err = iox.OpenPair(ctx, node, "recycle-bad", iox.WithRecycling(-1))
	assert.ErrorIs(t, err, iox.ErrInvalidArgument)

	// Without WithRecycling a channel keeps a few buffers too: the easy path.
	c, err := iox.OpenPair(ctx, node, "recycle-default")
	require.NoError(t, err)
	defer c.Close()
	d, err := iox.OpenPair(ctx, node, "recycle-default")
	require.NoError(t, err)
	defer d.Close()
	require.NoError(t, c.Send(ctx, []byte("first message")))
	first, err = d.Recv(ctx)
	require.NoError(t, err)
	d.Recycle(first)
	require.NoError(t, c.Send(ctx, []byte("second")))
	second, err = d.Recv(ctx)
	require.NoError(t, err)
	assert.Same(t, &first[:1][0], &second[:1][0], "the default keeps recycled buffers")
}
