package iox_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/iox-go/iox"
)

// Adversarial tests of the channel core (Pair, Pub, Sub) through its public API.

func init() {
	children["adv-pair-count"] = childAdvPairCount
	children["adv-pair-exit"] = childAdvPairExit
	children["adv-pair-echo-one"] = childAdvPairEchoOne
	children["adv-sub-idle"] = childAdvSubIdle
	children["adv-sub-reader"] = childAdvSubReader
	children["adv-ended"] = childAdvEnded
	children["adv-in-during-end"] = childAdvInDuringEnd
	children["adv-pair-recv-close"] = childAdvPairRecvClose
}

// advCtx bounds a whole test: every wait ends long before it unless something
// hangs.
func advCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// childAdvPairCount opens the pair IOX_SERVICE, says ready, receives until the
// pair ends and reports how many messages it got and how it ended.
func childAdvPairCount() error {
	node, err := nsFromEnv().childNode()
	if err != nil {
		return err
	}
	defer node.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := iox.OpenPair(ctx, node, os.Getenv("IOX_SERVICE"))
	if err != nil {
		return err
	}
	fmt.Println("ready")
	n := 0
	for {
		m, err := p.Recv(ctx)
		if err != nil {
			fmt.Printf("%d eof=%v peerclosed=%v\n", n, errors.Is(err, io.EOF), errors.Is(err, iox.ErrPeerClosed))
			if !errors.Is(err, io.EOF) {
				fmt.Fprintln(os.Stderr, "adv-pair-count ended with", err)
			}
			break
		}
		if string(m) != fmt.Sprintf("m%02d", n) {
			fmt.Printf("message %d is %q\n", n, m)
		}
		n++
	}
	return p.Close()
}

// childAdvPairExit opens the pair IOX_SERVICE, says ready, and exits without
// reading or closing once the parent says so.
func childAdvPairExit() error {
	node, err := nsFromEnv().childNode()
	if err != nil {
		return err
	}
	if _, err := iox.OpenPair(context.Background(), node, os.Getenv("IOX_SERVICE")); err != nil {
		return err
	}
	fmt.Println("ready")
	parentSays()
	os.Exit(0)
	return nil
}

// childAdvPairEchoOne sends back one message, then waits to be killed.
func childAdvPairEchoOne() error {
	node, err := nsFromEnv().childNode()
	if err != nil {
		return err
	}
	defer node.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := iox.OpenPair(ctx, node, os.Getenv("IOX_SERVICE"))
	if err != nil {
		return err
	}
	defer p.Close()
	fmt.Println("ready")
	m, err := p.Recv(ctx)
	if err != nil {
		return err
	}
	if err := p.Send(ctx, m); err != nil {
		return err
	}
	fmt.Println("echoed")
	parentSays()
	return nil
}

// childAdvSubIdle subscribes to IOX_SERVICE and waits to be killed.
func childAdvSubIdle() error {
	node, err := nsFromEnv().childNode()
	if err != nil {
		return err
	}
	defer node.Close()
	s, err := iox.OpenSub(context.Background(), node, os.Getenv("IOX_SERVICE"))
	if err != nil {
		return err
	}
	defer s.Close()
	fmt.Println("ready")
	parentSays()
	return nil
}

// childAdvSubReader subscribes to IOX_SERVICE, reports every message as
// "got <message>", and closes when the parent says so.
func childAdvSubReader() error {
	node, err := nsFromEnv().childNode()
	if err != nil {
		return err
	}
	defer node.Close()
	s, err := iox.OpenSub(context.Background(), node, os.Getenv("IOX_SERVICE"))
	if err != nil {
		return err
	}
	fmt.Println("ready")
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			m, err := s.Recv(context.Background())
			if errors.Is(err, iox.ErrClosed) {
				return
			}
			if err != nil {
				fmt.Println("error", err)
				continue
			}
			fmt.Println("got", string(m))
		}
	}()
	parentSays()
	err = s.Close()
	<-done
	return err
}

// 6. An ended channel never hands out (zero, nil): In closes only after Err is
// set, Recv then returns an error, and that error names what ended. The trials
// run in a child process, so that a crash of the library fails this test with
// the child's output instead of ending the whole test binary.
func TestAdvEndedChannelNeverYieldsZeroNil(t *testing.T) {
	for _, kind := range []string{"pair", "sub"} {
		t.Run(kind, func(t *testing.T) {
			ns := newNamespace(t)
			c := spawn(t, ns, "adv-ended", "IOX_KIND="+kind, "IOX_COUNT=200")
			var problems []string
			for {
				l, ok := <-c.lines
				if !ok {
					t.Fatalf("the child crashed (see its stderr above) after reporting %d problems: %v", len(problems), problems)
				}
				if strings.HasPrefix(l, "done") {
					break
				}
				problems = append(problems, l)
			}
			c.wait()
			if len(problems) > 0 {
				t.Fatalf("%d of 200 trials broke the contract; the first ones:\n%s", len(problems),
					strings.Join(problems[:min(len(problems), 10)], "\n"))
			}
		})
	}
}

