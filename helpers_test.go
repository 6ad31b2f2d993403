package iox_test

// Helpers the test files share: waiting for conditions, checking errors,
// looking at a namespace's files, and the messages the streaming tests send.
// The child-process harness (namespaces, spawn, the conversation with a
// child) is in main_test.go.

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/iox-go/iox"
	"github.com/iox-go/iox/internal/wait"
)

// eventually waits until cond holds (wait.Eventually).
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	wait.Eventually(t, what, cond)
}

// waitUntil is wait.Until: eventually for child processes, which have no
// testing.T.
func waitUntil(d time.Duration, cond func() bool) bool { return wait.Until(d, cond) }

// goroutinesIn counts this process's goroutines whose stack passes through the
// function fn, named as a stack trace names it ("iox.(*Listener).Wait",
// "iox.(*Pair[...]).Send"); with parked, only those that are blocked (neither
// running, runnable nor in a system or native call).
func goroutinesIn(fn string, parked bool) int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	count := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		header, stack, _ := strings.Cut(g, "\n")
		if !strings.Contains(stack, fn+"(") {
			continue
		}
		state := header[strings.IndexByte(header, '[')+1:]
		state, _, _ = strings.Cut(state, "]")
		state, _, _ = strings.Cut(state, ",")
		if parked && (state == "running" || state == "runnable" || state == "syscall") {
			continue
		}
		count++
	}
	return count
}

// waitParked waits until n goroutines are blocked in the function fn (see
// goroutinesIn): a call that is meant to block has got there.
func waitParked(t testing.TB, fn string, n int) {
	t.Helper()
	eventually(t, fmt.Sprintf("%d goroutines blocked in %s", n, fn), func() bool { return goroutinesIn(fn, true) >= n })
}

// waitHeldBack waits until a sending goroutine is held back: blocked in the
// function fn (see goroutinesIn) with sent, the count of what it sent, the same
// as at the last looks, and no queue of a sender still at work (its goroutine
// running or runnable: on a loaded machine it may not have run yet, and what it
// moves to the receiver makes room). It returns that count.
func waitHeldBack(t testing.TB, fn string, sent func() int64) int64 {
	t.Helper()
	const pump = "iox.(*sender[...]).pump"
	last, same := int64(-1), 0
	eventually(t, "the sender to be held back in "+fn, func() bool {
		k := sent()
		if k != last || goroutinesIn(fn, true) == 0 || goroutinesIn(pump, false) != goroutinesIn(pump, true) {
			last, same = k, 0
			return false
		}
		same++
		return same >= 3
	})
	return last
}

// torture asks for the full loop counts and soak time. They are small by
// default so that `go test` stays fast; IOX_TORTURE=1 runs the full counts (50
// crash iterations, a 60 s soak), and IOX_TORTURE_SEED repeats the random
// choices of an earlier run.
var torture = os.Getenv("IOX_TORTURE") == "1"

// loops picks a loop count: full under IOX_TORTURE=1, race under the race
// detector, def otherwise.
func loops(def, race, full int) int {
	switch {
	case torture:
		return full
	case raceEnabled:
		return race
	}
	return def
}

// seeded returns a random source and logs its seed (IOX_TORTURE_SEED repeats one).
func seeded(t *testing.T) *rand.Rand {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("IOX_TORTURE_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		require.NoError(t, err, "IOX_TORTURE_SEED")
		seed = v
	}
	t.Logf("random seed %d (IOX_TORTURE_SEED=%d repeats this run)", seed, seed)
	return rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
}

// kinds names the package's error kinds, most specific first.
var kinds = []struct {
	name string
	err  error
}{
	{"ErrPeerCrashed", iox.ErrPeerCrashed}, {"ErrPeerClosed", iox.ErrPeerClosed}, {"ErrPeerGone", iox.ErrPeerGone},
	{"ErrPairFull", iox.ErrPairFull}, {"ErrClosed", iox.ErrClosed}, {"ErrInvalidName", iox.ErrInvalidName},
	{"ErrInvalidArgument", iox.ErrInvalidArgument}, {"ErrServiceNotFound", iox.ErrServiceNotFound},
	{"ErrServiceExists", iox.ErrServiceExists}, {"ErrIncompatibleType", iox.ErrIncompatibleType},
	{"ErrIncompatible", iox.ErrIncompatible}, {"ErrVersionMismatch", iox.ErrVersionMismatch},
	{"ErrLimitReached", iox.ErrLimitReached}, {"ErrPermission", iox.ErrPermission},
	{"ErrMessageTooLarge", iox.ErrMessageTooLarge}, {"ErrWouldBlock", iox.ErrWouldBlock},
	{"ErrBufferTooSmall", iox.ErrBufferTooSmall}, {"ErrOutOfMemory", iox.ErrOutOfMemory},
	{"ErrTooManyLoans", iox.ErrTooManyLoans}, {"ErrConnection", iox.ErrConnection}, {"ErrBusy", iox.ErrBusy},
	{"ErrInternal", iox.ErrInternal}, {"ErrLibraryNotFound", iox.ErrLibraryNotFound},
	{"ErrABIMismatch", iox.ErrABIMismatch}, {"ErrMissingSymbol", iox.ErrMissingSymbol},
	{"context.Canceled", context.Canceled}, {"context.DeadlineExceeded", context.DeadlineExceeded},
	{"ErrUndelivered", iox.ErrUndelivered}, {"ErrNoResponse", iox.ErrNoResponse}, {"ErrNoServer", iox.ErrNoServer},
	{"ErrProtocol", iox.ErrProtocol}, {"ErrEntryNotFound", iox.ErrEntryNotFound},
}

