package iox_test

// Pipeline tests: one pusher in the test process, pullers in child processes
// (the test binary re-executed), talking through real shared memory.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/iox-go/iox"
)

func init() {
	children["pipe-pull"] = childPipePull
	children["pipe-push"] = childPipePush
}

// childPipePush opens a pusher of the pipeline IOX_SERVICE and sends the
// messages IOX_BASE+0 … IOX_BASE+IOX_COUNT-1, once it knows IOX_PULLERS
// pullers (when set). With IOX_HALF it sends the second half only after the
// parent said "go N" and it knows N pullers. It says "sent", then waits for the
// parent: on "close" it closes and says "closed ok resent R" (R messages
// given back after their puller left) or "closed <error>"; otherwise it waits
// to be killed. With IOX_NO_PIDFD=1 it runs where no pidfd can be had, with
// WithPeerTimeout(100ms).
func childPipePush() error {
	opts := []iox.Option{iox.WithLinger(20 * time.Second)}
	if os.Getenv("IOX_NO_PIDFD") == "1" {
		iox.WithoutPidfds()
		opts = append(opts, iox.WithPeerTimeout(100*time.Millisecond))
	}
	node, err := nsFromEnv().childNode()
	if err != nil {
		return err
	}
	p, err := iox.OpenPush(context.Background(), node, os.Getenv("IOX_SERVICE"), opts...)
	if err != nil {
		return err
	}
	knows := func(n int) error {
		if !waitUntil(20*time.Second, func() bool { return p.Pullers() == n }) {
			return fmt.Errorf("the pusher knows %d pullers, not %d", p.Pullers(), n)
		}
		return nil
	}
	if n := envInt("IOX_PULLERS"); n > 0 {
		if err := knows(n); err != nil {
			return err
		}
	}
	base, count := uint64(envInt("IOX_BASE")), envInt("IOX_COUNT")
	half := count
	if os.Getenv("IOX_HALF") != "" {
		half = count / 2
	}
	for i := 0; i < count; i++ {
		if i == half {
			fmt.Println("half")
			var n int
			if _, err := fmt.Sscanf(parentSays(), "go %d", &n); err != nil {
				return fmt.Errorf("the parent did not say go: %v", err)
			}
			if err := knows(n); err != nil {
				return err
			}
		}
		if err := p.Send(context.Background(), seqMsg(base+uint64(i))); err != nil {
			return err
		}
	}
	fmt.Println("sent")
	if parentSays() != "close" {
		select {}
	}
	if err := p.Close(); err != nil {
		fmt.Println("closed", err)
	} else {
		fmt.Println("closed ok resent", p.Resent())
	}
	return node.Close()
}

// childPipePull opens a puller of the pipeline IOX_SERVICE (BufferSize
// IOX_BUFFER), says "ready" and "got N" for every message it receives. With
// IOX_DELAY it works that long on each message before saying so. With
// IOX_HOLD_AFTER=K, after K messages it takes one more, says "holding N" and
// takes nothing more (it waits to be killed). With IOX_GATE it takes nothing
// before the parent says "take". When the parent says "close" it
// closes the puller, and says "closed" once its receiving loop has ended.
func childPipePull() error {
	node, err := nsFromEnv().childNode()
	if err != nil {
		return err
	}
	defer node.Close()
	ctx := context.Background()
	p, err := iox.OpenPull(ctx, node, os.Getenv("IOX_SERVICE"), iox.BufferSize(envInt("IOX_BUFFER")))
	if err != nil {
		return err
	}
	delay := envDur("IOX_DELAY", 0)
	hold := -1
	if s := os.Getenv("IOX_HOLD_AFTER"); s != "" {
		hold = envInt("IOX_HOLD_AFTER")
	}
	var out sync.Mutex
	say := func(format string, args ...any) {
		out.Lock()
		fmt.Printf(format+"\n", args...)
		out.Unlock()
	}
	say("ready")
	if os.Getenv("IOX_GATE") != "" && parentSays() != "take" {
		return fmt.Errorf("the parent did not say take")
	}
	loop := make(chan error, 1)
	go func() {
		for n := 0; ; n++ {
			m, err := p.Recv(ctx)
			if err != nil {
				loop <- err
				return
			}
			if n == hold {
				say("holding %d", binary.LittleEndian.Uint64(m))
				select {} // taken, never finished: the parent kills this process
			}
			if delay > 0 {
				time.Sleep(delay) // the work a message costs
			}
			say("got %d", binary.LittleEndian.Uint64(m))
		}
	}()
	if parentSays() != "close" {
		return fmt.Errorf("the parent did not say close")
	}
	if err := p.Close(); err != nil {
		return err
	}
	if err := <-loop; !errors.Is(err, iox.ErrClosed) {
		return fmt.Errorf("Recv after Close: %v", err)
	}
	say("closed")
	return nil
}

