package iox_test

// TryRecv: the next message when one has arrived, never a wait for one; what
// the receiving side's keeper took while nobody received comes out too.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/iox-go/iox"
)

func init() { children["tryrecv-pub"] = childTryRecvPub }

// childTryRecvPub opens a publisher channel on IOX_SERVICE (peer timeout
// IOX_PEER_TIMEOUT, 1 s by default), waits for a subscriber, sends IOX_COUNT
// sequence numbers, flushes them into shared memory, says "sent" and closes
// once the parent says so.
func childTryRecvPub() error {
	node, err := nsFromEnv().childNode()
	if err != nil {
		return err
	}
	defer node.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	pub, err := iox.OpenPub(ctx, node, os.Getenv("IOX_SERVICE"), iox.WithPeerTimeout(envDur("IOX_PEER_TIMEOUT", time.Second)))
	if err != nil {
		return err
	}
	defer pub.Close()
	if !waitUntil(20*time.Second, func() bool { return pub.Subscribers() > 0 }) {
		return errors.New("no subscriber")
	}
	for i := range uint64(envInt("IOX_COUNT")) {
		if err := pub.Send(ctx, seqMsg(i)); err != nil {
			return fmt.Errorf("send %d: %w", i, err)
		}
	}
	if err := pub.Flush(ctx); err != nil {
		return err
	}
	fmt.Println("sent")
	parentSays()
	return nil
}

// A pair end that nobody reads: its keeper takes the peer's messages out of
// shared memory (the peer's Close confirms them), and TryRecv returns each of
// them in order without waiting, then the peer's end.
func TestPairTryRecvTakesWhatTheKeeperHolds(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := advCtx(t)
	p, err := iox.OpenPair(ctx, node, "try-pair", iox.WithPeerTimeout(200*time.Millisecond))
	require.NoError(t, err)
	defer p.Close()

	v, ok, err := p.TryRecv(ctx)
	require.NoError(t, err, "nothing has arrived: no error")
	require.False(t, ok, "nothing has arrived")
	require.Nil(t, v)

	const n = 40 // fewer than the keeper takes while nobody receives (WithChanCap's 64)
	c := spawn(t, ns, "abuse-pair-send", "IOX_SERVICE=try-pair", fmt.Sprintf("IOX_COUNT=%d", n), "IOX_SIZE=8")
	t.Cleanup(func() { c.cmd.Process.Kill() })
	c.expect("ready")
	require.Equal(t, "nil", c.expectPrefix("closed "), "the peer's Close: this end took every message out of shared memory")
	c.wait()
	for i := range uint64(n) {
		m, ok, err := p.TryRecv(ctx)
		require.NoError(t, err, "message %d", i)
		require.True(t, ok, "message %d was taken already: it is there", i)
		require.Equal(t, i, binary.LittleEndian.Uint64(m), "in order")
	}
	for range 2 {
		_, ok, err = p.TryRecv(ctx)
		require.False(t, ok)
		require.ErrorIs(t, err, iox.ErrPeerClosed, "after the peer's messages, its end")
	}
}

// A subscriber's TryRecv takes what a publisher in another process flushed into
// shared memory, in order, and then reports that nothing more waits.
func TestSubTryRecvTakesWhatWaits(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := advCtx(t)
	sub, err := iox.OpenSub(ctx, node, "try-sub")
	require.NoError(t, err)
	defer sub.Close()
	const n = 200
	c := spawn(t, ns, "tryrecv-pub", "IOX_SERVICE=try-sub", fmt.Sprintf("IOX_COUNT=%d", n))
	t.Cleanup(func() { c.cmd.Process.Kill() })
	c.expect("sent")
	for i := range uint64(n) {
		m, ok, err := sub.TryRecv(ctx)
		require.NoError(t, err, "message %d", i)
		require.True(t, ok, "message %d is in shared memory or taken already", i)
		require.Equal(t, i, binary.LittleEndian.Uint64(m), "in order")
	}
	_, ok, err := sub.TryRecv(ctx)
	require.NoError(t, err)
	require.False(t, ok, "every message was taken")
	c.say("close")
	c.wait()
	require.NoError(t, sub.Close())
	_, ok, err = sub.TryRecv(ctx)
	require.False(t, ok)
	require.ErrorIs(t, err, iox.ErrClosed)
}

// A puller's TryRecv takes what a pusher in another process routed to it, in
// order and each once: the pusher's Close then confirms every message, none
// sent again.
func TestPullTryRecvTakesWhatWasRouted(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := advCtx(t)
	pull, err := iox.OpenPull(ctx, node, "try-pull")
	require.NoError(t, err)
	defer pull.Close()
	_, ok, err := pull.TryRecv(ctx)
	require.NoError(t, err)
	require.False(t, ok, "nothing has arrived")

	const n = 50
	c := spawn(t, ns, "pipe-push", "IOX_SERVICE=try-pull", "IOX_PULLERS=1", fmt.Sprintf("IOX_COUNT=%d", n))
	t.Cleanup(func() { c.cmd.Process.Kill() })
	c.expect("sent")
	got := uint64(0)
	eventually(t, "every message taken", func() bool {
		for {
			m, ok, err := pull.TryRecv(ctx)
			require.NoError(t, err, "message %d", got)
			if !ok {
				return got == n
			}
			require.Equal(t, got, binary.LittleEndian.Uint64(m), "in order, each once")
			got++
		}
	})
	c.say("close")
	require.Equal(t, "ok resent 0", c.expectPrefix("closed "), "the pusher's Close: every message handed over, none sent again")
	c.wait()
	require.NoError(t, pull.Close())
	_, ok, err = pull.TryRecv(ctx)
	require.False(t, ok)
	require.ErrorIs(t, err, iox.ErrClosed)
	//nolint:staticcheck // a nil context on purpose
	_, _, err = pull.TryRecv(nil)
	requireTyped(t, err, "TryRecv with a nil context")
	require.ErrorIs(t, err, iox.ErrInvalidArgument)
}

// While a Recv waits for a message, TryRecv waits for its turn only until its
// context ends, and takes nothing; afterwards it has the turn at once. A nil
// context is a typed error, and after Close it returns ErrClosed.
func TestTryRecvWaitsOnlyForItsTurn(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := advCtx(t)
	p, err := iox.OpenPair(ctx, node, "try-turn")
	require.NoError(t, err)
	defer p.Close()

	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := p.Recv(rctx)
		done <- err
	}()
	eventually(t, "the Recv waits", func() bool { return goroutinesIn("iox.(*receiver[...]).next", true) == 1 })
	tctx, tcancel := context.WithTimeout(ctx, 50*time.Millisecond)
	_, ok, err := p.TryRecv(tctx)
	tcancel()
	require.False(t, ok)
	require.ErrorIs(t, err, context.DeadlineExceeded, "the turn was Recv's until the context ended")
	cancel()
	require.ErrorIs(t, <-done, context.Canceled)

	_, ok, err = p.TryRecv(ctx)
	require.NoError(t, err)
	require.False(t, ok)
	//nolint:staticcheck // a nil context on purpose
	_, _, err = p.TryRecv(nil)
	requireTyped(t, err, "TryRecv with a nil context")
	require.ErrorIs(t, err, iox.ErrInvalidArgument)

	require.NoError(t, p.Close())
	_, ok, err = p.TryRecv(ctx)
	require.False(t, ok)
	require.ErrorIs(t, err, iox.ErrClosed)
}
