package iox_test

// Adversarial tests of the publishers' view of their subscribers' wait words.

import (
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/iox-go/iox"
)

// A subscriber that joins while the publisher sends is known by its wait word
// once it has joined: SendLoan then knows every subscriber's room and sends
// in place (the Pub doc: "a copy while a subscriber cannot tell (one that just
// joined)"). A publisher that looked at the subscribers between the newcomer's
// port and its word appearing kept it as one without a word for good: every
// loan went as a copy, and every send notified.
func TestAdvJoinDuringSendsIsKnownByItsWord(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := advCtx(t)
	for round := range loops(30, 10, 300) {
		name := fmt.Sprintf("join%d", round)
		pub, err := iox.OpenPub(ctx, node, name)
		require.NoError(t, err)
		var known []bool
		pub.AfterLoanRoom(func(_, k bool) { known = append(known, k) })
		a, err := iox.OpenSub(ctx, node, name)
		require.NoError(t, err)
		waitSubscribers(t, pub, 1)
		readers := sync.WaitGroup{}
		marks := []chan string{make(chan string, 16), make(chan string, 16)}
		read := func(s *iox.Sub[[]byte], marks chan<- string) {
			defer readers.Done()
			for {
				v, err := s.Recv(ctx)
				if err != nil {
					close(marks)
					return
				}
				if len(v) > 0 && v[0] == 'm' {
					marks <- string(v)
				}
			}
		}
		readers.Add(1)
		go read(a, marks[0])
		stop := make(chan struct{})
		sent := make(chan error, 1)
		go func() {
			for {
				select {
				case <-stop:
					sent <- nil
					return
				default:
				}
				if err := pub.Send(ctx, []byte("x")); err != nil {
					sent <- err
					return
				}
			}
		}()
		b, err := iox.OpenSub(ctx, node, name)
		require.NoError(t, err)
		readers.Add(1)
		go read(b, marks[1])
		close(stop)
		require.NoError(t, <-sent)
		for i := range 3 {
			mark := fmt.Sprintf("m%d", i)
			require.NoError(t, pub.Send(ctx, []byte(mark)))
			for _, m := range marks {
				require.Equal(t, mark, <-m)
			}
			l, err := pub.Loan(ctx, 8)
			require.NoError(t, err)
			copy(l.Bytes(), "loan")
			require.NoError(t, pub.SendLoan(ctx, l))
		}
		require.Len(t, known, 3)
		require.True(t, known[2], "round %d: both subscribers took the last message, yet the publisher cannot tell their room", round)
		require.NoError(t, a.Close())
		require.NoError(t, b.Close())
		readers.Wait()
		pub.Close()
	}
}
