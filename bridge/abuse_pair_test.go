package bridge_test

// Abuse of pairs across hosts: messages at and over a bridge's size limit,
// both programs closing at once while messages cross, and a pair opened
// again right after the other host's end closed.

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/iox-go/iox"
	"github.com/iox-go/iox/bridge"
)

// A message larger than the bridges' MaxMessageSize cannot cross: it is
// reported as ErrMessageTooLarge and the pair goes on (README: "one that
// cannot cross ... is reported as ErrMessageTooLarge on both sides, and the
// channel goes on"); one of exactly the limit crosses.
func TestAbusePairMessageOverTheBridgeLimitEndsNotThePair(t *testing.T) {
	const limit = 64 << 10
	th := newTwoHosts(t, []string{"big"}, []string{"big"}, func(a, b *bridge.Config) {
		a.MaxMessageSize, b.MaxMessageSize = limit, limit
	})
	ctx := ctxT(t)
	pa, err := iox.OpenPair(ctx, th.a, "big")
	require.NoError(t, err)
	defer pa.Close()
	eventually(t, "the import on B", func() bool { return th.logB.has("start", "import", "big") })
	pb, err := iox.OpenPair(ctx, th.b, "big")
	require.NoError(t, err)
	defer pb.Close()

	require.NoError(t, pa.Send(ctx, seqMsg(0, 8)))
	require.NoError(t, pa.Send(ctx, seqMsg(1, limit)))
	require.NoError(t, pa.Send(ctx, seqMsg(2, limit+1))) // the program's own limit is 64 MiB
	require.NoError(t, pa.Send(ctx, seqMsg(3, 8)))
	var got []int
	for len(got) < 3 {
		m, err := pb.Recv(ctx)
		if errors.Is(err, iox.ErrMessageTooLarge) {
			got = append(got, -1)
			continue
		}
		require.NoError(t, err, "after %v", got)
		got = append(got, int(m[0]))
		if int(m[0]) == 1 {
			require.Len(t, m, limit)
		}
	}
	require.Equal(t, 0, got[0])
	require.Equal(t, 1, got[1])
	if got[2] == -1 { // B was told of the message that could not cross
		m, err := pb.Recv(ctx)
		require.NoError(t, err)
		got = append(got, int(m[0]))
	}
	require.Equal(t, 3, got[len(got)-1], "the pair goes on after the message that could not cross: %v", got)
	tooLarge := func(l *statusLog) func() bool {
		return func() bool {
			for _, err := range l.errors() {
				if errors.Is(err, iox.ErrMessageTooLarge) {
					return true
				}
			}
			return false
		}
	}
	eventually(t, "A's bridge to report the message too large", tooLarge(th.logA))
	eventually(t, "B's bridge to report the message too large", tooLarge(th.logB))
	// and the other way
	require.NoError(t, pb.Send(ctx, seqMsg(7, 8)))
	m, err := pa.Recv(ctx)
	require.NoError(t, err)
	require.Equal(t, seqMsg(7, 8), m)
}