// puller is the test's view of a child puller: what it said, in order.
type puller struct {
	c       *child
	got     []uint64
	holding int64 // the message it took and holds, -1 before
	closed  bool
	mu      sync.Mutex
	held    chan struct{}
	ended   chan struct{}
}

func spawnPuller(t *testing.T, ns namespace, service string, buffer int, env ...string) *puller {
	c := spawn(t, ns, "pipe-pull", append([]string{"IOX_SERVICE=" + service, "IOX_BUFFER=" + strconv.Itoa(buffer)}, env...)...)
	c.expect("ready")
	p := &puller{c: c, holding: -1, held: make(chan struct{}), ended: make(chan struct{})}
	go func() { // reads everything the child says until it exits
		defer close(p.ended)
		for l := range c.lines {
			f := strings.Fields(l)
			if len(f) == 0 {
				continue
			}
			p.mu.Lock()
			switch f[0] {
			case "got":
				n, _ := strconv.ParseUint(f[1], 10, 64)
				p.got = append(p.got, n)
			case "holding":
				p.holding, _ = strconv.ParseInt(f[1], 10, 64)
				close(p.held)
			case "closed":
				p.closed = true
			}
			p.mu.Unlock()
		}
	}()
	return p
}

// finish tells the child to close and waits until it has said everything.
func (p *puller) finish(t *testing.T) []uint64 {
	t.Helper()
	p.c.say("close")
	select {
	case <-p.ended:
	case <-time.After(20 * time.Second):
		t.Fatal("a puller did not end")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	require.True(t, p.closed, "the puller did not close cleanly")
	return p.got
}

// sendAll sends messages from..to-1 in the background; the channel gets the
// outcome.
func sendAll(ctx context.Context, p *iox.Push[[]byte], from, to int) <-chan error {
	done := make(chan error, 1)
	go func() {
		for i := from; i < to; i++ {
			if err := p.Send(ctx, seqMsg(uint64(i))); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	return done
}

// requireExactly checks that the pullers together received each message of
// 0..n-1 except those in lost exactly once, and nothing else.
func requireExactly(t *testing.T, n int, lost []uint64, got ...[]uint64) {
	t.Helper()
	want := make([]uint64, n)
	for i := range want {
		want[i] = uint64(i)
	}
	requireExactlyOf(t, want, lost, got...)
}

// requireExactlyOf checks that the pullers together received each message of
// want except those in lost exactly once, and nothing else.
func requireExactlyOf(t *testing.T, want, lost []uint64, got ...[]uint64) {
	t.Helper()
	seen := map[uint64]int{}
	for _, g := range got {
		for _, m := range g {
			seen[m]++
		}
	}
	var missing, twice, unknown []uint64
	for _, i := range want {
		switch c := seen[i]; {
		case c == 0 && !slices.Contains(lost, i):
			missing = append(missing, i)
		case c > 0 && slices.Contains(lost, i):
			twice = append(twice, i) // a taken message must not come again
		case c > 1:
			twice = append(twice, i)
		}
		delete(seen, i)
	}
	for m := range seen {
		unknown = append(unknown, m)
	}
	require.Empty(t, missing, "messages nobody received")
	require.Empty(t, twice, "messages received twice (or again after being taken)")
	require.Empty(t, unknown, "messages never sent")
}

// inversions counts the messages that arrived after a later one.
func inversions(got []uint64) int {
	k, top := 0, uint64(0)
	for i, m := range got {
		if i > 0 && m < top {
			k++
		}
		top = max(top, m)
	}
	return k
}

// One pusher, four pullers in other processes: two at full speed, one slow,
// one that takes a message, holds it, and is killed with its queue full. Every
// message arrives exactly once, except the one the killed puller had taken:
// the messages left in its queue go to the others; the slow one does not hold
// the others back; each puller receives in order apart from what was given
// back; Close confirms that everything was taken.
func TestPipelineFourPullersOneSlowOneKilled(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := context.Background()
	const n, buffer, holdAfter = 3000, 8, 20
	push, err := iox.OpenPush(ctx, node, "work", iox.WithLinger(20*time.Second))
	require.NoError(t, err)
	fast1 := spawnPuller(t, ns, "work", buffer)
	fast2 := spawnPuller(t, ns, "work", buffer)
	slow := spawnPuller(t, ns, "work", buffer, "IOX_DELAY=2ms")
	doomed := spawnPuller(t, ns, "work", buffer, "IOX_HOLD_AFTER="+strconv.Itoa(holdAfter))
	eventually(t, "the pusher to know four pullers", func() bool { return push.Pullers() == 4 })

	sent := sendAll(ctx, push, 0, n)
	select {
	case <-doomed.held:
	case <-time.After(20 * time.Second):
		t.Fatal("the doomed puller took nothing")
	}
	pid := doomed.c.cmd.Process.Pid
	eventually(t, "the doomed puller's queue to fill", func() bool { return push.Untaken()[pid] == buffer })
	doomed.c.kill()
	require.NoError(t, <-sent)
	require.NoError(t, push.Close(), "Close confirms that pullers took every message")
	require.Equal(t, uint64(buffer), push.Resent(), "the killed puller's queue was given to the others")

	<-doomed.ended
	doomed.mu.Lock()
	require.Len(t, doomed.got, holdAfter)
	held := uint64(doomed.holding)
	doomed.mu.Unlock()
	g1, g2, gs := fast1.finish(t), fast2.finish(t), slow.finish(t)
	t.Logf("fast %d, fast %d, slow %d, killed %d (+1 held), given back %d", len(g1), len(g2), len(gs), len(doomed.got), push.Resent())
	requireExactly(t, n, []uint64{held}, g1, g2, gs, doomed.got)
	for _, g := range [][]uint64{g1, g2, gs, doomed.got} {
		require.LessOrEqual(t, inversions(g), int(push.Resent()), "a puller receives in order, apart from what was given back")
	}
	require.Less(t, len(gs), len(g1), "the slow puller got less than a fast one")
	require.Less(t, len(gs), len(g2), "the slow puller got less than a fast one")
	node.CleanupDeadNodes() // the killed puller's services
}

// Messages wait while no puller is there, and go to the first puller that
// comes; a puller that comes later gets its share of what follows; a pusher
// that comes after the pullers finds them.
func TestPipelineLateJoiners(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := context.Background()

	early := spawnPuller(t, ns, "late", 4) // there before any pusher
	push, err := iox.OpenPush(ctx, node, "late", iox.WithChanCap(200), iox.WithLinger(20*time.Second))
	require.NoError(t, err)
	require.Equal(t, 1, push.Pullers(), "a pusher finds the pullers that came before it")
	early.c.say("close")
	<-early.ended
	require.True(t, early.closed)
	require.Empty(t, early.got)
	require.Equal(t, 0, push.Pullers(), "a puller that closed is forgotten")

	// No puller now: the messages wait in the pusher.
	require.NoError(t, <-sendAll(ctx, push, 0, 100))
	first := spawnPuller(t, ns, "late", 4)
	eventually(t, "the first puller to take the waiting messages", func() bool {
		first.mu.Lock()
		defer first.mu.Unlock()
		return len(first.got) == 100
	})
	second := spawnPuller(t, ns, "late", 4)
	eventually(t, "the pusher to know the second puller", func() bool { return push.Pullers() == 2 })
	require.NoError(t, <-sendAll(ctx, push, 100, 2000))
	require.NoError(t, push.Close())
	g1, g2 := first.finish(t), second.finish(t)
	require.Equal(t, 0, inversions(g1))
	require.Equal(t, 0, inversions(g2))
	requireExactly(t, 2000, nil, g1, g2)
	require.NotEmpty(t, g2, "the late puller got a share")

	// A second pusher, after the first closed, reaches a puller that waited.
	waiting := spawnPuller(t, ns, "late", 4)
	push2, err := iox.OpenPush(ctx, node, "late")
	require.NoError(t, err)
	require.NoError(t, <-sendAll(ctx, push2, 0, 10))
	require.NoError(t, push2.Close())
	requireExactly(t, 10, nil, waiting.finish(t))
}

// A puller that closes gives back what it had not taken: the other puller gets
// it, once.
func TestPipelineClosedPullerGivesBack(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := context.Background()
	a, err := iox.OpenPull(ctx, node, "back", iox.BufferSize(4))
	require.NoError(t, err)
	b, err := iox.OpenPull(ctx, node, "back", iox.BufferSize(4))
	require.NoError(t, err)
	push, err := iox.OpenPush(ctx, node, "back")
	require.NoError(t, err)
	require.NoError(t, <-sendAll(ctx, push, 0, 8)) // 4 in each queue
	m, err := a.Recv(ctx)
	require.NoError(t, err)
	got := []uint64{binary.LittleEndian.Uint64(m)}
	require.NoError(t, a.Close())
	_, err = a.Recv(ctx)
	require.ErrorIs(t, err, iox.ErrClosed)
	for len(got) < 8 {
		m, err := b.Recv(ctx)
		require.NoError(t, err)
		got = append(got, binary.LittleEndian.Uint64(m))
	}
	require.Equal(t, uint64(3), push.Resent())
	requireExactly(t, 8, nil, got)
	require.NoError(t, push.Close())
	require.NoError(t, b.Close())
}

// Close confirms only what pullers took: with no puller, or one that takes
// nothing, it reports the messages as undelivered; a second Close says closed.
func TestPipelineCloseReportsUntaken(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := context.Background()
	push, err := iox.OpenPush(ctx, node, "untaken", iox.WithLinger(50*time.Millisecond))
	require.NoError(t, err)
	require.NoError(t, <-sendAll(ctx, push, 0, 5))
	err = push.Close()
	require.ErrorIs(t, err, iox.ErrUndelivered)
	require.Contains(t, err.Error(), "5 messages not taken")
	require.ErrorIs(t, push.Close(), iox.ErrClosed)
	require.ErrorIs(t, push.Send(ctx, seqMsg(0)), iox.ErrClosed)
	require.ErrorIs(t, push.Err(), iox.ErrClosed)

	idle, err := iox.OpenPull(ctx, node, "untaken", iox.BufferSize(4))
	require.NoError(t, err)
	push, err = iox.OpenPush(ctx, node, "untaken", iox.WithLinger(50*time.Millisecond))
	require.NoError(t, err)
	require.NoError(t, <-sendAll(ctx, push, 0, 3))
	m, err := idle.Recv(ctx)
	require.NoError(t, err)
	require.Equal(t, uint64(0), binary.LittleEndian.Uint64(m))
	err = push.Close()
	require.ErrorIs(t, err, iox.ErrUndelivered)
	require.Contains(t, err.Error(), "2 messages not taken")
	require.NoError(t, idle.Close())
	require.ErrorIs(t, idle.Close(), iox.ErrClosed)
}

// A pipeline admits MaxPushers pushers at once; the context ends either end
// at once.
func TestPipelinePushersBoundAndContexts(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx, cancel := context.WithCancel(context.Background())
	push, err := iox.OpenPush(ctx, node, "one")
	require.NoError(t, err)
	others := make([]*iox.Push[[]byte], 0, iox.MaxPushers-1)
	for range iox.MaxPushers - 1 {
		o, err := iox.OpenPush(context.Background(), node, "one")
		require.NoError(t, err)
		others = append(others, o)
	}
	_, err = iox.OpenPush(context.Background(), node, "one")
	require.ErrorIs(t, err, iox.ErrLimitReached)
	require.Contains(t, err.Error(), "pushers already")
	for _, o := range others {
		require.NoError(t, o.Close(), "a pusher that sent nothing closes at once")
	}
	pctx, pcancel := context.WithCancel(context.Background())
	pull, err := iox.OpenPull(pctx, node, "one")
	require.NoError(t, err)
	in := pull.In()
	require.NoError(t, push.Send(context.Background(), seqMsg(7)))
	require.Equal(t, uint64(7), binary.LittleEndian.Uint64(<-in))
	cancel()
	<-push.Done()
	require.ErrorIs(t, push.Err(), context.Canceled)
	require.NoError(t, push.Close(), "the message was taken before the context ended")
	pcancel()
	<-pull.Done()
	require.ErrorIs(t, pull.Err(), context.Canceled)
	_, open := <-in
	require.False(t, open, "In is closed once the puller ended")
	require.NoError(t, pull.Close(), "with no pusher there, nothing waits for the puller")
}

// Typed pipelines carry values through a codec.
func TestPipelineTyped(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := context.Background()
	type job struct{ ID, Cost uint32 }
	codec, err := iox.Fixed[job]("Job")
	require.NoError(t, err)
	pull, err := iox.OpenPullOf(ctx, node, "typed", codec)
	require.NoError(t, err)
	push, err := iox.OpenPushOf(ctx, node, "typed", codec)
	require.NoError(t, err)
	push.Out() <- job{ID: 1, Cost: 10}
	v, err := pull.Recv(ctx)
	require.NoError(t, err)
	require.Equal(t, job{ID: 1, Cost: 10}, v)
	require.NoError(t, push.Close())
	require.NoError(t, pull.Close())
}

// Options that do not apply to an end are refused by name; bad names and
// oversized messages get typed errors.
func TestPipelineBadInput(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := context.Background()
	for _, c := range []struct {
		opt  iox.Option
		name string
	}{{iox.BufferSize(4), "BufferSize"}, {iox.Lossy(), "Lossy"}, {iox.History(1), "History"},
		{iox.MaxSubscribers(2), "MaxSubscribers"}, {iox.WithRecycling(4), "WithRecycling"}} {
		_, err := iox.OpenPush(ctx, node, "bad", c.opt)
		require.ErrorIs(t, err, iox.ErrInvalidArgument)
		require.Contains(t, err.Error(), c.name)
	}
	for _, c := range []struct {
		opt  iox.Option
		name string
	}{{iox.WithPoll(time.Second), "WithPoll"}, {iox.WithChanCap(4), "WithChanCap"},
		{iox.WithPeerTimeout(time.Second), "WithPeerTimeout"}, {iox.MaxPublishers(2), "MaxPublishers"}} {
		_, err := iox.OpenPull(ctx, node, "bad", c.opt)
		require.ErrorIs(t, err, iox.ErrInvalidArgument)
		require.Contains(t, err.Error(), c.name)
	}
	_, err := iox.OpenPull(ctx, node, "bad", iox.BufferSize(0))
	require.ErrorIs(t, err, iox.ErrInvalidArgument)
	_, err = iox.OpenPush(ctx, node, strings.Repeat("x", 250))
	require.ErrorIs(t, err, iox.ErrInvalidName)
	_, err = iox.OpenPull(ctx, node, "")
	require.ErrorIs(t, err, iox.ErrInvalidName)

	push, err := iox.OpenPush(ctx, node, "bad", iox.MaxMessageSize(16), iox.WithLinger(0))
	require.NoError(t, err)
	require.ErrorIs(t, push.Send(ctx, make([]byte, 17)), iox.ErrMessageTooLarge)
	require.NoError(t, push.Send(ctx, make([]byte, 16)), "a refused message changes nothing for the next")
	require.ErrorIs(t, push.Close(), iox.ErrUndelivered)
}

// The pipeline's own services are listed for what they are.
func TestPipelineServicesDescribed(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := context.Background()
	pull, err := iox.OpenPull(ctx, node, "listed")
	require.NoError(t, err)
	push, err := iox.OpenPush(ctx, node, "listed")
	require.NoError(t, err)
	infos, err := node.Services()
	require.NoError(t, err)
	roles := map[string]int{}
	for _, info := range infos {
		base, role := iox.DescribeName(info.Name)
		require.Equal(t, "listed", base, info.Name)
		roles[role]++
	}
	// push: counts (publish-subscribe) and wake-ups (event); pull: the
	// puller's queue and its wake-ups.
	require.Equal(t, map[string]int{iox.RolePush: 2, iox.RolePull: 2}, roles)
	base, role := iox.DescribeName("a.iox-pull.0123456789abcdeX")
	require.Equal(t, "a.iox-pull.0123456789abcdeX", base)
	require.Empty(t, role)
	require.NoError(t, push.Close())
	require.NoError(t, pull.Close())
}

// Messages wait in the pusher while no puller is there, and Send blocks once
// WithChanCap of them wait; a pipeline admits MaxPullers pullers.
func TestPipelineBounds(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := context.Background()
	push, err := iox.OpenPush(ctx, node, "bounds", iox.WithChanCap(2), iox.WithLinger(0))
	require.NoError(t, err)
	require.NoError(t, push.Send(ctx, seqMsg(0)))
	require.NoError(t, push.Send(ctx, seqMsg(1)))
	tctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	require.ErrorIs(t, push.Send(tctx, seqMsg(2)), context.DeadlineExceeded, "the third Send waits for room")
	cancel()
	require.ErrorIs(t, push.Close(), iox.ErrUndelivered)

	pulls := make([]*iox.Pull[[]byte], 0, iox.MaxPullers)
	for range iox.MaxPullers {
		p, err := iox.OpenPull(ctx, node, "bounds", iox.BufferSize(1))
		require.NoError(t, err)
		pulls = append(pulls, p)
	}
	_, err = iox.OpenPull(ctx, node, "bounds", iox.BufferSize(1))
	require.ErrorIs(t, err, iox.ErrLimitReached)
	for _, p := range pulls {
		require.NoError(t, p.Close())
	}
}

// The message In's goroutine holds, waiting for a reader, was taken: Close
// drops it and says so, and the rest of the queue goes to another puller.
func TestPipelineInHoldsOneMessage(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := context.Background()
	a, err := iox.OpenPull(ctx, node, "held", iox.BufferSize(4))
	require.NoError(t, err)
	push, err := iox.OpenPush(ctx, node, "held")
	require.NoError(t, err)
	require.NoError(t, <-sendAll(ctx, push, 0, 3))
	a.In() // nobody reads it: its goroutine takes message 0 and holds it
	eventually(t, "In's goroutine to take a message", func() bool { return push.Untaken()[os.Getpid()] == 2 })
	b, err := iox.OpenPull(ctx, node, "held", iox.BufferSize(4))
	require.NoError(t, err)
	err = a.Close()
	require.ErrorIs(t, err, iox.ErrUndelivered)
	require.Contains(t, err.Error(), "1 messages handed over to In and not read were dropped")
	var got []uint64
	for len(got) < 2 {
		m, err := b.Recv(ctx)
		require.NoError(t, err)
		got = append(got, binary.LittleEndian.Uint64(m))
	}
	require.Equal(t, []uint64{1, 2}, got)
	require.Equal(t, uint64(2), push.Resent())
	require.NoError(t, push.Close(), "the held message counts as taken")
	require.NoError(t, b.Close())
}

// A pusher killed mid-stream leaves its pullers open with what it had put in
// their queues, and a new pusher takes its place without manual cleanup.
func TestPipelineKilledPusherIsReplaced(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := context.Background()
	pull, err := iox.OpenPull(ctx, node, "crash", iox.BufferSize(16))
	require.NoError(t, err)
	c := spawn(t, ns, "pipe-push", "IOX_SERVICE=crash", "IOX_COUNT=10")
	c.expect("sent")
	c.kill()
	var got []uint64
	for len(got) < 10 {
		m, err := pull.Recv(ctx)
		require.NoError(t, err)
		got = append(got, binary.LittleEndian.Uint64(m))
	}
	require.Equal(t, []uint64{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, got)
	require.NoError(t, pull.Err(), "a puller goes on without a pusher")

	push, err := iox.OpenPush(ctx, node, "crash")
	require.NoError(t, err, "the dead pusher's place is free")
	require.Equal(t, 1, push.Pullers())
	require.NoError(t, <-sendAll(ctx, push, 100, 105))
	for i := uint64(100); i < 105; i++ {
		m, err := pull.Recv(ctx)
		require.NoError(t, err)
		require.Equal(t, i, binary.LittleEndian.Uint64(m))
	}
	require.NoError(t, push.Close())
	require.NoError(t, pull.Close())
}

// pusher is the test's view of a child pusher.
type pusher struct{ c *child }

func spawnPusher(t *testing.T, ns namespace, service string, base, count, pullers int, env ...string) pusher {
	return pusher{spawn(t, ns, "pipe-push", append([]string{"IOX_SERVICE=" + service, "IOX_BASE=" + strconv.Itoa(base),
		"IOX_COUNT=" + strconv.Itoa(count), "IOX_PULLERS=" + strconv.Itoa(pullers)}, env...)...)}
}

// close tells the pusher to close and returns how many messages it gave back;
// the test fails unless Close confirmed that pullers took every message.
func (p pusher) close(t *testing.T) uint64 {
	t.Helper()
	p.c.say("close")
	resent, err := strconv.ParseUint(p.c.expectPrefix("closed ok resent"), 10, 64)
	require.NoError(t, err)
	p.c.wait()
	return resent
}

// streams splits what a puller received by pusher (base/perPusher).
func streams(got []uint64, perPusher uint64) map[uint64][]uint64 {
	m := map[uint64][]uint64{}
	for _, v := range got {
		m[v/perPusher] = append(m[v/perPusher], v)
	}
	return m
}

// Two pushers in other processes spread their messages over three pullers in
// other processes; one puller takes a message, holds it and is killed with
// both pushers' messages in its queue; then a puller and a third pusher join
// late. Every message arrives exactly once, except the one held; each puller
// gets each pusher's messages in order, apart from what was given back; the
// late puller gets a share of what the first pushers send after it came; and
// every pusher's Close confirms that pullers took all its messages.
func TestPipelineSeveralPushers(t *testing.T) {
	ns := newNamespace(t)
	const n, buffer, holdAfter, per = 1000, 8, 10, 1 << 20
	a := spawnPuller(t, ns, "multi", buffer)
	b := spawnPuller(t, ns, "multi", buffer)
	doomed := spawnPuller(t, ns, "multi", buffer, "IOX_HOLD_AFTER="+strconv.Itoa(holdAfter))
	pushA := spawnPusher(t, ns, "multi", 0*per, n, 3, "IOX_HALF=1")
	pushB := spawnPusher(t, ns, "multi", 1*per, n, 3, "IOX_HALF=1")
	pushA.c.expect("half")
	pushB.c.expect("half")
	select {
	case <-doomed.held:
	case <-time.After(20 * time.Second):
		t.Fatal("the doomed puller took nothing")
	}
	doomed.c.kill()
	late := spawnPuller(t, ns, "multi", buffer)
	pushA.c.say("go 3") // a, b and the late one; the killed one is forgotten
	pushB.c.say("go 3")
	pushC := spawnPusher(t, ns, "multi", 2*per, n, 3)
	for _, p := range []pusher{pushA, pushB, pushC} {
		p.c.expect("sent")
	}
	resent := pushA.close(t) + pushB.close(t) + pushC.close(t)
	require.NotZero(t, resent, "the killed puller's queue was given to the others")
	<-doomed.ended
	doomed.mu.Lock()
	held, dg := uint64(doomed.holding), doomed.got
	doomed.mu.Unlock()
	require.Len(t, dg, holdAfter)
	ga, gb, gl := a.finish(t), b.finish(t), late.finish(t)
	t.Logf("a %d, b %d, late %d, killed %d (+1 held), given back %d", len(ga), len(gb), len(gl), len(dg), resent)

	var want []uint64
	for p := uint64(0); p < 3; p++ {
		for i := uint64(0); i < n; i++ {
			want = append(want, p*per+i)
		}
	}
	requireExactlyOf(t, want, []uint64{held}, ga, gb, gl, dg)
	for _, g := range [][]uint64{ga, gb, gl, dg} {
		for _, s := range streams(g, per) {
			require.LessOrEqual(t, inversions(s), int(resent), "a puller takes each pusher's messages in order, apart from what was given back")
		}
	}
	lateFromFirst := 0
	for _, v := range gl {
		if v < 2*per && v%per >= n/2 {
			lateFromFirst++
		}
	}
	require.NotZero(t, lateFromFirst, "the late puller got a share of what the first pushers sent after it came")
	require.NotEmpty(t, streams(gl, per)[2], "the late pusher reached the late puller")
}

// A puller takes messages while the pusher's process is stopped, then dies,
// and another process cleans up its resources before the pusher has seen any
// of it. The pusher still gives back exactly what the puller had not handed
// over: the puller's count of what it handed over lives in the pusher's own
// tally, not in the dead puller's resources. Nothing is delivered twice. (The
// pusher must be stopped whole before the puller takes: a thread of it that
// still ran would refill the queue, and the refill would rightly be given
// back; see TestPipelineKilledPullersRefillIsGivenBack.)
func TestPipelineCleanupRaceNoDuplicates(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := context.Background()
	const n, buffer, holdAfter = 20, 4, 3
	doomed := spawnPuller(t, ns, "race", buffer, "IOX_GATE=1", "IOX_HOLD_AFTER="+strconv.Itoa(holdAfter))
	push := spawnPusher(t, ns, "race", 0, n, 1)
	push.c.expect("sent") // the doomed puller's queue is full, the rest waits in the pusher
	pid := push.c.cmd.Process.Pid
	push.c.stop() // every thread: one that still ran would refill the doomed puller's queue once it took it
	stopped := true
	defer func() {
		if stopped {
			syscall.Kill(pid, syscall.SIGCONT)
		}
	}()
	doomed.c.say("take") // it takes its whole queue: three handed over, one held
	select {
	case <-doomed.held:
	case <-time.After(20 * time.Second):
		t.Fatal("the doomed puller took nothing")
	}
	doomed.c.kill()
	cleaned, err := node.CleanupDeadNodes()
	require.NoError(t, err)
	require.NotZero(t, cleaned, "this process removed the dead puller's resources first")

	pull, err := iox.OpenPull(ctx, node, "race", iox.BufferSize(buffer))
	require.NoError(t, err)
	var got []uint64
	recvd := make(chan error, 1)
	go func() {
		for {
			m, err := pull.Recv(ctx)
			if err != nil {
				recvd <- err
				return
			}
			got = append(got, binary.LittleEndian.Uint64(m))
		}
	}()
	require.NoError(t, syscall.Kill(pid, syscall.SIGCONT))
	stopped = false
	require.Zero(t, push.close(t), "the dead puller took its whole queue: nothing is given back")
	require.NoError(t, pull.Close())
	require.ErrorIs(t, <-recvd, iox.ErrClosed)
	<-doomed.ended
	doomed.mu.Lock()
	held, dg := uint64(doomed.holding), doomed.got
	doomed.mu.Unlock()
	require.Equal(t, []uint64{0, 1, 2}, dg)
	require.Equal(t, uint64(holdAfter), held)
	requireExactly(t, n, []uint64{held}, got, dg)
	require.LessOrEqual(t, inversions(got), buffer, "in order, apart from what was given back")
}

// A pusher that runs while its puller takes the whole queue refills the queue
// at once; the puller dies holding the message it took last, and another
// process cleans up its resources. The refill, sent after the puller took its
// queue and never handed over, goes to another puller, all of it and only it:
// what the dead puller handed over or held is not sent again, and nothing is
// delivered twice.
func TestPipelineKilledPullersRefillIsGivenBack(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := context.Background()
	const n, buffer, holdAfter = 20, 4, 3
	doomed := spawnPuller(t, ns, "refill", buffer, "IOX_GATE=1", "IOX_HOLD_AFTER="+strconv.Itoa(holdAfter))
	pid := doomed.c.cmd.Process.Pid
	push, err := iox.OpenPush(ctx, node, "refill", iox.WithLinger(20*time.Second))
	require.NoError(t, err)
	eventually(t, "the pusher to know the puller", func() bool { return push.Pullers() == 1 })
	require.NoError(t, <-sendAll(ctx, push, 0, n))
	require.Equal(t, buffer, push.Untaken()[pid], "the doomed puller's queue is full, the rest waits in the pusher")
	doomed.c.say("take") // it takes its whole queue: three handed over, one held
	select {
	case <-doomed.held:
	case <-time.After(20 * time.Second):
		t.Fatal("the doomed puller took nothing")
	}
	// It counted all four before it said so: untaken again means refilled.
	eventually(t, "the pusher to refill the doomed puller's queue", func() bool { return push.Untaken()[pid] == buffer })
	doomed.c.kill()
	_, err = node.CleanupDeadNodes()
	require.NoError(t, err)

	pull, err := iox.OpenPull(ctx, node, "refill", iox.BufferSize(buffer))
	require.NoError(t, err)
	var got []uint64
	recvd := make(chan error, 1)
	go func() {
		for {
			m, err := pull.Recv(ctx)
			if err != nil {
				recvd <- err
				return
			}
			got = append(got, binary.LittleEndian.Uint64(m))
		}
	}()
	require.NoError(t, push.Close(), "pullers took every message")
	require.Equal(t, uint64(buffer), push.Resent(), "the refill was given back, and only the refill")
	require.NoError(t, pull.Close())
	require.ErrorIs(t, <-recvd, iox.ErrClosed)
	<-doomed.ended
	doomed.mu.Lock()
	held, dg := uint64(doomed.holding), doomed.got
	doomed.mu.Unlock()
	require.Equal(t, []uint64{0, 1, 2}, dg)
	require.Equal(t, uint64(holdAfter), held)
	requireExactly(t, n, []uint64{held}, got, dg)
	require.LessOrEqual(t, inversions(got), buffer, "in order, apart from what was given back")
}

// A pusher gives a message to a puller that waits in Recv rather than to one
// that is busy with what it received (here: one nobody receives from), while
// the waiting one has room.
func TestPipelinePrefersWaitingPullers(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := context.Background()
	busy, err := iox.OpenPull(ctx, node, "prefer", iox.BufferSize(4))
	require.NoError(t, err)
	waiting, err := iox.OpenPull(ctx, node, "prefer", iox.BufferSize(4))
	require.NoError(t, err)
	push, err := iox.OpenPush(ctx, node, "prefer")
	require.NoError(t, err)
	eventually(t, "the pusher to know both pullers", func() bool { return push.Pullers() == 2 })
	got := make(chan uint64)
	go func() {
		defer close(got)
		for {
			m, err := waiting.Recv(ctx)
			if err != nil {
				return
			}
			got <- binary.LittleEndian.Uint64(m)
		}
	}()
	for i := uint64(0); i < 10; i++ {
		eventually(t, "the puller to wait in Recv", waiting.Waiting)
		require.False(t, busy.Waiting())
		require.NoError(t, push.Send(ctx, seqMsg(i)))
		select {
		case m := <-got:
			require.Equal(t, i, m)
		case <-time.After(20 * time.Second):
			t.Fatalf("message %d went to the busy puller", i)
		}
	}
	require.NoError(t, push.Close())
	require.NoError(t, waiting.Close())
	for range got {
	}
	require.NoError(t, busy.Close())
}

// Messages that waited in the pusher go out packed, many to a sample, and
// arrive one by one, in order.
func TestPipelinePacksWaitingMessages(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := context.Background()
	const n = 64
	push, err := iox.OpenPush(ctx, node, "packed", iox.WithChanCap(n))
	require.NoError(t, err)
	require.NoError(t, <-sendAll(ctx, push, 0, n)) // no puller yet: they wait
	pull, err := iox.OpenPull(ctx, node, "packed", iox.BufferSize(n))
	require.NoError(t, err)
	for i := uint64(0); i < n; i++ {
		m, err := pull.Recv(ctx)
		require.NoError(t, err)
		require.Equal(t, i, binary.LittleEndian.Uint64(m))
	}
	samples := push.Samples()
	require.NotZero(t, samples)
	require.Less(t, samples, uint64(n/4), "the waiting messages shared samples")
	require.NoError(t, push.Close())
	require.NoError(t, pull.Close())
}
