package iox_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/iox-go/iox"
)

// bbKey is the key of iceoryx2's blackboard examples (Rust
// examples/rust/_examples_common/blackboard_complex_key.rs, Python
// examples/python/blackboard/blackboard_complex_key.py): 24 bytes with padding
// after X and Z.
type bbKey struct {
	X uint32
	Y int64
	Z uint16
}

// blob is a 4 KiB value whose bytes all hold one number, so a torn value shows.
type blob [4096]byte

func fill(n byte) (b blob) {
	for i := range b {
		b[i] = n
	}
	return b
}

func whole(b blob) bool {
	for _, c := range b {
		if c != b[0] {
			return false
		}
	}
	return true
}

var (
	bbKeyCodec = must(iox.Fixed[bbKey]("BlackboardKey"))
	i32Codec   = must(iox.Fixed[int32]("i32"))
	f64Codec   = must(iox.Fixed[float64]("f64"))
	blobCodec  = must(iox.Fixed[blob]("[u8; 4096]"))
	key0       = bbKey{X: 0, Y: -4, Z: 4}
	key1       = bbKey{X: 1, Y: -4, Z: 4}
	key2       = bbKey{X: 2, Y: -4, Z: 4}
)

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func init() {
	children["bb-writer"] = childBlackboardWriter
	children["bb-reader"] = childBlackboardReader
	children["bb-torn"] = childBlackboardTorn
	children["bb-busy-writer"] = childBlackboardBusyWriter
}

// exampleEntries are the entries of iceoryx2's blackboard examples, plus a 4 KiB one.
func exampleEntries() []iox.BlackboardEntry[bbKey] {
	return []iox.BlackboardEntry[bbKey]{
		iox.Entry(key0, i32Codec, 3),
		iox.Entry(key1, f64Codec, 1.1),
		iox.Entry(key2, blobCodec, fill(0)),
	}
}

func createBoard(t *testing.T, node *iox.Node, name string, opts ...iox.Option) *iox.Blackboard[bbKey] {
	t.Helper()
	bb, err := iox.OpenBlackboard(node, name, bbKeyCodec, exampleEntries(), opts...)
	require.NoError(t, err)
	t.Cleanup(func() { bb.Close() })
	return bb
}

func TestBlackboardSetGetChanged(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	bb := createBoard(t, node, "bb-basic", iox.MaxReaders(3), iox.MaxNodes(5))
	assert.Equal(t, 3, bb.MaxReaders())
	assert.Equal(t, 5, bb.MaxNodes())
	keys, err := bb.Keys()
	require.NoError(t, err)
	assert.ElementsMatch(t, []bbKey{key0, key1, key2}, keys)

	w, err := bb.Writer()
	require.NoError(t, err)
	defer w.Close()
	r, err := bb.Reader()
	require.NoError(t, err)
	defer r.Close()

	e0, err := iox.ReadEntry(r, key0, i32Codec)
	require.NoError(t, err)
	defer e0.Close()
	e1, err := iox.ReadEntry(r, key1, f64Codec)
	require.NoError(t, err)
	defer e1.Close()

	v0, err := e0.Get()
	require.NoError(t, err)
	assert.Equal(t, int32(3), v0.Value, "initial value")
	v1, err := e1.Get()
	require.NoError(t, err)
	assert.Equal(t, 1.1, v1.Value)

	w0, err := iox.WriteEntry(w, key0, i32Codec)
	require.NoError(t, err)
	defer w0.Close()
	assert.Equal(t, e0.ID(), w0.ID(), "writer and reader agree on the entry id")

	changed, err := e0.Changed(v0)
	require.NoError(t, err)
	assert.False(t, changed, "nothing written yet")
	require.NoError(t, w0.Set(42))
	changed, err = e0.Changed(v0)
	require.NoError(t, err)
	assert.True(t, changed, "a newer value was written")
	v0b, err := e0.Get()
	require.NoError(t, err)
	assert.Equal(t, int32(42), v0b.Value)
	assert.Greater(t, v0b.Generation, v0.Generation)
	changed, err = e0.Changed(v0b)
	require.NoError(t, err)
	assert.False(t, changed)

	// the other entry is untouched
	v1b, err := e1.Get()
	require.NoError(t, err)
	assert.Equal(t, v1, v1b)
}

