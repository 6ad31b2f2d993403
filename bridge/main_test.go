package bridge_test

// The test harness: TestMain (with goleak), isolated namespaces standing for
// hosts, an embedded nats-server between them, and bridges with their status.

import (
	"context"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/iox-go/iox"
	"github.com/iox-go/iox/bridge"
	"github.com/iox-go/iox/internal/wait"
)

// Child processes re-execute the test binary with IOX_BRIDGE_CHILD set to a
// role; its function runs instead of the tests.
var children = map[string]func() error{}

func TestMain(m *testing.M) {
	if role := os.Getenv("IOX_BRIDGE_CHILD"); role != "" {
		run, ok := children[role]
		if !ok {
			fmt.Fprintln(os.Stderr, "unknown child role", role)
			os.Exit(3)
		}
		if err := run(); err != nil {
			fmt.Fprintln(os.Stderr, "child", role+":", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	code := m.Run()
	os.Remove("/tmp/ioxb")
	if code == 0 {
		if left := leftovers(runPrefix()); len(left) > 0 {
			fmt.Fprintln(os.Stderr, "shared memory left behind:", left)
			code = 1
		}
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

func runPrefix() string { return fmt.Sprintf("b%d", os.Getpid()) }

func leftovers(prefix string) []string {
	entries, _ := os.ReadDir("/dev/shm")
	var out []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) && !strings.HasSuffix(e.Name(), ".global_mgmt") {
			out = append(out, e.Name())
		}
	}
	return out
}

var nsCounter atomic.Int64

// host is one isolated namespace standing for a machine.
type host struct{ prefix, root string }

func newHost(t testing.TB) host {
	k := nsCounter.Add(1)
	h := host{prefix: fmt.Sprintf("%s_%d_", runPrefix(), k), root: fmt.Sprintf("/tmp/ioxb/%d-%d/", os.Getpid(), k)}
	t.Cleanup(func() {
		left := leftovers(h.prefix)
		require.NoError(t, iox.RemoveIsolation(h.prefix, h.root))
		if len(left) > 0 && !t.Failed() {
			t.Errorf("left in /dev/shm: %v", left)
		}
	})
	return h
}

func (h host) node(t testing.TB) *iox.Node {
	t.Helper()
	n, err := iox.NewNode(iox.WithIsolation(h.prefix, h.root))
	require.NoError(t, err)
	t.Cleanup(func() { n.Close() })
	return n
}

// natsServer starts an embedded server on 127.0.0.1 and a random port.
func natsServer(t testing.TB, c bridge.ListenConfig) *server.Server {
	t.Helper()
	if c.Addr == "" {
		c.Addr = "127.0.0.1:0"
	}
	if c.StoreDir == "" {
		c.StoreDir = t.TempDir()
	}
	s, err := bridge.Listen(c)
	require.NoError(t, err)
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	return s
}

func connect(t testing.TB, url string, opts ...nats.Option) *nats.Conn {
	t.Helper()
	opts = append([]nats.Option{nats.MaxReconnects(-1), nats.ReconnectWait(bridge.ReconnectWait)}, opts...)
	nc, err := nats.Connect(url, opts...)
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	return nc
}

// statusLog records what a bridge reports.
type statusLog struct {
	mu  sync.Mutex
	all []bridge.Status
}

func (l *statusLog) add(s bridge.Status) {
	l.mu.Lock()
	l.all = append(l.all, s)
	l.mu.Unlock()
}

// has reports whether a status with this event, direction and service came.
func (l *statusLog) has(event, dir, service string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range l.all {
		if s.Event == event && s.Dir == dir && s.Service == service {
			return true
		}
	}
	return false
}

// starts returns the "start" statuses of one direction and service.
func (l *statusLog) starts(dir, service string) []bridge.Status {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []bridge.Status
	for _, s := range l.all {
		if s.Event == "start" && s.Dir == dir && s.Service == service {
			out = append(out, s)
		}
	}
	return out
}

// errors returns the errors reported.
func (l *statusLog) errors() []error {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []error
	for _, s := range l.all {
		if s.Event == "error" {
			out = append(out, s.Err)
		}
	}
	return out
}

// startBridge runs a bridge over nc for node until the test ends.
func startBridge(t testing.TB, node *iox.Node, nc *nats.Conn, cfg bridge.Config) (*bridge.Bridge, *statusLog) {
	t.Helper()
	log := &statusLog{}
	cfg.Node, cfg.Conn, cfg.OnStatus = node, nc, log.add
	if cfg.Scan == 0 {
		cfg.Scan = 20 * time.Millisecond
	}
	if cfg.Announce == 0 {
		cfg.Announce = 200 * time.Millisecond
	}
	if cfg.Name == "" {
		cfg.Name = fmt.Sprintf("%s-%d", t.Name(), nsCounter.Add(1))
	}
	b, err := bridge.New(context.Background(), cfg)
	require.NoError(t, err)
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { b.Close() }) })
	return b, log
}

// eventually waits until cond holds (wait.Eventually).
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	wait.Eventually(t, what, cond)
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func freePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// serve opens a server of name on node and serves it with workers handlers
// at once until the test ends (then it stops serving and closes the server).
func serve(t testing.TB, node *iox.Node, name string, workers int, h func(context.Context, []byte) ([]byte, error)) {
	t.Helper()
	srv, err := iox.OpenServer(ctxT(t), node, name, iox.Raw{}, iox.Raw{})
	require.NoError(t, err)
	ctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, workers, h) }()
	t.Cleanup(func() {
		stop()
		<-served
		srv.Close()
	})
}

// echo answers a request with itself.
func echo(_ context.Context, req []byte) ([]byte, error) { return req, nil }

// sendUntilOneCrosses sends msg(i), for i = 0, 1, …, on a lossy publisher until
// the subscriber on the other host receives one of them, and returns it.
func sendUntilOneCrosses(t testing.TB, ctx context.Context, pub *iox.Pub[[]byte], sub *iox.Sub[[]byte], msg func(i int) []byte) []byte {
	t.Helper()
	got := make(chan []byte, 1)
	go func() {
		m, err := sub.Recv(ctx)
		if err == nil {
			got <- m
		}
		close(got)
	}()
	var first []byte
	i := 0
	eventually(t, "a message to cross", func() bool {
		require.NoError(t, pub.Send(ctx, msg(i)))
		i++
		select {
		case first = <-got:
			return true
		default:
			return false
		}
	})
	require.NotNil(t, first, "the subscriber's Recv ended")
	return first
}
