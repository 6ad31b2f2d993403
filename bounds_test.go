package iox_test

import (
	"context"
	"errors"
	"io"
	"math"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/iox-go/iox"
)

// Bounds on option values (Reliability II): values iceoryx2 cannot hold are
// refused with a typed error that names the option, before anything is created,
// never with a native panic, a memory blow-up or a leftover in /dev/shm.

// peakRSS runs f and returns the process's peak resident set during it, in
// bytes: the kernel's high-water mark is reset first (clear_refs 5); where that
// is not allowed, the mark since the process started is an upper bound.
func peakRSS(t *testing.T, f func()) int64 {
	t.Helper()
	os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
	f()
	return procStatus(t, "VmHWM") << 10
}

const (
	rssLimit  = 1 << 30
	waitFor   = 10 * time.Second
	pollEvery = time.Millisecond
)

// requireKind checks that err is an *iox.Error of kind whose detail names option.
func requireKind(t *testing.T, err error, kind error, option string) {
	t.Helper()
	require.Error(t, err)
	var e *iox.Error
	require.True(t, errors.As(err, &e), "untyped error %T: %v", err, err)
	require.ErrorIs(t, err, kind)
	if option != "" {
		assert.Contains(t, e.Detail, option, "the error names the option")
	}
}

// noPanics fails the test when the native library panicked during it.
func noPanics(t *testing.T) {
	before := iox.NativePanics()
	t.Cleanup(func() {
		assert.Equal(t, before, iox.NativePanics(), "the native library panicked")
	})
}

// Settings that made iceoryx2 map, zero and track gigabytes are refused with
// ErrOutOfMemory before anything is created, naming the option to lower.
func TestBoundsHugeServiceSettingsGiveOutOfMemory(t *testing.T) {
	noPanics(t)
	ns := newNamespace(t)
	node := ns.node(t)
	for _, tc := range []struct {
		option string
		opts   []iox.Option
	}{
		{"BufferSize", []iox.Option{iox.BufferSize(1 << 20)}},
		{"MaxBorrowed", []iox.Option{iox.MaxBorrowed(1 << 20)}},
		{"MaxPublishers", []iox.Option{iox.MaxPublishers(1 << 20)}},
		{"MaxSubscribers", []iox.Option{iox.MaxSubscribers(1 << 20)}},
		{"History", []iox.Option{iox.History(1 << 20)}},
	} {
		t.Run(tc.option, func(t *testing.T) {
			var err error
			peak := peakRSS(t, func() {
				var svc *iox.PubSubService
				if svc, err = node.PublishSubscribe("huge-"+tc.option, tc.opts...); err != nil {
					return
				}
				defer svc.Close()
				sub, err2 := svc.Subscriber()
				if err = err2; err != nil {
					return
				}
				defer sub.Close()
				pub, err2 := svc.Publisher()
				if err = err2; err != nil {
					return
				}
				pub.Close()
			})
			t.Logf("%s: %v (peak RSS %d MiB)", tc.option, err, peak>>20)
			requireKind(t, err, iox.ErrOutOfMemory, tc.option)
			assert.Less(t, peak, int64(rssLimit), "peak RSS")
		})
	}
	for _, tc := range []struct {
		option string
		opts   []iox.Option
	}{
		{"MaxListeners", []iox.Option{iox.MaxListeners(1 << 20)}},
		{"MaxEventID", []iox.Option{iox.MaxEventID(1 << 40)}},
	} {
		t.Run(tc.option, func(t *testing.T) {
			var err error
			peak := peakRSS(t, func() {
				var svc *iox.EventService
				if svc, err = node.Event("huge-"+tc.option, tc.opts...); err != nil {
					return
				}
				defer svc.Close()
				l, err2 := svc.Listener()
				if err = err2; err != nil {
					return
				}
				defer l.Close()
				n, err2 := svc.Notifier()
				if err = err2; err != nil {
					return
				}
				n.Close()
			})
			t.Logf("%s: %v (peak RSS %d MiB)", tc.option, err, peak>>20)
			requireKind(t, err, iox.ErrOutOfMemory, tc.option)
			assert.Less(t, peak, int64(rssLimit), "peak RSS")
		})
	}
}

