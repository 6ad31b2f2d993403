package main

import (
	"encoding/json"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/iox-go/iox"
)

// point is a #[repr(C)] struct value, named NAME:SIZE:ALIGN on the command line.
type point struct{ X, Y int32 }

// board creates the blackboard "bb" with u32 keys: 1 → u64 5, 2 → i32 -3,
// 3 → f64 1.5, 4 → Point{1, 2}.
func board(t *testing.T, node *iox.Node) *iox.Blackboard[uint32] {
	t.Helper()
	key := fixed[uint32](t, "u32")
	bb, err := iox.OpenBlackboard(node, "bb", key, []iox.BlackboardEntry[uint32]{
		iox.Entry(uint32(1), fixed[uint64](t, "u64"), 5),
		iox.Entry(uint32(2), fixed[int32](t, "i32"), -3),
		iox.Entry(uint32(3), fixed[float64](t, "f64"), 1.5),
		iox.Entry(uint32(4), fixed[point](t, "Point"), point{1, 2}),
	})
	require.NoError(t, err)
	t.Cleanup(func() { bb.Close() })
	return bb
}

func fixed[T any](t *testing.T, name string) iox.FixedCodec[T] {
	c, err := iox.Fixed[T](name)
	require.NoError(t, err)
	return c
}

func TestGetAndSetBlackboardEntries(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	bb := board(t, node)
	block := func() string {
		text := ok(t, &ns, "services")
		i := strings.Index(text, "bb  blackboard\n")
		require.True(t, i == 0 || i > 0 && text[i-1] == '\n', text)
		block := text[i:]
		if end := strings.Index(block, "\n\n"); end >= 0 {
			block = block[:end+1]
		}
		return block
	}
	// services counts the blackboard's writers and readers
	require.Contains(t, block(), "  ports:           writers=0 readers=0\n")
	w, err := bb.Writer()
	require.NoError(t, err)
	r1, err := bb.Reader()
	require.NoError(t, err)
	r2, err := bb.Reader()
	require.NoError(t, err)
	require.Contains(t, block(), "  ports:           writers=1 readers=2\n")
	require.NoError(t, w.Close())
	require.NoError(t, r1.Close())
	require.NoError(t, r2.Close())

	require.Equal(t, "5\n", ok(t, &ns, "get", "bb", "1"), "u32 keys and u64 values by default")
	require.Equal(t, "-3\n", ok(t, &ns, "get", "-value", "i32", "bb", "2"))
	require.Equal(t, "1.5\n", ok(t, &ns, "get", "-value", "f64", "bb", "3"))
	require.Equal(t, "0100000002000000\n", ok(t, &ns, "get", "-value", "Point:8:4", "bb", "4"))
	var got struct {
		Value      int64  `json:"value"`
		Generation uint64 `json:"generation"`
	}
	require.NoError(t, json.Unmarshal([]byte(ok(t, &ns, "get", "-json", "-value", "i32", "bb", "2")), &got))
	require.Equal(t, int64(-3), got.Value)
	require.Positive(t, got.Generation)

	require.Empty(t, ok(t, &ns, "set", "bb", "1", "42"))
	require.Empty(t, ok(t, &ns, "set", "-value", "i32", "bb", "2", "--", "-7"))
	require.Empty(t, ok(t, &ns, "set", "-value", "f64", "bb", "3", "2.25"))
	require.Empty(t, ok(t, &ns, "set", "-value", "Point:8:4", "bb", "4", "0300000004000000"))

	r, err := bb.Reader()
	require.NoError(t, err)
	defer r.Close()
	e1, err := iox.ReadEntry(r, uint32(1), fixed[uint64](t, "u64"))
	require.NoError(t, err)
	defer e1.Close()
	v1, err := e1.Get()
	require.NoError(t, err)
	require.Equal(t, uint64(42), v1.Value)
	e4, err := iox.ReadEntry(r, uint32(4), fixed[point](t, "Point"))
	require.NoError(t, err)
	defer e4.Close()
	v4, err := e4.Get()
	require.NoError(t, err)
	require.Equal(t, point{3, 4}, v4.Value)
	require.Equal(t, "-7\n", ok(t, &ns, "get", "-value", "i32", "bb", "2"))
	// a negative value needs no "--", wherever the flags are
	require.Empty(t, ok(t, &ns, "set", "bb", "2", "-9", "-value", "i32"))
	require.Equal(t, "-9\n", ok(t, &ns, "get", "-value", "i32", "bb", "2"))
	require.Equal(t, "2.25\n", ok(t, &ns, "get", "-value", "f64", "bb", "3"))

	// refusals
	for _, c := range []struct {
		args []string
		code int
		says string
	}{
		{[]string{"get", "-key", "u64", "bb", "1"}, 1, `the blackboard's keys are "u32" (size 4, alignment 4), not "u64"`},
		{[]string{"get", "-value", "i32", "bb", "1"}, 1, `another value type than "i32"`},
		{[]string{"get", "bb", "9"}, 1, "no such entry"},
		{[]string{"get", "nothere", "1"}, 1, `no blackboard service "nothere"`},
		{[]string{"get", "-value", "u7", "bb", "1"}, 2, `-value "u7"`},
		{[]string{"get", "bb", "x"}, 2, `key "x"`},
		{[]string{"set", "bb", "1", "--", "-1"}, 2, `value "-1"`},
		{[]string{"set", "-value", "Point:8:4", "bb", "4", "01"}, 2, "1 bytes, the type has 8"},
		{[]string{"watch", "-n", "-1", "bb", "1"}, 2, "must not be negative"},
	} {
		out, errOut, code := runIox(t, &ns, "", c.args...)
		require.Equal(t, c.code, code, "%v: %s", c.args, errOut)
		require.Empty(t, out)
		require.Contains(t, errOut, c.says, c.args)
	}

	// the writer is taken while this process holds it
	w, err = bb.Writer()
	require.NoError(t, err)
	_, errOut, code := runIox(t, &ns, "", "set", "bb", "1", "1")
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "another process holds the writer")
	require.NoError(t, w.Close())

	require.Contains(t, block(), "  key:             u32 (size 4, alignment 4)\n", "the key type, for -key")
	require.Contains(t, block(), "  settings:        max_readers=")
}