// Both programs close at once while messages cross both ways: each Close
// returns nil or ErrUndelivered, never hangs; what each program read is an
// in-order, duplicate-free prefix of what the other sent; the routes stop
// on both bridges, and the pair opened again carries nothing of the old one.
func TestAbusePairBothEndsCloseAtOnceWhileMessagesCross(t *testing.T) {
	th := newTwoHosts(t, []string{"duo"}, []string{"duo"}, nil)
	ctx := ctxT(t)
	for round := range 3 {
		pa, err := iox.OpenPair(ctx, th.a, "duo")
		require.NoError(t, err)
		eventually(t, "the import on B", func() bool { return len(th.logB.starts("import", "duo")) == round+1 })
		pb, err := iox.OpenPair(ctx, th.b, "duo")
		require.NoError(t, err)

		const n, size = 5000, 64
		var wg sync.WaitGroup
		type result struct {
			got int
			err error
		}
		reads := make([]result, 2)
		var crossed [2]atomic.Int64
		for i, p := range []*iox.Pair[[]byte]{pa, pb} {
			wg.Add(2)
			go func() {
				defer wg.Done()
				for k := range n {
					if err := p.Send(ctx, seqMsg(k, size)); err != nil {
						return
					}
				}
			}()
			go func() {
				defer wg.Done()
				got, err := recvPrefix(ctx, p, size, func(int) { crossed[i].Add(1) })
				reads[i] = result{got, err}
			}()
		}
		eventually(t, "messages to cross both ways", func() bool { return crossed[0].Load() > 10 && crossed[1].Load() > 10 })
		closes := make([]error, 2)
		var both sync.WaitGroup
		for i, p := range []*iox.Pair[[]byte]{pa, pb} {
			both.Add(1)
			go func() { defer both.Done(); closes[i] = p.Close() }()
		}
		both.Wait()
		wg.Wait()
		for i, err := range closes {
			if err != nil {
				require.ErrorIs(t, err, iox.ErrUndelivered, "Close of end %d", i)
			}
		}
		for i, r := range reads {
			require.Error(t, r.err, "end %d", i)
			require.False(t, errors.Is(r.err, iox.ErrProtocol), "end %d read out of order: %v", i, r.err)
			var e *iox.Error
			require.ErrorAs(t, r.err, &e, "end %d: %v", i, r.err)
		}
		eventually(t, "the export's stop", func() bool {
			return len(th.logA.starts("export", "duo")) == round+1 && count(th.logA, "stop", "export", "duo") == round+1
		})
		eventually(t, "the import's stop (it waited for ever for its attach announcements)", func() bool { return count(th.logB, "stop", "import", "duo") == round+1 })
	}
	// a new pair after all that carries only its own messages
	pa, err := iox.OpenPair(ctx, th.a, "duo")
	require.NoError(t, err)
	eventually(t, "the last import on B", func() bool { return len(th.logB.starts("import", "duo")) == 4 })
	pb, err := iox.OpenPair(ctx, th.b, "duo")
	require.NoError(t, err)
	for k := range 5 {
		require.NoError(t, pa.Send(ctx, seqMsg(k, 64)))
	}
	require.NoError(t, pa.Close())
	got, err := recvPrefix(ctx, pb, 64, nil)
	require.ErrorIs(t, err, iox.ErrPeerClosed)
	require.Equal(t, 5, got)
	require.NoError(t, pb.Close())
	require.Empty(t, th.logA.errors())
	require.Empty(t, th.logB.errors())
}

// A pair opened again on A right after its session ended: the program's new
// end may find the exporting bridge's end of the old session still there,
// ending (it read the old end's bye and relays it). The new end must not
// pair with it: its first Send, made before B's program opened, must not
// meet the old session's end, and each new session carries messages both
// ways and ends cleanly.
func TestAbusePairReopenedRightAfterItsSessionEnded(t *testing.T) {
	th := newTwoHosts(t, []string{"again"}, []string{"again"}, nil)
	const rounds, size = 40, 64
	pa, err := iox.OpenPair(context.Background(), th.a, "again")
	require.NoError(t, err)
	for r := range rounds {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		require.NoError(t, pa.Send(ctx, seqMsg(r, size)), "round %d: the program's first Send on A", r)
		eventually(t, "the import on B", func() bool { return len(th.logB.starts("import", "again")) == r+1 })
		pb, err := iox.OpenPair(ctx, th.b, "again")
		require.NoError(t, err)
		m, err := pb.Recv(ctx)
		require.NoError(t, err, "round %d: B's first message", r)
		require.Equal(t, seqMsg(r, size), m, "round %d", r)
		require.NoError(t, pb.Send(ctx, seqMsg(1000+r, size)))
		m, err = pa.Recv(ctx)
		require.NoError(t, err, "round %d: A's first message", r)
		require.Equal(t, seqMsg(1000+r, size), m, "round %d", r)
		require.NoError(t, pa.Close(), "round %d: A's bridge took everything", r)
		if r < rounds-1 {
			pa, err = iox.OpenPair(context.Background(), th.a, "again") // at once: the old session's end may still be there
			require.NoError(t, err)
		}
		_, err = pb.Recv(ctx)
		require.ErrorIs(t, err, iox.ErrPeerClosed, "round %d", r)
		require.NoError(t, pb.Close())
	}
	eventually(t, "the last export's stop", func() bool { return count(th.logA, "stop", "export", "again") == rounds })
	eventually(t, "the last import's stop", func() bool { return count(th.logB, "stop", "import", "again") == rounds })
	require.Empty(t, th.logA.errors())
	require.Empty(t, th.logB.errors())
}
