package iox_test

// The test harness: TestMain, isolated namespaces, and child processes (the
// test binary re-executed in a role) with the line-by-line conversation between
// a test and its children. Other shared helpers are in helpers_test.go.

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"golang.org/x/sys/unix"

	"github.com/iox-go/iox"
)

// Child processes re-execute this test binary with IOX_CHILD set to a role; the
// role's function runs instead of the tests, and its error becomes the exit code.
var children = map[string]func() error{}

func init() { children["spin"] = childSpin }

func TestMain(m *testing.M) {
	if role := os.Getenv("IOX_CHILD"); role != "" {
		run, ok := children[role]
		if !ok {
			fmt.Fprintln(os.Stderr, "unknown child role", role)
			os.Exit(3)
		}
		stop := profileChild(role)
		err := run()
		stop()
		if err != nil {
			fmt.Fprintln(os.Stderr, "child", role+":", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	code := m.Run()
	os.Remove("/tmp/ioxt") // the parent of every namespace root; fails while one is left
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

// profileChild writes a CPU profile of a child process to
// $IOX_CHILD_CPUPROFILE.ROLE.PID, and an execution trace to
// $IOX_CHILD_TRACE.ROLE.PID, when those variables are set, so that the far
// side of a cross-process benchmark can be looked at too
// (IOX_CHILD_CPUPROFILE=/tmp/cpu go test -bench ...). Both processes' traces
// stamp events with the same monotonic clock, so `go tool trace -d=parsed`
// of each lines them up. It returns the stop.
func profileChild(role string) func() {
	var stops []func()
	start := func(env string, begin func(io.Writer) error, end func()) {
		base := os.Getenv(env)
		if base == "" {
			return
		}
		f, err := os.Create(fmt.Sprintf("%s.%s.%d", base, role, os.Getpid()))
		if err != nil {
			fmt.Fprintln(os.Stderr, "child", env+":", err)
			return
		}
		if err := begin(f); err != nil {
			fmt.Fprintln(os.Stderr, "child", env+":", err)
			f.Close()
			return
		}
		stops = append(stops, func() { end(); f.Close() })
	}
	start("IOX_CHILD_CPUPROFILE", pprof.StartCPUProfile, pprof.StopCPUProfile)
	start("IOX_CHILD_TRACE", trace.Start, trace.Stop)
	return func() {
		for _, stop := range stops {
			stop()
		}
	}
}

// runPrefix starts the prefix of every namespace this test process makes.
func runPrefix() string { return fmt.Sprintf("t%d", os.Getpid()) }

var nsCounter atomic.Int64

// namespace is an isolated iceoryx2 configuration (shm prefix + root folder) that
// one test and its child processes share, so tests never see each other.
type namespace struct{ prefix, root string }

func newNamespace(t testing.TB) namespace { return newNamespaceIn(t, "/tmp/ioxt") }

// newNamespaceIn is newNamespace with the root folder under base.
func newNamespaceIn(t testing.TB, base string) namespace {
	k := nsCounter.Add(1)
	ns := namespace{
		prefix: fmt.Sprintf("%s_%d_", runPrefix(), k),
		root:   fmt.Sprintf("%s/%d-%d/", base, os.Getpid(), k),
	}
	t.Cleanup(func() { ns.check(t) })
	return ns
}

// fromEnv is the namespace a child was started in.
func nsFromEnv() namespace {
	return namespace{prefix: os.Getenv("IOX_TEST_PREFIX"), root: os.Getenv("IOX_TEST_ROOT")}
}

func (ns namespace) env() []string {
	return []string{"IOX_TEST_PREFIX=" + ns.prefix, "IOX_TEST_ROOT=" + ns.root}
}

func (ns namespace) node(t testing.TB, opts ...iox.NodeOption) *iox.Node {
	t.Helper()
	n, err := iox.NewNode(append([]iox.NodeOption{iox.WithIsolation(ns.prefix, ns.root)}, opts...)...)
	if err != nil {
		t.Fatalf("new node: %v", err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

func (ns namespace) childNode() (*iox.Node, error) {
	return iox.NewNode(iox.WithIsolation(ns.prefix, ns.root))
}

// check fails the test when services, ports or nodes of the namespace are left in
// /dev/shm or under its root, then removes everything, including the per-namespace
// node-counter segment that iceoryx2 keeps on purpose.
func (ns namespace) check(t testing.TB) {
	var bad []string
	for _, f := range leftovers(ns.prefix) {
		if !strings.HasSuffix(f, ".global_mgmt") {
			bad = append(bad, f)
		}
		os.Remove(filepath.Join("/dev/shm", f))
	}
	filepath.Walk(ns.root, func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			bad = append(bad, p)
		}
		return nil
	})
	os.RemoveAll(ns.root)
	if len(bad) > 0 && !t.Failed() {
		t.Errorf("namespace %s left behind: %v", ns.prefix, bad)
	}
}

func leftovers(prefix string) []string {
	entries, _ := os.ReadDir("/dev/shm")
	var out []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) {
			out = append(out, e.Name())
		}
	}
	return out
}

// child is a running copy of the test binary in some role.
type child struct {
	t     testing.TB
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string
	done  chan error
}

// spawn starts the test binary as a child process in role, inside ns.
func spawn(t testing.TB, ns namespace, role string, env ...string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(append(append(os.Environ(), "IOX_CHILD="+role), ns.env()...), env...)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{t: t, cmd: cmd, stdin: stdin, lines: make(chan string, 1024), done: make(chan error, 1)}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
		close(c.lines)
		c.done <- cmd.Wait()
	}()
	t.Cleanup(func() {
		c.stdin.Close()
		select {
		case <-c.done:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			<-c.done
			t.Errorf("child %s did not exit", role)
		}
	})
	return c
}

// expect waits for the child's next output line and checks it.
func (c *child) expect(want string) {
	c.t.Helper()
	if got := c.line(); got != want {
		c.t.Fatalf("child said %q, want %q", got, want)
	}
}

// line returns the child's next output line (the test fails after 20 s).
func (c *child) line() string {
	c.t.Helper()
	select {
	case l, ok := <-c.lines:
		if !ok {
			c.t.Fatalf("child exited early")
		}
		return l
	case <-time.After(20 * time.Second):
		c.t.Fatalf("child said nothing for 20 s")
	}
	return ""
}

// say sends one line to the child's standard input.
func (c *child) say(s string) {
	c.t.Helper()
	if _, err := io.WriteString(c.stdin, s+"\n"); err != nil {
		c.t.Fatalf("write to child: %v", err)
	}
}

// wait waits for the child to exit and checks it succeeded.
func (c *child) wait() {
	c.t.Helper()
	c.stdin.Close()
	select {
	case err := <-c.done:
		c.done <- err
		if err != nil {
			c.t.Fatalf("child failed: %v", err)
		}
	case <-time.After(30 * time.Second):
		c.t.Fatalf("child did not exit")
	}
}

// parentSays reads one line from the parent (for use inside a child).
var stdinLines = bufio.NewScanner(os.Stdin)

func parentSays() string {
	if stdinLines.Scan() {
		return stdinLines.Text()
	}
	return ""
}

// parentLines delivers the parent's lines in the background (inside a child); it
// is closed when the parent closes standard input.
func parentLines() <-chan string {
	c := make(chan string, 16)
	go func() {
		for stdinLines.Scan() {
			c <- stdinLines.Text()
		}
		close(c)
	}()
	return c
}

// nextLine waits for the parent's next line starting with prefix and returns the
// rest; it fails after d.
func nextLine(lines <-chan string, prefix string, d time.Duration) (string, error) {
	timeout := time.After(d)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				return "", fmt.Errorf("parent hung up while waiting for %q", prefix)
			}
			if strings.HasPrefix(l, prefix) {
				return strings.TrimSpace(strings.TrimPrefix(l, prefix)), nil
			}
		case <-timeout:
			return "", fmt.Errorf("no %q from the parent for %v", prefix, d)
		}
	}
}

