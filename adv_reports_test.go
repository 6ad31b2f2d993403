package iox_test

// Adversarial tests of what the channels report: Close's confirmation at the
// edges of capacity, what happens to values Out took, absurd options and
// hostile payloads. Each was written to fail before its fix.

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/iox-go/iox"
)

func init() {
	children["advr-reader"] = childAdvrReader
	children["advr-hold"] = childAdvrHold
	children["advr-sub"] = childAdvrSub
	children["advr-pull"] = childAdvrPull
	children["advr-subs"] = childAdvrSubs
	children["advr-panic-codec"] = childAdvrPanicCodec
	children["advr-fixed"] = childAdvrFixed
}

// childAdvrReader opens the pair IOX_SERVICE (BufferSize IOX_BUFFER,
// WithChanCap IOX_CAP), says "ready", reads nothing until the parent says
// "read N" (having sent IOX_SEND messages first), then reads in order (through In when IOX_IN is 1) until the pair
// ends and reports "got N KIND"; with N above zero it stops after N messages
// and reports "got N". Messages are IOX_SIZE bytes (at least 8). It closes
// when the parent hangs up and reports "closed KIND".
func childAdvrReader() error {
	node, err := nsFromEnv().childNode()
	if err != nil {
		return err
	}
	defer node.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p, err := iox.OpenPair(ctx, node, os.Getenv("IOX_SERVICE"), iox.BufferSize(envInt("IOX_BUFFER")),
		iox.WithChanCap(envInt("IOX_CAP")))
	if err != nil {
		return err
	}
	for i := range envInt("IOX_SEND") {
		if err := p.Send(ctx, seqMsg(uint64(i))); err != nil {
			return err
		}
	}
	fmt.Println("ready")
	var want uint64
	if _, err := fmt.Sscanf(parentSays(), "read %d", &want); err != nil {
		return err
	}
	recv := p.Recv
	if os.Getenv("IOX_IN") == "1" {
		in := p.In()
		recv = func(context.Context) ([]byte, error) {
			m, ok := <-in
			if !ok {
				return nil, p.Err()
			}
			return m, nil
		}
	}
	n := uint64(0)
	for want == 0 || n < want {
		m, err := recv(ctx)
		if err != nil {
			fmt.Println("got", n, kindOf(err))
			break
		}
		if len(m) != max(envInt("IOX_SIZE"), 8) {
			fmt.Printf("got %d bad-size(%d)\n", n, len(m))
			break
		}
		if got := binary.LittleEndian.Uint64(m); got != n {
			fmt.Printf("got %d out-of-order(%d)\n", n, got)
			break
		}
		n++
	}
	if want > 0 && n == want {
		fmt.Println("got", n)
	}
	parentSays()
	fmt.Println("closed", kindOf(p.Close()))
	return nil
}

// sizedMsg is message i of size bytes (at least 8): i, then zeros.
func sizedMsg(i uint64, size int) []byte {
	m := make([]byte, max(size, 8))
	binary.LittleEndian.PutUint64(m, i)
	return m
}

// TestAdvrCloseAtCapacity: a pair end fills its peer to capacity (shared
// memory, the peer's end and its own queue hold all they can: one more Send
// would wait), then closes while the peer reads everything. The peer took
// every message, so Close returns nil.
func TestAdvrCloseAtCapacity(t *testing.T) {
	type tc struct {
		buffer, cap, size int
		in, exact         bool
	}
	var cases []tc
	for _, sz := range []struct{ buffer, cap int }{{2, 2}, {1, 1}, {4, 64}} {
		for _, size := range []int{8, 8 << 10, 1 << 20} {
			for _, in := range []bool{false, true} {
				for _, exact := range []bool{false, true} {
					cases = append(cases, tc{sz.buffer, sz.cap, size, in, exact})
				}
			}
		}
	}
	for _, c0 := range cases {
		t.Run(fmt.Sprintf("buffer%d-cap%d-size%d-in%v-exact%v", c0.buffer, c0.cap, c0.size, c0.in, c0.exact), func(t *testing.T) {
			ns := newNamespace(t)
			node := ns.node(t)
			ctx := advCtx(t)
			in := "0"
			if c0.in {
				in = "1"
			}
			c := spawn(t, ns, "advr-reader", "IOX_SERVICE=cap", "IOX_BUFFER="+strconv.Itoa(c0.buffer), "IOX_CAP="+strconv.Itoa(c0.cap),
				"IOX_SIZE="+strconv.Itoa(c0.size), "IOX_IN="+in)
			c.expect("ready")
			p, err := iox.OpenPair(ctx, node, "cap", iox.BufferSize(c0.buffer), iox.WithChanCap(c0.cap), iox.WithLinger(10*time.Second))
			require.NoError(t, err)
			eventually(t, "the peer", p.Connected)
			sent := fillSender(t, ctx, "iox.(*Pair[...]).Send", func(ctx context.Context, i uint64) error { return p.Send(ctx, sizedMsg(i, c0.size)) })
			t.Logf("%d messages fill the peer", sent)
			if c0.exact {
				c.say(fmt.Sprintf("read %d", sent))
			} else {
				c.say("read 0")
			}
			err = p.Close()
			if c0.exact {
				c.expect(fmt.Sprintf("got %d", sent))
			} else {
				require.Equal(t, fmt.Sprintf("got %d ErrPeerClosed", sent), c.line(), "what the peer read")
			}
			require.NoError(t, err, "Close after the peer read all %d messages", sent)
			c.say("bye")
			c.expect("closed nil")
			c.wait()
		})
	}
}

// childAdvrSub opens a subscriber of IOX_SERVICE (BufferSize IOX_BUFFER,
// WithChanCap IOX_CAP), says "ready", reads nothing until the parent says
// "read N", then reads N messages in order and reports "got N". It closes
// when the parent hangs up.
func childAdvrSub() error {
	node, err := nsFromEnv().childNode()
	if err != nil {
		return err
	}
	defer node.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := iox.OpenSub(ctx, node, os.Getenv("IOX_SERVICE"), iox.BufferSize(envInt("IOX_BUFFER")),
		iox.WithChanCap(envInt("IOX_CAP")))
	if err != nil {
		return err
	}
	defer s.Close()
	fmt.Println("ready")
	var want uint64
	if _, err := fmt.Sscanf(parentSays(), "read %d", &want); err != nil {
		return err
	}
	n := uint64(0)
	for ; n < want; n++ {
		m, err := s.Recv(ctx)
		if err != nil {
			fmt.Println("got", n, kindOf(err))
			break
		}
		if got := binary.LittleEndian.Uint64(m); got != n {
			fmt.Printf("got %d out-of-order(%d)\n", n, got)
			break
		}
	}
	if n == want {
		fmt.Println("got", n)
	}
	parentSays()
	return nil
}

