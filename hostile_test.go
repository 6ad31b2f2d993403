package iox

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Adversarial tests of what arrives from shared memory and of the ports' own
// guards, written against the internals (headers, batches, receivers).

// forger is a port-level publisher on a channel's publish-subscribe service that
// sends samples with hand-made iox headers (framed) or without (lossy), as a
// buggy or hostile process could, and wakes the channel's receivers.
type forger struct {
	framed bool
	svc    *PubSubService
	pub    *Publisher
	ev     *EventService
	ntf    *Notifier
	hdr    []byte
}

func newForger(t *testing.T, node *Node, name string, framed bool) *forger {
	t.Helper()
	opts := []Option{WithPayloadType(Bytes), OpenOnly()}
	if framed {
		opts = append(opts, withHeader())
	}
	f := &forger{framed: framed, hdr: make([]byte, headerSize)}
	var err error
	f.svc, err = node.PublishSubscribe(name, opts...)
	require.NoError(t, err)
	f.pub, err = f.svc.Publisher()
	require.NoError(t, err)
	f.ev, err = node.Event(name, OpenOnly())
	require.NoError(t, err)
	f.ntf, err = f.ev.Notifier()
	require.NoError(t, err)
	return f
}

// send sends payload as one sample with header h (framed services only) and
// notifies the data event, so a parked receiver looks.
func (f *forger) send(t *testing.T, h header, payload []byte) {
	t.Helper()
	var k int
	var err error
	if f.framed {
		h.put(f.hdr)
		k, err = f.pub.sendHeader(payload, f.hdr)
	} else {
		k, err = f.pub.Send(payload)
	}
	require.NoError(t, err)
	require.Equal(t, 1, k, "the forged sample must reach the one subscriber")
	_, err = f.ntf.Notify(evData)
	require.NoError(t, err)
}

func (f *forger) close() {
	f.ntf.Close()
	f.ev.Close()
	f.pub.Close()
	f.svc.Close()
}

// hostileCtx bounds a test: every wait below ends long before it unless
// something hangs.
func hostileCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// bytesReceiver is a []byte channel's receiving side (Pair, Sub).
type bytesReceiver interface {
	Recv(context.Context) ([]byte, error)
}

// recvWant receives one message and requires it to be want.
func recvWant[T bytesReceiver](t *testing.T, ctx context.Context, r T, want string) {
	t.Helper()
	m, err := r.Recv(ctx)
	require.NoError(t, err, "want message %.20q", want)
	require.Equal(t, want, string(m))
}

// recvErr receives one item and requires it to be an error matching kind.
func recvErr[T bytesReceiver](t *testing.T, ctx context.Context, r T, kind error) {
	t.Helper()
	m, err := r.Recv(ctx)
	require.ErrorIs(t, err, kind, "got a message of %d bytes (%.20q) instead", len(m), m)
}

