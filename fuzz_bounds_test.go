package iox

import (
	"errors"
	"fmt"
	"math"
	"os"
	"strings"
	"testing"
	"time"
)

// Bits of FuzzServiceOptions' set argument: which options an input applies.
const (
	fzPubs = 1 << iota
	fzSubs
	fzNodes
	fzBuffer
	fzHistory
	fzBorrowed
	fzPayload
	fzSafeOverflow
	fzNotifiers
	fzListeners
	fzMaxID
	fzInitial
	fzMaxMsg
	fzLoans
	fzSpin
	fzSubBuffer
)

// FuzzServiceOptions opens publish-subscribe and event services with random
// option sets at the native boundary and, when a service opens, makes a
// publisher, a subscriber, a notifier and a listener on it. Every refusal must be
// an *Error of one of the package's kinds other than ErrInternal; the native
// library must not panic; nothing of the namespace may stay in /dev/shm once
// everything is closed.
//
// "No output on stderr from the native library" is checked through the native
// panic counter (iox_panic_count) rather than by capturing fd 2: the library
// writes to stderr only through iceoryx2's logger, refusals log at debug level
// (below the default LogError), so the one thing that would print is a caught
// panic's line, which the counter counts. Redirecting fd 2 would also swallow
// the test framework's own output and race with every other goroutine.
func FuzzServiceOptions(f *testing.F) {
	all := uint32(math.MaxUint32)
	// set, pubs, subs, nodes, buffer, history, borrowed, size, align, fixed, safe,
	// notifiers, listeners, maxID, initial, maxMsg, loans, spin, subBuffer
	add := func(set uint32, pubs, subs, nodes, buffer, history, borrowed, size, align int64, fixed, safe bool,
		notifiers, listeners int64, maxID uint64, initial, maxMsg, loans, spin, subBuffer int64) {
		f.Add(set, pubs, subs, nodes, buffer, history, borrowed, size, align, fixed, safe,
			notifiers, listeners, maxID, initial, maxMsg, loans, spin, subBuffer)
	}
	add(0, 2, 8, 20, 2, 0, 2, 1, 1, false, true, 16, 16, 255, 4096, DefaultMaxMessageSize, 2, 0, 0)
	add(all, 1, 1, 1, 1, 0, 1, 8, 8, true, false, 1, 1, 7, 8, 8, 1, 0, 1)
	add(all, 2, 2, 4, 16, 4, 2, 1, 1, false, false, 2, 2, 63, 64, 1<<20, 4, 3, 8)
	// The values that once panicked or blew up.
	add(fzNodes, 0, 0, 0, 0, 0, 0, 1, 1, false, true, 0, 0, 0, 0, 0, 0, 0, 0)
	add(fzPubs, 0, 0, 0, 0, 0, 0, 1, 1, false, true, 0, 0, 0, 0, 0, 0, 0, 0)
	add(fzSubs, 0, 0, 0, 0, 0, 0, 1, 1, false, true, 0, 0, 0, 0, 0, 0, 0, 0)
	add(fzMaxID, 0, 0, 0, 0, 0, 0, 1, 1, false, true, 0, 0, math.MaxUint64, 0, 0, 0, 0, 0)
	add(fzMaxID, 0, 0, 0, 0, 0, 0, 1, 1, false, true, 0, 0, 1<<40, 0, 0, 0, 0, 0)
	add(fzPayload, 0, 0, 0, 0, 0, 0, 8, 1<<40, true, true, 0, 0, 0, 0, 0, 0, 0, 0)
	add(fzBuffer, 0, 0, 0, 1<<20, 0, 0, 1, 1, false, true, 0, 0, 0, 0, 0, 0, 0, 0)
	add(fzBorrowed, 0, 0, 0, 0, 0, 1<<20, 1, 1, false, true, 0, 0, 0, 0, 0, 0, 0, 0)
	add(fzPubs, 1<<20, 0, 0, 0, 0, 0, 1, 1, false, true, 0, 0, 0, 0, 0, 0, 0, 0)
	add(fzSubs, 0, 1<<20, 0, 0, 0, 0, 1, 1, false, true, 0, 0, 0, 0, 0, 0, 0, 0)
	add(fzHistory, 0, 0, 0, 0, 1<<20, 0, 1, 1, false, true, 0, 0, 0, 0, 0, 0, 0, 0)
	add(fzListeners, 0, 0, 0, 0, 0, 0, 1, 1, false, true, 0, 1<<20, 0, 0, 0, 0, 0, 0)
	add(fzInitial|fzMaxMsg, 0, 0, 0, 0, 0, 0, 1, 1, false, true, 0, 0, 0, 1<<40, math.MaxInt64, 0, 0, 0)
	add(fzLoans|fzSpin|fzSubBuffer, 0, 0, 0, 0, 0, 0, 1, 1, false, true, 0, 0, 0, 0, 0, -1, -1, -1)
	add(all, math.MaxInt64, math.MinInt64, -1, math.MaxInt64, -1, math.MinInt64, math.MaxInt64, math.MinInt64, true, false,
		math.MaxInt64, math.MinInt64, math.MaxUint64, math.MinInt64, math.MinInt64, math.MaxInt64, math.MaxInt64, math.MaxInt64)
	s := newFuzzSpace(f)
	lib, err := openLib("")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, set uint32, pubs, subs, nodes, buffer, history, borrowed, size, align int64, fixed, safe bool,
		notifiers, listeners int64, maxID uint64, initial, maxMsg, loans, spin, subBuffer int64) {
		on := func(bit uint32) bool { return set&bit != 0 }
		var opts []Option
		for _, o := range []struct {
			bit uint32
			opt func(int) Option
			v   int64
		}{
			{fzPubs, MaxPublishers, pubs}, {fzSubs, MaxSubscribers, subs}, {fzNodes, MaxNodes, nodes},
			{fzBuffer, BufferSize, buffer}, {fzHistory, History, history}, {fzBorrowed, MaxBorrowed, borrowed},
			{fzNotifiers, MaxNotifiers, notifiers}, {fzListeners, MaxListeners, listeners},
		} {
			if on(o.bit) {
				opts = append(opts, o.opt(int(o.v)))
			}
		}
		pt := Bytes
		if on(fzPayload) {
			pt = PayloadType{Name: "iox::Fuzz", Size: int(size), Align: int(align), Fixed: fixed}
			opts = append(opts, WithPayloadType(pt))
		}
		if on(fzSafeOverflow) {
			opts = append(opts, SafeOverflow(safe))
		}
		if on(fzMaxID) {
			opts = append(opts, MaxEventID(EventID(maxID)))
		}
		var popts []Option
		for _, o := range []struct {
			bit uint32
			opt func(int) Option
			v   int64
		}{{fzInitial, InitialMessageSize, initial}, {fzMaxMsg, MaxMessageSize, maxMsg}, {fzLoans, MaxLoans, loans}, {fzSpin, FailWhenFull, spin}} {
			if on(o.bit) {
				popts = append(popts, o.opt(int(o.v)))
			}
		}
		var sopts []Option
		if on(fzSubBuffer) {
			sopts = append(sopts, SubscriberBuffer(int(subBuffer)))
		}
		// Accepted settings this large cost up to a quarter of the machine to
		// make ports for: worth opening the service, too costly on every input.
		cheap := func(bit uint32, v int64, limit int64) bool { return !on(bit) || v <= limit }
		ports := cheap(fzPubs, pubs, 64) && cheap(fzSubs, subs, 64) && cheap(fzBuffer, buffer, 1<<12) &&
			cheap(fzHistory, history, 1<<12) && cheap(fzBorrowed, borrowed, 1<<12) && cheap(fzLoans, loans, 1<<12) &&
			cheap(fzInitial, initial, 1<<20) && cheap(fzNotifiers, notifiers, 1<<12) && cheap(fzListeners, listeners, 1<<12) &&
			(!on(fzMaxID) || maxID <= 1<<16) && (!on(fzPayload) || size <= 1<<16 && align <= 1<<12)

		before := lib.PanicCount()
		inTime(t, 30*time.Second, "pubsub", func() error { return fuzzServicePubSub(s, opts, popts, sopts, pt, ports) })
		inTime(t, 30*time.Second, "event", func() error { return fuzzServiceEvent(s, opts, ports) })
		if n := lib.PanicCount() - before; n != 0 {
			t.Fatalf("the native library panicked %d times", n)
		}
		if left := shmLeftovers(s.prefix); len(left) > 0 {
			t.Fatalf("left in /dev/shm after closing everything: %v", left)
		}
	})
}