// childAdvEnded runs the trials of TestAdvEndedChannelNeverYieldsZeroNil for
// the channel kind IOX_KIND and prints one line per broken trial, then "done".
func childAdvEnded() error {
	node, err := nsFromEnv().childNode()
	if err != nil {
		return err
	}
	defer node.Close()
	kind, trials := os.Getenv("IOX_KIND"), envInt("IOX_COUNT")
	bg, cancelAll := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancelAll()
	guard := func(what string, f func()) error {
		done := make(chan struct{})
		go func() { defer close(done); f() }()
		select {
		case <-done:
			return nil
		case <-time.After(10 * time.Second):
			return fmt.Errorf("%s did not return within 10 s", what)
		}
	}
	for i := 0; i < trials; i++ {
		name := fmt.Sprintf("ended-%s-%d", kind, i)
		ctx, cancel := context.WithCancel(bg)
		defer cancel() // called in the trial already; this is for the early returns
		var in func() <-chan []byte
		var errf func() error
		var recv func(context.Context) ([]byte, error)
		var closeAll func()
		switch kind {
		case "pair":
			a, err := iox.OpenPair(ctx, node, name)
			if err != nil {
				return err
			}
			b, err := iox.OpenPair(bg, node, name)
			if err != nil {
				return err
			}
			for k := 0; k < i%4; k++ { // something on its way
				if err := b.Send(bg, []byte{byte(k + 1)}); err != nil {
					return err
				}
			}
			in, errf, recv, closeAll = a.In, a.Err, a.Recv, func() { a.Close(); b.Close() }
		default:
			s, err := iox.OpenSub(ctx, node, name)
			if err != nil {
				return err
			}
			p, err := iox.OpenPub(bg, node, name)
			if err != nil {
				return err
			}
			for k := 0; k < i%4; k++ {
				if err := p.Send(bg, []byte{byte(k + 1)}); err != nil {
					return err
				}
			}
			in, errf, recv, closeAll = s.In, s.Err, s.Recv, func() { s.Close(); p.Close() }
		}
		problem := func() string {
			var ch <-chan []byte
			if i%2 == 0 {
				ch = in() // the goroutine behind In runs before the end
			}
			cancel()
			if ch == nil {
				ch = in()
			}
			// (a) read In until it is closed: Err is set by then
			var bad string
			if err := guard("In closing after the context ended", func() {
				for m := range ch {
					if len(m) == 0 && bad == "" {
						bad = "In delivered an empty message"
					}
				}
			}); err != nil {
				return err.Error()
			}
			if bad != "" {
				return bad
			}
			err := errf()
			if err == nil {
				return "In closed while Err was still nil"
			}
			if !errors.Is(err, context.Canceled) {
				return fmt.Sprintf("Err is %v, want context.Canceled", err)
			}
			var e *iox.Error
			if !errors.As(err, &e) || e.Op == "" || e.Name != name {
				return fmt.Sprintf("Err %v (%T) does not name the operation and the channel", err, err)
			}
			// (b) Recv returns an error
			var m []byte
			if err := guard("Recv on an ended channel", func() { m, err = recv(bg) }); err != nil {
				return err.Error()
			}
			if err == nil {
				return fmt.Sprintf("after In closed (Err %q), Recv returned (%q, nil)", errf(), m)
			}
			return ""
		}()
		if problem != "" {
			fmt.Printf("trial %d: %s\n", i, problem)
		}
		closeAll()
	}
	fmt.Println("done")
	return nil
}

// The peer's messages all come before the end: a pair whose peer sent and
// closed while nobody received (its keeper took everything and the bye) still
// delivers every message through Recv and In before it reports ErrPeerClosed.
func TestAdvPeerCloseDeliversEverythingBeforeTheEnd(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := advCtx(t)
	const n = 10
	for trial := 0; trial < 20; trial++ {
		name := fmt.Sprintf("eof-%d", trial)
		a, err := iox.OpenPair(ctx, node, name)
		require.NoError(t, err)
		b, err := iox.OpenPair(ctx, node, name)
		require.NoError(t, err)
		for i := 0; i < n; i++ {
			require.NoError(t, b.Send(ctx, []byte(fmt.Sprintf("m%d", i))))
		}
		require.NoError(t, b.Close(), "trial %d: a took everything, so b's Close is confirmed", trial)
		select {
		case <-a.Done():
		case <-time.After(10 * time.Second):
			t.Fatalf("trial %d: the peer's bye was not seen", trial)
		}
		require.ErrorIs(t, a.Err(), iox.ErrPeerClosed)
		var got []string
		var end error
		if trial%2 == 0 {
			for {
				m, err := a.Recv(ctx)
				if err != nil {
					end = err
					break
				}
				got = append(got, string(m))
			}
		} else {
			within(t, 10*time.Second, "In closing", func() {
				for m := range a.In() {
					got = append(got, string(m))
				}
			})
			_, end = a.Recv(ctx)
		}
		want := make([]string, n)
		for i := range want {
			want[i] = fmt.Sprintf("m%d", i)
		}
		require.Equal(t, want, got, "trial %d (%s): the end came before the peer's messages", trial, map[bool]string{true: "Recv", false: "In"}[trial%2 == 0])
		require.ErrorIs(t, end, iox.ErrPeerClosed)
		require.ErrorIs(t, end, io.EOF)
		m, err := a.Recv(ctx)
		require.Error(t, err, "trial %d: Recv returned %q after the end", trial, m)
		require.NoError(t, a.Close())
	}
}

