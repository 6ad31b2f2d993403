package iox_test

// Crashes at random moments: a peer killed mid-stream is reported within a
// bounded time, the survivors go on, and a restarted peer works under the same
// name without manual cleanup.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/iox-go/iox"
)

func init() {
	children["rel-pair-watch"] = childPairWatch
	children["rel-pair-burst"] = childPairBurst
}

// tortureFigures collects what the crash torture saw.
type tortureFigures struct {
	mu       sync.Mutex
	detect   []time.Duration
	audited  uint64
	outcomes map[string]int
}

func (f *tortureFigures) add(outcome string, detect time.Duration, audited uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.outcomes[outcome]++
	if detect > 0 {
		f.detect = append(f.detect, detect)
	}
	f.audited += audited
}

const torturePeerTimeout = 400 * time.Millisecond

// detectBound is how long a crash may go unnoticed: the peer timeout plus room
// for a loaded machine.
func detectBound() time.Duration {
	if raceEnabled {
		return torturePeerTimeout + 2*time.Second
	}
	return torturePeerTimeout + 600*time.Millisecond
}

func TestCrashTorture(t *testing.T) {
	iterations := loops(8, 4, 50)
	rng := seeded(t)
	ns := newNamespace(t)
	node := ns.node(t)
	fig := &tortureFigures{outcomes: map[string]int{}}
	scenarios := []struct {
		name string
		run  func(t *testing.T, ns namespace, node *iox.Node, rng *rand.Rand, fig *tortureFigures, round int)
	}{
		{"pair: kill the child end", tortureParentPair},
		{"pair: kill a random one of two children", tortureTwoChildren},
		{"pubsub: kill a random subscriber", tortureSubscriber},
		{"pubsub: kill the publisher", torturePublisher},
	}
	var shmCounts, rootCounts []int
	for i := 0; i < iterations; i++ {
		sc := scenarios[i%len(scenarios)]
		if i >= len(scenarios) {
			sc = scenarios[rng.IntN(len(scenarios))]
		}
		start := time.Now()
		ok := t.Run(fmt.Sprintf("%02d %s", i, sc.name), func(t *testing.T) {
			sc.run(t, ns, node, rng, fig, i)
		})
		if !ok {
			t.Fatalf("iteration %d failed", i)
		}
		shm, root := nsFiles(ns)
		shmCounts, rootCounts = append(shmCounts, shm), append(rootCounts, root)
		t.Logf("iteration %d (%s) took %v; /dev/shm objects %d, files under the root %d",
			i, sc.name, time.Since(start).Round(time.Millisecond), shm, root)
	}
	// After the first iteration the namespace holds only this process's node and
	// the counter segment; nothing may pile up across iterations.
	const slack = 2
	for i := range shmCounts {
		assert.LessOrEqual(t, shmCounts[i], shmCounts[0]+slack, "shared-memory objects grow: %v", shmCounts)
		assert.LessOrEqual(t, rootCounts[i], rootCounts[0]+slack, "root-folder files grow: %v", rootCounts)
	}
	sort.Slice(fig.detect, func(a, b int) bool { return fig.detect[a] < fig.detect[b] })
	var maxDetect time.Duration
	if len(fig.detect) > 0 {
		maxDetect = fig.detect[len(fig.detect)-1]
	}
	t.Logf("crash torture: %d iterations survived; outcomes %v; %d crash detections, max %v (bound %v, peer timeout %v); %d messages audited, 0 lost/duplicated/reordered; /dev/shm objects per iteration %v, root files %v",
		iterations, fig.outcomes, len(fig.detect), maxDetect, detectBound(), torturePeerTimeout, fig.audited, shmCounts, rootCounts)
}

func tortureEnv(name string, extra ...string) []string {
	return append([]string{"IOX_SERVICE=" + name, "IOX_PEER_TIMEOUT=" + torturePeerTimeout.String()}, extra...)
}

