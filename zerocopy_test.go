package iox_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/iox-go/iox"
)

func init() {
	children["zc-pair-views"] = childZCPairViews
}

// zcFill writes message i of n bytes: its number, then a pattern of it.
func zcFill(b []byte, i int) {
	for k := range b {
		b[k] = byte(k*13 + i)
	}
	if len(b) >= 8 {
		binary.LittleEndian.PutUint64(b, uint64(i))
	}
}

func zcCheck(b []byte, i, n int) error {
	if len(b) != n {
		return fmt.Errorf("message %d has %d bytes, want %d", i, len(b), n)
	}
	want := make([]byte, n)
	zcFill(want, i)
	if string(b) != string(want) {
		return fmt.Errorf("message %d arrived damaged or out of order", i)
	}
	return nil
}

// childZCPairViews receives IOX_COUNT messages of IOX_SIZE bytes on the pair
// IOX_SERVICE with RecvView, holding up to IOX_HOLD views at once, checks each
// and says "got N" at the end.
func childZCPairViews() error {
	node, err := nsFromEnv().childNode()
	if err != nil {
		return err
	}
	defer node.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	count, size, hold := envInt("IOX_COUNT"), envInt("IOX_SIZE"), max(envInt("IOX_HOLD"), 1)
	p, err := iox.OpenPair(ctx, node, os.Getenv("IOX_SERVICE"))
	if err != nil {
		return err
	}
	defer p.Close()
	fmt.Println("ready")
	var held []*iox.View
	for i := 0; i < count; i++ {
		v, err := p.RecvView(ctx)
		if err != nil {
			return fmt.Errorf("view %d: %w", i, err)
		}
		if err := zcCheck(v.Bytes(), i, size); err != nil {
			return err
		}
		held = append(held, v)
		if len(held) == hold {
			for _, v := range held {
				v.Release()
			}
			held = held[:0]
		}
	}
	for _, v := range held {
		v.Release()
	}
	fmt.Println("got", count)
	parentSays()
	return nil
}

// TestZeroCopyPairAcrossProcesses: loans written in place and sent without a
// copy arrive in order and intact as views, for small and large messages, with
// the receiver holding several views at once; Close confirms them all.
func TestZeroCopyPairAcrossProcesses(t *testing.T) {
	for _, tc := range []struct{ size, count, hold int }{{64, 2000, 1}, {4 << 10, 1000, 3}, {1 << 20, 60, 2}} {
		t.Run(strconv.Itoa(tc.size), func(t *testing.T) {
			ns := newNamespace(t)
			node := ns.node(t)
			ctx := advCtx(t)
			name := fmt.Sprintf("zc-%d", tc.size)
			p, err := iox.OpenPair(ctx, node, name)
			require.NoError(t, err)
			c := spawn(t, ns, "zc-pair-views", "IOX_SERVICE="+name, fmt.Sprintf("IOX_COUNT=%d", tc.count),
				fmt.Sprintf("IOX_SIZE=%d", tc.size), fmt.Sprintf("IOX_HOLD=%d", tc.hold))
			c.expect("ready")
			for i := 0; i < tc.count; i++ {
				l, err := p.Loan(ctx, tc.size)
				require.NoError(t, err)
				zcFill(l.Bytes(), i)
				require.NoError(t, p.SendLoan(ctx, l), "message %d", i)
				require.Nil(t, l.Bytes(), "a sent loan no longer reaches the memory")
			}
			c.expect(fmt.Sprintf("got %d", tc.count))
			require.NoError(t, p.Close())
			c.wait()
		})
	}
}

func init() {
	children["zc-park-race"] = childZCParkRace
	children["zc-sub-views"] = childZCSubViews
	children["zc-write-view"] = childZCWriteView
}

// childZCWriteView takes one message on the pair IOX_SERVICE as a view and
// writes to it.
func childZCWriteView() error {
	node, err := nsFromEnv().childNode()
	if err != nil {
		return err
	}
	defer node.Close()
	p, err := iox.OpenPair(context.Background(), node, os.Getenv("IOX_SERVICE"))
	if err != nil {
		return err
	}
	defer p.Close()
	fmt.Println("ready")
	for {
		v, err := p.RecvView(context.Background())
		if err != nil {
			return err
		}
		v.Bytes()[0]++ // a view in place is read-only: this write faults
		fmt.Println("wrote")
		v.Release()
	}
}

