package iox_test

// Soak: pairs and publish-subscribe channels stream for a while, one subscriber
// starved of CPU, and nothing is lost, reordered or leaked.

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/iox-go/iox"
)

func init() {
	children["rel-soak-pair"] = childSoakPair
	children["rel-soak-sub"] = childSoakSub
}

// soakMsg is message i of a soak stream: the sequence number, then 0 to 199
// bytes that depend on it.
func soakMsg(i uint64) []byte {
	m := make([]byte, 8+int(i%200))
	binary.LittleEndian.PutUint64(m, i)
	for k := 8; k < len(m); k++ {
		m[k] = byte(i) + byte(k)
	}
	return m
}

func checkSoakMsg(m []byte, want uint64) error {
	if len(m) < 8 || binary.LittleEndian.Uint64(m) != want || !bytes.Equal(m, soakMsg(want)) {
		return fmt.Errorf("message %d is wrong (%d bytes; lost, duplicated, reordered or damaged)", want, len(m))
	}
	return nil
}

// soakEnd streams soak messages both ways on a pair: send until stop, and check
// what arrives.
type soakEnd struct {
	p        *iox.Pair[[]byte]
	sent     atomic.Uint64
	received atomic.Uint64
	bad      atomic.Value
	stop     chan struct{}
	sendDone chan struct{}
	recvDone chan struct{}
}

func startSoakEnd(ctx context.Context, p *iox.Pair[[]byte]) *soakEnd {
	e := &soakEnd{p: p, stop: make(chan struct{}), sendDone: make(chan struct{}), recvDone: make(chan struct{})}
	go func() {
		defer close(e.sendDone)
		for i := uint64(0); ; i++ {
			select {
			case <-e.stop:
				return
			default:
			}
			if err := p.Send(ctx, soakMsg(i)); err != nil {
				e.bad.CompareAndSwap(nil, fmt.Errorf("send %d: %w", i, err))
				return
			}
			e.sent.Store(i + 1)
		}
	}()
	go func() {
		defer close(e.recvDone)
		for m := range p.In() {
			if err := checkSoakMsg(m, e.received.Load()); err != nil {
				e.bad.CompareAndSwap(nil, err)
			}
			e.received.Add(1)
		}
	}()
	return e
}

func (e *soakEnd) err() error {
	if v := e.bad.Load(); v != nil {
		return v.(error)
	}
	return nil
}

// childSoakPair is the other end of a soak pair: "stop" → "sent N"; "expect M" →
// "got M" once M arrived; "close" → closes.
func childSoakPair() error {
	node, err := nsFromEnv().childNode()
	if err != nil {
		return err
	}
	defer node.Close()
	ctx := context.Background()
	p, err := iox.OpenPair(ctx, node, os.Getenv("IOX_SERVICE"), iox.BufferSize(16))
	if err != nil {
		return err
	}
	defer p.Close()
	e := startSoakEnd(ctx, p)
	fmt.Println("ready")
	lines := parentLines()
	if _, err := nextLine(lines, "stop", 10*time.Minute); err != nil {
		return err
	}
	close(e.stop)
	<-e.sendDone
	fmt.Println("sent", e.sent.Load())
	v, err := nextLine(lines, "expect", time.Minute)
	if err != nil {
		return err
	}
	want, _ := strconv.ParseUint(v, 10, 64)
	if !waitUntil(30*time.Second, func() bool { return e.received.Load() >= want || e.err() != nil }) {
		return fmt.Errorf("received %d of %d", e.received.Load(), want)
	}
	if err := e.err(); err != nil {
		return err
	}
	fmt.Println("got", e.received.Load())
	if _, err := nextLine(lines, "close", time.Minute); err != nil {
		return err
	}
	err = p.Close()
	<-e.recvDone
	return err
}

// starve keeps this process's CPUs busy and lowers its priority.
func starve() {
	syscall.Setpriority(syscall.PRIO_PROCESS, 0, 19)
	for i := 0; i < 4*runtime.GOMAXPROCS(0); i++ {
		go func() {
			x := uint64(i)
			for {
				x = x*6364136223846793005 + 1442695040888963407
				if x == 0 {
					runtime.Gosched()
				}
			}
		}()
	}
}