func TestBlackboardLoanCommitDiscard(t *testing.T) {
	ns := newNamespace(t)
	bb := createBoard(t, ns.node(t), "bb-loan")
	w, err := bb.Writer()
	require.NoError(t, err)
	defer w.Close()
	r, err := bb.Reader()
	require.NoError(t, err)
	defer r.Close()
	we, err := iox.WriteEntry(w, key2, blobCodec)
	require.NoError(t, err)
	defer we.Close()
	re, err := iox.ReadEntry(r, key2, blobCodec)
	require.NoError(t, err)
	defer re.Close()

	l, err := we.Loan()
	require.NoError(t, err)
	*l.Value() = fill(7)
	_, err = we.Loan()
	assert.ErrorIs(t, err, iox.ErrTooManyLoans, "one loan at a time")
	assert.ErrorIs(t, we.Set(fill(9)), iox.ErrTooManyLoans, "a Set does not mix into an open loan")
	v, err := re.Get()
	require.NoError(t, err)
	assert.Equal(t, fill(0), v.Value, "nothing is seen before Commit")
	require.NoError(t, l.Commit())
	assert.ErrorIs(t, l.Commit(), iox.ErrClosed)
	v, err = re.Get()
	require.NoError(t, err)
	assert.Equal(t, fill(7), v.Value)

	l, err = we.Loan()
	require.NoError(t, err)
	*l.Value() = fill(8)
	require.NoError(t, l.Discard())
	v2, err := re.Get()
	require.NoError(t, err)
	assert.Equal(t, fill(7), v2.Value, "a discarded loan changes nothing")
	changed, err := re.Changed(v)
	require.NoError(t, err)
	assert.False(t, changed)
	require.NoError(t, we.Set(fill(9)), "Set works again after the loan ended")
	v2, err = re.Get()
	require.NoError(t, err)
	assert.Equal(t, fill(9), v2.Value)
}

