package iox_test

// Nil arguments: every entry point that takes a context, a node, a codec, a
// handler or a handle refuses nil with an *iox.Error of kind
// ErrInvalidArgument naming the argument, and never panics. A constructor
// refuses before it creates anything: nothing appears in /dev/shm and no
// goroutine is left.

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/iox-go/iox"
)

// nilCase is one call of an entry point with one argument nil.
type nilCase struct {
	name string
	says string // what the error's detail names
	call func() error
}

// refusesNil runs c and checks that it returned a typed ErrInvalidArgument
// naming the nil argument, without a panic.
func refusesNil(t *testing.T, c nilCase) {
	t.Helper()
	var err error
	func() {
		defer func() {
			if p := recover(); p != nil {
				t.Fatalf("%s panicked: %v", c.name, p)
			}
		}()
		err = c.call()
	}()
	var e *iox.Error
	require.ErrorAs(t, err, &e, c.name)
	require.ErrorIs(t, err, iox.ErrInvalidArgument, c.name)
	require.Contains(t, e.Detail, c.says, "%s: %v", c.name, err)
}

// closeIf closes what an entry point returned when it did not refuse.
func closeIf(h interface{ Close() error }, err error) error {
	if err == nil {
		h.Close()
	}
	return err
}

type nilArgPoint struct {
	X, Y int32
}

// derefCodec is a codec whose methods use their receiver: each panics on a
// nil *derefCodec.
type derefCodec struct{ pt iox.PayloadType }

func (c *derefCodec) Append(dst []byte, v int) ([]byte, error) {
	return append(dst, byte(c.pt.Size), byte(v)), nil
}
func (c *derefCodec) Decode(b []byte) (int, error) { return int(b[len(b)-1]) + c.pt.Size*0, nil }
func (c *derefCodec) PayloadType() iox.PayloadType { return c.pt }

// funcCodec is a codec made of a function; a nil one panics when called.
type funcCodec func(dst []byte, v int) []byte

func (f funcCodec) Append(dst []byte, v int) ([]byte, error) { return f(dst, v), nil }
func (f funcCodec) Decode(b []byte) (int, error)             { return len(f(nil, 0)), nil }

// panicTyper is a codec whose PayloadType panics.
type panicTyper struct{}

func (panicTyper) Append(dst []byte, v int) ([]byte, error) { return append(dst, byte(v)), nil }
func (panicTyper) Decode(b []byte) (int, error)             { return int(b[0]), nil }
func (panicTyper) PayloadType() iox.PayloadType             { panic("no type today") }

