package bridge_test

// Failures: a bridge killed mid-stream and restarted, a NATS server restarted,
// hostile messages on an imported subject, messages too large to cross.

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"github.com/iox-go/iox"
	"github.com/iox-go/iox/bridge"
)

func init() { children["bridge"] = childBridge }

// childBridge runs a bridge configured by its environment until SIGTERM,
// printing its status lines.
func childBridge() error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	node, err := iox.NewNode(iox.WithIsolation(os.Getenv("B_PREFIX"), os.Getenv("B_ROOT")))
	if err != nil {
		return err
	}
	defer node.Close()
	nc, err := nats.Connect(os.Getenv("B_URL"), nats.MaxReconnects(-1), nats.ReconnectWait(bridge.ReconnectWait))
	if err != nil {
		return err
	}
	defer nc.Close()
	split := func(s string) []string {
		if s == "" {
			return nil
		}
		return strings.Split(s, ",")
	}
	b, err := bridge.New(ctx, bridge.Config{Node: node, Conn: nc, Name: os.Getenv("B_NAME"),
		Export: split(os.Getenv("B_EXPORT")), Import: split(os.Getenv("B_IMPORT")),
		Scan: 20 * time.Millisecond, Announce: 200 * time.Millisecond,
		OnStatus: func(s bridge.Status) { fmt.Println(s.String()) }})
	if err != nil {
		return err
	}
	<-ctx.Done()
	return b.Close()
}

// bridgeProcess is a bridge in a child process.
type bridgeProcess struct {
	cmd   *exec.Cmd
	lines chan string
	done  chan struct{}
}

func startBridgeProcess(t *testing.T, h host, url, name, exp, imp string) *bridgeProcess {
	t.Helper()
	p := &bridgeProcess{cmd: exec.Command(os.Args[0], "-test.run=^$"), lines: make(chan string, 1024), done: make(chan struct{})}
	p.cmd.Env = append(os.Environ(), "IOX_BRIDGE_CHILD=bridge", "B_PREFIX="+h.prefix, "B_ROOT="+h.root, "B_URL="+url,
		"B_NAME="+name, "B_EXPORT="+exp, "B_IMPORT="+imp)
	p.cmd.Stderr = os.Stderr
	out, err := p.cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, p.cmd.Start())
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			select {
			case p.lines <- sc.Text():
			default:
			}
		}
		p.cmd.Wait()
	}()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
	})
	return p
}

// stop ends the bridge with SIGTERM and checks that it closed cleanly.
func (p *bridgeProcess) stop(t *testing.T) {
	t.Helper()
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		t.Fatal("the bridge did not end on SIGTERM")
	}
	require.True(t, p.cmd.ProcessState.Success(), "the bridge's exit: %v", p.cmd.ProcessState)
}

func (p *bridgeProcess) expect(t *testing.T, want string) {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case l := <-p.lines:
			if strings.Contains(l, want) {
				return
			}
		case <-p.done:
			t.Fatalf("the bridge ended before printing %q", want)
		case <-timeout:
			t.Fatalf("the bridge did not print %q", want)
		}
	}
}

// recvSeq receives until message want-1 arrived and returns, for each index,
// how often it came; it fails on a message out of order other than a repeat.
func recvSeq(t *testing.T, ctx context.Context, sub *iox.Sub[[]byte], n int, onEach func(i int)) []int {
	t.Helper()
	counts := make([]int, n)
	prev := -1
	for prev < n-1 {
		m, err := sub.Recv(ctx)
		require.NoError(t, err)
		i := int(binary.LittleEndian.Uint64(m))
		require.Equal(t, seqMsg(i, 64), m)
		require.LessOrEqual(t, i, prev+1, "message %d after %d: one was lost", i, prev)
		counts[i]++
		if i > prev {
			prev = i
		}
		if onEach != nil {
			onEach(i)
		}
	}
	return counts
}

func TestImportingBridgeKilledMidStreamLosesNothing(t *testing.T) {
	s := natsServer(t, bridge.ListenConfig{})
	ha, hb := newHost(t), newHost(t)
	na, nb := ha.node(t), hb.node(t)
	_, logA := startBridge(t, na, connect(t, s.ClientURL()), bridge.Config{Export: []string{"feed"}})
	ctx := ctxT(t)
	sub, err := iox.OpenSub(ctx, nb, "feed")
	require.NoError(t, err)
	defer sub.Close()
	pb := startBridgeProcess(t, hb, s.ClientURL(), "killed", "", "feed")
	pb.expect(t, "relaying")
	pub, err := iox.OpenPub(ctx, na, "feed")
	require.NoError(t, err)
	pb.expect(t, `start import lossless "feed"`)
	const n = 4000
	sent := make(chan error, 1)
	go func() {
		for i := range n {
			if err := pub.Send(ctx, seqMsg(i, 64)); err != nil {
				sent <- err
				return
			}
		}
		sent <- nil
	}()
	killed := false
	counts := recvSeq(t, ctx, sub, n, func(i int) {
		if i == n/4 && !killed {
			killed = true
			require.NoError(t, pb.cmd.Process.Signal(syscall.SIGKILL))
			<-pb.done
			pb = startBridgeProcess(t, hb, s.ClientURL(), "killed", "", "feed")
		}
	})
	require.True(t, killed)
	require.NoError(t, <-sent)
	dups := 0
	for i, c := range counts {
		require.NotZero(t, c, "message %d lost", i)
		dups += c - 1
	}
	// Acknowledged after the local publisher took it: the restarted bridge
	// may send again what the killed one took but whose acknowledgements the
	// server did not get (the import flushes its connection once 768 messages
	// were acknowledged, and acknowledges at least once per 128).
	t.Logf("repeated after the kill: %d", dups)
	require.LessOrEqual(t, dups, 1024, "more repeats than the import leaves unconfirmed")
	require.NoError(t, pub.Close())
	require.Empty(t, logA.errors())
}