// TestZeroCopyViewIsReadOnly: a receiver that writes to a view in place
// crashes with a fault, as the README says; the sender's pair sees the crash.
// The first message may reach the child before it waits in RecvView (its end
// then took it as a copy, which is writable): the next one is sent once it
// says so, while it waits.
func TestZeroCopyViewIsReadOnly(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := advCtx(t)
	p, err := iox.OpenPair(ctx, node, "zc-ro")
	require.NoError(t, err)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(append(os.Environ(), "IOX_CHILD=zc-write-view", "IOX_SERVICE=zc-ro"), ns.env()...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	lines := bufio.NewScanner(stdout)
	require.True(t, lines.Scan())
	require.Equal(t, "ready", lines.Text())
	eventually(t, "the peer", p.Connected)
	wrote := 0
	for sent := true; sent; {
		l, err := p.Loan(ctx, 1<<20)
		require.NoError(t, err)
		require.NoError(t, p.SendLoan(ctx, l))
		sent = lines.Scan()
		if sent {
			require.Equal(t, "wrote", lines.Text())
			wrote++
			require.Less(t, wrote, 2, "the write to a view went through while the child waited in RecvView")
		}
	}
	require.Error(t, cmd.Wait())
	require.Contains(t, stderr.String(), "unexpected fault address")
	<-p.Done()
	require.ErrorIs(t, p.Err(), iox.ErrPeerCrashed)
	p.Close()
	_, err = node.CleanupDeadNodes()
	require.NoError(t, err)
}

// childZCParkRace receives IOX_COUNT sequence numbers on the pair IOX_SERVICE
// parking at once whenever nothing is there (WithSpin(0)), so that it parks
// and the parent sends at the same moments as often as possible. A message
// that takes seconds to arrive can only be one whose notification was
// skipped: it says "stall at N" then.
func childZCParkRace() error {
	node, err := nsFromEnv().childNode()
	if err != nil {
		return err
	}
	defer node.Close()
	p, err := iox.OpenPair(context.Background(), node, os.Getenv("IOX_SERVICE"), iox.WithSpin(0))
	if err != nil {
		return err
	}
	defer p.Close()
	fmt.Println("ready")
	count := envInt("IOX_COUNT")
	for i := 0; i < count; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second) // a hang guard, not a timing
		m, err := p.Recv(ctx)
		cancel()
		if err != nil {
			fmt.Println("stall at", i, err)
			return nil
		}
		if got := binary.LittleEndian.Uint64(m); got != uint64(i) {
			return fmt.Errorf("message %d has sequence %d", i, got)
		}
	}
	fmt.Println("got", count)
	parentSays()
	return nil
}

// TestNotifyOnlyAParkedReceiverNeverStalls hammers the race between a
// receiver that parks and a sender that skips notifying a receiver that does
// not: the sender sends with no gap, short gaps and yields, while the receiver
// in another process parks whenever its queue is empty. Every message must
// arrive; a skipped notification that a parked receiver needed would leave it
// parked for good.
func TestNotifyOnlyAParkedReceiverNeverStalls(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := advCtx(t)
	count := loops(20000, 5000, 500000)
	p, err := iox.OpenPair(ctx, node, "park-race")
	require.NoError(t, err)
	c := spawn(t, ns, "zc-park-race", "IOX_SERVICE=park-race", fmt.Sprintf("IOX_COUNT=%d", count))
	c.expect("ready")
	rng := seeded(t)
	for i := 0; i < count; i++ {
		require.NoError(t, p.Send(ctx, seqMsg(uint64(i))))
		switch rng.IntN(4) {
		case 0: // back to back
		case 1:
			runtime.Gosched()
		case 2: // a short gap: the receiver is about to park
			for start := time.Now(); time.Since(start) < time.Duration(rng.IntN(20))*time.Microsecond; {
			}
		case 3:
			if rng.IntN(64) == 0 { // now and then long enough for it to park for sure
				time.Sleep(time.Duration(rng.IntN(200)) * time.Microsecond) // the stimulus
			}
		}
	}
	require.Equal(t, fmt.Sprintf("got %d", count), c.line())
	require.NoError(t, p.Close())
	c.wait()
}