// The constructors, each with each of its arguments nil in turn.
func TestNilArgumentsOfConstructors(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	bg := context.Background()
	var noCtx context.Context
	var noNode *iox.Node
	point := must(iox.Fixed[nilArgPoint]("NilArgPoint"))
	i32 := must(iox.Fixed[int32]("i32"))
	entries := []iox.BlackboardEntry[int32]{iox.Entry(int32(1), i32, 0)}
	cases := []nilCase{
		{"OpenPair ctx", "ctx", func() error { return closeIf(iox.OpenPair(noCtx, node, "p")) }},
		{"OpenPair node", "node", func() error { return closeIf(iox.OpenPair(bg, noNode, "p")) }},
		{"OpenPair OnDrop", "OnDrop", func() error { return closeIf(iox.OpenPair(bg, node, "p", iox.OnDrop(nil))) }},
		{"OpenPairOf ctx", "ctx", func() error { return closeIf(iox.OpenPairOf(noCtx, node, "p", point)) }},
		{"OpenPairOf node", "node", func() error { return closeIf(iox.OpenPairOf(bg, noNode, "p", point)) }},
		{"OpenPairOf codec", "codec", func() error { return closeIf(iox.OpenPairOf[int](bg, node, "p", nil)) }},
		{"OpenPairOf zero FixedCodec", "codec", func() error {
			return closeIf(iox.OpenPairOf(bg, node, "p", iox.FixedCodec[nilArgPoint]{}))
		}},
		{"OpenPub ctx", "ctx", func() error { return closeIf(iox.OpenPub(noCtx, node, "s")) }},
		{"OpenPub node", "node", func() error { return closeIf(iox.OpenPub(bg, noNode, "s")) }},
		{"OpenPubOf ctx", "ctx", func() error { return closeIf(iox.OpenPubOf(noCtx, node, "s", point)) }},
		{"OpenPubOf node", "node", func() error { return closeIf(iox.OpenPubOf(bg, noNode, "s", point)) }},
		{"OpenPubOf codec", "codec", func() error { return closeIf(iox.OpenPubOf[int](bg, node, "s", nil)) }},
		{"OpenPubOf zero FixedCodec", "codec", func() error {
			return closeIf(iox.OpenPubOf(bg, node, "s", iox.FixedCodec[nilArgPoint]{}))
		}},
		{"OpenSub ctx", "ctx", func() error { return closeIf(iox.OpenSub(noCtx, node, "s")) }},
		{"OpenSub node", "node", func() error { return closeIf(iox.OpenSub(bg, noNode, "s")) }},
		{"OpenSub OnDrop", "OnDrop", func() error { return closeIf(iox.OpenSub(bg, node, "s", iox.OnDrop(nil))) }},
		{"OpenSubOf ctx", "ctx", func() error { return closeIf(iox.OpenSubOf(noCtx, node, "s", point)) }},
		{"OpenSubOf node", "node", func() error { return closeIf(iox.OpenSubOf(bg, noNode, "s", point)) }},
		{"OpenSubOf codec", "codec", func() error { return closeIf(iox.OpenSubOf[int](bg, node, "s", nil)) }},
		{"OpenSubOf zero FixedCodec", "codec", func() error {
			return closeIf(iox.OpenSubOf(bg, node, "s", iox.FixedCodec[nilArgPoint]{}))
		}},
		{"OpenPush ctx", "ctx", func() error { return closeIf(iox.OpenPush(noCtx, node, "w")) }},
		{"OpenPush node", "node", func() error { return closeIf(iox.OpenPush(bg, noNode, "w")) }},
		{"OpenPushOf ctx", "ctx", func() error { return closeIf(iox.OpenPushOf(noCtx, node, "w", point)) }},
		{"OpenPushOf node", "node", func() error { return closeIf(iox.OpenPushOf(bg, noNode, "w", point)) }},
		{"OpenPushOf codec", "codec", func() error { return closeIf(iox.OpenPushOf[int](bg, node, "w", nil)) }},
		{"OpenPushOf zero FixedCodec", "codec", func() error {
			return closeIf(iox.OpenPushOf(bg, node, "w", iox.FixedCodec[nilArgPoint]{}))
		}},
		{"OpenPull ctx", "ctx", func() error { return closeIf(iox.OpenPull(noCtx, node, "w")) }},
		{"OpenPull node", "node", func() error { return closeIf(iox.OpenPull(bg, noNode, "w")) }},
		{"OpenPullOf ctx", "ctx", func() error { return closeIf(iox.OpenPullOf(noCtx, node, "w", point)) }},
		{"OpenPullOf node", "node", func() error { return closeIf(iox.OpenPullOf(bg, noNode, "w", point)) }},
		{"OpenPullOf codec", "codec", func() error { return closeIf(iox.OpenPullOf[int](bg, node, "w", nil)) }},
		{"OpenPullOf zero FixedCodec", "codec", func() error {
			return closeIf(iox.OpenPullOf(bg, node, "w", iox.FixedCodec[nilArgPoint]{}))
		}},
		{"OpenEvents ctx", "ctx", func() error { return closeIf(iox.OpenEvents(noCtx, node, "e")) }},
		{"OpenEvents node", "node", func() error { return closeIf(iox.OpenEvents(bg, noNode, "e")) }},
		{"OpenClient ctx", "ctx", func() error { return closeIf(iox.OpenClient(noCtx, node, "r", iox.Raw{}, iox.Raw{})) }},
		{"OpenClient node", "node", func() error { return closeIf(iox.OpenClient(bg, noNode, "r", iox.Raw{}, iox.Raw{})) }},
		{"OpenClient request codec", "request codec", func() error {
			return closeIf(iox.OpenClient[int, []byte](bg, node, "r", nil, iox.Raw{}))
		}},
		{"OpenClient response codec", "response codec", func() error {
			return closeIf(iox.OpenClient[[]byte, int](bg, node, "r", iox.Raw{}, nil))
		}},
		{"OpenClient zero FixedCodec", "request codec", func() error {
			return closeIf(iox.OpenClient(bg, node, "r", iox.FixedCodec[nilArgPoint]{}, iox.Raw{}))
		}},
		{"OpenServer ctx", "ctx", func() error { return closeIf(iox.OpenServer(noCtx, node, "r", iox.Raw{}, iox.Raw{})) }},
		{"OpenServer node", "node", func() error { return closeIf(iox.OpenServer(bg, noNode, "r", iox.Raw{}, iox.Raw{})) }},
		{"OpenServer request codec", "request codec", func() error {
			return closeIf(iox.OpenServer[int, []byte](bg, node, "r", nil, iox.Raw{}))
		}},
		{"OpenServer response codec", "response codec", func() error {
			return closeIf(iox.OpenServer[[]byte, int](bg, node, "r", iox.Raw{}, nil))
		}},
		{"OpenServer zero FixedCodec", "response codec", func() error {
			return closeIf(iox.OpenServer(bg, node, "r", iox.Raw{}, iox.FixedCodec[nilArgPoint]{}))
		}},
		{"OpenServer OnDrop", "OnDrop", func() error {
			return closeIf(iox.OpenServer(bg, node, "r", iox.Raw{}, iox.Raw{}, iox.OnDrop(nil)))
		}},
		{"OpenBlackboard node", "node", func() error { return closeIf(iox.OpenBlackboard(noNode, "b", i32, entries)) }},
		{"OpenBlackboard zero key codec", "zero FixedCodec", func() error {
			return closeIf(iox.OpenBlackboard(node, "b", iox.FixedCodec[int32]{}, entries))
		}},
		{"OpenBlackboard zero value codec", "zero FixedCodec", func() error {
			return closeIf(iox.OpenBlackboard(node, "b", i32, []iox.BlackboardEntry[int32]{iox.Entry(int32(1), iox.FixedCodec[int32]{}, 0)}))
		}},
		{"OpenExistingBlackboard node", "node", func() error { return closeIf(iox.OpenExistingBlackboard(noNode, "b", i32)) }},
		{"OpenExistingBlackboard zero key codec", "zero FixedCodec", func() error {
			return closeIf(iox.OpenExistingBlackboard(node, "b", iox.FixedCodec[int32]{}))
		}},
	}
	// A codec in a non-nil interface that is a nil pointer, and one whose
	// PayloadType panics, are refused the same way.
	var nilCodec *derefCodec
	var nilFunc funcCodec
	bad := []struct {
		what  string
		says  string
		codec iox.Codec[int]
	}{{"nil pointer codec", "a nil *iox_test.derefCodec", nilCodec},
		{"nil func codec", "a nil iox_test.funcCodec", nilFunc},
		{"panicking PayloadType", "its PayloadType panicked", panicTyper{}}}
	for _, b := range bad {
		cases = append(cases,
			nilCase{"OpenPairOf " + b.what, b.says, func() error { return closeIf(iox.OpenPairOf(bg, node, "p", b.codec)) }},
			nilCase{"OpenPubOf " + b.what, b.says, func() error { return closeIf(iox.OpenPubOf(bg, node, "s", b.codec)) }},
			nilCase{"OpenSubOf " + b.what, b.says, func() error { return closeIf(iox.OpenSubOf(bg, node, "s", b.codec)) }},
			nilCase{"OpenPushOf " + b.what, b.says, func() error { return closeIf(iox.OpenPushOf(bg, node, "w", b.codec)) }},
			nilCase{"OpenPullOf " + b.what, b.says, func() error { return closeIf(iox.OpenPullOf(bg, node, "w", b.codec)) }},
			nilCase{"OpenClient request " + b.what, "request codec", func() error {
				return closeIf(iox.OpenClient(bg, node, "r", b.codec, iox.Raw{}))
			}},
			nilCase{"OpenServer response " + b.what, "response codec", func() error {
				return closeIf(iox.OpenServer(bg, node, "r", iox.Raw{}, b.codec))
			}},
		)
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := leftovers(ns.prefix)
			defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
			refusesNil(t, c)
			require.Equal(t, before, leftovers(ns.prefix), "nothing created in /dev/shm")
		})
	}
}

