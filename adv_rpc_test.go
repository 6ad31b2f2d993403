package iox_test

// Adversarial tests of the request/response adapters' crash reporting.

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/iox-go/iox"
)

// A call held by a server whose process is killed fails with ErrPeerCrashed
// even when another server joined after the call was sent: that server never
// had the request, so every server that had it died (the Call doc: "every
// server that had the request died"). Counting the servers alive when the
// crash is seen takes the newcomer for one that may still answer.
func TestAdvRPCCrashWithLateSecondServer(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	cl, err := iox.OpenClient(context.Background(), node, "late-second", iox.Raw{}, iox.Raw{}, iox.MaxServers(2))
	require.NoError(t, err)
	defer cl.Close()
	for round := range loops(3, 2, 20) {
		first := spawn(t, ns, "rpc-manual", "IOX_SERVICE=late-second")
		first.expect("ready")
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		out := make(chan error, 1)
		go func() {
			_, err := cl.Call(ctx, []byte("held"))
			out <- err
		}()
		first.expect("got held")
		second := spawn(t, ns, "rpc-manual", "IOX_SERVICE=late-second")
		second.expect("ready")
		first.kill()
		err := <-out
		cancel()
		require.ErrorIs(t, err, iox.ErrPeerCrashed, "round %d: %v", round, err)
		second.wait()
	}
}

// A server that never notifies (a plain iceoryx2 server, as one in another
// language is) joins while a call waits as the lead for an iox server: a
// later call that the newcomer answers returns that answer, within the poll
// interval. (The lead decided when it began to wait that every server
// notifies, and waited without a timeout; the later call waited for it.)
func TestAdvRPCForeignServerJoinsWhileALeadWaits(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := advCtx(t)
	const name = "foreign-late"
	cl, err := iox.OpenClient(ctx, node, name, iox.Raw{}, iox.Raw{}, iox.MaxServers(2), iox.WithSpin(0))
	require.NoError(t, err)
	defer cl.Close()
	srv, err := iox.OpenServer(ctx, node, name, iox.Raw{}, iox.Raw{})
	require.NoError(t, err)
	defer srv.Close()

	first := make(chan error, 1)
	go func() {
		_, err := cl.Call(ctx, []byte("one"))
		first <- err
	}()
	q, err := srv.Recv(ctx)
	require.NoError(t, err)
	require.Equal(t, "one", string(q.Value))
	defer q.Close()
	waitParked(t, "iox.(*Caller[...]).lead", 1)

	svc, err := node.RequestResponse(name, iox.OpenOnly())
	require.NoError(t, err)
	defer svc.Close()
	plain, err := svc.Server()
	require.NoError(t, err)
	defer plain.Close()

	second := make(chan error, 1)
	go func() {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		v, err := cl.Call(cctx, []byte("two"))
		if err == nil && string(v) != "two!" {
			err = &iox.Error{Op: "test", Detail: "answer " + string(v)}
		}
		second <- err
	}()
	var req *iox.ActiveRequest
	eventually(t, "the plain server to get the request", func() bool {
		r, n, ok, err := plain.TryReceive(make([]byte, 16))
		require.NoError(t, err)
		if ok {
			require.Equal(t, 3, n)
			req = r
		}
		return ok
	})
	waitParked(t, "iox.(*Caller[...]).park", 2)
	require.NoError(t, req.Send([]byte("two!")))
	require.NoError(t, <-second, "the answer of the server that does not notify arrives")
	require.NoError(t, req.Close())
	q2, err := srv.Recv(ctx) // the iox server got the second request too
	require.NoError(t, err)
	q2.Close()
	require.NoError(t, q.Reply(ctx, []byte("one!")))
	require.NoError(t, <-first)
}

// A second server joins after a call was sent to the first and before the
// call's first listing of the servers, which therefore names both; the first
// is killed without answering. Its crash ends the call with ErrPeerCrashed
// (every server that had the request died), not ErrNoResponse, although a
// server is alive: the newcomer never had the request.
func TestAdvRPCCrashWithSecondServerBeforeTheListing(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	const name = "second-before-listing"
	cl, err := iox.OpenClient(context.Background(), node, name, iox.Raw{}, iox.Raw{}, iox.MaxServers(2), iox.WithSpin(0))
	require.NoError(t, err)
	defer cl.Close()
	hold, listing, proceed := holdListing(cl)
	first := spawn(t, ns, "rpc-manual", "IOX_SERVICE="+name)
	first.expect("ready")
	hold.Store(true)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out := make(chan error, 1)
	go func() {
		_, err := cl.Call(ctx, []byte("held"))
		out <- err
	}()
	first.expect("got held")
	<-listing // the call was sent and is about to list the servers
	second := spawn(t, ns, "rpc-manual", "IOX_SERVICE="+name)
	second.expect("ready")
	close(proceed)
	waitParked(t, "iox.(*Caller[...]).lead", 1) // the listing (of both) ended
	first.kill()
	err = <-out
	require.ErrorIs(t, err, iox.ErrPeerCrashed, "%v", err)
	second.wait()
}