func TestBlackboardErrors(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	bb := createBoard(t, node, "bb-errors")

	t.Run("exists", func(t *testing.T) {
		_, err := iox.OpenBlackboard(node, "bb-errors", bbKeyCodec, exampleEntries())
		assert.ErrorIs(t, err, iox.ErrServiceExists)
	})
	t.Run("missing service", func(t *testing.T) {
		_, err := iox.OpenExistingBlackboard(node, "bb-none", bbKeyCodec)
		assert.ErrorIs(t, err, iox.ErrServiceNotFound)
	})
	t.Run("wrong key type", func(t *testing.T) {
		_, err := iox.OpenExistingBlackboard(node, "bb-errors", must(iox.Fixed[uint64]("u64")))
		require.ErrorIs(t, err, iox.ErrIncompatibleType)
		assert.Contains(t, err.Error(), `"BlackboardKey" (size 24, alignment 8)`)
		assert.Contains(t, err.Error(), `"u64" (size 8, alignment 8)`)
	})
	t.Run("second writer", func(t *testing.T) {
		w, err := bb.Writer()
		require.NoError(t, err)
		defer w.Close()
		_, err = bb.Writer()
		assert.ErrorIs(t, err, iox.ErrLimitReached)
	})
	t.Run("entries", func(t *testing.T) {
		w, err := bb.Writer()
		require.NoError(t, err)
		defer w.Close()
		r, err := bb.Reader()
		require.NoError(t, err)
		defer r.Close()

		_, err = iox.WriteEntry(w, bbKey{X: 9}, i32Codec)
		assert.ErrorIs(t, err, iox.ErrEntryNotFound)
		_, err = iox.ReadEntry(r, bbKey{X: 9}, i32Codec)
		assert.ErrorIs(t, err, iox.ErrEntryNotFound)
		assert.ErrorIs(t, err, iox.ErrServiceNotFound)

		_, err = iox.WriteEntry(w, key0, f64Codec)
		require.ErrorIs(t, err, iox.ErrIncompatibleType)
		assert.Contains(t, err.Error(), `"f64" (size 8, alignment 8)`)
		assert.Contains(t, err.Error(), `it holds "i32" (size 4, alignment 4)`, "the creator names the entry's own type")
		_, err = iox.ReadEntry(r, key0, must(iox.Fixed[uint32]("u32")))
		require.ErrorIs(t, err, iox.ErrIncompatibleType)
		assert.Contains(t, err.Error(), `"u32"`)
		assert.Contains(t, err.Error(), `it holds "i32" (size 4, alignment 4)`)

		e, err := iox.WriteEntry(w, key0, i32Codec)
		require.NoError(t, err)
		_, err = iox.WriteEntry(w, key0, i32Codec)
		assert.ErrorIs(t, err, iox.ErrLimitReached, "one writer handle per entry")
		require.NoError(t, e.Close())
		assert.ErrorIs(t, e.Close(), iox.ErrClosed)
		assert.ErrorIs(t, e.Set(1), iox.ErrClosed)
		e, err = iox.WriteEntry(w, key0, i32Codec)
		require.NoError(t, err, "a closed handle frees the entry")
		require.NoError(t, e.Close())
	})
	t.Run("too many readers", func(t *testing.T) {
		small := createBoard(t, node, "bb-readers", iox.MaxReaders(1))
		r, err := small.Reader()
		require.NoError(t, err)
		defer r.Close()
		_, err = small.Reader()
		assert.ErrorIs(t, err, iox.ErrLimitReached)
		_, err = iox.OpenExistingBlackboard(node, "bb-readers", bbKeyCodec, iox.MaxReaders(2))
		assert.ErrorIs(t, err, iox.ErrIncompatible, "fewer readers than required")
	})
	t.Run("key over 64 bytes", func(t *testing.T) {
		big := must(iox.Fixed[[65]byte]("[u8; 65]"))
		_, err := iox.OpenBlackboard(node, "bb-bigkey", big, []iox.BlackboardEntry[[65]byte]{iox.Entry([65]byte{}, i32Codec, 1)})
		assert.ErrorIs(t, err, iox.ErrInvalidArgument)
		_, err = iox.OpenExistingBlackboard(node, "bb-errors", big)
		assert.ErrorIs(t, err, iox.ErrInvalidArgument)
	})
	t.Run("bad entries", func(t *testing.T) {
		_, err := iox.OpenBlackboard(node, "bb-empty", bbKeyCodec, nil)
		assert.ErrorIs(t, err, iox.ErrInvalidArgument)
		_, err = iox.OpenBlackboard(node, "bb-dup", bbKeyCodec, []iox.BlackboardEntry[bbKey]{
			iox.Entry(key0, i32Codec, 1), iox.Entry(key0, f64Codec, 2)})
		require.ErrorIs(t, err, iox.ErrInvalidArgument)
		assert.Contains(t, err.Error(), "same key")
		_, err = iox.OpenBlackboard(node, "bb-zero", bbKeyCodec, []iox.BlackboardEntry[bbKey]{
			iox.Entry(key0, iox.FixedCodec[int32]{}, 1)})
		assert.ErrorIs(t, err, iox.ErrInvalidArgument)
	})
	t.Run("options", func(t *testing.T) {
		_, err := iox.OpenBlackboard(node, "bb-opt", bbKeyCodec, exampleEntries(), iox.BufferSize(4))
		require.ErrorIs(t, err, iox.ErrInvalidArgument)
		assert.Contains(t, err.Error(), "BufferSize does not apply to a blackboard")
		_, err = iox.OpenBlackboard(node, "bb-opt", bbKeyCodec, exampleEntries(), iox.MaxReaders(0))
		assert.ErrorIs(t, err, iox.ErrInvalidArgument)
		_, err = iox.OpenBlackboard(node, "bb-opt", bbKeyCodec, exampleEntries(), iox.MaxNodes(iox.MaxServiceCount+1))
		assert.ErrorIs(t, err, iox.ErrInvalidArgument)
	})
	t.Run("closed", func(t *testing.T) {
		b := createBoard(t, node, "bb-closed")
		require.NoError(t, b.Close())
		assert.ErrorIs(t, b.Close(), iox.ErrClosed)
		_, err := b.Writer()
		assert.ErrorIs(t, err, iox.ErrClosed)
		_, err = b.Reader()
		assert.ErrorIs(t, err, iox.ErrClosed)
	})
}

// recvWithin receives one value from c, failing after 20 s or when c closes.
func recvWithin[V any](t *testing.T, c <-chan V) V {
	t.Helper()
	select {
	case v, ok := <-c:
		require.True(t, ok, "watch ended")
		return v
	case <-time.After(20 * time.Second):
		t.Fatal("no value within 20 s")
	}
	var zero V
	return zero
}

