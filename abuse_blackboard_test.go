package iox_test

// Abuse of the blackboard: every handle's Close racing every call of the
// others, a writer process killed in the middle of a stream of writes while
// readers and a watch look on, watches whose context and reader end at once,
// and absurd keys, values and sizes.

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/iox-go/iox"
)

// typedOrCtx fails unless err is nil, an *iox.Error of one of the package's
// kinds, or a context's error.
func typedOrCtx(err error) error {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return nil
	}
	var e *iox.Error
	if !errors.As(err, &e) || kindOf(err) == "untyped" {
		return fmt.Errorf("untyped error %T: %v", err, err)
	}
	return nil
}

// Every handle of a blackboard closed (twice at once) while goroutines call
// everything on it: each call returns nil or a typed error, each watch's
// channel closes, and nothing is left behind.
func TestAbuseBBCloseRacesEveryCall(t *testing.T) {
	for round := range 8 {
		ns := newNamespace(t)
		node := ns.node(t)
		bb, err := iox.OpenBlackboard(node, "bb-race", bbKeyCodec, exampleEntries())
		require.NoError(t, err)
		w, err := bb.Writer()
		require.NoError(t, err)
		r, err := bb.Reader()
		require.NoError(t, err)
		we, err := iox.WriteEntry(w, key0, i32Codec)
		require.NoError(t, err)
		re, err := iox.ReadEntry(r, key0, i32Codec)
		require.NoError(t, err)
		ctx, cancel := context.WithCancel(context.Background())

		var bad sync.Map
		check := func(what string, err error) {
			if e := typedOrCtx(err); e != nil {
				bad.Store(what, e)
			}
		}
		var wg sync.WaitGroup
		var stop atomic.Bool
		loop := func(f func()) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for !stop.Load() {
					f()
				}
			}()
		}
		loop(func() { check("set", we.Set(7)) })
		loop(func() {
			l, err := we.Loan()
			check("loan", err)
			if err == nil {
				if round%2 == 0 {
					check("commit", l.Commit())
				} else {
					check("discard", l.Discard())
				}
			}
		})
		loop(func() {
			v, err := re.Get()
			check("get", err)
			_, err = re.Changed(v)
			check("changed", err)
		})
		loop(func() {
			c, err := iox.WatchEntry(ctx, re)
			check("watch", err)
			if err == nil {
				for range c { // ends with the reader's Close or ctx
				}
			}
		})
		loop(func() {
			e, err := iox.ReadEntry(r, key1, f64Codec)
			check("read entry", err)
			if err == nil {
				check("close read entry", e.Close())
			}
		})
		loop(func() {
			e, err := iox.WriteEntry(w, key1, f64Codec)
			if !errors.Is(err, iox.ErrLimitReached) { // the other loop holds it
				check("write entry", err)
			}
			if err == nil {
				check("set 1", e.Set(1.5))
				check("close write entry", e.Close())
			}
		})
		loop(func() {
			_, err := bb.Keys()
			check("keys", err)
			rr, err := bb.Reader()
			check("reader", err)
			if err == nil {
				check("close reader", rr.Close())
			}
		})
		time.Sleep(time.Duration(round) * time.Millisecond) // the stimulus: calls under way
		closers := []func() error{re.Close, we.Close, r.Close, w.Close, bb.Close}
		for _, c := range closers {
			c := c
			var both sync.WaitGroup
			errs := make([]error, 2)
			for i := range 2 {
				both.Add(1)
				go func() { defer both.Done(); errs[i] = c() }()
			}
			both.Wait()
			require.True(t, (errs[0] == nil) != (errs[1] == nil), "one Close of two succeeds: %v", errs)
			require.ErrorIs(t, errors.Join(errs...), iox.ErrClosed)
		}
		time.Sleep(time.Millisecond)
		stop.Store(true)
		within(t, 10*time.Second, "every call to return after the Closes", wg.Wait)
		cancel()
		bad.Range(func(k, v any) bool {
			t.Errorf("round %d: %s: %v", round, k, v)
			return true
		})
	}
}