// fillSender sends on send until it is held back (blocked in fn with nothing
// more taken), and returns how many messages went.
func fillSender(t *testing.T, ctx context.Context, fn string, send func(context.Context, uint64) error) uint64 {
	t.Helper()
	var n atomic.Uint64
	sctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := uint64(0); ; i++ {
			if send(sctx, i) != nil {
				return
			}
			n.Store(i + 1)
		}
	}()
	waitHeldBack(t, fn, func() int64 { return int64(n.Load()) })
	stop()
	<-done
	return n.Load()
}

// TestAdvrPubCloseAtCapacity: a lossless publisher fills its subscriber to
// capacity, then closes while the subscriber reads everything: the
// subscriber took every message, so Close returns nil.
func TestAdvrPubCloseAtCapacity(t *testing.T) {
	for _, sz := range []struct{ buffer, cap int }{{2, 2}, {4, 1}, {1, 1}, {4, 64}} {
		t.Run(fmt.Sprintf("buffer%d-cap%d", sz.buffer, sz.cap), func(t *testing.T) {
			ns := newNamespace(t)
			node := ns.node(t)
			ctx := advCtx(t)
			c := spawn(t, ns, "advr-sub", "IOX_SERVICE=cap", "IOX_BUFFER="+strconv.Itoa(sz.buffer), "IOX_CAP="+strconv.Itoa(sz.cap))
			c.expect("ready")
			p, err := iox.OpenPub(ctx, node, "cap", iox.BufferSize(sz.buffer), iox.WithChanCap(sz.cap), iox.WithLinger(10*time.Second))
			require.NoError(t, err)
			waitSubscribers(t, p, 1)
			sent := fillSender(t, ctx, "iox.(*Pub[...]).Send", func(ctx context.Context, i uint64) error { return p.Send(ctx, seqMsg(i)) })
			t.Logf("%d messages fill the subscriber", sent)
			c.say(fmt.Sprintf("read %d", sent))
			err = p.Close()
			c.expect(fmt.Sprintf("got %d", sent))
			require.NoError(t, err, "Close after the subscriber read all %d messages", sent)
			c.wait()
		})
	}
}

// TestAdvrUnreadSubEndHolds: a subscriber that reads nothing still has its
// end's goroutine move up to BufferSize + WithChanCap messages out of shared
// memory into its process, and its shared memory holds BufferSize more, so a
// lossless publisher gets at least BufferSize + WithChanCap and at most
// 2×BufferSize + WithChanCap messages out to it, plus its own WithChanCap
// queued, before Send waits; every one of them is then read, in order.
// Messages over 4 KiB are never packed, so these are messages, not samples.
func TestAdvrUnreadSubEndHolds(t *testing.T) {
	for _, sz := range []struct{ buffer, subCap, pubCap int }{{1, 1, 1}, {1, 4, 1}, {4, 1, 1}, {4, 3, 2}, {8, 8, 8}} {
		t.Run(fmt.Sprintf("buffer%d-cap%d-pub%d", sz.buffer, sz.subCap, sz.pubCap), func(t *testing.T) {
			ns := newNamespace(t)
			node := ns.node(t)
			ctx := advCtx(t)
			c := spawn(t, ns, "advr-sub", "IOX_SERVICE=hold", "IOX_BUFFER="+strconv.Itoa(sz.buffer), "IOX_CAP="+strconv.Itoa(sz.subCap))
			c.expect("ready")
			p, err := iox.OpenPub(ctx, node, "hold", iox.BufferSize(sz.buffer), iox.WithChanCap(sz.pubCap))
			require.NoError(t, err)
			defer p.Close()
			waitSubscribers(t, p, 1)
			least := int64(sz.buffer + sz.subCap + sz.pubCap)
			most := least + int64(sz.buffer)
			var n atomic.Int64
			sctx, stop := context.WithCancel(ctx)
			done := make(chan struct{})
			go func() {
				defer close(done)
				for i := uint64(0); ; i++ {
					m := make([]byte, 5000)
					binary.LittleEndian.PutUint64(m, i)
					if p.Send(sctx, m) != nil {
						return
					}
					n.Store(int64(i + 1))
				}
			}()
			eventually(t, fmt.Sprintf("%d messages out", least), func() bool { return n.Load() >= least })
			held := waitHeldBack(t, "iox.(*Pub[...]).Send", n.Load)
			t.Logf("%d messages went before Send waited", held)
			require.LessOrEqual(t, held, most, "2×BufferSize + WithChanCap + the publisher's WithChanCap")
			stop()
			<-done
			c.say(fmt.Sprintf("read %d", held))
			c.expect(fmt.Sprintf("got %d", held))
			c.say("bye")
			c.wait()
		})
	}
}

// TestAdvrCloseAtCapacityPeerLate: the send queue is full before the peer
// comes (one more Send would wait); Close is called, then the peer arrives
// and reads everything: Close returns nil.
func TestAdvrCloseAtCapacityPeerLate(t *testing.T) {
	for _, kind := range []string{"pair", "pub"} {
		for _, capacity := range []int{1, 2, 64} {
			t.Run(fmt.Sprintf("%s-cap%d", kind, capacity), func(t *testing.T) {
				ns := newNamespace(t)
				node := ns.node(t)
				ctx := advCtx(t)
				var send func(context.Context, []byte) error
				var closeIt func() error
				fn := "iox.(*Pair[...]).Send"
				if kind == "pub" {
					p, err := iox.OpenPub(ctx, node, "late", iox.WithChanCap(capacity), iox.WaitSubscribers(1), iox.WithLinger(10*time.Second))
					require.NoError(t, err)
					send, closeIt, fn = p.Send, p.Close, "iox.(*Pub[...]).Send"
				} else {
					p, err := iox.OpenPair(ctx, node, "late", iox.BufferSize(2), iox.WithChanCap(capacity), iox.WithLinger(10*time.Second))
					require.NoError(t, err)
					send, closeIt = p.Send, p.Close
				}
				sent := fillSender(t, ctx, fn, func(ctx context.Context, i uint64) error { return send(ctx, seqMsg(i)) })
				require.Equal(t, uint64(capacity), sent)
				closed := make(chan error, 1)
				go func() { closed <- closeIt() }()
				role := "advr-reader"
				if kind == "pub" {
					role = "advr-sub"
				}
				c := spawn(t, ns, role, "IOX_SERVICE=late", "IOX_BUFFER=2", "IOX_CAP=2", "IOX_SIZE=8")
				c.expect("ready")
				c.say(fmt.Sprintf("read %d", sent))
				c.expect(fmt.Sprintf("got %d", sent))
				require.NoError(t, <-closed, "Close after the peer read all %d messages", sent)
				c.say("bye")
				if kind == "pair" {
					c.expect("closed nil")
				}
				c.wait()
			})
		}
	}
}

