package bridge_test

import (
	"encoding/binary"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/iox-go/iox"
	"github.com/iox-go/iox/bridge"
)

// twoHosts is two namespaces with a bridge each over one nats-server: host A
// exports exp, host B imports imp.
type twoHosts struct {
	a, b       *iox.Node
	ba, bb     *bridge.Bridge
	logA, logB *statusLog
	url        string
}

func newTwoHosts(t *testing.T, exp, imp []string, tweak func(a, b *bridge.Config)) *twoHosts {
	s := natsServer(t, bridge.ListenConfig{})
	th := &twoHosts{a: newHost(t).node(t), b: newHost(t).node(t), url: s.ClientURL()}
	ca, cb := bridge.Config{Export: exp}, bridge.Config{Import: imp}
	if tweak != nil {
		tweak(&ca, &cb)
	}
	th.ba, th.logA = startBridge(t, th.a, connect(t, th.url), ca)
	th.bb, th.logB = startBridge(t, th.b, connect(t, th.url), cb)
	return th
}

// lossy opens a lossy subscriber of name on B and a lossy publisher on A,
// closed when the test ends, and waits until B imports name.
func (th *twoHosts) lossy(t *testing.T, name string) (*iox.Pub[[]byte], *iox.Sub[[]byte]) {
	t.Helper()
	ctx := ctxT(t)
	sub, err := iox.OpenSub(ctx, th.b, name, iox.Lossy())
	require.NoError(t, err)
	t.Cleanup(func() { sub.Close() })
	pub, err := iox.OpenPub(ctx, th.a, name, iox.Lossy())
	require.NoError(t, err)
	t.Cleanup(func() { pub.Close() })
	eventually(t, "the import on B", func() bool { return th.logB.has("start", "import", name) })
	return pub, sub
}

func seqMsg(i int, size int) []byte {
	b := make([]byte, max(size, 8))
	binary.LittleEndian.PutUint64(b, uint64(i))
	for j := 8; j < len(b); j++ {
		b[j] = byte(i + j)
	}
	return b
}

func TestLossyPubSubCrossesHosts(t *testing.T) {
	th := newTwoHosts(t, []string{"sensors/*"}, []string{"sensors/*"}, nil)
	ctx := ctxT(t)
	pub, sub := th.lossy(t, "sensors/imu")
	// Lossy: publish until one arrives, then check what follows is in order.
	i := 0
	first := sendUntilOneCrosses(t, ctx, pub, sub, func(int) []byte { i++; return seqMsg(i-1, 100) })
	prev := int(binary.LittleEndian.Uint64(first))
	require.Equal(t, seqMsg(prev, 100), first)
	for k := 0; k < 20; k++ {
		require.NoError(t, pub.Send(ctx, seqMsg(i, 100)))
		i++
		m, err := sub.Recv(ctx)
		require.NoError(t, err)
		n := int(binary.LittleEndian.Uint64(m))
		require.Greater(t, n, prev, "order per publisher")
		require.Equal(t, seqMsg(n, 100), m)
		prev = n
	}
	require.Equal(t, []bridge.Route{{Dir: "export", Kind: bridge.KindLossy, Service: "sensors/imu"}}, th.ba.Routes())
	require.Equal(t, []bridge.Route{{Dir: "import", Kind: bridge.KindLossy, Service: "sensors/imu"}}, th.bb.Routes())
	require.Empty(t, th.logA.errors())
	require.Empty(t, th.logB.errors())
}

// An import reports its start once the server has its subscription: what
// anyone publishes on its subject from then on reaches it.
func TestImportStartsSubscribed(t *testing.T) {
	for _, kind := range []string{bridge.KindLossy, bridge.KindEvent} {
		t.Run(kind, func(t *testing.T) {
			s := natsServer(t, bridge.ListenConfig{})
			url := s.ClientURL()
			a, b := newHost(t).node(t), newHost(t).node(t)
			startBridge(t, a, connect(t, url), bridge.Config{Export: []string{"started"}})
			_, logB := startBridge(t, b, connect(t, url), bridge.Config{Import: []string{"started"}})
			ctx := ctxT(t)
			subject := bridge.Subject("iox", "ps", "started")
			if kind == bridge.KindLossy {
				sub, err := iox.OpenSub(ctx, b, "started", iox.Lossy())
				require.NoError(t, err)
				defer sub.Close()
				pub, err := iox.OpenPub(ctx, a, "started", iox.Lossy())
				require.NoError(t, err)
				defer pub.Close()
			} else {
				subject = bridge.Subject("iox", "ev", "started")
				evB, err := iox.OpenEvents(ctx, b, "started")
				require.NoError(t, err)
				defer evB.Close()
				evA, err := iox.OpenEvents(ctx, a, "started")
				require.NoError(t, err)
				defer evA.Close()
			}
			eventually(t, "the import's start", func() bool { return logB.has("start", "import", "started") })
			require.Positive(t, s.GlobalAccount().Interest(subject), "subscribers of %s at the server", subject)
		})
	}
}

