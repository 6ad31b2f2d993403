package iox_test

// Adversarial tests of TryRecv (Pair and Sub): racing Close, sharing the
// receiving turn with Recv and In, a peer killed mid-stream, messages too
// large for the receiver, contexts that ended already, waiters that must
// still be woken while TryRecv hammers the same end, and senders waiting for
// room that an end read with TryRecv alone makes.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/iox-go/iox"
)

func init() {
	children["advtry-sizes"] = childAdvTrySizes
	children["advtry-sender"] = childAdvTrySender
}

// childAdvTrySizes opens the pair IOX_SERVICE, waits for its peer, says
// "ready", sends one message per size in IOX_SIZES (comma-separated; message
// i is pattern(size, i) with i in its first 8 bytes), then closes and says
// "closed KIND" (the kind of Close's result).
func childAdvTrySizes() error {
	node, err := nsFromEnv().childNode()
	if err != nil {
		return err
	}
	defer node.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	p, err := iox.OpenPair(ctx, node, os.Getenv("IOX_SERVICE"), iox.WithPeerTimeout(200*time.Millisecond), iox.WithLinger(10*time.Second))
	if err != nil {
		return err
	}
	if !waitUntil(20*time.Second, p.Connected) {
		p.Close()
		return errors.New("no peer")
	}
	fmt.Println("ready")
	for i, s := range strings.Split(os.Getenv("IOX_SIZES"), ",") {
		n, err := strconv.Atoi(s)
		if err != nil {
			p.Close()
			return err
		}
		if err := p.Send(ctx, advTrySized(uint64(i), n)); err != nil {
			p.Close()
			return fmt.Errorf("send %d (%d bytes): %w", i, n, err)
		}
	}
	fmt.Println("closed", kindOf(p.Close()))
	return nil
}

// advTrySized is message i of childAdvTrySizes: size bytes (at least 8), i in
// its first 8.
func advTrySized(i uint64, size int) []byte {
	m := pattern(max(size, 8), int(i))
	binary.LittleEndian.PutUint64(m, i)
	return m
}

// childAdvTrySender opens the pair IOX_SERVICE (peer timeout
// IOX_PEER_TIMEOUT, 200 ms by default), waits for its peer and says "ready";
// then, line by line from the parent, "send A B" sends the sequence numbers
// A..B-1 (messages of IOX_SIZE bytes, 8 by default: advTrySized) and says
// "sent", and "close" closes the pair and says "closed KIND".
func childAdvTrySender() error {
	node, err := nsFromEnv().childNode()
	if err != nil {
		return err
	}
	defer node.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	p, err := iox.OpenPair(ctx, node, os.Getenv("IOX_SERVICE"),
		iox.WithPeerTimeout(envDur("IOX_PEER_TIMEOUT", 200*time.Millisecond)), iox.WithLinger(10*time.Second))
	if err != nil {
		return err
	}
	if !waitUntil(20*time.Second, p.Connected) {
		p.Close()
		return errors.New("no peer")
	}
	size := envInt("IOX_SIZE")
	fmt.Println("ready")
	for {
		l := parentSays()
		var a, b uint64
		switch {
		case l == "close" || l == "":
			fmt.Println("closed", kindOf(p.Close()))
			return nil
		case strings.HasPrefix(l, "send "):
			if _, err := fmt.Sscanf(l, "send %d %d", &a, &b); err != nil {
				p.Close()
				return err
			}
			for i := a; i < b; i++ {
				if err := p.Send(ctx, advTrySized(i, size)); err != nil {
					p.Close()
					return fmt.Errorf("send %d: %w", i, err)
				}
			}
			fmt.Println("sent")
		default:
			p.Close()
			return fmt.Errorf("unknown command %q", l)
		}
	}
}

// advTryRecver is what Pair[[]byte] and Sub[[]byte] have in common here.
type advTryRecver interface {
	TryRecv(ctx context.Context) ([]byte, bool, error)
}

// advTryShape checks what any answer of TryRecv must look like: a message
// (of at least 8 bytes here) with ok and no error, or no value with ok false.
func advTryShape(v []byte, ok bool, err error) error {
	switch {
	case ok && err != nil:
		return fmt.Errorf("ok with an error: %v", err)
	case ok && len(v) < 8:
		return fmt.Errorf("ok with a message of %d bytes (%x): a zero value or garbage", len(v), v)
	case !ok && v != nil:
		return fmt.Errorf("not ok, yet a value of %d bytes (error %v)", len(v), err)
	}
	return nil
}

// advTryPairSender opens the pair name with opts in a new namespace and an
// advtry-sender child (with env) on its other end, killed when the test ends,
// and waits until the child is ready. The caller closes the pair.
func advTryPairSender(t *testing.T, name string, opts []iox.Option, env ...string) (context.Context, *iox.Pair[[]byte], *child) {
	t.Helper()
	ns := newNamespace(t)
	ctx := advCtx(t)
	p, err := iox.OpenPair(ctx, ns.node(t), name, opts...)
	require.NoError(t, err)
	c := spawn(t, ns, "advtry-sender", append([]string{"IOX_SERVICE=" + name}, env...)...)
	t.Cleanup(func() { c.cmd.Process.Kill() })
	c.expect("ready")
	return ctx, p, c
}

