package iox_test

// Adversarial tests of lossy publish-subscribe channels.

import (
	"fmt"
	"testing"

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