// childSoakSub checks a soak publisher's sequence numbers on IOX_SERVICE
// (consecutive from 0; with IOX_LOSSY increasing). With IOX_STARVE it competes
// with busy goroutines at the lowest priority. "expect L" → "got COUNT" once L
// arrived; then it closes at "done".
func childSoakSub() error {
	if os.Getenv("IOX_STARVE") != "" {
		starve()
	}
	node, err := nsFromEnv().childNode()
	if err != nil {
		return err
	}
	defer node.Close()
	ctx := context.Background()
	lossy := os.Getenv("IOX_LOSSY") != ""
	opts := []iox.Option{iox.BufferSize(16)}
	if lossy {
		opts = append(opts, iox.Lossy())
	}
	s, err := iox.OpenSub(ctx, node, os.Getenv("IOX_SERVICE"), opts...)
	if err != nil {
		return err
	}
	defer s.Close()
	fmt.Println("ready")
	lines := parentLines()
	want := int64(-1)
	expect := make(chan int64, 1)
	go func() {
		v, err := nextLine(lines, "expect", 10*time.Minute)
		if err != nil {
			expect <- -2
			return
		}
		n, _ := strconv.ParseInt(v, 10, 64)
		expect <- n
	}()
	var count uint64
	last := int64(-1)
	for want < 0 || last < want {
		rctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		m, err := s.Recv(rctx)
		cancel()
		if want < 0 {
			select {
			case want = <-expect:
				if want == -2 {
					return errors.New("no expect line")
				}
			default:
			}
		}
		if errors.Is(err, context.DeadlineExceeded) {
			continue
		}
		if err != nil {
			return fmt.Errorf("receive after %d: %w", last, err)
		}
		seq := int64(binary.LittleEndian.Uint64(m))
		if err := checkSoakMsg(m, uint64(seq)); err != nil {
			return err
		}
		if !lossy && seq != last+1 || lossy && seq <= last {
			return fmt.Errorf("got %d after %d", seq, last)
		}
		last = seq
		count++
	}
	fmt.Println("got", count)
	if _, err := nextLine(lines, "done", time.Minute); err != nil {
		return err
	}
	return s.Close()
}

// rss returns the process's resident set (and its anonymous part) in KiB.
func rss(t *testing.T) (total, anon int) {
	return int(procStatus(t, "VmRSS")), int(procStatus(t, "RssAnon"))
}