// kindOf names err's kind: "nil", one of the package's Err* names, or "untyped".
func kindOf(err error) string {
	if err == nil {
		return "nil"
	}
	for _, k := range kinds {
		if errors.Is(err, k.err) {
			return k.name
		}
	}
	return "untyped"
}

// requireTyped fails unless err is an *iox.Error of one of the package's kinds.
func requireTyped(t testing.TB, err error, what string) {
	t.Helper()
	require.Error(t, err, what)
	var e *iox.Error
	require.ErrorAs(t, err, &e, "%s: %v is not an *iox.Error", what, err)
	require.NotEqual(t, "untyped", kindOf(err), "%s: %v", what, err)
}

func envInt(name string) int {
	v, _ := strconv.Atoi(os.Getenv(name))
	return v
}

func envDur(name string, def time.Duration) time.Duration {
	if d, err := time.ParseDuration(os.Getenv(name)); err == nil {
		return d
	}
	return def
}

// within runs f and fails the test when it takes longer than d.
func within(t testing.TB, d time.Duration, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-time.After(d):
		var stacks strings.Builder
		pprof.Lookup("goroutine").WriteTo(&stacks, 1)
		t.Fatalf("%s did not finish within %v; goroutines:\n%s", what, d, stacks.String())
	}
}

// nsFiles counts the namespace's objects in /dev/shm and its files under the root.
func nsFiles(ns namespace) (shm, root int) {
	shm = len(leftovers(ns.prefix))
	filepath.WalkDir(ns.root, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			root++
		}
		return nil
	})
	return shm, root
}

// sweepDead removes what killed children left in ns (their nodes, ports and
// services), through a node of this process.
func sweepDead(t testing.TB, ns namespace) {
	t.Helper()
	_, err := ns.node(t).CleanupDeadNodes()
	require.NoError(t, err)
}

// sweepCrashLeftovers removes and returns what processes that died while they
// removed services or cleaned up dead nodes left in the namespace: iceoryx2's
// removal is not crash-consistent, and half-removed objects are not found by
// later cleanups. Only files of processes that are gone may be passed here.
func sweepCrashLeftovers(t *testing.T, ns namespace) (shm, root []string) {
	t.Helper()
	for _, name := range leftovers(ns.prefix) {
		if strings.HasSuffix(name, ".global_mgmt") {
			continue
		}
		shm = append(shm, name)
		os.Remove(filepath.Join("/dev/shm", name))
	}
	filepath.WalkDir(ns.root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			root = append(root, strings.TrimPrefix(p, ns.root))
			os.Remove(p)
		}
		return nil
	})
	return shm, root
}

// reopen runs open, retrying for a while when the service is busy (being created
// or removed by another process): that is legitimate while a process does it,
// but not forever.
func reopen(open func() error) (err error) {
	waitUntil(5*time.Second, func() bool { err = open(); return !errors.Is(err, iox.ErrBusy) })
	return err
}

// procStatus returns the number a field of /proc/self/status holds (the
// kernel's figures for this process: "VmRSS" and "VmHWM" in KiB, "Threads").
func procStatus(t testing.TB, field string) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	require.NoError(t, err)
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == field+":" {
			n, err := strconv.ParseInt(f[1], 10, 64)
			require.NoError(t, err, l)
			return n
		}
	}
	t.Fatalf("no %s in /proc/self/status", field)
	return 0
}

// sourcePath joins elem to the folder of the package's source files.
func sourcePath(elem ...string) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(append([]string{filepath.Dir(file)}, elem...)...)
}

