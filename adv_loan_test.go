package iox_test

// Adversarial tests of loaned messages on lossless publish-subscribe channels.

import (
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/iox-go/iox"
)

// A subscriber closing while SendLoan goes out in place does not make the
// loan fail for the subscriber that stays (which got it), and costs that
// subscriber no later message: it receives exactly the messages whose sends
// returned nil, in order.
func TestAdvSendLoanWhileASubscriberCloses(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := advCtx(t)
	pub, err := iox.OpenPub(ctx, node, "loan-leave")
	require.NoError(t, err)
	defer pub.Close()
	inPlace := 0
	pub.AfterLoanRoom(func(room, known bool) {
		if room && known {
			inPlace++
		}
	})
	stay, err := iox.OpenSub(ctx, node, "loan-leave")
	require.NoError(t, err)
	defer stay.Close()
	var mu sync.Mutex
	var got []string
	stayed := make(chan error, 1)
	go func() {
		for {
			v, err := stay.Recv(ctx)
			if err != nil {
				stayed <- err
				return
			}
			mu.Lock()
			got = append(got, string(v))
			mu.Unlock()
		}
	}()
	var accepted []string
	send := func(m string) {
		l, err := pub.Loan(ctx, len(m))
		require.NoError(t, err)
		copy(l.Bytes(), m)
		if err := pub.SendLoan(ctx, l); err == nil {
			accepted = append(accepted, m)
		} else {
			require.ErrorIs(t, err, iox.ErrUndelivered)
		}
	}
	k := 0
	for round := range loops(100, 30, 1000) {
		leaving, err := iox.OpenSub(ctx, node, "loan-leave")
		require.NoError(t, err)
		waitSubscribers(t, pub, 2)
		left := make(chan struct{})
		go func() {
			defer close(left)
			for {
				if _, err := leaving.Recv(ctx); err != nil {
					return
				}
			}
		}()
		// both take a message of this publisher, so that loans go in place
		for i := 0; i < 3; i++ {
			send(fmt.Sprint(k))
			k++
		}
		eventually(t, "the leaving subscriber to take them", func() bool { return leaving.Taken() >= 3 })
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
			send(fmt.Sprint(k))
			k++
		}
		<-left
		_ = round
	}
	send("end")
	eventually(t, "the staying subscriber to get the last message", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) > 0 && got[len(got)-1] == "end"
	})
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, accepted, got, "the staying subscriber gets exactly the messages whose sends succeeded (%d loans in place)", inPlace)
}