// Values the tests and benchmarks use keep working, within the RSS limit.
func TestBoundsUsualSettingsStillWork(t *testing.T) {
	noPanics(t)
	ns := newNamespace(t)
	node := ns.node(t)
	peak := peakRSS(t, func() {
		svc, err := node.PublishSubscribe("usual", iox.BufferSize(1024), iox.SafeOverflow(false))
		require.NoError(t, err)
		defer svc.Close()
		sub, err := svc.Subscriber()
		require.NoError(t, err)
		defer sub.Close()
		pub, err := svc.Publisher(iox.MaxLoans(8))
		require.NoError(t, err)
		defer pub.Close()
		msg := pattern(1<<20, 1)
		n, err := pub.Send(msg)
		require.NoError(t, err)
		require.Equal(t, 1, n)
		buf := make([]byte, len(msg))
		k, ok, err := sub.TryReceive(buf)
		require.NoError(t, err)
		require.True(t, ok)
		require.Equal(t, msg, buf[:k])
	})
	t.Logf("peak RSS %d MiB", peak>>20)
	assert.Less(t, peak, int64(rssLimit))
}

// Counts of 0 where iceoryx2 needs at least 1 made the native library panic and
// leave a .dynamic segment behind; they are refused with ErrInvalidArgument
// (the namespace check fails the test on any leftover).
func TestBoundsZeroCountsGiveInvalidArgument(t *testing.T) {
	noPanics(t)
	ns := newNamespace(t)
	node := ns.node(t)
	for _, tc := range []struct {
		option string
		opt    iox.Option
	}{
		{"MaxNodes", iox.MaxNodes(0)},
		{"MaxPublishers", iox.MaxPublishers(0)},
		{"MaxSubscribers", iox.MaxSubscribers(0)},
		{"BufferSize", iox.BufferSize(0)},
		{"MaxBorrowed", iox.MaxBorrowed(0)},
		{"MaxPublishers", iox.MaxPublishers(-1)},
		{"History", iox.History(-1)},
		{"BufferSize", iox.BufferSize(iox.MaxServiceCount + 1)},
	} {
		svc, err := node.PublishSubscribe("zero-"+tc.option, tc.opt)
		if err == nil {
			svc.Close()
		}
		requireKind(t, err, iox.ErrInvalidArgument, tc.option)
	}
	for _, tc := range []struct {
		option string
		opt    iox.Option
	}{
		{"MaxNodes", iox.MaxNodes(0)},
		{"MaxNotifiers", iox.MaxNotifiers(0)},
		{"MaxListeners", iox.MaxListeners(0)},
	} {
		svc, err := node.Event("zero-"+tc.option, tc.opt)
		if err == nil {
			svc.Close()
		}
		requireKind(t, err, iox.ErrInvalidArgument, tc.option)
	}
}

// A listener on a service whose largest event id is MaxUint64 panicked in the
// native library (the size of its id set overflows): the service is refused.
func TestBoundsMaxEventIDOverflowGivesInvalidArgument(t *testing.T) {
	noPanics(t)
	ns := newNamespace(t)
	node := ns.node(t)
	err := func() error {
		svc, err := node.Event("max-id", iox.MaxEventID(math.MaxUint64))
		if err != nil {
			return err
		}
		defer svc.Close()
		l, err := svc.Listener()
		if err != nil {
			return err
		}
		return l.Close()
	}()
	requireKind(t, err, iox.ErrInvalidArgument, "MaxEventID")
}

// An isolation root too long for a listener's unix socket path (108 bytes)
// made creating a listener panic or fail; NewNode refuses it up front.
func TestBoundsLongIsolationRootGivesInvalidArgument(t *testing.T) {
	noPanics(t)
	prefix := runPrefix() + "_long_"
	root := "/tmp/ioxt/" + strings.Repeat("r", 100-len("/tmp/ioxt/")-1) + "/"
	defer iox.RemoveIsolation(prefix, root)
	err := func() error {
		node, err := iox.NewNode(iox.WithIsolation(prefix, root))
		if err != nil {
			return err
		}
		defer node.Close()
		svc, err := node.Event("long-root")
		if err != nil {
			return err
		}
		defer svc.Close()
		l, err := svc.Listener()
		if err != nil {
			return err
		}
		return l.Close()
	}()
	requireKind(t, err, iox.ErrInvalidArgument, "socket path")
	assert.Empty(t, leftovers(prefix), "nothing in /dev/shm")

	// The longest root that fits still makes listeners.
	ns := namespace{prefix: runPrefix() + "_fit_"}
	ns.root = "/tmp/ioxt/" + strings.Repeat("f", 107-39-len(".event")-len(ns.prefix)-len("/tmp/ioxt/")-1) + "/"
	t.Cleanup(func() { ns.check(t) })
	node := ns.node(t)
	svc, err := node.Event("fits")
	require.NoError(t, err)
	defer svc.Close()
	l, err := svc.Listener()
	require.NoError(t, err)
	require.NoError(t, l.Close())
}