// 7. A nil from Close means the peer process received everything: a child that
// reads until the end reports all 60 messages and a clean end, every time; a
// child that exits without reading makes Close say how many it did not confirm.
func TestAdvCloseConfirmsDeliveryAcrossProcesses(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := advCtx(t)
	const n = 60
	for r := 0; r < 10; r++ {
		name := fmt.Sprintf("confirm-%d", r)
		p, err := iox.OpenPair(ctx, node, name)
		require.NoError(t, err)
		c := spawn(t, ns, "adv-pair-count", "IOX_SERVICE="+name)
		c.expect("ready")
		for i := 0; i < n; i++ {
			require.NoError(t, p.Send(ctx, []byte(fmt.Sprintf("m%02d", i))))
		}
		require.NoError(t, p.Close(), "round %d", r)
		c.expect(fmt.Sprintf("%d eof=true peerclosed=true", n))
		c.wait()
	}

	t.Run("peer-exits-without-reading", func(t *testing.T) {
		name := "confirm-exit"
		p, err := iox.OpenPair(ctx, node, name)
		require.NoError(t, err)
		c := spawn(t, ns, "adv-pair-exit", "IOX_SERVICE="+name)
		c.expect("ready")
		for i := 0; i < n; i++ {
			require.NoError(t, p.Send(ctx, []byte(fmt.Sprintf("m%02d", i))))
		}
		c.say("exit")
		c.wait()
		err = p.Close()
		require.ErrorIs(t, err, iox.ErrUndelivered)
		require.Contains(t, err.Error(), fmt.Sprint(n), "the error must say how many messages were not confirmed")
		_, err = node.CleanupDeadNodes() // the child's node
		require.NoError(t, err)
	})
}

// advFill writes content i into buf (which is reused) and returns the message:
// lengths vary from 0 to 3000 bytes, across the packing threshold.
func advFill(buf []byte, i int) []byte {
	n := (i * 37) % 3001
	m := buf[:n]
	for k := range m {
		m[k] = byte(k*31 + i*7 + 1)
	}
	if n >= 4 {
		binary.LittleEndian.PutUint32(m, uint32(i))
	}
	return m
}

func advCheck(m []byte, i int) error {
	want := advFill(make([]byte, 3001), i)
	if string(m) != string(want) {
		return fmt.Errorf("message %d: %d bytes arrived damaged or out of place (want %d bytes)", i, len(m), len(want))
	}
	return nil
}

// 8. Send copies the message before it returns: one buffer reused for every
// Send, whether the message goes straight into shared memory or waits in the
// send queue for a peer that is not there yet.
func TestAdvSendCopiesBeforeItReturns(t *testing.T) {
	const n = 1000
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := advCtx(t)

	receive := func(recv func(context.Context) ([]byte, error)) error {
		for i := 0; i < n; i++ {
			m, err := recv(ctx)
			if err != nil {
				return fmt.Errorf("receive %d: %w", i, err)
			}
			if err := advCheck(m, i); err != nil {
				return err
			}
		}
		return nil
	}

	t.Run("peer-present", func(t *testing.T) {
		a, err := iox.OpenPair(ctx, node, "copy-present", iox.BufferSize(4))
		require.NoError(t, err)
		defer a.Close()
		b, err := iox.OpenPair(ctx, node, "copy-present", iox.BufferSize(4))
		require.NoError(t, err)
		defer b.Close()
		got := make(chan error, 1)
		go func() { got <- receive(b.Recv) }()
		buf := make([]byte, 3001)
		for i := 0; i < n; i++ {
			require.NoError(t, a.Send(ctx, advFill(buf, i)))
		}
		require.NoError(t, <-got)
	})

	t.Run("peer-absent", func(t *testing.T) {
		a, err := iox.OpenPair(ctx, node, "copy-absent", iox.WithChanCap(n))
		require.NoError(t, err)
		defer a.Close()
		buf := make([]byte, 3001)
		for i := 0; i < n; i++ {
			require.NoError(t, a.Send(ctx, advFill(buf, i)))
		}
		for k := range buf { // whatever still points at buf would now be garbage
			buf[k] = 0xee
		}
		b, err := iox.OpenPair(ctx, node, "copy-absent", iox.WithChanCap(n))
		require.NoError(t, err)
		defer b.Close()
		require.NoError(t, receive(b.Recv))
	})

	t.Run("pub-sub-backpressure", func(t *testing.T) {
		s, err := iox.OpenSub(ctx, node, "copy-pubsub", iox.BufferSize(4))
		require.NoError(t, err)
		defer s.Close()
		p, err := iox.OpenPub(ctx, node, "copy-pubsub", iox.BufferSize(4))
		require.NoError(t, err)
		defer p.Close()
		got := make(chan error, 1)
		go func() { got <- receive(s.Recv) }()
		buf := make([]byte, 3001)
		for i := 0; i < n; i++ {
			require.NoError(t, p.Send(ctx, advFill(buf, i)))
		}
		require.NoError(t, <-got)
	})
}