// The methods and functions that take a context, a handler or a handle of
// an open channel, each with it nil.
func TestNilArgumentsOfMethods(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var noCtx context.Context

	pair, err := iox.OpenPair(ctx, node, "pair")
	require.NoError(t, err)
	defer pair.Close()
	pub, err := iox.OpenPub(ctx, node, "pubsub")
	require.NoError(t, err)
	defer pub.Close()
	sub, err := iox.OpenSub(ctx, node, "pubsub")
	require.NoError(t, err)
	defer sub.Close()
	push, err := iox.OpenPush(ctx, node, "pipeline")
	require.NoError(t, err)
	defer push.Close()
	pull, err := iox.OpenPull(ctx, node, "pipeline")
	require.NoError(t, err)
	defer pull.Close()
	events, err := iox.OpenEvents(ctx, node, "events")
	require.NoError(t, err)
	defer events.Close()
	evs, err := node.Event("listener")
	require.NoError(t, err)
	defer evs.Close()
	lis, err := evs.Listener()
	require.NoError(t, err)
	defer lis.Close()
	cl, err := iox.OpenClient(ctx, node, "rpc", iox.Raw{}, iox.Raw{})
	require.NoError(t, err)
	defer cl.Close()
	srv, err := iox.OpenServer(ctx, node, "rpc", iox.Raw{}, iox.Raw{})
	require.NoError(t, err)
	defer srv.Close()

	// A request in hand, to answer with a nil context first.
	answer := make(chan error, 1)
	go func() {
		v, err := cl.Call(ctx, []byte("q"))
		if err == nil && string(v) != "a" {
			err = fmt.Errorf("answer %q", v)
		}
		answer <- err
	}()
	q, err := srv.Recv(ctx)
	require.NoError(t, err)

	i32 := must(iox.Fixed[int32]("i32"))
	bb, err := iox.OpenBlackboard(node, "bb", i32, []iox.BlackboardEntry[int32]{iox.Entry(int32(1), i32, 7)})
	require.NoError(t, err)
	defer bb.Close()
	reader, err := bb.Reader()
	require.NoError(t, err)
	defer reader.Close()
	entry, err := iox.ReadEntry(reader, 1, i32)
	require.NoError(t, err)
	defer entry.Close()

	ps, err := node.PublishSubscribe("ports")
	require.NoError(t, err)
	defer ps.Close()
	subscriber, err := ps.Subscriber()
	require.NoError(t, err)
	defer subscriber.Close()
	rr, err := node.RequestResponse("ports-rpc")
	require.NoError(t, err)
	defer rr.Close()
	server, err := rr.Server()
	require.NoError(t, err)
	defer server.Close()
	client, err := rr.Client()
	require.NoError(t, err)
	defer client.Close()
	pending, err := client.Send([]byte("q"))
	require.NoError(t, err)
	defer pending.Close()

	handler := func(context.Context, []byte) ([]byte, error) { return nil, errors.New("unused") }
	loan := func(l *iox.Loan, err error) error {
		if err == nil {
			l.Release()
		}
		return err
	}
	cases := []nilCase{
		{"Pair.Send", "ctx", func() error { return pair.Send(noCtx, []byte("x")) }},
		{"Pair.Recv", "ctx", func() error { _, err := pair.Recv(noCtx); return err }},
		{"Pair.RecvView", "ctx", func() error { _, err := pair.RecvView(noCtx); return err }},
		{"Pair.Loan", "ctx", func() error { return loan(pair.Loan(noCtx, 8)) }},
		{"Pair.SendLoan", "ctx", func() error {
			l, err := pair.Loan(ctx, 8)
			if err != nil {
				return err
			}
			return pair.SendLoan(noCtx, l)
		}},
		{"Pair.SendLoan loan", "loan", func() error { return pair.SendLoan(ctx, nil) }},
		{"Pub.Send", "ctx", func() error { return pub.Send(noCtx, []byte("x")) }},
		{"Pub.Flush", "ctx", func() error { return pub.Flush(noCtx) }},
		{"Pub.Loan", "ctx", func() error { return loan(pub.Loan(noCtx, 8)) }},
		{"Pub.SendLoan", "ctx", func() error {
			l, err := pub.Loan(ctx, 8)
			if err != nil {
				return err
			}
			return pub.SendLoan(noCtx, l)
		}},
		{"Pub.SendLoan loan", "loan", func() error { return pub.SendLoan(ctx, nil) }},
		{"Sub.Recv", "ctx", func() error { _, err := sub.Recv(noCtx); return err }},
		{"Sub.RecvView", "ctx", func() error { _, err := sub.RecvView(noCtx); return err }},
		{"Push.Send", "ctx", func() error { return push.Send(noCtx, []byte("x")) }},
		{"Pull.Recv", "ctx", func() error { _, err := pull.Recv(noCtx); return err }},
		{"Events.Recv", "ctx", func() error { _, err := events.Recv(noCtx); return err }},
		{"Listener.Wait", "ctx", func() error { _, err := lis.Wait(noCtx); return err }},
		{"Caller.Call", "ctx", func() error { _, err := cl.Call(noCtx, []byte("x")); return err }},
		{"Caller.Stream", "ctx", func() error {
			s, err := cl.Stream(noCtx, []byte("x"))
			if err == nil {
				s.Close()
			}
			return err
		}},
		{"Responder.Recv", "ctx", func() error { _, err := srv.Recv(noCtx); return err }},
		{"Responder.Serve ctx", "ctx", func() error { return srv.Serve(noCtx, 1, handler) }},
		{"Responder.Serve handler", "handler", func() error { return srv.Serve(ctx, 1, nil) }},
		{"Request.Reply", "ctx", func() error { return q.Reply(noCtx, []byte("x")) }},
		{"Request.Send", "ctx", func() error { return q.Send(noCtx, []byte("x")) }},
		{"WatchEntry ctx", "ctx", func() error { _, err := iox.WatchEntry(noCtx, entry); return err }},
		{"WatchEntry reader", "entry reader", func() error { _, err := iox.WatchEntry[int32](ctx, nil); return err }},
		{"Subscriber.ReceiveBatch", "batch", func() error { _, err := subscriber.ReceiveBatch(nil); return err }},
		{"PendingResponse.ReceiveBatch", "batch", func() error { _, err := pending.ReceiveBatch(nil); return err }},
		{"WriteEntry writer", "writer", func() error {
			return closeIf(iox.WriteEntry[int32, int32](nil, 1, i32))
		}},
		{"ReadEntry reader", "reader", func() error {
			return closeIf(iox.ReadEntry[int32, int32](nil, 1, i32))
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { refusesNil(t, c) })
	}

	// Everything still works: the request refused with a nil context is
	// answered now, and the pair, the publisher and the pusher go on.
	require.NoError(t, q.Reply(ctx, []byte("a")))
	require.NoError(t, <-answer)
	require.NoError(t, pub.Send(ctx, []byte("after")))
	v, err := sub.Recv(ctx)
	require.NoError(t, err)
	require.Equal(t, "after", string(v))
	require.NoError(t, pair.Err())
	require.NoError(t, push.Err())
}

// A nil Option or NodeOption is no option.
func TestNilOptionsAreNoOptions(t *testing.T) {
	ns := newNamespace(t)
	n, err := iox.NewNode(nil, iox.WithIsolation(ns.prefix, ns.root), nil)
	require.NoError(t, err)
	defer n.Close()
	p, err := iox.OpenPair(context.Background(), n, "nil-option", nil, iox.BufferSize(2), nil)
	require.NoError(t, err)
	require.NoError(t, p.Close())
}
