package iox_test

// Which ends pair: a pair end pairs once. A new end that finds an end still
// ending (its peer closed) waits for a real peer, and the ending end hands it
// nothing that was meant for the peer that is gone.

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/iox-go/iox"
)

func init() { children["pair-rejoin"] = childPairRejoin }

// childPairRejoin plays the ends that come and go in another process, one
// round after another, on two nodes (a node per end, or one for both):
//
//	peer NAME NODE   opens P, takes "hello", answers "p-hello", says "paired"
//	                 and reads nothing more
//	close            closes P and says "closed"
//	join NAME NODE [BUF]
//	                 opens N (with BufferSize BUF, default 4; 0: the
//	                 default BufferSize), sends "n-0" at
//	                 once and says "joined"; then takes three messages (new-0,
//	                 new-1, new-2) and says "received", sends "n-1" and "n-2",
//	                 and expects a clean end: "ok"
//
// A step that goes wrong says "fail: …" and the child goes on to the next
// command.
func childPairRejoin() error {
	var nodes [2]*iox.Node
	for i := range nodes {
		n, err := nsFromEnv().childNode()
		if err != nil {
			return err
		}
		defer n.Close()
		nodes[i] = n
	}
	ctx := context.Background()
	var p *iox.Pair[[]byte]
	defer func() {
		if p != nil {
			p.Close()
		}
	}()
	for {
		line := parentSays()
		if line == "" {
			return nil
		}
		f := strings.Fields(line)
		switch f[0] {
		case "peer":
			var err error
			if p, err = iox.OpenPair(ctx, nodes[nodeIndex(f[2])], f[1], iox.BufferSize(4)); err != nil {
				return err
			}
			if m, err := recvFor(p, 20*time.Second); err != nil || string(m) != "hello" {
				fmt.Printf("fail: P took %q, %v\n", m, err)
				continue
			}
			if err := p.Send(ctx, []byte("p-hello")); err != nil {
				return err
			}
			fmt.Println("paired")
		case "close":
			p.Close()
			p = nil
			fmt.Println("closed")
		case "join":
			buf := 4
			if len(f) > 3 {
				buf, _ = strconv.Atoi(f[3])
			}
			fmt.Println(joinRound(nodes[nodeIndex(f[2])], f[1], buf))
		}
	}
}

func nodeIndex(s string) int {
	if s == "1" {
		return 1
	}
	return 0
}

// recvFor receives one message, waiting at most d.
func recvFor(p *iox.Pair[[]byte], d time.Duration) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return p.Recv(ctx)
}

// joinRound is the "join" command of childPairRejoin; it returns the last
// line to say.
func joinRound(node *iox.Node, name string, buffer int) string {
	ctx := context.Background()
	var opts []iox.Option
	if buffer > 0 {
		opts = append(opts, iox.BufferSize(buffer))
	}
	n, err := iox.OpenPair(ctx, node, name, opts...)
	if err != nil {
		return "fail: open N: " + err.Error()
	}
	defer n.Close()
	if err := n.Send(ctx, []byte("n-0")); err != nil {
		return "fail: N's first send: " + err.Error()
	}
	fmt.Println("joined")
	for i := range 3 {
		m, err := recvFor(n, 20*time.Second)
		if err != nil {
			return fmt.Sprintf("fail: N ended before message %d: %v", i, err)
		}
		if want := fmt.Sprintf("new-%d", i); string(m) != want {
			return fmt.Sprintf("fail: N took %q where %q was due", m, want)
		}
	}
	fmt.Println("received")
	for i := 1; i <= 2; i++ {
		if err := n.Send(ctx, []byte(fmt.Sprintf("n-%d", i))); err != nil {
			return "fail: N's send: " + err.Error()
		}
	}
	if m, err := recvFor(n, 20*time.Second); !errors.Is(err, iox.ErrPeerClosed) {
		return fmt.Sprintf("fail: N's end: %q, %v", m, err)
	}
	if err := n.Close(); err != nil {
		return "fail: N's Close: " + err.Error()
	}
	return "ok"
}

// A pair end O and its peer P (another process); O sends a burst that P does
// not read, and P closes. A new end N then opens the name in P's process
// (and slot), on P's node or another, while O is still ending: O has read
// P's bye and stays open until N opened and sent, or O closes together with
// P and N opens as soon as P's Close returned. N sends at once. After O is
// gone a new end opens in O's place: N must not have ended, must take nothing
// of what O meant for P (neither its burst nor its bye), and N and the new
// end carry messages both ways, N's first one included, then end cleanly.
func TestPairNewEndWaitsForARealPeerWhileTheOldOneEnds(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := advCtx(t)
	c := spawn(t, ns, "pair-rejoin")
	rounds := loops(20, 8, 200)
	for r := range rounds {
		name := fmt.Sprintf("rejoin%d", r)
		nodeOfN := r % 2         // N on P's node or on another node of P's process
		together := (r/2)%2 == 1 // O closes with P, or after N opened
		o, err := iox.OpenPair(ctx, node, name, iox.BufferSize(4), iox.WithChanCap(2048))
		require.NoError(t, err)
		c.say("peer " + name + " 0")
		require.NoError(t, o.Send(ctx, []byte("hello")))
		c.expect("paired")
		m, err := o.Recv(ctx)
		require.NoError(t, err)
		require.Equal(t, "p-hello", string(m))
		for i := range 1000 { // more than P's buffer and queue take: most of it waits in O
			require.NoError(t, o.Send(ctx, []byte(fmt.Sprintf("old-%d", i))))
		}
		closed := make(chan error, 1)
		if together { // O closes with P, and N opens once P's Close returned
			go func() { closed <- o.Close() }()
			c.say("close")
			c.expect("closed")
			c.say(fmt.Sprintf("join %s %d", name, nodeOfN))
			if l := c.line(); l != "joined" {
				t.Fatalf("round %d (N on node %d, O closing with P): %s", r, nodeOfN, l)
			}
		} else { // O saw P's bye and stays open while N opens and sends
			c.say("close")
			c.expect("closed")
			select {
			case <-o.Done():
			case <-time.After(20 * time.Second):
				t.Fatalf("round %d: O never saw P's bye", r)
			}
			require.ErrorIs(t, o.Err(), iox.ErrPeerClosed)
			c.say(fmt.Sprintf("join %s %d", name, nodeOfN))
			if l := c.line(); l != "joined" {
				t.Fatalf("round %d (N on node %d, O open): %s", r, nodeOfN, l)
			}
			closed <- o.Close()
		}
		err = <-closed
		require.ErrorIs(t, err, iox.ErrUndelivered, "round %d: O's burst was never confirmed", r)

		pairAgain(t, ctx, c, node, name, fmt.Sprintf("round %d (N on node %d, O closing with P %v)", r, nodeOfN, together), iox.BufferSize(4))
	}
}

