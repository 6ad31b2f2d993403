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
// code writes. Calls are kept in a free list, so that a hot call allocates
// nothing: purego.SyscallN takes its arguments variadically and, being
// //go:uintptrescapes, would move a fresh list to the heap on every call, and a
// Pinner allocates on its first Pin only.
//
// A call pins itself once, when it is made, with a Pinner of its own (self),
// so that its out and ids arrays, which most calls hand to native code, need
// no pinning per call (a Pin and its Unpin cost about as much as the crossing
// itself). It stays pinned while it is in use or in the free list, and is
// unpinned when the list is full and it is let go: a pinned object must not be
// dropped, so every call that is taken is released.
//
// A binding takes a call, fills a with plain values and with the addresses that
// ptr, bytes and str return (each pins what it points into), then runs it:
//
//	c := getCall()
//	c.a[0], c.a[1], c.a[2] = uintptr(h), c.bytes(p), uintptr(len(p))
//	r := c.run(l.SomeFn, 3)
//
// run unpins after the call and returns c to the free list. A binding that
// reads out or ids after the call uses invoke instead, then release.
type call struct {
	a      [maxArgs]uintptr
	pin    runtime.Pinner
	self   runtime.Pinner // pins this call for its life
	out    [2]uint64      // small out-parameters
	ids    [64]uint64     // event ids drained from a listener
	in     [512]uint64    // copies of small inputs (see input) and room for outputs, 8-byte aligned
	used   int            // words of in taken by this call's arguments
	pinned bool           // pin holds something
}

// calls is the free list: enough for the calls that run at once, and for
// those that follow each other without a new call being made.
var calls struct {
	sync.Mutex
	free []*call
}

const maxFree = 64

// inputMax is the largest input copied into a call: past it, a pin costs less
// than the copy.
const inputMax = 1 << 10

func getCall() *call {
	calls.Lock()
	if n := len(calls.free); n > 0 {
		c := calls.free[n-1]
		calls.free = calls.free[:n-1]
		calls.Unlock()
		return c
	}
	calls.Unlock()
	c := new(call)
	c.self.Pin(c)
	return c
}

// ptr returns the address of Go memory p as an argument and pins the object p
// points into until the call returns. p may also point outside the Go heap
// (shared memory, static data), which needs no pinning.
func (c *call) ptr(p unsafe.Pointer) uintptr {
	if uintptr(p)-uintptr(unsafe.Pointer(c)) < unsafe.Sizeof(*c) {
		return uintptr(p) // in c itself, which is pinned
	}
	c.pin.Pin(p)
	c.pinned = true
	return uintptr(p)
}

// bytes is ptr of b's first byte, and 0 for an empty b.
func (c *call) bytes(b []byte) uintptr {
	if len(b) == 0 {
		return 0
	}
	return c.ptr(unsafe.Pointer(unsafe.SliceData(b)))
}

// input is bytes for memory that native code only reads: a small b is copied
// into the call itself, which is pinned already (a copy of a message header
// or a small message costs less than pinning it), a larger one is pinned.
func (c *call) input(b []byte) uintptr {
	if len(b) == 0 {
		return 0
	}
	words := (len(b) + 7) / 8
	if len(b) > inputMax || c.used+words > len(c.in) {
		return c.bytes(b)
	}
	dst := c.in[c.used : c.used+words]
	copy(unsafe.Slice((*byte)(unsafe.Pointer(&dst[0])), len(b)), b)
	c.used += words
	return uintptr(unsafe.Pointer(&dst[0]))
}

// room takes n words of the call's room for native code to write into (the
// binding copies them out after the call) and returns their address.
func (c *call) room(n int) uintptr {
	p := uintptr(unsafe.Pointer(&c.in[c.used]))
	c.used += n
	return p
}

// inputWords is input for an array of 64-bit words.
func (c *call) inputWords(w []uint64) uintptr {
	if len(w) == 0 {
		return 0
	}
	return c.input(unsafe.Slice((*byte)(unsafe.Pointer(&w[0])), 8*len(w)))
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
	if c.pinned {
		c.pin.Unpin()
		c.pinned = false
	}
	c.a = [maxArgs]uintptr{}
	c.used = 0
	return r
}

// pair runs fn(h, &out[0], &out[1]): a call that returns two counts, which
// native code writes into the call itself (nothing to pin, nothing escapes).
func (c *call) pair(fn uintptr, h Handle) (x, y uint64, s Status) {
	c.a[0], c.a[1], c.a[2] = uintptr(h), c.ptr(unsafe.Pointer(&c.out[0])), c.ptr(unsafe.Pointer(&c.out[1]))
	r := c.invoke(fn, 3)
	x, y = c.out[0], c.out[1]
	c.release()
	return x, y, Status(int32(r))
}

// release returns c to the free list, or lets it go unpinned when the list
// is full.
func (c *call) release() {
	c.out = [2]uint64{}
	if c.pinned { // arguments taken but never run
		c.pin.Unpin()
		c.pinned = false
	}
	c.used = 0
	calls.Lock()
	if len(calls.free) < maxFree {
		calls.free = append(calls.free, c)
		calls.Unlock()
		return
	}
	calls.Unlock()
	c.self.Unpin()
}

// run is invoke followed by release.
func (c *call) run(fn uintptr, n int) uintptr {
	r := c.invoke(fn, n)
	c.release()
	return r
}
