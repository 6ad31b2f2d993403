package iox_test

// Adversarial tests of lossy publish-subscribe channels.

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/iox-go/iox"
)

// A lossy Send succeeds while a subscriber closes at the same moment: the
// subscriber leaving is no failure of the send (the other subscriber got the
// message), and the subscriber that stays receives the newest message.
func TestAdvLossySendWhileASubscriberCloses(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := advCtx(t)
	pub, err := iox.OpenPub(ctx, node, "leaving", iox.Lossy())
	require.NoError(t, err)
	defer pub.Close()
	stay, err := iox.OpenSub(ctx, node, "leaving", iox.Lossy())
	require.NoError(t, err)
	defer stay.Close()
	sent := 0
	for round := range loops(100, 30, 1000) {
		leaving, err := iox.OpenSub(ctx, node, "leaving", iox.Lossy())
		require.NoError(t, err)
		closed := make(chan struct{})
		go func() {
			defer close(closed)
			leaving.Close()
		}()
		for done := false; !done; {
			select {
			case <-closed:
				done = true
			default:
			}
			require.NoError(t, pub.Send(ctx, []byte(fmt.Sprint(sent))), "round %d, message %d", round, sent)
			sent++
		}
	}
	var last []byte
	for {
		v, err := stay.Recv(ctx)
		require.NoError(t, err)
		if last = v; string(v) == fmt.Sprint(sent-1) {
			break
		}
	}
	require.Equal(t, fmt.Sprint(sent-1), string(last))
}

// A lossy subscriber that parks is woken by the next send also when it
// replaced another one (same count of subscribers, other membership), and
// whether the one it replaced closes before, during or after that send. The
// subscribers never poll (WithPoll of an hour), so a lost wake-up hangs.
func TestAdvLossySwapWakes(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := advCtx(t)
	rnd := seeded(t)
	pub, err := iox.OpenPub(ctx, node, "swap", iox.Lossy())
	require.NoError(t, err)
	defer pub.Close()
	open := func() *iox.Sub[[]byte] {
		s, err := iox.OpenSub(ctx, node, "swap", iox.Lossy(), iox.WithPoll(time.Hour), iox.WithSpin(0))
		require.NoError(t, err)
		return s
	}
	old := open()
	for round := range loops(200, 50, 2000) {
		sub := open()
		got := make(chan error, 1)
		want := fmt.Sprint(round)
		go func() {
			rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			v, err := sub.Recv(rctx)
			if err == nil && string(v) != want {
				err = fmt.Errorf("got %q, want %q", v, want)
			}
			got <- err
		}()
		waitParked(t, "iox.(*hub).poll", 1)
		var wg sync.WaitGroup
		how := rnd.IntN(3)
		switch how {
		case 0:
			require.NoError(t, old.Close())
		case 1:
			wg.Add(1)
			go func() { defer wg.Done(); old.Close() }()
		}
		require.NoError(t, pub.Send(ctx, []byte(want)), "round %d, case %d", round, how)
		old.Close()
		wg.Wait()
		err := <-got
		if errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("round %d: the parked subscriber was never woken", round)
		}
		require.NoError(t, err, "round %d", round)
		old = sub
	}
	require.NoError(t, old.Close())
}

// A lossy SendLoan, like a lossy Send, succeeds while no subscriber is there:
// publishing to nobody loses nothing that anybody was owed (a lossless
// SendLoan succeeds then too). It reported ErrUndelivered.
func TestAdvLossySendLoanWithoutSubscribers(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := advCtx(t)
	for _, lossy := range []bool{false, true} {
		name := fmt.Sprintf("nobody-%v", lossy)
		var opts []iox.Option
		if lossy {
			opts = append(opts, iox.Lossy())
		}
		pub, err := iox.OpenPub(ctx, node, name, opts...)
		require.NoError(t, err)
		require.NoError(t, pub.Send(ctx, []byte("sent")), "lossy %v", lossy)
		l, err := pub.Loan(ctx, 4)
		require.NoError(t, err)
		copy(l.Bytes(), "loan")
		require.NoError(t, pub.SendLoan(ctx, l), "lossy %v: a loan sent to nobody", lossy)
		sub, err := iox.OpenSub(ctx, node, name, opts...)
		require.NoError(t, err)
		waitSubscribers(t, pub, 1)
		l, err = pub.Loan(ctx, 4)
		require.NoError(t, err)
		copy(l.Bytes(), "seen")
		require.NoError(t, pub.SendLoan(ctx, l), "lossy %v", lossy)
		v, err := sub.Recv(ctx)
		require.NoError(t, err)
		require.Equal(t, "seen", string(v), "lossy %v", lossy)
		require.NoError(t, sub.Close())
		require.NoError(t, pub.Close())
	}
}
