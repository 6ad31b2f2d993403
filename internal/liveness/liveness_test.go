//go:build linux

package liveness

import (
	"errors"
	"io/fs"
	"math"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"golang.org/x/sys/unix"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// Conditions are awaited, never slept for; these bound the wait.
const (
	waitFor = 2 * time.Second
	tick    = time.Millisecond
)

func monoNow() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		panic(err)
	}
	return ts.Nano()
}

// child starts `sleep 60` and returns it with a guard time at which it exists.
// Cleanup kills and reaps it.
func child(t testing.TB) (*exec.Cmd, int64) {
	t.Helper()
	cmd := exec.Command("sleep", "60")
	require.NoError(t, cmd.Start())
	created := monoNow()
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait() // an error when the test reaped it already
	})
	return cmd, created
}

func kill(t testing.TB, cmd *exec.Cmd) {
	t.Helper()
	require.NoError(t, cmd.Process.Kill())
	cmd.Wait() // "signal: killed"
}

// mustWatch is Watch that skips the test where pidfds are unavailable.
func mustWatch(t testing.TB, w *Watcher, pid int, created int64, fn func()) func() {
	t.Helper()
	cancel, ok := w.Watch(pid, created, fn)
	if !ok {
		t.Skip("pidfd_open unavailable here; callers poll Alive instead")
	}
	return cancel
}

// counter returns an fn that counts its calls, and the count.
func counter() (func(), *atomic.Int32) {
	n := new(atomic.Int32)
	return func() { n.Add(1) }, n
}

func fired(n *atomic.Int32, want int32) func() bool {
	return func() bool { return n.Load() == want }
}

// idle reports whether w has nothing registered and no goroutine.
func idle(w *Watcher) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return !w.running && len(w.byFD) == 0 && len(w.byPid) == 0
}

// watcherGoroutines counts the goroutines that Watchers started. Counting
// them by their stacks, rather than comparing runtime.NumGoroutine with a
// baseline, ignores unrelated goroutines that come and go (require.Eventually
// runs its condition on one of its own).
func watcherGoroutines() int {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "internal/liveness.(*Watcher)") {
			n++
		}
	}
	return n
}

func noWatcherGoroutines() bool { return watcherGoroutines() == 0 }

func TestDetectKill(t *testing.T) {
	w := New()
	defer w.Close()
	cmd, created := child(t)
	require.True(t, Alive(cmd.Process.Pid, created))

	fn, n := counter()
	mustWatch(t, w, cmd.Process.Pid, created, fn)
	kill(t, cmd)
	require.Eventually(t, fired(n, 1), waitFor, tick)
	require.Eventually(t, func() bool { return idle(w) }, waitFor, tick)
	require.False(t, Alive(cmd.Process.Pid, created))
	require.EqualValues(t, 1, n.Load())
}

// A process that has exited but is not yet reaped by its parent (a zombie)
// counts as exited: its pidfd becomes readable at exit, not at reaping, and
// pidfd_open still succeeds on it, so watching a zombie fires at once too.
func TestZombie(t *testing.T) {
	w := New()
	defer w.Close()
	cmd, created := child(t)
	pid := cmd.Process.Pid

	fn, n := counter()
	mustWatch(t, w, pid, created, fn)
	require.NoError(t, cmd.Process.Kill()) // not reaped: no Wait
	require.Eventually(t, fired(n, 1), waitFor, tick)
	_, state, err := readStat(pid)
	require.NoError(t, err)
	require.Equal(t, byte('Z'), state, "still a zombie")
	require.False(t, Alive(pid, created))

	fn2, n2 := counter()
	mustWatch(t, w, pid, created, fn2)
	require.Eventually(t, fired(n2, 1), waitFor, tick)

	cmd.Wait()
	require.Eventually(t, func() bool { return idle(w) }, waitFor, tick)
}

func TestPidReuseGuard(t *testing.T) {
	w := New()
	defer w.Close()
	self := os.Getpid()
	require.True(t, Alive(self, monoNow()))
	require.False(t, Alive(self, 0), "this process started after boot")

	// created before this process started: the pid belonged to another process.
	early, nEarly := counter()
	mustWatch(t, w, self, 0, early)
	require.Eventually(t, fired(nEarly, 1), waitFor, tick)

	// created now: this process, which runs on.
	now, nNow := counter()
	cancelNow := mustWatch(t, w, self, monoNow(), now)

	// Barrier: a child's exit is seen after the epoll had every chance to
	// report this process.
	cmd, created := child(t)
	barrier, nBarrier := counter()
	mustWatch(t, w, cmd.Process.Pid, created, barrier)
	kill(t, cmd)
	require.Eventually(t, fired(nBarrier, 1), waitFor, tick)
	require.Zero(t, nNow.Load())

	cancelNow()
	require.Eventually(t, func() bool { return idle(w) }, waitFor, tick)
	require.Zero(t, nNow.Load())
	require.EqualValues(t, 1, nEarly.Load())
}

