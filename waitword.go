package iox

import "github.com/iox-go/iox/internal/ffi"

// A receiving end of iox's own services (a pair's end, a lossless subscriber)
// has a wait word in shared memory beside its services (internal/ffi's
// WaitWord, made by the native library). Before it parks, the receiver marks
// the word and looks at its queue once more; a sender claims the mark after
// each send and notifies only when it was set, so that a receiver that is
// spinning or busy costs its senders no system call, and several sends while
// it parks make one notification. The receiver also records there the last
// sample it took, from which a sender learns its room before it sends a loaned
// sample (which cannot be taken back). Receivers in other languages have no
// word: to them, and while a word cannot be had, senders notify every time.

// afterClaim, when set, runs after a sender claimed a parked receiver's mark
// and before it notifies the receiver (and after a puller claimed the mark of
// a pusher that waits for its count, before it wakes the pusher): tests make
// a process die there, where the other side has news and nobody left to tell
// it. It is set before the process opens any channel.
var afterClaim func()

// newWaitWord makes the wait word of sub, which holds buffer samples per
// sender. It returns nil when none can be made; the senders then notify every
// time.
func newWaitWord(node *Node, sub *Subscriber, buffer int) *ffi.WaitWord {
	id, ok := sub.portID()
	if !ok {
		return nil
	}
	nh, ok := node.ref.acquire()
	if !ok {
		return nil
	}
	defer node.ref.release()
	w, st := node.lib.WaitWordCreate(nh, id.Lo, id.Hi)
	if st != ffi.OK {
		return nil
	}
	w.SetBuffer(uint64(buffer))
	return w
}

// openWaitWord opens the wait word of the subscriber port; nil when it has
// none (yet).
func openWaitWord(node *Node, port PortInfo) *ffi.WaitWord {
	nh, ok := node.ref.acquire()
	if !ok {
		return nil
	}
	defer node.ref.release()
	w, _ := node.lib.WaitWordOpen(nh, port.Node.Lo, port.Node.Hi, port.Port.Lo, port.Port.Hi)
	return w
}

// roomFor reports whether the receiver of w can take one more sample from the
// sender with tag that has sent seq samples. It knows only once the receiver
// took one of this sender's samples, and took a sample after copies, the last
// one the sender may have delivered twice (a receiver that just came, one that
// last took another sender's sample, or one that may still hold the second
// copy of the sample it took last, cannot tell): then room means fewer than
// its buffer are on their way since.
func roomFor(w *ffi.WaitWord, tag, seq, copies uint64) (room, known bool) {
	if w == nil {
		return false, false
	}
	lastTag, lastSeq, ok := lastTaken(w)
	if !ok || lastTag != tag || (copies > 0 && lastSeq <= copies) {
		return false, false
	}
	return seq-min(lastSeq, seq) < w.Buffer(), true
}

// lastReads bounds how often lastTaken reads a word that its receiver is
// writing: a write is three stores, so a few reads find it done.
const lastReads = 64

// lastTaken reads what the receiver of w took last, again while the
// receiver is in the middle of recording it (a reader that gave up at once
// would take a receiver busy taking for one that cannot tell).
func lastTaken(w *ffi.WaitWord) (tag, seq uint64, ok bool) {
	for range lastReads {
		if tag, seq, ok = w.Last(); ok {
			return tag, seq, true
		}
	}
	return 0, 0, false
}

// behind reports whether the receiver whose word w is holds limit or more
// unread samples of the port tag, which has sent seq (a receiver whose word
// names another port took none of tag's yet); false when it cannot tell.
func behind(w *ffi.WaitWord, tag, seq, limit uint64) bool {
	if w == nil {
		return false
	}
	lastTag, lastSeq, ok := lastTaken(w)
	if !ok {
		return false
	}
	if lastTag != tag {
		lastSeq = 0
	}
	return seq-min(lastSeq, seq) >= limit
}

// wordCloser closes a wait word among a channel's ports.
type wordCloser struct{ w *ffi.WaitWord }

func (c wordCloser) Close() error {
	c.w.Close()
	return nil
}