// advTryPoll calls TryRecv until it returns a message or an error, looking
// again every millisecond (waitUntil) while nothing has arrived, and fails
// the test when neither came within 30 s. It checks the answer's shape.
func advTryPoll(t *testing.T, ctx context.Context, r advTryRecver, what string) ([]byte, error) {
	t.Helper()
	var (
		v   []byte
		ok  bool
		err error
	)
	if !waitUntil(30*time.Second, func() bool {
		v, ok, err = r.TryRecv(ctx)
		return ok || err != nil
	}) {
		t.Fatalf("%s: TryRecv found nothing for 30 s", what)
	}
	require.NoError(t, advTryShape(v, ok, err), what)
	return v, err
}

func advTrySeq(m []byte) uint64 { return binary.LittleEndian.Uint64(m) }

// advTryLog is what one consumer of a shared end saw: its messages' sequence
// numbers, how it ended, and the first breach of the contract it met.
type advTryLog struct {
	who  string
	seqs []uint64
	end  error
	bad  error
	kind map[string]int // the kinds of the errors it met on the way
}

func (l *advTryLog) add(m []byte) {
	if l.bad != nil {
		return
	}
	if len(m) != 8 {
		l.bad = fmt.Errorf("%s: a message of %d bytes: %x", l.who, len(m), m)
		return
	}
	s := advTrySeq(m)
	if n := len(l.seqs); n > 0 && s <= l.seqs[n-1] {
		l.bad = fmt.Errorf("%s: sequence %d after %d (duplicated or reordered)", l.who, s, l.seqs[n-1])
	}
	l.seqs = append(l.seqs, s)
}

func (l *advTryLog) met(err error) {
	if l.kind == nil {
		l.kind = map[string]int{}
	}
	l.kind[kindOf(err)]++
}

// advTryUnion checks that the consumers together got each sequence number
// once and returns how many they got and which numbers are missing below
// the largest one.
func advTryUnion(t *testing.T, logs []*advTryLog) (total int, holes []uint64) {
	t.Helper()
	seen := map[uint64]string{}
	var top uint64
	for _, l := range logs {
		require.NoError(t, l.bad)
		for _, s := range l.seqs {
			if other, dup := seen[s]; dup {
				t.Fatalf("sequence %d delivered twice: to %s and to %s", s, other, l.who)
			}
			seen[s] = l.who
			top = max(top, s+1)
		}
	}
	for s := range top {
		if _, ok := seen[s]; !ok {
			holes = append(holes, s)
		}
	}
	return len(seen), holes
}

// awaitLogs collects n logs from c, failing the test when they do not all
// come within d (a consumer that hangs).
func awaitLogs(t *testing.T, c <-chan *advTryLog, n int, d time.Duration) []*advTryLog {
	t.Helper()
	var logs []*advTryLog
	timeout := time.After(d)
	for len(logs) < n {
		select {
		case l := <-c:
			logs = append(logs, l)
		case <-timeout:
			t.Fatalf("%d of %d consumers did not finish within %v; goroutines in TryRecv %d, Recv %d",
				n-len(logs), n, d, goroutinesIn("iox.(*receiver[...]).tryRecv", false), goroutinesIn("iox.(*receiver[...]).next", false))
		}
	}
	slices.SortFunc(logs, func(a, b *advTryLog) int { return strings.Compare(a.who, b.who) })
	return logs
}

// 1. TryRecv racing Close of the same end, from several goroutines (one of
// them with a context that ended already), beside a Recv or In in some
// rounds: every call returns, with a message of the stream or an error of the
// package (or, for the ended context, that context's error); once Close has
// returned every call returns ErrClosed; nothing is delivered twice, each
// goroutine sees increasing sequence numbers, and what was delivered is the
// stream's beginning (In may lose the one message it held when the end
// closed).
func TestAdvTryRecvRacesClose(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := advCtx(t)
	rng := seeded(t)
	rounds := loops(24, 9, 200)
	for _, kind := range []string{"pair", "sub"} {
		t.Run(kind, func(t *testing.T) {
			figures := map[string]int{}
			for round := range rounds {
				advTryCloseRound(t, ctx, node, kind, round, rng.IntN(60), figures)
			}
			t.Logf("%d rounds; answers by kind over all rounds: %v", rounds, figures)
		})
	}
}