// advCodec encodes ints as 8 bytes and refuses 13.
type advCodec struct{}

func (advCodec) Append(dst []byte, v int) ([]byte, error) {
	if v == 13 {
		return dst, errors.New("13 is not encodable")
	}
	return binary.LittleEndian.AppendUint64(dst, uint64(v)), nil
}

func (advCodec) Decode(b []byte) (int, error) {
	if len(b) != 8 {
		return 0, fmt.Errorf("%d bytes", len(b))
	}
	return int(binary.LittleEndian.Uint64(b)), nil
}

// 9. A message that cannot be sent fails its own Send, and only that one.
func TestAdvOneBadMessageFailsOneSend(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := advCtx(t)

	t.Run("too-large", func(t *testing.T) {
		a, err := iox.OpenPair(ctx, node, "bad-size", iox.MaxMessageSize(16))
		require.NoError(t, err)
		defer a.Close()
		b, err := iox.OpenPair(ctx, node, "bad-size")
		require.NoError(t, err)
		defer b.Close()
		require.ErrorIs(t, a.Send(ctx, make([]byte, 17)), iox.ErrMessageTooLarge)
		require.NoError(t, a.Err(), "a refused message must not end the pair")
		require.NoError(t, a.Send(ctx, []byte("8 bytes!")))
		require.NoError(t, a.Send(ctx, []byte("exactly 16 bytes")))
		for _, want := range []string{"8 bytes!", "exactly 16 bytes"} {
			m, err := b.Recv(ctx)
			require.NoError(t, err)
			require.Equal(t, want, string(m))
		}
	})

	t.Run("too-large-pubsub", func(t *testing.T) {
		s, err := iox.OpenSub(ctx, node, "bad-size-ps")
		require.NoError(t, err)
		defer s.Close()
		p, err := iox.OpenPub(ctx, node, "bad-size-ps", iox.MaxMessageSize(16))
		require.NoError(t, err)
		defer p.Close()
		require.ErrorIs(t, p.Send(ctx, make([]byte, 17)), iox.ErrMessageTooLarge)
		require.NoError(t, p.Send(ctx, []byte("8 bytes!")))
		m, err := s.Recv(ctx)
		require.NoError(t, err)
		require.Equal(t, "8 bytes!", string(m))
	})

	t.Run("codec", func(t *testing.T) {
		a, err := iox.OpenPairOf[int](ctx, node, "bad-codec", advCodec{})
		require.NoError(t, err)
		defer a.Close()
		b, err := iox.OpenPairOf[int](ctx, node, "bad-codec", advCodec{})
		require.NoError(t, err)
		defer b.Close()
		require.NoError(t, a.Send(ctx, 12))
		require.ErrorIs(t, a.Send(ctx, 13), iox.ErrInvalidArgument)
		require.NoError(t, a.Err())
		require.NoError(t, a.Send(ctx, 14))
		for _, want := range []int{12, 14} {
			v, err := b.Recv(ctx)
			require.NoError(t, err)
			require.Equal(t, want, v)
		}
	})

	t.Run("out-and-ondrop", func(t *testing.T) {
		drops := make(chan error, 4)
		a, err := iox.OpenPairOf[int](ctx, node, "bad-out", advCodec{}, iox.OnDrop(func(err error) { drops <- err }))
		require.NoError(t, err)
		defer a.Close()
		b, err := iox.OpenPairOf[int](ctx, node, "bad-out", advCodec{})
		require.NoError(t, err)
		defer b.Close()
		a.Out() <- 13
		a.Out() <- 14
		v, err := b.Recv(ctx)
		require.NoError(t, err)
		require.Equal(t, 14, v)
		// the goroutine behind Out handed 13 to OnDrop before it took 14
		select {
		case err := <-drops:
			require.ErrorIs(t, err, iox.ErrInvalidArgument)
		default:
			t.Fatal("the refused value did not reach OnDrop")
		}
	})
}

