package bridge_test

// Benchmarks of the bridge against raw nats.go on the same server in the same
// run. Each benchmark has a "raw" part alone, then "bridge", which measures
// raw NATS again in turns with the bridge (a raw round trip or burst, then the
// bridge's) and reports its ratio to that raw (x-raw), so that both see the
// same load: for latencies the ratio of the medians (lower is better), for
// throughput the ratio of delivered messages per second over all the bursts
// (higher is better).
//
//	go test -run '^$' -bench Latency -benchtime 2000x ./bridge
//	go test -run '^$' -bench Throughput -benchtime 30x ./bridge
//
// (one op of a throughput benchmark is a whole burst: 2000 of them take
// longer than go test's default timeout).
//
// Latency is a round trip: publish-subscribe from host A to host B and back
// (B's program echoes), a call from B served on A; raw NATS does the same
// between two connections. Throughput is one way, A to B, counted at the
// receiving program: lossy services against NATS core, lossless channels
// against JetStream (async publish, pull consumer). The server's max_payload
// is 8 MiB so that 1 MiB messages are one NATS message for both.

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/iox-go/iox"
	"github.com/iox-go/iox/bridge"
)

// percentiles reports p50 and p99 of ds (with the unit's prefix) and returns
// p50 in ns.
func percentiles(b *testing.B, prefix string, ds []time.Duration) float64 {
	slices.Sort(ds)
	p50 := float64(ds[len(ds)/2].Nanoseconds())
	b.ReportMetric(p50/1e3, prefix+"p50-µs")
	b.ReportMetric(float64(ds[len(ds)*99/100].Nanoseconds())/1e3, prefix+"p99-µs")
	return p50
}

// benchHosts runs two bridges with the defaults of Scan and Announce (the
// tests scan five times as often; a scan lists the whole namespace), and
// returns the server's URL for raw NATS.
func benchHosts(b *testing.B, ca, cb bridge.Config) (na, nb *iox.Node, lb *statusLog, url string) {
	ca.Scan, cb.Scan = 100*time.Millisecond, 100*time.Millisecond
	ca.Announce, cb.Announce = time.Second, time.Second
	s := natsServer(b, bridge.ListenConfig{MaxPayload: 8 << 20})
	url = s.ClientURL()
	na, nb = newHost(b).node(b), newHost(b).node(b)
	_, la := startBridge(b, na, connect(b, url), ca)
	_, lb = startBridge(b, nb, connect(b, url), cb)
	b.Cleanup(func() {
		if errs := append(la.errors(), lb.errors()...); len(errs) > 0 {
			b.Logf("bridge errors: %v", errs)
		}
	})
	return na, nb, lb, url
}

// rawPubSub returns one raw NATS publish-subscribe round trip between two
// connections to url.
func rawPubSub(b *testing.B, url string) func() time.Duration {
	n1, n2 := connect(b, url), connect(b, url)
	pong := make(chan *nats.Msg, 1)
	_, err := n1.ChanSubscribe("raw.pong", pong)
	require.NoError(b, err)
	_, err = n2.Subscribe("raw.ping", func(m *nats.Msg) { n2.Publish("raw.pong", m.Data) })
	require.NoError(b, err)
	require.NoError(b, n2.Flush())
	msg := make([]byte, 64)
	return func() time.Duration {
		t0 := time.Now()
		if err := n1.Publish("raw.ping", msg); err != nil {
			b.Fatal(err)
		}
		<-pong
		return time.Since(t0)
	}
}

// rawCall returns one raw NATS request/reply between two connections to url.
func rawCall(b *testing.B, url string) func() time.Duration {
	n1, n2 := connect(b, url), connect(b, url)
	_, err := n2.Subscribe("raw.call", func(m *nats.Msg) { m.Respond(m.Data) })
	require.NoError(b, err)
	require.NoError(b, n2.Flush())
	msg := make([]byte, 64)
	return func() time.Duration {
		t0 := time.Now()
		if _, err := n1.Request("raw.call", msg, 5*time.Second); err != nil {
			b.Fatal(err)
		}
		return time.Since(t0)
	}
}