// unusedPid returns a pid that no process has right now.
func unusedPid(t *testing.T) int {
	b, err := os.ReadFile("/proc/sys/kernel/pid_max")
	require.NoError(t, err)
	max, err := strconv.Atoi(strings.TrimSpace(string(b)))
	require.NoError(t, err)
	for pid := max - 1; pid > 1; pid-- {
		if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); errors.Is(err, fs.ErrNotExist) {
			return pid
		}
	}
	t.Fatal("no free pid")
	return 0
}

func TestNonexistentPid(t *testing.T) {
	w := New()
	defer w.Close()
	for _, pid := range []int{unusedPid(t), 0, -1, math.MaxInt32 + 1} {
		require.False(t, Alive(pid, monoNow()), "pid %d", pid)
		fn, n := counter()
		cancel, ok := w.Watch(pid, monoNow(), fn)
		require.True(t, ok, "pid %d", pid) // ESRCH is an answer, not a failure
		require.Eventually(t, fired(n, 1), waitFor, tick, "pid %d", pid)
		cancel() // after fn: a no-op
	}
	require.True(t, idle(w))

	// Cancelled before it could run: never runs. The barrier is a second
	// prompt watch, started after the first one. With one processor, the
	// prompt watch's goroutine cannot run between Watch and cancel (nothing
	// there blocks or yields); with more, it may run first, which the
	// contract allows (fn started before cancel returned).
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	fn, n := counter()
	cancel, _ := w.Watch(0, 0, fn)
	cancel()
	barrier, nBarrier := counter()
	w.Watch(0, 0, barrier)
	require.Eventually(t, fired(nBarrier, 1), waitFor, tick)
	require.Zero(t, n.Load())
}

func TestCancelBeforeExit(t *testing.T) {
	w := New()
	defer w.Close()
	a, createdA := child(t)
	b, createdB := child(t)

	fnA, nA := counter()
	cancelA := mustWatch(t, w, a.Process.Pid, createdA, fnA)
	cancelA()
	cancelA() // idempotent
	fnB, nB := counter()
	cancelB := mustWatch(t, w, b.Process.Pid, createdB, fnB)

	kill(t, a)
	kill(t, b)
	require.Eventually(t, fired(nB, 1), waitFor, tick)
	require.Zero(t, nA.Load())
	cancelB() // after fn: a no-op
	require.Eventually(t, func() bool { return idle(w) }, waitFor, tick)
}

// fn may call Watch and cancel (its own included) on the watcher's goroutine.
func TestReentrantFn(t *testing.T) {
	w := New()
	defer w.Close()
	a, createdA := child(t)
	b, createdB := child(t)

	fnB, nB := counter()
	var cancelA func()
	ready := make(chan struct{}) // orders the assignment of cancelA before fn
	cancelA = mustWatch(t, w, a.Process.Pid, createdA, func() {
		<-ready
		cancelA()
		if _, ok := w.Watch(b.Process.Pid, createdB, fnB); !ok {
			panic("watch from fn failed")
		}
	})
	close(ready)
	kill(t, a)
	require.Eventually(t, func() bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		return w.byPid[b.Process.Pid] != nil
	}, waitFor, tick)
	kill(t, b)
	require.Eventually(t, fired(nB, 1), waitFor, tick)
	require.Eventually(t, func() bool { return idle(w) }, waitFor, tick)
}

func TestManyWatches(t *testing.T) {
	w := New()
	defer w.Close()

	shared, createdShared := child(t)
	fnShared, nShared := counter()
	var cancels []func()
	for range 200 {
		cancels = append(cancels, mustWatch(t, w, shared.Process.Pid, createdShared, fnShared))
	}
	fnEach, nEach := counter()
	var each []*exec.Cmd
	for range 20 {
		cmd, created := child(t)
		mustWatch(t, w, cmd.Process.Pid, created, fnEach)
		each = append(each, cmd)
	}
	w.mu.Lock()
	require.Len(t, w.byFD, 21, "one pidfd per process")
	require.True(t, w.running)
	w.mu.Unlock()
	require.Equal(t, 1, watcherGoroutines(), "one goroutine for all")

	for i := 0; i < len(cancels); i += 2 {
		cancels[i]()
	}
	kill(t, shared)
	for _, cmd := range each {
		kill(t, cmd)
	}
	require.Eventually(t, fired(nEach, 20), waitFor, tick)
	require.Eventually(t, fired(nShared, 100), waitFor, tick)
	require.Eventually(t, func() bool { return idle(w) }, waitFor, tick)
	require.Eventually(t, noWatcherGoroutines, waitFor, tick)
	for _, cancel := range cancels {
		cancel()
	}

	// The goroutine also ends when the last watch is cancelled, and a new
	// watch starts it again.
	cmd, created := child(t)
	cancel := mustWatch(t, w, cmd.Process.Pid, created, func() { t.Error("cancelled fn ran") })
	require.Equal(t, 1, watcherGoroutines())
	cancel()
	require.Eventually(t, func() bool { return idle(w) }, waitFor, tick)
	require.Eventually(t, noWatcherGoroutines, waitFor, tick)

	fn, n := counter()
	mustWatch(t, w, cmd.Process.Pid, created, fn)
	kill(t, cmd)
	require.Eventually(t, fired(n, 1), waitFor, tick)
	require.Eventually(t, func() bool { return idle(w) }, waitFor, tick)
	require.Eventually(t, noWatcherGoroutines, waitFor, tick)
}

