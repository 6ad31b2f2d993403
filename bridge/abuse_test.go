package bridge_test

// Abuse: bridges whose periods differ, a Close that must tell the other side,
// hostile announcements, pair frames and requests, floods of fake senders,
// absurd Config values, and Close while the server is away.

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"github.com/iox-go/iox"
	"github.com/iox-go/iox/bridge"
)

// requireTyped checks that every error is an *iox.Error.
func requireTyped(t *testing.T, errs []error) {
	t.Helper()
	for _, e := range errs {
		var ie *iox.Error
		require.True(t, errors.As(e, &ie), "not typed: %v", e)
	}
}

// count returns how many statuses of this event, direction and service came.
func count(l *statusLog, event, dir, service string) int {
	n := 0
	for _, s := range l.snapshot() {
		if s.Event == event && s.Dir == dir && s.Service == service {
			n++
		}
	}
	return n
}

func (l *statusLog) snapshot() []bridge.Status {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]bridge.Status(nil), l.all...)
}

// announcements counts the announcements of name (not "gone") on the wire.
func announcements(t *testing.T, url, name string) *atomic.Int64 {
	t.Helper()
	nc := connect(t, url)
	var n atomic.Int64
	_, err := nc.Subscribe("iox.ann."+bridge.EscapeName(name), func(m *nats.Msg) {
		var a struct {
			Gone   bool `json:"gone"`
			Attach bool `json:"attach"`
		}
		if json.Unmarshal(m.Data, &a) == nil && !a.Gone && !a.Attach {
			n.Add(1)
		}
	})
	require.NoError(t, err)
	require.NoError(t, nc.Flush())
	return &n
}

// An importing bridge whose Announce is shorter than the exporting bridge's
// judges the exporter's announcements by the exporter's pace: its import
// does not end between two announcements and start again at the next.
func TestAbuseAnImportOfASlowerAnnouncerDoesNotFlap(t *testing.T) {
	th := newTwoHosts(t, []string{"slow/*"}, []string{"slow/*"}, func(a, b *bridge.Config) {
		a.Announce = 300 * time.Millisecond
		b.Announce = 20 * time.Millisecond
	})
	ctx := ctxT(t)
	pub, err := iox.OpenPub(ctx, th.a, "slow/tick", iox.Lossy())
	require.NoError(t, err)
	defer pub.Close()
	eventually(t, "the import on B", func() bool { return th.logB.has("start", "import", "slow/tick") })
	seen := announcements(t, th.url, "slow/tick")
	eventually(t, "four announcements by A", func() bool { return seen.Load() >= 4 })
	require.False(t, th.logB.has("stop", "import", "slow/tick"), "B ended its import between A's announcements")
	require.Len(t, th.logB.starts("import", "slow/tick"), 1)
}

// A Close announces that the bridge's exports are gone (as its doc says):
// the other bridge ends its import at once, not after three periods.
func TestAbuseCloseTellsTheImportingBridgeAtOnce(t *testing.T) {
	th := newTwoHosts(t, []string{"bye/*"}, []string{"bye/*"}, func(a, b *bridge.Config) {
		a.Announce = 10 * time.Second
		b.Announce = 10 * time.Second
	})
	ctx := ctxT(t)
	pub, err := iox.OpenPub(ctx, th.a, "bye/x", iox.Lossy())
	require.NoError(t, err)
	defer pub.Close()
	eventually(t, "the import on B", func() bool { return th.logB.has("start", "import", "bye/x") })
	require.NoError(t, th.ba.Close())
	require.Eventually(t, func() bool { return th.logB.has("stop", "import", "bye/x") }, 5*time.Second, time.Millisecond,
		"B's import outlived A's Close (three periods are 30 s)")
}

