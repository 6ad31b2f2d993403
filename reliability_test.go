package iox_test

// Reliability and security tests: crashes at random moments, processes that exit
// without closing, a soak under CPU starvation, resource exhaustion, peers of
// another iceoryx2 release, and file permissions. Every test uses real child
// processes and real shared memory, and every wait has a deadline.
//
// Loop counts and the soak time are small by default so that `go test` stays
// fast; IOX_TORTURE=1 runs the full counts (50 crash iterations, a 60 s soak).
// IOX_TORTURE_SEED repeats the random choices of an earlier run.
//
// A native library of another ABI version is refused by the loader; see
// TestWrongABIVersion in errors_test.go.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"runtime/pprof"
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
	"github.com/iox-go/iox/loader"
)

func init() {
	children["rel-pair"] = childRelPair
	children["rel-sub"] = childRelSub
	children["rel-pub"] = childRelPub
	children["rel-exit-pair"] = childExitPair
	children["rel-exit-pub"] = childExitPub
	children["rel-exit-sub"] = childExitSub
	children["rel-exit-teardown"] = childExitTeardown
	children["rel-pair-watch"] = childPairWatch
	children["rel-pair-burst"] = childPairBurst
	children["rel-soak-pair"] = childSoakPair
	children["rel-soak-sub"] = childSoakSub
	children["rel-nofile"] = childNoFile
	children["rel-small-shm"] = childSmallShm
	children["rel-intruder"] = childIntruder
}

var torture = os.Getenv("IOX_TORTURE") == "1"

// loops picks a loop count: full under IOX_TORTURE=1, race under the race
// detector, def otherwise.
func loops(def, race, full int) int {
	switch {
	case torture:
		return full
	case raceEnabled:
		return race
	}
	return def
}

// seeded returns a random source and logs its seed (IOX_TORTURE_SEED repeats one).
func seeded(t *testing.T) *rand.Rand {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("IOX_TORTURE_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		require.NoError(t, err, "IOX_TORTURE_SEED")
		seed = v
	}
	t.Logf("random seed %d (IOX_TORTURE_SEED=%d repeats this run)", seed, seed)
	return rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
}

// kinds names the package's error kinds, most specific first.
var kinds = []struct {
	name string
	err  error
}{
	{"ErrPeerCrashed", iox.ErrPeerCrashed}, {"ErrPeerClosed", iox.ErrPeerClosed}, {"ErrPeerGone", iox.ErrPeerGone},
	{"ErrPairFull", iox.ErrPairFull}, {"ErrClosed", iox.ErrClosed}, {"ErrInvalidName", iox.ErrInvalidName},
	{"ErrInvalidArgument", iox.ErrInvalidArgument}, {"ErrServiceNotFound", iox.ErrServiceNotFound},
	{"ErrServiceExists", iox.ErrServiceExists}, {"ErrIncompatibleType", iox.ErrIncompatibleType},
	{"ErrIncompatible", iox.ErrIncompatible}, {"ErrVersionMismatch", iox.ErrVersionMismatch},
	{"ErrLimitReached", iox.ErrLimitReached}, {"ErrPermission", iox.ErrPermission},
	{"ErrMessageTooLarge", iox.ErrMessageTooLarge}, {"ErrWouldBlock", iox.ErrWouldBlock},
	{"ErrBufferTooSmall", iox.ErrBufferTooSmall}, {"ErrOutOfMemory", iox.ErrOutOfMemory},
	{"ErrTooManyLoans", iox.ErrTooManyLoans}, {"ErrConnection", iox.ErrConnection}, {"ErrBusy", iox.ErrBusy},
	{"ErrInternal", iox.ErrInternal}, {"ErrLibraryNotFound", iox.ErrLibraryNotFound},
	{"ErrABIMismatch", iox.ErrABIMismatch}, {"ErrMissingSymbol", iox.ErrMissingSymbol},
	{"context.Canceled", context.Canceled}, {"context.DeadlineExceeded", context.DeadlineExceeded},
}

// kindOf names err's kind: "nil", one of the package's Err* names, or "untyped".
func kindOf(err error) string {
	if err == nil {
		return "nil"
	}
	for _, k := range kinds {
		if errors.Is(err, k.err) {
			return k.name
		}
	}
	return "untyped"
}

// requireTyped fails unless err is an *iox.Error of one of the package's kinds.
func requireTyped(t testing.TB, err error, what string) {
	t.Helper()
	require.Error(t, err, what)
	var e *iox.Error
	require.ErrorAs(t, err, &e, "%s: %v is not an *iox.Error", what, err)
	require.NotEqual(t, "untyped", kindOf(err), "%s: %v", what, err)
}

func envInt(name string) int {
	v, _ := strconv.Atoi(os.Getenv(name))
	return v
}

func envDur(name string, def time.Duration) time.Duration {
	if d, err := time.ParseDuration(os.Getenv(name)); err == nil {
		return d
	}
	return def
}

// parentLines delivers the parent's lines in the background (inside a child); it
// is closed when the parent closes standard input.
func parentLines() <-chan string {
	c := make(chan string, 16)
	go func() {
		for stdinLines.Scan() {
			c <- stdinLines.Text()
		}
		close(c)
	}()
	return c
}

// nextLine waits for the parent's next line starting with prefix and returns the
// rest; it fails after d.
func nextLine(lines <-chan string, prefix string, d time.Duration) (string, error) {
	timeout := time.After(d)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				return "", fmt.Errorf("parent hung up while waiting for %q", prefix)
			}
			if strings.HasPrefix(l, prefix) {
				return strings.TrimSpace(strings.TrimPrefix(l, prefix)), nil
			}
		case <-timeout:
			return "", fmt.Errorf("no %q from the parent for %v", prefix, d)
		}
	}
}

// expectPrefix waits for the child's next line, checks its prefix and returns
// the rest.
func (c *child) expectPrefix(prefix string) string {
	c.t.Helper()
	l := c.line()
	if !strings.HasPrefix(l, prefix) {
		c.t.Fatalf("child said %q, want %q...", l, prefix)
	}
	return strings.TrimSpace(strings.TrimPrefix(l, prefix))
}

// kill sends SIGKILL and waits until the process is reaped.
func (c *child) kill() {
	c.t.Helper()
	require.NoError(c.t, c.cmd.Process.Signal(syscall.SIGKILL))
	select {
	case err := <-c.done:
		c.done <- err
	case <-time.After(20 * time.Second):
		c.t.Fatalf("killed child was not reaped")
	}
}

// within runs f and fails the test when it takes longer than d.
func within(t testing.TB, d time.Duration, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-time.After(d):
		var stacks strings.Builder
		pprof.Lookup("goroutine").WriteTo(&stacks, 1)
		t.Fatalf("%s did not finish within %v; goroutines:\n%s", what, d, stacks.String())
	}
}

// nsFiles counts the namespace's objects in /dev/shm and its files under the root.
func nsFiles(ns namespace) (shm, root int) {
	shm = len(leftovers(ns.prefix))
	filepath.WalkDir(ns.root, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			root++
		}
		return nil
	})
	return shm, root
}

// sweepCrashLeftovers removes and returns what processes that died while they
// removed services or cleaned up dead nodes left in the namespace: iceoryx2's
// removal is not crash-consistent, and half-removed objects are not found by
// later cleanups. Only files of processes that are gone may be passed here.
func sweepCrashLeftovers(t *testing.T, ns namespace) (shm, root []string) {
	t.Helper()
	for _, name := range leftovers(ns.prefix) {
		if strings.HasSuffix(name, ".global_mgmt") {
			continue
		}
		shm = append(shm, name)
		os.Remove(filepath.Join("/dev/shm", name))
	}
	filepath.WalkDir(ns.root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			root = append(root, strings.TrimPrefix(p, ns.root))
			os.Remove(p)
		}
		return nil
	})
	return shm, root
}