// childZCSubViews subscribes to IOX_SERVICE and takes IOX_COUNT messages of
// IOX_SIZE bytes as views, checking each, then says "got N".
func childZCSubViews() error {
	node, err := nsFromEnv().childNode()
	if err != nil {
		return err
	}
	defer node.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := iox.OpenSub(ctx, node, os.Getenv("IOX_SERVICE"))
	if err != nil {
		return err
	}
	defer s.Close()
	fmt.Println("ready")
	count, size := envInt("IOX_COUNT"), envInt("IOX_SIZE")
	for i := 0; i < count; i++ {
		v, err := s.RecvView(ctx)
		if err != nil {
			return fmt.Errorf("view %d: %w", i, err)
		}
		err = zcCheck(v.Bytes(), i, size)
		v.Release()
		if err != nil {
			return err
		}
	}
	fmt.Println("got", count)
	parentSays()
	return nil
}

// TestZeroCopyFanOut: one publisher's loans reach three lossless subscribers
// in other processes, in order and intact, as views; Close confirms them.
func TestZeroCopyFanOut(t *testing.T) {
	zcFanOut(t, "zc-fan", 3, 200, 256<<10)
}

// TestZeroCopyFanOutUnderPressure: loans sent as fast as they go to four
// subscribers that take them as views never find a subscriber full. The
// first ones go as copies (the subscribers cannot tell their room yet), and a
// copy that reached some of them but not all goes again: a subscriber may
// hold that second copy behind the one it took, which the room for a loan in
// place allows for.
func TestZeroCopyFanOutUnderPressure(t *testing.T) {
	zcFanOut(t, "zc-fan-fast", 4, loops(20000, 5000, 500000), 4<<10)
}

// zcFanOut sends count loans of size bytes, each filled by zcFill, as fast as
// they go, to subs subscriber processes that check them as views; Close
// confirms them.
func zcFanOut(t *testing.T, service string, subs, count, size int) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := advCtx(t)
	pub, err := iox.OpenPub(ctx, node, service, iox.WaitSubscribers(subs))
	require.NoError(t, err)
	var cs []*child
	for range subs {
		c := spawn(t, ns, "zc-sub-views", "IOX_SERVICE="+service, fmt.Sprintf("IOX_COUNT=%d", count), fmt.Sprintf("IOX_SIZE=%d", size))
		c.expect("ready")
		cs = append(cs, c)
	}
	for i := 0; i < count; i++ {
		l, err := pub.Loan(ctx, size)
		require.NoError(t, err)
		zcFill(l.Bytes(), i)
		require.NoError(t, pub.SendLoan(ctx, l), "message %d", i)
	}
	for _, c := range cs {
		c.expect(fmt.Sprintf("got %d", count))
	}
	require.NoError(t, pub.Close())
	for _, c := range cs {
		c.wait()
	}
}