func advTryCloseRound(t *testing.T, ctx context.Context, node *iox.Node, kind string, round, closeAfter int, figures map[string]int) {
	name := fmt.Sprintf("advtry-race-%s-%d", kind, round)
	var (
		rx      advTryRecver
		closeRx func() error
		recv    func(context.Context) ([]byte, error)
		in      func() <-chan []byte
		send    func(context.Context, []byte) error
		closeTx func() error
	)
	switch kind {
	case "pair":
		a, err := iox.OpenPair(ctx, node, name, iox.WithLinger(time.Second))
		require.NoError(t, err)
		b, err := iox.OpenPair(ctx, node, name, iox.WithLinger(time.Second))
		require.NoError(t, err)
		eventually(t, "the pair to connect", func() bool { return a.Connected() && b.Connected() })
		rx, closeRx, recv, in, send, closeTx = a, a.Close, a.Recv, a.In, b.Send, b.Close
	case "sub":
		s, err := iox.OpenSub(ctx, node, name)
		require.NoError(t, err)
		p, err := iox.OpenPub(ctx, node, name, iox.WithLinger(time.Second))
		require.NoError(t, err)
		waitSubscribers(t, p, 1)
		rx, closeRx, recv, in, send, closeTx = s, s.Close, s.Recv, s.In, p.Send, p.Close
	}

	// the stream
	sendCtx, stopSend := context.WithCancel(ctx)
	sent := make(chan uint64, 1)
	go func() {
		var i uint64
		for ; i < 100_000 && send(sendCtx, seqMsg(i)) == nil; i++ {
		}
		sent <- i
	}()

	var closed atomic.Bool // Close has returned
	var got atomic.Int64
	ended, cancelEnded := context.WithCancel(ctx)
	cancelEnded()
	logs := make(chan *advTryLog, 8)
	tryLoop := func(who string, c context.Context) {
		l := &advTryLog{who: who}
		defer func() { logs <- l }()
		for calls := 0; ; calls++ {
			after := closed.Load()
			v, ok, err := rx.TryRecv(c)
			if e := advTryShape(v, ok, err); e != nil {
				l.bad = fmt.Errorf("%s, call %d: %w", who, calls, e)
				return
			}
			if ok {
				if after {
					l.bad = fmt.Errorf("%s: a message (sequence %d) after Close returned (want ErrClosed)", who, advTrySeq(v))
					return
				}
				l.add(v)
				got.Add(1)
				continue
			}
			if err == nil {
				if after {
					l.bad = fmt.Errorf("%s: after Close returned, ok false and no error (want ErrClosed)", who)
					return
				}
				runtime.Gosched()
				continue
			}
			l.met(err)
			switch {
			case errors.Is(err, iox.ErrClosed):
				var e *iox.Error
				if !errors.As(err, &e) {
					l.bad = fmt.Errorf("%s: ErrClosed that is no *iox.Error: %v", who, err)
				}
				l.end = err
				return
			case c.Err() != nil && errors.Is(err, c.Err()):
				// the ended context: its error is allowed while another
				// holds the turn (the keeper, Recv, In, Close)
				if after {
					l.bad = fmt.Errorf("%s: after Close returned, %v (want ErrClosed)", who, err)
					return
				}
				runtime.Gosched()
			default:
				l.bad = fmt.Errorf("%s: unexpected error %v (%s)", who, err, kindOf(err))
				return
			}
		}
	}
	consumers := 3
	go tryLoop("try-1", ctx)
	go tryLoop("try-2", ctx)
	go tryLoop("try-ended", ended)
	switch round % 3 {
	case 1:
		consumers++
		go func() {
			l := &advTryLog{who: "recv"}
			defer func() { logs <- l }()
			for {
				m, err := recv(ctx)
				if err != nil {
					l.end = err
					if !errors.Is(err, iox.ErrClosed) {
						l.bad = fmt.Errorf("recv: ended with %v (%s), want ErrClosed", err, kindOf(err))
					}
					return
				}
				l.add(m)
				got.Add(1)
			}
		}()
	case 2:
		consumers++
		ch := in()
		go func() {
			l := &advTryLog{who: "in"}
			defer func() { logs <- l }()
			for m := range ch {
				l.add(m)
				got.Add(1)
			}
		}()
	}

	eventually(t, fmt.Sprintf("round %d: %d messages received", round, closeAfter), func() bool { return got.Load() >= int64(closeAfter) })
	var closeErr error
	within(t, 20*time.Second, "Close", func() { closeErr = closeRx() })
	closed.Store(true)
	require.NoError(t, closeErr, "round %d: Close of an end that sent nothing", round)

	all := awaitLogs(t, logs, consumers, 20*time.Second)
	stopSend()
	var n uint64
	select {
	case n = <-sent:
	case <-time.After(20 * time.Second):
		t.Fatalf("round %d: the sender did not stop", round)
	}
	closeTx()

	// after Close, TryRecv says ErrClosed (with a live context)
	_, ok, err := rx.TryRecv(ctx)
	require.False(t, ok)
	requireTyped(t, err, "TryRecv after Close")
	require.ErrorIs(t, err, iox.ErrClosed)

	total, holes := advTryUnion(t, all)
	for _, l := range all {
		if l.who == "try-1" || l.who == "try-2" || l.who == "recv" {
			require.ErrorIs(t, l.end, iox.ErrClosed, "round %d: %s ended with %v", round, l.who, l.end)
		}
		for k, c := range l.kind {
			figures[k] += c
		}
		figures["messages to "+l.who] += len(l.seqs)
	}
	allowed := 0
	if round%3 == 2 {
		allowed = 1 // In's goroutine may hold one it took when the end closed
	}
	require.LessOrEqual(t, len(holes), allowed, "round %d: sequence numbers missing below the largest delivered: %v (%d sent, %d delivered)", round, holes, n, total)
	require.GreaterOrEqual(t, total, closeAfter, "round %d", round)
}

