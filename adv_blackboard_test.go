package iox_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/iox-go/iox"
)

// TestAdvBlackboardHandlesOutliveBoardClose holds the Blackboard to its word
// that writers, readers and entry handles made from it stay usable after it is
// closed: a writer still makes entry handles that write and notify, and an
// entry reader still watches, whether the closed handle created the service
// or opened it.
func TestAdvBlackboardHandlesOutliveBoardClose(t *testing.T) {
	for _, opener := range []bool{false, true} {
		name := map[bool]string{false: "creator", true: "opener"}[opener]
		t.Run(name, func(t *testing.T) {
			ns := newNamespace(t)
			node := ns.node(t)
			bb := createBoard(t, node, "bb-outlive")
			if opener {
				var err error
				bb, err = iox.OpenExistingBlackboard(node, "bb-outlive", bbKeyCodec)
				require.NoError(t, err)
			}
			w, err := bb.Writer()
			require.NoError(t, err)
			defer w.Close()
			r, err := bb.Reader()
			require.NoError(t, err)
			defer r.Close()
			re, err := iox.ReadEntry(r, key0, i32Codec)
			require.NoError(t, err)
			defer re.Close()
			require.NoError(t, bb.Close())

			we, err := iox.WriteEntry(w, key0, i32Codec)
			require.NoError(t, err, "the writer made before Close makes entry handles")
			defer we.Close()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			c, err := iox.WatchEntry(ctx, re)
			require.NoError(t, err, "the entry reader made before Close watches")
			require.Equal(t, int32(3), recvWithin(t, c))
			require.NoError(t, we.Set(42))
			require.Equal(t, int32(42), recvWithin(t, c), "the watch wakes on the write")
			cancel()
			for range c {
			}
		})
	}
}