// 10. After Close nothing is accepted: Send and Recv say ErrClosed (which is
// also net.ErrClosed), Done is closed, and a value sent on Out is not taken,
// whether Out was first used before Close or only after it.
func TestAdvAfterClose(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := advCtx(t)
	const trials = 20

	// outTaken reports whether a send on out was taken. The 100 ms timeout
	// checks that the send blocks; it synchronises nothing.
	outTaken := func(t *testing.T, trial int, done <-chan struct{}, out chan<- []byte) bool {
		t.Helper()
		select {
		case <-done:
		default:
			t.Fatalf("trial %d: Done is not closed after Close", trial)
		}
		select {
		case out <- []byte("after close"):
			return true
		case <-time.After(100 * time.Millisecond):
			return false
		}
	}
	// taken counts the trials in which Out took a value after Close, by
	// whether Out was first used before Close.
	report := func(t *testing.T, taken map[bool]int) {
		t.Helper()
		if taken[true]+taken[false] > 0 {
			t.Errorf("a value sent on Out after Close was taken (and silently lost) in %d of %d trials where Out was "+
				"first used after Close and %d of %d where it was used before", taken[false], trials/2, taken[true], trials/2)
		}
	}

	t.Run("pair", func(t *testing.T) {
		taken := map[bool]int{}
		for trial := 0; trial < trials; trial++ {
			name := fmt.Sprintf("after-close-%d", trial)
			a, err := iox.OpenPair(ctx, node, name)
			require.NoError(t, err)
			b, err := iox.OpenPair(ctx, node, name)
			require.NoError(t, err)
			early := trial%2 == 1
			if early { // the goroutine behind Out runs before Close
				a.Out() <- []byte("before close")
				m, err := b.Recv(ctx)
				require.NoError(t, err)
				require.Equal(t, "before close", string(m))
			}
			require.NoError(t, a.Close())
			err = a.Send(ctx, []byte("x"))
			require.ErrorIs(t, err, iox.ErrClosed)
			require.ErrorIs(t, err, net.ErrClosed)
			if outTaken(t, trial, a.Done(), a.Out()) {
				taken[early]++
			}
			_, err = a.Recv(ctx)
			require.ErrorIs(t, err, iox.ErrClosed)
			require.ErrorIs(t, err, net.ErrClosed)
			require.NoError(t, b.Close())
		}
		report(t, taken)
	})

	t.Run("pubsub", func(t *testing.T) {
		taken := map[bool]int{}
		for trial := 0; trial < trials; trial++ {
			name := fmt.Sprintf("after-close-ps-%d", trial)
			s, err := iox.OpenSub(ctx, node, name)
			require.NoError(t, err)
			p, err := iox.OpenPub(ctx, node, name)
			require.NoError(t, err)
			early := trial%2 == 1
			if early {
				p.Out() <- []byte("before close")
				m, err := s.Recv(ctx)
				require.NoError(t, err)
				require.Equal(t, "before close", string(m))
			}
			require.NoError(t, p.Close())
			err = p.Send(ctx, []byte("x"))
			require.ErrorIs(t, err, iox.ErrClosed)
			require.ErrorIs(t, err, net.ErrClosed)
			if outTaken(t, trial, p.Done(), p.Out()) {
				taken[early]++
			}
			require.NoError(t, s.Close())
			_, err = s.Recv(ctx)
			require.ErrorIs(t, err, iox.ErrClosed)
			require.ErrorIs(t, err, net.ErrClosed)
		}
		report(t, taken)
	})
}

// 11. WaitSubscribers(2) holds the messages until the second subscriber is
// there; then both get all of them, in order.
func TestAdvWaitSubscribers(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := advCtx(t)
	s1, err := iox.OpenSub(ctx, node, "wait-subs")
	require.NoError(t, err)
	defer s1.Close()
	p, err := iox.OpenPub(ctx, node, "wait-subs", iox.WaitSubscribers(2))
	require.NoError(t, err)
	defer p.Close()
	for i := 0; i < 10; i++ {
		require.NoError(t, p.Send(ctx, []byte(fmt.Sprintf("early-%d", i))))
	}
	// A negative check: with one subscriber nothing may arrive; 200 ms is how
	// long we look, not a synchronisation.
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	m, err := s1.Recv(short)
	cancel()
	require.ErrorIs(t, err, context.DeadlineExceeded, "with one subscriber of two, %q arrived", m)

	s2, err := iox.OpenSub(ctx, node, "wait-subs")
	require.NoError(t, err)
	defer s2.Close()
	for k, s := range []*iox.Sub[[]byte]{s1, s2} {
		for i := 0; i < 10; i++ {
			m, err := s.Recv(ctx)
			require.NoError(t, err, "subscriber %d, message %d", k+1, i)
			require.Equal(t, fmt.Sprintf("early-%d", i), string(m), "subscriber %d", k+1)
		}
	}
	for i := 0; i < 10; i++ {
		require.NoError(t, p.Send(ctx, []byte(fmt.Sprintf("late-%d", i))))
	}
	for k, s := range []*iox.Sub[[]byte]{s1, s2} {
		for i := 0; i < 10; i++ {
			m, err := s.Recv(ctx)
			require.NoError(t, err, "subscriber %d, message %d", k+1, i)
			require.Equal(t, fmt.Sprintf("late-%d", i), string(m), "subscriber %d", k+1)
		}
	}
	require.NoError(t, p.Close())
}