// A publisher on the same service that learned the real publisher's tag sends a
// sample with that tag and a sequence number near the top of the range. The
// subscriber reports it once and loses none of the real messages after it: the
// forged number must not become the stream's new position.
func TestHostileSpoofedSequenceNumber(t *testing.T) {
	s := newFuzzSpace(t)
	name := s.name()
	ctx := hostileCtx(t)
	sub, err := OpenSub(ctx, s.node, name)
	require.NoError(t, err)
	defer sub.Close()

	// the sniffer: a plain subscriber port that reads the real headers
	svc, err := s.node.PublishSubscribe(name, WithPayloadType(Bytes), withHeader(), OpenOnly())
	require.NoError(t, err)
	defer svc.Close()
	sniff, err := svc.Subscriber()
	require.NoError(t, err)
	sniffClosed := false
	defer func() {
		if !sniffClosed {
			sniff.Close()
		}
	}()

	pub, err := OpenPub(ctx, s.node, name)
	require.NoError(t, err)
	pubClosed := false
	defer func() {
		if !pubClosed {
			pub.Close()
		}
	}()
	require.NoError(t, pub.Send(ctx, []byte("real-first")))

	b := NewBatch(1<<16, 64).withHeaders(headerSize)
	var real header
	require.Eventually(t, func() bool {
		k, err := sniff.ReceiveBatch(b)
		if err == nil && k > 0 {
			real = readHeader(b.header(0))
			return true
		}
		return false
	}, 10*time.Second, time.Millisecond, "the sniffer never saw the real sample")
	require.Equal(t, kindData, real.kind)
	require.Equal(t, uint64(1), real.seq, "the first sample of a publisher is number 1")
	require.NotZero(t, real.tag)
	// a subscriber that never reads would hold the publisher back and never
	// confirm its Close
	require.NoError(t, sniff.Close())
	sniffClosed = true

	recvWant(t, ctx, sub, "real-first")

	forged, err := svc.Publisher()
	require.NoError(t, err)
	defer forged.Close()
	hb := make([]byte, headerSize)
	spoof := header{tag: real.tag, seq: math.MaxUint64 - 1, kind: kindData}
	spoof.put(hb)
	k, err := forged.sendHeader([]byte("forged"), hb)
	require.NoError(t, err)
	require.Equal(t, 1, k)

	// the forged sample is in the subscriber's queue before Recv looks
	recvErr(t, ctx, sub, ErrProtocol)

	const n = 100
	sent := make(chan error, 1)
	go func() {
		for i := 0; i < n; i++ {
			if err := pub.Send(ctx, []byte(fmt.Sprintf("real-%d", i))); err != nil {
				sent <- err
				return
			}
		}
		sent <- nil
	}()
	for i := 0; i < n; i++ {
		m, err := sub.Recv(ctx)
		require.NoError(t, err, "real message %d was dropped after the forged sample", i)
		require.Equal(t, fmt.Sprintf("real-%d", i), string(m))
	}
	require.NoError(t, <-sent)
	require.NoError(t, forged.Close())
	require.NoError(t, pub.Close(), "the subscriber must still confirm the real publisher's bye")
	pubClosed = true
}

// The same with two forged samples in a row (the top of the range and the
// number after it): neither may become the stream's position, or the real
// publisher is silenced, every later message of it taken for a copy and
// dropped without a word.
func TestHostileSpoofedSequenceNumberTwice(t *testing.T) {
	s := newFuzzSpace(t)
	name := s.name()
	ctx := hostileCtx(t)
	sub, err := OpenSub(ctx, s.node, name)
	require.NoError(t, err)
	defer sub.Close()
	svc, err := s.node.PublishSubscribe(name, WithPayloadType(Bytes), withHeader(), OpenOnly())
	require.NoError(t, err)
	defer svc.Close()
	sniff, err := svc.Subscriber()
	require.NoError(t, err)
	defer sniff.Close()
	pub, err := OpenPub(ctx, s.node, name)
	require.NoError(t, err)
	defer pub.Close()
	require.NoError(t, pub.Send(ctx, []byte("real-first")))
	b := NewBatch(1<<16, 64).withHeaders(headerSize)
	var real header
	require.Eventually(t, func() bool {
		k, err := sniff.ReceiveBatch(b)
		if err == nil && k > 0 {
			real = readHeader(b.header(0))
			return true
		}
		return false
	}, 10*time.Second, time.Millisecond)
	require.NoError(t, sniff.Close())
	recvWant(t, ctx, sub, "real-first")

	forged, err := svc.Publisher()
	require.NoError(t, err)
	defer forged.Close()
	hb := make([]byte, headerSize)
	for k, seq := range []uint64{math.MaxUint64 - 1, math.MaxUint64} {
		h := header{tag: real.tag, seq: seq, kind: kindData}
		h.put(hb)
		n, err := forged.sendHeader([]byte(fmt.Sprintf("forged-%d", k)), hb)
		require.NoError(t, err)
		require.Equal(t, 1, n)
	}
	// The subscriber takes both forged samples before the real publisher goes
	// on: the first is reported; what the second gives is collected below.
	recvErr(t, ctx, sub, ErrProtocol)
	const n = 10
	var items []string
	real0 := 0
	pending := func(quiet time.Duration) {
		for real0 < n {
			rctx, cancel := context.WithTimeout(ctx, quiet)
			m, err := sub.Recv(rctx)
			cancel()
			if errors.Is(err, context.DeadlineExceeded) {
				return
			}
			switch {
			case err != nil:
				require.ErrorIs(t, err, ErrProtocol)
				items = append(items, "ErrProtocol")
			case strings.HasPrefix(string(m), "real-"):
				require.Equal(t, fmt.Sprintf("real-%d", real0), string(m), "after %v", items)
				real0++
				items = append(items, string(m))
			default:
				items = append(items, string(m))
			}
		}
	}
	// what the second forged sample gives, if anything; a short look, as a
	// negative check
	pending(200 * time.Millisecond)
	for i := 0; i < n; i++ {
		require.NoError(t, pub.Send(ctx, []byte(fmt.Sprintf("real-%d", i))))
	}
	// Collect what arrives; a 2 s quiet period ends the collection (the real
	// messages were all sent above, so they are due at once).
	pending(2 * time.Second)
	require.Equal(t, n, real0, "only %d of %d real messages arrived after two forged samples; the subscriber delivered %v and "+
		"dropped the rest silently", real0, n, items)
	for _, it := range items {
		require.False(t, strings.HasPrefix(it, "forged"), "a forged sample was delivered as a message: %v", items)
	}
}

