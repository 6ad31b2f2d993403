package iox

import "runtime"

// handOver gives v to the program through out, the Go channel behind an In,
// unless stop closes first (false). The goroutines behind the In of Pair,
// Sub, Pull, Events and Responder deliver with it.
//
// When out held nothing, a receive may be parked on it: the send made that
// goroutine runnable on this goroutine's processor, where it would wait until
// this one blocks. The goroutine behind In does not block soon: it looks into
// shared memory again, spins or arms its wait, which costs several native
// calls (microseconds each), and the program's answer waits for all of them.
// So after such a send it yields, and the program runs first: in a round trip
// through In and Out, the answer goes out before the next look.
func handOver[T any](out chan<- T, v T, stop <-chan struct{}) bool {
	empty := len(out) == 0
	select {
	case out <- v:
	case <-stop:
		return false
	}
	if empty {
		runtime.Gosched()
	}
	return true
}

// tryHandOver is handOver that gives up at once when out has no room and no
// receiver waits (false).
func tryHandOver[T any](out chan<- T, v T) bool {
	empty := len(out) == 0
	select {
	case out <- v:
	default:
		return false
	}
	if empty {
		runtime.Gosched()
	}
	return true
}
