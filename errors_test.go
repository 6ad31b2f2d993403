package iox_test

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/iox-go/iox"
	"github.com/iox-go/iox/internal/testlib"
	"github.com/iox-go/iox/loader"
)

func TestMissingLibrary(t *testing.T) {
	_, err := iox.NewNode(iox.WithLibrary("/nonexistent/libiox_native.so"))
	require.ErrorIs(t, err, iox.ErrLibraryNotFound)
	assert.Contains(t, err.Error(), "/nonexistent/libiox_native.so")
	assert.Contains(t, err.Error(), loader.BuildCommand)
}

func TestWrongABIVersion(t *testing.T) {
	_, err := iox.NewNode(iox.WithLibrary(testlib.Stub(t, loader.ABIVersion+1)))
	assert.ErrorIs(t, err, iox.ErrABIMismatch)
}

func TestLibraryMissingSymbols(t *testing.T) {
	_, err := iox.NewNode(iox.WithLibrary(testlib.Stub(t, loader.ABIVersion)))
	assert.ErrorIs(t, err, iox.ErrMissingSymbol)
}

func TestInvalidServiceNames(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	for _, name := range []string{"", strings.Repeat("x", 256), "caf\u00e9", "nul\x00byte", "iox2://internal"} {
		_, err := node.PublishSubscribe(name)
		assert.ErrorIs(t, err, iox.ErrInvalidName, "pubsub %q", name)
		_, err = node.Event(name)
		assert.ErrorIs(t, err, iox.ErrInvalidName, "event %q", name)
		assert.ErrorIs(t, iox.ValidServiceName(name), iox.ErrInvalidName)
	}
	svc, err := node.PublishSubscribe(strings.Repeat("y", 255))
	require.NoError(t, err, "255 bytes is the longest valid name")
	require.NoError(t, svc.Close())
}

func TestInvalidNodeSettings(t *testing.T) {
	ns := newNamespace(t)
	_, err := iox.NewNode(iox.WithIsolation(ns.prefix, ns.root), iox.WithNodeName(strings.Repeat("n", 129)))
	assert.ErrorIs(t, err, iox.ErrInvalidName)
	_, err = iox.NewNode(iox.WithIsolation(ns.prefix, ns.root), iox.WithNodeName("n\u00e4me"))
	assert.ErrorIs(t, err, iox.ErrInvalidName)
	_, err = iox.NewNode(iox.WithIsolation("bad/prefix", ns.root))
	assert.ErrorIs(t, err, iox.ErrInvalidName)
	_, err = iox.NewNode(iox.WithIsolation(ns.prefix, ns.root), iox.WithLogLevel(42))
	assert.ErrorIs(t, err, iox.ErrInvalidArgument)
}

func TestOpenExistingServiceWithAnotherPayloadType(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	svc, err := node.PublishSubscribe("typed")
	require.NoError(t, err)
	defer svc.Close()
	_, err = node.PublishSubscribe("typed", iox.WithPayloadType(iox.PayloadType{Name: "my::Point", Size: 8, Align: 4, Fixed: true}))
	assert.ErrorIs(t, err, iox.ErrIncompatibleType)
	assert.ErrorIs(t, err, iox.ErrIncompatible)
	// The error names what the existing service carries, and what was asked for.
	var e *iox.Error
	require.ErrorAs(t, err, &e)
	assert.Contains(t, e.Detail, `the service carries a slice of "u8" (size 1, alignment 1) with user header one "()" (size 0, alignment 1)`)
	assert.Contains(t, e.Detail, `this end asks for one "my::Point" (size 8, alignment 4)`)
	_, err = node.PublishSubscribe("typed", iox.WithPayloadType(iox.PayloadType{Name: "u16", Size: 2, Align: 2}))
	assert.ErrorIs(t, err, iox.ErrIncompatibleType)
	assert.Contains(t, err.Error(), `a slice of "u8" (size 1, alignment 1)`)
	assert.Contains(t, err.Error(), `asks for a slice of "u16" (size 2, alignment 2)`)

	pt, err := node.PubSubSettings("typed")
	require.NoError(t, err)
	assert.Equal(t, iox.Bytes, pt.Payload, "what the refusals named")
}