// reopen runs open, retrying for a while when the service is busy (being created
// or removed by another process): that is legitimate while a process does it,
// but not forever.
func reopen(open func() error) error {
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := open()
		if !errors.Is(err, iox.ErrBusy) || time.Now().After(deadline) {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// flood sends sequence numbers on p and checks the ones that arrive, until the
// pair ends; it returns how many arrived in order. progress sees the count.
func flood(ctx context.Context, p *iox.Pair[[]byte], progress func(uint64)) (uint64, error) {
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		for i := uint64(0); p.Send(ctx, seqMsg(i)) == nil; i++ {
		}
	}()
	var next uint64
	var bad error
	for m := range p.In() {
		if bad == nil && (len(m) != 8 || binary.LittleEndian.Uint64(m) != next) {
			bad = fmt.Errorf("message %d: got %x (lost, duplicated or reordered)", next, m)
		}
		next++
		progress(next)
	}
	<-sent
	return next, bad
}

// childRelPair opens one end of the pair IOX_SERVICE. In mode "flood" it streams
// both ways until the peer crashes, reports "ended KIND N", opens the pair again
// ("reopened"), then streams IOX_COUNT messages both ways ("resumed"), which is
// all the mode "resume" does.
func childRelPair() error {
	node, err := nsFromEnv().childNode()
	if err != nil {
		return err
	}
	defer node.Close()
	ctx := context.Background()
	name := os.Getenv("IOX_SERVICE")
	opts := []iox.Option{iox.BufferSize(8), iox.WithPeerTimeout(envDur("IOX_PEER_TIMEOUT", time.Second))}
	p, err := iox.OpenPair(ctx, node, name, opts...)
	if err != nil {
		return err
	}
	fmt.Println("ready")
	if os.Getenv("IOX_MODE") == "flood" {
		got, ferr := flood(ctx, p, func(k uint64) {
			if k == 100 {
				fmt.Println("flowing")
			}
		})
		reason := p.Err()
		fmt.Printf("ended %s %d\n", kindOf(reason), got)
		p.Close()
		if ferr != nil {
			return ferr
		}
		if !errors.Is(reason, iox.ErrPeerCrashed) {
			return fmt.Errorf("pair ended with %v, want ErrPeerCrashed", reason)
		}
		if p, err = iox.OpenPair(ctx, node, name, opts...); err != nil {
			return err
		}
		fmt.Println("reopened")
	}
	defer p.Close()
	dl, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := streamBoth(dl, p, uint64(envInt("IOX_COUNT"))); err != nil {
		return err
	}
	fmt.Println("resumed")
	if _, err := nextLine(parentLines(), "done", 30*time.Second); err != nil {
		return err
	}
	return p.Close()
}

// childRelSub subscribes to IOX_SERVICE and checks that sequence numbers arrive
// consecutively (from 0 with IOX_FROM_ZERO). It says "flowing" after 100; told
// "expect L", it says "got COUNT first F" once L arrived, then waits for "done".
func childRelSub() error {
	node, err := nsFromEnv().childNode()
	if err != nil {
		return err
	}
	defer node.Close()
	ctx := context.Background()
	s, err := iox.OpenSub(ctx, node, os.Getenv("IOX_SERVICE"), iox.BufferSize(16),
		iox.WithPeerTimeout(envDur("IOX_PEER_TIMEOUT", time.Second)))
	if err != nil {
		return err
	}
	defer s.Close()
	fmt.Println("ready")
	lines := parentLines()
	last := int64(-1)
	expect := make(chan int64, 1)
	go func() {
		v, err := nextLine(lines, "expect", time.Minute)
		if err != nil {
			expect <- -2
			return
		}
		n, _ := strconv.ParseInt(v, 10, 64)
		expect <- n
	}()
	var count, first int64 = 0, -1
	want := int64(-1) // not known yet
	lastMsg := time.Now()
	idle := envDur("IOX_IDLE", 30*time.Second)
	for want < 0 || last < want {
		if want < 0 {
			select {
			case want = <-expect:
				if want == -2 {
					return errors.New("no expect line")
				}
				continue
			default:
			}
		}
		rctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		m, err := s.Recv(rctx)
		cancel()
		if errors.Is(err, context.DeadlineExceeded) {
			if time.Since(lastMsg) > idle {
				return fmt.Errorf("nothing received for %v after %d", idle, last)
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("receive after %d: %w", last, err)
		}
		lastMsg = time.Now()
		seq := int64(binary.LittleEndian.Uint64(m))
		switch {
		case first < 0 && os.Getenv("IOX_FROM_ZERO") != "" && seq != 0:
			return fmt.Errorf("first message is %d, want 0", seq)
		case first >= 0 && seq != last+1:
			return fmt.Errorf("got %d after %d (lost, duplicated or reordered)", seq, last)
		}
		if first < 0 {
			first = seq
		}
		last = seq
		count++
		if count == 100 {
			fmt.Println("flowing")
		}
	}
	fmt.Printf("got %d first %d\n", count, first)
	if _, err := nextLine(lines, "done", time.Minute); err != nil {
		return err
	}
	return s.Close()
}

// relPubMsg is generation gen's message seq.
func relPubMsg(gen, seq uint64) []byte {
	m := make([]byte, 16)
	binary.LittleEndian.PutUint64(m, gen)
	binary.LittleEndian.PutUint64(m[8:], seq)
	return m
}

// childRelPub publishes generation IOX_GEN's sequence numbers on IOX_SERVICE once
// a subscriber is there: IOX_COUNT of them, then it closes and says "sent N";
// with IOX_COUNT=0 until it is killed.
func childRelPub() error {
	node, err := nsFromEnv().childNode()
	if err != nil {
		return err
	}
	defer node.Close()
	ctx := context.Background()
	p, err := iox.OpenPub(ctx, node, os.Getenv("IOX_SERVICE"), iox.BufferSize(16), iox.WithLinger(20*time.Second),
		iox.WithPeerTimeout(envDur("IOX_PEER_TIMEOUT", time.Second)))
	if err != nil {
		return err
	}
	defer p.Close()
	for deadline := time.Now().Add(20 * time.Second); p.Subscribers() == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			return errors.New("no subscriber")
		}
	}
	fmt.Println("ready")
	gen, n := uint64(envInt("IOX_GEN")), uint64(envInt("IOX_COUNT"))
	for i := uint64(0); n == 0 || i < n; i++ {
		if err := p.Send(ctx, relPubMsg(gen, i)); err != nil {
			return err
		}
	}
	if err := p.Close(); err != nil {
		return err
	}
	fmt.Println("sent", n)
	_, err = nextLine(parentLines(), "done", time.Minute)
	return err
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
	for _, c := range kids {
		c.expect("flowing")
	}
	time.Sleep(time.Duration(rng.IntN(50)) * time.Millisecond)
	k := rng.IntN(2)
	victim, survivor := kids[k], kids[1-k]
	victim.kill()
	killed := time.Now()
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
	peerEvent := func(want iox.PeerEventKind) {
		t.Helper()
		select {
		case e := <-p.Peers():
			require.Equal(t, want, e.Kind, "peer event")
		case <-time.After(20 * time.Second):
			t.Fatalf("no %v peer event", want)
		}
	}
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
	for _, c := range kids {
		c.expect("flowing")
	}
	time.Sleep(time.Duration(rng.IntN(50)) * time.Millisecond)
	k := rng.IntN(2)
	victim, survivor := kids[k], kids[1-k]
	victim.kill()
	killed := time.Now()
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
// messages and exits without closing.
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
	time.Sleep(200 * time.Millisecond) // the pump hands everything to shared memory
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
		require.NoError(t, watch.cmd.Process.Signal(syscall.SIGSTOP))
		burst := spawn(t, ns, "rel-pair-burst", "IOX_SERVICE="+name, "IOX_COUNT=10")
		burst.wait()
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

// A lossless publisher must hold back for a subscriber that exists but has not
// received since the publisher appeared (its side of the connection is not set up
// yet): iceoryx2 skips such a subscriber without an error once its buffer is full.
func TestLosslessPublisherHoldsBackForASubscriberThatHasNotReceivedYet(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	c := spawn(t, ns, "rel-sub", "IOX_SERVICE=unconnected", "IOX_FROM_ZERO=1", "IOX_IDLE=5s")
	c.expect("ready")
	time.Sleep(50 * time.Millisecond) // the subscriber looked for messages: no publisher yet
	require.NoError(t, c.cmd.Process.Signal(syscall.SIGSTOP))
	stopped := true
	defer func() {
		if stopped {
			c.cmd.Process.Signal(syscall.SIGCONT)
		}
	}()
	ctx := context.Background()
	p, err := iox.OpenPub(ctx, node, "unconnected", iox.BufferSize(16), iox.WithChanCap(0))
	require.NoError(t, err)
	defer p.Close()
	waitSubscribers(t, p, 1)
	const n = 200
	accepted := 0
	deadline, cancel := context.WithTimeout(ctx, time.Second)
	for ; accepted < n; accepted++ {
		if err := p.Send(deadline, seqMsg(uint64(accepted))); err != nil {
			require.ErrorIs(t, err, context.DeadlineExceeded)
			break
		}
	}
	cancel()
	t.Logf("a stopped subscriber's publisher accepted %d of %d messages in 1 s", accepted, n)
	require.NoError(t, c.cmd.Process.Signal(syscall.SIGCONT))
	stopped = false
	// Whatever the publisher accepted must arrive, in order, without gaps.
	c.say(fmt.Sprintf("expect %d", accepted-1))
	c.expect(fmt.Sprintf("got %d first 0", accepted))
	require.NoError(t, p.Close())
	c.say("done")
	c.wait()
}

// Exit without Close ---------------------------------------------------------

// childExitPair streams both ways on the pair IOX_SERVICE and calls os.Exit
// without closing anything after IOX_EXIT_AT messages sent, or as soon as the
// pair ends.
func childExitPair() error {
	node, err := nsFromEnv().childNode()
	if err != nil {
		return err
	}
	ctx := context.Background()
	p, err := iox.OpenPair(ctx, node, os.Getenv("IOX_SERVICE"), iox.BufferSize(8))
	if err != nil {
		return err
	}
	fmt.Println("ready")
	exitAt := uint64(envInt("IOX_EXIT_AT"))
	go func() {
		for range p.In() {
		}
		fmt.Println("exiting at the end")
		os.Exit(0)
	}()
	for i := uint64(0); ; i++ {
		if i == exitAt {
			fmt.Println("exiting mid-stream")
			os.Exit(0)
		}
		if err := p.Send(ctx, seqMsg(i)); err != nil {
			select {} // the receiving goroutine exits
		}
	}
}

// childExitPub publishes on IOX_SERVICE once a subscriber is there and calls
// os.Exit without closing after IOX_EXIT_AT messages.
func childExitPub() error {
	node, err := nsFromEnv().childNode()
	if err != nil {
		return err
	}
	ctx := context.Background()
	p, err := iox.OpenPub(ctx, node, os.Getenv("IOX_SERVICE"), iox.BufferSize(16))
	if err != nil {
		return err
	}
	for deadline := time.Now().Add(20 * time.Second); p.Subscribers() == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			return errors.New("no subscriber")
		}
	}
	fmt.Println("ready")
	exitAt := uint64(envInt("IOX_EXIT_AT"))
	for i := uint64(0); ; i++ {
		if i == exitAt {
			fmt.Println("exiting mid-stream")
			os.Exit(0)
		}
		if err := p.Send(ctx, seqMsg(i)); err != nil {
			return err
		}
	}
}

