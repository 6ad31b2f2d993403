package ffi

import (
	"runtime"
	"sync"
	"unsafe"

	"github.com/ebitengine/purego"
)

// maxArgs is the most arguments a native call takes here (purego allows 15 on
// every platform).
const maxArgs = 12

// call is one native call: its arguments, a Pinner holding the Go memory they
// point into for the length of the call, and room for small results that native
// code writes. Calls are pooled, so that a hot call allocates nothing:
// purego.SyscallN takes its arguments variadically and, being
// //go:uintptrescapes, would move a fresh list to the heap on every call, and a
// Pinner allocates on its first Pin only.
//
// A binding takes a call, fills a with plain values and with the addresses that
// ptr, bytes and str return (each pins what it points into), then runs it:
//
//	c := getCall()
//	c.a[0], c.a[1], c.a[2] = uintptr(h), c.bytes(p), uintptr(len(p))
//	r := c.run(l.SomeFn, 3)
//
// run unpins after the call and returns c to the pool. A binding that reads out
// or ids after the call uses invoke instead, then release.
type call struct {
	a   [maxArgs]uintptr
	pin runtime.Pinner
	out [2]uint64  // small out-parameters
	ids [64]uint64 // event ids drained from a listener
}

var calls = sync.Pool{New: func() any { return new(call) }}

func getCall() *call { return calls.Get().(*call) }

// ptr returns the address of Go memory p as an argument and pins the object p
// points into until the call returns. p may also point outside the Go heap
// (shared memory, static data), which needs no pinning.
func (c *call) ptr(p unsafe.Pointer) uintptr {
	c.pin.Pin(p)
	return uintptr(p)
}

// bytes is ptr of b's first byte, and 0 for an empty b.
func (c *call) bytes(b []byte) uintptr {
	if len(b) == 0 {
		return 0
	}
	return c.ptr(unsafe.Pointer(unsafe.SliceData(b)))
}

// str is ptr of s's first byte, and 0 for "".
func (c *call) str(s string) uintptr {
	if s == "" {
		return 0
	}
	return c.ptr(unsafe.Pointer(unsafe.StringData(s)))
}

// invoke calls fn with the first n arguments, then unpins what they pinned and
// clears them; c can take the next call's arguments.
func (c *call) invoke(fn uintptr, n int) uintptr {
	r, _, _ := purego.SyscallN(fn, c.a[:n]...)
	c.pin.Unpin()
	c.a = [maxArgs]uintptr{}
	return r
}

// release returns c to the pool.
func (c *call) release() {
	c.out = [2]uint64{}
	calls.Put(c)
}

// run is invoke followed by release.
func (c *call) run(fn uintptr, n int) uintptr {
	r := c.invoke(fn, n)
	c.release()
	return r
}