// A bridge that only imports has nothing to scan: a long Scan must not keep
// its imports alive after their export is gone.
func TestAbuseALongScanDoesNotKeepImportsAlive(t *testing.T) {
	th := newTwoHosts(t, []string{"scan/*"}, []string{"scan/*"}, func(a, b *bridge.Config) {
		a.Announce = 50 * time.Millisecond
		b.Announce = 50 * time.Millisecond
		b.Scan = time.Hour
	})
	ctx := ctxT(t)
	pub, err := iox.OpenPub(ctx, th.a, "scan/x", iox.Lossy())
	require.NoError(t, err)
	eventually(t, "the import on B", func() bool { return th.logB.has("start", "import", "scan/x") })
	require.NoError(t, pub.Close()) // A's export ends, announced gone
	eventually(t, "the export's stop on A", func() bool { return th.logA.has("stop", "export", "scan/x") })
	require.Eventually(t, func() bool { return th.logB.has("stop", "import", "scan/x") }, 5*time.Second, time.Millisecond,
		"B's import outlived its export by far more than three periods")
}

// A program sends on a lossless channel and closes its publisher while the
// importing host's subscriber lags: the export ends (announced gone), but what
// waits in the stream for the importing bridge still crosses, every message.
func TestAbuseLosslessMessagesSentBeforeThePublisherClosedAllCross(t *testing.T) {
	th := newTwoHosts(t, []string{"strand/*"}, []string{"strand/*"}, nil)
	ctx := ctxT(t)
	sub, err := iox.OpenSub(ctx, th.b, "strand/x")
	require.NoError(t, err)
	defer sub.Close()
	pub, err := iox.OpenPub(ctx, th.a, "strand/x")
	require.NoError(t, err)
	eventually(t, "the import on B", func() bool { return th.logB.has("start", "import", "strand/x") })
	const n = 5000
	for i := range n {
		require.NoError(t, pub.Send(ctx, seqMsg(i, 64)))
	}
	require.NoError(t, pub.Flush(ctx))
	require.NoError(t, pub.Close())
	eventually(t, "the export's stop on A", func() bool { return th.logA.has("stop", "export", "strand/x") })
	for i := range n {
		m := recvWithin(t, sub, 5*time.Second)
		require.Equal(t, seqMsg(i, 64), m, "message %d", i)
	}
	require.Empty(t, th.logB.errors())
}

// Hostile announcements (not JSON, no name, unknown kinds, types that do not
// parse, a pair without a session, names iox refuses, a huge name, an attach
// for nothing) are ignored or reported as typed errors; a real export behind
// them is imported.
func TestAbuseHostileAnnouncements(t *testing.T) {
	th := newTwoHosts(t, []string{"real"}, []string{"**"}, nil)
	evil := connect(t, th.url)
	ann := func(name string, v any) {
		data, ok := v.([]byte)
		if !ok {
			var err error
			data, err = json.Marshal(v)
			require.NoError(t, err)
		}
		require.NoError(t, evil.Publish("iox.ann."+bridge.EscapeName(name), data))
	}
	type a = map[string]any
	ann("x", []byte("{not json"))
	ann("x", []byte("null"))
	ann("", a{"origin": "evil", "name": ""})
	ann("k", a{"origin": "evil", "name": "k", "kind": "teleport", "type": "bytes/1/1"})
	ann("t1", a{"origin": "evil", "name": "t1", "kind": "lossless", "type": "garbage"})
	ann("t2", a{"origin": "evil", "name": "t2", "kind": "lossy", "type": "x/-1/0"})
	ann("t3", a{"origin": "evil", "name": "t3", "kind": "call", "type": "bytes/1/1", "resp": ""})
	ann("p", a{"origin": "evil", "name": "p", "kind": "pair", "type": "bytes/1/1"})
	ann("bad//name", a{"origin": "evil", "name": "bad//name", "kind": "lossy", "type": "bytes/1/1"})
	ann("nul", a{"origin": "evil", "name": "a\x00b", "kind": "event", "type": "event"})
	huge := strings.Repeat("h", 3000)
	ann("huge", a{"origin": "evil", "name": huge, "kind": "lossy", "type": "bytes/1/1"})
	ann("att", a{"origin": "evil", "name": "real", "kind": "pair", "attach": true, "session": "s"})
	ann("ev", a{"origin": "evil", "name": "ev", "kind": "event", "type": "event", "every": -5})
	ann("ev2", a{"origin": "evil", "name": "ev2", "kind": "event", "type": "event", "every": int64(1) << 62})
	require.NoError(t, evil.Flush())
	ctx := ctxT(t)
	pub, err := iox.OpenPub(ctx, th.a, "real", iox.Lossy())
	require.NoError(t, err)
	defer pub.Close()
	eventually(t, "the real import on B", func() bool { return th.logB.has("start", "import", "real") })
	eventually(t, "errors for the types that do not parse", func() bool {
		return th.logB.has("error", "import", "t1") && th.logB.has("error", "import", "t2") &&
			th.logB.has("error", "import", "t3") && th.logB.has("error", "import", "p")
	})
	requireTyped(t, th.logB.errors())
	require.NoError(t, th.bb.Close()) // the forged imports end with the bridge
}