// refusal accepts err when it is an *Error of a kind a caller can act on.
func refusal(what string, err error) error {
	if err := checkTyped(err); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if errors.Is(err, ErrInternal) {
		return fmt.Errorf("%s: internal failure: %v", what, err)
	}
	return nil
}

func fuzzServicePubSub(s *fuzzSpace, opts []Option, popts []Option, sopts []Option, pt PayloadType, ports bool) error {
	svc, err := s.node.PublishSubscribe(s.name(), opts...)
	if err != nil {
		return refusal("open publish-subscribe", err)
	}
	defer svc.Close()
	if !ports {
		return nil
	}
	sub, err := svc.Subscriber(sopts...)
	if err != nil {
		return refusal("subscriber", err)
	}
	defer sub.Close()
	pub, err := svc.Publisher(popts...)
	if err != nil {
		return refusal("publisher", err)
	}
	defer pub.Close()
	msg := make([]byte, pt.Size)
	if _, err := pub.Send(msg); err != nil {
		return refusal("send", err)
	}
	if _, _, err := sub.TryReceive(make([]byte, len(msg))); err != nil {
		return refusal("receive", err)
	}
	return nil
}

func fuzzServiceEvent(s *fuzzSpace, opts []Option, ports bool) error {
	ev, err := s.node.Event(s.name(), opts...)
	if err != nil {
		return refusal("open event", err)
	}
	defer ev.Close()
	if !ports {
		return nil
	}
	l, err := ev.Listener()
	if err != nil {
		return refusal("listener", err)
	}
	defer l.Close()
	n, err := ev.Notifier()
	if err != nil {
		return refusal("notifier", err)
	}
	defer n.Close()
	if _, err := n.Notify(ev.MaxEventID()); err != nil {
		return refusal("notify", err)
	}
	if _, err := l.TryWait(); err != nil {
		return refusal("try wait", err)
	}
	return nil
}

// shmLeftovers lists the namespace's shared-memory objects other than its
// node-counter segment, which iceoryx2 keeps on purpose.
func shmLeftovers(prefix string) []string {
	var out []string
	entries, _ := os.ReadDir("/dev/shm")
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) && !strings.HasSuffix(e.Name(), ".global_mgmt") {
			out = append(out, e.Name())
		}
	}
	return out
}