// packed builds a packed payload of msgs; a trailing truncated frame claims
// claim bytes but holds only len(tail).
func packed(msgs []string, claim int, tail []byte) []byte {
	var p []byte
	for _, m := range msgs {
		p = appendFrame(p, []byte(m))
	}
	if tail != nil {
		p = binary.NativeEndian.AppendUint32(p, uint32(claim))
		p = append(p, tail...)
	}
	return p
}

// A packed sample whose header counts 3 messages but whose third frame is cut
// short: the two whole ones arrive, the damage is reported once, and the
// channel goes on with the next sample, through Recv and through In.
func TestHostileMalformedPackedSample(t *testing.T) {
	const tag = 0x0bad5eed
	bad := packed([]string{"one", "two"}, 100, []byte("short"))

	t.Run("Recv", func(t *testing.T) {
		s := newFuzzSpace(t)
		name := s.name()
		ctx := hostileCtx(t)
		sub, err := OpenSub(ctx, s.node, name)
		require.NoError(t, err)
		defer sub.Close()
		f := newForger(t, s.node, name, true)
		defer f.close()
		f.send(t, header{tag: tag, seq: 1, count: 3, kind: kindData}, bad)
		f.send(t, header{tag: tag, seq: 2, kind: kindData}, []byte("three"))
		recvWant(t, ctx, sub, "one")
		recvWant(t, ctx, sub, "two")
		recvErr(t, ctx, sub, ErrProtocol)
		recvWant(t, ctx, sub, "three")
		// and a well-formed packed sample after it
		f.send(t, header{tag: tag, seq: 3, count: 2, kind: kindData}, packed([]string{"four", "five"}, 0, nil))
		recvWant(t, ctx, sub, "four")
		recvWant(t, ctx, sub, "five")
		requireNothingPending(t, sub)
	})

	t.Run("In", func(t *testing.T) {
		s := newFuzzSpace(t)
		name := s.name()
		ctx := hostileCtx(t)
		drops := make(chan error, 16)
		sub, err := OpenSub(ctx, s.node, name, OnDrop(func(err error) { drops <- err }))
		require.NoError(t, err)
		defer sub.Close()
		in := sub.In()
		f := newForger(t, s.node, name, true)
		defer f.close()
		f.send(t, header{tag: tag, seq: 1, count: 3, kind: kindData}, bad)
		f.send(t, header{tag: tag, seq: 2, kind: kindData}, []byte("three"))
		inWant(t, in, "one")
		inWant(t, in, "two")
		inWant(t, in, "three")
		// OnDrop runs on the goroutine behind In before it delivers "three"
		select {
		case err := <-drops:
			require.ErrorIs(t, err, ErrProtocol)
		default:
			t.Fatal("OnDrop did not receive the malformed sample's error before the next message")
		}
		// In keeps delivering: a sample sent while the goroutine behind In waits
		f.send(t, header{tag: tag, seq: 3, kind: kindData}, []byte("four"))
		inWant(t, in, "four")
		select {
		case err := <-drops:
			t.Fatalf("a second drop was reported: %v", err)
		default:
		}
	})
}