// TestNATSServerRestartLosesNothing restarts the server (same port and store)
// while a lossless channel crosses: half of the messages are sent before the
// restart, half after it, so the second half crossing shows that relaying
// resumed; each message comes once, in order. The time from the server's
// return to the first message sent after it is logged.
func TestNATSServerRestartLosesNothing(t *testing.T) {
	store := t.TempDir()
	port := freePort(t)
	cfg := bridge.ListenConfig{Addr: fmt.Sprintf("127.0.0.1:%d", port), StoreDir: store}
	s, err := bridge.Listen(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() }) // after the bridges closed
	url := s.ClientURL()
	na, nb := newHost(t).node(t), newHost(t).node(t)
	ncA, ncB := connect(t, url), connect(t, url)
	_, logA := startBridge(t, na, ncA, bridge.Config{Export: []string{"feed"}})
	_, logB := startBridge(t, nb, ncB, bridge.Config{Import: []string{"feed"}})
	ctx := ctxT(t)
	sub, err := iox.OpenSub(ctx, nb, "feed")
	require.NoError(t, err)
	defer sub.Close()
	pub, err := iox.OpenPub(ctx, na, "feed")
	require.NoError(t, err)
	eventually(t, "the import", func() bool { return logB.has("start", "import", "feed") })
	const n = 3000
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
			if err := pub.Send(ctx, seqMsg(i, 64)); err != nil {
				sent <- err
				return
			}
		}
		sent <- nil
	}()
	var back time.Time
	counts := recvSeq(t, ctx, sub, n, func(i int) {
		switch {
		case i == n/3 && back.IsZero():
			s.Shutdown()
			s.WaitForShutdown()
			s, err = bridge.Listen(cfg)
			require.NoError(t, err)
			back = time.Now()
			close(restarted)
		case i == n/2:
			t.Logf("the first message sent after the restart came %v after the server was back", time.Since(back))
		}
	})
	require.False(t, back.IsZero())
	require.NoError(t, <-sent)
	for i, c := range counts {
		require.Equal(t, 1, c, "message %d", i)
	}
	require.True(t, ncA.IsConnected() && ncB.IsConnected())
	require.NoError(t, pub.Close())
	t.Logf("errors reported while the server was away: A %v, B %v", logA.errors(), logB.errors())
}

func TestHostileMessagesOnAnImportedSubjectAreReported(t *testing.T) {
	th := newTwoHosts(t, []string{"hostile"}, []string{"hostile"}, nil)
	ctx := ctxT(t)
	pub, sub := th.lossy(t, "hostile")
	evil := connect(t, th.url)
	subject := bridge.Subject("iox", "ps", "hostile")
	send := func(hdr map[string]string, data []byte) {
		m := nats.NewMsg(subject)
		for k, v := range hdr {
			m.Header.Set(k, v)
		}
		m.Data = data
		require.NoError(t, evil.PublishMsg(m))
	}
	typ := bridge.TypeString(iox.Bytes)
	send(nil, []byte("no headers"))
	send(map[string]string{"Iox-Type": "u32/4/4", "Iox-Id": "x.1"}, []byte("wrong type"))
	send(map[string]string{"Iox-Type": typ, "Iox-Id": "x.2", "Iox-Part": "1/2", "Iox-Size": "999999999999"}, []byte("huge"))
	send(map[string]string{"Iox-Type": typ, "Iox-Id": "x.3", "Iox-Part": "7/2", "Iox-Size": "4"}, []byte("bad"))
	send(map[string]string{"Iox-Type": typ, "Iox-Id": "x.4", "Iox-Part": "2/2", "Iox-Size": "4"}, []byte("late"))
	send(map[string]string{"Iox-Type": typ, "Iox-Id": "x.5", "Iox-Count": "3"}, []byte{2, 'a', 'b', 9, 'c'}) // cut short
	send(map[string]string{"Iox-Type": typ, "Iox-Id": "x.6", "Iox-Count": "-1"}, []byte{1, 'a'})
	send(map[string]string{"Iox-Type": typ, "Iox-Id": "x.7", "Iox-Count": "2"}, []byte{2, 'p', '1', 2, 'p', '2'}) // a good pack
	require.NoError(t, evil.Flush())
	want := []error{iox.ErrProtocol, iox.ErrIncompatibleType, iox.ErrMessageTooLarge, iox.ErrProtocol, iox.ErrProtocol, iox.ErrProtocol, iox.ErrProtocol}
	eventually(t, "seven errors on B", func() bool { return len(th.logB.errors()) >= len(want) })
	for i, e := range th.logB.errors()[:len(want)] {
		require.ErrorIs(t, e, want[i], "error %d: %v", i, e)
		var ie *iox.Error
		require.True(t, errors.As(e, &ie), "typed: %v", e)
	}
	for _, want := range []string{"p1", "p2"} { // the good pack's messages, in order
		m, err := sub.Recv(ctx)
		require.NoError(t, err)
		require.Equal(t, want, string(m))
	}
	// The import goes on: messages of the real publisher still cross.
	m := sendUntilOneCrosses(t, ctx, pub, sub, func(int) []byte { return []byte("fine") })
	require.Equal(t, "fine", string(m), "a message after the hostile ones")
}