// A call sent after the client counted its server's crash, while the dead
// server's port is still there, goes to that port, which is removed before
// the call lists the servers: the listing names none. The only server that
// had the request died, so the call fails with ErrPeerCrashed, not
// ErrNoResponse (which says a server ended it without an answer).
func TestAdvRPCCallToACrashedServerWhosePortIsBeingRemoved(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	const name = "crashed-being-removed"
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cl, err := iox.OpenClient(ctx, node, name, iox.Raw{}, iox.Raw{}, iox.WithSpin(0))
	require.NoError(t, err)
	defer cl.Close()
	counted, cleanup := make(chan struct{}, 1), make(chan struct{})
	cl.BeforeCrashCleanup(func() {
		counted <- struct{}{}
		<-cleanup
	})
	hold, listing, proceed := holdListing(cl)
	srv := spawn(t, ns, "rpc-manual", "IOX_SERVICE="+name)
	srv.expect("ready")
	svc, err := node.RequestResponse(name, iox.OpenOnly())
	require.NoError(t, err)
	defer svc.Close()
	first := make(chan error, 1)
	go func() {
		_, err := cl.Call(ctx, []byte("first"))
		first <- err
	}()
	srv.expect("got first")
	waitParked(t, "iox.(*Caller[...]).lead", 1) // the call listed the server, whose process the client watches
	srv.kill()
	<-counted // the crash is counted; the dead server's port is still there
	hold.Store(true)
	second := make(chan error, 1)
	go func() {
		_, err := cl.Call(ctx, []byte("second"))
		second <- err
	}()
	select {
	case <-listing: // the request went to the dead server's port
	case err := <-second: // the call ended before it listed the servers
		second <- err
	}
	close(cleanup)
	eventually(t, "the dead server's port to be removed", func() bool {
		_, servers, err := svc.Counts()
		return err == nil && servers == 0
	})
	close(proceed)
	require.ErrorIs(t, <-first, iox.ErrPeerCrashed)
	err = <-second
	require.ErrorIs(t, err, iox.ErrPeerCrashed, "%v", err)
}

// Two clients of one process wait for calls that the server holds when its
// process is killed. Their watches of the server's process fire one after
// the other, in no set order; when the other client's fires first, it
// removes the server's port before the late client's own watch has fired,
// and the late client's calls may see their end meanwhile (here: its lead's
// context ends, and the lead looks into the held call). The first client
// counted the crash in the late one before it removed the port, so the held
// call fails with ErrPeerCrashed, not ErrNoResponse. Rounds go on until
// that order came once.
func TestAdvRPCCrashSeenFirstByAnotherClientOfTheProcess(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var exercised atomic.Bool
	for round := 0; !exercised.Load(); round++ {
		require.Less(t, round, 30, "the other client's watch never fired first")
		name := fmt.Sprintf("crash-seen-by-another-%d", round)
		first, err := iox.OpenClient(ctx, node, name, iox.Raw{}, iox.Raw{}, iox.WithSpin(0))
		require.NoError(t, err)
		late, err := iox.OpenClient(ctx, node, name, iox.Raw{}, iox.Raw{}, iox.WithSpin(0))
		require.NoError(t, err)
		svc, err := node.RequestResponse(name, iox.OpenOnly())
		require.NoError(t, err)
		pctx, poke := context.WithCancel(ctx)
		heldDone := make(chan struct{})
		late.AtServerExit(func() { // on the goroutine that runs the watches, one after the other
			if _, servers, err := svc.Counts(); err != nil || servers > 0 {
				return // this watch fired first: the client counts the crash itself
			}
			exercised.Store(true)
			poke()
			select {
			case <-heldDone:
			case <-ctx.Done():
			}
		})
		srv := spawn(t, ns, "rpc-manual", "IOX_SERVICE="+name)
		srv.expect("ready")
		call := func(cl *iox.Caller[[]byte, []byte], ctx context.Context, req string, done chan struct{}) chan error {
			out := make(chan error, 1)
			go func() {
				_, err := cl.Call(ctx, []byte(req))
				out <- err
				if done != nil {
					close(done)
				}
			}()
			srv.expect("got " + req)
			return out
		}
		lead := call(late, pctx, "lead", nil)
		waitParked(t, "iox.(*Caller[...]).lead", 1)
		held := call(late, ctx, "held", heldDone)
		waitParked(t, "iox.(*Caller[...]).park", 2)
		other := call(first, ctx, "other", nil)
		waitParked(t, "iox.(*Caller[...]).lead", 2)
		srv.kill()
		require.ErrorIs(t, <-other, iox.ErrPeerCrashed, "round %d", round)
		err = <-held
		require.ErrorIs(t, err, iox.ErrPeerCrashed, "round %d: %v", round, err)
		err = <-lead // held too, unless its context ended first
		require.True(t, errors.Is(err, iox.ErrPeerCrashed) || errors.Is(err, context.Canceled), "round %d: %v", round, err)
		poke()
		require.NoError(t, svc.Close())
		require.NoError(t, late.Close())
		require.NoError(t, first.Close())
	}
}

// holdListing makes the client's next listing of its servers, once hold is
// set, stop as it begins: listing receives then, and closing proceed lets it
// go on.
func holdListing(cl interface{ BeforeListing(func()) }) (hold *atomic.Bool, listing, proceed chan struct{}) {
	hold, listing, proceed = new(atomic.Bool), make(chan struct{}, 1), make(chan struct{})
	cl.BeforeListing(func() {
		if hold.CompareAndSwap(true, false) {
			listing <- struct{}{}
			<-proceed
		}
	})
	return hold, listing, proceed
}