// childExitSub subscribes to IOX_SERVICE and calls os.Exit without closing after
// IOX_EXIT_AT messages.
func childExitSub() error {
	node, err := nsFromEnv().childNode()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := iox.OpenSub(ctx, node, os.Getenv("IOX_SERVICE"), iox.BufferSize(16))
	if err != nil {
		return err
	}
	fmt.Println("ready")
	exitAt := envInt("IOX_EXIT_AT")
	for i := 0; i < exitAt; i++ {
		if _, err := s.Recv(ctx); err != nil {
			return err
		}
	}
	fmt.Println("exiting mid-stream")
	os.Exit(0)
	return nil
}

func TestExitWithoutCloseLeavesNothingInTheWay(t *testing.T) {
	ns := newNamespace(t)
	// Run 1: every process of the namespace exits mid-stream without closing.
	pa := spawn(t, ns, "rel-exit-pair", "IOX_SERVICE=exit-pair", "IOX_EXIT_AT=3000")
	pb := spawn(t, ns, "rel-exit-pair", "IOX_SERVICE=exit-pair", "IOX_EXIT_AT=1000000000")
	pub := spawn(t, ns, "rel-exit-pub", "IOX_SERVICE=exit-ps", "IOX_EXIT_AT=5000")
	sub := spawn(t, ns, "rel-exit-sub", "IOX_SERVICE=exit-ps", "IOX_EXIT_AT=2000")
	for _, c := range []*child{pa, pb, sub, pub} {
		c.expect("ready")
	}
	pa.expect("exiting mid-stream")
	sub.expect("exiting mid-stream")
	pub.expect("exiting mid-stream")
	pb.expectPrefix("exiting")
	for _, c := range []*child{pa, pb, sub, pub} {
		c.wait()
	}
	shm, root := nsFiles(ns)
	t.Logf("after four processes exited without Close: %d objects in /dev/shm, %d files under the root", shm, root)

	// Run 2: the same names work again, without manual cleanup.
	node := ns.node(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const n = 5000
	var p *iox.Pair[[]byte]
	require.NoError(t, reopen(func() (err error) { p, err = iox.OpenPair(ctx, node, "exit-pair", iox.BufferSize(8)); return }))
	c := spawn(t, ns, "rel-pair", "IOX_SERVICE=exit-pair", "IOX_MODE=resume", fmt.Sprintf("IOX_COUNT=%d", n))
	c.expect("ready")
	require.NoError(t, streamBoth(ctx, p, n))
	c.expect("resumed")
	c.say("done")
	c.wait()
	require.NoError(t, p.Close())

	var s *iox.Sub[[]byte]
	require.NoError(t, reopen(func() (err error) { s, err = iox.OpenSub(ctx, node, "exit-ps", iox.BufferSize(16)); return }))
	pc := spawn(t, ns, "rel-pub", "IOX_SERVICE=exit-ps", "IOX_GEN=7", fmt.Sprintf("IOX_COUNT=%d", n))
	pc.expect("ready")
	for i := uint64(0); i < n; i++ {
		m, err := s.Recv(ctx)
		require.NoError(t, err)
		require.Equal(t, relPubMsg(7, i), m)
	}
	pc.expect(fmt.Sprintf("sent %d", n))
	pc.say("done")
	pc.wait()
	require.NoError(t, s.Close())
	require.NoError(t, node.Close())
	leftShm, leftRoot := sweepCrashLeftovers(t, ns)
	t.Logf("the next run exchanged %d messages each way on the pair and %d on the pubsub; left behind for good: %d /dev/shm objects %v, %d root files %v",
		n, n, len(leftShm), leftShm, len(leftRoot), leftRoot)
}

// childExitTeardown opens both ends of the pair IOX_SERVICE and a publisher and
// subscriber on it, says "ready", and at "go D" closes everything while calling
// os.Exit after D: the exit lands in the middle of removing services.
func childExitTeardown() error {
	node, err := nsFromEnv().childNode()
	if err != nil {
		return err
	}
	ctx := context.Background()
	name := os.Getenv("IOX_SERVICE")
	var closers []interface{ Close() error }
	for i := 0; i < 2; i++ {
		p, err := iox.OpenPair(ctx, node, name)
		if err != nil {
			return err
		}
		closers = append(closers, p)
	}
	s, err := iox.OpenSub(ctx, node, name)
	if err != nil {
		return err
	}
	p, err := iox.OpenPub(ctx, node, name, iox.WithLinger(0))
	if err != nil {
		return err
	}
	closers = append(closers, p, s, node)
	fmt.Println("ready")
	v, err := nextLine(parentLines(), "go", 30*time.Second)
	if err != nil {
		return err
	}
	d, _ := time.ParseDuration(v)
	for _, c := range closers {
		go c.Close()
	}
	time.Sleep(d)
	os.Exit(0)
	return nil
}

// A process that exits while it removes its services (at Close, or when a pair
// ends) must not leave them half removed: the next run opens the same names.
func TestExitDuringTeardownLeavesNothingInTheWay(t *testing.T) {
	rounds := loops(30, 15, 200)
	rng := seeded(t)
	ns := newNamespace(t)
	ctx := context.Background()
	for i := 0; i < rounds; i++ {
		name := fmt.Sprintf("teardown-%d", i%3)
		c := spawn(t, ns, "rel-exit-teardown", "IOX_SERVICE="+name)
		c.expect("ready")
		d := time.Duration(rng.IntN(3000)) * time.Microsecond
		c.say(fmt.Sprintf("go %v", d))
		c.wait()
		node := ns.node(t)
		var err error
		within(t, 30*time.Second, "reopening", func() {
			var a, b *iox.Pair[[]byte]
			var s *iox.Sub[[]byte]
			var p *iox.Pub[[]byte]
			if err = reopen(func() (e error) { a, e = iox.OpenPair(ctx, node, name); return }); err != nil {
				err = fmt.Errorf("pair: %w", err)
				return
			}
			defer a.Close()
			if err = reopen(func() (e error) { b, e = iox.OpenPair(ctx, node, name); return }); err != nil {
				err = fmt.Errorf("second pair end: %w", err)
				return
			}
			defer b.Close()
			if err = reopen(func() (e error) { s, e = iox.OpenSub(ctx, node, name); return }); err != nil {
				err = fmt.Errorf("subscriber: %w", err)
				return
			}
			defer s.Close()
			if err = reopen(func() (e error) { p, e = iox.OpenPub(ctx, node, name); return }); err != nil {
				err = fmt.Errorf("publisher: %w", err)
				return
			}
			defer p.Close()
			if err = a.Send(ctx, []byte("again")); err == nil {
				_, err = b.Recv(ctx)
			}
		})
		require.NoError(t, err, "round %d: the next run after an exit %v into teardown", i, d)
		require.NoError(t, node.Close())
	}
	shm, root := sweepCrashLeftovers(t, ns)
	t.Logf("%d exits during teardown; every next run opened the same names; left behind for good: %d /dev/shm objects %v, %d root files %v",
		rounds, len(shm), shm, len(root), root)
}

// Soak -----------------------------------------------------------------------

// soakMsg is message i of a soak stream: the sequence number, then 0 to 199
// bytes that depend on it.
func soakMsg(i uint64) []byte {
	m := make([]byte, 8+int(i%200))
	binary.LittleEndian.PutUint64(m, i)
	for k := 8; k < len(m); k++ {
		m[k] = byte(i) + byte(k)
	}
	return m
}

func checkSoakMsg(m []byte, want uint64) error {
	if len(m) < 8 || binary.LittleEndian.Uint64(m) != want || !bytes.Equal(m, soakMsg(want)) {
		return fmt.Errorf("message %d is wrong (%d bytes; lost, duplicated, reordered or damaged)", want, len(m))
	}
	return nil
}

// soakEnd streams soak messages both ways on a pair: send until stop, and check
// what arrives.
type soakEnd struct {
	p        *iox.Pair[[]byte]
	sent     atomic.Uint64
	received atomic.Uint64
	bad      atomic.Value
	stop     chan struct{}
	sendDone chan struct{}
	recvDone chan struct{}
}

func startSoakEnd(ctx context.Context, p *iox.Pair[[]byte]) *soakEnd {
	e := &soakEnd{p: p, stop: make(chan struct{}), sendDone: make(chan struct{}), recvDone: make(chan struct{})}
	go func() {
		defer close(e.sendDone)
		for i := uint64(0); ; i++ {
			select {
			case <-e.stop:
				return
			default:
			}
			if err := p.Send(ctx, soakMsg(i)); err != nil {
				e.bad.CompareAndSwap(nil, fmt.Errorf("send %d: %w", i, err))
				return
			}
			e.sent.Store(i + 1)
		}
	}()
	go func() {
		defer close(e.recvDone)
		for m := range p.In() {
			if err := checkSoakMsg(m, e.received.Load()); err != nil {
				e.bad.CompareAndSwap(nil, err)
			}
			e.received.Add(1)
		}
	}()
	return e
}

func (e *soakEnd) err() error {
	if v := e.bad.Load(); v != nil {
		return v.(error)
	}
	return nil
}

// childSoakPair is the other end of a soak pair: "stop" → "sent N"; "expect M" →
// "got M" once M arrived; "close" → closes.
func childSoakPair() error {
	node, err := nsFromEnv().childNode()
	if err != nil {
		return err
	}
	defer node.Close()
	ctx := context.Background()
	p, err := iox.OpenPair(ctx, node, os.Getenv("IOX_SERVICE"), iox.BufferSize(16))
	if err != nil {
		return err
	}
	defer p.Close()
	e := startSoakEnd(ctx, p)
	fmt.Println("ready")
	lines := parentLines()
	if _, err := nextLine(lines, "stop", 10*time.Minute); err != nil {
		return err
	}
	close(e.stop)
	<-e.sendDone
	fmt.Println("sent", e.sent.Load())
	v, err := nextLine(lines, "expect", time.Minute)
	if err != nil {
		return err
	}
	want, _ := strconv.ParseUint(v, 10, 64)
	for deadline := time.Now().Add(30 * time.Second); e.received.Load() < want; time.Sleep(time.Millisecond) {
		if err := e.err(); err != nil {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("received %d of %d", e.received.Load(), want)
		}
	}
	if err := e.err(); err != nil {
		return err
	}
	fmt.Println("got", e.received.Load())
	if _, err := nextLine(lines, "close", time.Minute); err != nil {
		return err
	}
	err = p.Close()
	<-e.recvDone
	return err
}

// starve keeps this process's CPUs busy and lowers its priority.
func starve() {
	syscall.Setpriority(syscall.PRIO_PROCESS, 0, 19)
	for i := 0; i < 4*runtime.GOMAXPROCS(0); i++ {
		go func() {
			x := uint64(i)
			for {
				x = x*6364136223846793005 + 1442695040888963407
				if x == 0 {
					runtime.Gosched()
				}
			}
		}()
	}
}

// childSoakSub checks a soak publisher's sequence numbers on IOX_SERVICE
// (consecutive from 0; with IOX_LOSSY increasing). With IOX_STARVE it competes
// with busy goroutines at the lowest priority. "expect L" → "got COUNT" once L
// arrived; then it closes at "done".
func childSoakSub() error {
	if os.Getenv("IOX_STARVE") != "" {
		starve()
	}
	node, err := nsFromEnv().childNode()
	if err != nil {
		return err
	}
	defer node.Close()
	ctx := context.Background()
	lossy := os.Getenv("IOX_LOSSY") != ""
	opts := []iox.Option{iox.BufferSize(16)}
	if lossy {
		opts = append(opts, iox.Lossy())
	}
	s, err := iox.OpenSub(ctx, node, os.Getenv("IOX_SERVICE"), opts...)
	if err != nil {
		return err
	}
	defer s.Close()
	fmt.Println("ready")
	lines := parentLines()
	want := int64(-1)
	expect := make(chan int64, 1)
	go func() {
		v, err := nextLine(lines, "expect", 10*time.Minute)
		if err != nil {
			expect <- -2
			return
		}
		n, _ := strconv.ParseInt(v, 10, 64)
		expect <- n
	}()
	var count uint64
	last := int64(-1)
	for want < 0 || last < want {
		rctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		m, err := s.Recv(rctx)
		cancel()
		if want < 0 {
			select {
			case want = <-expect:
				if want == -2 {
					return errors.New("no expect line")
				}
			default:
			}
		}
		if errors.Is(err, context.DeadlineExceeded) {
			continue
		}
		if err != nil {
			return fmt.Errorf("receive after %d: %w", last, err)
		}
		seq := int64(binary.LittleEndian.Uint64(m))
		if err := checkSoakMsg(m, uint64(seq)); err != nil {
			return err
		}
		if !lossy && seq != last+1 || lossy && seq <= last {
			return fmt.Errorf("got %d after %d", seq, last)
		}
		last = seq
		count++
	}
	fmt.Println("got", count)
	if _, err := nextLine(lines, "done", time.Minute); err != nil {
		return err
	}
	return s.Close()
}

// rss returns the process's resident set (and its anonymous part) in KiB.
func rss(t *testing.T) (total, anon int) {
	b, err := os.ReadFile("/proc/self/status")
	require.NoError(t, err)
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) >= 2 && f[0] == "VmRSS:" {
			total, _ = strconv.Atoi(f[1])
		}
		if len(f) >= 2 && f[0] == "RssAnon:" {
			anon, _ = strconv.Atoi(f[1])
		}
	}
	return total, anon
}