// A payload alignment of 1<<40 left a __0.data segment behind; it is refused
// before anything is created, and a large but possible one by the memory bound.
func TestBoundsPayloadAlignment(t *testing.T) {
	noPanics(t)
	ns := newNamespace(t)
	node := ns.node(t)
	_, err := node.PublishSubscribe("align-40", iox.WithPayloadType(iox.PayloadType{Name: "big", Size: 8, Align: 1 << 40, Fixed: true}))
	requireKind(t, err, iox.ErrInvalidArgument, "Align")
	var e error
	peak := peakRSS(t, func() {
		svc, err := node.PublishSubscribe("align-29", iox.WithPayloadType(iox.PayloadType{Name: "big", Size: 8, Align: 1 << 29, Fixed: true}))
		if e = err; err != nil {
			return
		}
		defer svc.Close()
		pub, err := svc.Publisher()
		if e = err; err == nil {
			pub.Close()
		}
	})
	requireKind(t, e, iox.ErrOutOfMemory, "")
	assert.Less(t, peak, int64(rssLimit))
}

// Publisher and subscriber options outside their bounds are refused, naming
// the option.
func TestBoundsPortOptions(t *testing.T) {
	noPanics(t)
	ns := newNamespace(t)
	node := ns.node(t)
	svc, err := node.PublishSubscribe("port-options", iox.BufferSize(4))
	require.NoError(t, err)
	defer svc.Close()
	for _, tc := range []struct {
		option string
		kind   error
		opts   []iox.Option
	}{
		{"InitialMessageSize", iox.ErrInvalidArgument, []iox.Option{iox.InitialMessageSize(-1)}},
		{"MaxLoans", iox.ErrInvalidArgument, []iox.Option{iox.MaxLoans(-1)}},
		{"MaxLoans", iox.ErrInvalidArgument, []iox.Option{iox.MaxLoans(iox.MaxServiceCount + 1)}},
		{"FailWhenFull", iox.ErrInvalidArgument, []iox.Option{iox.FailWhenFull(-1)}},
		{"FailWhenFull", iox.ErrInvalidArgument, []iox.Option{iox.FailWhenFull(iox.MaxSpin + 1)}},
		{"InitialMessageSize", iox.ErrOutOfMemory, []iox.Option{iox.MaxMessageSize(math.MaxInt), iox.InitialMessageSize(1 << 40)}},
		{"MaxLoans", iox.ErrOutOfMemory, []iox.Option{iox.MaxLoans(iox.MaxServiceCount)}},
	} {
		var err error
		peak := peakRSS(t, func() {
			var pub *iox.Publisher
			if pub, err = svc.Publisher(tc.opts...); err == nil {
				pub.Close()
			}
		})
		t.Logf("%s: %v", tc.option, err)
		requireKind(t, err, tc.kind, tc.option)
		assert.Less(t, peak, int64(rssLimit))
	}
	for _, n := range []int{-1, 5} {
		sub, err := svc.Subscriber(iox.SubscriberBuffer(n))
		if err == nil {
			sub.Close()
		}
		requireKind(t, err, iox.ErrInvalidArgument, "SubscriberBuffer")
	}
}

// FailWhenFull promised ErrWouldBlock for a full subscriber, but a subscriber
// that had not looked for messages since the publisher connected was skipped
// silently: Send gave (0, nil) as if there were no subscriber.
func TestFailWhenFullGivesErrWouldBlock(t *testing.T) {
	noPanics(t)
	ns := newNamespace(t)
	node := ns.node(t)
	for _, subscriberFirst := range []bool{true, false} {
		name := "full-pub-first"
		if subscriberFirst {
			name = "full-sub-first"
		}
		t.Run(name, func(t *testing.T) {
			svc, err := node.PublishSubscribe(name, iox.SafeOverflow(false), iox.BufferSize(1))
			require.NoError(t, err)
			defer svc.Close()
			var sub *iox.Subscriber
			if subscriberFirst {
				sub, err = svc.Subscriber()
				require.NoError(t, err)
				defer sub.Close()
			}
			pub, err := svc.Publisher(iox.FailWhenFull(0))
			require.NoError(t, err)
			defer pub.Close()
			if !subscriberFirst {
				n, err := pub.Send([]byte("nobody"))
				require.NoError(t, err)
				require.Equal(t, 0, n, "no subscriber: (0, nil)")
				sub, err = svc.Subscriber()
				require.NoError(t, err)
				defer sub.Close()
			}
			n, err := pub.Send([]byte("one"))
			require.NoError(t, err)
			require.Equal(t, 1, n)
			n, err = pub.Send([]byte("two"))
			require.ErrorIs(t, err, iox.ErrWouldBlock, "the subscriber's buffer is full")
			require.Equal(t, 0, n)

			buf := make([]byte, 16)
			k, ok, err := sub.TryReceive(buf)
			require.NoError(t, err)
			require.True(t, ok)
			require.Equal(t, "one", string(buf[:k]))
			require.Eventually(t, func() bool {
				n, err := pub.Send([]byte("three"))
				return err == nil && n == 1
			}, waitFor, pollEvery, "room again after the subscriber read")
			k, ok, err = sub.TryReceive(buf)
			require.NoError(t, err)
			require.True(t, ok)
			require.Equal(t, "three", string(buf[:k]), "nothing sent twice, nothing lost")
		})
	}
}

