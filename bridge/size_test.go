package bridge_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/iox-go/iox"
	"github.com/iox-go/iox/bridge"
)

func TestMessagesAboveMaxPayloadAreSplitAndJoined(t *testing.T) {
	for _, lossy := range []bool{false, true} {
		name := map[bool]string{false: "lossless", true: "lossy"}[lossy]
		t.Run(name, func(t *testing.T) {
			th := newTwoHosts(t, []string{"big"}, []string{"big"}, nil) // max_payload: NATS's 1 MiB
			ctx := ctxT(t)
			var opts []iox.Option
			if lossy {
				opts = append(opts, iox.Lossy())
			}
			sub, err := iox.OpenSub(ctx, th.b, "big", opts...)
			require.NoError(t, err)
			defer sub.Close()
			pub, err := iox.OpenPub(ctx, th.a, "big", opts...)
			require.NoError(t, err)
			defer pub.Close()
			eventually(t, "the import", func() bool { return th.logB.has("start", "import", "big") })
			sizes := []int{0, 1, 1<<20 - 2048, 1 << 20, 3<<20 + 17, 9 << 20}
			if lossy {
				// Lossy: send the first until it crosses, then one at a time.
				sendUntilOneCrosses(t, ctx, pub, sub, func(int) []byte { return []byte{42} })
			}
			for _, n := range sizes {
				msg := bytes.Repeat([]byte{byte(n)}, n)
				for i := range msg {
					msg[i] ^= byte(i >> 10)
				}
				require.NoError(t, pub.Send(ctx, msg))
				m, err := sub.Recv(ctx)
				for err == nil && lossy && len(m) == 1 && m[0] == 42 { // probes still on their way
					m, err = sub.Recv(ctx)
				}
				require.NoError(t, err)
				require.Equal(t, len(msg), len(m))
				require.True(t, bytes.Equal(msg, m), "%d bytes", n)
			}
			require.Empty(t, th.logB.errors())
		})
	}
}

// A call's answers above max_payload cross as parts too; the end of the call
// travels on the last part of the last answer.
func TestLargeAnswersAreSplitAndJoined(t *testing.T) {
	th := newTwoHosts(t, []string{"big"}, []string{"big"}, nil) // max_payload: NATS's 1 MiB
	ctx := ctxT(t)
	srv, err := iox.OpenServer(ctx, th.a, "big", iox.Raw{}, iox.Raw{})
	require.NoError(t, err)
	defer srv.Close()
	answer := func(n int) []byte {
		b := bytes.Repeat([]byte{byte(n)}, n)
		for i := range b {
			b[i] ^= byte(i >> 10)
		}
		return b
	}
	sctx, stop := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() {
		served <- srv.Serve(sctx, 1, func(_ context.Context, req []byte) ([]byte, error) {
			return answer(int(binary.LittleEndian.Uint32(req))), nil
		})
	}()
	defer func() { stop(); <-served }()
	eventually(t, "the import", func() bool { return th.logB.has("start", "import", "big") })
	cl, err := iox.OpenClient(ctx, th.b, "big", iox.Raw{}, iox.Raw{})
	require.NoError(t, err)
	defer cl.Close()
	for _, n := range []int{0, 1 << 20, 3<<20 + 17} {
		resp, err := cl.Call(ctx, binary.LittleEndian.AppendUint32(nil, uint32(n)))
		require.NoError(t, err)
		require.True(t, bytes.Equal(answer(n), resp), "%d bytes", n)
	}
	require.Empty(t, th.logA.errors())
	require.Empty(t, th.logB.errors())
}

func TestAMessageThatCannotCrossIsReportedOnBothSides(t *testing.T) {
	th := newTwoHosts(t, []string{"big"}, []string{"big"}, func(a, b *bridge.Config) {
		a.MaxMessageSize = 2 << 20
		b.MaxMessageSize = 2 << 20
	})
	ctx := ctxT(t)
	sub, err := iox.OpenSub(ctx, th.b, "big")
	require.NoError(t, err)
	defer sub.Close()
	pub, err := iox.OpenPub(ctx, th.a, "big")
	require.NoError(t, err)
	eventually(t, "the import", func() bool { return th.logB.has("start", "import", "big") })
	require.NoError(t, pub.Send(ctx, make([]byte, 3<<20)))
	require.NoError(t, pub.Send(ctx, []byte("after")))
	m, err := sub.Recv(ctx)
	require.NoError(t, err)
	require.Equal(t, "after", string(m), "the channel goes on")
	for _, log := range []*statusLog{th.logA, th.logB} {
		errs := log.errors()
		require.Len(t, errs, 1)
		require.ErrorIs(t, errs[0], iox.ErrMessageTooLarge)
		var ie *iox.Error
		require.True(t, errors.As(errs[0], &ie))
	}
	require.NoError(t, pub.Close())
}