// tortureParentPair: this process keeps one end, a child the other; the child is
// killed mid-stream; a restarted child pairs again.
func tortureParentPair(t *testing.T, ns namespace, node *iox.Node, rng *rand.Rand, fig *tortureFigures, _ int) {
	const name, resumeN = "torture-pair", 2000
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p, err := iox.OpenPair(ctx, node, name, iox.BufferSize(8), iox.WithPeerTimeout(torturePeerTimeout))
	require.NoError(t, err)
	defer p.Close()
	c := spawn(t, ns, "rel-pair", tortureEnv(name, "IOX_MODE=resume", "IOX_COUNT=1000000000")...)
	c.expect("ready")
	killAt := uint64(100 + rng.IntN(5000))
	reached := make(chan struct{})
	type result struct {
		n   uint64
		err error
	}
	res := make(chan result, 1)
	go func() {
		n, err := flood(ctx, p, func(k uint64) {
			if k == killAt {
				close(reached)
			}
		})
		res <- result{n, err}
	}()
	select {
	case <-reached:
	case <-time.After(20 * time.Second):
		t.Fatal("the stream did not reach the kill point")
	}
	c.kill()
	killed := time.Now()
	select {
	case <-p.Done():
	case <-time.After(20 * time.Second):
		t.Fatal("crash not detected")
	}
	detect := time.Since(killed)
	var r result
	within(t, 20*time.Second, "the end of the stream", func() { r = <-res })
	require.NoError(t, r.err)
	require.ErrorIs(t, p.Err(), iox.ErrPeerCrashed)
	assert.LessOrEqual(t, detect, detectBound(), "crash detection")
	if err := p.Close(); err != nil { // what the dead peer had not confirmed is reported
		require.ErrorIs(t, err, iox.ErrUndelivered)
	}

	q, err := iox.OpenPair(ctx, node, name, iox.BufferSize(8), iox.WithPeerTimeout(torturePeerTimeout))
	require.NoError(t, err)
	defer q.Close()
	again := spawn(t, ns, "rel-pair", tortureEnv(name, "IOX_MODE=resume", fmt.Sprintf("IOX_COUNT=%d", resumeN))...)
	again.expect("ready")
	require.NoError(t, streamBoth(ctx, q, resumeN))
	again.expect("resumed")
	again.say("done")
	again.wait()
	require.NoError(t, q.Close())
	fig.add("pair child killed: ErrPeerCrashed, restarted child paired", detect, r.n+2*resumeN)
}

// killOneWhileFlowing waits until both kids say "flowing", then kills one of
// them, picked at random, at a random moment; it returns which one, the other,
// and when.
func killOneWhileFlowing(kids []*child, rng *rand.Rand) (k int, survivor *child, killed time.Time) {
	for _, c := range kids {
		c.expect("flowing")
	}
	// The stimulus: the kill lands at a random moment of the stream; this
	// synchronises nothing.
	time.Sleep(time.Duration(rng.IntN(50)) * time.Millisecond)
	k = rng.IntN(2)
	kids[k].kill()
	return k, kids[1-k], time.Now()
}

// tortureTwoChildren: two children stream both ways; a random one is killed; the
// survivor must report ErrPeerCrashed, open the pair again and pair with a
// restarted child.
func tortureTwoChildren(t *testing.T, ns namespace, _ *iox.Node, rng *rand.Rand, fig *tortureFigures, _ int) {
	const name, resumeN = "torture-kids", 2000
	env := tortureEnv(name, "IOX_MODE=flood", fmt.Sprintf("IOX_COUNT=%d", resumeN))
	kids := []*child{spawn(t, ns, "rel-pair", env...), spawn(t, ns, "rel-pair", env...)}
	for _, c := range kids {
		c.expect("ready")
	}
	k, survivor, killed := killOneWhileFlowing(kids, rng)
	ended := survivor.expectPrefix("ended ")
	detect := time.Since(killed)
	f := strings.Fields(ended)
	require.Len(t, f, 2, ended)
	require.Equal(t, "ErrPeerCrashed", f[0])
	n, _ := strconv.ParseUint(f[1], 10, 64)
	assert.LessOrEqual(t, detect, detectBound(), "crash detection")
	survivor.expect("reopened")
	again := spawn(t, ns, "rel-pair", tortureEnv(name, "IOX_MODE=resume", fmt.Sprintf("IOX_COUNT=%d", resumeN))...)
	again.expect("ready")
	survivor.expect("resumed")
	again.expect("resumed")
	survivor.say("done")
	again.say("done")
	survivor.wait()
	again.wait()
	fig.add(fmt.Sprintf("pair child %d of 2 killed: survivor saw ErrPeerCrashed and re-paired", k), detect, n+2*resumeN)
}