// 2. TryRecv on one end beside a Recv loop and an In reader on the same end,
// while a child process streams sequence numbers: each message reaches
// exactly one of them, each sees increasing numbers, the union is the whole
// stream, and every one of them ends with ErrPeerClosed after it. One TryRecv
// loop uses a live context, the other a context of a millisecond per call
// (its error is allowed: In and Recv hold the turn while they wait).
func TestAdvTryRecvSharesTheTurnWithRecvAndIn(t *testing.T) {
	n := loops(20000, 3000, 200000)
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := advCtx(t)
	p, err := iox.OpenPair(ctx, node, "advtry-share", iox.WithPeerTimeout(time.Second))
	require.NoError(t, err)
	defer p.Close()
	c := spawn(t, ns, "abuse-pair-send", "IOX_SERVICE=advtry-share", fmt.Sprintf("IOX_COUNT=%d", n), "IOX_SIZE=8")
	t.Cleanup(func() { c.cmd.Process.Kill() })

	logs := make(chan *advTryLog, 4)
	in := p.In()
	go advTryLogIn(logs, in, p.Err)
	go func() {
		l := &advTryLog{who: "recv"}
		defer func() { logs <- l }()
		for {
			m, err := p.Recv(ctx)
			if err != nil {
				l.end = err
				return
			}
			l.add(m)
		}
	}()
	go advTryLoop(ctx, p, "try-live", false, logs)
	go advTryLoop(ctx, p, "try-short", true, logs)
	c.expect("ready")
	require.Equal(t, "nil", c.expectPrefix("closed "), "the child's Close: this end took every message")
	c.wait()

	all := awaitLogs(t, logs, 4, 30*time.Second)
	total, holes := advTryUnion(t, all)
	for _, l := range all {
		t.Logf("%-9s got %6d messages, ended with %v; errors met %v", l.who, len(l.seqs), l.end, l.kind)
		require.ErrorIs(t, l.end, iox.ErrPeerClosed, "%s", l.who)
		requireTyped(t, l.end, l.who+"'s end")
	}
	require.Empty(t, holes, "lost messages")
	require.Equal(t, n, total, "every message once")
	_, ok, err := p.TryRecv(ctx)
	require.False(t, ok)
	require.ErrorIs(t, err, iox.ErrPeerClosed, "the end stays")
}

// 3. The peer's process is killed with SIGKILL in the middle of a stream
// that this end reads with TryRecv alone: TryRecv returns the stream's
// beginning, in order and without duplicates, then ErrPeerCrashed (typed,
// and again on later calls), never a hang or garbage.
func TestAdvTryRecvPeerKilledMidStream(t *testing.T) {
	rng := seeded(t)
	for round := range loops(3, 2, 10) {
		ns := newNamespace(t)
		node := ns.node(t)
		ctx := advCtx(t)
		name := fmt.Sprintf("advtry-kill-%d", round)
		p, err := iox.OpenPair(ctx, node, name, iox.WithPeerTimeout(200*time.Millisecond), iox.BufferSize(8))
		require.NoError(t, err)
		c := spawn(t, ns, "pair-flood", "IOX_SERVICE="+name)
		t.Cleanup(func() { c.cmd.Process.Kill() })
		killAt := uint64(200 + rng.IntN(3000))
		var next uint64
		for next < killAt {
			m, err := advTryPoll(t, ctx, p, fmt.Sprintf("round %d, message %d", round, next))
			require.NoError(t, err, "round %d, message %d", round, next)
			require.Len(t, m, 8)
			require.Equal(t, next, advTrySeq(m), "round %d: in order", round)
			next++
		}
		c.kill()
		before := next
		for {
			m, err := advTryPoll(t, ctx, p, fmt.Sprintf("round %d, after the kill, message %d", round, next))
			if err != nil {
				requireTyped(t, err, "TryRecv after the peer's process died")
				require.ErrorIs(t, err, iox.ErrPeerCrashed, "round %d", round)
				break
			}
			require.Len(t, m, 8)
			require.Equal(t, next, advTrySeq(m), "round %d: in order after the kill", round)
			next++
		}
		t.Logf("round %d: killed after %d messages; %d more came after the kill, then ErrPeerCrashed", round, before, next-before)
		for range 3 {
			v, ok, err := p.TryRecv(ctx)
			require.NoError(t, advTryShape(v, ok, err))
			require.False(t, ok)
			require.ErrorIs(t, err, iox.ErrPeerCrashed, "the end stays")
		}
		if err := p.Close(); err != nil {
			require.ErrorIs(t, err, iox.ErrUndelivered)
		}
		sweepDead(t, ns)
	}
}

