package bridge_test

// Pairs across hosts: both directions in order and once, a Close that reaches
// the other host behind every message, large messages, and the exporting
// bridge killed mid-stream (an in-order, duplicate-free prefix and a clean
// end on the other host; a new session afterwards carries nothing old).

import (
	"context"
	"encoding/binary"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"github.com/iox-go/iox"
	"github.com/iox-go/iox/bridge"
)

// streamKilling sends n numbered 64-byte messages on from while it reads a
// prefix of them on to (recvPrefix), and SIGKILLs the bridge process after
// the 500th message read. It returns the sending's result (once it ended),
// how many messages were read and the error that ended the reading.
func streamKilling(t *testing.T, ctx context.Context, from, to *iox.Pair[[]byte], n int, victim *bridgeProcess) (<-chan error, int, error) {
	t.Helper()
	const size = 64 // as the callers' later messages
	sent := make(chan error, 1)
	go func() {
		for i := range n {
			if err := from.Send(ctx, seqMsg(i, size)); err != nil {
				sent <- err
				return
			}
		}
		sent <- nil
	}()
	killed := false
	got, err := recvPrefix(ctx, to, size, func(i int) {
		if i == 500 && !killed {
			killed = true
			require.NoError(t, victim.cmd.Process.Signal(syscall.SIGKILL))
		}
	})
	require.True(t, killed)
	return sent, got, err
}

// recvPrefix receives until an error and checks that the messages were
// 0, 1, 2, … (no gap, no repeat); it returns how many came and the error.
func recvPrefix(ctx context.Context, p *iox.Pair[[]byte], size int, onEach func(i int)) (int, error) {
	for i := 0; ; i++ {
		m, err := p.Recv(ctx)
		if err != nil {
			return i, err
		}
		if len(m) < 8 || int(binary.LittleEndian.Uint64(m)) != i || string(m) != string(seqMsg(i, size)) {
			got := -1
			if len(m) >= 8 {
				got = int(binary.LittleEndian.Uint64(m))
			}
			return i, &iox.Error{Op: "test", Kind: iox.ErrProtocol, Detail: "message " + strconv.Itoa(got) + " where " + strconv.Itoa(i) + " was due"}
		}
		if onEach != nil {
			onEach(i)
		}
	}
}