// TestZeroCopyRules: what loans and views refuse, typed and without losing
// anything: a loan over the message limit, a loan sent twice, a view beyond
// MaxBorrowed (and Recv while the views hold every slot), and As over the
// wrong size, a misaligned slice, a type with pointers and a bool that is
// neither 0 nor 1. A released loan is not sent; the next message arrives.
func TestZeroCopyRules(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := advCtx(t)
	a, err := iox.OpenPair(ctx, node, "zc-rules", iox.MaxMessageSize(1024), iox.MaxBorrowed(2))
	require.NoError(t, err)
	defer a.Close()
	b, err := iox.OpenPair(ctx, node, "zc-rules", iox.MaxBorrowed(2))
	require.NoError(t, err)
	defer b.Close()

	_, err = a.Loan(ctx, 2048)
	require.ErrorIs(t, err, iox.ErrMessageTooLarge)
	_, err = a.Loan(ctx, -1)
	require.ErrorIs(t, err, iox.ErrInvalidArgument)

	unsent, err := a.Loan(ctx, 8)
	require.NoError(t, err)
	copy(unsent.Bytes(), "unsent!!")
	unsent.Release()
	unsent.Release() // a second Release does nothing
	require.Nil(t, unsent.Bytes())
	require.ErrorIs(t, a.SendLoan(ctx, unsent), iox.ErrInvalidArgument, "a released loan cannot be sent")

	send := func(i int) {
		l, err := a.Loan(ctx, 8)
		require.NoError(t, err)
		binary.LittleEndian.PutUint64(l.Bytes(), uint64(i))
		require.NoError(t, a.SendLoan(ctx, l))
		require.ErrorIs(t, a.SendLoan(ctx, l), iox.ErrInvalidArgument, "a loan goes once")
	}
	// A view taken by a receiver that waits for the message stays in place
	// and holds a borrow slot.
	inPlace := func(i int) *iox.View {
		got := make(chan *iox.View, 1)
		go func() {
			v, err := b.RecvView(ctx)
			assert.NoError(t, err)
			got <- v
		}()
		waitParked(t, "iox.(*Pair[...]).RecvView", 1)
		send(i)
		v := <-got
		require.NotNil(t, v)
		require.Equal(t, uint64(i), binary.LittleEndian.Uint64(v.Bytes()), "the released loan was not sent")
		return v
	}
	v0, v1 := inPlace(0), inPlace(1)
	send(2)
	_, err = b.RecvView(ctx)
	require.ErrorIs(t, err, iox.ErrTooManyLoans, "two views hold both borrow slots")
	_, err = b.Recv(ctx)
	require.ErrorIs(t, err, iox.ErrTooManyLoans, "Recv needs a slot too")
	v0.Release()
	v0.Release()
	m, err := b.Recv(ctx)
	require.NoError(t, err, "a released view frees its slot; nothing was lost")
	require.Equal(t, uint64(2), binary.LittleEndian.Uint64(m))
	v1.Release()

	type point struct {
		X, Y int32
		Ok   bool
		_    [3]byte
	}
	buf := make([]byte, 24)
	pt, err := iox.As[point](buf[:12])
	require.NoError(t, err)
	pt.X = 7
	require.Equal(t, byte(7), buf[0], "As writes the bytes it is over")
	_, err = iox.As[point](buf[:11])
	require.ErrorIs(t, err, iox.ErrInvalidArgument)
	_, err = iox.As[point](buf[1:13])
	require.ErrorIs(t, err, iox.ErrInvalidArgument, "misaligned")
	buf[8] = 2
	_, err = iox.As[point](buf[:12])
	require.ErrorIs(t, err, iox.ErrInvalidArgument, "a bool of 2")
	_, err = iox.As[struct{ P *int }](make([]byte, 8))
	require.ErrorIs(t, err, iox.ErrInvalidArgument, "pointers")
}

func init() {
	children["zc-hold-views"] = childZCHoldViews
}

// childZCHoldViews subscribes to IOX_SERVICE (MaxBorrowed(2)), takes two views
// and holds them, says "holding", and waits to be killed.
func childZCHoldViews() error {
	node, err := nsFromEnv().childNode()
	if err != nil {
		return err
	}
	s, err := iox.OpenSub(context.Background(), node, os.Getenv("IOX_SERVICE"), iox.MaxBorrowed(2), iox.BufferSize(2))
	if err != nil {
		return err
	}
	fmt.Println("ready")
	for i := 0; i < 2; i++ {
		if _, err := s.RecvView(context.Background()); err != nil {
			return err
		}
	}
	fmt.Println("holding")
	parentSays()
	return nil
}