func inWant(t *testing.T, in <-chan []byte, want string) {
	t.Helper()
	select {
	case m, ok := <-in:
		require.True(t, ok, "In closed, want %q", want)
		require.Equal(t, want, string(m))
	case <-time.After(10 * time.Second):
		t.Fatalf("In delivered nothing for 10 s, want %q", want)
	}
}

// requireNothingPending checks (with a short receive deadline, a negative
// check rather than synchronisation) that no further item is waiting.
func requireNothingPending(t *testing.T, sub *Sub[[]byte]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	m, err := sub.Recv(ctx)
	require.ErrorIs(t, err, context.DeadlineExceeded, "unexpected item: %.20q", m)
}

// vmHWM is the process's peak resident set in bytes.
func vmHWM(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	require.NoError(t, err)
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) >= 2 && f[0] == "VmHWM:" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			require.NoError(t, err)
			return kb << 10
		}
	}
	t.Fatal("no VmHWM in /proc/self/status")
	return 0
}

// requireRSSWithin fails when the peak RSS grew by more than limit bytes since
// before.
func requireRSSWithin(t *testing.T, before, limit int64) {
	t.Helper()
	grew := vmHWM(t) - before
	require.LessOrEqual(t, grew, limit, "peak RSS grew by %d bytes", grew)
}

