package iox_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/iox-go/iox"
)

func init() {
	children["sub-seq"] = childSubSeq
	children["lossy-echo"] = childLossyEcho
	children["plain-sub"] = childPlainSub
	children["sub-packed"] = childSubPacked
}

// childSubSeq receives IOX_COUNT sequence numbers (lossless: all, in order; lossy:
// increasing) and prints "got N"; IOX_SLOW slows it down.
func childSubSeq() error {
	node, err := nsFromEnv().childNode()
	if err != nil {
		return err
	}
	defer node.Close()
	ctx := context.Background()
	opts := []iox.Option{iox.BufferSize(16), iox.WithChanCap(4)}
	lossy := os.Getenv("IOX_LOSSY") != ""
	if lossy {
		opts = append(opts, iox.Lossy())
	}
	s, err := iox.OpenSub(ctx, node, os.Getenv("IOX_SERVICE"), opts...)
	if err != nil {
		return err
	}
	defer s.Close()
	slow, _ := time.ParseDuration(os.Getenv("IOX_SLOW"))
	every, _ := strconv.ParseUint(os.Getenv("IOX_SLOW_EVERY"), 10, 64)
	every = max(every, 1)
	n, _ := strconv.ParseUint(os.Getenv("IOX_COUNT"), 10, 64)
	fmt.Println("ready")
	got, next := uint64(0), uint64(0)
	for next < n {
		m, err := s.Recv(ctx)
		if err != nil {
			return err
		}
		seq := binary.LittleEndian.Uint64(m)
		if !lossy && seq != next || lossy && seq < next {
			return fmt.Errorf("got sequence %d, expected %d", seq, next)
		}
		got++
		next = seq + 1
		if slow > 0 && got%every == 0 {
			time.Sleep(slow) // the stimulus: a slow reader, not a synchronisation
		}
	}
	fmt.Println("got", got)
	parentSays()
	return nil
}

func TestPubSubLosslessEverySubscriberGetsEverythingInOrder(t *testing.T) {
	n := 20000
	if raceEnabled {
		n = 2000
	}
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := context.Background()
	p, err := iox.OpenPub(ctx, node, "lossless", iox.BufferSize(16))
	require.NoError(t, err)
	var kids []*child
	for i := 0; i < 4; i++ {
		env := []string{"IOX_SERVICE=lossless", fmt.Sprintf("IOX_COUNT=%d", n)}
		if i == 0 { // sleeps (about a millisecond) after every 16 messages
			env = append(env, "IOX_SLOW=50us", "IOX_SLOW_EVERY=16")
		}
		c := spawn(t, ns, "sub-seq", env...)
		c.expect("ready")
		kids = append(kids, c)
	}
	waitSubscribers(t, p, 4)
	for i := 0; i < n; i++ {
		require.NoError(t, p.Send(ctx, seqMsg(uint64(i))))
	}
	for _, c := range kids {
		c.expect(fmt.Sprintf("got %d", n))
	}
	require.NoError(t, p.Close())
	for _, c := range kids {
		c.say("done")
		c.wait()
	}
}