func BenchmarkLatencyPubSub(b *testing.B) {
	b.Run("raw", func(b *testing.B) {
		rt := rawPubSub(b, natsServer(b, bridge.ListenConfig{}).ClientURL())
		ds := make([]time.Duration, 0, b.N)
		for b.Loop() {
			ds = append(ds, rt())
		}
		percentiles(b, "", ds)
	})
	b.Run("bridge", func(b *testing.B) {
		na, nb, _, url := benchHosts(b, bridge.Config{Export: []string{"ping"}, Import: []string{"pong"}},
			bridge.Config{Export: []string{"pong"}, Import: []string{"ping"}})
		raw := rawPubSub(b, url)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		pingB, err := iox.OpenSub(ctx, nb, "ping", iox.Lossy())
		require.NoError(b, err)
		defer pingB.Close()
		pongB, err := iox.OpenPub(ctx, nb, "pong", iox.Lossy())
		require.NoError(b, err)
		defer pongB.Close()
		pongA, err := iox.OpenSub(ctx, na, "pong", iox.Lossy())
		require.NoError(b, err)
		defer pongA.Close()
		pingA, err := iox.OpenPub(ctx, na, "ping", iox.Lossy())
		require.NoError(b, err)
		defer pingA.Close()
		var echo sync.WaitGroup
		echo.Go(func() {
			for {
				m, err := pingB.Recv(ctx)
				if err != nil {
					return
				}
				pongB.Send(ctx, m)
			}
		})
		defer echo.Wait()
		defer cancel()
		msg := make([]byte, 64)
		// Routes come up: ping until a pong comes back.
		for start := time.Now(); ; {
			require.Less(b, time.Since(start), time.Minute, "no route")
			require.NoError(b, pingA.Send(ctx, msg))
			wctx, c := context.WithTimeout(ctx, 50*time.Millisecond)
			_, err := pongA.Recv(wctx)
			c()
			if err == nil {
				break
			}
		}
		ds := make([]time.Duration, 0, b.N)
		rs := make([]time.Duration, 0, b.N)
		for b.Loop() {
			rs = append(rs, raw())
			t0 := time.Now()
			if err := pingA.Send(ctx, msg); err != nil {
				b.Fatal(err)
			}
			if _, err := pongA.Recv(ctx); err != nil {
				b.Fatal(err)
			}
			ds = append(ds, time.Since(t0))
		}
		b.ReportMetric(percentiles(b, "", ds)/percentiles(b, "raw-", rs), "x-raw")
	})
}

func BenchmarkLatencyCall(b *testing.B) {
	b.Run("raw", func(b *testing.B) {
		rt := rawCall(b, natsServer(b, bridge.ListenConfig{}).ClientURL())
		ds := make([]time.Duration, 0, b.N)
		for b.Loop() {
			ds = append(ds, rt())
		}
		percentiles(b, "", ds)
	})
	b.Run("bridge", func(b *testing.B) {
		na, nb, lb, url := benchHosts(b, bridge.Config{Export: []string{"echo"}}, bridge.Config{Import: []string{"echo"}})
		raw := rawCall(b, url)
		ctx, cancel := context.WithCancel(context.Background())
		srv, err := iox.OpenServer(ctx, na, "echo", iox.Raw{}, iox.Raw{})
		require.NoError(b, err)
		defer srv.Close()
		var serve sync.WaitGroup
		serve.Go(func() {
			srv.Serve(ctx, 4, func(_ context.Context, req []byte) ([]byte, error) { return req, nil })
		})
		defer serve.Wait()
		defer cancel()
		eventually(b, "the import on B", func() bool { return lb.has("start", "import", "echo") })
		cl, err := iox.OpenClient(ctx, nb, "echo", iox.Raw{}, iox.Raw{})
		require.NoError(b, err)
		defer cl.Close()
		msg := make([]byte, 64)
		_, err = cl.Call(ctx, msg)
		require.NoError(b, err)
		ds := make([]time.Duration, 0, b.N)
		rs := make([]time.Duration, 0, b.N)
		for b.Loop() {
			rs = append(rs, raw())
			t0 := time.Now()
			if _, err := cl.Call(ctx, msg); err != nil {
				b.Fatal(err)
			}
			ds = append(ds, time.Since(t0))
		}
		b.ReportMetric(percentiles(b, "", ds)/percentiles(b, "raw-", rs), "x-raw")
	})
}

var sizes = []struct {
	name string
	n    int
}{{"64B", 64}, {"4KiB", 4 << 10}, {"1MiB", 1 << 20}}

// countFor is how many messages a throughput run sends at size n.
func countFor(n int) int { return max(32, min(20000, (32<<20)/n)) }

