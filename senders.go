package iox

import (
	"sync"
	"time"

	"github.com/iox-go/iox/internal/ffi"
)

// A sender puts a message into the receiver's queue, claims the receiver's
// mark and, when the receiver parks, notifies it (see waitword.go). A sender
// whose process dies after the first step and before the last leaves the
// receiver parked with a message in its queue, and with its mark cleared when
// the claim was made: no other sender will notify it for that message. So a
// receiving end watches its senders' processes (pidfd, as a Pub watches its
// subscribers) and, when one dies, looks at its queue again; it delivers what
// is there as it would after a notification. (A pair end watches its peer
// already: the peer's death ends the pair, which wakes the receiver.)
//
// The watch costs nothing while the senders stay: their ports are listed when
// the receiving end opens and again when a sender's notifier appears, goes or
// is found dead (the events evHello, evLeft and evDead that the receiver's
// event service sends its listener), never on the way of a message. A sender
// node is watched once, however many ports it has, until it is no longer
// listed or its process died.

// senders follows the processes of a receiving end's senders.
type senders struct {
	list func() ([]PortInfo, error) // the senders' ports now
	wake func()                     // makes the receiver look at its queue again

	mu      sync.Mutex
	watched nodeWatches       // sender nodes whose processes are watched
	dead    map[UniqueID]bool // ... and those whose processes died, while listed
	closed  bool
}

func newSenders(lib *ffi.Lib, list func() ([]PortInfo, error), every time.Duration, wake func()) *senders {
	return &senders{list: list, wake: wake, watched: newNodeWatches(lib, every), dead: map[UniqueID]bool{}}
}

// onIDs is a hub's view of the ids it drains: a sender came, left or was
// found dead, so the senders are listed again.
func (s *senders) onIDs(bits uint64) {
	if bits&(bit(evHello)|bit(evLeft)|bit(evDead)) != 0 {
		s.refresh()
	}
}

// refresh lists the senders, watches the nodes that are new and forgets
// those that are gone. A dead node stays listed until somebody cleans up
// after it; it is not watched again meanwhile.
func (s *senders) refresh() {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return
	}
	ports, err := s.list()
	if err != nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	listed := make(map[UniqueID]bool, len(ports))
	for _, p := range ports {
		node := p.Node
		listed[node] = true
		if !s.dead[node] {
			s.watched.add(node, func() { s.died(node) })
		}
	}
	s.watched.keep(listed)
	for node := range s.dead {
		if !listed[node] {
			delete(s.dead, node)
		}
	}
}

// died runs when a sender node's process is gone (on a goroutine of the
// watcher): the receiver looks at its queue again, where the last message of
// a sender killed between its claim and its notification waits.
func (s *senders) died(node UniqueID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	if s.watched.drop(node) {
		s.dead[node] = true
	}
	s.wake()
}

// close stops watching; the receiver is not woken any more.
func (s *senders) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	s.watched.stop()
	clear(s.dead)
}
