package iox

import (
	"context"
	"sync"
	"time"
)

// hub shares one Listener among the goroutines of a channel that wait for
// different event ids (a receiver for data, a sender for room, Close for an
// acknowledgement). One of them at a time waits in the runtime poller; it
// records the ids it drained and wakes the others, so whoever the poller wakes
// is the goroutine that goes on, and a lone receiver pays exactly one wake-up.
type hub struct {
	lis     *Listener
	onIDs   func(bits uint64) // sees every drained batch, on the polling goroutine
	mu      sync.Mutex
	pending uint64 // ids drained and not yet taken, as bits
	polling bool
	polled  time.Duration // when the last poll ended (nanotime)
	waiters []chan struct{}
	ids     []EventID // the poller's scratch
}

// bit is id's bit in a mask; ids beyond 63 share the last bit.
func bit(id EventID) uint64 { return 1 << min(uint64(id), 63) }

func newHub(lis *Listener, onIDs func(uint64)) *hub { return &hub{lis: lis, onIDs: onIDs} }

// wait returns the pending ids of mask, waiting until one of them is signalled,
// ctx ends (its error), done is closed (errDone), or the listener is closed.
// The wait channel w (capacity 1) is the caller's own, reused across calls.
func (h *hub) wait(ctx context.Context, done <-chan struct{}, mask uint64, w chan struct{}) (uint64, error) {
	for {
		h.mu.Lock()
		if got := h.pending & mask; got != 0 {
			h.pending &^= got
			h.mu.Unlock()
			return got, nil
		}
		if isDone(done) {
			h.mu.Unlock()
			return 0, errDone
		}
		if !h.polling {
			h.polling = true
			h.mu.Unlock()
			if err := h.poll(ctx, done); err != nil {
				return 0, err
			}
			continue
		}
		h.waiters = append(h.waiters, w)
		h.mu.Unlock()
		select {
		case <-w:
		case <-done:
			h.leave(w)
			return 0, errDone
		case <-ctx.Done():
			h.leave(w)
			return 0, ctx.Err()
		}
	}
}

// pendingOf returns and clears the ids of mask that were drained already, without
// waiting.
func (h *hub) pendingOf(mask uint64) uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	got := h.pending & mask
	h.pending &^= got
	return got
}

// poll waits in the poller once, records what it drained and wakes the other
// waiters, one of which then polls in turn.
func (h *hub) poll(ctx context.Context, done <-chan struct{}) error {
	ids, err := h.lis.waitInto(ctx, done, h.ids[:0])
	h.record(ids)
	return err
}

// drainNow drains what the listener holds without waiting, when nobody polls
// (the poller would see it) and the last poll ended drainEvery ago or more:
// the news of a receiver that never parks here (TryRecv), such as a sender
// that waits for room. It returns the ids drained, as bits, which stay
// pending as poll's do.
func (h *hub) drainNow() uint64 {
	h.mu.Lock()
	if h.polling || nanotime()-h.polled < drainEvery {
		h.mu.Unlock()
		return 0
	}
	h.polling = true
	h.mu.Unlock()
	ids, _ := h.lis.tryWaitInto(h.ids[:0]) // a closed listener: the channel's end says so
	return h.record(ids)
}

// drainEvery bounds how often drainNow drains the listener: a sender that
// waits for room hears of it about that soon from a receiver that only tries,
// and a loop of tries that find nothing costs few system calls.
const drainEvery = time.Millisecond

// record hands what a poll drained to onIDs and the waiters, and ends the
// poll; it returns the ids as bits.
func (h *hub) record(ids []EventID) uint64 {
	h.ids = ids[:0]
	var bits uint64
	for _, id := range ids {
		bits |= bit(id)
	}
	if bits != 0 && h.onIDs != nil {
		h.onIDs(bits)
	}
	h.mu.Lock()
	h.polling, h.polled = false, nanotime()
	h.pending |= bits
	for _, c := range h.waiters {
		wake(c)
	}
	h.waiters = h.waiters[:0]
	h.mu.Unlock()
	return bits
}

// leave withdraws w, and passes a wake-up it may have received on to another
// waiter so that someone polls.
func (h *hub) leave(w chan struct{}) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for i, c := range h.waiters {
		if c == w {
			h.waiters = append(h.waiters[:i], h.waiters[i+1:]...)
			return
		}
	}
	select {
	case <-w: // woken meanwhile: let another waiter poll instead
		if len(h.waiters) > 0 && !h.polling {
			wake(h.waiters[0])
			h.waiters = h.waiters[1:]
		}
	default:
	}
}

// post records ids as if the listener had delivered them, and wakes whoever
// waits for them: news that comes without an event (a sender's process died
// after it claimed the receiver's mark and before it notified).
func (h *hub) post(bits uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.pending |= bits
	if h.polling {
		h.lis.interrupt() // the poller wakes the others when it returns
	}
}

// kick makes the polling goroutine look at its context and done channel again;
// call it after ending one of them.
func (h *hub) kick() { h.lis.kick() }

// wake signals c without blocking; signals coalesce.
func wake(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

func newSignal() chan struct{} { return make(chan struct{}, 1) }
