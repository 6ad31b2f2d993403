package iox_test

// How channels end, across processes: a value handed to Out just before Close,
// Close with a full send queue, the peer's view of a Close whose bye found it
// full, and both ends closing at once. Each test's rounds are few in `make
// test`; IOX_TORTURE=1 runs many.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/iox-go/iox"
)

func init() {
	children["eol-out-close"] = childEOLOutClose
	children["eol-idle-peer"] = childEOLIdlePeer
	children["eol-double-close"] = childEOLDoubleClose
}

const eolOutCount = 100

// childEOLOutClose sends eolOutCount messages through Out (of a pair, or of a
// publisher when IOX_KIND is "pub") and closes at once, IOX_ROUNDS times on
// IOX_SERVICE-<round>; it reports each Close's result as "closed ROUND KIND".
func childEOLOutClose() error {
	node, err := nsFromEnv().childNode()
	if err != nil {
		return err
	}
	defer node.Close()
	rounds, _ := strconv.Atoi(os.Getenv("IOX_ROUNDS"))
	ctx := context.Background()
	for r := 0; r < rounds; r++ {
		name := fmt.Sprintf("%s-%d", os.Getenv("IOX_SERVICE"), r)
		var out chan<- []byte
		var closeIt func() error
		if os.Getenv("IOX_KIND") == "pub" {
			if _, err := nextLine(parentLines1(), "go", 20*time.Second); err != nil {
				return err
			}
			p, err := iox.OpenPub(ctx, node, name, iox.WaitSubscribers(1), iox.WithLinger(10*time.Second))
			if err != nil {
				return err
			}
			out, closeIt = p.Out(), p.Close
		} else {
			p, err := iox.OpenPair(ctx, node, name, iox.WithLinger(10*time.Second))
			if err != nil {
				return err
			}
			out, closeIt = p.Out(), p.Close
		}
		for i := uint64(0); i < eolOutCount; i++ {
			out <- seqMsg(i)
		}
		fmt.Printf("closed %d %s\n", r, kindOf(closeIt()))
	}
	return nil
}

// parentLines1 is parentLines started once per process.
var parentLines1 = sync.OnceValue(parentLines)

// TestEndOutBeforeCloseIsDelivered: a value that Out accepted just before Close
// reaches the peer, and Close confirms it (it once went missing behind a nil
// Close, the Out goroutine's value refused by the closing sender).
func TestEndOutBeforeCloseIsDelivered(t *testing.T) {
	rounds := loops(4, 2, 40)
	for _, kind := range []string{"pair", "pub"} {
		t.Run(kind, func(t *testing.T) {
			ns := newNamespace(t)
			node := ns.node(t)
			ctx := advCtx(t)
			c := spawn(t, ns, "eol-out-close", "IOX_SERVICE=out-close", "IOX_KIND="+kind, fmt.Sprintf("IOX_ROUNDS=%d", rounds))
			for r := 0; r < rounds; r++ {
				name := fmt.Sprintf("out-close-%d", r)
				var recv func(context.Context) ([]byte, error)
				var closeIt func() error
				if kind == "pub" {
					s, err := iox.OpenSub(ctx, node, name)
					require.NoError(t, err)
					recv, closeIt = s.Recv, s.Close
					c.say("go")
				} else {
					p, err := iox.OpenPair(ctx, node, name)
					require.NoError(t, err)
					recv, closeIt = p.Recv, p.Close
				}
				for i := uint64(0); i < eolOutCount; i++ {
					m, err := recv(ctx)
					require.NoError(t, err, "round %d: message %d of %d", r, i, eolOutCount)
					require.Equal(t, i, binary.LittleEndian.Uint64(m), "round %d", r)
				}
				require.Equal(t, fmt.Sprintf("closed %d nil", r), c.line(), "round %d: the sender's Close", r)
				if kind == "pair" { // the sender's bye ends the pair cleanly
					_, err := recv(ctx)
					require.ErrorIs(t, err, iox.ErrPeerClosed, "round %d", r)
				}
				require.NoError(t, closeIt())
			}
			c.wait()
		})
	}
}