func TestPairCrossesHostsBothWaysInOrder(t *testing.T) {
	th := newTwoHosts(t, []string{"chat/*"}, []string{"chat/*"}, nil)
	ctx := ctxT(t)
	pa, err := iox.OpenPair(ctx, th.a, "chat/one")
	require.NoError(t, err)
	defer pa.Close()
	eventually(t, "the pair's import on B", func() bool { return th.logB.has("start", "import", "chat/one") })
	require.True(t, th.logA.has("start", "export", "chat/one"))
	pb, err := iox.OpenPair(ctx, th.b, "chat/one")
	require.NoError(t, err)
	defer pb.Close()

	const n, size = 2000, 100
	big := make([]byte, 3<<20) // larger than max_payload: parts, joined again
	for i := range big {
		big[i] = byte(i * 7)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	send := func(p *iox.Pair[[]byte]) {
		defer wg.Done()
		for i := range n {
			if err := p.Send(ctx, seqMsg(i, size)); err != nil {
				errs <- err
				return
			}
		}
	}
	wg.Add(2)
	go send(pa)
	go send(pb)
	// Each side reads the other's n messages in order, while both send.
	recvN := func(p *iox.Pair[[]byte]) {
		defer wg.Done()
		for i := range n {
			m, err := p.Recv(ctx)
			if err != nil {
				errs <- err
				return
			}
			if string(m) != string(seqMsg(i, size)) {
				errs <- &iox.Error{Op: "test", Kind: iox.ErrProtocol, Detail: "message " + strconv.Itoa(int(binary.LittleEndian.Uint64(m))) + " where " + strconv.Itoa(i) + " was due"}
				return
			}
		}
	}
	wg.Add(2)
	go recvN(pa)
	go recvN(pb)
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	// A large message, then A's Close: B reads it, then a clean end.
	require.NoError(t, pa.Send(ctx, big))
	require.NoError(t, pa.Close(), "A's bridge took everything")
	m, err := pb.Recv(ctx)
	require.NoError(t, err)
	require.Equal(t, big, m)
	_, err = pb.Recv(ctx)
	require.ErrorIs(t, err, iox.ErrPeerClosed)
	require.NoError(t, pb.Close())
	// A's end is gone: the export stops, and B's import with it.
	eventually(t, "the export's stop", func() bool { return th.logA.has("stop", "export", "chat/one") })
	eventually(t, "the import's stop", func() bool { return th.logB.has("stop", "import", "chat/one") })
	require.Empty(t, th.logA.errors())
	require.Empty(t, th.logB.errors())
}

func TestPairExportingBridgeKilledMidStream(t *testing.T) {
	s := natsServer(t, bridge.ListenConfig{})
	ha, hb := newHost(t), newHost(t)
	na, nb := ha.node(t), hb.node(t)
	_, logB := startBridge(t, nb, connect(t, s.ClientURL()), bridge.Config{Import: []string{"duo"}})
	ctx := ctxT(t)
	pbA := startBridgeProcess(t, ha, s.ClientURL(), "killed-pair", "duo", "")
	pbA.expect(t, "relaying")
	pa, err := iox.OpenPair(ctx, na, "duo")
	require.NoError(t, err)
	defer pa.Close()
	pbA.expect(t, `start export pair "duo"`)
	eventually(t, "the import on B", func() bool { return logB.has("start", "import", "duo") })
	pb, err := iox.OpenPair(ctx, nb, "duo")
	require.NoError(t, err)

	const n, size = 100000, 64
	sent, got, err := streamKilling(t, ctx, pa, pb, n, pbA)
	// B read an in-order, duplicate-free prefix, then a clean end.
	require.ErrorIs(t, err, iox.ErrPeerClosed, "after %d messages", got)
	require.Less(t, got, n)
	t.Logf("B read %d of the messages before the end", got)
	// On A, the bridge's end is gone: the pair ended as with a local crash.
	require.ErrorIs(t, <-sent, iox.ErrPeerCrashed)
	require.ErrorIs(t, pa.Err(), iox.ErrPeerCrashed)
	pa.Close()
	pb.Close()

	// A new session after a restart carries only what was sent in it.
	eventually(t, "the old import's end", func() bool { return logB.has("stop", "import", "duo") })
	pbA = startBridgeProcess(t, ha, s.ClientURL(), "killed-pair", "duo", "")
	pbA.expect(t, "relaying")
	pa2, err := iox.OpenPair(ctx, na, "duo")
	require.NoError(t, err)
	defer pa2.Close()
	pbA.expect(t, `start export pair "duo"`)
	eventually(t, "the new import on B", func() bool { return len(logB.starts("import", "duo")) == 2 })
	pb2, err := iox.OpenPair(ctx, nb, "duo")
	require.NoError(t, err)
	for i := range 10 {
		require.NoError(t, pa2.Send(ctx, seqMsg(i, size)))
	}
	require.NoError(t, pa2.Close())
	got, err = recvPrefix(ctx, pb2, size, nil)
	require.ErrorIs(t, err, iox.ErrPeerClosed)
	require.Equal(t, 10, got)
	require.NoError(t, pb2.Close())
	pbA.stop(t)
}

// TestPairSurvivesANATSServerRestart restarts the server while A's program
// sends, and keeps it away longer than the three announcement periods after
// which an import ends: B reads every message once, in order, and the pair
// goes on both ways after the restart.
func TestPairSurvivesANATSServerRestart(t *testing.T) {
	cfg := bridge.ListenConfig{Addr: "127.0.0.1:" + strconv.Itoa(freePort(t)), StoreDir: t.TempDir()}
	s, err := bridge.Listen(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() }) // after the bridges closed
	na, nb := newHost(t).node(t), newHost(t).node(t)
	const announce = 200 * time.Millisecond
	_, logA := startBridge(t, na, connect(t, s.ClientURL()), bridge.Config{Export: []string{"duo"}, Announce: announce})
	var failed atomic.Int32
	ncB := connect(t, s.ClientURL(), nats.ReconnectErrHandler(func(*nats.Conn, error) { failed.Add(1) }))
	require.Greater(t, 4*bridge.ReconnectWait, 3*announce)
	_, logB := startBridge(t, nb, ncB, bridge.Config{Import: []string{"duo"}, Announce: announce})
	ctx := ctxT(t)
	pa, err := iox.OpenPair(ctx, na, "duo")
	require.NoError(t, err)
	defer pa.Close()
	eventually(t, "the import on B", func() bool { return logB.has("start", "import", "duo") })
	pb, err := iox.OpenPair(ctx, nb, "duo")
	require.NoError(t, err)
	defer pb.Close()
	const n, size = 3000, 64
	restarted := make(chan struct{})
	sent := make(chan error, 1)
	go func() {
		for i := range n {
			if i == n/2 {
				select { // the second half goes after the restart
				case <-restarted:
				case <-ctx.Done():
					sent <- ctx.Err()
					return
				}
			}
			if err := pa.Send(ctx, seqMsg(i, size)); err != nil {
				sent <- err
				return
			}
		}
		sent <- nil
	}()
	done := false
	for i := 0; i < n; i++ {
		m, err := pb.Recv(ctx)
		require.NoError(t, err)
		require.Equal(t, seqMsg(i, size), m, "message %d", i)
		if i == n/3 && !done {
			done = true
			s.Shutdown()
			s.WaitForShutdown()
			// The outage lasts until B's bridge failed to reconnect four
			// times (every ReconnectWait): longer than three announcement
			// periods.
			eventually(t, "four failed reconnections", func() bool { return failed.Load() >= 4 })
			s, err = bridge.Listen(cfg)
			require.NoError(t, err)
			close(restarted)
		}
	}
	require.NoError(t, <-sent)
	// And back from B to A after the restart.
	for i := range 10 {
		require.NoError(t, pb.Send(ctx, seqMsg(i, size)))
	}
	for i := range 10 {
		m, err := pa.Recv(ctx)
		require.NoError(t, err)
		require.Equal(t, seqMsg(i, size), m)
	}
	require.NoError(t, pb.Close())
	_, err = pa.Recv(ctx)
	require.ErrorIs(t, err, iox.ErrPeerClosed)
	require.Len(t, logB.starts("import", "duo"), 1, "the import outlasted the outage")
	t.Logf("errors reported while the server was away: A %v, B %v", logA.errors(), logB.errors())
}