// childAdvrPull opens a puller of IOX_SERVICE (BufferSize IOX_BUFFER), says
// "ready", reads nothing until the parent says "read N", then reads N
// messages (through In when IOX_IN is 1), or fewer when the parent says
// "stop" or hangs up first, and reports "got K" with their contents in order
// ("got K a b c"). It closes on "close" (or when the parent hangs up) and
// reports "closed KIND".
func childAdvrPull() error {
	node, err := nsFromEnv().childNode()
	if err != nil {
		return err
	}
	defer node.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p, err := iox.OpenPull(ctx, node, os.Getenv("IOX_SERVICE"), iox.BufferSize(envInt("IOX_BUFFER")))
	if err != nil {
		return err
	}
	fmt.Println("ready")
	lines := parentLines()
	l, err := nextLine(lines, "read ", 20*time.Second)
	if err != nil {
		return err
	}
	want, err := strconv.Atoi(l)
	if err != nil {
		return err
	}
	rctx, stop := context.WithCancel(ctx)
	defer stop()
	go func() {
		for l := range lines {
			if l == "stop" {
				break
			}
		}
		stop()
	}()
	var got []string
	for len(got) < want {
		var m []byte
		if os.Getenv("IOX_IN") == "1" {
			var ok bool
			select {
			case m, ok = <-p.In():
			case <-rctx.Done():
			}
			if !ok {
				break
			}
		} else if m, err = p.Recv(rctx); err != nil {
			break
		}
		got = append(got, string(m))
	}
	fmt.Println("got", len(got), strings.Join(got, " "))
	<-rctx.Done()
	fmt.Println("closed", kindOf(p.Close()))
	return nil
}

// TestAdvrPushCloseAtCapacity: a pusher fills its one puller to capacity
// (the puller's queue and the pusher's queue), then closes while the puller
// reads everything: Close returns nil.
func TestAdvrPushCloseAtCapacity(t *testing.T) {
	for _, sz := range []struct{ buffer, cap int }{{1, 1}, {2, 2}, {4, 64}, {64, 64}} {
		t.Run(fmt.Sprintf("buffer%d-cap%d", sz.buffer, sz.cap), func(t *testing.T) {
			ns := newNamespace(t)
			node := ns.node(t)
			ctx := advCtx(t)
			c := spawn(t, ns, "advr-pull", "IOX_SERVICE=cap", "IOX_BUFFER="+strconv.Itoa(sz.buffer))
			c.expect("ready")
			p, err := iox.OpenPush(ctx, node, "cap", iox.WithChanCap(sz.cap), iox.WithLinger(10*time.Second))
			require.NoError(t, err)
			eventually(t, "the puller", func() bool { return p.Pullers() == 1 })
			sent := fillSender(t, ctx, "iox.(*Push[...]).Send", func(ctx context.Context, i uint64) error {
				return p.Send(ctx, []byte(strconv.FormatUint(i, 10)))
			})
			require.Equal(t, uint64(sz.buffer+sz.cap), sent)
			c.say(fmt.Sprintf("read %d", sent))
			err = p.Close()
			want := make([]string, sent)
			for i := range want {
				want[i] = strconv.Itoa(i)
			}
			require.Equal(t, fmt.Sprintf("got %d %s", sent, strings.Join(want, " ")), c.line())
			require.NoError(t, err, "Close after the puller read all %d messages", sent)
			c.say("stop")
			c.expect("closed nil")
			c.wait()
		})
	}
}

// TestAdvrCloseHoldingViews: an end that holds as many views of its peer's
// messages as it may (MaxBorrowed) closes while the peer reads everything it
// sent: the peer took every message, so Close returns nil.
func TestAdvrCloseHoldingViews(t *testing.T) {
	const borrowed = 4
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := advCtx(t)
	c := spawn(t, ns, "advr-reader", "IOX_SERVICE=views", "IOX_BUFFER=8", "IOX_CAP=8", "IOX_SEND=8")
	c.expect("ready")
	p, err := iox.OpenPair(ctx, node, "views", iox.BufferSize(8), iox.WithChanCap(8), iox.MaxBorrowed(borrowed), iox.WithLinger(5*time.Second))
	require.NoError(t, err)
	var views []*iox.View
	for range borrowed - 1 { // a copying Recv needs the last slot
		v, err := p.RecvView(ctx)
		require.NoError(t, err)
		views = append(views, v)
	}
	for i := range uint64(5) {
		require.NoError(t, p.Send(ctx, seqMsg(i)))
	}
	c.say("read 5")
	c.expect("got 5")
	err = p.Close()
	require.NoError(t, err, "Close after the peer read every message, holding %d views", len(views))
	for _, v := range views {
		v.Release()
	}
	c.say("bye")
	c.expect("closed nil")
	c.wait()
}

// TestAdvrCloseAtCapacityOut: as TestAdvrCloseAtCapacity, with one more value
// handed to Out while everything is full: Out's goroutine holds it when Close
// is called, and it goes before the bye.
func TestAdvrCloseAtCapacityOut(t *testing.T) {
	for _, kind := range []string{"pair", "pub"} {
		t.Run(kind, func(t *testing.T) {
			ns := newNamespace(t)
			node := ns.node(t)
			ctx := advCtx(t)
			role := "advr-reader"
			if kind == "pub" {
				role = "advr-sub"
			}
			c := spawn(t, ns, role, "IOX_SERVICE=capout", "IOX_BUFFER=2", "IOX_CAP=2", "IOX_SIZE=8")
			c.expect("ready")
			var send func(context.Context, []byte) error
			var out chan<- []byte
			var closeIt func() error
			fn := "iox.(*Pair[...]).Send"
			if kind == "pub" {
				p, err := iox.OpenPub(ctx, node, "capout", iox.BufferSize(2), iox.WithChanCap(2), iox.WithLinger(10*time.Second))
				require.NoError(t, err)
				waitSubscribers(t, p, 1)
				send, out, closeIt, fn = p.Send, p.Out(), p.Close, "iox.(*Pub[...]).Send"
			} else {
				p, err := iox.OpenPair(ctx, node, "capout", iox.BufferSize(2), iox.WithChanCap(2), iox.WithLinger(10*time.Second))
				require.NoError(t, err)
				eventually(t, "the peer", p.Connected)
				send, out, closeIt = p.Send, p.Out(), p.Close
			}
			sent := fillSender(t, ctx, fn, func(ctx context.Context, i uint64) error { return send(ctx, seqMsg(i)) })
			// The peer's keeper, which looks after a receiving side nobody
			// reads, may still take some of what filled it when it next
			// runs: a value Out took then goes out at once. Out takes more
			// until its goroutine waits for room.
			for held := false; !held; {
				out <- seqMsg(sent)
				sent++
				held = outHeld(t)
			}
			c.say(fmt.Sprintf("read %d", sent))
			err := closeIt()
			c.expect(fmt.Sprintf("got %d", sent))
			require.NoError(t, err, "Close after the peer read all %d messages", sent)
			c.say("bye")
			if kind == "pair" {
				c.expect("closed nil")
			}
			c.wait()
		})
	}
}

