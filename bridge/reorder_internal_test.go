package bridge

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
)

// numbered is a frame of the lossless stream as reorder sees it: only its
// headers.
type numbered struct {
	jetstream.Msg
	h nats.Header
}

func (m numbered) Headers() nats.Header { return m.h }

func frameOf(origin string, seq uint64) numbered {
	h := nats.Header{}
	h.Set(hOrigin, origin)
	h.Set(hPub, "1")
	h.Set(hSeq, strconv.FormatUint(seq, 10))
	return numbered{h: h}
}

// Numberings that sent nothing for reorderWait are forgotten once more than
// reorderKeep are kept, unless they hold frames behind a gap; those that sent
// lately are kept, and go on detecting copies.
func TestReorderForgetsIdleNumberingsBeyondItsBound(t *testing.T) {
	clock := time.Unix(1000, 0)
	o := newReorder()
	o.now = func() time.Time { return clock }
	ready, _ := o.add(frameOf("gapped", 1))
	require.Len(t, ready, 1)
	_, skipped := o.add(frameOf("gapped", 3)) // waits for 2
	require.Zero(t, skipped)
	for i := range 3 * reorderKeep {
		ready, _ := o.add(frameOf("fake-"+strconv.Itoa(i), 1))
		require.Len(t, ready, 1)
	}
	require.Len(t, o.next, 3*reorderKeep+1, "none idle for long yet")
	clock = clock.Add(reorderWait - time.Second)
	ready, _ = o.add(frameOf("recent", 1))
	require.Len(t, ready, 1)
	clock = clock.Add(2 * time.Second) // the fakes and "gapped" are idle now, "recent" is not
	ready, _ = o.add(frameOf("new", 1))
	require.Len(t, ready, 1)
	require.Len(t, o.next, 3, "gapped, recent and new")
	_, skipped = o.add(frameOf("recent", 1))
	require.Equal(t, -1, skipped, "a copy of what a kept numbering sent")
	ready, _ = o.add(frameOf("gapped", 2))
	require.Len(t, ready, 2, "the frame held behind the gap is still there")
}

// A gap that no reset fills (a made-up numbering's frame far ahead) must not
// hold back the reset that a real gap of another numbering needs: each gap
// that opens gets its own reset after gapReset, and a filled one none.
func TestKeeperResetsForEachGapWhileAnOlderOneStays(t *testing.T) {
	resets := make(chan string, 8)
	o := newReorder()
	var why string
	k := startKeeper(t.Context(), nil, func() {}, func(context.Context) { resets <- why }, nil, false)
	defer k.close()
	take := func(origin string, seq uint64) {
		o.add(frameOf(origin, seq))
		k.gap(o.waiting())
	}
	next := func() string {
		select {
		case w := <-resets:
			return w
		case <-time.After(20 * gapReset):
			return "no reset"
		}
	}
	why = "forged"
	take("forged", 1)
	take("forged", 1000) // waits for 2..999, which never come
	require.Equal(t, "forged", next())

	why = "real"
	take("real", 1)
	take("real", 3) // 2 was lost on the way: the reset brings it again
	require.Equal(t, "real", next(), "a real gap behind a made-up one")
	take("real", 2)
	require.NotZero(t, o.waiting(), "the made-up gap stays")

	// a gap filled before gapReset costs no reset
	why = "filled"
	take("real", 5)
	take("real", 4)
	why = "moved"
	take("real", 7)
	require.Equal(t, "moved", next(), "the gap at 6, not the filled one at 4")
	require.Empty(t, resets)
}

// A quiet spell after a run of frames resets the consumer when the last
// frame said that the server had more (sure), or when the server says that
// it delivered past the newest frame that came; otherwise not.
func TestKeeperResetsAfterAQuietSpellThatMissedDeliveries(t *testing.T) {
	resets := make(chan struct{}, 8)
	asked := make(chan uint64, 8)
	delivered := uint64(10) // the server's last delivery
	k := startKeeper(t.Context(), nil, func() {}, func(context.Context) { resets <- struct{}{} },
		func(_ context.Context, seen uint64) bool { asked <- seen; return delivered > seen }, false)
	defer k.close()
	reset := func() bool {
		select {
		case <-resets:
			return true
		case <-time.After(20 * gapReset):
			return false
		}
	}
	k.quiet(true, 7)
	require.True(t, reset(), "the last frame said more would come")
	require.Empty(t, asked, "a sure spell asks the server nothing")

	k.quiet(false, 9)
	require.Equal(t, uint64(9), <-asked)
	require.True(t, reset(), "the server delivered 10, the import saw 9")

	k.quiet(false, 10)
	require.Equal(t, uint64(10), <-asked)
	k.quiet(true, 10) // a later spell: the keeper took the one before, so it answered that first
	require.True(t, reset())
	require.Empty(t, resets, "no reset for the spell that missed nothing")
}
