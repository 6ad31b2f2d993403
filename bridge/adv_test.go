package bridge_test

// Adversarial tests: hostile or malformed NATS messages on imported subjects,
// names that map alike, absurd options, and bridges that die while calls are
// in flight.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/iox-go/iox"
	"github.com/iox-go/iox/bridge"
)

// forger publishes hand-made frames on one subject.
type forger struct {
	t       *testing.T
	nc      *nats.Conn
	subject string
}

func (f forger) send(data []byte, hdr ...string) {
	f.t.Helper()
	m := nats.NewMsg(f.subject)
	for i := 0; i+1 < len(hdr); i += 2 {
		m.Header.Set(hdr[i], hdr[i+1])
	}
	m.Data = data
	require.NoError(f.t, f.nc.PublishMsg(m))
}

// recvWithin receives one message or fails after d.
func recvWithin(t *testing.T, sub *iox.Sub[[]byte], d time.Duration) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	m, err := sub.Recv(ctx)
	require.NoError(t, err)
	return m
}

// The parts of messages from two sending bridges (two hosts exporting the
// same name) arrive interleaved on one subject; a frame of a third sender
// arrives between them. Each sender's message is joined from its own parts.
func TestAdvPartsOfTwoSendersInterleavedAreJoinedEach(t *testing.T) {
	th := newTwoHosts(t, []string{"big"}, []string{"big"}, nil)
	_, sub := th.lossy(t, "big") // the publisher makes A export it
	f := forger{t, connect(t, th.url), bridge.Subject("iox", "ps", "big")}
	typ := bridge.TypeString(iox.Bytes)
	part := func(origin, id, p, data string) {
		f.send([]byte(data), "Iox-Type", typ, "Iox-Origin", origin, "Iox-Id", origin+"."+id, "Iox-Part", p, "Iox-Size", "6")
	}
	part("one", "1", "1/2", "hel")
	part("two", "1", "1/2", "wor")
	f.send([]byte("solo"), "Iox-Type", typ, "Iox-Origin", "three", "Iox-Id", "three.1")
	part("one", "1", "2/2", "lo!")
	part("two", "1", "2/2", "ld!")
	require.NoError(t, f.nc.Flush())
	var got []string
	for range 3 {
		got = append(got, string(recvWithin(t, sub, 10*time.Second)))
	}
	require.Equal(t, []string{"solo", "hello!", "world!"}, got)
	require.Empty(t, th.logB.errors())
}