// A program closes its lossless publisher and opens it again at once, while
// the importing host's subscriber lags: the import of the first export is
// still stopping when the second is announced. The import started for the
// second waits for it, so nothing is repeated or reordered.
func TestAbuseAnImportStartedAgainWhileTheLastStopsRepeatsNothing(t *testing.T) {
	th := newTwoHosts(t, []string{"again/*"}, []string{"again/*"}, nil)
	ctx := ctxT(t)
	sub, err := iox.OpenSub(ctx, th.b, "again/x")
	require.NoError(t, err)
	defer sub.Close()
	const n = 3000
	next := 0
	for round := range 3 {
		pub, err := iox.OpenPub(ctx, th.a, "again/x")
		require.NoError(t, err)
		eventually(t, "the export on A", func() bool { return len(th.logA.starts("export", "again/x")) == round+1 })
		if round == 0 { // what is sent before the import's consumer exists is not kept
			eventually(t, "the import on B", func() bool { return th.logB.has("start", "import", "again/x") })
		}
		for range n {
			require.NoError(t, pub.Send(ctx, seqMsg(next, 64)))
			next++
		}
		require.NoError(t, pub.Flush(ctx))
		require.NoError(t, pub.Close())
		eventually(t, "the export's stop on A", func() bool { return count(th.logA, "stop", "export", "again/x") == round+1 })
	}
	var got []int
	for range next {
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		m, err := sub.Recv(rctx)
		cancel()
		if err != nil {
			break
		}
		got = append(got, int(binary.LittleEndian.Uint64(m)))
	}
	require.Equal(t, next, len(got), "received %s; B: %v", runs(got), th.logB.snapshot())
	for i, v := range got {
		require.Equal(t, i, v, "received %s; B: %v", runs(got), th.logB.snapshot())
	}
	require.Empty(t, th.logB.errors())
}

// runs describes a sequence of numbers as its ascending runs.
func runs(s []int) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		j := i + 1
		for j < len(s) && s[j] == s[j-1]+1 {
			j++
		}
		fmt.Fprintf(&b, "%d..%d ", s[i], s[j-1])
		i = j
	}
	return b.String()
}

