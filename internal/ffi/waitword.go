package ffi

import (
	"sync/atomic"
	"unsafe"

	"github.com/ebitengine/purego"
)

// WaitWord is a receiving end's word in shared memory (see the native crate's
// waitword module): the receiver marks in it that it parks and records the
// last sample it took; its senders read it, to notify only a receiver that
// parks and to know its room before they send a loaned sample. Go's atomics are sequentially
// consistent, which the handshake needs on both sides: the receiver stores
// "parked" and then looks at its queue, a sender puts a sample into the queue
// and then claims the mark; either the receiver sees the sample or the sender
// sees the mark, so no notification a parked receiver needs is skipped.
type WaitWord struct {
	lib *Lib
	h   Handle
	p   unsafe.Pointer // the object's base address
}

// WaitWordCreate creates the wait word of this node's receiving port key.
func (l *Lib) WaitWordCreate(node Handle, keyLo, keyHi uint64) (*WaitWord, Status) {
	r, _, _ := purego.SyscallN(l.WaitWordCreateFn, uintptr(node), uintptr(keyLo), uintptr(keyHi))
	v, st := split(r)
	if st != OK {
		return nil, st
	}
	return l.wrapWaitWord(Handle(v)), OK
}

// WaitWordOpen opens the wait word of node owner's receiving port key; nil when
// there is none.
func (l *Lib) WaitWordOpen(node Handle, ownerLo, ownerHi, keyLo, keyHi uint64) (*WaitWord, Status) {
	r, _, _ := purego.SyscallN(l.WaitWordOpenFn, uintptr(node), uintptr(ownerLo), uintptr(ownerHi),
		uintptr(keyLo), uintptr(keyHi))
	v, st := split(r)
	if st != OK || v == 0 {
		return nil, st
	}
	return l.wrapWaitWord(Handle(v)), OK
}

func (l *Lib) wrapWaitWord(h Handle) *WaitWord {
	words := (*[1]unsafe.Pointer)(*(*unsafe.Pointer)(unsafe.Pointer(&h))) // the handle's first word
	return &WaitWord{lib: l, h: h, p: words[0]}
}

// The object's layout (64 bytes): parked u32 at 0; the receiver's buffer (in
// samples) at 8; the magic at 16; at 24 a version (odd while the receiver
// writes), then the tag and sequence number of the last sample it took; at 48
// a u32 that is 1 once the receiver closed; at 52 a u32 that is 1 while the
// receiver waits in a receive call; at 56 the id of the end a pair's end
// paired with (0 while none).
func (w *WaitWord) parked() *atomic.Uint32 { return (*atomic.Uint32)(w.p) }
func (w *WaitWord) word(off uintptr) *atomic.Uint64 {
	return (*atomic.Uint64)(unsafe.Add(w.p, off))
}

// Park marks that the receiver is about to park; it must look at its queue
// again afterwards, and park only when that finds nothing.
func (w *WaitWord) Park() { w.parked().Store(1) }

// Unpark clears the mark once the receiver looks again.
func (w *WaitWord) Unpark() { w.parked().Store(0) }

// Parked reports whether the receiver's mark is set: it parks, or is about
// to, and no sender claimed the mark since.
func (w *WaitWord) Parked() bool { return w.parked().Load() != 0 }

// Claim is a sender's step after it put a sample into the receiver's queue: it
// reports whether the receiver parks (and clears the mark, so that of several
// senders, or sends in a row, one notifies). The compare-and-swap is a full
// barrier also when it fails, which orders the sample before the look at the
// mark.
func (w *WaitWord) Claim() bool { return w.parked().CompareAndSwap(1, 0) }

// SetGone records that the receiver closed: its senders look for who
// receives now.
func (w *WaitWord) SetGone() { (*atomic.Uint32)(unsafe.Add(w.p, 48)).Store(1) }

// Gone reports whether the receiver closed.
func (w *WaitWord) Gone() bool { return (*atomic.Uint32)(unsafe.Add(w.p, 48)).Load() != 0 }

// SetWaiting records whether the receiver waits in a receive call (rather
// than working on what it received).
func (w *WaitWord) SetWaiting(on bool) {
	v := uint32(0)
	if on {
		v = 1
	}
	(*atomic.Uint32)(unsafe.Add(w.p, 52)).Store(v)
}

// Waiting reports what SetWaiting recorded last.
func (w *WaitWord) Waiting() bool { return (*atomic.Uint32)(unsafe.Add(w.p, 52)).Load() != 0 }

// SetBuffer records how many samples the receiver's queue holds (per sender).
func (w *WaitWord) SetBuffer(n uint64) { w.word(8).Store(n) }

// Buffer is how many samples the receiver's queue holds (per sender).
func (w *WaitWord) Buffer() uint64 { return w.word(8).Load() }

// SetLast records the tag and sequence number of the last sample the receiver
// took (the receiver alone writes them).
func (w *WaitWord) SetLast(tag, seq uint64) {
	v := w.word(24)
	n := v.Load()
	v.Store(n + 1)
	w.word(32).Store(tag)
	w.word(40).Store(seq)
	v.Store(n + 2)
}

// Last returns what SetLast recorded; ok is false while the receiver writes
// it (the caller then knows nothing).
func (w *WaitWord) Last() (tag, seq uint64, ok bool) {
	v := w.word(24)
	n := v.Load()
	if n&1 != 0 {
		return 0, 0, false
	}
	tag, seq = w.word(32).Load(), w.word(40).Load()
	return tag, seq, v.Load() == n
}

// LastLeft is Last for a receiver that will write no more (it closed or its
// process died) and whose tag never changes: a write it left half done keeps
// the counter odd for good, but the tag and the sequence number are each
// stored whole, so they hold what it wrote before or what it was writing.
func (w *WaitWord) LastLeft() (tag, seq uint64) {
	return w.word(32).Load(), w.word(40).Load()
}

// Peer returns the id of the end the receiver paired with (0: none yet).
func (w *WaitWord) Peer() uint64 { return w.word(56).Load() }

// ClaimPeer records id as the end the receiver paired with, unless another
// end is recorded already; it reports whether id is the recorded end now.
// Either side of a pair may record it, once.
func (w *WaitWord) ClaimPeer(id uint64) bool {
	v := w.word(56)
	return v.CompareAndSwap(0, id) || v.Load() == id
}

// UnclaimPeer takes back a ClaimPeer of id that its pairing did not complete.
func (w *WaitWord) UnclaimPeer(id uint64) { w.word(56).CompareAndSwap(id, 0) }

// addr is the word's address as a call argument (0 for a nil word): shared
// memory, not Go memory, so it needs no pinning.
func (w *WaitWord) addr() uintptr {
	if w == nil {
		return 0
	}
	return uintptr(w.p)
}

// Remove marks the word of a receiver whose process died for removal: it goes
// when Close unmaps it.
func (w *WaitWord) Remove() {
	if w.h != 0 {
		purego.SyscallN(w.lib.WaitWordRemoveFn, uintptr(w.h))
	}
}

// Close unmaps the word (and removes it, for its owner).
func (w *WaitWord) Close() {
	if w.h != 0 {
		purego.SyscallN(w.lib.WaitWordDropFn, uintptr(w.h))
		w.h, w.p = 0, nil
	}
}