// 4. Messages too large for this end's MaxMessageSize (64 bytes), among
// others that fit: one just over the bound, one that is packed with small
// ones or goes alone, one larger than a packed sample (dropped in shared
// memory): each comes back from TryRecv as a typed ErrMessageTooLarge with ok
// false, and the next call returns the following message; then
// ErrPeerClosed. Once read as they arrive, once after the peer closed (what
// this end's keeper took while nobody received).
func TestAdvTryRecvTooLarge(t *testing.T) {
	sizes := []int{8, 1000, 8, 100 << 10, 8, 65, 64, 8, 2000, 3000, 8, 200 << 10, 100 << 10, 8}
	list := make([]string, len(sizes))
	for i, s := range sizes {
		list[i] = strconv.Itoa(s)
	}
	for _, mode := range []string{"live", "held"} {
		t.Run(mode, func(t *testing.T) {
			ns := newNamespace(t)
			node := ns.node(t)
			ctx := advCtx(t)
			p, err := iox.OpenPair(ctx, node, "advtry-large", iox.MaxMessageSize(64), iox.WithPeerTimeout(time.Second))
			require.NoError(t, err)
			defer p.Close()
			c := spawn(t, ns, "advtry-sizes", "IOX_SERVICE=advtry-large", "IOX_SIZES="+strings.Join(list, ","))
			t.Cleanup(func() { c.cmd.Process.Kill() })
			c.expect("ready")
			closedKind := ""
			if mode == "held" {
				closedKind = c.expectPrefix("closed ")
			}
			for i, size := range sizes {
				m, err := advTryPoll(t, ctx, p, fmt.Sprintf("message %d (%d bytes)", i, size))
				if size > 64 {
					require.Error(t, err, "message %d of %d bytes is over the bound, got %d bytes", i, size, len(m))
					requireTyped(t, err, fmt.Sprintf("message %d of %d bytes", i, size))
					require.ErrorIs(t, err, iox.ErrMessageTooLarge, "message %d of %d bytes", i, size)
					continue
				}
				require.NoError(t, err, "message %d of %d bytes: the one before was dropped, this one goes on", i, size)
				require.Equal(t, advTrySized(uint64(i), size), m, "message %d", i)
			}
			_, err = advTryPoll(t, ctx, p, "the end")
			require.ErrorIs(t, err, iox.ErrPeerClosed)
			if mode == "live" {
				closedKind = c.expectPrefix("closed ")
			}
			c.wait()
			t.Logf("the sender's Close: %s", closedKind)
		})
	}
}

// 5. A context that ended already. When the turn is free (no keeper on a
// lossy subscriber, nobody receiving), and when this end's keeper holds it
// with messages it took, TryRecv must not hang and must answer with the next
// message in order or the context's error; what it answers is logged. When a
// Recv holds the turn, it must answer with the context's error.
func TestAdvTryRecvEndedContext(t *testing.T) {
	ended, cancel := context.WithCancel(context.Background())
	cancel()
	const n = 10

	// drainEnded calls TryRecv with the ended context calls times and checks
	// every answer; it returns the messages' sequence numbers and the counts
	// of the answers' kinds.
	drainEnded := func(t *testing.T, r advTryRecver, calls int) ([]uint64, map[string]int) {
		t.Helper()
		var seqs []uint64
		answers := map[string]int{}
		within(t, 20*time.Second, "TryRecv with an ended context", func() {
			for range calls {
				v, ok, err := r.TryRecv(ended)
				answers[fmt.Sprintf("ok=%v %s", ok, kindOf(err))]++
				if advTryShape(v, ok, err) != nil || ok && len(v) != 8 {
					seqs = append(seqs, ^uint64(0)) // reported below
					continue
				}
				if ok {
					seqs = append(seqs, advTrySeq(v))
				}
			}
		})
		for k := range answers {
			require.Contains(t, []string{"ok=true nil", "ok=false nil", "ok=false context.Canceled", "ok=false ErrPeerClosed"}, k,
				"an answer to TryRecv with an ended context: %v", answers)
		}
		return seqs, answers
	}

	t.Run("lossy-sub-free-turn", func(t *testing.T) {
		ns := newNamespace(t)
		node := ns.node(t)
		ctx := advCtx(t)
		s, err := iox.OpenSub(ctx, node, "advtry-ended-lossy", iox.Lossy(), iox.BufferSize(2*n))
		require.NoError(t, err)
		defer s.Close()
		p, err := iox.OpenPub(ctx, node, "advtry-ended-lossy", iox.Lossy(), iox.BufferSize(2*n))
		require.NoError(t, err)
		defer p.Close()
		for i := range uint64(n) {
			require.NoError(t, p.Send(ctx, seqMsg(i)))
		}
		require.NoError(t, p.Flush(ctx))
		seqs, answers := drainEnded(t, s, 3*n)
		t.Logf("free turn, %d messages in shared memory: %d answers %v; messages %v", n, 3*n, answers, seqs)
		require.True(t, slices.IsSorted(seqs) && len(slices.Compact(slices.Clone(seqs))) == len(seqs), "in order, once: %v", seqs)
		for i, s := range seqs {
			require.Equal(t, uint64(i), s, "the stream's beginning: %v", seqs)
		}
		rest := uint64(len(seqs))
		for i := rest; i < n; i++ {
			m, err := advTryPoll(t, ctx, s, fmt.Sprintf("message %d", i))
			require.NoError(t, err)
			require.Equal(t, i, advTrySeq(m))
		}
	})

	t.Run("pair-keeper-holds", func(t *testing.T) {
		ctx, p, c := advTryPairSender(t, "advtry-ended-pair", []iox.Option{iox.WithPeerTimeout(time.Second)})
		defer p.Close()
		c.say(fmt.Sprintf("send 0 %d", n))
		c.expect("sent")
		c.say("close")
		require.Equal(t, "nil", c.expectPrefix("closed "), "the keeper took every message (the peer's Close confirms them)")
		c.wait()
		seqs, answers := drainEnded(t, p, 3*n)
		t.Logf("the keeper holds %d messages: %d answers %v; messages %v", n, 3*n, answers, seqs)
		for i, s := range seqs {
			require.Equal(t, uint64(i), s, "in order, once, from the stream's beginning: %v", seqs)
		}
		for i := uint64(len(seqs)); i < n; i++ {
			m, err := advTryPoll(t, ctx, p, fmt.Sprintf("message %d", i))
			require.NoError(t, err)
			require.Equal(t, i, advTrySeq(m))
		}
		_, err := advTryPoll(t, ctx, p, "the end")
		require.ErrorIs(t, err, iox.ErrPeerClosed)
	})

	t.Run("pair-recv-holds", func(t *testing.T) {
		ns := newNamespace(t)
		node := ns.node(t)
		ctx := advCtx(t)
		p, err := iox.OpenPair(ctx, node, "advtry-ended-recv")
		require.NoError(t, err)
		defer p.Close()
		rctx, stop := context.WithCancel(ctx)
		defer stop()
		done := make(chan error, 1)
		go func() {
			_, err := p.Recv(rctx)
			done <- err
		}()
		waitParked(t, "iox.(*receiver[...]).next", 1)
		within(t, 20*time.Second, "TryRecv with an ended context while Recv waits", func() {
			for range 100 {
				v, ok, err := p.TryRecv(ended)
				if advTryShape(v, ok, err) != nil || ok || !errors.Is(err, context.Canceled) {
					t.Errorf("while Recv holds the turn, TryRecv with an ended context answered %v %v %v, want context.Canceled", v, ok, err)
					return
				}
			}
		})
		stop()
		require.ErrorIs(t, <-done, context.Canceled)
	})
}