// outHeld waits until the goroutine behind Out, which was just handed a
// value, either waits for room with it (true) or sent it and waits for the
// next value (false).
func outHeld(t *testing.T) bool {
	t.Helper()
	var held bool
	eventually(t, "Out's goroutine to send its value or wait for room", func() bool {
		if goroutinesIn("iox.(*sender[...]).put", true) > 0 {
			held = true
			return true
		}
		return goroutinesIn("iox.(*outlet[...]).forward", true) > 0 && goroutinesIn("iox.(*sender[...]).put", false) == 0
	})
	return held
}

// childAdvrSubs opens IOX_SUBS subscribers of IOX_SERVICE (the first creates
// the service with MaxSubscribers IOX_MAX), says "ready", and reads IOX_N
// messages on each; it reports "got K" with the number of subscribers that
// got all of them in order, and closes them when the parent hangs up.
func childAdvrSubs() error {
	node, err := nsFromEnv().childNode()
	if err != nil {
		return err
	}
	defer node.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	subs := make([]*iox.Sub[[]byte], envInt("IOX_SUBS"))
	for i := range subs {
		if subs[i], err = iox.OpenSub(ctx, node, os.Getenv("IOX_SERVICE"), iox.MaxSubscribers(envInt("IOX_MAX"))); err != nil {
			return err
		}
		defer subs[i].Close()
	}
	fmt.Println("ready")
	var ok atomic.Int64
	var wg sync.WaitGroup
	for _, s := range subs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range uint64(envInt("IOX_N")) {
				m, err := s.Recv(ctx)
				if err != nil || binary.LittleEndian.Uint64(m) != i {
					return
				}
			}
			ok.Add(1)
		}()
	}
	wg.Wait()
	fmt.Println("got", ok.Load())
	parentSays()
	return nil
}

// TestAdvrPubCloseManySubscribers: a lossless publisher opened with the
// default MaxSubscribers joins a service another process created for more
// subscribers, and all of them read every message. Close returns nil: every
// subscriber can confirm (the publisher once made room for the
// confirmations of twice its own MaxSubscribers, not the service's, and
// reported the others as not confirmed).
func TestAdvrPubCloseManySubscribers(t *testing.T) {
	const subs, n = 20, 10
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := advCtx(t)
	c := spawn(t, ns, "advr-subs", "IOX_SERVICE=many", fmt.Sprintf("IOX_SUBS=%d", subs), "IOX_MAX=32", fmt.Sprintf("IOX_N=%d", n))
	c.expect("ready")
	p, err := iox.OpenPub(ctx, node, "many", iox.WithLinger(10*time.Second))
	require.NoError(t, err)
	waitSubscribers(t, p, subs)
	for i := range uint64(n) {
		require.NoError(t, p.Send(ctx, seqMsg(i)))
	}
	c.expect(fmt.Sprintf("got %d", subs))
	require.NoError(t, p.Close(), "Close after %d subscribers read every message", subs)
	c.wait()
}

// TestAdvrPushOutDeliveredAtClose: a value Out took before Close goes to a
// puller before the pusher ends, as a pair's or a publisher's Out sends it
// before the bye, and counts in Close's result: here the puller reads
// everything, so it gets the value and Close returns nil. (Out's value once
// was refused as Close ended the pusher, sent to OnDrop and reported as not
// delivered, although a puller was there to take it.)
func TestAdvrPushOutDeliveredAtClose(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := advCtx(t)
	c := spawn(t, ns, "advr-pull", "IOX_SERVICE=pushout", "IOX_BUFFER=1")
	c.expect("ready")
	var dropped atomic.Int64
	p, err := iox.OpenPush(ctx, node, "pushout", iox.WithChanCap(1), iox.WithLinger(10*time.Second),
		iox.OnDrop(func(error) { dropped.Add(1) }))
	require.NoError(t, err)
	eventually(t, "the puller", func() bool { return p.Pullers() == 1 })
	require.NoError(t, p.Send(ctx, []byte("m0"))) // into the puller's queue
	require.NoError(t, p.Send(ctx, []byte("m1"))) // waits in the pusher's queue
	p.Out() <- []byte("v")                        // Out's goroutine waits for room
	waitParked(t, "iox.(*Push[...]).Send", 1)
	closed := make(chan error, 1)
	go func() { closed <- p.Close() }()
	waitParked(t, "iox.(*Push[...]).Close", 1) // Close waits for the puller
	c.say("read 3")
	err = <-closed
	c.say("stop")
	line := c.line()
	require.Equal(t, "got 3 m0 m1 v", line, "what the puller got")
	require.NoError(t, err, "Close after the puller took every message")
	require.Zero(t, dropped.Load(), "values given to OnDrop")
	c.expect("closed nil")
	c.wait()
}

// TestAdvrPubCloseShortLinger: WithLinger(0) (or 1 ns) leaves a publisher no
// time to wait. A lossy publisher has nothing to wait for: everything it
// sent is in shared memory, and Close returns nil (it once reported "0
// messages were still queued" as not delivered). A lossless one can hardly
// have its subscribers' confirmation, and says so, not that messages were
// queued.
func TestAdvrPubCloseShortLinger(t *testing.T) {
	for _, linger := range []time.Duration{0, 1} {
		for _, lossy := range []bool{true, false} {
			t.Run(fmt.Sprintf("linger%v-lossy%v", linger, lossy), func(t *testing.T) {
				ns := newNamespace(t)
				node := ns.node(t)
				ctx := advCtx(t)
				var opts []iox.Option
				if lossy {
					opts = append(opts, iox.Lossy())
				}
				for r := 0; r < 20; r++ { // the bye's turn was a coin toss against the ended linger
					name := fmt.Sprintf("short-%d", r)
					s, err := iox.OpenSub(ctx, node, name, opts...)
					require.NoError(t, err)
					p, err := iox.OpenPub(ctx, node, name, append(opts, iox.WithLinger(linger))...)
					require.NoError(t, err)
					require.NoError(t, p.Send(ctx, []byte("m")))
					m, err := s.Recv(ctx)
					require.NoError(t, err)
					require.Equal(t, "m", string(m))
					err = p.Close()
					if lossy {
						require.NoError(t, err, "round %d: a lossy Close with nothing queued", r)
					} else if err != nil { // nil when the subscriber's confirmation came at once
						require.ErrorIs(t, err, iox.ErrUndelivered, "round %d", r)
						require.NotContains(t, err.Error(), "0 messages were still queued", "round %d", r)
						require.Contains(t, err.Error(), "subscriber", "round %d: what was not confirmed", r)
					}
					require.NoError(t, s.Close())
				}
			})
		}
	}
}

