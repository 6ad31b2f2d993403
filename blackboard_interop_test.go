package iox_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/iox-go/iox"
)

// The service name of iceoryx2's blackboard examples.
const exampleBoard = "My/Funk/ServiceName"

// startExample runs the unmodified iceoryx2 Python example script (in
// internal/pypeer/blackboard) inside ns: the examples take iceoryx2's default
// configuration, which iceoryx2 looks up in ./config/iceoryx2.toml first, so the
// script runs in a folder whose configuration names ns's prefix and root.
func startExample(t *testing.T, ns namespace, script string) (*exec.Cmd, <-chan string) {
	t.Helper()
	dir := t.TempDir()
	require.NoError(t, os.Mkdir(filepath.Join(dir, "config"), 0o755))
	cfg := fmt.Sprintf("[global]\nroot-path = %q\nprefix = %q\n", ns.root, ns.prefix)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "config", "iceoryx2.toml"), []byte(cfg), 0o644))
	src := sourcePath("internal", "pypeer", "blackboard")
	cmd := exec.Command(python(t), filepath.Join(src, script))
	cmd.Dir = dir
	// the script imports blackboard_complex_key from its own folder; unbuffered
	// output lets the test follow it line by line
	cmd.Env = append(os.Environ(), "PYTHONUNBUFFERED=1", "PYTHONPATH="+src)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	lines := make(chan string, 256)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return cmd, lines
}

// stopExample interrupts the example (its node's wait then fails and it prints
// "exit") and waits for it to end cleanly.
func stopExample(t *testing.T, cmd *exec.Cmd, lines <-chan string) {
	t.Helper()
	require.NoError(t, cmd.Process.Signal(syscall.SIGINT))
	sawExit := false
	for l := range lines {
		sawExit = sawExit || l == "exit"
	}
	assert.True(t, sawExit, "the example did not say exit")
	require.NoError(t, waitTimeout(cmd, 20*time.Second))
}

// lineWith waits for the next line of lines that starts with prefix.
func lineWith(t *testing.T, lines <-chan string, prefix string) string {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case l, ok := <-lines:
			require.True(t, ok, "the example ended before saying %q", prefix)
			if strings.HasPrefix(l, prefix) {
				return strings.TrimSpace(strings.TrimPrefix(l, prefix))
			}
		case <-timeout:
			t.Fatalf("the example did not say %q within 20 s", prefix)
		}
	}
}

func TestBlackboardPythonCreatorGoReader(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	cmd, lines := startExample(t, ns, "creator.py")
	lineWith(t, lines, "Blackboard created.")
	lineWith(t, lines, "Write new value for key 0:") // its writer exists now

	bb, err := iox.OpenExistingBlackboard(node, exampleBoard, bbKeyCodec)
	require.NoError(t, err)
	defer bb.Close()
	keys, err := bb.Keys()
	require.NoError(t, err)
	assert.ElementsMatch(t, []bbKey{key0, key1}, keys, "Python's keys, padding and all")
	_, err = bb.Writer()
	assert.ErrorIs(t, err, iox.ErrLimitReached, "Python holds the one writer")

	r, err := bb.Reader()
	require.NoError(t, err)
	defer r.Close()
	e0, err := iox.ReadEntry(r, key0, i32Codec)
	require.NoError(t, err)
	defer e0.Close()
	e1, err := iox.ReadEntry(r, key1, f64Codec)
	require.NoError(t, err)
	defer e1.Close()
	_, err = iox.ReadEntry(r, key0, f64Codec)
	assert.ErrorIs(t, err, iox.ErrIncompatibleType, "key 0 holds an i32")

	// The Python creator does not notify: the watch polls.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c, err := iox.WatchEntry(ctx, e0, iox.WithPoll(5*time.Millisecond))
	require.NoError(t, err)
	for {
		n := recvWithin(t, c)
		if n >= 2 {
			break
		}
	}
	// the creator writes key 1 = 1.1 * counter right after key 0 = counter
	want, err := e0.Get()
	require.NoError(t, err)
	eventually(t, "key 1 to follow key 0", func() bool {
		v, err := e1.Get()
		require.NoError(t, err)
		return v.Value >= 1.1*float64(want.Value)-1e-9
	})
	cancel()
	for range c {
	}
	require.NoError(t, e0.Close())
	require.NoError(t, e1.Close())
	require.NoError(t, r.Close())
	require.NoError(t, bb.Close())
	stopExample(t, cmd, lines)
}