// TestPairImportingBridgeKilledEndsThePairOnBothHosts kills the importing
// bridge mid-stream: B's program sees its peer crash after an in-order,
// duplicate-free prefix, and A's program sees the end once the importing
// bridge's announcements stopped.
func TestPairImportingBridgeKilledEndsThePairOnBothHosts(t *testing.T) {
	s := natsServer(t, bridge.ListenConfig{})
	ha, hb := newHost(t), newHost(t)
	na, nb := ha.node(t), hb.node(t)
	_, logA := startBridge(t, na, connect(t, s.ClientURL()), bridge.Config{Export: []string{"duo"}})
	ctx := ctxT(t)
	pbB := startBridgeProcess(t, hb, s.ClientURL(), "killed-importer", "", "duo")
	pbB.expect(t, "relaying")
	pa, err := iox.OpenPair(ctx, na, "duo")
	require.NoError(t, err)
	defer pa.Close()
	eventually(t, "the export on A", func() bool { return logA.has("start", "export", "duo") })
	pbB.expect(t, `start import pair "duo"`)
	pb, err := iox.OpenPair(ctx, nb, "duo")
	require.NoError(t, err)
	defer pb.Close()

	const n = 100000
	sent, got, err := streamKilling(t, ctx, pa, pb, n, pbB)
	require.ErrorIs(t, err, iox.ErrPeerCrashed, "after %d messages", got)
	// A's program: the pair ends (its sends stop with the end).
	require.ErrorIs(t, <-sent, iox.ErrPeerClosed)
	require.ErrorIs(t, pa.Err(), iox.ErrPeerClosed)
	eventually(t, "the export's stop", func() bool { return logA.has("stop", "export", "duo") })
}