// Hostile requests on an exported call's subject (no reply subject, no
// headers, a wrong type, a part of a request, absurd beats) are refused with
// an end the forger receives, reported as typed errors; a real call behind
// them is served.
func TestAbuseHostileRequests(t *testing.T) {
	th := newTwoHosts(t, []string{"svc/*"}, []string{"svc/*"}, nil)
	ctx := ctxT(t)
	srv, err := iox.OpenServer(ctx, th.a, "svc/echo", iox.Raw{}, iox.Raw{})
	require.NoError(t, err)
	defer srv.Close()
	sctx, stop := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() {
		served <- srv.Serve(sctx, 2, func(_ context.Context, req []byte) ([]byte, error) { return req, nil })
	}()
	defer func() { stop(); <-served }()
	eventually(t, "the import on B", func() bool { return th.logB.has("start", "import", "svc/echo") })
	evil := connect(t, th.url)
	subject := bridge.Subject("iox", "rpc", "svc/echo")
	typ := bridge.TypeString(iox.Bytes)
	require.NoError(t, evil.Publish(subject, []byte("no reply subject")))
	ask := func(data []byte, hdr ...string) *nats.Msg {
		m := nats.NewMsg(subject)
		for i := 0; i+1 < len(hdr); i += 2 {
			m.Header.Set(hdr[i], hdr[i+1])
		}
		m.Data = data
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		r, err := evil.RequestMsgWithContext(rctx, m)
		require.NoError(t, err)
		return r
	}
	for _, hdr := range [][]string{
		nil,
		{"Iox-Type", "u64/8/8", "Iox-Id", "e.1", "Iox-Origin", "evil"},
		{"Iox-Type", typ, "Iox-Id", "e.2", "Iox-Origin", "evil", "Iox-Part", "1/2", "Iox-Size", "10"},
		{"Iox-Type", typ, "Iox-Id", "e.3", "Iox-Origin", "evil", "Iox-Count", "2"},
	} {
		r := ask([]byte("hostile"), hdr...)
		require.NotEmpty(t, r.Header.Get("Iox-End"), "the forger's call is ended: %v", r.Header)
		require.NotEqual(t, "ok", r.Header.Get("Iox-End"))
	}
	// Well-formed but with beats absurd either way: answered.
	for _, beat := range []string{"-5", "abc", "99999999999", "1"} {
		r := ask([]byte("beat "+beat), "Iox-Type", typ, "Iox-Id", "b."+beat, "Iox-Origin", "evil", "Iox-Beat", beat)
		for r.Header.Get("Iox-Beat") != "" {
			t.Fatalf("a beat before the answer: %v", r.Header)
		}
		require.Equal(t, "beat "+beat, string(r.Data))
	}
	eventually(t, "four errors on A", func() bool { return len(th.logA.errors()) >= 4 })
	requireTyped(t, th.logA.errors())
	cl, err := iox.OpenClient(ctx, th.b, "svc/echo", iox.Raw{}, iox.Raw{})
	require.NoError(t, err)
	defer cl.Close()
	resp, err := cl.Call(ctx, []byte("real"))
	require.NoError(t, err)
	require.Equal(t, "real", string(resp))
}

// A flood of fake senders, each leaving a message half joined, on a lossy
// import: the bridge keeps at most its bound of senders (reporting the
// messages it forgets as typed errors) and goes on relaying the real one.
func TestAbuseAFloodOfFakeSendersOnALossyImport(t *testing.T) {
	th := newTwoHosts(t, []string{"flood"}, []string{"flood"}, nil)
	ctx := ctxT(t)
	pub, sub := th.lossy(t, "flood")
	f := forger{t, connect(t, th.url), bridge.Subject("iox", "ps", "flood")}
	typ := bridge.TypeString(iox.Bytes)
	const fakes = 500
	for i := range fakes {
		o := fmt.Sprintf("fake%d", i)
		f.send([]byte("half"), "Iox-Type", typ, "Iox-Origin", o, "Iox-Id", o+".1", "Iox-Part", "1/2", "Iox-Size", "8")
	}
	require.NoError(t, f.nc.Flush())
	eventually(t, "the forgotten halves reported", func() bool { return len(th.logB.errors()) >= fakes-64 })
	requireTyped(t, th.logB.errors())
	m := sendUntilOneCrosses(t, ctx, pub, sub, func(int) []byte { return []byte("real") })
	require.Equal(t, "real", string(m), "a real message after the flood")
}