// venvPython returns the Python interpreter named by the environment variable
// env, or else the one of the virtual environment venv beside the sources,
// which `make target` (part of `make test`) creates.
func venvPython(t *testing.T, env, venv, target string) string {
	t.Helper()
	if p := os.Getenv(env); p != "" {
		return p
	}
	p := sourcePath(venv, "bin", "python")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("no Python at %s: run `make %s` (part of `make test`) or set %s", p, target, env)
	}
	return p
}

// startPython starts cmd, a Python peer, with pipes to its standard input and
// from its standard output; it is killed when the test ends.
func startPython(t *testing.T, cmd *exec.Cmd) (*exec.Cmd, io.WriteCloser, *bufio.Scanner) {
	t.Helper()
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return cmd, stdin, bufio.NewScanner(stdout)
}

// nextPeerEvent waits for the next event on peers (a publisher's Peers) and
// requires it to be of kind want.
func nextPeerEvent(t testing.TB, peers <-chan iox.PeerEvent, want iox.PeerEventKind) iox.PeerEvent {
	t.Helper()
	select {
	case e, ok := <-peers:
		require.True(t, ok, "Peers closed, want %v", want)
		require.Equal(t, want, e.Kind, "peer event")
		return e
	case <-time.After(20 * time.Second):
		t.Fatalf("no %v peer event within 20 s", want)
	}
	return iox.PeerEvent{}
}

// pattern makes a message of n bytes whose content depends on n and seed.
func pattern(n, seed int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + n + seed)
	}
	return b
}

func seqMsg(i uint64) []byte {
	m := make([]byte, 8)
	binary.LittleEndian.PutUint64(m, i)
	return m
}

// streamBoth sends n sequence numbers on p while checking that n arrive in order.
func streamBoth(ctx context.Context, p *iox.Pair[[]byte], n uint64) error {
	errc := make(chan error, 2)
	go func() {
		for i := uint64(0); i < n; i++ {
			if err := p.Send(ctx, seqMsg(i)); err != nil {
				errc <- fmt.Errorf("send %d: %w", i, err)
				return
			}
		}
		errc <- nil
	}()
	go func() {
		for i := uint64(0); i < n; i++ {
			m, err := p.Recv(ctx)
			if err != nil {
				errc <- fmt.Errorf("receive %d: %w", i, err)
				return
			}
			if len(m) != 8 {
				errc <- fmt.Errorf("message %d has %d bytes", i, len(m))
				return
			}
			if got := binary.LittleEndian.Uint64(m); got != i {
				errc <- fmt.Errorf("message %d: got sequence %d (lost, duplicated or reordered)", i, got)
				return
			}
		}
		errc <- nil
	}()
	return errors.Join(<-errc, <-errc)
}

func waitSubscribers[T any](t *testing.T, p *iox.Pub[T], n int) {
	t.Helper()
	eventually(t, fmt.Sprintf("%d subscribers", n), func() bool { return p.Subscribers() == n })
}

func waitTimeout(cmd *exec.Cmd, d time.Duration) error {
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(d):
		cmd.Process.Kill()
		<-done
		return fmt.Errorf("%s did not exit in %v", cmd.Path, d)
	}
}

// processState is the state letter of a process in /proc (R, S, T, ...): its
// main thread's.
func processState(pid int) string { return statState(fmt.Sprintf("/proc/%d/stat", pid)) }

// threadStates maps each thread of the process pid to its state letter.
func threadStates(pid int) (map[string]string, error) {
	dir := fmt.Sprintf("/proc/%d/task", pid)
	tasks, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	m := map[string]string{}
	for _, task := range tasks {
		m[task.Name()] = statState(filepath.Join(dir, task.Name(), "stat"))
	}
	return m, nil
}

// statState reads the state letter out of a /proc stat file ("" when it
// cannot).
func statState(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 >= len(s) {
		return ""
	}
	return s[i+2 : i+3]
}

// burstMsg is message i of a burst: size bytes, every 8-byte word i.
func burstMsg(i uint64, size int) []byte {
	m := make([]byte, size)
	for k := 0; k+8 <= size; k += 8 {
		binary.LittleEndian.PutUint64(m[k:], i)
	}
	return m
}

// burstChild reads a burst child's IOX_BENCH_SIZE and IOX_COUNT and opens its
// node.
func burstChild() (size, n int, node *iox.Node, err error) {
	if size, err = benchEnvInt("IOX_BENCH_SIZE"); err != nil {
		return 0, 0, nil, err
	}
	if n, err = benchEnvInt("IOX_COUNT"); err != nil {
		return 0, 0, nil, err
	}
	node, err = nsFromEnv().childNode()
	return size, n, node, err
}
