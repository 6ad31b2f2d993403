package iox_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/iox-go/iox"
)

// One option vocabulary: the same Option sets a service's setting through the
// low-level ports and through a channel, and every constructor refuses, by
// name, an option that does not apply to it.
func TestOptionsOneVocabulary(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := context.Background()

	// BufferSize and History mean the same on a channel and on a service.
	pub, err := iox.OpenPub(ctx, node, "vocab", iox.BufferSize(5), iox.History(3))
	require.NoError(t, err)
	defer pub.Close()
	// A lossless channel's service carries iox's header, so a plain
	// low-level open of it is refused as incompatible.
	_, err = node.PublishSubscribe("vocab", iox.OpenOnly())
	require.ErrorIs(t, err, iox.ErrIncompatible)
	lossy, err := iox.OpenPub(ctx, node, "vocab-lossy", iox.Lossy(), iox.BufferSize(6), iox.History(2), iox.MaxSubscribers(3))
	require.NoError(t, err)
	defer lossy.Close()
	svc, err := node.PublishSubscribe("vocab-lossy", iox.OpenOnly())
	require.NoError(t, err)
	assert.Equal(t, 6, svc.BufferSize())
	assert.Equal(t, 2, svc.HistorySize())
	assert.Equal(t, 3, svc.MaxSubscribers())
	// The same options, given to the low-level open, are checked against it.
	_, err = node.PublishSubscribe("vocab-lossy", iox.OpenOnly(), iox.BufferSize(7))
	assert.ErrorIs(t, err, iox.ErrIncompatible)
	pubPort, err := svc.Publisher(iox.MaxMessageSize(16))
	require.NoError(t, err)
	_, err = pubPort.Send(make([]byte, 17))
	assert.ErrorIs(t, err, iox.ErrMessageTooLarge)
	require.NoError(t, pubPort.Close())
	require.NoError(t, svc.Close())

	refused := []struct {
		what string
		open func() error
		want string
	}{
		{"Lossy on a service", func() error { _, err := node.PublishSubscribe("vocab-x", iox.Lossy()); return err }, "Lossy"},
		{"MaxLoans on a service", func() error { _, err := node.PublishSubscribe("vocab-x", iox.MaxLoans(2)); return err }, "MaxLoans"},
		{"MaxListeners on pubsub", func() error { _, err := node.PublishSubscribe("vocab-x", iox.MaxListeners(2)); return err }, "MaxListeners"},
		{"BufferSize on events", func() error { _, err := node.Event("vocab-x", iox.BufferSize(2)); return err }, "BufferSize"},
		{"BufferSize on a publisher", func() error {
			s, err := node.PublishSubscribe("vocab-y")
			require.NoError(t, err)
			defer s.Close()
			_, err = s.Publisher(iox.BufferSize(2))
			return err
		}, "BufferSize"},
		{"MaxMessageSize on a subscriber", func() error {
			s, err := node.PublishSubscribe("vocab-y")
			require.NoError(t, err)
			defer s.Close()
			_, err = s.Subscriber(iox.MaxMessageSize(2))
			return err
		}, "MaxMessageSize"},
		{"FailWhenFull on a channel", func() error { _, err := iox.OpenPub(ctx, node, "vocab-z", iox.FailWhenFull(1)); return err }, "FailWhenFull"},
		{"SubscriberBuffer on a pair", func() error { _, err := iox.OpenPair(ctx, node, "vocab-z", iox.SubscriberBuffer(1)); return err }, "SubscriberBuffer"},
		{"MaxNodes on a channel", func() error { _, err := iox.OpenSub(ctx, node, "vocab-z", iox.MaxNodes(3)); return err }, "MaxNodes"},
		{"Lossy on a pair", func() error { _, err := iox.OpenPair(ctx, node, "vocab-z", iox.Lossy()); return err }, "Lossy"},
	}
	for _, r := range refused {
		err := r.open()
		require.ErrorIs(t, err, iox.ErrInvalidArgument, r.what)
		assert.Contains(t, err.Error(), r.want+" does not apply", r.what)
	}
}