func TestClosePending(t *testing.T) {
	w := New()
	cmd, created := child(t)
	fn, n := counter()
	cancel := mustWatch(t, w, cmd.Process.Pid, created, fn)
	w.Watch(os.Getpid(), monoNow(), fn)
	require.Equal(t, 1, watcherGoroutines())

	require.NoError(t, w.Close())
	require.Zero(t, watcherGoroutines(), "Close waits for the goroutine")
	kill(t, cmd)
	require.Zero(t, n.Load(), "no fn runs after Close")
	cancel() // after Close: a no-op
	require.NoError(t, w.Close())
	_, ok := w.Watch(os.Getpid(), monoNow(), fn)
	require.False(t, ok)
	_, ok = w.Watch(0, 0, fn)
	require.False(t, ok)

	require.NoError(t, New().Close(), "never used")
}

// Concurrent Watch, cancel and exits, for the race detector: the goroutine
// stops and restarts many times meanwhile.
func TestConcurrent(t *testing.T) {
	w := New()
	defer w.Close()
	self := os.Getpid()
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				cancel, ok := w.Watch(self, monoNow(), func() { t.Error("own process reported dead") })
				if !ok {
					return
				}
				if (g+i)%3 == 0 {
					runtime.Gosched()
				}
				cancel()
			}
		}()
	}
	for range 5 {
		cmd, created := child(t)
		fn, n := counter()
		for range 3 {
			mustWatch(t, w, cmd.Process.Pid, created, fn)
		}
		kill(t, cmd)
		require.Eventually(t, fired(n, 3), waitFor, tick)
	}
	wg.Wait()
	require.Eventually(t, func() bool { return idle(w) }, waitFor, tick)
}

func TestParseStat(t *testing.T) {
	// comm may contain spaces and parentheses: fields count from the last ')'.
	line := "4242 (a) b) (c d) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1234 56 " +
		"18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n"
	start, state, err := parseStat([]byte(line))
	require.NoError(t, err)
	require.Equal(t, int64(987654), start)
	require.Equal(t, byte('S'), state)

	for _, bad := range []string{"", "1 (x", "1 (x) S 1 2 3", "1 (x) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 -5 1"} {
		_, _, err := parseStat([]byte(bad))
		require.Error(t, err, "%q", bad)
	}

	self, _, err := readStat(os.Getpid())
	require.NoError(t, err)
	require.Positive(t, self)
}

func TestStartedBy(t *testing.T) {
	now := monoNow()
	require.True(t, startedBy(0, 0))
	require.True(t, startedBy(1, math.MaxInt64), "no overflow")
	require.False(t, startedBy(0, math.MinInt64))
	require.False(t, startedBy(math.MaxInt64, now))
	// Slack: a start a tick after created passes, 10 ticks after does not
	// (boot and monotonic clocks agree here unless the machine was suspended).
	var boot unix.Timespec
	require.NoError(t, unix.ClockGettime(unix.CLOCK_BOOTTIME, &boot))
	suspended := boot.Nano() - monoNow()
	ticks := (now + suspended) / tickNs
	require.True(t, startedBy(ticks+1, now))
	require.False(t, startedBy(ticks+10, now))
}

// BenchmarkDetect measures the latency from SIGKILL to fn (ns/kill) over b.N
// fresh children; ns/op includes starting and reaping each child.
func BenchmarkDetect(b *testing.B) {
	w := New()
	defer w.Close()
	var total time.Duration
	for range b.N {
		cmd := exec.Command("sleep", "60")
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		at := make(chan time.Time, 1)
		mustWatch(b, w, cmd.Process.Pid, monoNow(), func() { at <- time.Now() })
		start := time.Now()
		if err := cmd.Process.Kill(); err != nil {
			b.Fatal(err)
		}
		total += (<-at).Sub(start)
		cmd.Wait()
	}
	b.ReportMetric(float64(total.Nanoseconds())/float64(b.N), "ns/kill")
}

// BenchmarkWatchCancel measures the cost of one Watch and its cancel of a
// running process while another watch keeps the goroutine alive.
func BenchmarkWatchCancel(b *testing.B) {
	w := New()
	defer w.Close()
	self, created := os.Getpid(), monoNow()
	mustWatch(b, w, self, created, func() {})
	for range b.N {
		cancel := mustWatch(b, w, self, created, func() {})
		cancel()
	}
}