// A writer process killed at an arbitrary moment of a stream of writes, while
// readers read and a watch follows the entry: no reader nor the watch ever
// sees a torn value; after the kill the value stays the last complete one
// (whole, Changed false), the watch neither ends nor delivers anything newer,
// its context still ends it at once, and a new writer takes the service.
func TestAbuseBBWriterKilledMidStreamWhileWatched(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t, iox.WithoutAutoCleanup())
	c := spawn(t, ns, "bb-busy-writer")
	c.expect("ready")
	bb, err := iox.OpenExistingBlackboard(node, "bb-busy", bbKeyCodec)
	require.NoError(t, err)
	r, err := bb.Reader()
	require.NoError(t, err)
	e, err := iox.ReadEntry(r, key2, blobCodec)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	watch, err := iox.WatchEntry(ctx, e)
	require.NoError(t, err)

	var seen atomic.Int64
	errc := make(chan error, 3)
	var stop atomic.Bool
	for range 2 {
		go func() {
			last := uint64(0)
			for !stop.Load() {
				v, err := e.Get()
				switch {
				case err != nil:
					errc <- err
					return
				case !whole(v.Value):
					errc <- fmt.Errorf("a torn value (%d…%d)", v.Value[0], v.Value[len(v.Value)-1])
					return
				case v.Generation < last:
					errc <- fmt.Errorf("generation %d after %d", v.Generation, last)
					return
				}
				last = v.Generation
			}
			errc <- nil
		}()
	}
	var last atomic.Pointer[blob]
	watchEnded := make(chan struct{})
	go func() {
		defer close(watchEnded)
		for v := range watch {
			if !whole(v) {
				errc <- fmt.Errorf("the watch delivered a torn value (%d…%d)", v[0], v[len(v)-1])
				return
			}
			last.Store(&v)
			seen.Add(1)
		}
		errc <- nil
	}()
	eventually(t, "the watch to see the writer write", func() bool { return seen.Load() > 50 })
	c.kill()
	stop.Store(true)
	after, err := e.Get()
	require.NoError(t, err)
	require.True(t, whole(after.Value), "a torn value after the kill")
	changed, err := e.Changed(after)
	require.NoError(t, err)
	require.False(t, changed, "a dead writer wrote")
	eventually(t, "the watch to deliver the last complete value", func() bool { return *last.Load() == after.Value })
	k := seen.Load()
	time.Sleep(20 * time.Millisecond) // the stimulus: a quiet while, with the writer dead
	require.Equal(t, k, seen.Load(), "the watch delivers nothing newer than the last value")
	select {
	case <-watchEnded:
		t.Fatal("the watch ended with its writer's death")
	default:
	}
	cancel()
	within(t, 2*time.Second, "the watch to end with its context", func() { <-watchEnded })
	for range 3 {
		require.NoError(t, <-errc)
	}

	n, err := node.CleanupDeadNodes()
	require.NoError(t, err)
	require.Equal(t, 1, n, "the killed writer's node")
	w, err := bb.Writer()
	require.NoError(t, err, "the dead writer's place is free again")
	we, err := iox.WriteEntry(w, key0, i32Codec) // an entry the dead writer did not hold
	require.NoError(t, err)
	require.NoError(t, we.Set(11))
	require.NoError(t, we.Close())
	require.NoError(t, w.Close())
	within(t, 2*time.Second, "the entry reader's Close", func() { require.NoError(t, e.Close()) })
	require.NoError(t, r.Close())
	require.NoError(t, bb.Close())
	sweepCrashLeftovers(t, ns)
}

// A blackboard's change notifications cost 8 bytes per byte offset of its
// values for each watcher the event service admits (16), about 256 times the
// values' size: a 64 MiB value is refused with ErrOutOfMemory by
// OpenBlackboard, which says why in a blackboard's terms and leaves nothing
// behind, while a 1 MiB value is made, read and watched.
func TestAbuseBBLargeValuesAreRefusedForTheirNotifications(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	before := leftovers(ns.prefix) // the node's own
	const huge = 64 << 20
	hc := must(iox.FixedBytes(iox.PayloadType{Name: "[u8; 67108864]", Size: huge, Align: 1}))
	_, err := iox.OpenBlackboard(node, "bb-64mib", bbKeyCodec, []iox.BlackboardEntry[bbKey]{iox.Entry(key0, hc, make([]byte, huge))})
	var e *iox.Error
	require.ErrorAs(t, err, &e)
	require.ErrorIs(t, err, iox.ErrOutOfMemory)
	require.Equal(t, "create blackboard", e.Op)
	require.Contains(t, e.Detail, "change notifications do not fit")
	require.Equal(t, before, leftovers(ns.prefix), "what the refused blackboard left")

	const n = 1 << 20
	c := must(iox.FixedBytes(iox.PayloadType{Name: "[u8; 1048576]", Size: n, Align: 1}))
	bb, err := iox.OpenBlackboard(node, "bb-1mib", bbKeyCodec, []iox.BlackboardEntry[bbKey]{iox.Entry(key0, c, make([]byte, n))})
	require.NoError(t, err, "a 1 MiB value")
	defer bb.Close()
	r, err := bb.Reader()
	require.NoError(t, err)
	defer r.Close()
	re, err := iox.ReadEntry(r, key0, c)
	require.NoError(t, err)
	defer re.Close()
	ctx, cancel := context.WithCancel(advCtx(t))
	defer cancel()
	changes, err := iox.WatchEntry(ctx, re)
	require.NoError(t, err)
	v := <-changes
	require.Len(t, v, n)
}