func TestBlackboardWatch(t *testing.T) {
	ns := newNamespace(t)
	bb := createBoard(t, ns.node(t), "bb-watch")
	w, err := bb.Writer()
	require.NoError(t, err)
	defer w.Close()
	r, err := bb.Reader()
	require.NoError(t, err)
	defer r.Close()
	we, err := iox.WriteEntry(w, key0, i32Codec)
	require.NoError(t, err)
	defer we.Close()
	other, err := iox.WriteEntry(w, key1, f64Codec)
	require.NoError(t, err)
	defer other.Close()
	re, err := iox.ReadEntry(r, key0, i32Codec)
	require.NoError(t, err)
	defer re.Close()

	ctx, cancel := context.WithCancel(context.Background())
	c, err := iox.WatchEntry(ctx, re)
	require.NoError(t, err)
	assert.Equal(t, int32(3), recvWithin(t, c), "the current value first")
	require.NoError(t, we.Set(10))
	assert.Equal(t, int32(10), recvWithin(t, c))

	// falling behind: many writes while nobody receives, then the latest
	for i := int32(11); i <= 200; i++ {
		require.NoError(t, we.Set(i))
	}
	require.NoError(t, other.Set(5)) // another entry's change is not delivered here
	var got int32
	for got != 200 {
		got = recvWithin(t, c)
		require.LessOrEqual(t, got, int32(200))
	}
	select {
	case v := <-c:
		t.Fatalf("a value (%d) after the latest was delivered", v)
	default:
	}

	cancel()
	for range c { // ends with the context
	}

	c2, err := iox.WatchEntry(context.Background(), re)
	require.NoError(t, err)
	assert.Equal(t, int32(200), recvWithin(t, c2))
	require.NoError(t, re.Close())
	for range c2 { // ends with the entry reader
	}
	ev, err := ns.node(t).Event("bb-watch", iox.OpenOnly())
	require.NoError(t, err)
	defer ev.Close()
	_, listeners, err := ev.Counts()
	require.NoError(t, err)
	assert.Zero(t, listeners, "Close returns once its watches left the event service")
	_, err = iox.WatchEntry(context.Background(), re)
	assert.ErrorIs(t, err, iox.ErrClosed)
	_, err = iox.WatchEntry(context.Background(), re, iox.BufferSize(1))
	assert.ErrorIs(t, err, iox.ErrInvalidArgument)
}

// childBlackboardWriter creates the blackboard "bb-x" and, for each line
// "set N" from the parent, sets key0 to N and the blob to fill(N), then says
// "ok".
func childBlackboardWriter() error {
	ns := nsFromEnv()
	node, err := ns.childNode()
	if err != nil {
		return err
	}
	defer node.Close()
	bb, err := iox.OpenBlackboard(node, os.Getenv("BB_NAME"), bbKeyCodec, exampleEntries())
	if err != nil {
		return err
	}
	defer bb.Close()
	w, err := bb.Writer()
	if err != nil {
		return err
	}
	defer w.Close()
	e0, err := iox.WriteEntry(w, key0, i32Codec)
	if err != nil {
		return err
	}
	defer e0.Close()
	e2, err := iox.WriteEntry(w, key2, blobCodec)
	if err != nil {
		return err
	}
	defer e2.Close()
	fmt.Println("ready")
	for l := range parentLines() {
		var n int
		if _, err := fmt.Sscanf(l, "set %d", &n); err != nil {
			return fmt.Errorf("parent said %q", l)
		}
		l, err := e2.Loan()
		if err != nil {
			return err
		}
		*l.Value() = fill(byte(n))
		if err := l.Commit(); err != nil {
			return err
		}
		if err := e0.Set(int32(n)); err != nil {
			return err
		}
		fmt.Println("ok")
	}
	return nil
}

// childBlackboardReader opens "bb-x" and watches key0 until it reaches the
// number the parent gives, saying each value it sees and checking that the blob
// matches it.
func childBlackboardReader() error {
	ns := nsFromEnv()
	node, err := ns.childNode()
	if err != nil {
		return err
	}
	defer node.Close()
	bb, err := iox.OpenExistingBlackboard(node, os.Getenv("BB_NAME"), bbKeyCodec)
	if err != nil {
		return err
	}
	defer bb.Close()
	r, err := bb.Reader()
	if err != nil {
		return err
	}
	defer r.Close()
	e0, err := iox.ReadEntry(r, key0, i32Codec)
	if err != nil {
		return err
	}
	defer e0.Close()
	e2, err := iox.ReadEntry(r, key2, blobCodec)
	if err != nil {
		return err
	}
	defer e2.Close()
	last, _ := strconv.Atoi(os.Getenv("BB_LAST"))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := iox.WatchEntry(ctx, e0)
	if err != nil {
		return err
	}
	fmt.Println("ready")
	first := true
	for v := range c {
		b, err := e2.Get()
		if err != nil {
			return err
		}
		// the writer writes the blob before key0: it is at least as new
		if !whole(b.Value) || !first && int32(b.Value[0]) < v {
			return fmt.Errorf("blob %d… does not match key0 %d", b.Value[0], v)
		}
		first = false
		fmt.Println("saw", v)
		if int(v) == last {
			cancel()
		}
	}
	return nil
}

