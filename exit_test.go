package iox_test

// Processes that exit without Close, or in the middle of Close, leave nothing
// in the way: the next run opens the same names without manual cleanup.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/iox-go/iox"
)

func init() {
	children["rel-exit-pair"] = childExitPair
	children["rel-exit-pub"] = childExitPub
	children["rel-exit-sub"] = childExitSub
	children["rel-exit-teardown"] = childExitTeardown
	children["rel-exit-port"] = childExitPort
}

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
	if !waitUntil(20*time.Second, func() bool { return p.Subscribers() > 0 }) {
		return errors.New("no subscriber")
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
	time.Sleep(d) // the stimulus: the exit lands d into the teardown
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
		var err error
		within(t, 30*time.Second, "the next run", func() { err = nextRun(ctx, ns, name) })
		require.NoError(t, err, "round %d: the next run after an exit %v into teardown", i, d)
	}
	shm, root := sweepCrashLeftovers(t, ns)
	t.Logf("%d exits during teardown; every next run opened the same names; left behind for good: %d /dev/shm objects %v, %d root files %v",
		rounds, len(shm), shm, len(root), root)
}

// nextRun is the next run of childExitTeardown's program: a node (whose
// creation removes dead nodes' resources), a listing of the namespace, and what
// the child opened on name, with a message across the pair.
func nextRun(ctx context.Context, ns namespace, name string) error {
	node, err := iox.NewNode(iox.WithIsolation(ns.prefix, ns.root))
	if err != nil {
		return fmt.Errorf("new node: %w", err)
	}
	if _, err = node.Services(); err != nil {
		err = fmt.Errorf("listing: %w", err)
	} else {
		err = openAllAgain(ctx, node, name)
	}
	return errors.Join(err, node.Close())
}

// openAllAgain opens what childExitTeardown opened on name (both pair ends, a
// subscriber and a publisher) and sends a message across the pair.
func openAllAgain(ctx context.Context, node *iox.Node, name string) (err error) {
	var a, b *iox.Pair[[]byte]
	var s *iox.Sub[[]byte]
	var p *iox.Pub[[]byte]
	if err = reopen(func() (e error) { a, e = iox.OpenPair(ctx, node, name); return }); err != nil {
		return fmt.Errorf("pair: %w", err)
	}
	defer a.Close()
	if err = reopen(func() (e error) { b, e = iox.OpenPair(ctx, node, name); return }); err != nil {
		return fmt.Errorf("second pair end: %w", err)
	}
	defer b.Close()
	if err = reopen(func() (e error) { s, e = iox.OpenSub(ctx, node, name); return }); err != nil {
		return fmt.Errorf("subscriber: %w", err)
	}
	defer s.Close()
	if err = reopen(func() (e error) { p, e = iox.OpenPub(ctx, node, name); return }); err != nil {
		return fmt.Errorf("publisher: %w", err)
	}
	defer p.Close()
	if err = a.Send(ctx, []byte("again")); err != nil {
		return err
	}
	_, err = b.Recv(ctx)
	return err
}

// leaveUnfinished puts in place of the object at path what a creator that
// died right after shm_open leaves: a new object of size zero, write-only.
// (A new one: iox remembers objects it saw with a size, which iceoryx2 never
// makes smaller again.)
func leaveUnfinished(t *testing.T, path string) {
	require.NoError(t, os.Remove(path))
	require.NoError(t, os.WriteFile(path, nil, 0o200))
}

// A process that dies between creating a shared-memory object and giving it a
// size leaves an object of size zero, which iceoryx2 waits on without end when
// it opens it. Here every service of a killed process is left that way: its
// dynamic configurations emptied, as its death right after creating each would
// leave them (the static configuration written, the dynamic one empty and not
// yet readable). Creating a node (which removes the dead node's resources),
// listing the namespace and opening the same names again must all finish.
func TestCreatorDeathBeforeSizingLeavesNothingInTheWay(t *testing.T) {
	ns := newNamespace(t)
	ctx := context.Background()
	name := "unsized"
	c := spawn(t, ns, "rel-exit-teardown", "IOX_SERVICE="+name)
	c.expect("ready")
	c.kill()
	var emptied []string
	for _, f := range leftovers(ns.prefix) {
		if strings.HasSuffix(f, ".dynamic") {
			leaveUnfinished(t, filepath.Join("/dev/shm", f))
			emptied = append(emptied, f)
		}
	}
	require.NotEmpty(t, emptied, "the child's services have dynamic configurations")
	var err error
	within(t, 30*time.Second, "the next run", func() { err = nextRun(ctx, ns, name) })
	require.NoError(t, err)
	for _, f := range emptied {
		require.NoFileExists(t, filepath.Join("/dev/shm", f), "an emptied object stays behind")
	}
	shm, root := sweepCrashLeftovers(t, ns)
	t.Logf("%d emptied dynamic configurations were removed; left behind for good: %d /dev/shm objects %v, %d root files %v",
		len(emptied), len(shm), shm, len(root), root)
}