// rate adds up bursts: messages delivered and the time they took.
type rate struct {
	n int
	d time.Duration
}

func (r *rate) add(n int, d time.Duration) { r.n, r.d = r.n+n, r.d+d }
func (r rate) perSecond() float64          { return float64(r.n) / r.d.Seconds() }

// rawLossyBurst returns one burst of count messages of size bytes between two
// connections to url (NATS core); it reports what arrived and how long it took.
func rawLossyBurst(b *testing.B, url string, size int) func() (int, time.Duration) {
	n1, n2 := connect(b, url), connect(b, url)
	count := countFor(size)
	got := make(chan int, 1)
	seen := 0
	sub, err := n2.Subscribe("raw.tp", func(m *nats.Msg) {
		seen++
		if len(m.Data) > 0 && m.Data[0] == 1 {
			got <- seen
		}
	})
	require.NoError(b, err)
	sub.SetPendingLimits(-1, -1)
	require.NoError(b, n2.Flush())
	msg, last := make([]byte, size), make([]byte, size)
	last[0] = 1
	return func() (int, time.Duration) {
		seen = 0
		t0 := time.Now()
		for range count - 1 {
			n1.Publish("raw.tp", msg)
		}
		n1.Publish("raw.tp", last)
		n := <-got
		return n, time.Since(t0)
	}
}

// rawLosslessBurst returns one burst of count messages of size bytes through
// JetStream (async publish, pull consumer) between two connections to url.
func rawLosslessBurst(b *testing.B, url string, size int) func() (int, time.Duration) {
	n1, n2 := connect(b, url), connect(b, url)
	ctx := context.Background()
	js1, err := jetstream.New(n1, jetstream.WithPublishAsyncMaxPending(256))
	require.NoError(b, err)
	js2, err := jetstream.New(n2)
	require.NoError(b, err)
	_, err = js1.CreateStream(ctx, jetstream.StreamConfig{Name: "RAW", Subjects: []string{"raw.>"},
		Retention: jetstream.InterestPolicy, Storage: jetstream.FileStorage, MaxBytes: 1 << 30, Discard: jetstream.DiscardNew})
	require.NoError(b, err)
	cons, err := js2.CreateOrUpdateConsumer(ctx, "RAW", jetstream.ConsumerConfig{Durable: "raw", AckPolicy: jetstream.AckExplicitPolicy, MaxAckPending: 1024})
	require.NoError(b, err)
	it, err := cons.Messages(jetstream.PullMaxMessages(256))
	require.NoError(b, err)
	b.Cleanup(it.Stop)
	count := countFor(size)
	msg := make([]byte, size)
	return func() (int, time.Duration) {
		t0 := time.Now()
		var pubs sync.WaitGroup
		pubs.Go(func() {
			for range count {
				js1.PublishAsync("raw.tp", msg)
			}
			<-js1.PublishAsyncComplete()
		})
		for range count {
			m, err := it.Next()
			if err != nil {
				b.Fatal(err)
			}
			m.Ack()
		}
		pubs.Wait()
		return count, time.Since(t0)
	}
}