// NewBatch(-1, 1) panicked in makeslice; out-of-range sizes are clamped.
func TestNewBatchClampsSizes(t *testing.T) {
	noPanics(t)
	for _, c := range [][2]int{{-1, 1}, {1, -5}, {math.MinInt, math.MinInt}, {math.MaxInt, math.MaxInt}, {1 << 40, 1 << 40}} {
		require.NotPanics(t, func() { iox.NewBatch(c[0], c[1]) }, "NewBatch(%d, %d)", c[0], c[1])
	}
	ns := newNamespace(t)
	node := ns.node(t)
	svc, err := node.PublishSubscribe("batch")
	require.NoError(t, err)
	defer svc.Close()
	sub, err := svc.Subscriber()
	require.NoError(t, err)
	defer sub.Close()
	pub, err := svc.Publisher()
	require.NoError(t, err)
	defer pub.Close()
	_, err = pub.Send([]byte("grows"))
	require.NoError(t, err)
	b := iox.NewBatch(-1, -1)
	var k int
	require.Eventually(t, func() bool {
		k, err = sub.ReceiveBatch(b)
		return err != nil || k > 0
	}, waitFor, pollEvery)
	require.NoError(t, err)
	require.Equal(t, 1, k)
	require.Equal(t, "grows", string(b.Message(0)))
}

// Extreme option values are refused by both channel ends with
// ErrInvalidArgument before anything is created (the namespace check finds any
// leftover), never with a crash or an internal failure. (Values a Go channel
// cannot hold are checked in fuzz_test.go.)
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
			for _, end := range []struct {
				what string
				open func() (io.Closer, error)
			}{
				{"subscriber", func() (io.Closer, error) { return iox.OpenSub(ctx, node, "extreme", tc.opts...) }},
				{"publisher", func() (io.Closer, error) { return iox.OpenPub(ctx, node, "extreme", tc.opts...) }},
			} {
				var c io.Closer
				var err error
				within(t, 30*time.Second, "opening a "+end.what, func() { c, err = end.open() })
				t.Logf("%s, %s: %s %v", tc.what, end.what, kindOf(err), err)
				if err == nil {
					c.Close()
				}
				require.ErrorIs(t, err, iox.ErrInvalidArgument, "%s: %s", end.what, tc.what)
				requireTyped(t, err, tc.what)
			}
		})
	}
}

// A count option out of range is refused with a message that names it, on
// every end: MaxSubscribers(-1) on a pair used to be refused with a message
// about WaitSubscribers(0).
func TestCountOptionsNameThemselves(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := context.Background()
	for _, tc := range []struct {
		option string
		opt    iox.Option
	}{
		{"MaxSubscribers(-1)", iox.MaxSubscribers(-1)},
		{"MaxSubscribers(0)", iox.MaxSubscribers(0)},
		{"MaxPublishers(-1)", iox.MaxPublishers(-1)},
		{"MaxSubscribers(1000000)", iox.MaxSubscribers(1000000)},
	} {
		for _, end := range []struct {
			what string
			open func() (io.Closer, error)
		}{
			{"pair", func() (io.Closer, error) { return iox.OpenPair(ctx, node, "counts", tc.opt) }},
			{"subscriber", func() (io.Closer, error) { return iox.OpenSub(ctx, node, "counts", tc.opt) }},
			{"publisher", func() (io.Closer, error) { return iox.OpenPub(ctx, node, "counts", tc.opt) }},
		} {
			c, err := end.open()
			if err == nil {
				c.Close()
			}
			require.ErrorIs(t, err, iox.ErrInvalidArgument, "%s on a %s", tc.option, end.what)
			require.Contains(t, err.Error(), tc.option, "%s on a %s", tc.option, end.what)
		}
	}
}