// A subscriber opened MaxMessageSize(1024) refuses larger messages as they
// arrive: each comes back as ErrMessageTooLarge without being copied into the
// process, and the messages after it arrive.
func TestHostileReceiveSideSizeLimit(t *testing.T) {
	big := bytes.Repeat([]byte{0xa5}, 256<<10)
	mid := bytes.Repeat([]byte{0x5a}, 2000) // fits the receive buffer, over the limit
	const limit = 64 << 20

	t.Run("lossy", func(t *testing.T) {
		s := newFuzzSpace(t)
		name := s.name()
		ctx := hostileCtx(t)
		sub, err := OpenSub(ctx, s.node, name, Lossy(), MaxMessageSize(1024))
		require.NoError(t, err)
		defer sub.Close()
		f := newForger(t, s.node, name, false)
		defer f.close()
		before := vmHWM(t)
		f.send(t, header{}, []byte("a"))
		f.send(t, header{}, big)
		f.send(t, header{}, []byte("ten bytes!"))
		f.send(t, header{}, mid)
		f.send(t, header{}, []byte("ten more.."))
		recvWant(t, ctx, sub, "a")
		recvErr(t, ctx, sub, ErrMessageTooLarge)
		requireRSSWithin(t, before, limit)
		recvWant(t, ctx, sub, "ten bytes!")
		recvErr(t, ctx, sub, ErrMessageTooLarge)
		recvWant(t, ctx, sub, "ten more..")
		requireRSSWithin(t, before, limit)
	})

	t.Run("lossless-forged", func(t *testing.T) {
		s := newFuzzSpace(t)
		name := s.name()
		ctx := hostileCtx(t)
		sub, err := OpenSub(ctx, s.node, name, MaxMessageSize(1024))
		require.NoError(t, err)
		defer sub.Close()
		f := newForger(t, s.node, name, true)
		defer f.close()
		before := vmHWM(t)
		// the oversized sample is the port's first
		const first = 0x1a46e
		f.send(t, header{tag: first, seq: 1, kind: kindData}, big)
		f.send(t, header{tag: first, seq: 2, kind: kindData}, []byte("ten bytes!"))
		recvErr(t, ctx, sub, ErrMessageTooLarge)
		requireRSSWithin(t, before, limit)
		recvWant(t, ctx, sub, "ten bytes!")
		// a port whose stream is under way: a message sets its position, the
		// oversized one and the next ones follow it
		const later = 0x1a46f
		f.send(t, header{tag: later, seq: 1, kind: kindData}, []byte("a"))
		f.send(t, header{tag: later, seq: 2, kind: kindData}, big)
		f.send(t, header{tag: later, seq: 3, kind: kindData}, []byte("ten bytes!"))
		f.send(t, header{tag: later, seq: 4, kind: kindData}, mid)
		f.send(t, header{tag: later, seq: 5, kind: kindData}, []byte("ten more.."))
		recvWant(t, ctx, sub, "a")
		recvErr(t, ctx, sub, ErrMessageTooLarge)
		requireRSSWithin(t, before, limit)
		recvWant(t, ctx, sub, "ten bytes!")
		recvErr(t, ctx, sub, ErrMessageTooLarge)
		recvWant(t, ctx, sub, "ten more..")
	})

	// The same through a real publisher whose own limit is the default: the
	// subscriber's limit is its own business, and a refused message must not
	// cost the next one.
	t.Run("lossless-real-publisher", func(t *testing.T) {
		s := newFuzzSpace(t)
		name := s.name()
		ctx := hostileCtx(t)
		sub, err := OpenSub(ctx, s.node, name, MaxMessageSize(1024))
		require.NoError(t, err)
		defer sub.Close()
		pub, err := OpenPub(ctx, s.node, name)
		require.NoError(t, err)
		defer pub.Close()
		for _, m := range [][]byte{[]byte("a"), big, []byte("ten bytes!")} {
			require.NoError(t, pub.Send(ctx, m))
		}
		recvWant(t, ctx, sub, "a")
		recvErr(t, ctx, sub, ErrMessageTooLarge)
		recvWant(t, ctx, sub, "ten bytes!")
	})

	// A pair whose ends have different limits: the same.
	t.Run("pair", func(t *testing.T) {
		s := newFuzzSpace(t)
		name := s.name()
		ctx := hostileCtx(t)
		a, err := OpenPair(ctx, s.node, name)
		require.NoError(t, err)
		defer a.Close()
		b, err := OpenPair(ctx, s.node, name, MaxMessageSize(1024))
		require.NoError(t, err)
		defer b.Close()
		for _, m := range [][]byte{[]byte("a"), big, []byte("ten bytes!")} {
			require.NoError(t, a.Send(ctx, m))
		}
		recvWant(t, ctx, b, "a")
		recvErr(t, ctx, b, ErrMessageTooLarge)
		recvWant(t, ctx, b, "ten bytes!")
	})
}