func TestSoak(t *testing.T) {
	d := 4 * time.Second
	if raceEnabled {
		d = 3 * time.Second
	}
	if torture {
		d = 60 * time.Second
	}
	ns := newNamespace(t)
	node := ns.node(t)
	ctx, cancel := context.WithTimeout(context.Background(), d+2*time.Minute)
	defer cancel()

	var ends []*soakEnd
	var pairKids []*child
	for i := 0; i < 2; i++ {
		name := fmt.Sprintf("soak-pair-%d", i)
		p, err := iox.OpenPair(ctx, node, name, iox.BufferSize(16))
		require.NoError(t, err)
		defer p.Close()
		c := spawn(t, ns, "rel-soak-pair", "IOX_SERVICE="+name)
		c.expect("ready")
		pairKids = append(pairKids, c)
		ends = append(ends, startSoakEnd(ctx, p))
	}
	pub, err := iox.OpenPub(ctx, node, "soak-ps", iox.BufferSize(16))
	require.NoError(t, err)
	defer pub.Close()
	lossy, err := iox.OpenPub(ctx, node, "soak-lossy", iox.Lossy(), iox.BufferSize(16))
	require.NoError(t, err)
	defer lossy.Close()
	var subKids []*child
	for i := 0; i < 3; i++ {
		env := []string{"IOX_SERVICE=soak-ps"}
		if i == 2 {
			env = append(env, "IOX_STARVE=1", "GOMAXPROCS=1")
		}
		subKids = append(subKids, spawn(t, ns, "rel-soak-sub", env...))
	}
	lossyKid := spawn(t, ns, "rel-soak-sub", "IOX_SERVICE=soak-lossy", "IOX_LOSSY=1", "IOX_STARVE=1", "GOMAXPROCS=1")
	for _, c := range append(subKids, lossyKid) {
		c.expect("ready")
	}
	waitSubscribers(t, pub, 3)
	waitSubscribers(t, lossy, 1)

	runtime.GC()
	rssStart, anonStart := rss(t)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var psSent, lossySent atomic.Uint64
	var maxLossySend atomic.Int64
	errs := make(chan error, 2)
	wg.Add(2)
	go func() {
		defer wg.Done()
		for i := uint64(0); ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if err := pub.Send(ctx, soakMsg(i)); err != nil {
				errs <- fmt.Errorf("lossless publish %d: %w", i, err)
				return
			}
			psSent.Store(i + 1)
		}
	}()
	go func() {
		defer wg.Done()
		for i := uint64(0); ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			start := time.Now()
			if err := lossy.Send(ctx, soakMsg(i)); err != nil {
				errs <- fmt.Errorf("lossy publish %d: %w", i, err)
				return
			}
			if took := int64(time.Since(start)); took > maxLossySend.Load() {
				maxLossySend.Store(took)
			}
			lossySent.Store(i + 1)
			if i%16 == 15 {
				time.Sleep(time.Millisecond) // leave the CPUs to the others
			}
		}
	}()
	time.Sleep(d)
	rssEnd, anonEnd := rss(t)
	close(stop)
	within(t, 30*time.Second, "the publishers", wg.Wait)
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}

	// Pairs: both directions must arrive completely and in order.
	var pairMsgs uint64
	for i, e := range ends {
		close(e.stop)
		within(t, 30*time.Second, "a pair sender", func() { <-e.sendDone })
		c := pairKids[i]
		c.say("stop")
		var childSent uint64
		_, err := fmt.Sscanf(c.line(), "sent %d", &childSent)
		require.NoError(t, err)
		c.say(fmt.Sprintf("expect %d", e.sent.Load()))
		c.expect(fmt.Sprintf("got %d", e.sent.Load()))
		eventually(t, "the child's messages", func() bool { return e.received.Load() >= childSent })
		require.NoError(t, e.err())
		require.Equal(t, childSent, e.received.Load())
		pairMsgs += e.sent.Load() + childSent
	}
	// Pubsub: every lossless subscriber gets every message, the starved one too.
	lastPS := int64(psSent.Load()) - 1
	for _, c := range subKids {
		c.say(fmt.Sprintf("expect %d", lastPS))
	}
	for _, c := range subKids {
		c.expect(fmt.Sprintf("got %d", lastPS+1))
	}
	lastLossy := int64(lossySent.Load()) - 1
	lossyKid.say(fmt.Sprintf("expect %d", lastLossy))
	var lossyGot uint64
	_, err = fmt.Sscanf(lossyKid.line(), "got %d", &lossyGot)
	require.NoError(t, err)

	for i, e := range ends {
		pairKids[i].say("close")
		require.NoError(t, e.p.Close())
		within(t, 30*time.Second, "a pair receiver", func() { <-e.recvDone })
		pairKids[i].wait()
	}
	require.NoError(t, pub.Close())
	require.NoError(t, lossy.Close())
	for _, c := range append(subKids, lossyKid) {
		c.say("done")
		c.wait()
	}

	maxSend := time.Duration(maxLossySend.Load())
	bound := time.Second
	if raceEnabled {
		bound = 3 * time.Second
	}
	assert.Less(t, maxSend, bound, "a lossy publisher never waits for a slow subscriber")
	growth := rssEnd - rssStart
	assert.Less(t, growth, 64<<10, "RSS grew from %d KiB to %d KiB", rssStart, rssEnd)
	audited := pairMsgs + 3*uint64(lastPS+1)
	t.Logf("soak %v: pairs %d messages (both ways, both pairs); lossless pubsub %d messages × 3 subscribers (one starved); lossy %d published, starved subscriber got %d in order, slowest lossy Send %v; %d messages audited, 0 lost/duplicated/reordered",
		d, pairMsgs, lastPS+1, lastLossy+1, lossyGot, maxSend, audited)
	t.Logf("parent RSS %d KiB at start, %d KiB at end (anonymous %d → %d KiB)", rssStart, rssEnd, anonStart, anonEnd)
}