// TestPairSecondImportingBridgeEndsTheSession: a pair has two ends, so a
// second host importing the same pair ends the session on the exporting
// host.
func TestPairSecondImportingBridgeEndsTheSession(t *testing.T) {
	s := natsServer(t, bridge.ListenConfig{})
	na, nb, nc := newHost(t).node(t), newHost(t).node(t), newHost(t).node(t)
	_, logA := startBridge(t, na, connect(t, s.ClientURL()), bridge.Config{Export: []string{"duo"}})
	_, logB := startBridge(t, nb, connect(t, s.ClientURL()), bridge.Config{Import: []string{"duo"}})
	ctx := ctxT(t)
	pa, err := iox.OpenPair(ctx, na, "duo")
	require.NoError(t, err)
	defer pa.Close()
	eventually(t, "the import on B", func() bool { return logB.has("start", "import", "duo") })
	pb, err := iox.OpenPair(ctx, nb, "duo")
	require.NoError(t, err)
	defer pb.Close()
	require.NoError(t, pa.Send(ctx, []byte("to B")))
	m, err := pb.Recv(ctx)
	require.NoError(t, err)
	require.Equal(t, "to B", string(m))

	_, logC := startBridge(t, nc, connect(t, s.ClientURL()), bridge.Config{Import: []string{"duo"}})
	eventually(t, "the import on C", func() bool { return logC.has("start", "import", "duo") })
	_, err = pa.Recv(ctx)
	require.ErrorIs(t, err, iox.ErrPeerClosed, "A's pair ended")
	eventually(t, "the export's stop", func() bool { return logA.has("stop", "export", "duo") })
}

// A pair whose exporting side closed and whose export is gone keeps its
// import until the program on the importing host took everything the
// stream holds for it: here B's program reads nothing until then.
func TestPairImportRelaysWhatWaitsAfterExportIsGone(t *testing.T) {
	th := newTwoHosts(t, []string{"late/*"}, []string{"late/*"}, nil)
	ctx := ctxT(t)
	pa, err := iox.OpenPair(ctx, th.a, "late/one")
	require.NoError(t, err)
	defer pa.Close()
	eventually(t, "the pair's import on B", func() bool { return th.logB.has("start", "import", "late/one") })
	pb, err := iox.OpenPair(ctx, th.b, "late/one")
	require.NoError(t, err)
	defer pb.Close()
	// More than B's ends, the bridge's pull and its unacknowledged frames
	// hold: 5 KiB messages go one to a sample (smaller ones would be packed
	// many to a sample, and B's ends might take them all).
	const n, size = 2000, 5 << 10
	for i := range n {
		require.NoError(t, pa.Send(ctx, seqMsg(i, size)))
	}
	require.NoError(t, pa.Close(), "A's bridge took everything")
	eventually(t, "the export's stop", func() bool { return th.logA.has("stop", "export", "late/one") })
	eventually(t, "the import's drain", func() bool { return th.logB.has("drain", "import", "late/one") })
	require.False(t, th.logB.has("stop", "import", "late/one"), "the import stopped with frames left in the stream")
	for i := range n {
		m, err := pb.Recv(ctx)
		require.NoError(t, err, "message %d", i)
		require.Equal(t, seqMsg(i, size), m)
	}
	_, err = pb.Recv(ctx)
	require.ErrorIs(t, err, iox.ErrPeerClosed)
	eventually(t, "the import's stop", func() bool { return th.logB.has("stop", "import", "late/one") })
	require.Empty(t, th.logA.errors())
	require.Empty(t, th.logB.errors())
}
