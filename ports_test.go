package iox_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/iox-go/iox"
)

// Sizes crossing between processes; they change from message to message.
var crossSizes = []int{0, 1, 63, 4096, 1 << 20, 16 << 20, 5, 0, 4096, 1 << 20}

func init() {
	children["publish-sizes"] = childPublishSizes
	children["notify"] = childNotify
}

// childPublishSizes publishes crossSizes (every other one through a zero-copy
// loan), says "sent", and keeps its publisher until the parent says "done".
func childPublishSizes() error {
	node, err := nsFromEnv().childNode()
	if err != nil {
		return err
	}
	defer node.Close()
	svc, err := node.PublishSubscribe(os.Getenv("IOX_SERVICE"), iox.OpenOnly())
	if err != nil {
		return err
	}
	defer svc.Close()
	pub, err := svc.Publisher(iox.InitialMessageSize(64))
	if err != nil {
		return err
	}
	defer pub.Close()
	for i, n := range crossSizes {
		msg := pattern(n, i)
		var got int
		if i%2 == 1 {
			s, err := pub.Loan(n)
			if err != nil {
				return err
			}
			copy(s.Bytes(), msg)
			got, err = s.Send()
			if err != nil {
				return err
			}
		} else if got, err = pub.Send(msg); err != nil {
			return err
		}
		if got != 1 {
			return fmt.Errorf("message %d reached %d subscribers", i, got)
		}
	}
	fmt.Println("sent")
	if s := parentSays(); s != "done" {
		return fmt.Errorf("parent said %q", s)
	}
	return nil
}

func TestMessagesCrossProcessesIntactAndInOrder(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	svc, err := node.PublishSubscribe("sizes", iox.BufferSize(len(crossSizes)), iox.SafeOverflow(false), iox.MaxSubscribers(2))
	require.NoError(t, err)
	defer svc.Close()
	sub, err := svc.Subscriber()
	require.NoError(t, err)
	defer sub.Close()

	c := spawn(t, ns, "publish-sizes", "IOX_SERVICE=sizes")
	c.expect("sent")

	batch := iox.NewBatch(1024, 4) // grows for the large messages
	var got [][32]byte
	var lens []int
	eventually(t, "all messages", func() bool {
		k, err := sub.ReceiveBatch(batch)
		require.NoError(t, err)
		for i := 0; i < k; i++ {
			m := batch.Message(i)
			lens = append(lens, len(m))
			got = append(got, sha256.Sum256(m))
		}
		return len(got) >= len(crossSizes)
	})
	c.say("done")
	c.wait()

	require.Equal(t, crossSizes, lens)
	for i, n := range crossSizes {
		assert.Equal(t, sha256.Sum256(pattern(n, i)), got[i], "message %d (%d bytes)", i, n)
	}
	more, err := sub.HasMessages()
	require.NoError(t, err)
	assert.False(t, more, "no duplicates")
}

func TestReceiveIntoSmallBufferKeepsMessage(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	svc, err := node.PublishSubscribe("small-buffer")
	require.NoError(t, err)
	defer svc.Close()
	sub, err := svc.Subscriber()
	require.NoError(t, err)
	defer sub.Close()
	pub, err := svc.Publisher()
	require.NoError(t, err)
	defer pub.Close()

	msg := pattern(100, 1)
	_, err = pub.Send(msg)
	require.NoError(t, err)

	_, ok, err := sub.TryReceive(make([]byte, 10))
	var small *iox.BufferTooSmallError
	require.ErrorAs(t, err, &small)
	assert.ErrorIs(t, err, iox.ErrBufferTooSmall)
	assert.Equal(t, 100, small.Need)
	assert.False(t, ok)

	buf := make([]byte, small.Need)
	n, ok, err := sub.TryReceive(buf)
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, msg, buf[:n])
}

func TestBorrowIsZeroCopyAndBounded(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	svc, err := node.PublishSubscribe("borrow", iox.BufferSize(4), iox.MaxBorrowed(2))
	require.NoError(t, err)
	defer svc.Close()
	sub, err := svc.Subscriber()
	require.NoError(t, err)
	defer sub.Close()
	pub, err := svc.Publisher()
	require.NoError(t, err)
	defer pub.Close()

	for i := 0; i < 3; i++ {
		_, err := pub.Send([]byte{byte(i)})
		require.NoError(t, err)
	}
	s1, ok, err := sub.Borrow()
	require.NoError(t, err)
	require.True(t, ok)
	s2, ok, err := sub.Borrow()
	require.NoError(t, err)
	require.True(t, ok)
	_, _, err = sub.Borrow()
	assert.ErrorIs(t, err, iox.ErrTooManyLoans)
	assert.Equal(t, []byte{0}, s1.Bytes())
	assert.Equal(t, []byte{1}, s2.Bytes())
	require.NoError(t, s1.Release())
	assert.ErrorIs(t, s1.Release(), iox.ErrClosed)
	s3, ok, err := sub.Borrow()
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, []byte{2}, s3.Bytes())
	require.NoError(t, s2.Release())
	require.NoError(t, s3.Release())
	_, ok, err = sub.Borrow()
	require.NoError(t, err)
	assert.False(t, ok)
}