// Exhaustion -------------------------------------------------------------------

func TestExhaustionPortAndNodeLimits(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := context.Background()

	svc, err := node.PublishSubscribe("limits", iox.MaxSubscribers(2), iox.MaxPublishers(1), iox.MaxNodes(2))
	require.NoError(t, err)
	defer svc.Close()
	var ports []interface{ Close() error }
	defer func() {
		for _, p := range ports {
			p.Close()
		}
	}()
	for i := 0; i < 2; i++ {
		s, err := svc.Subscriber()
		require.NoError(t, err)
		ports = append(ports, s)
	}
	_, err = svc.Subscriber()
	assert.ErrorIs(t, err, iox.ErrLimitReached, "third subscriber")
	t.Logf("third subscriber: %v", err)
	p, err := svc.Publisher()
	require.NoError(t, err)
	ports = append(ports, p)
	_, err = svc.Publisher()
	assert.ErrorIs(t, err, iox.ErrLimitReached, "second publisher")
	t.Logf("second publisher: %v", err)
	require.NoError(t, ports[0].Close())
	s, err := svc.Subscriber()
	require.NoError(t, err, "a freed slot is usable again")
	ports[0] = s

	second := ns.node(t)
	svc2, err := second.PublishSubscribe("limits")
	require.NoError(t, err)
	defer svc2.Close()
	third := ns.node(t)
	_, err = third.PublishSubscribe("limits")
	assert.ErrorIs(t, err, iox.ErrLimitReached, "third node")
	t.Logf("third node: %v", err)

	ev, err := node.Event("ev-limits", iox.MaxListeners(1), iox.MaxNotifiers(1))
	require.NoError(t, err)
	defer ev.Close()
	l, err := ev.Listener()
	require.NoError(t, err)
	defer l.Close()
	_, err = ev.Listener()
	assert.ErrorIs(t, err, iox.ErrLimitReached, "second listener")
	nt, err := ev.Notifier()
	require.NoError(t, err)
	defer nt.Close()
	_, err = ev.Notifier()
	assert.ErrorIs(t, err, iox.ErrLimitReached, "second notifier")

	// The channel adapters release everything when a limit refuses them.
	pub, err := iox.OpenPub(ctx, node, "chan-limits", iox.MaxSubscribers(2), iox.MaxPublishers(1))
	require.NoError(t, err)
	defer pub.Close()
	for i := 0; i < 2; i++ {
		s, err := iox.OpenSub(ctx, node, "chan-limits")
		require.NoError(t, err)
		defer s.Close()
	}
	_, err = iox.OpenSub(ctx, node, "chan-limits")
	assert.ErrorIs(t, err, iox.ErrLimitReached, "third subscriber channel")
	t.Logf("third subscriber channel: %v", err)
	_, err = iox.OpenPub(ctx, node, "chan-limits")
	assert.ErrorIs(t, err, iox.ErrLimitReached, "second publisher channel")
	t.Logf("second publisher channel: %v", err)
}

func TestExhaustionHugeMessagesGiveTypedErrors(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	svc, err := node.PublishSubscribe("huge")
	require.NoError(t, err)
	defer svc.Close()
	sub, err := svc.Subscriber()
	require.NoError(t, err)
	defer sub.Close()
	pub, err := svc.Publisher(iox.MaxMessageSize(math.MaxInt))
	require.NoError(t, err)
	defer pub.Close()
	// A loan reserves memory without touching it, so sizes far beyond the
	// machine's memory are safe to ask for: iceoryx2 cannot map them.
	for _, n := range []int{1 << 50, math.MaxInt / 2, math.MaxInt} {
		_, err := pub.Loan(n)
		assert.ErrorIs(t, err, iox.ErrOutOfMemory, "loan of %d bytes", n)
		t.Logf("loan of %d bytes: %v", n, err)
	}
	// Over the publisher's own bound: refused before shared memory is touched
	// (see also TestMessageOverMaximumIsRefusedAndNothingSent).
	small, err := svc.Publisher(iox.MaxMessageSize(1 << 20))
	if err == nil {
		defer small.Close()
		_, err = small.Send(make([]byte, 1<<20+1))
		assert.ErrorIs(t, err, iox.ErrMessageTooLarge)
	} else {
		assert.ErrorIs(t, err, iox.ErrLimitReached, "the service has room for two publishers")
	}
	n, err := pub.Send([]byte("still works"))
	require.NoError(t, err)
	assert.Equal(t, 1, n)
}

// childSmallShm runs in its own mount namespace with a small /dev/shm and sends
// one message larger than that: iox must return an error, not die of SIGBUS.
func childSmallShm() error {
	if err := syscall.Mount("tmpfs", "/dev/shm", "tmpfs", 0, "size=16m"); err != nil {
		fmt.Println("skip: cannot mount a small /dev/shm:", err)
		return nil
	}
	fmt.Println("mounted")
	node, err := nsFromEnv().childNode()
	if err != nil {
		return err
	}
	defer node.Close()
	svc, err := node.PublishSubscribe("bigger-than-shm")
	if err != nil {
		return err
	}
	defer svc.Close()
	sub, err := svc.Subscriber()
	if err != nil {
		return err
	}
	defer sub.Close()
	pub, err := svc.Publisher() // the default bound (64 MiB) allows the message
	if err != nil {
		return err
	}
	defer pub.Close()
	_, err = pub.Send(make([]byte, 40<<20))
	fmt.Printf("send 40 MiB: %s %v\n", kindOf(err), err)
	// Each of these fits the file system alone, not all together (nobody reads).
	for i := 0; i < 3; i++ {
		_, err = pub.Send(make([]byte, 10<<20))
		fmt.Printf("send 10 MiB #%d: %s %v\n", i, kindOf(err), err)
	}
	_, err = pub.Send(make([]byte, 1<<10))
	fmt.Printf("send 1 KiB: %s %v\n", kindOf(err), err)
	return nil
}