// childExitPort opens a port of IOX_KIND on the service IOX_SERVICE, which
// connects it to the ports there already, says "ready" and waits: a raw
// subscriber ("sub"), a raw publisher ("pub") or a lossless channel's
// subscriber ("channel").
func childExitPort() error {
	node, err := nsFromEnv().childNode()
	if err != nil {
		return err
	}
	name := os.Getenv("IOX_SERVICE")
	switch os.Getenv("IOX_KIND") {
	case "channel":
		_, err = iox.OpenSub(context.Background(), node, name)
	default:
		var svc *iox.PubSubService
		if svc, err = node.PublishSubscribe(name); err != nil {
			return err
		}
		if os.Getenv("IOX_KIND") == "pub" {
			_, err = svc.Publisher()
		} else {
			_, err = svc.Subscriber()
		}
	}
	if err != nil {
		return err
	}
	fmt.Println("ready")
	parentSays()
	return nil
}

// A port's next send or receive connects it to the ports that came since its
// last one, and a connection is a shared-memory object that the other port's
// process creates in two steps: a process that died between them (made here
// after a SIGKILL, as in TestCreatorDeathBeforeSizingLeavesNothingInTheWay)
// leaves an object of size zero, and iceoryx2 0.10.0 waits without a bound
// for it to get a size. The native library counts each thread's sends and
// receives, notices one that runs for 50 ms and removes the unfinished
// object: the call goes on. Neither a raw port nor a channel watches the
// other side's process here, so nothing else would free it.
func TestCreatorDeathBeforeConnectingFreesTheNextSendOrReceive(t *testing.T) {
	for _, tc := range []struct {
		kind  string // of the child's port
		local func(t *testing.T, node *iox.Node) func() error
	}{
		{"sub", func(t *testing.T, node *iox.Node) func() error {
			svc, err := node.PublishSubscribe("jam")
			require.NoError(t, err)
			t.Cleanup(func() { svc.Close() })
			pub, err := svc.Publisher()
			require.NoError(t, err)
			t.Cleanup(func() { pub.Close() })
			return func() error {
				n, err := pub.Send([]byte("after"))
				if err == nil && n != 1 {
					err = fmt.Errorf("the send reached %d subscribers, the service lists 1", n)
				}
				return err
			}
		}},
		{"pub", func(t *testing.T, node *iox.Node) func() error {
			svc, err := node.PublishSubscribe("jam")
			require.NoError(t, err)
			t.Cleanup(func() { svc.Close() })
			sub, err := svc.Subscriber()
			require.NoError(t, err)
			t.Cleanup(func() { sub.Close() })
			return func() error {
				_, ok, err := sub.TryReceive(make([]byte, 64))
				if err == nil && ok {
					err = errors.New("a message came from a publisher that never sent")
				}
				return err
			}
		}},
		{"channel", func(t *testing.T, node *iox.Node) func() error {
			ctx, cancel := context.WithCancel(context.Background())
			t.Cleanup(cancel)
			pub, err := iox.OpenPub(ctx, node, "jam")
			require.NoError(t, err)
			t.Cleanup(func() { pub.Close() })
			return func() error { return pub.Send(ctx, []byte("after")) }
		}},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			ns := newNamespace(t)
			next := tc.local(t, ns.node(t))
			before := map[string]bool{}
			for _, f := range leftovers(ns.prefix) {
				before[f] = true
			}
			c := spawn(t, ns, "rel-exit-port", "IOX_SERVICE=jam", "IOX_KIND="+tc.kind)
			c.expect("ready")
			c.kill()
			var emptied []string
			for _, f := range leftovers(ns.prefix) {
				if !before[f] && strings.HasSuffix(f, ".connection") {
					leaveUnfinished(t, filepath.Join("/dev/shm", f))
					emptied = append(emptied, f)
				}
			}
			require.NotEmpty(t, emptied, "the child's port connected to this one")
			var err error
			within(t, 30*time.Second, "the next send or receive", func() { err = next() })
			require.NoError(t, err)
			for _, f := range emptied {
				if st, err := os.Stat(filepath.Join("/dev/shm", f)); err == nil {
					require.NotZero(t, st.Size(), "%s is still unfinished", f)
				}
			}
		})
	}
}