func TestBlackboardAcrossProcesses(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	name := "bb-x"
	w := spawn(t, ns, "bb-writer", "BB_NAME="+name)
	w.expect("ready")

	// a Go reader in another process wakes on each change
	rd := spawn(t, ns, "bb-reader", "BB_NAME="+name, "BB_LAST=5")
	rd.expect("ready")
	assert.Equal(t, "saw 3", rd.line(), "the initial value")
	for n := 1; n <= 5; n++ {
		w.say(fmt.Sprintf("set %d", n))
		w.expect("ok")
		assert.Equal(t, fmt.Sprintf("saw %d", n), rd.line())
	}
	rd.wait()

	// and a reader in this process sees the same
	bb, err := iox.OpenExistingBlackboard(node, name, bbKeyCodec)
	require.NoError(t, err)
	defer bb.Close()
	r, err := bb.Reader()
	require.NoError(t, err)
	defer r.Close()
	e2, err := iox.ReadEntry(r, key2, blobCodec)
	require.NoError(t, err)
	defer e2.Close()
	v, err := e2.Get()
	require.NoError(t, err)
	assert.Equal(t, fill(5), v.Value)
	_, err = bb.Writer()
	assert.ErrorIs(t, err, iox.ErrLimitReached, "the child holds the one writer")
	w.wait()
}

// childBlackboardTorn creates "bb-torn", commits fill(1), then writes fill(2)
// over half of a loaned cell, says "half", and waits to be killed.
func childBlackboardTorn() error {
	ns := nsFromEnv()
	node, err := ns.childNode()
	if err != nil {
		return err
	}
	bb, err := iox.OpenBlackboard(node, "bb-torn", bbKeyCodec, exampleEntries())
	if err != nil {
		return err
	}
	w, err := bb.Writer()
	if err != nil {
		return err
	}
	e, err := iox.WriteEntry(w, key2, blobCodec)
	if err != nil {
		return err
	}
	for n := byte(1); n <= 3; n++ { // cycle through both cells
		if err := e.Set(fill(n)); err != nil {
			return err
		}
	}
	l, err := e.Loan()
	if err != nil {
		return err
	}
	p := l.Value()
	for i := 0; i < len(p)/2; i++ {
		p[i] = 4
	}
	fmt.Println("half")
	parentSays() // never returns: the parent kills this process
	return errors.New("not killed")
}

func TestBlackboardWriterKilledMidUpdate(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t, iox.WithoutAutoCleanup())
	c := spawn(t, ns, "bb-torn")
	c.expect("half")

	bb, err := iox.OpenExistingBlackboard(node, "bb-torn", bbKeyCodec)
	require.NoError(t, err)
	r, err := bb.Reader()
	require.NoError(t, err)
	e, err := iox.ReadEntry(r, key2, blobCodec)
	require.NoError(t, err)
	before, err := e.Get()
	require.NoError(t, err)
	assert.Equal(t, fill(3), before.Value, "the half-written loan is not seen")

	c.kill()
	after, err := e.Get()
	require.NoError(t, err)
	assert.True(t, whole(after.Value), "a torn value")
	assert.Equal(t, fill(3), after.Value, "the last complete value stays")
	changed, err := e.Changed(before)
	require.NoError(t, err)
	assert.False(t, changed)

	n, err := node.CleanupDeadNodes()
	require.NoError(t, err)
	assert.Equal(t, 1, n, "the killed writer's node")
	w, err := bb.Writer()
	require.NoError(t, err, "the dead writer's place is free again")
	// iceoryx2 0.10.0 keeps the dead writer's entry handles taken
	_, err = iox.WriteEntry(w, key2, blobCodec)
	require.ErrorIs(t, err, iox.ErrLimitReached)
	assert.Contains(t, err.Error(), "a writer whose process died")
	we, err := iox.WriteEntry(w, key0, i32Codec) // an entry it did not hold
	require.NoError(t, err)
	require.NoError(t, we.Set(8))
	require.NoError(t, we.Close())
	require.NoError(t, w.Close())
	require.NoError(t, e.Close())
	require.NoError(t, r.Close())
	require.NoError(t, bb.Close())
	sweepCrashLeftovers(t, ns)
}