func TestExhaustionMessagesLargerThanSharedMemory(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for a mount namespace with a small /dev/shm")
	}
	// The child's /dev/shm is its own; only its root folder is shared, so the
	// namespace is cleaned here rather than checked.
	k := nsCounter.Add(1)
	ns := namespace{prefix: fmt.Sprintf("%s_%d_", runPrefix(), k), root: fmt.Sprintf("/tmp/ioxt/%d-%d/", os.Getpid(), k)}
	defer os.RemoveAll(ns.root)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(append(os.Environ(), "IOX_CHILD=rel-small-shm"), ns.env()...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS}
	out, err := cmd.CombinedOutput()
	text := string(out)
	if strings.HasPrefix(text, "skip:") {
		t.Skip(strings.TrimSpace(text))
	}
	if errors.Is(err, syscall.EPERM) && len(out) == 0 {
		t.Skipf("no mount namespace here: %v", err)
	}
	t.Logf("child with a 16 MiB /dev/shm:\n%s", firstLines(text, 12))
	require.NoError(t, err, "the process must survive messages larger than what /dev/shm holds")
	assert.Contains(t, text, "send 40 MiB: ErrOutOfMemory")
	assert.Contains(t, text, "send 10 MiB #0: nil")
	assert.Contains(t, text, "send 10 MiB #1: ErrOutOfMemory", "a full /dev/shm is reported")
	assert.Contains(t, text, "send 1 KiB: nil")
}

func firstLines(s string, n int) string {
	l := strings.SplitN(s, "\n", n+1)
	if len(l) > n {
		l = append(l[:n], "…")
	}
	return strings.Join(l, "\n")
}

// childNoFile lowers its open-files limit to IOX_NOFILE and opens services and
// ports until iox refuses; it reports "limit N KIND ERROR", closes everything and
// checks that it works again ("recovered").
func childNoFile() error {
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
		return err
	}
	node, err := nsFromEnv().childNode()
	if err != nil {
		return err
	}
	defer node.Close()
	low := syscall.Rlimit{Cur: uint64(envInt("IOX_NOFILE")), Max: old.Max}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
		return err
	}
	var open []interface{ Close() error }
	closeAll := func() {
		for i := len(open) - 1; i >= 0; i-- {
			open[i].Close()
		}
		open = nil
	}
	defer closeAll()
	var failure error
	n := 0
	for ; n < 10000 && failure == nil; n++ {
		name := fmt.Sprintf("fd-%d", n)
		if n%2 == 0 {
			ev, err := node.Event(name)
			if failure = err; err != nil {
				break
			}
			open = append(open, ev)
			l, err := ev.Listener()
			if failure = err; err != nil {
				break
			}
			open = append(open, l)
		} else {
			svc, err := node.PublishSubscribe(name)
			if failure = err; err != nil {
				break
			}
			open = append(open, svc)
			pub, err := svc.Publisher()
			if failure = err; err != nil {
				break
			}
			open = append(open, pub)
			sub, err := svc.Subscriber()
			if failure = err; err != nil {
				break
			}
			open = append(open, sub)
			if _, err := pub.Send([]byte("x")); err != nil {
				failure = err
				break
			}
		}
	}
	var e *iox.Error
	typed := errors.As(failure, &e)
	fmt.Printf("limit %d %s typed=%v %v\n", n, kindOf(failure), typed, failure)
	// An open-or-create of a pair at the limit must also fail cleanly.
	fp, perr := iox.OpenPair(context.Background(), node, "fd-pair")
	fmt.Printf("pair at the limit: %s\n", kindOf(perr))
	if perr == nil {
		open = append(open, fp)
	}
	closeAll()
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	a, err := iox.OpenPair(ctx, node, "after")
	if err != nil {
		return err
	}
	defer a.Close()
	b, err := iox.OpenPair(ctx, node, "after")
	if err != nil {
		return err
	}
	defer b.Close()
	if err := a.Send(ctx, []byte("again")); err != nil {
		return err
	}
	if m, err := b.Recv(ctx); err != nil || string(m) != "again" {
		return fmt.Errorf("after the limit: %q %v", m, err)
	}
	if err := a.Close(); err != nil {
		return err
	}
	b.Close()
	fmt.Println("recovered")
	return nil
}

func TestExhaustionOpenFilesLimit(t *testing.T) {
	ns := newNamespace(t)
	c := spawn(t, ns, "rel-nofile", "IOX_NOFILE=64")
	f := strings.Fields(c.expectPrefix("limit "))
	require.GreaterOrEqual(t, len(f), 3)
	t.Logf("with 64 open files: %s services/ports groups opened, then %s", f[0], strings.Join(f[1:], " "))
	assert.Equal(t, "typed=true", f[2], "the refusal is an *iox.Error")
	assert.NotEqual(t, "nil", f[1], "the limit was reached")
	assert.NotEqual(t, "untyped", f[1])
	pair := c.expectPrefix("pair at the limit: ")
	t.Logf("a pair opened at the limit: %s", pair)
	assert.NotEqual(t, "untyped", pair)
	c.expect("recovered")
	c.wait()
}

