package iox

import "github.com/iox-go/iox/internal/ffi"

// Which ends pair. A pair end pairs once, with the first end it finds in the
// other slot that is free, and from then on takes samples only from that end
// and sends only while that end's subscriber is there. For a while after an
// end closed, the other slot may still hold its peer, ending: that peer has
// read the bye or not yet, is still open or lingers in its own Close. A new
// end that takes the freed slot finds it there, but it is taken: the newcomer
// does not pair with it, drops what it sends (what it had queued for the
// peer that is gone, its bye), ignores its leaving, and waits for the end
// that takes its place, sending nothing meanwhile. The ending end, for its
// part, never pairs again: once it knows its peer is gone it sends only while
// that peer's subscriber is still there (when both close at once, each end's
// bye reaches the other), and it drops what the newcomer might send it.
//
// An end's id comes from its subscriber's port id, which is unique; it is the
// tag its samples carry. The pairing is recorded in both ends' wait words
// (the word of an end's subscriber, which the other end opens anyway): an end
// that finds the other one free records the other in its own word and itself
// in the other's, each with a compare-and-swap, so whichever of the two looks
// first pairs them, and an end whose word names another end stays taken. An
// end found before it made its word is still opening, hence free. Each end
// looks while it opens, after it made its word, so of two ends that open at
// once at least one finds the other with its word made: an end is paired
// before it takes its peer's first sample, and a sample that reaches an end
// whose word names no one, or another end, comes from an end taken by another
// and is dropped. An end whose word could not be made is recorded only in its
// own memory and in the other's word: others cannot see that it is taken, and
// until it pairs it takes what comes.

// endID is the id of the pair end whose subscriber is port: FNV-1a of the
// port id, never 0.
func endID(port UniqueID) uint64 {
	const prime = 1099511628211
	h := uint64(14695981039346656037)
	for _, v := range [2]uint64{port.Lo, port.Hi} {
		for range 8 {
			h ^= v & 0xff
			h *= prime
			v >>= 8
		}
	}
	return h | 1
}

// lookForPeer finds this end's peer: the end whose subscriber is on this
// end's service, when the two may pair; it then watches the peer's process.
// An end that claimed this one and whose subscriber is gone already came
// and went: its samples (its bye, if it fitted) are in shared memory, and
// the pair ends cleanly behind them.
func (p *Pair[T]) lookForPeer() {
	var claimed uint64 // read before the listing: the claimer's subscriber was there by then
	if p.word != nil {
		claimed = p.word.Peer()
	}
	subs, err := p.mineSvc.Subscribers()
	if err != nil {
		return
	}
	left := false
	defer func() {
		if left {
			p.peerLeft()
		}
	}()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.peerKnown.Load() {
		if len(subs) > 0 && endID(subs[0].Port) == p.peerID.Load() && p.peerWord.Load() == nil {
			p.peerWord.Store(openWaitWord(p.node, subs[0])) // it may have made it after this end looked
		}
		return
	}
	if claimed != 0 && (len(subs) == 0 || endID(subs[0].Port) != claimed) {
		p.peerID.Store(claimed)
		p.peerKnown.Store(true)
		left = true
		return
	}
	if len(subs) == 0 {
		return
	}
	id := endID(subs[0].Port)
	w := openWaitWord(p.node, subs[0])
	if !p.claim(id, w) {
		if w != nil {
			w.Close()
		}
		return
	}
	p.peerID.Store(id)
	p.peerWord.Store(w)
	p.peerNode = subs[0].Node
	p.unwatch = watchNode(p.node.lib, p.peerNode, p.cfg.peerTimeout/4, p.peerExited)
	p.peerKnown.Store(true)
}