// 12. A pair outlives its node's Close: the peer's crash is still noticed.
func TestAdvPairOutlivesClosedNode(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := advCtx(t)
	p, err := iox.OpenPair(ctx, node, "closed-node")
	require.NoError(t, err)
	c := spawn(t, ns, "adv-pair-echo-one", "IOX_SERVICE=closed-node")
	c.expect("ready")
	require.NoError(t, p.Send(ctx, []byte("ping")))
	m, err := p.Recv(ctx)
	require.NoError(t, err)
	require.Equal(t, "ping", string(m))
	c.expect("echoed")
	require.NoError(t, node.Close())
	require.NoError(t, p.Err(), "closing the node must not end the pair")
	c.kill()
	select {
	case <-p.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the peer's crash was not noticed within 5 s after the node was closed")
	}
	require.ErrorIs(t, p.Err(), iox.ErrPeerCrashed)
	within(t, 10*time.Second, "Close of a pair whose node is closed", func() { p.Close() })
	sweep := ns.node(t) // removes what the killed child left
	_, err = sweep.CleanupDeadNodes()
	require.NoError(t, err)
}

// 13. Settings both ends must agree on are checked whichever end comes first;
// options that do not apply are refused.
func TestAdvSettingsBothEndsMustAgreeOn(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := advCtx(t)

	pairs := func(t *testing.T, name string, first, second int) {
		a, err := iox.OpenPair(ctx, node, name, iox.BufferSize(first))
		require.NoError(t, err)
		defer a.Close()
		_, err = iox.OpenPair(ctx, node, name, iox.BufferSize(second))
		require.ErrorIs(t, err, iox.ErrIncompatible, "BufferSize(%d) after BufferSize(%d)", second, first)
		// the refused end took nothing: a matching end still pairs
		b, err := iox.OpenPair(ctx, node, name, iox.BufferSize(first))
		require.NoError(t, err)
		defer b.Close()
		require.NoError(t, a.Send(ctx, []byte("hi")))
		m, err := b.Recv(ctx)
		require.NoError(t, err)
		require.Equal(t, "hi", string(m))
	}
	t.Run("pair-8-then-16", func(t *testing.T) { pairs(t, "agree-pair-a", 8, 16) })
	t.Run("pair-16-then-8", func(t *testing.T) { pairs(t, "agree-pair-b", 16, 8) })

	t.Run("pub-16-then-sub-32", func(t *testing.T) {
		p, err := iox.OpenPub(ctx, node, "agree-ps-a", iox.BufferSize(16))
		require.NoError(t, err)
		defer p.Close()
		_, err = iox.OpenSub(ctx, node, "agree-ps-a", iox.BufferSize(32))
		require.ErrorIs(t, err, iox.ErrIncompatible)
		require.Equal(t, 0, p.Subscribers(), "the refused subscriber must not stay")
	})
	t.Run("sub-32-then-pub-16", func(t *testing.T) {
		s, err := iox.OpenSub(ctx, node, "agree-ps-b", iox.BufferSize(32))
		require.NoError(t, err)
		defer s.Close()
		_, err = iox.OpenPub(ctx, node, "agree-ps-b", iox.BufferSize(16))
		require.ErrorIs(t, err, iox.ErrIncompatible)
	})
	t.Run("options-that-do-not-apply", func(t *testing.T) {
		_, err := iox.OpenPair(ctx, node, "agree-opt-pair", iox.Lossy())
		require.ErrorIs(t, err, iox.ErrInvalidArgument)
		_, err = iox.OpenPub(ctx, node, "agree-opt-pub", iox.WithSpin(time.Millisecond))
		require.ErrorIs(t, err, iox.ErrInvalidArgument)
	})
}