func TestExhaustionTwoHundredServicesInOneProcess(t *testing.T) {
	const n = 200
	ns := newNamespace(t)
	node := ns.node(t)
	start := time.Now()
	type ps struct {
		svc *iox.PubSubService
		pub *iox.Publisher
		sub *iox.Subscriber
	}
	var pss []ps
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("many-%d", i)
		svc, err := node.PublishSubscribe(name)
		require.NoError(t, err, name)
		pub, err := svc.Publisher()
		require.NoError(t, err, name)
		sub, err := svc.Subscriber()
		require.NoError(t, err, name)
		pss = append(pss, ps{svc, pub, sub})
	}
	type ev struct {
		svc *iox.EventService
		ntf *iox.Notifier
		lis *iox.Listener
	}
	var evs []ev
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("many-ev-%d", i)
		svc, err := node.Event(name)
		require.NoError(t, err, name)
		ntf, err := svc.Notifier()
		require.NoError(t, err, name)
		lis, err := svc.Listener()
		require.NoError(t, err, name)
		evs = append(evs, ev{svc, ntf, lis})
	}
	opened := time.Since(start)
	buf := make([]byte, 64)
	for i, s := range pss {
		msg := []byte(fmt.Sprintf("message %d", i))
		k, err := s.pub.Send(msg)
		require.NoError(t, err)
		require.Equal(t, 1, k)
	}
	for i, s := range pss {
		k, ok, err := s.sub.TryReceive(buf)
		require.NoError(t, err)
		require.True(t, ok, "service %d", i)
		require.Equal(t, fmt.Sprintf("message %d", i), string(buf[:k]))
	}
	for i, e := range evs {
		_, err := e.ntf.Notify(iox.EventID(i % 200))
		require.NoError(t, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i, e := range evs {
		ids, err := e.lis.Wait(ctx)
		require.NoError(t, err)
		require.Equal(t, []iox.EventID{iox.EventID(i % 200)}, ids)
	}
	// 50 pairs, both ends here: another 200 services behind the adapters.
	var pairs []*iox.Pair[[]byte]
	for i := 0; i < n/4; i++ {
		name := fmt.Sprintf("many-pair-%d", i)
		a, err := iox.OpenPair(ctx, node, name)
		require.NoError(t, err)
		b, err := iox.OpenPair(ctx, node, name)
		require.NoError(t, err)
		pairs = append(pairs, a, b)
	}
	for i := 0; i < len(pairs); i += 2 {
		require.NoError(t, pairs[i].Send(ctx, []byte{byte(i)}))
	}
	for i := 1; i < len(pairs); i += 2 {
		m, err := pairs[i].Recv(ctx)
		require.NoError(t, err)
		require.Equal(t, []byte{byte(i - 1)}, m)
	}
	shm, root := nsFiles(ns)
	closeStart := time.Now()
	for _, p := range pairs {
		require.NoError(t, p.Close())
	}
	for _, s := range pss {
		require.NoError(t, s.sub.Close())
		require.NoError(t, s.pub.Close())
		require.NoError(t, s.svc.Close())
	}
	for _, e := range evs {
		require.NoError(t, e.lis.Close())
		require.NoError(t, e.ntf.Close())
		require.NoError(t, e.svc.Close())
	}
	shmAfter, rootAfter := nsFiles(ns)
	t.Logf("%d pub-sub + %d event services + %d pairs (%d services) in one process: opened in %v, closed in %v; %d /dev/shm objects and %d root files while open, %d and %d after Close",
		n, n, n/4, 3*n, opened.Round(time.Millisecond), time.Since(closeStart).Round(time.Millisecond), shm, root, shmAfter, rootAfter)
}

// Permissions ------------------------------------------------------------------

// modeSummary counts the modes of files.
func modeSummary(modes map[string]fs.FileMode) map[string]int {
	out := map[string]int{}
	for _, m := range modes {
		out[m.String()]++
	}
	return out
}

// childIntruder runs as an unprivileged user against a namespace that root's
// processes use, and reports what it could do. A control run in a namespace of
// its own shows that it can use iox at all.
func childIntruder() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Control: its own namespace works.
	ctlPrefix, ctlRoot := os.Getenv("IOX_CONTROL_PREFIX"), os.Getenv("IOX_CONTROL_ROOT")
	ctl, err := iox.NewNode(iox.WithIsolation(ctlPrefix, ctlRoot))
	if err != nil {
		return fmt.Errorf("control node: %w", err)
	}
	a, err := iox.OpenPair(ctx, ctl, "control")
	if err != nil {
		return fmt.Errorf("control pair: %w", err)
	}
	b, err := iox.OpenPair(ctx, ctl, "control")
	if err != nil {
		return fmt.Errorf("control pair: %w", err)
	}
	if err := a.Send(ctx, []byte("hi")); err != nil {
		return err
	}
	if m, err := b.Recv(ctx); err != nil || string(m) != "hi" {
		return fmt.Errorf("control pair: %q %v", m, err)
	}
	a.Close()
	b.Close()
	ctl.Close()
	iox.RemoveIsolation(ctlPrefix, ctlRoot)
	fmt.Println("control ok")

	ns := nsFromEnv()
	// 1. A node in root's namespace.
	node, err := iox.NewNode(iox.WithIsolation(ns.prefix, ns.root))
	fmt.Printf("node %s %v\n", kindOf(err), err)
	if err == nil {
		svc, err := node.PublishSubscribe("guarded", iox.OpenOnly())
		fmt.Printf("open-service %s %v\n", kindOf(err), err)
		if err == nil {
			pub, err := svc.Publisher()
			fmt.Printf("publisher %s %v\n", kindOf(err), err)
			if err == nil {
				_, err = pub.Send([]byte("intruder"))
				fmt.Printf("send %s %v\n", kindOf(err), err)
				pub.Close()
			}
			svc.Close()
		}
		node.Close()
	}
	// 2. The namespace's shared memory, opened directly.
	var writable, readable, total int
	entries, _ := os.ReadDir("/dev/shm")
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), ns.prefix) {
			continue
		}
		total++
		if f, err := os.OpenFile(filepath.Join("/dev/shm", e.Name()), os.O_RDWR, 0); err == nil {
			writable++
			f.Close()
		}
		if f, err := os.Open(filepath.Join("/dev/shm", e.Name())); err == nil {
			readable++
			f.Close()
		}
	}
	fmt.Printf("shm total %d writable %d readable %d\n", total, writable, readable)
	// 3. The root folder, written directly.
	f, err := os.OpenFile(filepath.Join(ns.root, "services", "intruder"), os.O_CREATE|os.O_WRONLY, 0o666)
	if err == nil {
		f.Close()
	}
	fmt.Printf("root-write %v\n", err == nil)
	// 4. The same prefix with a root folder of its own: it cannot see root's
	// services, and creating one of the same name collides with root's objects.
	own, err := iox.NewNode(iox.WithIsolation(ns.prefix, os.Getenv("IOX_OWN_ROOT")))
	fmt.Printf("own-root-node %s %v\n", kindOf(err), err)
	if err == nil {
		_, err = own.PublishSubscribe("guarded", iox.OpenOnly())
		fmt.Printf("own-root-open %s\n", kindOf(err))
		svc, err := own.PublishSubscribe("guarded")
		fmt.Printf("own-root-create %s %v\n", kindOf(err), err)
		if err == nil {
			pub, err := svc.Publisher()
			fmt.Printf("own-root-publisher %s %v\n", kindOf(err), err)
			if err == nil {
				_, err = pub.Send([]byte("intruder"))
				fmt.Printf("own-root-send %s %v\n", kindOf(err), err)
				pub.Close()
			}
			svc.Close()
		}
		own.Close()
	}
	fmt.Println("done")
	return nil
}

func TestPermissions(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	svc, err := node.PublishSubscribe("guarded", iox.BufferSize(8))
	require.NoError(t, err)
	defer svc.Close()
	pub, err := svc.Publisher()
	require.NoError(t, err)
	defer pub.Close()
	sub, err := svc.Subscriber()
	require.NoError(t, err)
	defer sub.Close()
	ev, err := node.Event("guarded")
	require.NoError(t, err)
	defer ev.Close()
	lis, err := ev.Listener()
	require.NoError(t, err)
	defer lis.Close()
	a, err := iox.OpenPair(ctx, node, "guarded-pair")
	require.NoError(t, err)
	defer a.Close()
	b, err := iox.OpenPair(ctx, node, "guarded-pair")
	require.NoError(t, err)
	defer b.Close()
	_, err = pub.Send([]byte("from root"))
	require.NoError(t, err)

	shmModes := map[string]fs.FileMode{}
	for _, name := range leftovers(ns.prefix) {
		info, err := os.Stat(filepath.Join("/dev/shm", name))
		require.NoError(t, err)
		shmModes[name] = info.Mode()
		assert.Zero(t, info.Mode().Perm()&0o002, "%s is writable by others (%v)", name, info.Mode())
		assert.Zero(t, info.Mode().Perm()&0o020, "%s is writable by the group (%v)", name, info.Mode())
	}
	rootModes := map[string]fs.FileMode{}
	dirModes := map[string]fs.FileMode{}
	filepath.Walk(ns.root, func(p string, info os.FileInfo, err error) error {
		require.NoError(t, err)
		if info.IsDir() {
			dirModes[p] = info.Mode()
		} else {
			rootModes[p] = info.Mode()
		}
		assert.Zero(t, info.Mode().Perm()&0o002, "%s is writable by others (%v)", p, info.Mode())
		return nil
	})
	require.NotEmpty(t, shmModes)
	t.Logf("/dev/shm objects of one namespace (pub-sub, event, pair): %v", modeSummary(shmModes))
	t.Logf("files under the root folder: %v; folders: %v", modeSummary(rootModes), modeSummary(dirModes))

	if os.Geteuid() != 0 {
		t.Log("not root: the unprivileged peer part needs root to switch users")
		return
	}
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Skipf("no user nobody: %v", err)
	}
	uid, _ := strconv.Atoi(nobody.Uid)
	gid, _ := strconv.Atoi(nobody.Gid)
	// The unprivileged child cannot read the test binary or the native library
	// where the build put them: copy both to a folder it can read.
	dir, err := os.MkdirTemp("", "iox-perm-")
	require.NoError(t, err)
	defer os.RemoveAll(dir)
	require.NoError(t, os.Chmod(dir, 0o755))
	bin := filepath.Join(dir, "iox.test")
	copyFile(t, os.Args[0], bin, 0o755)
	lib, err := loader.Open("")
	require.NoError(t, err)
	so := filepath.Join(dir, filepath.Base(lib.Path))
	copyFile(t, lib.Path, so, 0o644)
	writable := func(name string) string {
		p := filepath.Join(dir, name) + "/"
		require.NoError(t, os.Mkdir(p, 0o777))
		require.NoError(t, os.Chmod(p, 0o777))
		return p
	}
	ctlPrefix := fmt.Sprintf("%s_%d_ctl_", runPrefix(), nsCounter.Add(1))
	env := append(ns.env(), "IOX_CHILD=rel-intruder", loader.EnvVar+"="+so, "HOME="+dir,
		"IOX_CONTROL_PREFIX="+ctlPrefix, "IOX_CONTROL_ROOT="+writable("ctl"), "IOX_OWN_ROOT="+writable("own"))
	cmd := exec.CommandContext(ctx, bin, "-test.run=^$")
	cmd.Env = env
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	out, err := cmd.CombinedOutput()
	text := string(out)
	t.Logf("unprivileged peer (uid %d):\n%s", uid, text)
	require.NoError(t, err)
	for _, name := range leftovers(ctlPrefix) { // the control namespace's counter segment
		os.Remove(filepath.Join("/dev/shm", name))
	}
	report := map[string]string{}
	for _, l := range strings.Split(text, "\n") {
		if f := strings.Fields(l); len(f) >= 2 {
			report[f[0]] = strings.Join(f[1:], " ")
		}
	}
	require.Contains(t, text, "control ok", "the unprivileged peer can use iox in its own namespace")
	require.Contains(t, text, "done")
	nodeKind := firstField(report["node"])
	if nodeKind == "nil" {
		// It got a node: then the service must still be closed to it.
		assert.NotEqual(t, "nil", firstField(report["open-service"]), "opened root's service")
		assert.NotContains(t, report, "send", "sent into root's service")
	} else {
		assert.Equal(t, "ErrPermission", nodeKind, "refused as a permission problem: %s", report["node"])
	}
	var total, w, r int
	_, err = fmt.Sscanf(report["shm"], "total %d writable %d readable %d", &total, &w, &r)
	require.NoError(t, err, report["shm"])
	assert.Positive(t, total)
	assert.Zero(t, w, "shared memory writable by another user")
	assert.Equal(t, "false", report["root-write"], "root folder writable by another user")
	// With the same prefix but a root folder of its own, the other user gets a
	// separate service of the same name: what it sends must not reach root's.

	// Root's service is untouched and still works.
	buf := make([]byte, 64)
	k, ok, err := sub.TryReceive(buf)
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, "from root", string(buf[:k]))
	_, ok, err = sub.TryReceive(buf)
	require.NoError(t, err)
	assert.False(t, ok, "nothing from the intruder")
	require.NoError(t, a.Send(ctx, []byte("still private")))
	m, err := b.Recv(ctx)
	require.NoError(t, err)
	assert.Equal(t, "still private", string(m))
}