// childEOLIdlePeer opens the pair IOX_SERVICE and reads nothing. It reports how
// the pair ended ("ended KIND") once it has, then what Recv delivers after
// that: "drained N KIND" with the count of messages in order and the error
// that ended them. It stays alive until the parent hangs up.
func childEOLIdlePeer() error {
	node, err := nsFromEnv().childNode()
	if err != nil {
		return err
	}
	defer node.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p, err := iox.OpenPair(ctx, node, os.Getenv("IOX_SERVICE"), iox.BufferSize(2), iox.WithChanCap(2))
	if err != nil {
		return err
	}
	defer p.Close()
	fmt.Println("ready")
	select {
	case <-p.Done():
		fmt.Println("ended", kindOf(p.Err()))
	case <-ctx.Done():
		fmt.Println("ended never")
		return nil
	}
	n := uint64(0)
	for {
		m, err := p.Recv(ctx)
		if err != nil {
			fmt.Println("drained", n, kindOf(err))
			break
		}
		if got := binary.LittleEndian.Uint64(m); got != n {
			fmt.Printf("drained %d out-of-order(%d)\n", n, got)
			break
		}
		n++
	}
	parentSays()
	return nil
}

// cpuTime is the CPU time this process has used so far.
func cpuTime(t testing.TB) time.Duration {
	var ru syscall.Rusage
	require.NoError(t, syscall.Getrusage(syscall.RUSAGE_SELF, &ru))
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// fillPair sends on p until Send is held back (the peer took nothing more and
// the queue is full), and returns how many messages went.
func fillPair(t *testing.T, ctx context.Context, p *iox.Pair[[]byte]) uint64 {
	t.Helper()
	var sent sync.WaitGroup
	var n uint64
	var mu sync.Mutex
	sctx, stop := context.WithCancel(ctx)
	sent.Add(1)
	go func() {
		defer sent.Done()
		for i := uint64(0); ; i++ {
			if p.Send(sctx, seqMsg(i)) != nil {
				return
			}
			mu.Lock()
			n = i + 1
			mu.Unlock()
		}
	}()
	waitHeldBack(t, "iox.(*Pair[...]).Send", func() int64 { mu.Lock(); defer mu.Unlock(); return int64(n) })
	stop()
	sent.Wait()
	return n
}

// TestEndCloseWithAFullPeer: Close of a pair whose peer reads nothing, with the
// queue full. Close waits for room without burning CPU (it once spun on a lock
// for the whole linger time), reports what the peer did not confirm, and the
// peer, whose process lives on, sees a clean end (ErrPeerClosed) and still
// gets, in order, what had reached its shared memory; it once saw nothing until
// the closing process exited, then ErrPeerCrashed. Both a graceful Close and
// the end of the pair's context.
func TestEndCloseWithAFullPeer(t *testing.T) {
	for _, how := range []string{"close", "context"} {
		t.Run(how, func(t *testing.T) {
			ns := newNamespace(t)
			node := ns.node(t)
			ctx := advCtx(t)
			c := spawn(t, ns, "eol-idle-peer", "IOX_SERVICE=full-close")
			c.expect("ready")
			pctx, cancel := context.WithCancel(ctx)
			defer cancel()
			linger := 1500 * time.Millisecond
			p, err := iox.OpenPair(pctx, node, "full-close", iox.BufferSize(2), iox.WithChanCap(64), iox.WithLinger(linger))
			require.NoError(t, err)
			sent := fillPair(t, ctx, p)
			require.Greater(t, sent, uint64(64))

			start, cpu0 := time.Now(), cpuTime(t)
			if how == "context" {
				cancel()
			}
			err = p.Close()
			wall, cpu := time.Since(start), cpuTime(t)-cpu0
			t.Logf("Close took %v and used %v of CPU: %v", wall, cpu, err)
			require.ErrorIs(t, err, iox.ErrUndelivered)
			if how == "close" {
				// Close waited for room until the linger time ended: it must
				// have waited, not spun.
				require.GreaterOrEqual(t, wall, linger)
				require.Less(t, cpu, wall/4, "Close used %v of CPU in %v", cpu, wall)
			}

			require.Equal(t, "ended ErrPeerClosed", c.line(), "the peer's view of the end")
			drained := c.expectPrefix("drained ")
			fields := strings.Fields(drained)
			require.Len(t, fields, 2, drained)
			require.Equal(t, "ErrPeerClosed", fields[1], "what ends the peer's Recv")
			got, err := strconv.ParseUint(fields[0], 10, 64)
			require.NoError(t, err)
			require.LessOrEqual(t, got, sent)
			require.Positive(t, got, "what had reached the peer's shared memory")
			c.wait()
		})
	}
}

// childEOLDoubleClose runs IOX_PAIRS pairs IOX_SERVICE-<k> at once, as
// doubleCloseSide with IOX_READ; when the parent says "close" every pair is
// closed at once. It reports "pair K sent S read N CLOSE-RESULT" for each.
func childEOLDoubleClose() error {
	node, err := nsFromEnv().childNode()
	if err != nil {
		return err
	}
	defer node.Close()
	pairs, _ := strconv.Atoi(os.Getenv("IOX_PAIRS"))
	read, _ := strconv.Atoi(os.Getenv("IOX_READ"))
	res, err := doubleCloseSide(node, os.Getenv("IOX_SERVICE"), pairs, read, func() {
		fmt.Println("ready")
		parentSays()
	})
	if err != nil {
		return err
	}
	for k, r := range res {
		fmt.Printf("pair %d sent %d read %d %s\n", k, r.sent, r.read, r.close)
	}
	return nil
}

type doubleCloseResult struct {
	sent, read int
	close      string // "ok", or the number of messages Close said were not confirmed
}

// doubleCloseAll is the number of messages each end sends and reads in the
// double-close test when both read everything.
const doubleCloseAll = 3000

// doubleCloseSide is one process's side of the double-close test. With read
// doubleCloseAll, each pair sends and reads doubleCloseAll small messages
// (packed many to a sample). Otherwise each pair, with small queues, sends
// 5 KiB messages (too large to be packed: one to a sample) until Close stops
// it, and reads the first read of the peer's.
// It calls ready once every reader has finished (and, in the second case,
// every sender is held back), then closes all pairs at once.
func doubleCloseSide(node *iox.Node, base string, pairs, read int, ready func()) ([]doubleCloseResult, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	all := read == doubleCloseAll
	opts, size := []iox.Option{iox.WithLinger(20 * time.Second)}, 8
	if !all {
		opts, size = append(opts, iox.BufferSize(4), iox.WithChanCap(4)), 5<<10
	}
	ps := make([]*iox.Pair[[]byte], pairs)
	for k := range ps {
		p, err := iox.OpenPair(ctx, node, fmt.Sprintf("%s-%d", base, k), opts...)
		if err != nil {
			return nil, err
		}
		ps[k] = p
	}
	res := make([]doubleCloseResult, pairs)
	errs := make(chan error, 2*pairs)
	var readers, senders sync.WaitGroup
	for k, p := range ps {
		readers.Add(1)
		senders.Add(1)
		go func() {
			defer senders.Done()
			for i := 0; !all || i < doubleCloseAll; i++ {
				m := make([]byte, size)
				binary.LittleEndian.PutUint64(m, uint64(i))
				if err := p.Send(ctx, m); err != nil {
					// the peer may close first: then its end, not ours, stops us
					if all || !(errors.Is(err, iox.ErrClosed) || errors.Is(err, iox.ErrPeerClosed)) {
						errs <- fmt.Errorf("pair %d: send %d: %w", k, i, err)
					}
					return
				}
				res[k].sent = i + 1
			}
		}()
		go func() {
			defer readers.Done()
			for i := 0; i < read; i++ {
				m, err := p.Recv(ctx)
				if err != nil {
					errs <- fmt.Errorf("pair %d: receive %d: %w", k, i, err)
					return
				}
				if got := binary.LittleEndian.Uint64(m); got != uint64(i) {
					errs <- fmt.Errorf("pair %d: message %d has sequence %d", k, i, got)
					return
				}
				res[k].read = i + 1
			}
		}()
	}
	readers.Wait()
	if all {
		senders.Wait()
	} else if !waitUntil(20*time.Second, func() bool { return goroutinesIn("iox.(*Pair[...]).Send", true) == pairs }) {
		// every sender held back: the peer's end holds all it can while it
		// is open, and some messages are still queued here
		return nil, fmt.Errorf("the senders were not held back")
	}
	ready()
	var closing sync.WaitGroup
	for k, p := range ps {
		closing.Add(1)
		go func() {
			defer closing.Done()
			res[k].close = unconfirmedOf(p.Close())
		}()
	}
	closing.Wait()
	senders.Wait()
	close(errs)
	for err := range errs {
		return nil, err
	}
	return res, nil
}

var unconfirmedCount = regexp.MustCompile(`(\d+) of (\d+) messages not confirmed`)

// unconfirmedOf is "ok" for a nil Close, the number of unconfirmed messages for
// an ErrUndelivered one, and the error's kind otherwise.
func unconfirmedOf(err error) string {
	if err == nil {
		return "ok"
	}
	if m := unconfirmedCount.FindStringSubmatch(err.Error()); m != nil && errors.Is(err, iox.ErrUndelivered) {
		return m[1]
	}
	return kindOf(err)
}

// TestEndBothClosingAtOnce: both ends of several pairs close at the same
// moment. A peer confirms what its end took while it was open: what its
// application read, and at most what its end holds for an application that
// does not read (doubleCloseHold). So a nil Close means the peer read every
// message or could have, and one that did not confirm them all never claims
// more. It once returned nil while the closing peer had taken every message
// out of shared memory only to drop it. When both ends read everything, both
// Close calls return nil, and promptly (one once waited its whole linger
// time).
func TestEndBothClosingAtOnce(t *testing.T) {
	const pairs = 4
	rounds := loops(3, 2, 20)
	for _, read := range []int{doubleCloseAll, 40} {
		t.Run(fmt.Sprintf("read%d", read), func(t *testing.T) {
			for r := 0; r < rounds; r++ {
				ns := newNamespace(t)
				node := ns.node(t)
				base := fmt.Sprintf("double-%d", r)
				c := spawn(t, ns, "eol-double-close", "IOX_SERVICE="+base, fmt.Sprintf("IOX_PAIRS=%d", pairs),
					fmt.Sprintf("IOX_READ=%d", read))
				var mine []doubleCloseResult
				within(t, 15*time.Second, "both sides closing", func() {
					var err error
					mine, err = doubleCloseSide(node, base, pairs, read, func() {
						c.expect("ready")
						c.say("close")
					})
					require.NoError(t, err)
				})
				for k := 0; k < pairs; k++ {
					var theirs doubleCloseResult
					line := c.line()
					_, err := fmt.Sscanf(line, "pair "+strconv.Itoa(k)+" sent %d read %d %s", &theirs.sent, &theirs.read, &theirs.close)
					require.NoError(t, err, line)
					what := fmt.Sprintf("round %d pair %d", r, k)
					hold := doubleCloseHold
					if read == doubleCloseAll {
						hold = 0
					}
					checkDoubleClose(t, what+": this side's Close", mine[k].close, mine[k].sent, theirs.read, hold)
					checkDoubleClose(t, what+": the child's Close", theirs.close, theirs.sent, mine[k].read, hold)
					if read == doubleCloseAll {
						require.Equal(t, "ok", mine[k].close, what)
						require.Equal(t, "ok", theirs.close, what)
					}
				}
				c.wait()
			}
		})
	}
}

// doubleCloseHold is the most a pair end of the double-close test (BufferSize
// 4, WithChanCap 4) takes out of shared memory for an application that does
// not read: its keeper takes up to its queue and channel capacity, never a
// batch beyond it (one sample per message: 5 KiB messages are not packed).
const doubleCloseHold = 4 + 4

// checkDoubleClose checks one Close result against what the peer read of the
// messages sent, given that the peer's end may hold hold more unread: nil only
// when the peer read them all or could have, and never fewer unconfirmed than
// that leaves.
func checkDoubleClose(t *testing.T, what, result string, sent, peerRead, hold int) {
	t.Helper()
	if result == "ok" {
		require.LessOrEqual(t, sent-peerRead, hold, "%s returned nil but the peer read %d of %d", what, peerRead, sent)
		return
	}
	missing, err := strconv.Atoi(result)
	require.NoError(t, err, "%s: %s", what, result)
	require.GreaterOrEqual(t, missing, sent-peerRead-hold, "%s claims more delivered than the peer could read", what)
}
