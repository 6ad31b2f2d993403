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