func TestSoak(t *testing.T) {
	d := 4 * time.Second
	if raceEnabled {
		d = 3 * time.Second
	}
	if torture {
		d = 60 * time.Second
	}
	ns := newNamespace(t)
	node := ns.node(t)
	ctx, cancel := context.WithTimeout(context.Background(), d+2*time.Minute)
	defer cancel()

	var ends []*soakEnd
	var pairKids []*child
	for i := 0; i < 2; i++ {
		name := fmt.Sprintf("soak-pair-%d", i)
		p, err := iox.OpenPair(ctx, node, name, iox.BufferSize(16))
		require.NoError(t, err)
		defer p.Close()
		c := spawn(t, ns, "rel-soak-pair", "IOX_SERVICE="+name)
		c.expect("ready")
		pairKids = append(pairKids, c)
		ends = append(ends, startSoakEnd(ctx, p))
	}
	pub, err := iox.OpenPub(ctx, node, "soak-ps", iox.BufferSize(16))
	require.NoError(t, err)
	defer pub.Close()
	lossy, err := iox.OpenPub(ctx, node, "soak-lossy", iox.Lossy(), iox.BufferSize(16))
	require.NoError(t, err)
	defer lossy.Close()
	var subKids []*child
	for i := 0; i < 3; i++ {
		env := []string{"IOX_SERVICE=soak-ps"}
		if i == 2 {
			env = append(env, "IOX_STARVE=1", "GOMAXPROCS=1")
		}
		subKids = append(subKids, spawn(t, ns, "rel-soak-sub", env...))
	}
	lossyKid := spawn(t, ns, "rel-soak-sub", "IOX_SERVICE=soak-lossy", "IOX_LOSSY=1", "IOX_STARVE=1", "GOMAXPROCS=1")
	for _, c := range append(subKids, lossyKid) {
		c.expect("ready")
	}
	waitSubscribers(t, pub, 3)
	waitSubscribers(t, lossy, 1)

	runtime.GC()
	rssStart, anonStart := rss(t)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var psSent, lossySent atomic.Uint64
	var maxLossySend atomic.Int64
	errs := make(chan error, 2)
	wg.Add(2)
	go func() {
		defer wg.Done()
		for i := uint64(0); ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if err := pub.Send(ctx, soakMsg(i)); err != nil {
				errs <- fmt.Errorf("lossless publish %d: %w", i, err)
				return
			}
			psSent.Store(i + 1)
		}
	}()
	go func() {
		defer wg.Done()
		for i := uint64(0); ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			start := time.Now()
			if err := lossy.Send(ctx, soakMsg(i)); err != nil {
				errs <- fmt.Errorf("lossy publish %d: %w", i, err)
				return
			}
			if took := int64(time.Since(start)); took > maxLossySend.Load() {
				maxLossySend.Store(took)
			}
			lossySent.Store(i + 1)
			if i%16 == 15 {
				time.Sleep(time.Millisecond) // the stimulus's pace: leave the CPUs to the others
			}
		}
	}()
	time.Sleep(d) // the stimulus: the load runs for the soak's duration
	rssEnd, anonEnd := rss(t)
	close(stop)
	within(t, 30*time.Second, "the publishers", wg.Wait)
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}

	// Pairs: both directions must arrive completely and in order.
	var pairMsgs uint64
	for i, e := range ends {
		close(e.stop)
		within(t, 30*time.Second, "a pair sender", func() { <-e.sendDone })
		c := pairKids[i]
		c.say("stop")
		var childSent uint64
		_, err := fmt.Sscanf(c.line(), "sent %d", &childSent)
		require.NoError(t, err)
		c.say(fmt.Sprintf("expect %d", e.sent.Load()))
		c.expect(fmt.Sprintf("got %d", e.sent.Load()))
		eventually(t, "the child's messages", func() bool { return e.received.Load() >= childSent })
		require.NoError(t, e.err())
		require.Equal(t, childSent, e.received.Load())
		pairMsgs += e.sent.Load() + childSent
	}
	// Pubsub: every lossless subscriber gets every message, the starved one too.
	lastPS := int64(psSent.Load()) - 1
	for _, c := range subKids {
		c.say(fmt.Sprintf("expect %d", lastPS))
	}
	for _, c := range subKids {
		c.expect(fmt.Sprintf("got %d", lastPS+1))
	}
	lastLossy := int64(lossySent.Load()) - 1
	lossyKid.say(fmt.Sprintf("expect %d", lastLossy))
	var lossyGot uint64
	_, err = fmt.Sscanf(lossyKid.line(), "got %d", &lossyGot)
	require.NoError(t, err)

	for i, e := range ends {
		pairKids[i].say("close")
		require.NoError(t, e.p.Close())
		within(t, 30*time.Second, "a pair receiver", func() { <-e.recvDone })
		pairKids[i].wait()
	}
	require.NoError(t, pub.Close())
	require.NoError(t, lossy.Close())
	for _, c := range append(subKids, lossyKid) {
		c.say("done")
		c.wait()
	}

	maxSend := time.Duration(maxLossySend.Load())
	bound := time.Second
	if raceEnabled {
		bound = 3 * time.Second
	}
	assert.Less(t, maxSend, bound, "a lossy publisher never waits for a slow subscriber")
	growth := rssEnd - rssStart
	assert.Less(t, growth, 64<<10, "RSS grew from %d KiB to %d KiB", rssStart, rssEnd)
	audited := pairMsgs + 3*uint64(lastPS+1)
	t.Logf("soak %v: pairs %d messages (both ways, both pairs); lossless pubsub %d messages × 3 subscribers (one starved); lossy %d published, starved subscriber got %d in order, slowest lossy Send %v; %d messages audited, 0 lost/duplicated/reordered",
		d, pairMsgs, lastPS+1, lastLossy+1, lossyGot, maxSend, audited)
	t.Logf("parent RSS %d KiB at start, %d KiB at end (anonymous %d → %d KiB)", rssStart, rssEnd, anonStart, anonEnd)
}