func TestLosslessChannelCrossesHostsExactlyOnceInOrder(t *testing.T) {
	th := newTwoHosts(t, []string{"orders"}, []string{"orders"}, nil)
	ctx := ctxT(t)
	sub, err := iox.OpenSub(ctx, th.b, "orders")
	require.NoError(t, err)
	defer sub.Close()
	pub, err := iox.OpenPub(ctx, th.a, "orders")
	require.NoError(t, err)
	eventually(t, "the import on B", func() bool { return th.logB.has("start", "import", "orders") })
	defer func() {
		if t.Failed() {
			t.Logf("A: %v\nB: %v", th.logA.all, th.logB.all)
		}
	}()
	const n = 3000
	done := make(chan error, 1)
	go func() {
		for i := range n {
			if err := pub.Send(ctx, seqMsg(i, 64+i%2000)); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	for i := range n {
		m, err := sub.Recv(ctx)
		require.NoError(t, err)
		require.Equal(t, seqMsg(i, 64+i%2000), m, "message %d", i)
	}
	require.NoError(t, <-done)
	require.NoError(t, pub.Close())
	require.Equal(t, []bridge.Route{{Dir: "import", Kind: bridge.KindLossless, Service: "orders"}}, th.bb.Routes())
	require.Empty(t, th.logA.errors())
	require.Empty(t, th.logB.errors())
}

func TestABurstCrossesInPacks(t *testing.T) {
	th := newTwoHosts(t, []string{"burst"}, []string{"burst"}, nil)
	ctx := ctxT(t)
	sub, err := iox.OpenSub(ctx, th.b, "burst", iox.BufferSize(1024))
	require.NoError(t, err)
	defer sub.Close()
	pub, err := iox.OpenPub(ctx, th.a, "burst", iox.BufferSize(1024))
	require.NoError(t, err)
	eventually(t, "the import on B", func() bool { return th.logB.has("start", "import", "burst") })
	// What crosses, as NATS messages.
	var frames, packs, packed, largest atomic.Int64 // NATS messages, packs among them, messages in packs
	watch := connect(t, th.url)
	_, err = watch.Subscribe(bridge.Subject("iox", "ll", "burst"), func(m *nats.Msg) {
		frames.Add(1)
		if c, err := strconv.Atoi(m.Header.Get("Iox-Count")); err == nil {
			packs.Add(1)
			packed.Add(int64(c))
			if int64(c) > largest.Load() {
				largest.Store(int64(c))
			}
		}
	})
	require.NoError(t, err)
	require.NoError(t, watch.Flush())
	const n = 5000
	done := make(chan error, 1)
	go func() {
		for i := range n {
			if err := pub.Send(ctx, seqMsg(i, 100)); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	for i := range n {
		m, err := sub.Recv(ctx)
		require.NoError(t, err)
		require.Equal(t, seqMsg(i, 100), m, "message %d", i)
	}
	require.NoError(t, <-done)
	require.NoError(t, pub.Close())
	eventually(t, "every frame seen", func() bool { return frames.Load()-packs.Load()+packed.Load() >= n })
	t.Logf("%d messages crossed in %d NATS messages, %d of them in packs of up to %d", n, frames.Load(), packed.Load(), largest.Load())
	require.Greater(t, largest.Load(), int64(1), "messages that waited together travel together")
	require.Less(t, frames.Load(), int64(n))
	require.Empty(t, th.logA.errors())
	require.Empty(t, th.logB.errors())
}

func TestTwoBridgesExportingAndImportingDoNotEcho(t *testing.T) {
	both := []string{"chat/*"}
	th := newTwoHosts(t, both, both, func(a, b *bridge.Config) { a.Import, b.Export = both, both })
	ctx := ctxT(t)
	subA, err := iox.OpenSub(ctx, th.a, "chat/room")
	require.NoError(t, err)
	defer subA.Close()
	subB, err := iox.OpenSub(ctx, th.b, "chat/room")
	require.NoError(t, err)
	defer subB.Close()
	pub, err := iox.OpenPub(ctx, th.a, "chat/room", iox.WaitSubscribers(2))
	require.NoError(t, err)
	eventually(t, "the import on B", func() bool { return th.logB.has("start", "import", "chat/room") })
	const n = 500
	for i := range n {
		require.NoError(t, pub.Send(ctx, seqMsg(i, 32)))
	}
	for _, sub := range []*iox.Sub[[]byte]{subA, subB} {
		for i := range n {
			m, err := sub.Recv(ctx)
			require.NoError(t, err)
			require.Equal(t, seqMsg(i, 32), m)
		}
	}
	require.NoError(t, pub.Send(ctx, seqMsg(n, 32)))
	for _, sub := range []*iox.Sub[[]byte]{subA, subB} {
		m, err := sub.Recv(ctx)
		require.NoError(t, err)
		require.Equal(t, seqMsg(n, 32), m, "a copy came back")
	}
	require.Equal(t, []bridge.Route{{Dir: "export", Kind: bridge.KindLossless, Service: "chat/room"}}, th.ba.Routes())
	require.Equal(t, []bridge.Route{{Dir: "import", Kind: bridge.KindLossless, Service: "chat/room"}}, th.bb.Routes())
	require.False(t, th.logB.has("start", "export", "chat/room"))
	require.False(t, th.logA.has("start", "import", "chat/room"))
	require.NoError(t, pub.Close())
}

// crossLedgers sends one message on each of three lossless channels from
// host a to host b (bridged as "ledger/*"), each once its import started, and
// checks that it arrives.
func crossLedgers(t *testing.T, th *twoHosts) {
	t.Helper()
	ctx := ctxT(t)
	for _, name := range []string{"ledger/a", "ledger/b", "ledger/c"} {
		sub, err := iox.OpenSub(ctx, th.b, name)
		require.NoError(t, err)
		t.Cleanup(func() { sub.Close() })
		pub, err := iox.OpenPub(ctx, th.a, name)
		require.NoError(t, err)
		t.Cleanup(func() { pub.Close() })
		eventually(t, "the import of "+name, func() bool { return th.logB.has("start", "import", name) })
		require.NoError(t, pub.Send(ctx, []byte(name)))
		m, err := sub.Recv(ctx)
		require.NoError(t, err)
		require.Equal(t, name, string(m))
	}
}

// Every lossless route makes sure the stream of lossless channels is there,
// but a stream that is as it should be is left alone: three channels
// crossing (an export and an import each) create the stream once and never
// update it. (Updates for every route made the server rewrite the stream's
// settings while it created other routes' consumers on it.)
func TestTheLosslessStreamIsCreatedOnceAndLeftAlone(t *testing.T) {
	th := newTwoHosts(t, []string{"ledger/*"}, []string{"ledger/*"}, nil)
	watch := connect(t, th.url)
	created, err := watch.SubscribeSync("$JS.EVENT.ADVISORY.STREAM.CREATED.>")
	require.NoError(t, err)
	updated, err := watch.SubscribeSync("$JS.EVENT.ADVISORY.STREAM.UPDATED.>")
	require.NoError(t, err)
	require.NoError(t, watch.Flush())
	crossLedgers(t, th)
	require.NoError(t, watch.Flush())
	n, _, err := created.Pending()
	require.NoError(t, err)
	require.Equal(t, 1, n, "stream creations")
	n, _, err = updated.Pending()
	require.NoError(t, err)
	require.Zero(t, n, "stream updates")
}

// Two bridges that bound the stream differently (StreamMaxBytes) do not
// rewrite it in turn as their routes start: it takes the larger bound, once.
func TestTheLosslessStreamKeepsTheLargerBoundOfTwoBridges(t *testing.T) {
	const small, large = 64 << 20, 256 << 20
	for _, order := range []struct{ a, b int64 }{{small, large}, {large, small}} {
		th := newTwoHosts(t, []string{"ledger/*"}, []string{"ledger/*"}, func(a, b *bridge.Config) {
			a.StreamMaxBytes, b.StreamMaxBytes = order.a, order.b
		})
		watch := connect(t, th.url)
		updated, err := watch.SubscribeSync("$JS.EVENT.ADVISORY.STREAM.UPDATED.>")
		require.NoError(t, err)
		require.NoError(t, watch.Flush())
		crossLedgers(t, th)
		ctx := ctxT(t)
		require.NoError(t, watch.Flush())
		n, _, err := updated.Pending()
		require.NoError(t, err)
		require.LessOrEqual(t, n, 1, "stream updates (A bounds it to %d, B to %d)", order.a, order.b)
		js, err := jetstream.New(watch)
		require.NoError(t, err)
		st, err := js.Stream(ctx, "IOX_LOSSLESS")
		require.NoError(t, err)
		require.Equal(t, int64(large), st.CachedInfo().Config.MaxBytes)
	}
}