// TestZeroCopyViewsOfACrashedReceiverAreReclaimed: a subscriber that dies
// holding views (and a full buffer) leaves the publisher's shared memory to be
// reclaimed: a service sized for one subscriber serves the next one for many
// more messages than it would have room for otherwise. Views held while a
// receiving end closes stay readable until released.
func TestZeroCopyViewsOfACrashedReceiverAreReclaimed(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := advCtx(t)
	opts := []iox.Option{iox.MaxBorrowed(2), iox.BufferSize(2), iox.MaxSubscribers(1)}
	pub, err := iox.OpenPub(ctx, node, "zc-crash", append(opts, iox.WaitSubscribers(1))...)
	require.NoError(t, err)
	defer pub.Close()
	c := spawn(t, ns, "zc-hold-views", "IOX_SERVICE=zc-crash")
	c.expect("ready")
	for i := 0; i < 4; i++ { // two views held, two in its buffer
		l, err := pub.Loan(ctx, 64<<10)
		require.NoError(t, err)
		zcFill(l.Bytes(), i)
		require.NoError(t, pub.SendLoan(ctx, l))
	}
	c.expect("holding")
	c.kill()
	eventually(t, "the dead subscriber to be removed", func() bool { return pub.Subscribers() == 0 })

	sub, err := iox.OpenSub(ctx, node, "zc-crash", opts...)
	require.NoError(t, err)
	views := make(chan *iox.View, 4)
	go func() {
		for i := 0; i < 2; i++ { // the new subscriber holds two views too
			v, err := sub.RecvView(ctx)
			assert.NoError(t, err)
			views <- v
		}
	}()
	send := func(i int) {
		l, err := pub.Loan(ctx, 64<<10)
		require.NoError(t, err, "message %d: the crashed subscriber's samples were not reclaimed", i)
		zcFill(l.Bytes(), i)
		require.NoError(t, pub.SendLoan(ctx, l))
	}
	send(100)
	send(101)
	v0, v1 := <-views, <-views
	send(102) // and its buffer is full
	send(103)
	// Two views and two buffered samples of the new subscriber, two loans out:
	// eight of the samples a service for one subscriber has, which the dead
	// one's four would leave it without.
	l0, err := pub.Loan(ctx, 64<<10)
	require.NoError(t, err, "the crashed subscriber's samples were not reclaimed")
	l1, err := pub.Loan(ctx, 64<<10)
	require.NoError(t, err, "the crashed subscriber's samples were not reclaimed")
	l0.Release()
	l1.Release()
	require.NoError(t, zcCheck(v0.Bytes(), 100, 64<<10))
	v0.Release()
	require.NoError(t, sub.Close())
	require.NoError(t, zcCheck(v1.Bytes(), 101, 64<<10), "a view outlives its subscriber's Close")
	v1.Release()
}

// recvParked reports whether a goroutine of this process is blocked in a
// subscriber's Recv, waiting in its hub (armed and parked).
func recvParked() bool {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	for _, g := range strings.Split(string(buf), "\n\n") {
		header, stack, _ := strings.Cut(g, "\n")
		if strings.Contains(stack, "Sub[...]).Recv(") && strings.Contains(stack, "hub).wait(") &&
			!strings.Contains(header, "[running") && !strings.Contains(header, "[runnable") {
			return true
		}
	}
	return false
}

// A subscriber that joins and parks while SendLoan goes out (after the loan's
// look at the subscribers' room, before the send) gets the loan, and is woken
// for it: the publisher sees that the loan reached more subscribers than it
// knew of.
func TestSendLoanWakesASubscriberThatJoinedMeanwhile(t *testing.T) {
	ns := newNamespace(t)
	ctx := advCtx(t)
	opts := []iox.Option{iox.BufferSize(2), iox.WithChanCap(1)}
	pub, err := iox.OpenPub(ctx, ns.node(t), "late-loan", opts...)
	require.NoError(t, err)
	s1, err := iox.OpenSub(ctx, ns.node(t), "late-loan", opts...)
	require.NoError(t, err)
	defer s1.Close()
	waitSubscribers(t, pub, 1)
	// The first subscriber's keeper takes as much as it holds (queue and
	// channel: 3) and then waits without marking its word: nobody reads it,
	// so the loan's own wake-up is for the newcomer alone. Each message is
	// taken before the next is sent, so that none waits for room (after a
	// wait the publisher cannot tell the subscriber's room for a loan).
	for i := range 3 {
		require.NoError(t, pub.Send(ctx, []byte{byte(i)}))
		eventually(t, "the first subscriber's keeper to take it", func() bool { return s1.Taken() == uint64(i+1) })
	}

	var s2 *iox.Sub[[]byte]
	got := make(chan error, 1)
	pub.AfterLoanRoom(func(room, known bool) {
		if s2 != nil {
			return
		}
		require.True(t, room && known, "the first subscriber has room for the loan")
		s2, err = iox.OpenSub(ctx, ns.node(t), "late-loan", opts...)
		require.NoError(t, err)
		go func() {
			rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			v, err := s2.Recv(rctx)
			if err == nil && string(v) != "loan" {
				err = &iox.Error{Op: "test", Detail: "got " + string(v)}
			}
			got <- err
		}()
		eventually(t, "the new subscriber to park", recvParked)
	})
	l, err := pub.Loan(ctx, 4)
	require.NoError(t, err)
	copy(l.Bytes(), "loan")
	require.NoError(t, pub.SendLoan(ctx, l))
	require.NoError(t, <-got, "the subscriber that joined got the loan and was woken for it")
	defer s2.Close()
	for range 4 {
		_, err := s1.Recv(ctx)
		require.NoError(t, err)
	}
	require.NoError(t, pub.Close())
}