func TestBlackboardFixedBytes(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	createBoard(t, node, "bb-bytes")
	rawKey := must(iox.FixedBytes(iox.PayloadType{Name: "BlackboardKey", Size: 24, Align: 8}))
	rawI32 := must(iox.FixedBytes(iox.PayloadType{Name: "i32", Size: 4, Align: 4}))
	_, err := iox.FixedBytes(iox.PayloadType{Name: "x", Size: 4, Align: 3})
	assert.ErrorIs(t, err, iox.ErrInvalidArgument)

	bb, err := iox.OpenExistingBlackboard(node, "bb-bytes", rawKey)
	require.NoError(t, err)
	defer bb.Close()
	keys, err := bb.Keys()
	require.NoError(t, err)
	assert.Len(t, keys, 3)
	k0 := make([]byte, 24) // key0's image: X=0, Y=-4, Z=4, padding zero
	binary.LittleEndian.PutUint64(k0[8:], uint64(0xfffffffffffffffc))
	binary.LittleEndian.PutUint16(k0[16:], 4)
	assert.Contains(t, keys, k0)

	w, err := bb.Writer()
	require.NoError(t, err)
	defer w.Close()
	r, err := bb.Reader()
	require.NoError(t, err)
	defer r.Close()
	re, err := iox.ReadEntry(r, k0, rawI32)
	require.NoError(t, err)
	defer re.Close()
	v, err := re.Get()
	require.NoError(t, err)
	assert.Equal(t, []byte{3, 0, 0, 0}, v.Value)
	_, err = iox.ReadEntry(r, k0[:8], rawI32)
	assert.ErrorIs(t, err, iox.ErrInvalidArgument, "a key of the wrong length")

	we, err := iox.WriteEntry(w, k0, rawI32)
	require.NoError(t, err)
	defer we.Close()
	assert.ErrorIs(t, we.Set([]byte{1, 2}), iox.ErrInvalidArgument, "a value of the wrong length")
	require.NoError(t, we.Set([]byte{9, 0, 0, 0}))
	l, err := we.Loan()
	require.NoError(t, err)
	require.Len(t, *l.Value(), 4)
	copy(*l.Value(), []byte{10, 0, 0, 0})
	require.NoError(t, l.Commit())

	// the typed reader sees what the bytes wrote
	typed, err := iox.OpenExistingBlackboard(node, "bb-bytes", bbKeyCodec)
	require.NoError(t, err)
	defer typed.Close()
	tr2, err := typed.Reader()
	require.NoError(t, err)
	defer tr2.Close()
	te, err := iox.ReadEntry(tr2, key0, i32Codec)
	require.NoError(t, err)
	defer te.Close()
	tv, err := te.Get()
	require.NoError(t, err)
	assert.Equal(t, int32(10), tv.Value)
}

// An event service made elsewhere whose largest event id is below an entry's
// id cannot carry that entry's notifications: Set writes the value and says so.
func TestBlackboardSetBeyondTheEventService(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ev, err := node.Event("bb-small-events", iox.MaxEventID(1))
	require.NoError(t, err)
	defer ev.Close()
	bb := createBoard(t, node, "bb-small-events")
	w, err := bb.Writer()
	require.NoError(t, err)
	defer w.Close()
	r, err := bb.Reader()
	require.NoError(t, err)
	defer r.Close()
	we, err := iox.WriteEntry(w, key2, blobCodec)
	require.NoError(t, err)
	defer we.Close()
	require.Greater(t, we.ID(), ev.MaxEventID())
	err = we.Set(fill(5))
	require.ErrorIs(t, err, iox.ErrInvalidArgument)
	assert.Contains(t, err.Error(), "the value was written, but its watchers were not notified")
	re, err := iox.ReadEntry(r, key2, blobCodec)
	require.NoError(t, err)
	defer re.Close()
	v, err := re.Get()
	require.NoError(t, err)
	assert.Equal(t, fill(5), v.Value)
}