func BenchmarkThroughputLossy(b *testing.B) {
	for _, sz := range sizes {
		b.Run(sz.name+"/raw", func(b *testing.B) {
			burst := rawLossyBurst(b, natsServer(b, bridge.ListenConfig{MaxPayload: 8 << 20}).ClientURL(), sz.n)
			var r rate
			for b.Loop() {
				r.add(burst())
			}
			b.ReportMetric(r.perSecond(), "msg/s")
		})
		b.Run(sz.name+"/bridge", func(b *testing.B) {
			na, nb, _, url := benchHosts(b, bridge.Config{Export: []string{"tp"}}, bridge.Config{Import: []string{"tp"}})
			raw := rawLossyBurst(b, url, sz.n)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			count := countFor(sz.n)
			sub, err := iox.OpenSub(ctx, nb, "tp", iox.Lossy(), iox.BufferSize(1024), iox.MaxMessageSize(2<<20))
			require.NoError(b, err)
			defer sub.Close()
			pub, err := iox.OpenPub(ctx, na, "tp", iox.Lossy(), iox.BufferSize(1024), iox.MaxMessageSize(2<<20))
			require.NoError(b, err)
			defer pub.Close()
			msg, last, probe := make([]byte, sz.n), make([]byte, sz.n), make([]byte, sz.n)
			last[0], probe[0] = 1, 2
			for start := time.Now(); ; { // the route is up once a probe arrives
				require.Less(b, time.Since(start), time.Minute, "no route")
				require.NoError(b, pub.Send(ctx, probe))
				wctx, c := context.WithTimeout(ctx, 50*time.Millisecond)
				_, err := sub.Recv(wctx)
				c()
				if err == nil {
					break
				}
			}
			var r, rr rate
			lost := 0
			for b.Loop() {
				rr.add(raw())
				t0 := time.Now()
				for range count - 1 {
					if err := pub.Send(ctx, msg); err != nil {
						b.Fatal(err)
					}
				}
				if err := pub.Send(ctx, last); err != nil {
					b.Fatal(err)
				}
				n := 0
				tLast := t0
				for {
					wctx, c := context.WithTimeout(ctx, time.Second)
					m, err := sub.Recv(wctx)
					c()
					if err != nil {
						break // the last message was lost: count what came
					}
					if m[0] == 2 {
						continue
					}
					n++
					tLast = time.Now()
					if m[0] == 1 {
						break
					}
				}
				r.add(n, tLast.Sub(t0))
				lost += count - n
			}
			b.ReportMetric(r.perSecond(), "msg/s")
			b.ReportMetric(rr.perSecond(), "raw-msg/s")
			b.ReportMetric(float64(lost)/float64(b.N*count)*100, "lost-%")
			b.ReportMetric(r.perSecond()/rr.perSecond(), "x-raw")
		})
	}
}

func BenchmarkThroughputLossless(b *testing.B) {
	for _, sz := range sizes {
		b.Run(sz.name+"/raw", func(b *testing.B) {
			burst := rawLosslessBurst(b, natsServer(b, bridge.ListenConfig{MaxPayload: 8 << 20}).ClientURL(), sz.n)
			var r rate
			for b.Loop() {
				r.add(burst())
			}
			b.ReportMetric(r.perSecond(), "msg/s")
		})
		b.Run(sz.name+"/bridge", func(b *testing.B) {
			na, nb, _, url := benchHosts(b, bridge.Config{Export: []string{"tp"}}, bridge.Config{Import: []string{"tp"}})
			raw := rawLosslessBurst(b, url, sz.n)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			count := countFor(sz.n)
			sub, err := iox.OpenSub(ctx, nb, "tp", iox.MaxMessageSize(2<<20))
			require.NoError(b, err)
			defer sub.Close()
			pub, err := iox.OpenPub(ctx, na, "tp", iox.MaxMessageSize(2<<20))
			require.NoError(b, err)
			defer pub.Close()
			msg := make([]byte, sz.n)
			// The route is up once a probe crosses.
			rctx, rcancel := context.WithTimeout(ctx, time.Minute)
			require.NoError(b, waitRoute(rctx, pub, sub, msg))
			rcancel()
			var r, rr rate
			for b.Loop() {
				rr.add(raw())
				t0 := time.Now()
				var pubs sync.WaitGroup
				pubs.Go(func() {
					for range count {
						pub.Send(ctx, msg)
					}
				})
				for range count {
					if _, err := sub.Recv(ctx); err != nil {
						b.Fatal(err)
					}
				}
				pubs.Wait()
				r.add(count, time.Since(t0))
			}
			b.ReportMetric(r.perSecond(), "msg/s")
			b.ReportMetric(rr.perSecond(), "raw-msg/s")
			b.ReportMetric(r.perSecond()/rr.perSecond(), "x-raw")
		})
	}
}

// waitRoute sends one message and waits for it: lossless, it crosses once the
// import's consumer exists, so it is sent again until it does.
func waitRoute(ctx context.Context, pub *iox.Pub[[]byte], sub *iox.Sub[[]byte], msg []byte) error {
	for {
		if err := pub.Send(ctx, msg); err != nil {
			return err
		}
		wctx, c := context.WithTimeout(ctx, 100*time.Millisecond)
		_, err := sub.Recv(wctx)
		c()
		if err == nil {
			// Drain the copies sent before the route was up that may still come.
			for {
				wctx, c := context.WithTimeout(ctx, 100*time.Millisecond)
				_, err := sub.Recv(wctx)
				c()
				if err != nil {
					return nil
				}
			}
		}
		if ctx.Err() != nil {
			return fmt.Errorf("no route: %w", ctx.Err())
		}
	}
}
