package iox

import (
	"sync"
	"time"

	"github.com/iox-go/iox/internal/ffi"
	"github.com/iox-go/iox/internal/liveness"
)

// Channels learn that a peer process died from a pidfd (Linux 5.3 and later)
// that the runtime poller waits on: the peer's pid and the time its node was
// created come from its iceoryx2 node id, the creation time guards against a
// later process that reuses the pid, and one watcher goroutine serves every
// channel of the process (none while nothing is watched). An idle channel thus
// runs no timer. Where no pidfd can be had (an old kernel, a seccomp filter) a
// channel falls back to looking every quarter of its peer timeout.
var processes = liveness.New()

// watchNode calls gone once when the process that created node id exits. It
// returns the function that stops watching.
func watchNode(lib *ffi.Lib, id UniqueID, every time.Duration, gone func()) (cancel func()) {
	pid, created, st := lib.NodeIDDetails(id.Lo, id.Hi)
	if st != ffi.OK {
		return func() {}
	}
	if cancel, ok := processes.Watch(pid, created, gone); ok {
		return cancel
	}
	return pollProcess(pid, created, every, gone)
}

// pollProcess is watchNode's fallback: a goroutine that looks every interval.
func pollProcess(pid int, created int64, every time.Duration, gone func()) (cancel func()) {
	stop := make(chan struct{})
	var once sync.Once
	go func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				if !liveness.Alive(pid, created) {
					gone()
					return
				}
			}
		}
	}()
	return func() { once.Do(func() { close(stop) }) }
}

// nodeWatches watches the processes of the nodes a channel lists (its
// subscribers, its senders), each node once however many ports it has; its
// owner's lock guards it.
type nodeWatches struct {
	lib   *ffi.Lib
	every time.Duration // how often to look where no pidfd can be had
	m     map[UniqueID]func()
}

func newNodeWatches(lib *ffi.Lib, every time.Duration) nodeWatches {
	return nodeWatches{lib: lib, every: every, m: map[UniqueID]func(){}}
}

// add watches node, unless it is watched already or is no node: gone runs
// once when its process has exited.
func (w *nodeWatches) add(node UniqueID, gone func()) {
	if _, ok := w.m[node]; ok || node == (UniqueID{}) {
		return
	}
	w.m[node] = watchNode(w.lib, node, w.every, gone)
}

// keep stops watching the nodes that are not listed and returns them.
func (w *nodeWatches) keep(listed map[UniqueID]bool) (left []UniqueID) {
	for node, cancel := range w.m {
		if !listed[node] {
			cancel()
			delete(w.m, node)
			left = append(left, node)
		}
	}
	return left
}

// drop forgets node (whose process exited) and reports whether it was watched.
func (w *nodeWatches) drop(node UniqueID) bool {
	_, ok := w.m[node]
	delete(w.m, node)
	return ok
}

// stop stops every watch.
func (w *nodeWatches) stop() {
	for _, cancel := range w.m {
		cancel()
	}
	clear(w.m)
}