// pairAgain opens a new end of name where the old one was, once that is gone,
// and holds it and N (the "join" of child c) to a fresh pair: N took nothing
// before the new end's messages, and N's messages, the first one sent while
// the old end was still there included, all come, in order; both Close
// cleanly.
func pairAgain(t *testing.T, ctx context.Context, c *child, node *iox.Node, name, what string, opts ...iox.Option) {
	t.Helper()
	o, err := iox.OpenPair(ctx, node, name, opts...)
	require.NoError(t, err, what)
	for i := range 3 {
		require.NoError(t, o.Send(ctx, []byte(fmt.Sprintf("new-%d", i))), what)
	}
	if l := c.line(); l != "received" {
		o.Close()
		t.Fatalf("%s: %s", what, l)
	}
	for i := range 3 {
		m, err := o.Recv(ctx)
		require.NoError(t, err, "%s: message %d from N", what, i)
		require.Equal(t, fmt.Sprintf("n-%d", i), string(m), what)
	}
	require.NoError(t, o.Close(), "%s: N confirms everything", what)
	if l := c.line(); l != "ok" {
		t.Fatalf("%s: %s", what, l)
	}
}

// The same when O's peer died: O saw it crash and is still open while N
// opens in the dead end's slot (after cleaning it up) and sends.
func TestPairNewEndWaitsForARealPeerWhileTheOldOneSawItsPeerDie(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := advCtx(t)
	c := spawn(t, ns, "pair-rejoin")
	for r := range loops(4, 2, 40) {
		name := fmt.Sprintf("rejoin-dead%d", r)
		o, err := iox.OpenPair(ctx, node, name)
		require.NoError(t, err)
		dying := spawn(t, ns, "adv-pair-exit", "IOX_SERVICE="+name)
		dying.expect("ready")
		eventually(t, "O to pair", o.Connected)
		require.NoError(t, o.Send(ctx, []byte("for the dying end")))
		dying.say("exit")
		dying.wait()
		select {
		case <-o.Done():
		case <-time.After(20 * time.Second):
			t.Fatalf("round %d: O never saw its peer die", r)
		}
		require.ErrorIs(t, o.Err(), iox.ErrPeerCrashed)
		c.say(fmt.Sprintf("join %s %d 0", name, r%2))
		if l := c.line(); l != "joined" {
			t.Fatalf("round %d: %s", r, l)
		}
		o.Close()
		pairAgain(t, ctx, c, node, name, fmt.Sprintf("round %d", r))
	}
}

// A new end that waits while the old end stays open (its peer closed, its
// program has not closed it yet) waits without spinning: it has no peer to
// tell that it waits for room, and the old end has no room to announce. Its
// Close lingers for a peer that does not come and uses little CPU meanwhile;
// what it sent goes to nobody (ErrUndelivered), the old end included.
func TestPairNewEndWaitsWithoutSpinningWhileTheOldOneStaysOpen(t *testing.T) {
	ns := newNamespace(t)
	ctx := advCtx(t)
	o, err := iox.OpenPair(ctx, ns.node(t), "stays")
	require.NoError(t, err)
	defer o.Close()
	p, err := iox.OpenPair(ctx, ns.node(t), "stays")
	require.NoError(t, err)
	require.NoError(t, o.Send(ctx, []byte("hello")))
	m, err := p.Recv(ctx)
	require.NoError(t, err)
	require.Equal(t, "hello", string(m))
	require.NoError(t, p.Close())
	<-o.Done()
	require.ErrorIs(t, o.Err(), iox.ErrPeerClosed)

	linger := 1500 * time.Millisecond
	n, err := iox.OpenPair(ctx, ns.node(t), "stays", iox.WithLinger(linger))
	require.NoError(t, err)
	require.NoError(t, n.Send(ctx, []byte("n-0")))
	require.False(t, n.Connected(), "the old end is no peer")
	start, cpu0 := time.Now(), cpuTime(t)
	err = n.Close()
	wall, cpu := time.Since(start), cpuTime(t)-cpu0
	t.Logf("Close took %v and used %v of CPU: %v", wall, cpu, err)
	require.ErrorIs(t, err, iox.ErrUndelivered)
	require.GreaterOrEqual(t, wall, linger)
	require.Less(t, cpu, wall/4, "Close used %v of CPU in %v", cpu, wall)
	m, err = o.Recv(ctx)
	require.ErrorIs(t, err, iox.ErrPeerClosed, "the old end took %q", m)
}