// 6. Waiters that must still be woken while TryRecv hammers the same end: a
// Recv parked in another goroutine, then In's goroutine, each gets the
// message that arrives later, while TryRecv loops on short contexts (it may
// only answer "nothing" or its context's error: the single message is the
// waiter's). Then TryRecv with a live context and In share a stream: every
// message reaches one of them, once, in order; then the peer closes and both
// see it.
func TestAdvTryRecvParkedWaiterStillWakes(t *testing.T) {
	ctx, p, c := advTryPairSender(t, "advtry-park", []iox.Option{iox.WithPeerTimeout(time.Second)})
	defer p.Close()
	eventually(t, "the pair to connect", p.Connected)

	// hammer calls TryRecv on contexts of 2 ms until stop closes, and
	// reports what it met; at least calls calls are made before it checks stop.
	type hammered struct {
		calls int
		kinds map[string]int
		got   []uint64
		bad   error
	}
	var calls atomic.Int64
	hammer := func(stop <-chan struct{}, out chan<- hammered) {
		h := hammered{kinds: map[string]int{}}
		defer func() { out <- h }()
		for {
			select {
			case <-stop:
				return
			default:
			}
			c, cancel := context.WithTimeout(ctx, 2*time.Millisecond)
			v, ok, err := p.TryRecv(c)
			cancel()
			h.calls++
			calls.Add(1)
			h.kinds[fmt.Sprintf("ok=%v %s", ok, kindOf(err))]++
			if e := advTryShape(v, ok, err); e != nil {
				h.bad = e
				return
			}
			if ok {
				h.got = append(h.got, advTrySeq(v))
			} else if err != nil && !errors.Is(err, context.DeadlineExceeded) {
				h.bad = fmt.Errorf("TryRecv: %v (%s)", err, kindOf(err))
				return
			}
			runtime.Gosched()
		}
	}

	// a parked Recv
	got := make(chan []byte, 1)
	gotErr := make(chan error, 1)
	go func() {
		m, err := p.Recv(ctx)
		if err != nil {
			gotErr <- err
			return
		}
		got <- m
	}()
	waitParked(t, "iox.(*receiver[...]).next", 1)
	stop, out := make(chan struct{}), make(chan hammered, 1)
	calls.Store(0)
	go hammer(stop, out)
	eventually(t, "TryRecv to wait for its turn a few times", func() bool { return calls.Load() >= 10 })
	c.say("send 0 1")
	c.expect("sent")
	select {
	case m := <-got:
		require.Equal(t, uint64(0), advTrySeq(m), "the parked Recv gets the message")
	case err := <-gotErr:
		t.Fatalf("the parked Recv: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatalf("the parked Recv was not woken by a message that arrived while TryRecv hammered; goroutines in next: %d", goroutinesIn("iox.(*receiver[...]).next", false))
	}
	close(stop)
	h := <-out
	require.NoError(t, h.bad)
	require.Empty(t, h.got, "the one message was Recv's")
	t.Logf("beside a parked Recv: %d TryRecv calls %v", h.calls, h.kinds)

	// In's goroutine parked
	in := p.In()
	waitParked(t, "iox.(*receiver[...]).next", 1)
	stop, out = make(chan struct{}), make(chan hammered, 1)
	calls.Store(0)
	go hammer(stop, out)
	eventually(t, "TryRecv to wait for its turn a few times", func() bool { return calls.Load() >= 10 })
	c.say("send 1 2")
	c.expect("sent")
	select {
	case m, ok := <-in:
		require.True(t, ok, "In closed: %v", p.Err())
		require.Equal(t, uint64(1), advTrySeq(m), "In's goroutine gets the message")
	case <-time.After(20 * time.Second):
		t.Fatalf("In's parked goroutine was not woken by a message that arrived while TryRecv hammered")
	}
	close(stop)
	h = <-out
	require.NoError(t, h.bad)
	require.Empty(t, h.got, "the one message was In's")
	t.Logf("beside In's parked goroutine: %d TryRecv calls %v", h.calls, h.kinds)

	// In and TryRecv (live context) share a stream, then the peer's end
	const last = 3000
	logs := make(chan *advTryLog, 2)
	go advTryLogIn(logs, in, p.Err)
	go advTryLoop(ctx, p, "try", false, logs)
	c.say(fmt.Sprintf("send 2 %d", last))
	c.expect("sent")
	c.say("close")
	require.Equal(t, "nil", c.expectPrefix("closed "), "this end took every message")
	c.wait()
	all := awaitLogs(t, logs, 2, 30*time.Second)
	total, holes := advTryUnion(t, all)
	for _, l := range all {
		t.Logf("%s got %d messages, ended with %v", l.who, len(l.seqs), l.end)
		require.ErrorIs(t, l.end, iox.ErrPeerClosed, l.who)
		if len(l.seqs) > 0 {
			require.GreaterOrEqual(t, l.seqs[0], uint64(2), l.who)
		}
	}
	require.Equal(t, []uint64{0, 1}, holes, "messages 0 and 1 went to the waiters before; nothing else is missing")
	require.Equal(t, last-2, total)
}

// 7. A sender that waits for room, while this end is read with TryRecv
// alone (never a Recv, never In): taking messages makes room, and the sender
// must be told of it, as it is when Recv takes them. The senders here have a
// peer timeout of 2 minutes, so their safety net (a look every quarter of
// it, 30 s) cannot stand in for that: a stream that Recv takes in a fraction
// of a second and that does not finish within 20 s has a sender nobody woke
// (the guard is a "did not finish" bound). A lossless publisher
// of small messages to a subscriber with a buffer of 4, and a pair's end
// sending 8 KiB and 100 KiB messages (which go alone, not packed).
func TestAdvTryRecvTellsWaitingSenderOfRoom(t *testing.T) {
	const bound = 20 * time.Second
	// the same streams drained with Recv: the control, which must pass
	for _, with := range []string{"TryRecv", "Recv"} {
		t.Run("sub-8B-"+with, func(t *testing.T) {
			n := loops(3000, 1000, 20000)
			ns := newNamespace(t)
			node := ns.node(t)
			ctx := advCtx(t)
			sub, err := iox.OpenSub(ctx, node, "advtry-room", iox.BufferSize(4), iox.WithChanCap(4))
			require.NoError(t, err)
			defer sub.Close()
			c := spawn(t, ns, "tryrecv-pub", "IOX_SERVICE=advtry-room", fmt.Sprintf("IOX_COUNT=%d", n), "IOX_PEER_TIMEOUT=2m")
			t.Cleanup(func() { c.cmd.Process.Kill() })
			advTryDrain(t, ctx, advTryWith(with, sub, sub.Recv), n, 8, bound)
			c.expect("sent")
			v, ok, err := sub.TryRecv(ctx)
			require.NoError(t, advTryShape(v, ok, err))
			require.NoError(t, err)
			require.False(t, ok, "every message was taken")
			c.say("close")
			c.wait()
			require.NoError(t, sub.Close())
		})
		for _, size := range []int{8 << 10, 100 << 10} {
			t.Run(fmt.Sprintf("pair-%dKiB-%s", size>>10, with), func(t *testing.T) {
				n := loops(2000, 400, 20000)
				if size > 64<<10 {
					n /= 4
				}
				ctx, p, c := advTryPairSender(t, "advtry-room", []iox.Option{iox.WithChanCap(4), iox.WithPeerTimeout(time.Second)},
					fmt.Sprintf("IOX_SIZE=%d", size), "IOX_PEER_TIMEOUT=2m")
				defer p.Close()
				c.say(fmt.Sprintf("send 0 %d", n))
				advTryDrain(t, ctx, advTryWith(with, p, p.Recv), n, size, bound)
				c.expect("sent")
				c.say("close")
				require.Equal(t, "nil", c.expectPrefix("closed "), "the child's Close: every message confirmed")
				c.wait()
				_, err := advTryPoll(t, ctx, p, "the end")
				require.ErrorIs(t, err, iox.ErrPeerClosed)
			})
		}
	}
}

// advTryWith is r itself for "TryRecv", and for "Recv" a TryRecv made of
// recv (which waits for the message).
func advTryWith(with string, r advTryRecver, recv func(context.Context) ([]byte, error)) advTryRecver {
	if with == "TryRecv" {
		return r
	}
	return advTryRecvFunc(func(ctx context.Context) ([]byte, bool, error) {
		v, err := recv(ctx)
		return v, err == nil, err
	})
}

type advTryRecvFunc func(ctx context.Context) ([]byte, bool, error)

func (f advTryRecvFunc) TryRecv(ctx context.Context) ([]byte, bool, error) { return f(ctx) }

// advTryDrain takes n messages of size bytes (sequence numbers 0..n-1, as
// advTrySized makes them) with r's TryRecv alone, looking again every
// millisecond while nothing has arrived; it fails the test when the stream
// did not finish within bound.
func advTryDrain(t *testing.T, ctx context.Context, r advTryRecver, n, size int, bound time.Duration) {
	t.Helper()
	start := time.Now()
	last := start
	var longest time.Duration
	for i := range uint64(n) {
		var (
			v   []byte
			ok  bool
			err error
		)
		if !waitUntil(time.Until(start.Add(bound)), func() bool {
			v, ok, err = r.TryRecv(ctx)
			return ok || err != nil
		}) {
			t.Fatalf("a stream of %d messages did not finish within %v: %d taken, the last %v ago, the longest gap before %v. "+
				"The sender waits for room that TryRecv made and was never told of it (its safety net looks again only "+
				"after a quarter of its 2 min peer timeout); with Recv the same stream takes a fraction of a second",
				n, bound, i, time.Since(last).Round(time.Millisecond), longest.Round(time.Millisecond))
		}
		require.NoError(t, advTryShape(v, ok, err), "message %d", i)
		require.NoError(t, err, "message %d", i)
		require.Len(t, v, size, "message %d", i)
		require.Equal(t, i, advTrySeq(v), "in order")
		longest = max(longest, time.Since(last))
		last = time.Now()
	}
	t.Logf("%d messages of %d bytes taken in %v (longest gap %v)",
		n, size, time.Since(start).Round(time.Millisecond), longest.Round(time.Millisecond))
}

// 8. After Close, TryRecv (and Recv, for comparison) answer ErrClosed, also
// with a context that ended already: nobody holds the turn for a Recv or In
// of a closed end, so there is no turn to wait for. A nil context is a typed
// ErrInvalidArgument, before and after Close, on a subscriber as on a pair.
func TestAdvTryRecvClosedWithEndedContext(t *testing.T) {
	ended, cancel := context.WithCancel(context.Background())
	cancel()
	for _, kind := range []string{"pair", "sub"} {
		t.Run(kind, func(t *testing.T) {
			ns := newNamespace(t)
			node := ns.node(t)
			ctx := advCtx(t)
			var (
				r       advTryRecver
				recv    func(context.Context) ([]byte, error)
				closeFn func() error
			)
			switch kind {
			case "pair":
				p, err := iox.OpenPair(ctx, node, "advtry-closed")
				require.NoError(t, err)
				r, recv, closeFn = p, p.Recv, p.Close
			case "sub":
				s, err := iox.OpenSub(ctx, node, "advtry-closed")
				require.NoError(t, err)
				r, recv, closeFn = s, s.Recv, s.Close
			}
			//nolint:staticcheck // a nil context on purpose
			_, ok, err := r.TryRecv(nil)
			require.False(t, ok)
			requireTyped(t, err, "TryRecv with a nil context")
			require.ErrorIs(t, err, iox.ErrInvalidArgument)
			require.NoError(t, closeFn())
			//nolint:staticcheck // a nil context on purpose
			_, _, err = r.TryRecv(nil)
			requireTyped(t, err, "TryRecv with a nil context after Close")
			require.ErrorIs(t, err, iox.ErrInvalidArgument)

			const calls = 200
			tryKinds, recvKinds := map[string]int{}, map[string]int{}
			within(t, 20*time.Second, "TryRecv and Recv after Close", func() {
				for range calls {
					v, ok, err := r.TryRecv(ended)
					if advTryShape(v, ok, err) != nil || ok {
						tryKinds["bad shape"]++
						continue
					}
					tryKinds[kindOf(err)]++
					_, err = recv(ended)
					recvKinds[kindOf(err)]++
				}
			})
			t.Logf("%s closed, %d calls with an ended context: TryRecv %v, Recv %v", kind, calls, tryKinds, recvKinds)
			require.Equal(t, map[string]int{"ErrClosed": calls}, tryKinds,
				"after Close, TryRecv answers ErrClosed (no Recv or In waits, so there is no turn to wait for), whatever the context (Recv: %v)", recvKinds)
			require.Equal(t, map[string]int{"ErrClosed": calls}, recvKinds, "after Close, Recv answers ErrClosed too, whatever the context")
		})
	}
}

// advTryLogIn logs what In delivers until it closes, then the end's error.
func advTryLogIn(logs chan<- *advTryLog, in <-chan []byte, ended func() error) {
	l := &advTryLog{who: "in"}
	defer func() { logs <- l }()
	for m := range in {
		l.add(m)
	}
	l.end = ended()
}

// advTryLoop logs what r's TryRecv returns until it returns an error that
// ends it: with short, each call has a context of a millisecond, whose
// DeadlineExceeded is allowed (another receiver holds the turn) and goes on.
func advTryLoop(ctx context.Context, r advTryRecver, who string, short bool, logs chan<- *advTryLog) {
	l := &advTryLog{who: who}
	defer func() { logs <- l }()
	for {
		c, cancel := ctx, context.CancelFunc(func() {})
		if short {
			c, cancel = context.WithTimeout(ctx, time.Millisecond)
		}
		v, ok, err := r.TryRecv(c)
		cancel()
		if e := advTryShape(v, ok, err); e != nil {
			l.bad = fmt.Errorf("%s: %w", who, e)
			return
		}
		switch {
		case ok:
			l.add(v)
		case err == nil:
			runtime.Gosched()
		case short && errors.Is(err, context.DeadlineExceeded):
			l.met(err)
		default:
			l.met(err)
			l.end = err
			return
		}
	}
}