// Entry ids are offsets: a blackboard with large values has ids beyond
// iceoryx2's default largest event id, and its creator makes room for them
// before anyone else can open the blackboard.
func TestBlackboardWatchLargeEntryIDs(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	key3 := bbKey{X: 3}
	entries := append(exampleEntries(), iox.Entry(key3, blobCodec, fill(1)))
	bb, err := iox.OpenBlackboard(node, "bb-large", bbKeyCodec, entries)
	require.NoError(t, err)
	defer bb.Close()

	other, err := iox.OpenExistingBlackboard(node, "bb-large", bbKeyCodec) // knows nothing of the ids
	require.NoError(t, err)
	defer other.Close()
	r, err := other.Reader()
	require.NoError(t, err)
	defer r.Close()
	re, err := iox.ReadEntry(r, key3, blobCodec)
	require.NoError(t, err)
	defer re.Close()
	require.Greater(t, re.ID(), iox.EventID(255))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c, err := iox.WatchEntry(ctx, re)
	require.NoError(t, err)
	assert.Equal(t, fill(1), recvWithin(t, c))

	w, err := bb.Writer()
	require.NoError(t, err)
	defer w.Close()
	we, err := iox.WriteEntry(w, key3, blobCodec)
	require.NoError(t, err)
	defer we.Close()
	require.NoError(t, we.Set(fill(2)))
	assert.Equal(t, fill(2), recvWithin(t, c))
	cancel()
	for range c {
	}
}

// A value too large for a Go channel (64 KiB or more) is read and written
// all the same; only WatchEntry needs a channel.
func TestBlackboardLargeValue(t *testing.T) {
	type mib [1 << 20]byte
	ns := newNamespace(t)
	node := ns.node(t)
	c := must(iox.Fixed[mib]("[u8; 1048576]"))
	bb, err := iox.OpenBlackboard(node, "bb-mib", bbKeyCodec, []iox.BlackboardEntry[bbKey]{iox.Entry(key0, c, mib{})})
	require.NoError(t, err)
	defer bb.Close()
	w, err := bb.Writer()
	require.NoError(t, err)
	defer w.Close()
	r, err := bb.Reader()
	require.NoError(t, err)
	defer r.Close()
	we, err := iox.WriteEntry(w, key0, c)
	require.NoError(t, err)
	defer we.Close()
	re, err := iox.ReadEntry(r, key0, c)
	require.NoError(t, err)
	defer re.Close()
	l, err := we.Loan()
	require.NoError(t, err)
	for i := range l.Value() {
		l.Value()[i] = byte(i % 251)
	}
	require.NoError(t, l.Commit())
	v, err := re.Get()
	require.NoError(t, err)
	for i := range v.Value {
		if v.Value[i] != byte(i%251) {
			t.Fatalf("byte %d is %d", i, v.Value[i])
		}
	}
}

// Keys are equal when their fields are: padding bytes, which a Rust or C peer
// may leave uninitialized, do not count.
func TestBlackboardKeyPaddingDoesNotCount(t *testing.T) {
	ns := newNamespace(t)
	bb := createBoard(t, ns.node(t), "bb-padding")
	r, err := bb.Reader()
	require.NoError(t, err)
	defer r.Close()
	k := key1
	raw := (*[24]byte)(unsafe.Pointer(&k))
	for _, i := range []int{4, 5, 6, 7, 18, 19, 20, 21, 22, 23} { // after X and after Z
		raw[i] = 0xa5
	}
	require.Equal(t, key1, k, "the fields are untouched")
	e, err := iox.ReadEntry(r, k, f64Codec)
	require.NoError(t, err)
	defer e.Close()
	v, err := e.Get()
	require.NoError(t, err)
	assert.Equal(t, 1.1, v.Value)
	k.Z = 5
	_, err = iox.ReadEntry(r, k, f64Codec)
	assert.ErrorIs(t, err, iox.ErrEntryNotFound, "a field does count")
}

