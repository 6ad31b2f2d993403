package iox_test

// Resource exhaustion: port and node limits, huge messages, a full /dev/shm,
// the open-files limit and many services in one process give typed errors, and
// everything works again afterwards.

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/iox-go/iox"
)

func init() {
	children["rel-small-shm"] = childSmallShm
	children["rel-nofile"] = childNoFile
}

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

// Huge loans, and messages over a publisher's own bound, give typed errors and
// leave the service working; a second publisher gets its own bound where the
// service has room for it, and ErrLimitReached where it has not.
func TestExhaustionHugeMessagesGiveTypedErrors(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	// open makes the service name with room for publishers publishers, a
	// subscriber and a publisher without a bound of its own.
	open := func(t *testing.T, name string, publishers int) (*iox.PubSubService, *iox.Subscriber, *iox.Publisher) {
		svc, err := node.PublishSubscribe(name, iox.MaxPublishers(publishers))
		require.NoError(t, err)
		t.Cleanup(func() { svc.Close() })
		sub, err := svc.Subscriber()
		require.NoError(t, err)
		t.Cleanup(func() { sub.Close() })
		pub, err := svc.Publisher(iox.MaxMessageSize(math.MaxInt))
		require.NoError(t, err)
		t.Cleanup(func() { pub.Close() })
		return svc, sub, pub
	}
	stillWorks := func(t *testing.T, sub *iox.Subscriber, pub *iox.Publisher) {
		t.Helper()
		n, err := pub.Send([]byte("still works"))
		require.NoError(t, err)
		require.Equal(t, 1, n)
		buf := make([]byte, 64)
		k, ok, err := sub.TryReceive(buf)
		require.NoError(t, err)
		require.True(t, ok)
		require.Equal(t, "still works", string(buf[:k]))
	}

	t.Run("loans-beyond-memory", func(t *testing.T) {
		_, sub, pub := open(t, "huge-loans", 1)
		// A loan reserves memory without touching it, so sizes far beyond the
		// machine's memory are safe to ask for: iceoryx2 cannot map them.
		for _, n := range []int{1 << 50, math.MaxInt / 2, math.MaxInt} {
			_, err := pub.Loan(n)
			t.Logf("loan of %d bytes: %v", n, err)
			require.ErrorIs(t, err, iox.ErrOutOfMemory, "loan of %d bytes", n)
		}
		stillWorks(t, sub, pub)
	})

	// Over the second publisher's own bound: refused before shared memory is
	// touched (see also TestMessageOverMaximumIsRefusedAndNothingSent).
	t.Run("room-for-a-second-publisher", func(t *testing.T) {
		svc, sub, pub := open(t, "huge-bounded", 2)
		small, err := svc.Publisher(iox.MaxMessageSize(1 << 20))
		require.NoError(t, err, "the service has room for two publishers")
		defer small.Close()
		_, err = small.Send(make([]byte, 1<<20+1))
		require.ErrorIs(t, err, iox.ErrMessageTooLarge)
		has, err := sub.HasMessages()
		require.NoError(t, err)
		require.False(t, has, "nothing of the refused message arrived")
		msg := pattern(1<<20, 3)
		n, err := small.Send(msg)
		require.NoError(t, err, "a message of exactly the bound")
		require.Equal(t, 1, n)
		buf := make([]byte, len(msg))
		k, ok, err := sub.TryReceive(buf)
		require.NoError(t, err)
		require.True(t, ok)
		require.Equal(t, msg, buf[:k])
		stillWorks(t, sub, pub)
	})

	t.Run("no-room-for-a-second-publisher", func(t *testing.T) {
		svc, sub, pub := open(t, "huge-full", 1)
		_, err := svc.Publisher(iox.MaxMessageSize(1 << 20))
		require.ErrorIs(t, err, iox.ErrLimitReached, "the service has room for one publisher")
		stillWorks(t, sub, pub)
	})
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
	// A pair needs more files than the service that was just refused.
	assert.NotEqual(t, "nil", pair, "a pair opened where a single service could not")
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