func TestOpenExistingServiceWithIncompatibleSettings(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	svc, err := node.PublishSubscribe("settings", iox.SafeOverflow(true), iox.MaxSubscribers(2), iox.BufferSize(2))
	require.NoError(t, err)
	defer svc.Close()
	for name, opt := range map[string]iox.Option{
		"overflow":    iox.SafeOverflow(false),
		"subscribers": iox.MaxSubscribers(8),
		"buffer":      iox.BufferSize(64),
	} {
		_, err := node.PublishSubscribe("settings", opt)
		assert.ErrorIs(t, err, iox.ErrIncompatible, name)
	}
	_, err = node.PublishSubscribe("settings", iox.CreateOnly())
	assert.ErrorIs(t, err, iox.ErrServiceExists)
	_, err = node.PublishSubscribe("absent", iox.OpenOnly())
	assert.ErrorIs(t, err, iox.ErrServiceNotFound)
	_, err = node.Event("absent", iox.OpenOnly())
	assert.ErrorIs(t, err, iox.ErrServiceNotFound)

	ev, err := node.Event("ev-settings", iox.MaxListeners(2))
	require.NoError(t, err)
	defer ev.Close()
	_, err = node.Event("ev-settings", iox.MaxListeners(10))
	assert.ErrorIs(t, err, iox.ErrIncompatible)
}

func TestInvalidPayloadTypes(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	for _, pt := range []iox.PayloadType{
		{Name: "", Size: 1, Align: 1},
		{Name: "x", Size: 0, Align: 1},
		{Name: "x", Size: 4, Align: 3},
		{Name: strings.Repeat("t", 300), Size: 1, Align: 1},
	} {
		_, err := node.PublishSubscribe("bad-type", iox.WithPayloadType(pt))
		assert.ErrorIs(t, err, iox.ErrInvalidArgument, "%+v", pt)
	}
}

func TestMessageOverMaximumIsRefusedAndNothingSent(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	svc, err := node.PublishSubscribe("too-large")
	require.NoError(t, err)
	defer svc.Close()
	sub, err := svc.Subscriber()
	require.NoError(t, err)
	defer sub.Close()
	pub, err := svc.Publisher(iox.MaxMessageSize(1024))
	require.NoError(t, err)
	defer pub.Close()

	_, err = pub.Send(make([]byte, 1025))
	assert.ErrorIs(t, err, iox.ErrMessageTooLarge)
	_, err = pub.Loan(1025)
	assert.ErrorIs(t, err, iox.ErrMessageTooLarge)
	_, err = pub.Loan(-1)
	assert.ErrorIs(t, err, iox.ErrInvalidArgument)
	has, err := sub.HasMessages()
	require.NoError(t, err)
	assert.False(t, has)
	n, err := pub.Send(make([]byte, 1024))
	require.NoError(t, err)
	assert.Equal(t, 1, n)
}

func TestFixedSizePayloadChecksLength(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	svc, err := node.PublishSubscribe("fixed", iox.WithPayloadType(iox.PayloadType{Name: "app::Pair", Size: 8, Align: 4, Fixed: true}))
	require.NoError(t, err)
	defer svc.Close()
	pub, err := svc.Publisher()
	require.NoError(t, err)
	defer pub.Close()
	_, err = pub.Send(make([]byte, 7))
	assert.Error(t, err)
	_, err = pub.Send(make([]byte, 8))
	assert.NoError(t, err)
}

func TestNilAndEmptyPayloads(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	svc, err := node.PublishSubscribe("empty", iox.BufferSize(4))
	require.NoError(t, err)
	defer svc.Close()
	sub, err := svc.Subscriber()
	require.NoError(t, err)
	defer sub.Close()
	pub, err := svc.Publisher()
	require.NoError(t, err)
	defer pub.Close()
	_, err = pub.Send(nil)
	require.NoError(t, err)
	_, err = pub.Send([]byte{})
	require.NoError(t, err)
	s, err := pub.Loan(0)
	require.NoError(t, err)
	_, err = s.Send()
	require.NoError(t, err)
	for i := 0; i < 3; i++ {
		n, ok, err := sub.TryReceive(nil)
		require.NoError(t, err)
		assert.True(t, ok, "empty message %d", i)
		assert.Zero(t, n)
	}
	_, ok, err := sub.TryReceive(nil)
	require.NoError(t, err)
	assert.False(t, ok)
}

