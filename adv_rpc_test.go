package iox_test

// Adversarial tests of the request/response adapters' crash reporting.

import (
	"context"
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