// Two hosts export the same lossless channel, with messages larger than the
// server's max_payload (so they cross in parts), at the same time; the
// importing host gets every message of both, each publisher's in order.
func TestAdvLosslessPartsFromTwoExportingHostsAreJoinedEach(t *testing.T) {
	s := natsServer(t, bridge.ListenConfig{MaxPayload: 8 << 10})
	url := s.ClientURL()
	n1, n2, nb := newHost(t).node(t), newHost(t).node(t), newHost(t).node(t)
	_, log1 := startBridge(t, n1, connect(t, url), bridge.Config{Export: []string{"twice"}})
	_, log2 := startBridge(t, n2, connect(t, url), bridge.Config{Export: []string{"twice"}})
	_, logB := startBridge(t, nb, connect(t, url), bridge.Config{Import: []string{"twice"}})
	ctx := ctxT(t)
	sub, err := iox.OpenSub(ctx, nb, "twice")
	require.NoError(t, err)
	defer sub.Close()
	p1, err := iox.OpenPub(ctx, n1, "twice")
	require.NoError(t, err)
	p2, err := iox.OpenPub(ctx, n2, "twice")
	require.NoError(t, err)
	eventually(t, "both exports", func() bool {
		return log1.has("start", "export", "twice") && log2.has("start", "export", "twice") && logB.has("start", "import", "twice")
	})
	defer func() {
		if t.Failed() {
			t.Logf("1: %v\n2: %v\nB: %v", log1.all, log2.all, logB.all)
		}
	}()
	const n = 40
	msg := func(from, i int) []byte {
		m := seqMsg(i, 20<<10)
		m[8] = byte(from)
		return m
	}
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for k, p := range []*iox.Pub[[]byte]{p1, p2} {
		wg.Go(func() {
			for i := range n {
				if err := p.Send(ctx, msg(k+1, i)); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	next := [3]int{}
	for range 2 * n {
		m, err := sub.Recv(ctx)
		require.NoError(t, err)
		from := int(m[8])
		require.Contains(t, []int{1, 2}, from)
		require.Equal(t, msg(from, next[from]), m, "message %d of publisher %d", next[from], from)
		next[from]++
	}
	wg.Wait()
	close(errs)
	require.NoError(t, <-errs)
	require.Empty(t, logB.errors())
	require.NoError(t, p1.Close())
	require.NoError(t, p2.Close())
}

// Lossless services whose names map alike in the consumers' names ("x/y" and
// "x_2fy"), and one whose name is long and full of bytes that are escaped,
// each cross on their own.
func TestAdvLosslessNamesThatMapAlikeOrLongCrossEach(t *testing.T) {
	long := strings.Repeat("d/", 100) + "x"
	names := []string{"x/y", "x_2fy", long}
	th := newTwoHosts(t, []string{"**"}, []string{"**"}, nil)
	ctx := ctxT(t)
	var subs []*iox.Sub[[]byte]
	var pubs []*iox.Pub[[]byte]
	for _, name := range names {
		sub, err := iox.OpenSub(ctx, th.b, name)
		require.NoError(t, err)
		defer sub.Close()
		subs = append(subs, sub)
		pub, err := iox.OpenPub(ctx, th.a, name)
		require.NoError(t, err)
		pubs = append(pubs, pub)
	}
	defer func() {
		if t.Failed() {
			t.Logf("A: %v\nB: %v", th.logA.all, th.logB.all)
		}
	}()
	eventually(t, "the imports", func() bool {
		for _, name := range names {
			if !th.logB.has("start", "import", name) {
				return false
			}
		}
		return true
	})
	const n = 20
	for i := range n {
		for k, pub := range pubs {
			require.NoError(t, pub.Send(ctx, []byte(fmt.Sprintf("%d:%d", k, i))))
		}
	}
	for k, sub := range subs {
		for i := range n {
			require.Equal(t, fmt.Sprintf("%d:%d", k, i), string(recvWithin(t, sub, 10*time.Second)), "service %q", names[k])
		}
	}
	for _, pub := range pubs {
		require.NoError(t, pub.Close())
	}
	require.Empty(t, th.logB.errors())
}

// A frame whose size does not fit the service's fixed payload type (one u32
// per message) is refused and reported; it never reaches the subscriber,
// and the good frame behind it does.
func TestAdvAFrameOfTheWrongSizeForAFixedTypeIsRefused(t *testing.T) {
	th := newTwoHosts(t, []string{"u32s"}, []string{"u32s"}, nil)
	ctx := ctxT(t)
	codec, err := iox.FixedBytes(iox.PayloadType{Name: "u32", Size: 4, Align: 4})
	require.NoError(t, err)
	sub, err := iox.OpenSubOf[[]byte](ctx, th.b, "u32s", codec, iox.Lossy())
	require.NoError(t, err)
	defer sub.Close()
	pub, err := iox.OpenPubOf[[]byte](ctx, th.a, "u32s", codec, iox.Lossy())
	require.NoError(t, err)
	defer pub.Close()
	eventually(t, "the import", func() bool { return th.logB.has("start", "import", "u32s") })
	f := forger{t, connect(t, th.url), bridge.Subject("iox", "ps", "u32s")}
	typ := bridge.TypeString(codec.PayloadType())
	f.send([]byte{1, 2, 3}, "Iox-Type", typ, "Iox-Origin", "evil", "Iox-Id", "evil.1")
	f.send([]byte{1, 2, 3, 4, 5, 6, 7, 8}, "Iox-Type", typ, "Iox-Origin", "evil", "Iox-Id", "evil.2")
	f.send([]byte{7, 0, 0, 0}, "Iox-Type", typ, "Iox-Origin", "evil", "Iox-Id", "evil.3")
	require.NoError(t, f.nc.Flush())
	require.Equal(t, []byte{7, 0, 0, 0}, recvWithin(t, sub, 10*time.Second))
	eventually(t, "two errors on B", func() bool { return len(th.logB.errors()) >= 2 })
	for _, e := range th.logB.errors() {
		var ie *iox.Error
		require.True(t, errors.As(e, &ie), "typed: %v", e)
	}
}

// A root subject with an empty token is not a subject NATS takes.
func TestAdvConfigSubjectMustBeALiteralSubject(t *testing.T) {
	s := natsServer(t, bridge.ListenConfig{})
	node := newHost(t).node(t)
	nc := connect(t, s.ClientURL())
	for _, subj := range []string{"a..b", "a.*", "a.>", "a b", ".a", "a.", "a\x00b", "a\x7fb"} {
		b, err := bridge.New(context.Background(), bridge.Config{Node: node, Conn: nc, Subject: subj, Export: []string{"x"}})
		if err == nil {
			b.Close()
		}
		require.ErrorIs(t, err, iox.ErrInvalidArgument, "subject %q", subj)
	}
}

// A call whose serving bridge is killed while the call is in flight ends
// with ErrNoResponse, also when the serving host's bridge is back at once
// (so the import goes on), and calls made afterwards are served again.
func TestAdvCallInFlightEndsWhenItsServingBridgeIsKilled(t *testing.T) {
	s := natsServer(t, bridge.ListenConfig{})
	ha, hb := newHost(t), newHost(t)
	na, nb := ha.node(t), hb.node(t)
	_, logB := startBridge(t, nb, connect(t, s.ClientURL()), bridge.Config{Import: []string{"slow"}})
	ctx := ctxT(t)
	srv, err := iox.OpenServer(ctx, na, "slow", iox.Raw{}, iox.Raw{})
	require.NoError(t, err)
	defer srv.Close()
	holding := make(chan struct{}, 1)
	sctx, stop := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() {
		served <- srv.Serve(sctx, 4, func(hctx context.Context, req []byte) ([]byte, error) {
			if string(req) == "hold" {
				holding <- struct{}{}
				<-hctx.Done()
				return nil, hctx.Err()
			}
			return req, nil
		})
	}()
	defer func() { stop(); <-served }()
	pa := startBridgeProcess(t, ha, s.ClientURL(), "serving", "slow", "")
	pa.expect(t, `start export call "slow"`)
	eventually(t, "the import on B", func() bool { return logB.has("start", "import", "slow") })
	cl, err := iox.OpenClient(ctx, nb, "slow", iox.Raw{}, iox.Raw{})
	require.NoError(t, err)
	defer cl.Close()
	called := make(chan error, 1)
	go func() {
		cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		_, err := cl.Call(cctx, []byte("hold"))
		called <- err
	}()
	<-holding
	require.NoError(t, pa.cmd.Process.Signal(syscall.SIGKILL))
	<-pa.done
	pa = startBridgeProcess(t, ha, s.ClientURL(), "serving", "slow", "")
	defer pa.stop(t)
	pa.expect(t, `start export call "slow"`)
	err = <-called
	require.ErrorIs(t, err, iox.ErrNoResponse, "the call in flight: %v", err)
	resp, err := cl.Call(ctx, []byte("again"))
	require.NoError(t, err)
	require.Equal(t, "again", string(resp))
}

// A call that takes longer than three announcement periods is not ended
// while its serving bridge lives: the serving bridge beats (seen here on
// the NATS inboxes) and the answer comes.
func TestAdvALongCallIsKeptAliveByBeats(t *testing.T) {
	th := newTwoHosts(t, []string{"long"}, []string{"long"}, nil)
	ctx := ctxT(t)
	srv, err := iox.OpenServer(ctx, th.a, "long", iox.Raw{}, iox.Raw{})
	require.NoError(t, err)
	defer srv.Close()
	release := make(chan struct{})
	sctx, stop := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() {
		served <- srv.Serve(sctx, 1, func(hctx context.Context, req []byte) ([]byte, error) {
			select {
			case <-release:
			case <-hctx.Done():
			}
			return append([]byte("done "), req...), nil
		})
	}()
	defer func() { stop(); <-served }()
	eventually(t, "the import on B", func() bool { return th.logB.has("start", "import", "long") })
	spy := connect(t, th.url)
	beats := make(chan struct{}, 64)
	bs, err := spy.Subscribe("_INBOX.>", func(m *nats.Msg) {
		if m.Header.Get("Iox-Beat") != "" {
			select {
			case beats <- struct{}{}:
			default:
			}
		}
	})
	require.NoError(t, err)
	defer bs.Unsubscribe()
	require.NoError(t, spy.Flush())
	cl, err := iox.OpenClient(ctx, th.b, "long", iox.Raw{}, iox.Raw{})
	require.NoError(t, err)
	defer cl.Close()
	called := make(chan []byte, 1)
	go func() {
		resp, err := cl.Call(ctx, []byte("call"))
		if err != nil {
			t.Errorf("the long call: %v", err)
		}
		called <- resp
	}()
	for range 5 { // more than the three periods of silence a call outlives
		select {
		case <-beats:
		case <-ctx.Done():
			t.Fatal("no beats")
		}
	}
	close(release)
	require.Equal(t, "done call", string(<-called))
	require.Empty(t, th.logB.errors())
}

// Service names with every kind of byte that needs escaping cross each on
// their own subject, also a name that looks like an escape of another.
func TestAdvNamesThatNeedEscapingCrossEach(t *testing.T) {
	names := []string{"a.b", "a~2eb", "x*y>z", "tab\tand space", "~", "~~7e", "q?&%#!$'\"()[]{}|\\;<", "dot.", ".dot", "\x01ctl\x7f"}
	th := newTwoHosts(t, []string{"**"}, []string{"**"}, nil)
	ctx := ctxT(t)
	var subs []*iox.Sub[[]byte]
	var pubs []*iox.Pub[[]byte]
	for _, name := range names {
		sub, err := iox.OpenSub(ctx, th.b, name)
		require.NoError(t, err, "%q", name)
		defer sub.Close()
		subs = append(subs, sub)
		pub, err := iox.OpenPub(ctx, th.a, name)
		require.NoError(t, err)
		pubs = append(pubs, pub)
	}
	eventually(t, "the imports", func() bool {
		for _, name := range names {
			if !th.logB.has("start", "import", name) {
				return false
			}
		}
		return true
	})
	for k, pub := range pubs {
		require.NoError(t, pub.Send(ctx, []byte(names[k])))
	}
	for k, sub := range subs {
		require.Equal(t, names[k], string(recvWithin(t, sub, 10*time.Second)))
	}
	for _, pub := range pubs {
		require.NoError(t, pub.Close())
	}
	eventually(t, "the imports to end", func() bool { return len(th.bb.Routes()) == 0 })
	require.Empty(t, th.logB.errors())
}

// Hostile frames stored in the lossless stream (published to JetStream on
// an imported subject) are dropped and reported; the channel's own messages
// before and after them all cross, in order.
func TestAdvHostileFramesInTheLosslessStreamAreDropped(t *testing.T) {
	th := newTwoHosts(t, []string{"ledger"}, []string{"ledger"}, nil)
	ctx := ctxT(t)
	sub, err := iox.OpenSub(ctx, th.b, "ledger")
	require.NoError(t, err)
	defer sub.Close()
	pub, err := iox.OpenPub(ctx, th.a, "ledger")
	require.NoError(t, err)
	eventually(t, "the import", func() bool { return th.logB.has("start", "import", "ledger") })
	const n = 200
	for i := range n / 2 {
		require.NoError(t, pub.Send(ctx, seqMsg(i, 64)))
	}
	evil := connect(t, th.url)
	js, err := evil.JetStream()
	require.NoError(t, err)
	subject := bridge.Subject("iox", "ll", "ledger")
	typ := bridge.TypeString(iox.Bytes)
	store := func(data []byte, hdr ...string) {
		m := nats.NewMsg(subject)
		for i := 0; i+1 < len(hdr); i += 2 {
			m.Header.Set(hdr[i], hdr[i+1])
		}
		m.Data = data
		_, err := js.PublishMsg(m)
		require.NoError(t, err)
	}
	store([]byte("no headers"))
	store([]byte("wrong type"), "Iox-Type", "u64/8/8", "Iox-Origin", "evil", "Iox-Id", "evil.1", "Iox-Seq", "1", "Iox-Pub", "p")
	store([]byte("numbered far ahead"), "Iox-Type", typ, "Iox-Origin", "evil2", "Iox-Id", "evil2.1", "Iox-Seq", "18446744073709551615", "Iox-Pub", "p")
	store([]byte("bad seq"), "Iox-Type", typ, "Iox-Origin", "evil3", "Iox-Id", "evil3.1", "Iox-Seq", "-4", "Iox-Part", "1/0", "Iox-Size", "7")
	store([]byte{200, 1, 'x'}, "Iox-Type", typ, "Iox-Origin", "evil4", "Iox-Id", "evil4.1", "Iox-Count", "1") // a pack whose frame lies about its length
	store([]byte("half"), "Iox-Type", typ, "Iox-Origin", "evil5", "Iox-Id", "evil5.1", "Iox-Part", "1/3", "Iox-Size", "999999999999999999999")
	for i := n / 2; i < n; i++ {
		require.NoError(t, pub.Send(ctx, seqMsg(i, 64)))
	}
	got := 0
	for got < n {
		m := recvWithin(t, sub, 10*time.Second)
		if string(m) == "numbered far ahead" { // well-formed, only numbered oddly: it crosses
			continue
		}
		require.Equal(t, seqMsg(got, 64), m, "message %d", got)
		got++
	}
	eventually(t, "five errors on B", func() bool { return len(th.logB.errors()) >= 5 })
	for _, e := range th.logB.errors() {
		var ie *iox.Error
		require.True(t, errors.As(e, &ie), "typed: %v", e)
		require.True(t, errors.Is(e, iox.ErrProtocol) || errors.Is(e, iox.ErrIncompatibleType) || errors.Is(e, iox.ErrMessageTooLarge), "%v", e)
	}
	require.NoError(t, pub.Close())
	require.Empty(t, th.logA.errors())
}

// Hostile event frames (a short id, a wrong type, an id beyond what the
// service takes) are reported; a good event behind them is signalled.
func TestAdvHostileEventFramesAreReported(t *testing.T) {
	th := newTwoHosts(t, []string{"bell"}, []string{"bell"}, nil)
	ctx := ctxT(t)
	evB, err := iox.OpenEvents(ctx, th.b, "bell")
	require.NoError(t, err)
	defer evB.Close()
	evA, err := iox.OpenEvents(ctx, th.a, "bell")
	require.NoError(t, err)
	defer evA.Close()
	eventually(t, "the import on B", func() bool { return th.logB.has("start", "import", "bell") })
	f := forger{t, connect(t, th.url), bridge.Subject("iox", "ev", "bell")}
	f.send([]byte{1, 2, 3}, "Iox-Type", "event", "Iox-Origin", "evil", "Iox-Id", "evil.1")
	f.send([]byte{1, 0, 0, 0, 0, 0, 0, 0}, "Iox-Type", "bytes/1/1", "Iox-Origin", "evil", "Iox-Id", "evil.2")
	f.send([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, "Iox-Type", "event", "Iox-Origin", "evil", "Iox-Id", "evil.3")
	f.send([]byte{1, 0, 0, 0, 0, 0, 0, 0, 0}, "Iox-Type", "event", "Iox-Origin", "evil", "Iox-Id", "evil.4")
	f.send([]byte{5, 0, 0, 0, 0, 0, 0, 0}, "Iox-Type", "event", "Iox-Origin", "evil", "Iox-Id", "evil.5")
	require.NoError(t, f.nc.Flush())
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	id, err := evB.Recv(rctx)
	require.NoError(t, err)
	require.Equal(t, iox.EventID(5), id)
	eventually(t, "four errors on B", func() bool { return len(th.logB.errors()) >= 4 })
	for _, e := range th.logB.errors() {
		var ie *iox.Error
		require.True(t, errors.As(e, &ie), "typed: %v", e)
	}
	t.Logf("B: %v", th.logB.errors())
}

// Two deployments on one NATS server under roots that read alike once
// upper-cased and cut to a stream name ("site.a" and "site_a") keep their
// lossless channels apart.
func TestAdvRootsThatReadAlikeKeepTheirStreamsApart(t *testing.T) {
	s := natsServer(t, bridge.ListenConfig{})
	url := s.ClientURL()
	ctx := ctxT(t)
	type site struct {
		sub *iox.Sub[[]byte]
		pub *iox.Pub[[]byte]
	}
	var sites []site
	for _, root := range []string{"site.a", "site_a", "SITE.A", strings.Repeat("r", 300)} {
		na, nb := newHost(t).node(t), newHost(t).node(t)
		_, logA := startBridge(t, na, connect(t, url), bridge.Config{Subject: root, Export: []string{"feed"}})
		_, logB := startBridge(t, nb, connect(t, url), bridge.Config{Subject: root, Import: []string{"feed"}})
		sub, err := iox.OpenSub(ctx, nb, "feed")
		require.NoError(t, err)
		defer sub.Close()
		pub, err := iox.OpenPub(ctx, na, "feed")
		require.NoError(t, err)
		defer pub.Close()
		eventually(t, "the import under "+root, func() bool {
			return logA.has("start", "export", "feed") && logB.has("start", "import", "feed")
		})
		sites = append(sites, site{sub, pub})
	}
	for i := range 20 {
		for k, st := range sites {
			require.NoError(t, st.pub.Send(ctx, []byte(fmt.Sprintf("%d:%d", k, i))))
		}
	}
	for k, st := range sites {
		for i := range 20 {
			require.Equal(t, fmt.Sprintf("%d:%d", k, i), string(recvWithin(t, st.sub, 10*time.Second)))
		}
	}
}

// Closing the serving or the calling host's bridge while calls wait and a
// lossless channel streams returns, and every call in flight ends with
// ErrNoResponse; the channel's publisher is not held.
func TestAdvClosingEitherBridgeEndsCallsInFlight(t *testing.T) {
	for _, side := range []string{"serving", "calling"} {
		t.Run(side, func(t *testing.T) {
			th := newTwoHosts(t, []string{"work", "flow"}, []string{"work", "flow"}, nil)
			ctx := ctxT(t)
			srv, err := iox.OpenServer(ctx, th.a, "work", iox.Raw{}, iox.Raw{})
			require.NoError(t, err)
			defer srv.Close()
			holding := make(chan struct{}, 8)
			sctx, stop := context.WithCancel(ctx)
			served := make(chan error, 1)
			go func() {
				served <- srv.Serve(sctx, 8, func(hctx context.Context, req []byte) ([]byte, error) {
					holding <- struct{}{}
					<-hctx.Done()
					return nil, hctx.Err()
				})
			}()
			defer func() { stop(); <-served }()
			sub, err := iox.OpenSub(ctx, th.b, "flow")
			require.NoError(t, err)
			defer sub.Close()
			pub, err := iox.OpenPub(ctx, th.a, "flow")
			require.NoError(t, err)
			defer pub.Close()
			eventually(t, "the imports", func() bool {
				return th.logB.has("start", "import", "work") && th.logB.has("start", "import", "flow")
			})
			cl, err := iox.OpenClient(ctx, th.b, "work", iox.Raw{}, iox.Raw{})
			require.NoError(t, err)
			defer cl.Close()
			const calls = 4
			ended := make(chan error, calls)
			for range calls {
				go func() {
					_, err := cl.Call(ctx, []byte("wait"))
					ended <- err
				}()
			}
			for range calls {
				<-holding
			}
			fctx, stopFlow := context.WithCancel(ctx)
			flowed := make(chan error, 1)
			go func() {
				for i := 0; fctx.Err() == nil; i++ {
					if err := pub.Send(fctx, seqMsg(i, 64)); err != nil && fctx.Err() == nil {
						flowed <- err
						return
					}
				}
				flowed <- nil
			}()
			recvWithin(t, sub, 10*time.Second) // the channel streams
			b := th.ba
			if side == "calling" {
				b = th.bb
			}
			closed := make(chan error, 1)
			go func() { closed <- b.Close() }()
			select {
			case err := <-closed:
				require.NoError(t, err)
			case <-time.After(15 * time.Second):
				t.Fatal("Close did not return")
			}
			for range calls {
				select {
				case err := <-ended:
					require.ErrorIs(t, err, iox.ErrNoResponse)
				case <-time.After(15 * time.Second):
					t.Fatal("a call in flight did not end")
				}
			}
			stopFlow()
			require.NoError(t, <-flowed)
		})
	}
}

// More long calls at once than the serving bridge's local client takes
// (16 in flight; two callers make 24): those that wait for a slot are kept
// alive by beats too, and every call is answered.
func TestAdvLongCallsWaitingForASlotAreKeptAlive(t *testing.T) {
	th := newTwoHosts(t, []string{"busy"}, []string{"busy"}, nil)
	ctx := ctxT(t)
	srv, err := iox.OpenServer(ctx, th.a, "busy", iox.Raw{}, iox.Raw{})
	require.NoError(t, err)
	defer srv.Close()
	release := make(chan struct{})
	sctx, stop := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() {
		served <- srv.Serve(sctx, 32, func(hctx context.Context, req []byte) ([]byte, error) {
			select {
			case <-release:
			case <-hctx.Done():
			}
			return req, nil
		})
	}()
	defer func() { stop(); <-served }()
	eventually(t, "the import on B", func() bool { return th.logB.has("start", "import", "busy") })
	const calls = 24
	var mu sync.Mutex
	beats := map[string]int{} // by inbox
	spy := connect(t, th.url)
	bs, err := spy.Subscribe("_INBOX.>", func(m *nats.Msg) {
		if m.Header.Get("Iox-Beat") != "" {
			mu.Lock()
			beats[m.Subject]++
			mu.Unlock()
		}
	})
	require.NoError(t, err)
	defer bs.Unsubscribe()
	require.NoError(t, spy.Flush())
	var cls []*iox.Caller[[]byte, []byte] // two callers, as one holds 16 calls in flight
	for range 2 {
		cl, err := iox.OpenClient(ctx, th.b, "busy", iox.Raw{}, iox.Raw{})
		require.NoError(t, err)
		defer cl.Close()
		cls = append(cls, cl)
	}
	answers := make(chan error, calls)
	for i := range calls {
		cl := cls[i%2]
		go func() {
			want := fmt.Sprint(i)
			resp, err := cl.Call(ctx, []byte(want))
			if err == nil && string(resp) != want {
				err = fmt.Errorf("answer %q to %q", resp, want)
			}
			answers <- err
		}()
	}
	eventually(t, "four beats for every call", func() bool {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, c := range beats {
			if c >= 4 {
				n++
			}
		}
		return n == calls
	})
	close(release)
	for range calls {
		require.NoError(t, <-answers)
	}
	require.Empty(t, th.logB.errors())
}

// A lossless channel whose exporting bridge is closed (SIGTERM of the
// command: a restart, an upgrade) while messages the program flushed wait
// in the bridge's subscriber: the bridge relays them before it closes, so
// with the bridge back every message crosses, once, in order.
func TestAdvClosingTheExportingBridgeRelaysWhatItsSubscriberHolds(t *testing.T) {
	s := natsServer(t, bridge.ListenConfig{})
	url := s.ClientURL()
	na, nb := newHost(t).node(t), newHost(t).node(t)
	ba, logA := startBridge(t, na, connect(t, url), bridge.Config{Name: "exporting", Export: []string{"burst"}})
	_, logB := startBridge(t, nb, connect(t, url), bridge.Config{Import: []string{"burst"}})
	ctx := ctxT(t)
	sub, err := iox.OpenSub(ctx, nb, "burst")
	require.NoError(t, err)
	defer sub.Close()
	pub, err := iox.OpenPub(ctx, na, "burst")
	require.NoError(t, err)
	eventually(t, "the import", func() bool {
		return logA.has("start", "export", "burst") && logB.has("start", "import", "burst")
	})
	defer func() {
		if t.Failed() {
			t.Logf("A: %v\nB: %v", logA.all, logB.all)
		}
	}()
	const n = 4000
	for i := range n {
		require.NoError(t, pub.Send(ctx, seqMsg(i, 64)))
	}
	require.NoError(t, pub.Flush(ctx)) // every message is in the bridge's subscriber, or relayed
	require.NoError(t, ba.Close())
	_, logA2 := startBridge(t, na, connect(t, url), bridge.Config{Name: "exporting", Export: []string{"burst"}})
	got := 0
	defer func() {
		if t.Failed() {
			t.Logf("%d of %d messages crossed", got, n)
		}
	}()
	for i := range n {
		m := recvWithin(t, sub, 10*time.Second)
		require.Equal(t, seqMsg(i, 64), m, "message %d, not %d", i, binary.LittleEndian.Uint64(m))
		got++
	}
	require.Empty(t, logA.errors())
	require.Empty(t, logA2.errors())
	require.Empty(t, logB.errors())
	require.NoError(t, pub.Close())
}

// A frame that the import's client lost (nats.go drops what comes into a
// full iterator) and that the server delivered last shows no gap: no later
// frame follows it. The import notices that deliveries stopped short of the
// server's, resets its consumer, and the frame comes again at once, not
// after AckWait (an hour here):
//   - stored: frames that waited in the stream, delivered in a row; the one
//     before the lost frame said that the server had more;
//   - live: a run of frames longer than the iterator holds, delivered as
//     they come; the server, asked after a quiet spell, says that it
//     delivered past the last frame that came.
func TestAdvLostLastDeliveryComesAgainBeforeAckWait(t *testing.T) {
	for _, tc := range []struct {
		name   string
		n      int
		stored bool
	}{{"stored", 8, true}, {"live", 300, false}} {
		t.Run(tc.name, func(t *testing.T) {
			defer bridge.SetImportAckWait(time.Hour)()
			defer bridge.SetQuietAfter(3 * time.Second)() // no spell within the run under load
			s := natsServer(t, bridge.ListenConfig{})
			url := s.ClientURL()
			na, nb := newHost(t).node(t), newHost(t).node(t)
			_, logA := startBridge(t, na, connect(t, url), bridge.Config{Export: []string{"tail"}})
			importing := bridge.Config{Name: "importing", Import: []string{"tail"}}
			bb, logB := startBridge(t, nb, connect(t, url), importing)
			ctx := ctxT(t)
			sub, err := iox.OpenSub(ctx, nb, "tail")
			require.NoError(t, err)
			defer sub.Close()
			pub, err := iox.OpenPub(ctx, na, "tail")
			require.NoError(t, err)
			defer pub.Close()
			eventually(t, "the import", func() bool {
				return logA.has("start", "export", "tail") && logB.has("start", "import", "tail")
			})
			// Messages too large to share a frame; the stream holds only
			// these, so the last has stream sequence n.
			const size = 20 << 10
			var lost atomic.Int32
			restore := bridge.SetLostDelivery(func(m jetstream.Msg) bool {
				md, err := m.Metadata()
				return err == nil && md.Sequence.Stream == uint64(tc.n) && md.NumDelivered == 1 && lost.CompareAndSwap(0, 1)
			})
			defer restore()
			if tc.stored {
				require.NoError(t, bb.Close()) // its durable consumer stays, and the stream keeps what comes for it
				require.Empty(t, logB.errors())
			}
			for i := range tc.n {
				require.NoError(t, pub.Send(ctx, seqMsg(i, size)))
			}
			require.NoError(t, pub.Flush(ctx))
			if tc.stored {
				js, err := jetstream.New(connect(t, url))
				require.NoError(t, err)
				eventually(t, "the frames in the stream", func() bool {
					st, err := js.Stream(ctx, "IOX_LOSSLESS")
					if err != nil {
						return false
					}
					info, err := st.Info(ctx)
					return err == nil && info.State.Msgs == uint64(tc.n)
				})
				bb, logB = startBridge(t, nb, connect(t, url), importing)
			}
			defer func() { require.NoError(t, bb.Close()) }() // before restore
			for i := range tc.n {
				require.Equal(t, seqMsg(i, size), recvWithin(t, sub, 20*time.Second), "message %d", i)
			}
			require.Equal(t, int32(1), lost.Load(), "the last delivery was lost once")
			require.Empty(t, logA.errors())
			require.Empty(t, logB.errors())
		})
	}
}

// The importing bridge closed and started again (a clean restart) while a
// lossless channel streams: every message crosses, in order, none twice.
func TestAdvCleanRestartOfTheImportingBridgeLosesNothing(t *testing.T) {
	s := natsServer(t, bridge.ListenConfig{})
	url := s.ClientURL()
	na, nb := newHost(t).node(t), newHost(t).node(t)
	_, logA := startBridge(t, na, connect(t, url), bridge.Config{Export: []string{"feed"}})
	bb, logB := startBridge(t, nb, connect(t, url), bridge.Config{Name: "importing", Import: []string{"feed"}})
	ctx := ctxT(t)
	sub, err := iox.OpenSub(ctx, nb, "feed")
	require.NoError(t, err)
	defer sub.Close()
	pub, err := iox.OpenPub(ctx, na, "feed")
	require.NoError(t, err)
	eventually(t, "the import", func() bool { return logB.has("start", "import", "feed") })
	n := 4000
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
	restarted := false
	counts := recvSeq(t, ctx, sub, n, func(i int) {
		if i == n/4 && !restarted {
			restarted = true
			require.NoError(t, bb.Close())
			startBridge(t, nb, connect(t, url), bridge.Config{Name: "importing", Import: []string{"feed"}})
		}
	})
	require.True(t, restarted)
	require.NoError(t, <-sent)
	var twice []int
	for i, c := range counts {
		if c != 1 {
			twice = append(twice, i)
		}
	}
	require.Empty(t, twice, "messages that came more than once")
	require.NoError(t, pub.Close())
	require.Empty(t, logA.errors())
	require.Empty(t, logB.errors())
}

// A clean restart of the importing bridge while its subscriber holds a pack
// in part: the old import delivered the first messages of one frame and not
// the rest, which it gave back unacknowledged. The frame comes again to the
// new import, which delivers only the rest: every message once, in order.
// The pack is stored in the stream as an exporting bridge stores one.
func TestAdvCleanRestartAfterAPackWentInPartRepeatsNothing(t *testing.T) {
	log := restartAfterAPackWentInPart(t, nil, nil)
	require.Empty(t, log.errors())
}

// The same restart, whose import's first look at its consumer (which keeps
// how much of the pack reached shared memory) fails with an error other than
// "not found": the import still starts with what the consumer keeps, and
// repeats nothing.
func TestAdvCleanRestartWhoseConsumerLookupFailsOnceRepeatsNothing(t *testing.T) {
	faults := failConsumerLookups(t)
	log := restartAfterAPackWentInPart(t, func() { faults.arm(1) }, nil)
	require.EqualValues(t, 1, faults.failed.Load(), "lookups that failed")
	require.Empty(t, log.errors())
}

// The same restart, whose import's looks at its consumer keep failing: the
// start of the import fails, is reported, and is tried again at a later
// announcement, which finds the consumer and what it keeps: nothing repeats.
func TestAdvCleanRestartWhoseConsumerLookupsKeepFailingRepeatsNothing(t *testing.T) {
	faults := failConsumerLookups(t)
	log := restartAfterAPackWentInPart(t, func() { faults.arm(-1) }, func(log *statusLog) {
		eventually(t, "the import's start to fail", func() bool { return len(log.errors()) > 0 })
		faults.arm(0)
	})
	require.Greater(t, faults.failed.Load(), int32(1), "lookups that failed")
	errs := log.errors()
	require.Len(t, errs, 1)
	require.ErrorContains(t, errs[0], nats.ErrTimeout.Error())
	require.Len(t, log.starts("import", "feed"), 1)
}

// A bridge closed while an import's consumer lookup keeps failing ends the
// lookup's retries at once: Close, called in the longest pause (half a
// second, before the last attempt), returns without that attempt.
func TestAdvCloseEndsTheRetriesOfAConsumerLookup(t *testing.T) {
	faults := failConsumerLookups(t)
	faults.arm(-1)
	s := natsServer(t, bridge.ListenConfig{})
	url := s.ClientURL()
	na, nb := newHost(t).node(t), newHost(t).node(t)
	startBridge(t, na, connect(t, url), bridge.Config{Export: []string{"feed"}})
	bb, _ := startBridge(t, nb, connect(t, url), bridge.Config{Import: []string{"feed"}})
	pub, err := iox.OpenPub(ctxT(t), na, "feed")
	require.NoError(t, err)
	defer pub.Close()
	last := int32(bridge.LookupAttempts)
	eventually(t, "all but the last lookup to fail", func() bool { return faults.failed.Load() >= last-1 })
	require.NoError(t, bb.Close())
	require.Equal(t, last-1, faults.failed.Load(), "lookups tried")
}

// lookupFaults makes importing bridges' consumer lookups fail with
// nats.ErrTimeout while armed.
type lookupFaults struct {
	left   atomic.Int32 // lookups still to fail; -1: all
	failed atomic.Int32 // lookups failed
}

// failConsumerLookups puts lookupFaults, disarmed, in front of the importing
// bridges' consumer lookups until the test ends. Call it before starting
// bridges: their cleanups then run before it is taken away.
func failConsumerLookups(t *testing.T) *lookupFaults {
	f := &lookupFaults{}
	t.Cleanup(bridge.SetLookupConsumer(func(next bridge.LookupConsumer) bridge.LookupConsumer {
		return func(ctx context.Context, js jetstream.JetStream, stream, name string) (jetstream.Consumer, error) {
			for {
				n := f.left.Load()
				if n == 0 {
					return next(ctx, js, stream, name)
				}
				if n < 0 || f.left.CompareAndSwap(n, n-1) {
					f.failed.Add(1)
					return nil, nats.ErrTimeout
				}
			}
		}
	}))
	return f
}

// arm makes the next n lookups fail (-1: every lookup, 0: none).
func (f *lookupFaults) arm(n int32) { f.left.Store(n) }

// restartAfterAPackWentInPart stores a pack of 200 messages in the stream,
// restarts the importing bridge cleanly once two of them were received, and
// receives the rest and one more message, checking that each comes once, in
// order. restarting, when not nil, runs between the close and the new start;
// restarted, when not nil, is given the new bridge's status log before the
// rest is received. It returns that log.
func restartAfterAPackWentInPart(t *testing.T, restarting func(), restarted func(*statusLog)) *statusLog {
	t.Helper()
	s := natsServer(t, bridge.ListenConfig{})
	url := s.ClientURL()
	na, nb := newHost(t).node(t), newHost(t).node(t)
	_, logA := startBridge(t, na, connect(t, url), bridge.Config{Export: []string{"feed"}})
	bb, logB := startBridge(t, nb, connect(t, url), bridge.Config{Name: "importing", Import: []string{"feed"}})
	ctx := ctxT(t)
	// A pack of messages too large for a local sample to hold several, and
	// more of them than the subscriber holds unread (64 by default).
	const size, n = 4200, 200
	sub, err := iox.OpenSub(ctx, nb, "feed", iox.MaxMessageSize(size))
	require.NoError(t, err)
	defer sub.Close()
	pub, err := iox.OpenPub(ctx, na, "feed", iox.MaxMessageSize(size))
	require.NoError(t, err)
	defer pub.Close()
	eventually(t, "the import", func() bool { return logB.has("start", "import", "feed") })
	js, err := jetstream.New(connect(t, url))
	require.NoError(t, err)
	store := func(seq int, msgs ...[]byte) {
		m := nats.NewMsg(bridge.Subject("iox", "ll", "feed"))
		for _, x := range msgs {
			m.Data = append(binary.AppendUvarint(m.Data, uint64(len(x))), x...)
		}
		for k, v := range map[string]string{"Iox-Type": bridge.TypeString(iox.Bytes), "Iox-Origin": "there",
			"Iox-Id": fmt.Sprintf("there.%d", seq), "Iox-Seq": strconv.Itoa(seq), "Iox-Pub": "p", "Iox-Count": strconv.Itoa(len(msgs))} {
			m.Header.Set(k, v)
		}
		_, err := js.PublishMsg(ctx, m)
		require.NoError(t, err)
	}
	var pack [][]byte
	for i := range n {
		pack = append(pack, seqMsg(i, size))
	}
	store(1, pack...)
	next := 0
	recvNext := func() {
		t.Helper()
		m, err := sub.Recv(ctx)
		require.NoError(t, err)
		require.GreaterOrEqual(t, len(m), 8)
		require.Equal(t, next, int(binary.LittleEndian.Uint64(m)), "the message after %d", next-1)
		require.True(t, bytes.Equal(seqMsg(next, size), m), "message %d's bytes", next)
		next++
	}
	// Two of the pack's messages read: the rest of what reached shared
	// memory waits unread, and most of the pack did not reach it.
	recvNext()
	recvNext()
	require.NoError(t, bb.Close())
	if restarting != nil {
		restarting()
	}
	_, log := startBridge(t, nb, connect(t, url), bridge.Config{Name: "importing", Import: []string{"feed"}})
	if restarted != nil {
		restarted(log)
	}
	store(2, seqMsg(n, size)) // the next pack: nothing of the first comes after it
	for next <= n {
		recvNext()
	}
	require.Empty(t, logA.errors())
	require.Empty(t, logB.errors())
	return log
}

// Two hosts whose bridges got the same Name (the command's default,
// iox-bridge-HOSTNAME, on two machines both called "raspberrypi") would share
// their durable consumers: each host would receive part of a lossless
// channel. The second bridge is refused while the first is connected, and
// taken once it is gone.
func TestAdvASecondBridgeWithTheSameNameIsRefused(t *testing.T) {
	s := natsServer(t, bridge.ListenConfig{})
	url := s.ClientURL()
	n1, n2 := newHost(t).node(t), newHost(t).node(t)
	b1, _ := startBridge(t, n1, connect(t, url), bridge.Config{Name: "raspberrypi", Import: []string{"feed"}})
	b2, err := bridge.New(context.Background(), bridge.Config{Node: n2, Conn: connect(t, url), Name: "raspberrypi", Import: []string{"feed"}})
	if err == nil {
		b2.Close()
	}
	require.ErrorIs(t, err, iox.ErrInvalidArgument)
	require.Contains(t, err.Error(), "raspberrypi")
	require.NoError(t, b1.Close())
	b2, err = bridge.New(context.Background(), bridge.Config{Node: n2, Conn: connect(t, url), Name: "raspberrypi", Import: []string{"feed"}})
	require.NoError(t, err)
	require.NoError(t, b2.Close())
}

// Two bridges of one Name that start at the same instant: at most one of
// them runs (both checked before either answered on the name, so both took
// it before).
func TestAdvTwoBridgesOfOneNameStartingAtOnceNeverBothRun(t *testing.T) {
	s := natsServer(t, bridge.ListenConfig{})
	url := s.ClientURL()
	n1, n2 := newHost(t).node(t), newHost(t).node(t)
	c1, c2 := connect(t, url), connect(t, url)
	outcomes := map[int]int{} // rounds by how many bridges ran
	for round := range 20 {
		var wg sync.WaitGroup
		var bs [2]*bridge.Bridge
		var errs [2]error
		start := make(chan struct{})
		for i, nc := range []struct {
			node *iox.Node
			conn *nats.Conn
		}{{n1, c1}, {n2, c2}} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				bs[i], errs[i] = bridge.New(context.Background(), bridge.Config{Node: nc.node, Conn: nc.conn, Name: "twin", Import: []string{"feed"}})
			}()
		}
		close(start)
		wg.Wait()
		running := 0
		for i := range bs {
			if errs[i] == nil {
				running++
				require.NoError(t, bs[i].Close())
			} else {
				require.ErrorIs(t, errs[i], iox.ErrInvalidArgument, "round %d", round)
			}
		}
		require.LessOrEqual(t, running, 1, "round %d: two bridges of one name run", round)
		outcomes[running]++
	}
	t.Logf("rounds in which one bridge ran: %d, none (both saw the other): %d", outcomes[1], outcomes[0])
}

// The cluster port of a -listen server is a way in too: one beyond loopback
// without a token is refused, and with a token the servers of the cluster
// authenticate each other with it, so a server (or anyone) that routes in
// without it is turned away while the servers that have it form the cluster.
func TestAdvAClusterPortIsNoWayAroundAuthentication(t *testing.T) {
	s0, err := bridge.Listen(bridge.ListenConfig{Addr: "127.0.0.1:0", StoreDir: t.TempDir(), ServerName: "open", ClusterName: "iox", ClusterAddr: fmt.Sprintf("0.0.0.0:%d", freePort(t))})
	if err == nil {
		s0.Shutdown()
		s0.WaitForShutdown()
	}
	require.ErrorIs(t, err, iox.ErrInvalidArgument, "an open cluster port without a token")
	require.Contains(t, err.Error(), "token")
	p1, p2 := freePort(t), freePort(t)
	route := func(p int) []string { return []string{fmt.Sprintf("nats://127.0.0.1:%d", p)} }
	s1 := natsServer(t, bridge.ListenConfig{ServerName: "one", Token: "s3cret", ClusterName: "iox", ClusterAddr: fmt.Sprintf("127.0.0.1:%d", p1), Routes: route(p2)})
	s2 := natsServer(t, bridge.ListenConfig{ServerName: "two", Token: "s3cret", ClusterName: "iox", ClusterAddr: fmt.Sprintf("127.0.0.1:%d", p2), Routes: route(p1)})
	eventually(t, "the cluster", func() bool { return s1.NumRoutes() > 0 && s2.NumRoutes() > 0 })
	// A route without the token: the server answers with an error and
	// closes the connection.
	conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", p1), 5*time.Second)
	require.NoError(t, err)
	defer conn.Close()
	require.NoError(t, conn.SetDeadline(time.Now().Add(10*time.Second)))
	r := bufio.NewReader(conn)
	info, err := r.ReadString('\n')
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(info, "INFO "), info)
	_, err = fmt.Fprintf(conn, "CONNECT {\"verbose\":false,\"pedantic\":false,\"name\":\"intruder\",\"cluster\":\"iox\"}\r\nPING\r\n")
	require.NoError(t, err)
	line, err := r.ReadString('\n')
	require.NoError(t, err)
	require.Contains(t, line, "-ERR", "the server took a route without the token: %q", line)
}

// A stream of responses whose serving bridge is killed after two responses
// ends on the caller's host (once the beats stopped, or the import ended):
// the two responses, then the end of the stream, which the caller cannot
// tell from a clean one (a Request can only be closed), as the README's
// known limits say.
func TestAdvAStreamCutByItsServingBridgeEnds(t *testing.T) {
	s := natsServer(t, bridge.ListenConfig{})
	ha, hb := newHost(t), newHost(t)
	na, nb := ha.node(t), hb.node(t)
	_, logB := startBridge(t, nb, connect(t, s.ClientURL()), bridge.Config{Import: []string{"ticks"}})
	ctx := ctxT(t)
	srv, err := iox.OpenServer(ctx, na, "ticks", iox.Raw{}, iox.Raw{})
	require.NoError(t, err)
	defer srv.Close()
	sctx, stop := context.WithCancel(ctx)
	served := make(chan struct{})
	go func() {
		defer close(served)
		q, err := srv.Recv(sctx)
		if err != nil {
			return
		}
		q.Send(sctx, []byte("one"))
		q.Send(sctx, []byte("two"))
		<-sctx.Done()
		q.Close()
	}()
	defer func() { stop(); <-served }()
	pa := startBridgeProcess(t, ha, s.ClientURL(), "ticking", "ticks", "")
	pa.expect(t, `start export call "ticks"`)
	eventually(t, "the import on B", func() bool { return logB.has("start", "import", "ticks") })
	cl, err := iox.OpenClient(ctx, nb, "ticks", iox.Raw{}, iox.Raw{})
	require.NoError(t, err)
	defer cl.Close()
	st, err := cl.Stream(ctx, []byte("go"))
	require.NoError(t, err)
	defer st.Close()
	require.Equal(t, "one", string(<-st.In()))
	require.Equal(t, "two", string(<-st.In()))
	require.NoError(t, pa.cmd.Process.Signal(syscall.SIGKILL))
	<-pa.done
	_, more := <-st.In()
	require.False(t, more)
	require.NoError(t, st.Err()) // the known limit: it looks like a clean end
}

// Options that cannot work are refused by New: periods so short that the
// bridge would do nothing but scan or announce (and imports would expire
// between two announcements), a stream too small to hold one frame (a
// lossless export would send its first frame again forever), a consumer
// that the server drops between two pulls, negative sizes and periods (zero
// is the default).
func TestAdvAbsurdOptionsAreRefused(t *testing.T) {
	s := natsServer(t, bridge.ListenConfig{})
	node := newHost(t).node(t)
	nc := connect(t, s.ClientURL())
	for _, c := range []bridge.Config{
		{Scan: time.Nanosecond},
		{Announce: time.Microsecond},
		{StreamMaxBytes: 100},
		{ConsumerIdle: time.Millisecond},
		{Scan: -time.Second},
		{MaxMessageSize: -1},
		{StreamMaxBytes: -1},
	} {
		c.Node, c.Conn, c.Import, c.Export = node, nc, []string{"x"}, []string{"y"}
		b, err := bridge.New(context.Background(), c)
		if err == nil {
			b.Close()
		}
		require.ErrorIs(t, err, iox.ErrInvalidArgument, "%+v", c)
	}
}

// A call in flight whose calling host's bridge is killed ends for the
// caller with a typed error (the server it called is gone), promptly; the
// serving host goes on serving.
func TestAdvCallInFlightEndsWhenTheCallingBridgeIsKilled(t *testing.T) {
	s := natsServer(t, bridge.ListenConfig{})
	ha, hb := newHost(t), newHost(t)
	na, nb := ha.node(t), hb.node(t)
	_, logA := startBridge(t, na, connect(t, s.ClientURL()), bridge.Config{Export: []string{"slow"}})
	ctx := ctxT(t)
	srv, err := iox.OpenServer(ctx, na, "slow", iox.Raw{}, iox.Raw{})
	require.NoError(t, err)
	defer srv.Close()
	eventually(t, "the export on A", func() bool { return logA.has("start", "export", "slow") })
	pb := startBridgeProcess(t, hb, s.ClientURL(), "calling", "", "slow")
	pb.expect(t, `start import call "slow"`)
	cl, err := iox.OpenClient(ctx, nb, "slow", iox.Raw{}, iox.Raw{})
	require.NoError(t, err)
	defer cl.Close()
	called := make(chan error, 1)
	go func() {
		cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		_, err := cl.Call(cctx, []byte("hold"))
		called <- err
	}()
	q, err := srv.Recv(ctx)
	require.NoError(t, err)
	defer q.Close()
	require.NoError(t, pb.cmd.Process.Signal(syscall.SIGKILL))
	<-pb.done
	err = <-called
	var ie *iox.Error
	require.ErrorAs(t, err, &ie, "the call in flight: %v", err)
	require.ErrorIs(t, err, iox.ErrPeerGone, "the call in flight: %v", err)
	// The serving bridge learns that nobody waits for the answer any more
	// (its beats find no inbox): the request ends on its host too.
	eventually(t, "the request to end on the serving host", func() bool { return !q.Connected() })
}

// A caller that gives up (its context ends) ends the call on the serving
// host as well, within a few beats: the serving host's request finds its
// caller gone (Request.Connected), as locally.
func TestAdvAnAbandonedCallEndsOnTheServingHost(t *testing.T) {
	th := newTwoHosts(t, []string{"slow"}, []string{"slow"}, nil)
	ctx := ctxT(t)
	srv, err := iox.OpenServer(ctx, th.a, "slow", iox.Raw{}, iox.Raw{})
	require.NoError(t, err)
	defer srv.Close()
	eventually(t, "the import on B", func() bool { return th.logB.has("start", "import", "slow") })
	cl, err := iox.OpenClient(ctx, th.b, "slow", iox.Raw{}, iox.Raw{})
	require.NoError(t, err)
	defer cl.Close()
	cctx, giveUp := context.WithCancel(ctx)
	called := make(chan error, 1)
	go func() {
		_, err := cl.Call(cctx, []byte("hold"))
		called <- err
	}()
	q, err := srv.Recv(ctx)
	require.NoError(t, err)
	defer q.Close()
	require.True(t, q.Connected())
	giveUp()
	require.ErrorIs(t, <-called, context.Canceled)
	eventually(t, "the request to end on the serving host", func() bool { return !q.Connected() })
}
