package iox_test

// Adversarial tests of pairs whose peer dies.

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/iox-go/iox"
)

// A Send that waits for room ends with ErrPeerCrashed when the peer's process
// is killed: for small messages (the send queue is full) and for large ones
// (sent straight from the caller's buffer), and for a value handed to Out.
func TestAdvPairKillWhileSendWaits(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := advCtx(t)
	for round, size := range []int{16, 200 << 10, 16, 200 << 10} {
		name := fmt.Sprintf("killwait%d", round)
		c := spawn(t, ns, "adv-pair-exit", "IOX_SERVICE="+name)
		c.expect("ready")
		p, err := iox.OpenPair(ctx, node, name, iox.WithChanCap(2))
		require.NoError(t, err)
		eventually(t, "the peer", p.Connected)
		useOut := round >= 2
		done := make(chan error, 1)
		go func() {
			msg := make([]byte, size)
			for {
				var err error
				if useOut {
					select {
					case p.Out() <- msg:
					case <-p.Done():
						err = p.Err()
					}
				} else {
					err = p.Send(ctx, msg)
				}
				if err != nil {
					done <- err
					return
				}
			}
		}()
		waitParked(t, "iox.(*sender[...]).send", 1)
		c.kill()
		select {
		case err := <-done:
			require.ErrorIs(t, err, iox.ErrPeerCrashed, "round %d (size %d)", round, size)
		case <-time.After(20 * time.Second):
			t.Fatalf("round %d (size %d): the send still waits after the peer was killed", round, size)
		}
		p.Close()
	}
}