// tortureSubscriber: this process publishes to two children; a random one is
// killed; the publisher must report PeerCrashed and go on; a restarted
// subscriber joins and receives everything published after it joined.
func tortureSubscriber(t *testing.T, ns namespace, node *iox.Node, rng *rand.Rand, fig *tortureFigures, round int) {
	name := fmt.Sprintf("torture-ps-%d", round)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p, err := iox.OpenPub(ctx, node, name, iox.BufferSize(16), iox.WithPeerTimeout(torturePeerTimeout))
	require.NoError(t, err)
	defer p.Close()
	env := tortureEnv(name, "IOX_FROM_ZERO=1")
	kids := []*child{spawn(t, ns, "rel-sub", env...), spawn(t, ns, "rel-sub", env...)}
	for _, c := range kids {
		c.expect("ready")
	}
	waitSubscribers(t, p, 2)
	peerEvent := func(want iox.PeerEventKind) { nextPeerEvent(t, p.Peers(), want) }
	peerEvent(iox.PeerJoined)
	peerEvent(iox.PeerJoined)

	var sent atomic.Int64
	stop := make(chan struct{})
	pubErr := make(chan error, 1)
	go func() {
		for i := uint64(0); ; i++ {
			select {
			case <-stop:
				pubErr <- nil
				return
			default:
			}
			if err := p.Send(ctx, seqMsg(i)); err != nil {
				pubErr <- err
				return
			}
			sent.Store(int64(i + 1))
		}
	}()
	k, survivor, killed := killOneWhileFlowing(kids, rng)
	peerEvent(iox.PeerCrashed)
	detect := time.Since(killed)
	assert.LessOrEqual(t, detect, detectBound(), "crash detection")
	atDetect := sent.Load()
	eventually(t, "the publisher to go on after the crash", func() bool { return sent.Load() > atDetect+100 })

	again := spawn(t, ns, "rel-sub", env[:2]...)
	again.expect("ready")
	peerEvent(iox.PeerJoined)
	again.expect("flowing")
	close(stop)
	var perr error
	within(t, 20*time.Second, "the publishing goroutine", func() { perr = <-pubErr })
	require.NoError(t, perr)
	last := sent.Load() - 1
	survivor.say(fmt.Sprintf("expect %d", last))
	again.say(fmt.Sprintf("expect %d", last))
	var got, first int64
	_, err = fmt.Sscanf(survivor.line(), "got %d first %d", &got, &first)
	require.NoError(t, err)
	assert.Equal(t, last+1, got, "the surviving subscriber got everything")
	assert.Zero(t, first)
	var got2, first2 int64
	_, err = fmt.Sscanf(again.line(), "got %d first %d", &got2, &first2)
	require.NoError(t, err)
	assert.Equal(t, last+1-first2, got2, "the restarted subscriber got everything after it joined")
	require.NoError(t, p.Close())
	survivor.say("done")
	again.say("done")
	survivor.wait()
	again.wait()
	fig.add(fmt.Sprintf("subscriber %d of 2 killed: PeerCrashed, publisher went on, restarted subscriber received", k),
		detect, uint64(got+got2))
}