// 14. Peers reports joins and crashes and is closed by Close.
func TestAdvPubPeers(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := advCtx(t)
	p, err := iox.OpenPub(ctx, node, "peers")
	require.NoError(t, err)
	closed := false
	defer func() {
		if !closed {
			p.Close()
		}
	}()
	peers := p.Peers()
	next := func(want iox.PeerEventKind) iox.PeerEvent { return nextPeerEvent(t, peers, want) }
	s, err := iox.OpenSub(ctx, node, "peers")
	require.NoError(t, err)
	defer s.Close()
	local := next(iox.PeerJoined)
	c := spawn(t, ns, "adv-sub-idle", "IOX_SERVICE=peers")
	c.expect("ready")
	remote := next(iox.PeerJoined)
	require.NotEqual(t, local.Port, remote.Port)
	c.kill()
	crashed := next(iox.PeerCrashed)
	require.Equal(t, remote.Port, crashed.Port, "the crash must name the killed subscriber")
	require.NoError(t, p.Close())
	closed = true
	within(t, 5*time.Second, "ranging over Peers after Close", func() {
		for e := range peers {
			t.Errorf("event after Close: %v", e.Kind)
		}
	})

	t.Run("first-asked-after-close", func(t *testing.T) {
		q, err := iox.OpenPub(ctx, node, "peers-late")
		require.NoError(t, err)
		require.NoError(t, q.Close())
		within(t, 5*time.Second, "ranging over Peers first asked for after Close", func() {
			for range q.Peers() {
			}
		})
	})
}

// Peers also reports a subscriber that closes, as PeerLeft naming its port.
func TestAdvPubPeersReportsALeavingSubscriber(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := advCtx(t)
	p, err := iox.OpenPub(ctx, node, "peers-left")
	require.NoError(t, err)
	defer p.Close()
	peers := p.Peers()
	next := func(want iox.PeerEventKind) iox.PeerEvent { return nextPeerEvent(t, peers, want) }
	for round := 0; round < 5; round++ {
		s, err := iox.OpenSub(ctx, node, "peers-left")
		require.NoError(t, err)
		joined := next(iox.PeerJoined)
		require.NoError(t, s.Close())
		left := next(iox.PeerLeft)
		require.Equal(t, joined.Port, left.Port, "round %d", round)
	}
}

// 15. A confirmation meant for an earlier publisher cannot end a later one's
// Close early: a subscriber that is stopped cannot confirm, so Close says the
// message is undelivered.
func TestAdvStaleConfirmationCannotEndCloseEarly(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := advCtx(t)
	c := spawn(t, ns, "adv-sub-reader", "IOX_SERVICE=stale")
	c.expect("ready")
	stopped := false
	t.Cleanup(func() {
		if stopped {
			c.cmd.Process.Signal(syscall.SIGCONT)
		}
	})

	a, err := iox.OpenPub(ctx, node, "stale", iox.WithLinger(300*time.Millisecond))
	require.NoError(t, err)
	eventually(t, "the child's subscription", func() bool { return a.Subscribers() == 1 })
	require.NoError(t, a.Send(ctx, []byte("from-a")))
	c.expect("got from-a")
	require.NoError(t, a.Close(), "the reading child confirms A's messages")

	stopped = true
	c.stop()

	b, err := iox.OpenPub(ctx, node, "stale")
	require.NoError(t, err)
	require.Equal(t, 1, b.Subscribers())
	require.NoError(t, b.Send(ctx, []byte("from-b")))
	err = b.Close()
	require.ErrorIs(t, err, iox.ErrUndelivered, "a stopped subscriber cannot have confirmed B's message")

	require.NoError(t, c.cmd.Process.Signal(syscall.SIGCONT))
	stopped = false
	// B is gone, and with it what it sent; the subscriber itself goes on: a
	// third publisher reaches it and gets its confirmation.
	d, err := iox.OpenPub(ctx, node, "stale")
	require.NoError(t, err)
	require.NoError(t, d.Send(ctx, []byte("from-d")))
	for {
		l := c.line()
		if l == "got from-d" {
			break
		}
		require.Equal(t, "got from-b", l, "the resumed child reported something else")
	}
	require.NoError(t, d.Close(), "the resumed child confirms D's message")
	c.say("exit")
	c.wait()
}

// When a pair's context ends, the peer sees a clean end (ErrPeerClosed), as
// the Pair documentation says: the bye must reach it, also when the peer was
// not receiving at that moment.
func TestAdvContextEndIsACleanEndForThePeer(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	bg := advCtx(t)
	const trials = 100
	for i := 0; i < trials; i++ {
		name := fmt.Sprintf("ctx-end-%d", i)
		ctx, cancel := context.WithCancel(bg)
		a, err := iox.OpenPair(ctx, node, name)
		require.NoError(t, err)
		b, err := iox.OpenPair(bg, node, name)
		require.NoError(t, err)
		if i%2 == 1 {
			require.NoError(t, b.Send(bg, []byte("x")))
		}
		cancel()
		a.Close() // a is torn down: its bye went out (or never will)
		select {
		case <-b.Done():
			require.ErrorIs(t, b.Err(), iox.ErrPeerClosed, "trial %d", i)
		case <-time.After(5 * time.Second):
			b.Close()
			t.Fatalf("trial %d: the end of a pair by its context was not seen by the peer within 5 s "+
				"(the peer's Err is still nil: it would wait for ever)", i)
		}
		b.Close()
	}
}