func TestLoanDiscardSendsNothing(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	svc, err := node.PublishSubscribe("discard")
	require.NoError(t, err)
	defer svc.Close()
	sub, err := svc.Subscriber()
	require.NoError(t, err)
	defer sub.Close()
	pub, err := svc.Publisher()
	require.NoError(t, err)
	defer pub.Close()
	s, err := pub.Loan(8)
	require.NoError(t, err)
	assert.Len(t, s.Bytes(), 8)
	require.NoError(t, s.Discard())
	_, err = s.Send()
	assert.ErrorIs(t, err, iox.ErrClosed)
	assert.ErrorIs(t, s.Discard(), iox.ErrClosed)
	has, err := sub.HasMessages()
	require.NoError(t, err)
	assert.False(t, has)
}

func TestCountsAndHistory(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	svc, err := node.PublishSubscribe("history", iox.History(3), iox.BufferSize(4))
	require.NoError(t, err)
	defer svc.Close()
	pub, err := svc.Publisher()
	require.NoError(t, err)
	defer pub.Close()
	for i := 0; i < 5; i++ {
		_, err := pub.Send([]byte{byte(i)})
		require.NoError(t, err)
	}
	sub, err := svc.Subscriber()
	require.NoError(t, err)
	defer sub.Close()
	p, s, err := svc.Counts()
	require.NoError(t, err)
	assert.Equal(t, 1, p)
	assert.Equal(t, 1, s)
	require.NoError(t, pub.Update())
	var got []byte
	buf := make([]byte, 8)
	for {
		n, ok, err := sub.TryReceive(buf)
		require.NoError(t, err)
		if !ok {
			break
		}
		got = append(got, buf[:n]...)
	}
	assert.Equal(t, []byte{2, 3, 4}, got, "a late subscriber gets the last 3")
}

// childNotify waits for "go", then notifies the ids given in IOX_IDS.
func childNotify() error {
	node, err := nsFromEnv().childNode()
	if err != nil {
		return err
	}
	defer node.Close()
	ev, err := node.Event(os.Getenv("IOX_SERVICE"), iox.OpenOnly())
	if err != nil {
		return err
	}
	defer ev.Close()
	n, err := ev.Notifier()
	if err != nil {
		return err
	}
	defer n.Close()
	fmt.Println("ready")
	if parentSays() != "go" {
		return fmt.Errorf("no go")
	}
	for _, s := range strings.Split(os.Getenv("IOX_IDS"), ",") {
		id, _ := strconv.Atoi(s)
		if _, err := n.Notify(iox.EventID(id)); err != nil {
			return err
		}
	}
	fmt.Println("notified")
	parentSays()
	return nil
}

func TestEventsCrossProcesses(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ev, err := node.Event("events")
	require.NoError(t, err)
	defer ev.Close()
	l, err := ev.Listener()
	require.NoError(t, err)
	defer l.Close()

	c := spawn(t, ns, "notify", "IOX_SERVICE=events", "IOX_IDS=3,9,3")
	c.expect("ready")
	result := make(chan []iox.EventID, 1)
	go func() {
		ids, err := l.Wait(context.Background())
		assert.NoError(t, err)
		result <- ids
	}()
	c.say("go")
	c.expect("notified")
	var ids []iox.EventID
	select {
	case ids = <-result:
	case <-time.After(20 * time.Second):
		t.Fatal("Wait did not return after a notify")
	}
	more, err := l.TryWait()
	require.NoError(t, err)
	seen := map[iox.EventID]bool{}
	for _, id := range append(ids, more...) {
		seen[id] = true
	}
	assert.Equal(t, map[iox.EventID]bool{3: true, 9: true}, seen)
	c.say("bye")
	c.wait()
}