// TestAdvrMaxMessageSizeZeroReceives: MaxMessageSize(0) allows only empty
// messages, on both sides: a channel drops a larger incoming message and
// reports ErrMessageTooLarge in its place, as it does for any other bound
// (a receiving end with MaxMessageSize(0) once took messages of any size).
func TestAdvrMaxMessageSizeZeroReceives(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := advCtx(t)
	for _, bound := range []int{0, 1} {
		t.Run(fmt.Sprintf("pair%d", bound), func(t *testing.T) {
			name := fmt.Sprintf("mm-pair%d", bound)
			a, err := iox.OpenPair(ctx, node, name)
			require.NoError(t, err)
			b, err := iox.OpenPair(ctx, node, name, iox.MaxMessageSize(bound))
			require.NoError(t, err)
			require.NoError(t, a.Send(ctx, []byte("too large")))
			require.NoError(t, a.Send(ctx, []byte{}))
			_, err = b.Recv(ctx)
			require.ErrorIs(t, err, iox.ErrMessageTooLarge)
			m, err := b.Recv(ctx)
			require.NoError(t, err)
			require.Empty(t, m)
			a.Close()
			b.Close()
		})
		for _, lossy := range []bool{false, true} {
			t.Run(fmt.Sprintf("sub%d-lossy%v", bound, lossy), func(t *testing.T) {
				name := fmt.Sprintf("mm-sub%d-%v", bound, lossy)
				var opts []iox.Option
				if lossy {
					opts = append(opts, iox.Lossy())
				}
				s, err := iox.OpenSub(ctx, node, name, append(opts, iox.MaxMessageSize(bound))...)
				require.NoError(t, err)
				p, err := iox.OpenPub(ctx, node, name, opts...)
				require.NoError(t, err)
				require.NoError(t, p.Send(ctx, []byte("too large")))
				require.NoError(t, p.Send(ctx, []byte{}))
				_, err = s.Recv(ctx)
				require.ErrorIs(t, err, iox.ErrMessageTooLarge)
				m, err := s.Recv(ctx)
				require.NoError(t, err)
				require.Empty(t, m)
				p.Close()
				s.Close()
			})
		}
		t.Run(fmt.Sprintf("pull%d", bound), func(t *testing.T) {
			name := fmt.Sprintf("mm-pull%d", bound)
			pl, err := iox.OpenPull(ctx, node, name, iox.MaxMessageSize(bound))
			require.NoError(t, err)
			ps, err := iox.OpenPush(ctx, node, name)
			require.NoError(t, err)
			eventually(t, "the puller", func() bool { return ps.Pullers() == 1 })
			require.NoError(t, ps.Send(ctx, []byte("too large")))
			require.NoError(t, ps.Send(ctx, []byte{}))
			_, err = pl.Recv(ctx)
			require.ErrorIs(t, err, iox.ErrMessageTooLarge)
			m, err := pl.Recv(ctx)
			require.NoError(t, err)
			require.Empty(t, m)
			ps.Close()
			pl.Close()
		})
	}
}

// panicCodec carries one byte per int and panics where a careless codec
// would: encoding a negative value, decoding the byte 0xff.
type panicCodec struct{}

func (panicCodec) Append(dst []byte, v int) ([]byte, error) {
	if v < 0 {
		panic("negative value")
	}
	return append(dst, byte(v)), nil
}

func (panicCodec) Decode(b []byte) (int, error) {
	if len(b) != 1 || b[0] == 0xff {
		panic("hostile byte")
	}
	return int(b[0]), nil
}

// childAdvrPanicCodec opens the pair IOX_SERVICE with panicCodec, says
// "ready", and reports what the next two Recv calls return ("recv KIND V"),
// then what Send(-1) returns and what OnDrop got for -1 sent on Out
// ("send KIND", "out KIND").
func childAdvrPanicCodec() error {
	node, err := nsFromEnv().childNode()
	if err != nil {
		return err
	}
	defer node.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dropped := make(chan error, 4)
	p, err := iox.OpenPairOf[int](ctx, node, os.Getenv("IOX_SERVICE"), panicCodec{},
		iox.OnDrop(func(err error) { dropped <- err }))
	if err != nil {
		return err
	}
	defer p.Close()
	fmt.Println("ready")
	for range 2 {
		v, err := p.Recv(ctx)
		fmt.Println("recv", kindOf(err), v)
	}
	fmt.Println("send", kindOf(p.Send(ctx, -1)))
	p.Out() <- -1
	select {
	case err := <-dropped:
		fmt.Println("out", kindOf(err))
	case <-ctx.Done():
		fmt.Println("out nothing")
	}
	parentSays()
	return nil
}

// TestAdvrCodecPanicsAreErrors: a codec that panics on a hostile message (or
// a value it cannot encode) must not take the process down from one of the
// channel's own goroutines, where nobody can recover it: the panic is an
// error for that one message (ErrInvalidArgument), which Recv returns or
// OnDrop gets, and the channel goes on. The hostile peer is another process;
// its Close, after the other end closed, confirms both its messages: the
// other end took the hostile one and told its application (it was once
// counted as not taken when the receiving end closed first, although an
// end still open confirms it).
func TestAdvrCodecPanicsAreErrors(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := advCtx(t)
	c := spawn(t, ns, "advr-panic-codec", "IOX_SERVICE=panics")
	c.expect("ready")
	p, err := iox.OpenPair(ctx, node, "panics")
	require.NoError(t, err)
	require.NoError(t, p.Send(ctx, []byte{0xff})) // its decoder panics
	require.NoError(t, p.Send(ctx, []byte{7}))
	require.Equal(t, "recv ErrInvalidArgument 0", c.line(), "the hostile message")
	require.Equal(t, "recv nil 7", c.line(), "the message after it")
	require.Equal(t, "send ErrInvalidArgument", c.line(), "Send of a value the encoder panics on")
	require.Equal(t, "out ErrInvalidArgument", c.line(), "OnDrop for such a value on Out")
	c.say("bye")
	c.wait()
	require.NoError(t, p.Close())
}

// lyingCodec declares the fixed payload type "u64" (8 bytes) but encodes a
// value as that many bytes: a codec whose values do not always fit the type
// it declares.
type lyingCodec struct{}

func (lyingCodec) Append(dst []byte, n int) ([]byte, error) {
	return append(dst, make([]byte, n)...), nil
}
func (lyingCodec) Decode(b []byte) (int, error) { return len(b), nil }
func (lyingCodec) PayloadType() iox.PayloadType {
	return iox.PayloadType{Name: "u64", Size: 8, Align: 8, Fixed: true}
}