// expectPrefix waits for the child's next line, checks its prefix and returns
// the rest.
func (c *child) expectPrefix(prefix string) string {
	c.t.Helper()
	l := c.line()
	if !strings.HasPrefix(l, prefix) {
		c.t.Fatalf("child said %q, want %q...", l, prefix)
	}
	return strings.TrimSpace(strings.TrimPrefix(l, prefix))
}

// cldStopped is the code (si_code) with which waitid reports a child that
// stopped (CLD_STOPPED in <signal.h>).
const cldStopped = 5

// stop sends SIGSTOP and waits until the whole child has stopped. The signal
// only starts a group stop: each of the child's threads stops when it next
// takes it, and until then goes on running (on a loaded machine, for
// milliseconds after the signal was sent). The kernel reports the stop to the
// parent once the last thread has stopped. waitid also returns when the child
// ended instead (WEXITED), and reaps nothing (WNOWAIT): the harness collects
// the child's exit.
func (c *child) stop() {
	c.t.Helper()
	require.NoError(c.t, c.cmd.Process.Signal(syscall.SIGSTOP))
	var info unix.Siginfo
	for {
		err := unix.Waitid(unix.P_PID, c.cmd.Process.Pid, &info, unix.WSTOPPED|unix.WEXITED|unix.WNOWAIT, nil)
		if err == unix.EINTR {
			continue
		}
		require.NoError(c.t, err, "waiting for the child to stop")
		break
	}
	require.Equal(c.t, int32(cldStopped), info.Code, "the child ended instead of stopping")
}

// childSpin keeps IOX_THREADS goroutines busy, each locked to a thread of
// its own, says "spinning" once all of them run, and goes on until it is
// killed.
func childSpin() error {
	k := envInt("IOX_THREADS")
	runtime.GOMAXPROCS(k)
	var spins atomic.Uint64
	var running sync.WaitGroup
	running.Add(k)
	for range k {
		go func() {
			runtime.LockOSThread()
			running.Done()
			for {
				spins.Add(1)
			}
		}()
	}
	running.Wait()
	fmt.Println("spinning")
	select {}
}

// stop returns only once every thread of the child has stopped, also when
// the child has more busy threads than the machine has cores: those that wait
// for a core take the stop only when they get one, and until then the child
// is not stopped, whatever its main thread's state says.
func TestChildStopStopsEveryThread(t *testing.T) {
	ns := newNamespace(t)
	threads := 4 * runtime.NumCPU()
	c := spawn(t, ns, "spin", "IOX_THREADS="+strconv.Itoa(threads))
	t.Cleanup(func() { c.cmd.Process.Kill() }) // also when the test fails while the child is stopped
	c.expect("spinning")
	c.stop()
	states, err := threadStates(c.cmd.Process.Pid)
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(states), threads, "a thread for each spinning goroutine")
	for tid, state := range states {
		require.Equal(t, "T", state, "thread %s of the child", tid)
	}
	c.kill()
}

// kill sends SIGKILL and waits until the process is reaped.
func (c *child) kill() {
	c.t.Helper()
	require.NoError(c.t, c.cmd.Process.Signal(syscall.SIGKILL))
	select {
	case err := <-c.done:
		c.done <- err
	case <-time.After(20 * time.Second):
		c.t.Fatalf("killed child was not reaped")
	}
}