// Quiet watches wait in the runtime's poller: they hold no OS thread and no
// goroutine runs for them until the entry changes.
func TestQuietWatchesParkInThePoller(t *testing.T) {
	const watches = 12 // of the event service's 16 listeners
	ns := newNamespace(t)
	bb := createBoard(t, ns.node(t), "bb-quiet")
	r, err := bb.Reader()
	require.NoError(t, err)
	defer r.Close()
	re, err := iox.ReadEntry(r, key0, i32Codec)
	require.NoError(t, err)
	defer re.Close()
	before := threads(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	chans := make([]<-chan int32, watches)
	for i := range chans {
		chans[i], err = iox.WatchEntry(ctx, re)
		require.NoError(t, err)
		assert.Equal(t, int32(3), recvWithin(t, chans[i]))
	}
	waitParked(t, "iox.(*Listener).waitInto", watches)
	during := threads(t)
	t.Logf("OS threads: %d before, %d with %d watches", before, during, watches)
	assert.Less(t, during, before+10, "quiet watches must not hold OS threads")

	w, err := bb.Writer()
	require.NoError(t, err)
	defer w.Close()
	we, err := iox.WriteEntry(w, key0, i32Codec)
	require.NoError(t, err)
	defer we.Close()
	require.NoError(t, we.Set(4))
	for _, c := range chans {
		assert.Equal(t, int32(4), recvWithin(t, c), "every watch wakes")
	}
	cancel()
	for _, c := range chans {
		for range c {
		}
	}
}

func TestBlackboardSettingsWithoutJoining(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	bb := createBoard(t, node, "bb-settings", iox.MaxReaders(3), iox.MaxNodes(5))
	want := iox.BlackboardSettings{MaxReaders: 3, MaxNodes: 5,
		Key: iox.PayloadType{Name: "BlackboardKey", Size: 24, Align: 8, Fixed: true}}
	s, err := ns.node(t).BlackboardSettings("bb-settings")
	require.NoError(t, err)
	assert.Equal(t, want, s)
	_, err = node.BlackboardSettings("bb-none")
	assert.ErrorIs(t, err, iox.ErrServiceNotFound)

	w, err := bb.Writer()
	require.NoError(t, err)
	defer w.Close()
	r, err := bb.Reader()
	require.NoError(t, err)
	defer r.Close()
	list, err := node.Services()
	require.NoError(t, err)
	found := false
	for _, si := range list {
		if si.Name == "bb-settings" && si.Pattern == iox.PatternBlackboard {
			found = true
			require.NotNil(t, si.Blackboard)
			assert.Equal(t, want, *si.Blackboard)
			assert.True(t, si.PortsKnown, "a blackboard's ports are counted")
			assert.Equal(t, iox.PortCounts{Writers: 1, Readers: 1}, si.Ports)
		}
	}
	assert.True(t, found, "Services lists the blackboard: %+v", list)
}

// childBlackboardBusyWriter creates "bb-busy" and writes the blob over and
// over, each value one byte repeated, until the parent closes its input.
func childBlackboardBusyWriter() error {
	node, err := nsFromEnv().childNode()
	if err != nil {
		return err
	}
	defer node.Close()
	bb, err := iox.OpenBlackboard(node, "bb-busy", bbKeyCodec, exampleEntries())
	if err != nil {
		return err
	}
	defer bb.Close()
	w, err := bb.Writer()
	if err != nil {
		return err
	}
	defer w.Close()
	e, err := iox.WriteEntry(w, key2, blobCodec)
	if err != nil {
		return err
	}
	defer e.Close()
	stop := parentLines()
	fmt.Println("ready")
	for n := 1; ; n++ {
		select {
		case _, ok := <-stop:
			if !ok {
				return nil
			}
		default:
		}
		if err := e.Set(fill(byte(n))); err != nil {
			return err
		}
	}
}

// Readers in one process and a writer writing as fast as it can in another:
// every value read is whole, and generations never go back.
func TestBlackboardReadersNeverSeeTornValues(t *testing.T) {
	ns := newNamespace(t)
	c := spawn(t, ns, "bb-busy-writer")
	c.expect("ready")
	bb, err := iox.OpenExistingBlackboard(ns.node(t), "bb-busy", bbKeyCodec)
	require.NoError(t, err)
	defer bb.Close()
	r, err := bb.Reader()
	require.NoError(t, err)
	defer r.Close()
	e, err := iox.ReadEntry(r, key2, blobCodec)
	require.NoError(t, err)
	defer e.Close()
	errc := make(chan error, 4)
	var changes atomic.Int64 // values seen to change under the readers' eyes
	for range 4 {
		go func() {
			last := uint64(0)
			for i := 0; i < 5000; i++ {
				v, err := e.Get()
				switch {
				case err != nil:
					errc <- err
					return
				case !whole(v.Value):
					errc <- fmt.Errorf("read %d: a torn value (%d…%d)", i, v.Value[0], v.Value[len(v.Value)-1])
					return
				case v.Generation < last:
					errc <- fmt.Errorf("read %d: generation %d after %d", i, v.Generation, last)
					return
				case last != 0 && v.Generation != last:
					changes.Add(1)
				}
				last = v.Generation
			}
			errc <- nil
		}()
	}
	for range 4 {
		require.NoError(t, <-errc)
	}
	assert.Positive(t, changes.Load(), "the writer wrote while the readers read")
	c.wait()
}