// Asking for In (or Out, or Peers) for the first time while the context ends
// must not crash the process. Run in a child, so that a crash fails this test
// alone.
func TestAdvFirstInWhileTheContextEnds(t *testing.T) {
	ns := newNamespace(t)
	c := spawn(t, ns, "adv-in-during-end", "IOX_COUNT=600")
	l, ok := <-c.lines
	if !ok {
		t.Fatal("the child crashed while In/Out/Peers were first used as the context ended (see its stderr above)")
	}
	require.Equal(t, "done", l)
	c.wait()
}

// childAdvInDuringEnd opens a Sub, a Pair and a Pub with contexts that end
// while In, Out and Peers are first asked for.
func childAdvInDuringEnd() error {
	node, err := nsFromEnv().childNode()
	if err != nil {
		return err
	}
	defer node.Close()
	bg := context.Background()
	for i := 0; i < envInt("IOX_COUNT"); i++ {
		name := fmt.Sprintf("in-end-%d", i)
		ctx, cancel := context.WithCancel(bg)
		s, err := iox.OpenSub(ctx, node, name)
		if err != nil {
			cancel()
			return err
		}
		p, err := iox.OpenPub(ctx, node, name)
		if err != nil {
			cancel()
			return err
		}
		a, err := iox.OpenPair(ctx, node, name+"-pair")
		if err != nil {
			cancel()
			return err
		}
		// the teardowns run on goroutines of their own from here
		cancel()
		for j := 0; j < i%64; j++ { // jitter: each trial asks at another moment
			runtime.Gosched()
		}
		in, ain := s.In(), a.In()
		_, _ = p.Out(), a.Out()
		peers := p.Peers()
		for range in {
		}
		for range ain {
		}
		for range peers {
		}
		s.Close()
		p.Close()
		a.Close()
	}
	fmt.Println("done")
	return nil
}

// A receiver that took everything and closes first ends the pair cleanly for
// the sender: the sender sees ErrPeerClosed, and its own Close then returns nil
// (the peer's bye said how many messages it took), in one process and across
// processes.
func TestAdvReceiverClosesFirstThenSenderCloseIsConfirmed(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := advCtx(t)
	const n = 2
	endSeen := func(t *testing.T, trial int, a *iox.Pair[[]byte]) {
		t.Helper()
		select {
		case <-a.Done():
			require.ErrorIs(t, a.Err(), iox.ErrPeerClosed, "trial %d", trial)
		case <-time.After(5 * time.Second):
			t.Errorf("trial %d: the peer's Close was not seen within 5 s (Err still nil)", trial)
		}
		require.NoError(t, a.Close(), "trial %d: the peer took all %d messages and said so in its bye", trial, n)
	}

	t.Run("one-process", func(t *testing.T) {
		for trial := 0; trial < 40; trial++ {
			name := fmt.Sprintf("recv-first-%d", trial)
			a, err := iox.OpenPair(ctx, node, name)
			require.NoError(t, err)
			b, err := iox.OpenPair(ctx, node, name)
			require.NoError(t, err)
			for i := 0; i < n; i++ {
				require.NoError(t, a.Send(ctx, []byte(fmt.Sprint(i))))
			}
			for i := 0; i < n; i++ {
				m, err := b.Recv(ctx)
				require.NoError(t, err)
				require.Equal(t, fmt.Sprint(i), string(m))
			}
			require.NoError(t, b.Close())
			endSeen(t, trial, a)
			if t.Failed() {
				return
			}
		}
	})

	t.Run("two-processes", func(t *testing.T) {
		for trial := 0; trial < 20; trial++ {
			name := fmt.Sprintf("recv-first-x-%d", trial)
			a, err := iox.OpenPair(ctx, node, name)
			require.NoError(t, err)
			c := spawn(t, ns, "adv-pair-recv-close", "IOX_SERVICE="+name, fmt.Sprintf("IOX_COUNT=%d", n))
			c.expect("ready")
			for i := 0; i < n; i++ {
				require.NoError(t, a.Send(ctx, []byte(fmt.Sprint(i))))
			}
			c.expect("closed <nil>")
			endSeen(t, trial, a) // the child is still alive: only its bye can tell
			c.say("exit")
			c.wait()
			if t.Failed() {
				return
			}
		}
	})
}

// childAdvPairRecvClose receives IOX_COUNT messages, closes, reports Close's
// result and stays alive until the parent says so.
func childAdvPairRecvClose() error {
	node, err := nsFromEnv().childNode()
	if err != nil {
		return err
	}
	defer node.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := iox.OpenPair(ctx, node, os.Getenv("IOX_SERVICE"))
	if err != nil {
		return err
	}
	fmt.Println("ready")
	for i := 0; i < envInt("IOX_COUNT"); i++ {
		if _, err := p.Recv(ctx); err != nil {
			p.Close()
			return err
		}
	}
	fmt.Println("closed", p.Close())
	parentSays()
	return nil
}