// claim pairs this end with the end id, whose word is w (nil: it has none, or
// not yet), unless either of them is paired with another end; it reports
// whether the two are paired. This end's word is claimed first: a claim of
// the other's word that fails (it is taken) is taken back, so that no end is
// left recorded as the peer of an end that is not.
func (p *Pair[T]) claim(id uint64, w *ffi.WaitWord) bool {
	if w != nil {
		if c := w.Peer(); c != 0 && c != p.id {
			return false
		}
	}
	fresh := false
	if p.word != nil {
		fresh = p.word.Peer() == 0
		if !p.word.ClaimPeer(id) {
			return false
		}
	}
	if w != nil && !w.ClaimPeer(p.id) {
		if fresh {
			p.word.UnclaimPeer(id)
		}
		return false
	}
	return true
}

// fromPeer reports whether a sample whose tag is tag comes from this end's
// peer; the receiver drops any other (see above). It runs for every sample:
// once paired, it compares.
func (p *Pair[T]) fromPeer(tag uint64) bool {
	id := p.peerID.Load()
	if id == 0 && p.word != nil {
		if id = p.word.Peer(); id != 0 {
			p.lookForPeer() // an end claimed this one: it is the peer
		}
	}
	if id == 0 {
		return p.word == nil // unclaimed: only an end that cannot be claimed takes what comes
	}
	return tag == id
}

// mayDeliver reports whether a sample may go out now. While this end is
// paired and its peer is not known to be gone, it may, without a look (the
// service takes one subscriber). Otherwise only to the peer's subscriber
// found there now: an end that pairs with this one now, or the peer still
// there after its end (when both close at once, each end's bye reaches the
// other). A subscriber of an end taken by another gets nothing.
func (p *Pair[T]) mayDeliver() bool {
	if p.peerKnown.Load() && !p.gonePeer() {
		return true
	}
	if !p.peerKnown.Load() {
		p.lookForPeer()
	}
	return p.peerThere()
}

// peerThere reports whether the peer's subscriber is on this end's service.
// Until the peer is known to be gone a count tells (the service takes one
// subscriber); after that the subscriber there may be a newcomer's.
func (p *Pair[T]) peerThere() bool {
	if !p.peerKnown.Load() {
		return false
	}
	if !p.gonePeer() {
		_, subs, err := p.mineSvc.Counts()
		return err == nil && subs > 0
	}
	return p.peerSubThere()
}

// peerSubThere reports whether the peer's own subscriber is on this end's
// service (found by its id).
func (p *Pair[T]) peerSubThere() bool {
	subs, err := p.mineSvc.Subscribers()
	return err == nil && len(subs) > 0 && endID(subs[0].Port) == p.peerID.Load()
}

// onLeft runs when a notifier left this end's event service (evLeft). It is
// the peer's end leaving when the peer's subscriber is gone too (a closing
// end drops it first, after its last sample): the peer closed. An end of an
// earlier pair that leaves while this end waits for its peer, or after this
// end paired, leaves the same way and is no concern of this one.
func (p *Pair[T]) onLeft() {
	if !p.peerKnown.Load() {
		p.lookForPeer() // an end that claimed this one may have come and gone
	}
	if p.peerKnown.Load() && !p.peerSubThere() {
		p.peerLeft()
	}
}

// peerClosedItsEnd reports whether the peer's subscriber is gone from this
// end's service although its process died: a crashed process's ports stay
// until they are cleaned up, a closed end's are gone. It tells a peer that
// closed and exited at once, before its leaving was read, from one that
// crashed. When the ports cannot be listed it cannot tell, and says no.
func (p *Pair[T]) peerClosedItsEnd() bool {
	subs, err := p.mineSvc.Subscribers()
	return err == nil && (len(subs) == 0 || endID(subs[0].Port) != p.peerID.Load())
}

// tookBye reports whether an acknowledgement of this end's bye (evDrained)
// can be the peer's: the peer's word shows that the last sample it took is
// this end's bye (sample bye), or it cannot tell. An end of an earlier pair
// that is still ending acknowledges its own peer's bye on the same event
// service, and that must not confirm this end's messages.
func (p *Pair[T]) tookBye(bye uint64) bool {
	w := p.peerWord.Load()
	if w == nil {
		return true
	}
	tag, seq, ok := lastTaken(w)
	return !ok || (tag == p.id && seq >= bye)
}