// childLossyEcho opens a lossy Sub of IOX_SERVICE and says "ready"; it takes
// nothing until the parent says "go", then receives IOX_COUNT messages and
// says "got N", then echoes every message it receives as "echo M" until the
// parent says "done".
func childLossyEcho() error {
	node, err := nsFromEnv().childNode()
	if err != nil {
		return err
	}
	defer node.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := iox.OpenSub(ctx, node, os.Getenv("IOX_SERVICE"), iox.Lossy(), iox.BufferSize(64))
	if err != nil {
		return err
	}
	defer s.Close()
	fmt.Println("ready")
	if line := parentSays(); line != "go" {
		return fmt.Errorf("want go, got %q", line)
	}
	count := envInt("IOX_COUNT")
	for range count {
		if _, err := s.Recv(ctx); err != nil {
			return err
		}
	}
	fmt.Println("got", count)
	go func() {
		parentSays()
		cancel()
	}()
	for {
		m, err := s.Recv(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		fmt.Println("echo", string(m))
	}
}

// childPlainSub opens a subscriber of IOX_SERVICE with the plain ports (no
// wait word), says "ready" and stays until the parent says anything.
func childPlainSub() error {
	node, err := nsFromEnv().childNode()
	if err != nil {
		return err
	}
	defer node.Close()
	svc, err := node.PublishSubscribe(os.Getenv("IOX_SERVICE"))
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
	parentSays()
	return nil
}

// A lossy publisher of iox notifies an iox subscriber only when it parks (its
// wait word says so): sends to one that is awake, or not receiving yet, make
// no system call. One that parks is always woken: a ping-pong with gaps of
// every length, in which the subscriber parks between most messages, never
// stalls.
func TestPubSubLossyNotifiesOnlyAParkedSubscriber(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := advCtx(t)
	const held = 10
	p, err := iox.OpenPub(ctx, node, "lossy-park", iox.Lossy(), iox.BufferSize(64))
	require.NoError(t, err)
	defer p.Close()
	ev, err := node.Event("lossy-park") // the data events, as a foreign listener sees them
	require.NoError(t, err)
	defer ev.Close()
	lis, err := ev.Listener()
	require.NoError(t, err)
	defer lis.Close()
	c := spawn(t, ns, "lossy-echo", "IOX_SERVICE=lossy-park", fmt.Sprintf("IOX_COUNT=%d", held))
	c.expect("ready")
	waitSubscribers(t, p, 1)
	require.NoError(t, p.Send(ctx, []byte("first"))) // tells the newcomer once
	_, err = lis.TryWait()
	require.NoError(t, err)
	for i := 1; i < held; i++ {
		require.NoError(t, p.Send(ctx, []byte("held")))
	}
	ids, err := lis.TryWait() // a notification is in the socket when Notify returns
	require.NoError(t, err)
	assert.Empty(t, ids, "sends to a subscriber that does not park notified it")
	c.say("go")
	c.expect(fmt.Sprintf("got %d", held))

	rng := seeded(t)
	for i := range loops(300, 100, 5000) {
		switch rng.IntN(4) {
		case 0: // straight after the echo: the subscriber still spins
		case 1:
			for start := time.Now(); time.Since(start) < time.Duration(rng.IntN(50))*time.Microsecond; {
			}
		case 2:
			runtime.Gosched()
		case 3: // long enough for it to park
			time.Sleep(time.Duration(rng.IntN(2000)) * time.Microsecond) // the stimulus
		}
		m := strconv.Itoa(i)
		require.NoError(t, p.Send(ctx, []byte(m)))
		require.Equal(t, "echo "+m, c.line(), "round %d", i)
	}
	c.say("done")
	c.wait()
}

// A subscriber without a wait word (a program in another language, here the
// plain ports in another process) cannot tell that it parks: while one is
// there, every lossy send notifies.
func TestPubSubLossyNotifiesAForeignSubscriberEveryTime(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := advCtx(t)
	p, err := iox.OpenPub(ctx, node, "lossy-foreign", iox.Lossy(), iox.BufferSize(64))
	require.NoError(t, err)
	defer p.Close()
	ev, err := node.Event("lossy-foreign")
	require.NoError(t, err)
	defer ev.Close()
	lis, err := ev.Listener()
	require.NoError(t, err)
	defer lis.Close()
	c := spawn(t, ns, "plain-sub", "IOX_SERVICE=lossy-foreign")
	c.expect("ready")
	waitSubscribers(t, p, 1)
	for i := range 5 {
		_, err := lis.TryWait()
		require.NoError(t, err)
		require.NoError(t, p.Send(ctx, []byte("m")))
		ids, err := lis.TryWait()
		require.NoError(t, err)
		assert.Contains(t, ids, iox.EventID(0), "send %d did not notify", i)
	}
	c.say("done")
	c.wait()
}

// A subscriber whose wait word came after the publisher looked (an iox
// subscriber lists its port before it makes its word) gets a notification
// after every send only until the publisher finds the word: from then on, a
// send to it while it does not park makes no system call.
func TestPubSubFindsAWordMadeAfterItLooked(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := advCtx(t)
	p, err := iox.OpenPub(ctx, node, "late-word", iox.Lossy(), iox.BufferSize(64))
	require.NoError(t, err)
	defer p.Close()
	ev, err := node.Event("late-word")
	require.NoError(t, err)
	defer ev.Close()
	lis, err := ev.Listener()
	require.NoError(t, err)
	defer lis.Close()
	svc, err := node.PublishSubscribe("late-word")
	require.NoError(t, err)
	defer svc.Close()
	sub, err := svc.Subscriber()
	require.NoError(t, err)
	defer sub.Close()
	waitSubscribers(t, p, 1)
	// notified reports whether one send notified the listener; a failure is
	// kept for the test's goroutine (eventually runs it on another)
	var failure error
	notified := func() bool {
		_, err := lis.TryWait()
		if err == nil {
			err = p.Send(ctx, []byte("m"))
		}
		var ids []iox.EventID
		if err == nil {
			ids, err = lis.TryWait()
		}
		if err != nil && failure == nil {
			failure = err
		}
		return slices.Contains(ids, iox.EventID(0))
	}
	for i := range 3 {
		require.True(t, notified(), "send %d to a subscriber without a word", i)
	}
	require.Zero(t, p.Words())
	// while none comes, the publisher looks for it ever less often, and every
	// send notifies
	missed := 0
	eventually(t, "the publisher to look less often", func() bool {
		if !notified() {
			missed++
		}
		return failure != nil || p.RescanGap() >= 4*time.Millisecond
	})
	require.NoError(t, failure)
	require.Zero(t, missed, "sends to a subscriber without a word that did not notify")
	require.LessOrEqual(t, p.RescanGap(), time.Second)
	closeWord, ok := iox.MakeWaitWord(node, sub, 64)
	require.True(t, ok)
	defer closeWord()
	eventually(t, "the publisher to find the word", func() bool { return failure != nil || !notified() })
	require.NoError(t, failure)
	require.Equal(t, 1, p.Words())
}

// A lossy subscriber killed while it parks (its wait word marked) is
// reported as crashed; the publisher goes on sending without an error, and
// the dead subscriber's word and ports are removed (the namespace check at the
// end fails on anything left in /dev/shm).
func TestPubSubLossyKilledSubscriberLeavesNothing(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := advCtx(t)
	p, err := iox.OpenPub(ctx, node, "lossy-killed", iox.Lossy(), iox.BufferSize(64))
	require.NoError(t, err)
	c := spawn(t, ns, "lossy-echo", "IOX_SERVICE=lossy-killed", "IOX_COUNT=0")
	c.expect("ready")
	waitSubscribers(t, p, 1)
	require.Equal(t, iox.PeerJoined, (<-p.Peers()).Kind)
	c.say("go")
	c.expect("got 0")
	require.NoError(t, p.Send(ctx, []byte("1")))
	require.Equal(t, "echo 1", c.line()) // and now it parks again
	c.kill()
	select {
	case e := <-p.Peers():
		require.Equal(t, iox.PeerCrashed, e.Kind)
	case <-ctx.Done():
		t.Fatal("the crash was not reported")
	}
	for range 100 {
		require.NoError(t, p.Send(ctx, []byte("after")))
	}
	require.NoError(t, p.Close())
}

func TestPubSubLossyNeverBlocksThePublisher(t *testing.T) {
	const n = 20000
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := context.Background()
	p, err := iox.OpenPub(ctx, node, "lossy", iox.Lossy(), iox.BufferSize(16))
	require.NoError(t, err)
	defer p.Close()
	var kids []*child
	for i := 0; i < 4; i++ {
		env := []string{"IOX_SERVICE=lossy", "IOX_LOSSY=1", fmt.Sprintf("IOX_COUNT=%d", n)}
		if i == 0 {
			env = append(env, "IOX_SLOW=1ms")
		}
		c := spawn(t, ns, "sub-seq", env...)
		c.expect("ready")
		kids = append(kids, c)
	}
	waitSubscribers(t, p, 4)
	deadline, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	for i := 0; i < n; i++ {
		require.NoError(t, p.Send(deadline, seqMsg(uint64(i))), "a lossy publisher never waits for a slow subscriber")
	}
	for i, c := range kids {
		got := c.line()
		k, err := strconv.Atoi(strings.TrimPrefix(got, "got "))
		require.NoError(t, err, got)
		t.Logf("subscriber %d got %d of %d, in order", i, k, n)
		assert.Greater(t, k, 0)
		if i == 0 {
			assert.Less(t, k, n, "the slow subscriber lost its oldest messages")
		}
	}
	for _, c := range kids {
		c.say("done")
		c.wait()
	}
}

func TestPubSubSubscriberCrashIsReportedAndOthersKeepGoing(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := context.Background()
	p, err := iox.OpenPub(ctx, node, "crash-sub", iox.BufferSize(16))
	require.NoError(t, err)
	defer p.Close()
	const n = 20000
	healthy := spawn(t, ns, "sub-seq", "IOX_SERVICE=crash-sub", fmt.Sprintf("IOX_COUNT=%d", n))
	healthy.expect("ready")
	victim := spawn(t, ns, "sub-seq", "IOX_SERVICE=crash-sub", "IOX_COUNT=1000000", "IOX_SLOW=1h")
	victim.expect("ready")
	waitSubscribers(t, p, 2)
	joined := 0
	for joined < 2 {
		e := <-p.Peers()
		require.Equal(t, iox.PeerJoined, e.Kind)
		joined++
	}
	// the victim takes one message and sleeps: its queue fills and holds the publisher
	sent := make(chan error, 1)
	var accepted atomic.Int64
	go func() {
		for i := 0; i < n; i++ {
			if err := p.Send(ctx, seqMsg(uint64(i))); err != nil {
				sent <- err
				return
			}
			accepted.Store(int64(i + 1))
		}
		sent <- nil
	}()
	last := waitHeldBack(t, "iox.(*Pub[...]).Send", accepted.Load)
	select {
	case <-sent:
		t.Fatal("the sleeping subscriber did not hold the publisher back")
	default:
	}
	t.Logf("the publisher was held back after %d of %d messages", last, n)
	killed := time.Now()
	require.NoError(t, victim.cmd.Process.Signal(syscall.SIGKILL))
	select {
	case e := <-p.Peers():
		assert.Equal(t, iox.PeerCrashed, e.Kind)
		t.Logf("crash reported after %v", time.Since(killed))
	case <-time.After(20 * time.Second):
		t.Fatal("crash not reported")
	}
	require.NoError(t, <-sent)
	healthy.expect(fmt.Sprintf("got %d", n))
	healthy.say("done")
	healthy.wait()

	// a restarted subscriber joins and receives
	again := spawn(t, ns, "sub-seq", "IOX_SERVICE=crash-sub", "IOX_COUNT=10")
	again.expect("ready")
	eventually(t, "rejoin", func() bool { return p.Subscribers() == 1 })
	for i := 0; i < 10; i++ {
		require.NoError(t, p.Send(ctx, seqMsg(uint64(i))))
	}
	again.expect("got 10")
	again.say("done")
	again.wait()
}

func TestPubSubHistoryForLateJoiners(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := context.Background()
	p, err := iox.OpenPub(ctx, node, "history", iox.History(3), iox.BufferSize(8), iox.WithPeerTimeout(100*time.Millisecond))
	require.NoError(t, err)
	defer p.Close()
	for i := 0; i < 5; i++ {
		require.NoError(t, p.Send(ctx, seqMsg(uint64(i))))
	}
	// Send returned: the messages are in shared memory, and the history with them.
	s, err := iox.OpenSub(ctx, node, "history", iox.History(3), iox.BufferSize(8))
	require.NoError(t, err)
	defer s.Close()
	for want := uint64(2); want < 5; want++ {
		m, err := s.Recv(ctx)
		require.NoError(t, err)
		assert.Equal(t, want, binary.LittleEndian.Uint64(m))
	}
}

func TestPubSubCloseDeliversWhatWasSent(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := context.Background()
	s, err := iox.OpenSub(ctx, node, "linger", iox.BufferSize(16), iox.WithChanCap(1))
	require.NoError(t, err)
	defer s.Close()
	p, err := iox.OpenPub(ctx, node, "linger", iox.BufferSize(16), iox.WithLinger(10*time.Second))
	require.NoError(t, err)
	waitSubscribers(t, p, 1)
	for i := 0; i < 12; i++ {
		require.NoError(t, p.Send(ctx, seqMsg(uint64(i))))
	}
	require.NoError(t, p.Close()) // nobody reads yet: Close waits for the acknowledgement
	assert.ErrorIs(t, p.Close(), iox.ErrClosed)
	assert.ErrorIs(t, p.Send(ctx, []byte("late")), iox.ErrClosed)
	for i := uint64(0); i < 12; i++ {
		m, err := s.Recv(ctx)
		require.NoError(t, err)
		assert.Equal(t, i, binary.LittleEndian.Uint64(m))
	}
	require.NoError(t, s.Close())
	_, ok := <-s.In()
	assert.False(t, ok)
	assert.ErrorIs(t, s.Close(), iox.ErrClosed)
}

func TestPubSubModesMustMatch(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := context.Background()
	p, err := iox.OpenPub(ctx, node, "modes")
	require.NoError(t, err)
	defer p.Close()
	_, err = iox.OpenSub(ctx, node, "modes", iox.Lossy())
	assert.ErrorIs(t, err, iox.ErrIncompatible)
	_, err = iox.OpenSubOf(ctx, node, "modes", mustFixed[point](t, "iox_test::Point"))
	assert.ErrorIs(t, err, iox.ErrIncompatibleType)
	_, err = iox.OpenPub(ctx, node, "", iox.Lossy())
	assert.ErrorIs(t, err, iox.ErrInvalidName)
	_, err = iox.OpenSub(ctx, node, "x", iox.History(100), iox.BufferSize(4))
	assert.ErrorIs(t, err, iox.ErrInvalidArgument)
}

func TestPubSubContextEndsEverything(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx, cancel := context.WithCancel(context.Background())
	p, err := iox.OpenPub(ctx, node, "ctx")
	require.NoError(t, err)
	s, err := iox.OpenSub(ctx, node, "ctx")
	require.NoError(t, err)
	cancel()
	<-p.Done()
	<-s.Done()
	assert.ErrorIs(t, p.Err(), context.Canceled)
	assert.ErrorIs(t, s.Err(), context.Canceled)
	assert.ErrorIs(t, p.Send(context.Background(), []byte("x")), context.Canceled)
	require.NoError(t, p.Close())
	require.NoError(t, s.Close())
}

func TestPythonPublisherWithoutEventsReachesAGoSubscriberChannel(t *testing.T) {
	sizes := []int{0, 1, 63, 4096, 7}
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := context.Background()
	s, err := iox.OpenSub(ctx, node, "py-chan", iox.Lossy(), iox.BufferSize(16), iox.WithPoll(5*time.Millisecond))
	require.NoError(t, err)
	var list []string
	for _, n := range sizes {
		list = append(list, strconv.Itoa(n))
	}
	cmd, _ := pyPeer(t, ns, "pub", "py-chan", strings.Join(list, ","))
	for i, n := range sizes {
		select {
		case m := <-s.In():
			assert.Equal(t, pattern(n, 0), m, "message %d", i)
		case <-time.After(20 * time.Second):
			t.Fatalf("message %d did not arrive", i)
		}
	}
	require.NoError(t, s.Close())
	require.NoError(t, waitTimeout(cmd, 20*time.Second))
}

func TestTypedValuesRoundTripBetweenGoAndPython(t *testing.T) {
	const n = 5
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := context.Background()
	codec := mustFixed[point](t, "iox_test::Point")
	back, err := iox.OpenSubOf(ctx, node, "typed-back", codec, iox.Lossy(), iox.BufferSize(16))
	require.NoError(t, err)
	fwd, err := iox.OpenPubOf(ctx, node, "typed-fwd", codec, iox.Lossy(), iox.BufferSize(16))
	require.NoError(t, err)
	cmd, lines := pyPeer(t, ns, "echo-typed", "typed-fwd", "typed-back", strconv.Itoa(n))
	waitSubscribers(t, fwd, 1)
	for i := 0; i < n; i++ {
		require.NoError(t, fwd.Send(ctx, point{X: int32(i), Y: int32(-i), Z: float64(i) + 0.5}))
	}
	for i := 0; i < n; i++ {
		select {
		case v := <-back.In():
			assert.Equal(t, point{X: int32(i) + 1, Y: int32(-i) * 2, Z: (float64(i) + 0.5) / 2}, v)
		case <-time.After(20 * time.Second):
			t.Fatalf("value %d did not come back", i)
		}
	}
	require.True(t, lines.Scan())
	assert.Equal(t, fmt.Sprintf("echoed %d", n), lines.Text())
	require.NoError(t, fwd.Close())
	require.NoError(t, back.Close())
	require.NoError(t, waitTimeout(cmd, 20*time.Second))
}

func TestPubSubLosslessUnderPressureInOneProcess(t *testing.T) {
	n := 200000
	if raceEnabled {
		n = 20000
	}
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := context.Background()
	s, err := iox.OpenSub(ctx, node, "pressure")
	require.NoError(t, err)
	defer s.Close()
	p, err := iox.OpenPub(ctx, node, "pressure")
	require.NoError(t, err)
	defer p.Close()
	waitSubscribers(t, p, 1)
	sent := make(chan error, 1)
	go func() {
		for i := 0; i < n; i++ {
			if err := p.Send(ctx, seqMsg(uint64(i))); err != nil {
				sent <- err
				return
			}
		}
		sent <- nil
	}()
	for i := 0; i < n; i++ {
		c, cancel := context.WithTimeout(ctx, 20*time.Second)
		m, err := s.Recv(c)
		cancel()
		require.NoError(t, err, "message %d", i)
		require.Equal(t, uint64(i), binary.LittleEndian.Uint64(m), "lost, duplicated or reordered")
	}
	require.NoError(t, <-sent)
}

// TestPubPendingAndFlush: messages that wait in the send queue because a
// subscriber does not read are Pending, and Flush waits for them until its
// context ends; once the subscriber reads, Flush returns nil and nothing is
// pending. Flush after Close says why it cannot.
func TestPubPendingAndFlush(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := context.Background()
	// Messages too large to be packed, and small buffers on both sides, so
	// that a subscriber that does not read holds few of them.
	pub, err := iox.OpenPub(ctx, node, "flush", iox.BufferSize(1), iox.WithChanCap(16), iox.WaitSubscribers(1))
	require.NoError(t, err)
	sub, err := iox.OpenSub(ctx, node, "flush", iox.BufferSize(1), iox.WithChanCap(1))
	require.NoError(t, err)
	defer sub.Close()
	const n = 12
	for i := range n {
		require.NoError(t, pub.Send(ctx, pattern(8<<10, i)))
	}
	assert.Positive(t, pub.Pending(), "a subscriber that does not read holds a few messages, not %d", n)
	assert.LessOrEqual(t, pub.Pending(), n)
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	require.ErrorIs(t, pub.Flush(short), context.DeadlineExceeded, "nobody reads: the queue cannot empty")

	flushed := make(chan error, 1)
	go func() { flushed <- pub.Flush(ctx) }()
	for i := range n {
		m, err := sub.Recv(ctx)
		require.NoError(t, err)
		require.Equal(t, pattern(8<<10, i), m)
	}
	require.NoError(t, <-flushed)
	assert.Zero(t, pub.Pending())

	require.NoError(t, pub.Close())
	require.ErrorIs(t, pub.Flush(ctx), iox.ErrClosed)
}

// childSubPacked subscribes to the lossless channel IOX_SERVICE with a buffer
// of 4 samples, says "ready", and once the parent said so takes IOX_COUNT
// messages of IOX_BENCH_SIZE bytes (burstMsg 0, 1, …), checking each. It
// then says whether its batch grew for larger packs, and closes once the
// parent says so.
func childSubPacked() error {
	size, n, node, err := burstChild()
	if err != nil {
		return err
	}
	defer node.Close()
	ctx := context.Background()
	sub, err := iox.OpenSub(ctx, node, os.Getenv("IOX_SERVICE"), iox.BufferSize(4), iox.MaxMessageSize(4<<10))
	if err != nil {
		return err
	}
	defer sub.Close()
	start := sub.LargestTake()
	fmt.Println("ready")
	parentSays()
	for i := range uint64(n) {
		m, err := sub.Recv(ctx)
		if err != nil {
			return fmt.Errorf("message %d: %w", i, err)
		}
		if !bytes.Equal(m, burstMsg(i, size)) {
			return fmt.Errorf("message %d: %d bytes, not the message sent", i, len(m))
		}
	}
	fmt.Printf("grew %v\n", sub.LargestTake() > start)
	parentSays() // the publisher closed
	return sub.Close()
}

// TestSubPacksWaitingMessagesLarge is TestPairPacksWaitingMessagesLarge for a
// lossless publisher with two subscribers in other processes, which get every
// message of the larger packs.
func TestSubPacksWaitingMessagesLarge(t *testing.T) {
	const n, size = 2000, 4 << 10
	ns := newNamespace(t)
	node := ns.node(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pub, err := iox.OpenPub(ctx, node, "burst-sub", iox.BufferSize(4), iox.WithChanCap(4096), iox.MaxMessageSize(4<<10), iox.WaitSubscribers(2))
	require.NoError(t, err)
	defer pub.Close()
	var subs []*child
	for range 2 {
		c := spawn(t, ns, "sub-packed", "IOX_SERVICE=burst-sub", "IOX_COUNT="+strconv.Itoa(n), "IOX_BENCH_SIZE="+strconv.Itoa(size))
		c.expect("ready")
		subs = append(subs, c)
	}
	for i := range uint64(n) {
		require.NoError(t, pub.Send(ctx, burstMsg(i, size)))
	}
	for _, c := range subs {
		c.say("go")
	}
	for _, c := range subs {
		c.expect("grew true")
	}
	require.NoError(t, pub.Close(), "every subscriber took every message")
	for _, c := range subs {
		c.say("closed")
		c.wait()
	}
}