// TestAdvrWrongSizeForFixedTypeFailsOneSend: a value whose encoding does not
// fit the service's fixed payload type fails that one Send with
// ErrInvalidArgument, saying why, and the channel goes on, also while
// messages wait in the queue (one that waited there once ended the whole
// publisher when its turn came, and the messages behind it with it).
func TestAdvrWrongSizeForFixedTypeFailsOneSend(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := advCtx(t)
	p, err := iox.OpenPubOf[int](ctx, node, "lying", lyingCodec{}, iox.WaitSubscribers(1))
	require.NoError(t, err)
	require.NoError(t, p.Send(ctx, 8)) // waits for the subscriber
	err = p.Send(ctx, 5)
	require.ErrorIs(t, err, iox.ErrInvalidArgument)
	require.Contains(t, err.Error(), "5 bytes")
	require.NoError(t, p.Send(ctx, 8))
	s, err := iox.OpenSubOf[int](ctx, node, "lying", lyingCodec{})
	require.NoError(t, err)
	for i := range 2 {
		v, err := s.Recv(ctx)
		require.NoError(t, err, "message %d", i)
		require.Equal(t, 8, v)
	}
	require.NoError(t, p.Err(), "the publisher goes on")
	require.NoError(t, p.Close())
	require.NoError(t, s.Close())
}

// TestAdvrWrongSizeForFixedTypeFailsOnePush is
// TestAdvrWrongSizeForFixedTypeFailsOneSend for a pusher: the value fails its
// own Send (it was queued, Send returned nil, and it went to OnDrop when its
// turn came), and the pipeline goes on.
func TestAdvrWrongSizeForFixedTypeFailsOnePush(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := advCtx(t)
	p, err := iox.OpenPushOf[int](ctx, node, "lying-push", lyingCodec{})
	require.NoError(t, err)
	require.NoError(t, p.Send(ctx, 8)) // queued: no puller yet
	err = p.Send(ctx, 5)
	require.ErrorIs(t, err, iox.ErrInvalidArgument)
	require.Contains(t, err.Error(), "5 bytes")
	require.NoError(t, p.Send(ctx, 8))
	q, err := iox.OpenPullOf[int](ctx, node, "lying-push", lyingCodec{})
	require.NoError(t, err)
	for i := range 2 {
		v, err := q.Recv(ctx)
		require.NoError(t, err, "message %d", i)
		require.Equal(t, 8, v)
	}
	require.NoError(t, p.Err(), "the pusher goes on")
	require.NoError(t, p.Close())
	require.NoError(t, q.Close())
}

// TestAdvrFixedTypePushQueuedBeforePuller: values of a fixed-layout type that
// wait in a pusher's queue until a puller comes reach it, each in its own
// sample, in order (the pusher packed them several to a sample, which a fixed
// type cannot carry, and the puller never got them).
func TestAdvrFixedTypePushQueuedBeforePuller(t *testing.T) {
	const n = 10
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := advCtx(t)
	f, err := iox.Fixed[uint64]("u64")
	require.NoError(t, err)
	p, err := iox.OpenPushOf[uint64](ctx, node, "fixed-push", f)
	require.NoError(t, err)
	for i := range uint64(n) {
		require.NoError(t, p.Send(ctx, i)) // queued: no puller yet
	}
	q, err := iox.OpenPullOf[uint64](ctx, node, "fixed-push", f)
	require.NoError(t, err)
	for i := range uint64(n) {
		v, err := q.Recv(ctx)
		require.NoError(t, err, "value %d", i)
		require.Equal(t, i, v)
	}
	require.NoError(t, p.Close())
	require.NoError(t, q.Close())
}

// childAdvrFixed opens a pair end (IOX_KIND "pair") or a lossless
// subscriber ("sub") of IOX_SERVICE carrying Fixed[uint64], says "ready",
// reads IOX_N values in order and, on a pair, until the pair ends; it
// reports "got N KIND" and closes when the parent hangs up.
func childAdvrFixed() error {
	node, err := nsFromEnv().childNode()
	if err != nil {
		return err
	}
	defer node.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	f, err := iox.Fixed[uint64]("u64")
	if err != nil {
		return err
	}
	var recv func(context.Context) (uint64, error)
	if os.Getenv("IOX_KIND") == "pair" {
		p, err := iox.OpenPairOf[uint64](ctx, node, os.Getenv("IOX_SERVICE"), f)
		if err != nil {
			return err
		}
		defer p.Close()
		recv = p.Recv
	} else {
		s, err := iox.OpenSubOf[uint64](ctx, node, os.Getenv("IOX_SERVICE"), f)
		if err != nil {
			return err
		}
		defer s.Close()
		recv = s.Recv
	}
	fmt.Println("ready")
	n, want := uint64(0), uint64(envInt("IOX_N"))
	var end error
	for os.Getenv("IOX_KIND") == "pair" || n < want {
		v, err := recv(ctx)
		if err != nil {
			end = err
			break
		}
		if v != n {
			return fmt.Errorf("value %d is %d", n, v)
		}
		n++
	}
	fmt.Println("got", n, kindOf(end))
	parentSays()
	return nil
}

// TestAdvrFixedTypeCloseConfirms: a pair or lossless publisher of a
// fixed-layout type whose peer took every value gets its confirmation:
// Close returns nil. (The bye, an empty sample, did not fit a fixed payload
// type and never went out: every such Close reported the values as not
// confirmed, and the peer saw the end only from the closing end leaving.)
func TestAdvrFixedTypeCloseConfirms(t *testing.T) {
	const n = 5
	for _, kind := range []string{"pair", "sub"} {
		t.Run(kind, func(t *testing.T) {
			ns := newNamespace(t)
			node := ns.node(t)
			ctx := advCtx(t)
			f, err := iox.Fixed[uint64]("u64")
			require.NoError(t, err)
			c := spawn(t, ns, "advr-fixed", "IOX_SERVICE=fixed", "IOX_KIND="+kind, fmt.Sprintf("IOX_N=%d", n))
			c.expect("ready")
			var send func(context.Context, uint64) error
			var closeIt func() error
			if kind == "pair" {
				p, err := iox.OpenPairOf[uint64](ctx, node, "fixed", f, iox.WithLinger(20*time.Second))
				require.NoError(t, err)
				send, closeIt = p.Send, p.Close
			} else {
				p, err := iox.OpenPubOf[uint64](ctx, node, "fixed", f, iox.WaitSubscribers(1), iox.WithLinger(20*time.Second))
				require.NoError(t, err)
				send, closeIt = p.Send, p.Close
			}
			for i := range uint64(n) {
				require.NoError(t, send(ctx, i))
			}
			if kind == "sub" {
				c.expect(fmt.Sprintf("got %d nil", n))
			}
			within(t, 10*time.Second, "Close", func() { err = closeIt() })
			require.NoError(t, err, "Close after the peer took all %d values", n)
			if kind == "pair" {
				c.expect(fmt.Sprintf("got %d ErrPeerClosed", n))
			}
			c.wait()
		})
	}
}