func TestBlackboardGoCreatorPythonOpener(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	bb, err := iox.OpenBlackboard(node, exampleBoard, bbKeyCodec, []iox.BlackboardEntry[bbKey]{
		iox.Entry(key0, i32Codec, 3),
		iox.Entry(key1, f64Codec, 1.1),
	})
	require.NoError(t, err)
	defer bb.Close()
	w, err := bb.Writer()
	require.NoError(t, err)
	defer w.Close()
	e0, err := iox.WriteEntry(w, key0, i32Codec)
	require.NoError(t, err)
	defer e0.Close()
	e1, err := iox.WriteEntry(w, key1, f64Codec)
	require.NoError(t, err)
	defer e1.Close()

	cmd, lines := startExample(t, ns, "opener.py")
	assert.Equal(t, "3", lineWith(t, lines, "key: 0, value: "), "the initial value")
	assert.Equal(t, "1.1", lineWith(t, lines, "key: 1, value: "))

	for _, n := range []int32{7, 8} {
		// key 1 first: once Python reads key 0's new value, key 1's is there
		l, err := e1.Loan()
		require.NoError(t, err)
		*l.Value() = float64(n) + 0.5
		require.NoError(t, l.Commit())
		require.NoError(t, e0.Set(n))
		for lineWith(t, lines, "key: 0, value: ") != fmt.Sprint(n) {
		}
		assert.Equal(t, fmt.Sprint(float64(n)+0.5), lineWith(t, lines, "key: 1, value: "))
	}
	stopExample(t, cmd, lines)
}

// rustWriterProgram is the Rust peer that writes a blackboard the way
// iceoryx2's blackboard_event_based_communication example does
// (internal/native/src/bin/iox_bb_writer.rs), built by make native.
func rustWriterProgram(t *testing.T) string {
	p := sourcePath("internal", "native", "target", "release", "iox_bb_writer")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("no Rust blackboard writer at %s: run make native", p)
	}
	return p
}

func TestBlackboardRustWriterWakesGoWatcher(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	cmd := exec.Command(rustWriterProgram(t), ns.prefix, ns.root, "bb-rust")
	cmd, stdin, out := startPython(t, cmd) // any line-speaking peer
	require.True(t, out.Scan(), "the Rust writer ended early")
	require.Equal(t, "ready", out.Text())

	u32 := must(iox.Fixed[uint32]("u32"))
	u64 := must(iox.Fixed[uint64]("u64"))
	bb, err := iox.OpenExistingBlackboard(node, "bb-rust", u32)
	require.NoError(t, err)
	defer bb.Close()
	r, err := bb.Reader()
	require.NoError(t, err)
	defer r.Close()
	e1, err := iox.ReadEntry(r, uint32(1), u64)
	require.NoError(t, err)
	defer e1.Close()
	e0, err := iox.ReadEntry(r, uint32(0), u64)
	require.NoError(t, err)
	defer e0.Close()

	// no WithPoll: only the Rust writer's notifications wake the watch
	ctx, cancel := context.WithCancel(context.Background())
	c, err := iox.WatchEntry(ctx, e1)
	require.NoError(t, err)
	assert.Equal(t, uint64(0), recvWithin(t, c), "the default value")
	for _, n := range []uint64{5, 6, 7} {
		_, err := fmt.Fprintln(stdin, n)
		require.NoError(t, err)
		require.True(t, out.Scan(), "the Rust writer ended early")
		require.Equal(t, "ok", out.Text())
		assert.Equal(t, n, recvWithin(t, c))
		v, err := e0.Get()
		require.NoError(t, err)
		assert.Equal(t, 2*n, v.Value)
	}
	cancel()
	for range c {
	}
	require.NoError(t, stdin.Close())
	require.NoError(t, waitTimeout(cmd, 20*time.Second))
}