func TestWatchBlackboardEntry(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	bb := board(t, node)
	w, err := bb.Writer()
	require.NoError(t, err)
	defer w.Close()
	e1, err := iox.WriteEntry(w, uint32(1), fixed[uint64](t, "u64"))
	require.NoError(t, err)
	defer e1.Close()
	ev, err := node.Event("bb", iox.OpenOnly())
	require.NoError(t, err)
	defer ev.Close()
	listeners := func() int {
		_, n, err := ev.Counts()
		require.NoError(t, err)
		return n
	}

	watch := start(t, &ns, "", "watch", "-n", "3", "bb", "1")
	eventually(t, "the command to watch", func() bool { return listeners() == 1 })
	// Each write wakes the watch; it prints the current value and then each
	// newer one it sees, so the values it prints grow.
	n := uint64(100)
	eventually(t, "the watch to print three values", func() bool {
		n++
		require.NoError(t, e1.Set(n))
		select {
		case <-watch.done:
			return true
		default:
			return false
		}
	})
	out, errOut, code := watch.wait()
	require.Equal(t, 0, code, errOut)
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	require.Len(t, lines, 3, out)
	for i := 1; i < len(lines); i++ {
		a, err := strconv.Atoi(lines[i-1])
		require.NoError(t, err)
		b, err := strconv.Atoi(lines[i])
		require.NoError(t, err)
		require.Less(t, a, b, out)
	}

	watch = start(t, &ns, "", "watch", "bb", "1")
	eventually(t, "the command to watch", func() bool { return listeners() == 1 })
	require.NoError(t, watch.cmd.Process.Signal(os.Interrupt))
	out, errOut, code = watch.wait()
	require.Equal(t, 0, code, "%s: %s", watch.cmd.ProcessState, errOut)
	// interrupted before or after it printed the current value: a clean end either way
	require.Contains(t, []string{"", strconv.FormatUint(n, 10) + "\n"}, out)
	require.Empty(t, errOut)
}