// TestAdvrRefusedOptionsAreNamed: a channel option outside its bounds is
// refused with ErrInvalidArgument naming the option and its value, as the
// README promises ("anything else is ErrInvalidArgument, naming the
// option"); several said only "peer timeout below 4ms", "negative channel
// capacity" or "spin (at most 1 minute), poll and linger must not be
// negative".
func TestAdvrRefusedOptionsAreNamed(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := advCtx(t)
	for _, c := range []struct {
		name string
		opt  iox.Option
	}{
		{"BufferSize(0)", iox.BufferSize(0)},
		{"BufferSize(65537)", iox.BufferSize(65537)},
		{"WithChanCap(-1)", iox.WithChanCap(-1)},
		{"WithChanCap(1048577)", iox.WithChanCap(1<<20 + 1)},
		{"MaxMessageSize(-1)", iox.MaxMessageSize(-1)},
		{"WithPeerTimeout(1ms)", iox.WithPeerTimeout(time.Millisecond)},
		{"WithLinger(-1s)", iox.WithLinger(-time.Second)},
		{"WithRecycling(-1)", iox.WithRecycling(-1)},
		{"History(-1)", iox.History(-1)},
		{"History(65)", iox.History(65)},
		{"WithSpin(2m0s)", iox.WithSpin(2 * time.Minute)},
	} {
		s, err := iox.OpenSub(ctx, node, "named", c.opt)
		if err == nil {
			s.Close()
		}
		require.ErrorIs(t, err, iox.ErrInvalidArgument, c.name)
		require.Contains(t, err.Error(), c.name, "the error names the option and its value")
	}
	for _, c := range []struct {
		name string
		opt  iox.Option
	}{{"WithPoll(0s)", iox.WithPoll(0)}, {"WithPoll(-1ms)", iox.WithPoll(-time.Millisecond)}} {
		s, err := iox.OpenSub(ctx, node, "named", iox.Lossy(), c.opt)
		if err == nil {
			s.Close()
		}
		require.ErrorIs(t, err, iox.ErrInvalidArgument, c.name)
		require.Contains(t, err.Error(), c.name, "the error names the option and its value")
	}
}

// ackNotifiers is how many confirmations the service of a lossless
// publisher's bye (NAME.iox-ack.TAG) holds now, -1 while there is none or
// its ports could not be counted.
func ackNotifiers(t *testing.T, node *iox.Node, name string) int {
	t.Helper()
	infos, err := node.Services()
	require.NoError(t, err)
	for _, info := range infos {
		if info.Pattern == iox.PatternEvent && strings.HasPrefix(info.Name, name+".iox-ack.") && info.PortsKnown {
			return info.Ports.Notifiers
		}
	}
	return -1
}

// TestAdvrPubConfirmationOutlastsSubscriberLinger: a subscriber that
// confirmed a publisher's bye keeps its confirmation while the publisher
// still waits for others, however long the publisher's WithLinger is: here
// one subscriber confirms at once and goes on receiving, the other takes
// the publisher's messages only after the first one's own linger time
// has passed many times, and Close returns nil. (The first confirmation was
// withdrawn after twice the subscriber's linger time, and the publisher then
// reported a subscriber as not confirming.)
func TestAdvrPubConfirmationOutlastsSubscriberLinger(t *testing.T) {
	const n = 6
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := advCtx(t)
	fast, err := iox.OpenSub(ctx, node, "outlast", iox.WithLinger(20*time.Millisecond))
	require.NoError(t, err)
	defer fast.Close()
	// slow's end holds 5 messages (buffer 4 + channel 1) for an application
	// that does not read: the sixth and the bye wait in its shared memory
	// (with only 5 messages, its end could take the bye with the last one,
	// and confirm)
	slow, err := iox.OpenSub(ctx, node, "outlast", iox.BufferSize(4), iox.WithChanCap(1))
	require.NoError(t, err)
	defer slow.Close()
	a, err := iox.OpenPub(ctx, node, "outlast", iox.WithLinger(20*time.Second))
	require.NoError(t, err)
	waitSubscribers(t, a, 2)
	for i := range uint64(n) {
		require.NoError(t, a.Send(ctx, sizedMsg(i, 5<<10))) // one to a sample
	}
	for i := range uint64(n) {
		m, err := fast.Recv(ctx)
		require.NoError(t, err)
		require.Equal(t, i, binary.LittleEndian.Uint64(m))
	}
	closed := make(chan error, 1)
	go func() { closed <- a.Close() }()
	eventually(t, "the fast subscriber's confirmation", func() bool { return ackNotifiers(t, node, "outlast") == 1 })
	// The fast subscriber goes on looking for messages well beyond twice
	// its linger time: each look is where it withdrew its confirmation.
	start := time.Now()
	eventually(t, "many looks by the fast subscriber", func() bool {
		rctx, cancel := context.WithTimeout(ctx, 5*time.Millisecond)
		fast.Recv(rctx)
		cancel()
		return time.Since(start) > 300*time.Millisecond
	})
	acks := -1
	eventually(t, "the confirmations counted", func() bool { acks = ackNotifiers(t, node, "outlast"); return acks >= 0 })
	require.Equal(t, 1, acks, "the fast subscriber's confirmation while the publisher waits")
	for i := range uint64(n) { // the slow one takes what waited for it, then the bye
		m, err := slow.Recv(ctx)
		require.NoError(t, err)
		require.Equal(t, i, binary.LittleEndian.Uint64(m))
	}
	within(t, 15*time.Second, "Close", func() { err = <-closed })
	require.NoError(t, err, "Close after both subscribers took every message")
}

// TestAdvrPubCloseIgnoresLateSubscribers: a subscriber that joins after a
// lossless publisher's bye went out was owed nothing (it gets what is
// published after it joined: nothing), so the publisher's Close does not
// wait for its confirmation: once the subscribers that were there took
// everything, Close returns nil (it waited for the newcomer, which never
// sees the bye, and reported it as not confirming).
func TestAdvrPubCloseIgnoresLateSubscribers(t *testing.T) {
	const n = 6
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := advCtx(t)
	fast, err := iox.OpenSub(ctx, node, "late")
	require.NoError(t, err)
	defer fast.Close()
	// slow's end holds 5 messages (buffer 4 + channel 1) for an application
	// that does not read: the rest and the bye wait in its shared memory.
	slow, err := iox.OpenSub(ctx, node, "late", iox.BufferSize(4), iox.WithChanCap(1))
	require.NoError(t, err)
	defer slow.Close()
	a, err := iox.OpenPub(ctx, node, "late", iox.WithLinger(5*time.Second))
	require.NoError(t, err)
	waitSubscribers(t, a, 2)
	for i := range n {
		require.NoError(t, a.Send(ctx, sizedMsg(uint64(i), 5<<10))) // one to a sample
	}
	for i := range uint64(n) {
		m, err := fast.Recv(ctx)
		require.NoError(t, err)
		require.Equal(t, i, binary.LittleEndian.Uint64(m))
	}
	closed := make(chan error, 1)
	go func() { closed <- a.Close() }()
	eventually(t, "the fast subscriber's confirmation", func() bool { return ackNotifiers(t, node, "late") == 1 })
	newcomer, err := iox.OpenSub(ctx, node, "late")
	require.NoError(t, err)
	defer newcomer.Close()
	for i := range uint64(n) {
		m, err := slow.Recv(ctx)
		require.NoError(t, err)
		require.Equal(t, i, binary.LittleEndian.Uint64(m))
	}
	within(t, 15*time.Second, "Close", func() { err = <-closed })
	require.NoError(t, err, "Close after the subscribers that were there took every message")
}

