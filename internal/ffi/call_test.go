package ffi

import (
	"bytes"
	"encoding/binary"
	"runtime"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/require"
)

// Small inputs are copied into the call, each at its own 8-byte aligned
// place; one that no longer fits is passed as it is (and pinned); the next
// call has the whole room again.
func TestCallInputCopiesSmallInputs(t *testing.T) {
	c := getCall()
	a, b := []byte("header of forty bytes, more or less...."), []byte{1, 2, 3}
	pa, pb := c.input(a), c.input(b)
	require.NotEqual(t, pa, pb)
	for _, p := range []uintptr{pa, pb} {
		require.Zero(t, p%8, "aligned")
		require.Less(t, p-uintptr(unsafe.Pointer(c)), unsafe.Sizeof(*c), "inside the call")
	}
	room := unsafe.Slice((*byte)(unsafe.Pointer(&c.in[0])), 8*len(c.in))
	at := func(p uintptr, n int) []byte {
		off := p - uintptr(unsafe.Pointer(&c.in[0]))
		return room[off : off+uintptr(n)]
	}
	require.True(t, bytes.Equal(a, at(pa, len(a))))
	require.True(t, bytes.Equal(b, at(pb, len(b))))

	big := make([]byte, inputMax+1)
	require.Equal(t, uintptr(unsafe.Pointer(&big[0])), c.input(big), "too large: passed in place")
	require.True(t, c.pinned)
	require.Zero(t, c.input(nil))

	w := []uint64{7, 9}
	pw := c.inputWords(w)
	require.Equal(t, binary.NativeEndian.AppendUint64(binary.NativeEndian.AppendUint64(nil, 7), 9), at(pw, 16))

	c.release() // arguments taken but never run: what they pinned is let go
	require.False(t, c.pinned)
	require.Zero(t, c.used)
}

// Calls pin themselves for their life: more calls than the free list keeps,
// released, are unpinned and let go (the runtime panics on a pinned object it
// collects).
func TestCallsLetGoUnpinned(t *testing.T) {
	cs := make([]*call, 2*maxFree)
	for i := range cs {
		cs[i] = getCall()
		cs[i].out[0] = uint64(i)
	}
	for _, c := range cs {
		c.release()
	}
	cs = nil
	runtime.GC()
	runtime.GC()
	c := getCall()
	require.Zero(t, c.out[0], "a released call comes back cleared")
	c.release()
}