// Releasing one borrowed sample from two goroutines at once, and discarding a
// loan while another goroutine sends it: exactly one of each pair acts, the
// other gets ErrClosed, and nothing is released twice.
func TestHostileSampleDoubleRelease(t *testing.T) {
	s := newFuzzSpace(t)
	name := s.name()
	svc, err := s.node.PublishSubscribe(name)
	require.NoError(t, err)
	defer svc.Close()
	pub, err := svc.Publisher()
	require.NoError(t, err)
	defer pub.Close()
	sub, err := svc.Subscriber()
	require.NoError(t, err)
	defer sub.Close()

	race2 := func(a, b func() error) (error, error) {
		start := make(chan struct{})
		var ea, eb error
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); <-start; ea = a() }()
		go func() { defer wg.Done(); <-start; eb = b() }()
		close(start)
		wg.Wait()
		return ea, eb
	}
	oneNilOneClosed := func(round int, what string, ea, eb error) {
		t.Helper()
		if ea == nil && errors.Is(eb, ErrClosed) || eb == nil && errors.Is(ea, ErrClosed) {
			return
		}
		t.Fatalf("round %d, %s: got %v and %v, want one nil and one ErrClosed", round, what, ea, eb)
	}

	for round := 0; round < 200; round++ {
		msg := []byte(fmt.Sprintf("sample-%d", round))
		k, err := pub.Send(msg)
		require.NoError(t, err)
		require.Equal(t, 1, k)
		smp, ok, err := sub.Borrow()
		require.NoError(t, err)
		require.True(t, ok, "round %d: nothing to borrow", round)
		require.Equal(t, msg, smp.Bytes())
		ea, eb := race2(smp.Release, smp.Release)
		oneNilOneClosed(round, "Release/Release", ea, eb)
		require.ErrorIs(t, smp.Release(), ErrClosed, "a third Release")
	}

	for round := 0; round < 200; round++ {
		m, err := pub.Loan(8)
		require.NoError(t, err)
		copy(m.Bytes(), fmt.Sprintf("loan%04d", round))
		var sentTo int
		ea, eb := race2(m.Discard, func() error {
			n, err := m.Send()
			sentTo = n
			return err
		})
		oneNilOneClosed(round, "Discard/Send", ea, eb)
		smp, ok, err := sub.Borrow()
		require.NoError(t, err)
		if eb == nil { // Send won: the message arrived, whole
			require.Equal(t, 1, sentTo)
			require.True(t, ok, "round %d: the sent loan did not arrive", round)
			require.Equal(t, fmt.Sprintf("loan%04d", round), string(smp.Bytes()))
			require.NoError(t, smp.Release())
		} else { // Discard won: nothing was sent
			if ok {
				smp.Release()
			}
			require.False(t, ok, "round %d: a discarded loan arrived", round)
		}
		require.ErrorIs(t, m.Discard(), ErrClosed)
		_, err = m.Send()
		require.ErrorIs(t, err, ErrClosed)
	}
	// the loans all went back: the publisher can still loan and send
	k, err := pub.Send([]byte("after"))
	require.NoError(t, err)
	require.Equal(t, 1, k)
	n, ok, err := sub.TryReceive(make([]byte, 16))
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, 5, n)
}

// Close racing Wait on a listener: Wait always returns (ErrClosed, or the ids
// that arrived), Close always returns, and neither hangs or crashes.
func TestHostileListenerCloseRacingWait(t *testing.T) {
	s := newFuzzSpace(t)
	name := s.name()
	ev, err := s.node.Event(name)
	require.NoError(t, err)
	defer ev.Close()
	ntf, err := ev.Notifier()
	require.NoError(t, err)
	defer ntf.Close()
	var ids, closed int
	for round := 0; round < 300; round++ {
		lis, err := ev.Listener()
		require.NoError(t, err)
		if round%3 == 0 { // some rounds have an event waiting
			_, err := ntf.Notify(EventID(round % 5))
			require.NoError(t, err)
		}
		type result struct {
			ids []EventID
			err error
		}
		waited := make(chan result, 1)
		closeDone := make(chan error, 1)
		start := make(chan struct{})
		go func() {
			<-start
			got, err := lis.Wait(context.Background())
			waited <- result{got, err}
		}()
		go func() {
			<-start
			closeDone <- lis.Close()
		}()
		close(start)
		var r result
		select {
		case r = <-waited:
		case <-time.After(5 * time.Second):
			t.Fatalf("round %d: Wait did not return within 5 s of a concurrent Close", round)
		}
		select {
		case err := <-closeDone:
			require.NoError(t, err, "round %d: Close", round)
		case <-time.After(5 * time.Second):
			t.Fatalf("round %d: Close did not return within 5 s", round)
		}
		switch {
		case r.err == nil:
			require.NotEmpty(t, r.ids, "round %d: Wait returned no ids and no error", round)
			if round%3 != 0 {
				t.Fatalf("round %d: Wait returned ids %v although nothing was notified", round, r.ids)
			}
			ids++
		case errors.Is(r.err, ErrClosed):
			closed++
		default:
			t.Fatalf("round %d: Wait returned %v, want ErrClosed or ids", round, r.err)
		}
		require.ErrorIs(t, lis.Close(), ErrClosed, "round %d: second Close", round)
	}
	t.Logf("Wait returned ids %d times and ErrClosed %d times", ids, closed)
}