func firstField(s string) string {
	if f := strings.Fields(s); len(f) > 0 {
		return f[0]
	}
	return ""
}

func copyFile(t *testing.T, from, to string, mode os.FileMode) {
	t.Helper()
	in, err := os.Open(from)
	require.NoError(t, err)
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	require.NoError(t, err)
	_, err = io.Copy(out, in)
	require.NoError(t, err)
	require.NoError(t, out.Close())
	require.NoError(t, os.Chmod(to, mode))
}

// Versions ---------------------------------------------------------------------

// oldPython returns a Python whose iceoryx2 package is an older release:
// $IOX_PYTHON_OLD, or .venv-old beside this file (`make pyenv-old`).
func oldPython(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("IOX_PYTHON_OLD"); p != "" {
		return p
	}
	_, file, _, _ := runtime.Caller(0)
	p := filepath.Join(filepath.Dir(file), ".venv-old", "bin", "python")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("no Python with an older iceoryx2 at %s: run `make pyenv-old` (part of `make test`) or set IOX_PYTHON_OLD", p)
	}
	return p
}

func oldPeerScript() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "internal", "pypeer", "oldpeer.py")
}

func TestOlderIceoryx2PeerIsRefused(t *testing.T) {
	py := oldPython(t)
	mine, err := iox.IceoryxVersion()
	require.NoError(t, err)
	ns := newNamespace(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	// The older peer creates a [u8] service; iox must refuse it, not misread it.
	cmd := exec.CommandContext(ctx, py, oldPeerScript(), "create", "old-made", ns.prefix, ns.root)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	sc := bufio.NewScanner(stdout)
	require.True(t, sc.Scan(), "old peer exited early")
	theirs := strings.TrimPrefix(sc.Text(), "version ")
	require.NotEqual(t, mine, theirs, "the old peer must use another iceoryx2 release")
	require.True(t, sc.Scan(), "old peer exited early")
	require.Equal(t, "ready", sc.Text())

	node := ns.node(t)
	for _, tc := range []struct {
		what string
		open func() error
	}{
		{"open-only", func() error { _, err := node.PublishSubscribe("old-made", iox.OpenOnly()); return err }},
		{"open-or-create", func() error { _, err := node.PublishSubscribe("old-made"); return err }},
		{"subscriber channel", func() error { _, err := iox.OpenSub(ctx, node, "old-made", iox.Lossy()); return err }},
		{"publisher channel", func() error { _, err := iox.OpenPub(ctx, node, "old-made", iox.Lossy()); return err }},
	} {
		err := tc.open()
		t.Logf("iox %s opening a service of iceoryx2 %s: %v", mine, theirs, err)
		requireTyped(t, err, tc.what)
		assert.ErrorIs(t, err, iox.ErrVersionMismatch, "%s: refused as a version mismatch, not as %s", tc.what, kindOf(err))
		assert.Contains(t, err.Error(), "before 0.10", "%s: the error says which release made the service", tc.what)
	}
	_, err = node.PubSubSettings("old-made")
	assert.ErrorIs(t, err, iox.ErrVersionMismatch, "its settings cannot be read either, and the error says why")
	stdin.Close()
	require.NoError(t, waitTimeout(cmd, 20*time.Second))

	// iox creates a service; the older peer must fail to open it.
	svc, err := node.PublishSubscribe("go-made")
	require.NoError(t, err)
	defer svc.Close()
	p, err := svc.Publisher()
	require.NoError(t, err)
	defer p.Close()
	out, err := exec.CommandContext(ctx, py, oldPeerScript(), "open", "go-made", ns.prefix, ns.root).CombinedOutput()
	t.Logf("iceoryx2 %s opening a service of iox (iceoryx2 %s): %v\n%s", theirs, mine, err, out)
	var exit *exec.ExitError
	require.ErrorAs(t, err, &exit, "the older peer must fail")
	assert.Equal(t, 3, exit.ExitCode(), "refused by iceoryx2, not a crash")
	assert.Contains(t, string(out), "refused:")

	// The namespace still works for iox after meeting the older release.
	a, err := iox.OpenPair(ctx, node, "after-old")
	require.NoError(t, err)
	defer a.Close()
	b, err := iox.OpenPair(ctx, node, "after-old")
	require.NoError(t, err)
	defer b.Close()
	require.NoError(t, a.Send(ctx, []byte("ok")))
	m, err := b.Recv(ctx)
	require.NoError(t, err)
	assert.Equal(t, "ok", string(m))
}

// Option values ----------------------------------------------------------------

// Extreme option values give typed errors from the native library (or work),
// never a crash. (Values a Go channel cannot hold are checked in fuzz_test.go.)
func TestExtremeChannelOptionsGiveTypedErrors(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := context.Background()
	for _, tc := range []struct {
		what string
		opts []iox.Option
	}{
		{"queue MaxInt", []iox.Option{iox.BufferSize(math.MaxInt)}},
		{"history MaxInt (lossy)", []iox.Option{iox.Lossy(), iox.History(math.MaxInt)}},
		{"subscribers MaxInt", []iox.Option{iox.MaxSubscribers(math.MaxInt)}},
		{"publishers MaxInt", []iox.Option{iox.MaxPublishers(math.MaxInt)}},
		{"queue 1<<40", []iox.Option{iox.BufferSize(1 << 40)}},
	} {
		t.Run(tc.what, func(t *testing.T) {
			var err error
			within(t, 30*time.Second, "opening", func() {
				var p *iox.Pub[[]byte]
				var s *iox.Sub[[]byte]
				if s, err = iox.OpenSub(ctx, node, "extreme", tc.opts...); err != nil {
					return
				}
				defer s.Close()
				if p, err = iox.OpenPub(ctx, node, "extreme", tc.opts...); err != nil {
					return
				}
				defer p.Close()
				if err = p.Send(ctx, []byte("x")); err == nil {
					_, err = s.Recv(ctx)
				}
			})
			t.Logf("%s: %s %v", tc.what, kindOf(err), err)
			if err != nil {
				requireTyped(t, err, tc.what)
				assert.NotErrorIs(t, err, iox.ErrInternal, "a clear refusal, not an internal failure")
			}
		})
	}
}

// A subscriber that busy-polls (WithSpin) must still end promptly on Close.
func TestCloseEndsASpinningSubscriber(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := context.Background()
	const spin = 10 * time.Second
	s, err := iox.OpenSub(ctx, node, "spinning", iox.WithSpin(spin))
	require.NoError(t, err)
	time.Sleep(50 * time.Millisecond) // the receiver is spinning now: nothing arrives
	start := time.Now()
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	select {
	case err := <-closed:
		require.NoError(t, err)
		t.Logf("Close took %v", time.Since(start))
	case <-time.After(5 * time.Second):
		t.Fatalf("Close waits for the spin time (%v) to run out", spin)
	}
	c, cancelSub := context.WithCancel(ctx)
	s2, err := iox.OpenSub(c, node, "spinning2", iox.WithSpin(spin))
	require.NoError(t, err)
	time.Sleep(50 * time.Millisecond)
	cancelSub()
	select {
	case <-s2.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("cancelling the context does not end a spinning subscriber")
	}
	within(t, 5*time.Second, "Close after cancel", func() { s2.Close() })
}
