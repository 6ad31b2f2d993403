package iox_test

import (
	"context"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/iox-go/iox"
)

// recvParked reports whether a goroutine of this process is blocked in a
// subscriber's Recv, waiting in its hub (armed and parked).
func recvParked() bool {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	for _, g := range strings.Split(string(buf), "\n\n") {
		header, stack, _ := strings.Cut(g, "\n")
		if strings.Contains(stack, "Sub[...]).Recv(") && strings.Contains(stack, "hub).wait(") &&
			!strings.Contains(header, "[running") && !strings.Contains(header, "[runnable") {
			return true
		}
	}
	return false
}

// A subscriber that joins and parks while SendLoan goes out (after the loan's
// look at the subscribers' room, before the send) gets the loan, and is woken
// for it: the publisher sees that the loan reached more subscribers than it
// knew of.
func TestSendLoanWakesASubscriberThatJoinedMeanwhile(t *testing.T) {
	ns := newNamespace(t)
	ctx := advCtx(t)
	opts := []iox.Option{iox.BufferSize(2), iox.WithChanCap(1)}
	pub, err := iox.OpenPub(ctx, ns.node(t), "late-loan", opts...)
	require.NoError(t, err)
	s1, err := iox.OpenSub(ctx, ns.node(t), "late-loan", opts...)
	require.NoError(t, err)
	defer s1.Close()
	waitSubscribers(t, pub, 1)
	// The first subscriber's keeper takes as much as it holds (queue and
	// channel: 3) and then waits without marking its word: nobody reads it,
	// so the loan's own wake-up is for the newcomer alone.
	for i := range 3 {
		require.NoError(t, pub.Send(ctx, []byte{byte(i)}))
	}
	eventually(t, "the first subscriber's keeper to take 3", func() bool { return s1.Taken() == 3 })

	var s2 *iox.Sub[[]byte]
	got := make(chan error, 1)
	pub.AfterLoanRoom(func(room, known bool) {
		if s2 != nil {
			return
		}
		require.True(t, room && known, "the first subscriber has room for the loan")
		s2, err = iox.OpenSub(ctx, ns.node(t), "late-loan", opts...)
		require.NoError(t, err)
		go func() {
			rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			v, err := s2.Recv(rctx)
			if err == nil && string(v) != "loan" {
				err = &iox.Error{Op: "test", Detail: "got " + string(v)}
			}
			got <- err
		}()
		eventually(t, "the new subscriber to park", recvParked)
	})
	l, err := pub.Loan(ctx, 4)
	require.NoError(t, err)
	copy(l.Bytes(), "loan")
	require.NoError(t, pub.SendLoan(ctx, l))
	require.NoError(t, <-got, "the subscriber that joined got the loan and was woken for it")
	defer s2.Close()
	for range 4 {
		_, err := s1.Recv(ctx)
		require.NoError(t, err)
	}
	require.NoError(t, pub.Close())
}

// A client whose server closed (its process lives on) and was replaced by a
// server in another process, while no call waited, watches the new one: a
// call that the new server holds when it crashes fails with ErrPeerCrashed.
// The number of servers is the same before and after.
func TestRPCReplacedServerCrashFailsCall(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	cl, err := iox.OpenClient(context.Background(), node, "swap", iox.Raw{}, iox.Raw{})
	require.NoError(t, err)
	defer cl.Close()

	sctx, scancel := context.WithCancel(context.Background())
	srv, err := iox.OpenServer(sctx, ns.node(t), "swap", iox.Raw{}, iox.Raw{})
	require.NoError(t, err)
	served := make(chan error, 1)
	go func() {
		q, err := srv.Recv(sctx)
		if err == nil {
			err = q.Reply(sctx, []byte("here"))
		}
		served <- err
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	v, err := cl.Call(ctx, []byte("1"))
	require.NoError(t, err)
	require.Equal(t, "here", string(v))
	require.NoError(t, <-served)
	require.NoError(t, srv.Close())
	scancel()

	c := spawn(t, ns, "rpc-server", "IOX_SERVICE=swap", "IOX_RPC_MODE=crash")
	c.expect("ready")
	_, err = cl.Call(ctx, []byte("7"))
	require.ErrorIs(t, err, iox.ErrPeerCrashed)
	require.NoError(t, ctx.Err(), "the crash was seen before the context ended")
	err = <-c.done // the child killed itself
	c.done <- err
	require.Error(t, err)
}