// torturePublisher: a child publishes to this process's subscriber and is killed;
// the subscriber keeps working, and a restarted publisher's messages arrive.
func torturePublisher(t *testing.T, ns namespace, node *iox.Node, rng *rand.Rand, fig *tortureFigures, round int) {
	name := fmt.Sprintf("torture-pub-%d", round)
	const restartN = 2000
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := iox.OpenSub(ctx, node, name, iox.BufferSize(16), iox.WithPeerTimeout(torturePeerTimeout))
	require.NoError(t, err)
	defer s.Close()
	next := map[uint64]uint64{} // generation → next sequence number
	var audited uint64
	receive := func() (gen, seq uint64) {
		t.Helper()
		rctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		m, err := s.Recv(rctx)
		require.NoError(t, err, "the subscriber keeps working")
		require.Len(t, m, 16)
		gen, seq = binary.LittleEndian.Uint64(m), binary.LittleEndian.Uint64(m[8:])
		require.Equal(t, next[gen], seq, "generation %d (lost, duplicated or reordered)", gen)
		next[gen]++
		audited++
		return gen, seq
	}
	first := spawn(t, ns, "rel-pub", tortureEnv(name, "IOX_GEN=1", "IOX_COUNT=0")...)
	first.expect("ready")
	killAt := uint64(100 + rng.IntN(3000))
	for next[1] < killAt {
		receive()
	}
	first.kill()
	// The stimulus: the restarted publisher comes at a random moment before or
	// after the dead one is noticed; this synchronises nothing.
	time.Sleep(time.Duration(rng.IntN(int(torturePeerTimeout/time.Millisecond))) * time.Millisecond)
	require.NoError(t, s.Err(), "the subscriber outlives its publisher")
	again := spawn(t, ns, "rel-pub", tortureEnv(name, "IOX_GEN=2", fmt.Sprintf("IOX_COUNT=%d", restartN))...)
	again.expect("ready")
	for next[2] < restartN {
		receive()
	}
	again.expect(fmt.Sprintf("sent %d", restartN))
	again.say("done")
	again.wait()
	require.NoError(t, s.Err())
	require.NoError(t, s.Close())
	fig.add("publisher killed: subscriber kept working, restarted publisher's messages arrived", 0, audited)
}

// childPairWatch opens one end of the pair IOX_SERVICE, says "ready", receives
// until the pair ends and says "ended KIND N".
func childPairWatch() error {
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
	n := 0
	for range p.In() {
		n++
	}
	fmt.Printf("ended %s %d\n", kindOf(p.Err()), n)
	return nil
}

// childPairBurst opens one end of the pair IOX_SERVICE, sends IOX_COUNT
// messages and exits without closing once they are all in shared memory.
func childPairBurst() error {
	node, err := nsFromEnv().childNode()
	if err != nil {
		return err
	}
	p, err := iox.OpenPair(context.Background(), node, os.Getenv("IOX_SERVICE"))
	if err != nil {
		return err
	}
	for i := 0; i < envInt("IOX_COUNT"); i++ {
		if err := p.Send(context.Background(), seqMsg(uint64(i))); err != nil {
			return err
		}
	}
	// Sends in a row are queued and packed; the queue's goroutine ends once it
	// has handed everything to shared memory.
	if !waitUntil(20*time.Second, func() bool { return goroutinesIn("iox.(*sender[...]).pump", false) == 0 }) {
		return errors.New("the send queue did not empty")
	}
	os.Exit(0)
	return nil
}

// A peer that comes, sends and dies before this end took a look at it is still
// reported as crashed: its own messages to that peer may be lost.
func TestPairCrashOfAPeerNeverSeenIsReported(t *testing.T) {
	ns := newNamespace(t)
	for round := 0; round < 3; round++ {
		name := fmt.Sprintf("short-lived-%d", round)
		watch := spawn(t, ns, "rel-pair-watch", "IOX_SERVICE="+name)
		watch.expect("ready")
		watch.stop()
		burst := spawn(t, ns, "rel-pair-burst", "IOX_SERVICE="+name, "IOX_COUNT=10")
		burst.wait()
		require.Equal(t, "T", processState(watch.cmd.Process.Pid), "the watching child took no look while the peer lived")
		require.NoError(t, watch.cmd.Process.Signal(syscall.SIGCONT))
		start := time.Now()
		var l string
		select {
		case l = <-watch.lines:
		case <-time.After(10 * time.Second):
			l = "nothing for 10 s"
		}
		t.Logf("round %d: the end that had not looked at its peer yet said %q after %v", round, l, time.Since(start))
		var got int
		if _, err := fmt.Sscanf(l, "ended ErrPeerCrashed %d", &got); err != nil {
			watch.kill()
			t.Fatalf("round %d: the crash of a peer never seen alive is not reported: %q", round, l)
		}
		// The dead peer's messages still in shared memory may be discarded with
		// its resources when the dead node is cleaned up before they are taken.
		require.LessOrEqual(t, got, 10)
		watch.wait()
	}
}