func TestEventIDOutOfBounds(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ev, err := node.Event("bounds", iox.MaxEventID(10))
	require.NoError(t, err)
	defer ev.Close()
	assert.Equal(t, iox.EventID(10), ev.MaxEventID())
	n, err := ev.Notifier()
	require.NoError(t, err)
	defer n.Close()
	_, err = n.Notify(11)
	assert.ErrorIs(t, err, iox.ErrInvalidArgument)
	_, err = n.Notify(10)
	assert.NoError(t, err)
}

func TestAlreadyCancelledContext(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ev, err := node.Event("cancelled")
	require.NoError(t, err)
	defer ev.Close()
	l, err := ev.Listener()
	require.NoError(t, err)
	defer l.Close()
	n, err := ev.Notifier()
	require.NoError(t, err)
	defer n.Close()
	_, err = n.Notify(1)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = l.Wait(ctx)
	assert.ErrorIs(t, err, context.Canceled)
	ids, err := l.TryWait()
	require.NoError(t, err)
	assert.Equal(t, []iox.EventID{1}, ids, "a refused wait consumes nothing")
}

func TestUseAfterCloseAndDoubleClose(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	svc, err := node.PublishSubscribe("closed")
	require.NoError(t, err)
	ev, err := node.Event("closed")
	require.NoError(t, err)
	pub, err := svc.Publisher()
	require.NoError(t, err)
	sub, err := svc.Subscriber()
	require.NoError(t, err)
	nt, err := ev.Notifier()
	require.NoError(t, err)
	l, err := ev.Listener()
	require.NoError(t, err)

	for _, c := range []interface{ Close() error }{pub, sub, nt, l, svc, ev} {
		require.NoError(t, c.Close())
		assert.ErrorIs(t, c.Close(), iox.ErrClosed)
	}
	_, err = pub.Send([]byte("x"))
	assert.ErrorIs(t, err, iox.ErrClosed)
	_, err = pub.Loan(1)
	assert.ErrorIs(t, err, iox.ErrClosed)
	assert.ErrorIs(t, pub.Update(), iox.ErrClosed)
	_, _, err = sub.TryReceive(make([]byte, 1))
	assert.ErrorIs(t, err, iox.ErrClosed)
	_, err = sub.ReceiveBatch(iox.NewBatch(8, 1))
	assert.ErrorIs(t, err, iox.ErrClosed)
	_, _, err = sub.Borrow()
	assert.ErrorIs(t, err, iox.ErrClosed)
	_, err = sub.HasMessages()
	assert.ErrorIs(t, err, iox.ErrClosed)
	_, err = nt.Notify(1)
	assert.ErrorIs(t, err, iox.ErrClosed)
	_, err = l.TryWait()
	assert.ErrorIs(t, err, iox.ErrClosed)
	_, err = l.Wait(context.Background())
	assert.ErrorIs(t, err, iox.ErrClosed)
	_, err = svc.Publisher()
	assert.ErrorIs(t, err, iox.ErrClosed)
	_, err = svc.Subscriber()
	assert.ErrorIs(t, err, iox.ErrClosed)
	_, _, err = svc.Counts()
	assert.ErrorIs(t, err, iox.ErrClosed)
	_, err = ev.Notifier()
	assert.ErrorIs(t, err, iox.ErrClosed)
	_, err = ev.Listener()
	assert.ErrorIs(t, err, iox.ErrClosed)

	require.NoError(t, node.Close())
	assert.ErrorIs(t, node.Close(), iox.ErrClosed)
	_, err = node.PublishSubscribe("after")
	assert.ErrorIs(t, err, iox.ErrClosed)
	_, err = node.Event("after")
	assert.ErrorIs(t, err, iox.ErrClosed)
	_, err = node.CleanupDeadNodes()
	assert.ErrorIs(t, err, iox.ErrClosed)
}

func TestErrorsNameTheOperationAndService(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	_, err := node.PublishSubscribe("nowhere", iox.OpenOnly())
	var e *iox.Error
	require.ErrorAs(t, err, &e)
	assert.Equal(t, "nowhere", e.Name)
	assert.Contains(t, err.Error(), `"nowhere"`)
	assert.Contains(t, err.Error(), "does not exist")
}