// TestAdvrPubCloseAfterASubscriberLeft: a subscriber that the bye reached
// and that closes without taking it never confirms, so the publisher's Close
// reports it (ErrUndelivered, 1 of 2), never nil, once its linger time is
// over (it returned nil once the other subscriber confirmed).
func TestAdvrPubCloseAfterASubscriberLeft(t *testing.T) {
	const n = 6
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := advCtx(t)
	fast, err := iox.OpenSub(ctx, node, "left")
	require.NoError(t, err)
	defer fast.Close()
	// gone's end holds 5 messages for an application that does not read:
	// the sixth and the bye wait in its shared memory
	gone, err := iox.OpenSub(ctx, node, "left", iox.BufferSize(4), iox.WithChanCap(1))
	require.NoError(t, err)
	a, err := iox.OpenPub(ctx, node, "left", iox.WithLinger(2*time.Second))
	require.NoError(t, err)
	waitSubscribers(t, a, 2)
	for i := range n {
		require.NoError(t, a.Send(ctx, sizedMsg(uint64(i), 5<<10)))
	}
	for range n {
		_, err := fast.Recv(ctx)
		require.NoError(t, err)
	}
	closed := make(chan error, 1)
	go func() { closed <- a.Close() }()
	eventually(t, "the fast subscriber's confirmation", func() bool { return ackNotifiers(t, node, "left") == 1 })
	require.NoError(t, gone.Close())
	within(t, time.Minute, "Close", func() { err = <-closed })
	require.ErrorIs(t, err, iox.ErrUndelivered, "a subscriber left without taking everything")
	require.ErrorContains(t, err, "1 of 2 subscribers did not confirm")
}

// TestAdvrPubCloseWithoutItsConfirmationService: when the event service on
// which subscribers confirm a lossless publisher's bye cannot be made (here a
// hostile program made one of that name with other settings first), Close
// still sends what was queued and the bye, and then reports that the
// confirmations could not be awaited (it returned that error at once, and the
// queued messages never went).
func TestAdvrPubCloseWithoutItsConfirmationService(t *testing.T) {
	const n = 20
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := advCtx(t)
	sub, err := iox.OpenSub(ctx, node, "noack", iox.BufferSize(2), iox.WithChanCap(1))
	require.NoError(t, err)
	defer sub.Close()
	a, err := iox.OpenPub(ctx, node, "noack", iox.WithLinger(time.Minute))
	require.NoError(t, err)
	waitSubscribers(t, a, 1)
	hostile, err := node.Event(a.AckService(), iox.MaxEventID(1))
	require.NoError(t, err)
	defer hostile.Close()
	for i := range uint64(n) {
		require.NoError(t, a.Send(ctx, seqMsg(i)))
	}
	closed := make(chan error, 1)
	go func() { closed <- a.Close() }()
	for i := range uint64(n) {
		m, err := sub.Recv(ctx)
		require.NoError(t, err, "message %d", i)
		require.Equal(t, seqMsg(i), m)
	}
	within(t, time.Minute, "Close", func() { err = <-closed })
	require.ErrorIs(t, err, iox.ErrUndelivered)
	require.ErrorContains(t, err, "cannot be awaited")
}

// TestAdvrPubCloseAfterASubscriberDied is TestAdvrPubCloseAfterASubscriberLeft
// with the subscriber that does not read in another process, killed after the
// bye reached it; when it was the only subscriber, Close says so at once
// rather than after its linger time of ten minutes.
func TestAdvrPubCloseAfterASubscriberDied(t *testing.T) {
	const n = 6 // the child's end holds 5: the sixth and the bye wait in its shared memory
	for _, tc := range []struct {
		name   string
		stay   bool // a second subscriber takes everything and confirms
		linger time.Duration
		want   string
	}{
		{"one of two died", true, 2 * time.Second, "1 of 2 subscribers did not confirm"},
		{"the only one died", false, 10 * time.Minute, "1 of 1 subscribers did not confirm: they left"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := newNamespace(t)
			node := ns.node(t)
			ctx := advCtx(t)
			var fast *iox.Sub[[]byte]
			subs := 1
			if tc.stay {
				var err error
				fast, err = iox.OpenSub(ctx, node, "died")
				require.NoError(t, err)
				defer fast.Close()
				subs = 2
			}
			a, err := iox.OpenPub(ctx, node, "died", iox.WithLinger(tc.linger))
			require.NoError(t, err)
			c := spawn(t, ns, "advr-hold", "IOX_SERVICE=died")
			c.expect("ready")
			waitSubscribers(t, a, subs)
			for i := range n {
				require.NoError(t, a.Send(ctx, sizedMsg(uint64(i), 5<<10)))
			}
			if tc.stay {
				for range n {
					_, err := fast.Recv(ctx)
					require.NoError(t, err)
				}
			}
			closed := make(chan error, 1)
			go func() { closed <- a.Close() }()
			if tc.stay {
				eventually(t, "the staying subscriber's confirmation", func() bool { return ackNotifiers(t, node, "died") == 1 })
			} else {
				eventually(t, "the bye to reach the subscriber", func() bool { return a.ByeSent() })
			}
			c.kill()
			within(t, time.Minute, "Close", func() { err = <-closed })
			require.ErrorIs(t, err, iox.ErrUndelivered, "a subscriber died without taking everything")
			require.ErrorContains(t, err, tc.want)
		})
	}
}

// childAdvrHold subscribes to IOX_SERVICE with room for 5 messages in its end
// (a buffer of 4 and a channel of 1), says "ready" and reads nothing until it
// is killed.
func childAdvrHold() error {
	node, err := nsFromEnv().childNode()
	if err != nil {
		return err
	}
	defer node.Close()
	sub, err := iox.OpenSub(context.Background(), node, os.Getenv("IOX_SERVICE"), iox.BufferSize(4), iox.WithChanCap(1))
	if err != nil {
		return err
	}
	defer sub.Close()
	fmt.Println("ready")
	parentSays()
	return nil
}