func TestWaitReturnsOnCancelAndClose(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ev, err := node.Event("wait-stop")
	require.NoError(t, err)
	defer ev.Close()
	l, err := ev.Listener()
	require.NoError(t, err)

	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { _, err := l.Wait(ctx); errc <- err }()
	waitParked(t, "iox.(*Listener).Wait", 1)
	cancel()
	select {
	case err := <-errc:
		assert.ErrorIs(t, err, context.Canceled)
	case <-time.After(20 * time.Second):
		t.Fatal("Wait ignored cancel")
	}

	// a wait after a cancelled one still sees notifications
	n, err := ev.Notifier()
	require.NoError(t, err)
	defer n.Close()
	_, err = n.Notify(1)
	require.NoError(t, err)
	ids, err := l.Wait(context.Background())
	require.NoError(t, err)
	assert.Equal(t, []iox.EventID{1}, ids)

	go func() { _, err := l.Wait(context.Background()); errc <- err }()
	waitParked(t, "iox.(*Listener).Wait", 1)
	require.NoError(t, l.Close())
	select {
	case err := <-errc:
		assert.ErrorIs(t, err, iox.ErrClosed)
	case <-time.After(20 * time.Second):
		t.Fatal("Wait ignored Close")
	}
	assert.ErrorIs(t, l.Close(), iox.ErrClosed)
}

// A context with a deadline (a receiver's poll, a caller's timeout) is
// mostly made for one wait and cancelled right after it: the listener must
// not keep watching it, or its cancellation would kick the next wait for
// nothing, from a goroutine of its own. A context without one is watched on,
// so a loop of waits with it registers once.
func TestWaitLetsGoOfADeadlineContext(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ev, err := node.Event("wait-deadline")
	require.NoError(t, err)
	defer ev.Close()
	l, err := ev.Listener()
	require.NoError(t, err)
	defer l.Close()
	n, err := ev.Notifier()
	require.NoError(t, err)
	defer n.Close()

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	_, err = n.Notify(1)
	require.NoError(t, err)
	ids, err := l.Wait(ctx)
	require.NoError(t, err)
	assert.Equal(t, []iox.EventID{1}, ids)
	assert.False(t, l.WatchesContext(), "the deadline context is let go after its wait")
	cancel()

	loop, stop := context.WithCancel(context.Background())
	defer stop()
	for id := iox.EventID(2); id <= 3; id++ {
		_, err = n.Notify(id)
		require.NoError(t, err)
		ids, err = l.Wait(loop)
		require.NoError(t, err)
		assert.Equal(t, []iox.EventID{id}, ids)
		assert.True(t, l.WatchesContext(), "a context without a deadline stays watched")
	}
}

func TestManyWaitingListenersHoldFewThreads(t *testing.T) {
	const waiters = 100
	ns := newNamespace(t)
	node := ns.node(t)
	ev, err := node.Event("many", iox.MaxListeners(waiters))
	require.NoError(t, err)
	defer ev.Close()
	before := threads(t)

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	listeners := make([]*iox.Listener, waiters)
	for i := range listeners {
		l, err := ev.Listener()
		require.NoError(t, err)
		listeners[i] = l
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := l.Wait(ctx)
			assert.ErrorIs(t, err, context.Canceled)
		}()
	}
	waitParked(t, "iox.(*Listener).Wait", waiters)
	during := threads(t)
	cancel()
	wg.Wait()
	for _, l := range listeners {
		require.NoError(t, l.Close())
	}
	t.Logf("OS threads: %d before, %d with %d waiters", before, during, waiters)
	assert.Less(t, during, before+10, "waiting listeners must not hold OS threads")
}

// threads is how many OS threads this process has.
func threads(t *testing.T) int { return int(procStatus(t, "Threads")) }

func TestConcurrentSendersAndReceivers(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	svc, err := node.PublishSubscribe("concurrent", iox.BufferSize(1024), iox.SafeOverflow(false))
	require.NoError(t, err)
	defer svc.Close()
	sub, err := svc.Subscriber()
	require.NoError(t, err)
	defer sub.Close()
	pub, err := svc.Publisher(iox.MaxLoans(8))
	require.NoError(t, err)
	defer pub.Close()

	const senders, each = 4, 200
	var wg sync.WaitGroup
	for s := 0; s < senders; s++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				_, err := pub.Send([]byte{byte(s), byte(i)})
				if !assert.NoError(t, err) {
					return
				}
			}
		}()
	}
	seen := map[[2]byte]bool{}
	buf := make([]byte, 4)
	var mu sync.Mutex
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	for finished := false; ; {
		select {
		case <-done:
			finished = true
		default:
		}
		n, ok, err := sub.TryReceive(buf)
		require.NoError(t, err)
		if ok {
			require.Equal(t, 2, n)
			mu.Lock()
			seen[[2]byte{buf[0], buf[1]}] = true
			mu.Unlock()
			continue
		}
		if finished {
			break
		}
	}
	assert.Len(t, seen, senders*each)
	assert.False(t, errors.Is(nil, iox.ErrClosed))
}
