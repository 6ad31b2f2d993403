package iox

import (
	"context"
	"fmt"
	"os"
	"syscall"
	"time"

	"github.com/iox-go/iox/internal/ffi"
)

// NativePanics is how many panics the native library has caught since it was
// loaded (each was logged as one line and returned as ErrInternal).
func NativePanics() uint64 {
	lib, err := openLib("")
	if err != nil {
		return 0
	}
	return lib.PanicCount()
}

// SendNotify is the send of the channel adapters: msg with the user header hdr
// (may be empty) and, when it reached a subscriber, a notification of id on ntf,
// in one native call.
func (p *Publisher) SendNotify(msg, hdr []byte, ntf *Notifier, id EventID) (int, error) {
	return p.sendNotify(msg, hdr, ntf, id, nil)
}

// SendBatch sends the messages of lens, back to back in data, in one native call,
// to every subscriber.
func (p *Publisher) SendBatch(data []byte, lens []uint64) (int, error) {
	return p.sendBatch(data, lens, nil, ffi.AllSubscribers)
}

// TryWaitInto is TryWait appending to dst, so that a loop reuses one slice.
func (l *Listener) TryWaitInto(dst []EventID) ([]EventID, error) { return l.tryWaitInto(dst) }

// WaitInto is Wait appending to dst, so that a loop reuses one slice.
func (l *Listener) WaitInto(ctx context.Context, dst []EventID) ([]EventID, error) {
	return l.waitInto(ctx, nil, dst)
}

// WatchesContext reports whether the listener still watches the context of
// its last wait (to kick a later wait with it when it ends).
func (l *Listener) WatchesContext() bool {
	l.turn <- struct{}{}
	defer func() { <-l.turn }()
	return l.after != nil
}

// Resent is how many messages the pusher gave to another puller after the
// puller they were sent to left.
func (p *Push[T]) Resent() uint64 { return p.resent.Load() }

// Untaken maps the process id of each puller the pusher knows to how many
// messages it sent there that the puller has not taken yet.
func (p *Push[T]) Untaken() map[int]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.refresh()
	m := map[int]int{}
	for _, r := range p.order {
		p.sync(r)
		m[r.pid] += int(r.sent - r.taken)
	}
	return m
}

// QueueRuns is how often the pair's send queue had to start its goroutine:
// sends that went straight out do not count.
func (p *Pair[T]) QueueRuns() uint64 {
	p.tx.mu.Lock()
	defer p.tx.mu.Unlock()
	return p.tx.pumps
}

// LargestTake is how large a sample the pair's receiving side can take into
// its batch at once: it grows once larger packs arrive.
func (p *Pair[T]) LargestTake() int { return p.rx.largestTake() }

// LargestTake is Pair.LargestTake for a subscriber.
func (s *Sub[T]) LargestTake() int { return s.rx.largestTake() }

func (r *receiver[T]) largestTake() int {
	r.hold(context.Background())
	defer func() { <-r.sem }()
	return cap(r.small)
}

// Waiting reports what the puller's wait word tells pushers: that a receive
// call waits.
func (p *Pull[T]) Waiting() bool {
	p.wmu.RLock()
	defer p.wmu.RUnlock()
	return p.word != nil && p.word.Waiting()
}

// Samples is how many samples the pusher sent to the pullers it knows now.
func (p *Push[T]) Samples() uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := uint64(0)
	for _, r := range p.order {
		n += r.seq
	}
	return n
}

// Unread is how many samples this end sent that its peer has not taken yet,
// as the peer's wait word tells (ok false: it cannot tell).
func (p *Pair[T]) Unread() (n uint64, ok bool) {
	w := p.peerWord.Load()
	if w == nil {
		return 0, false
	}
	p.tx.mu.Lock()
	seq := p.tx.seq
	p.tx.mu.Unlock()
	tag, last, known := w.Last()
	if !known || tag != p.tx.tag {
		return 0, false
	}
	return seq - min(last, seq), true
}

// SpinCounts reports how many looks of the subscriber's spins found nothing,
// and after how many of them it yielded its processor.
func (s *Sub[T]) SpinCounts() (looks, yields uint64) {
	return s.spinStats.looks.Load(), s.spinStats.yields.Load()
}

// AfterLoanRoom makes f run each time SendLoan has looked at the subscribers'
// room, with what it found, before the loan goes out (set before the first
// SendLoan).
func (p *Pub[T]) AfterLoanRoom(f func(room, known bool)) {
	room := p.tx.loanRoom
	p.tx.loanRoom = func(tag, seq, copies uint64) (bool, bool) {
		r, k := room(tag, seq, copies)
		f(r, k)
		return r, k
	}
}

// Taken is how many messages the subscriber took out of shared memory.
func (s *Sub[T]) Taken() uint64 { return s.rx.got.Load() }

// MakeWaitWord makes the wait word of a plain subscriber, as an iox Sub makes
// its own after its port is listed; the returned func closes it.
func MakeWaitWord(node *Node, sub *Subscriber, buffer int) (closeWord func(), ok bool) {
	w := newWaitWord(node, sub, buffer)
	if w == nil {
		return nil, false
	}
	return w.Close, true
}

// Words is how many subscribers' wait words the publisher holds.
// RoomWaits counts the publisher's waits for room: those that returned at
// once for subscriber news that came since the send that found no room, and
// those that waited in the hub.
func (p *Pub[T]) RoomWaits() (rushed, waited uint64) { return p.rushed.Load(), p.waited.Load() }

// ByeSent reports whether the publisher's Close sent its bye.
func (p *Pub[T]) ByeSent() bool { return p.byeOut.Load() }

// AckService is the name of the event service on which the subscribers
// confirm the publisher's bye.
func (p *Pub[T]) AckService() string { return fmt.Sprintf("%s%s%016x", p.name, ackSuffix, p.tx.tag) }

// Known is how many subscribers the publisher's last look at them found (the
// look that reports them on Peers).
func (p *Pub[T]) Known() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.known)
}

func (p *Pub[T]) Words() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.words)
}

// RescanGap is how long the publisher waits before it looks again for the
// words of subscribers that had none.
func (p *Pub[T]) RescanGap() time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.rescanGap
}

// BeforeListing makes f run each time the client begins a listing of the
// servers, before it lists them (set before the first call).
func (c *Caller[Req, Resp]) BeforeListing(f func()) { c.beforeListing = f }

// BeforeCrashCleanup makes f run each time the client has counted the crash
// of a server's process, before it removes the dead server's port (set
// before the first call).
func (c *Caller[Req, Resp]) BeforeCrashCleanup(f func()) { c.beforeCrashCleanup = f }

// AtServerExit makes f run first each time the process of a server node the
// client watches is gone (set before the first call).
func (c *Caller[Req, Resp]) AtServerExit(f func()) { c.atServerExit = f }

// SpinCounts reports how many looks of the puller's spins found nothing, and
// after how many of them it yielded its processor.
func (p *Pull[T]) SpinCounts() (looks, yields uint64) {
	return p.spins.looks.Load(), p.spins.yields.Load()
}

// WatchedServers is how many server nodes the client watches.
func (c *Caller[Req, Resp]) WatchedServers() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.watched)
}

// ServerRecords is how many server nodes of the service name the clients of
// this process keep a record of (to tell one that crashed).
func ServerRecords(name string) int {
	crashedServers.mu.Lock()
	defer crashedServers.mu.Unlock()
	if s := crashedServers.services[name]; s != nil {
		return len(s.nodes)
	}
	return 0
}

// DieAfterClaim makes this process kill itself (SIGKILL) the first time one
// of its senders claims a parked receiver's mark, before it notifies the
// receiver. Call it before opening any channel.
func DieAfterClaim() {
	afterClaim = func() { syscall.Kill(os.Getpid(), syscall.SIGKILL) }
}

// Parked reports whether the subscriber's wait word says that it parks.
func (s *Sub[T]) Parked() bool { return s.word != nil && s.word.Parked() }

// Parked reports whether the puller's wait word says that it parks.
func (p *Pull[T]) Parked() bool {
	p.wmu.RLock()
	defer p.wmu.RUnlock()
	return p.word != nil && p.word.Parked()
}

// Parked reports whether the pair end's wait word says that it parks.
func (p *Pair[T]) Parked() bool { return p.word != nil && p.word.Parked() }

// HasPeerWord reports whether this end knows its peer's wait word (then it
// notifies the peer only when it parks).
func (p *Pair[T]) HasPeerWord() bool { return p.peerWord.Load() != nil }

// Words is how many pullers' wait words the pusher holds.
func (p *Push[T]) Words() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, r := range p.order {
		if r.word != nil {
			n++
		}
	}
	return n
}

// Senders reports how many sender nodes the subscriber watches, and how many
// of those died and are still listed.
func (s *Sub[T]) Senders() (watched, dead int) { return s.senders.counts() }

// Senders reports how many pusher nodes the puller watches, and how many of
// those died and are still listed.
func (p *Pull[T]) Senders() (watched, dead int) { return p.senders.counts() }

func (s *senders) counts() (watched, dead int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.watched.m), len(s.dead)
}

// SetPushBeforeQueue makes f run in every Push.Send after the send found the
// pusher open and before it hands the message on (nil: nothing). Set it
// before opening the pusher; clear it after closing it.
func SetPushBeforeQueue(f func()) { pushBeforeQueue = f }

// SetPullBeforeHandOver makes f run in every receive of a Pull after it took
// a message and before it counts it as handed over (nil: nothing). Set it
// before opening the puller; clear it after closing it.
func SetPullBeforeHandOver(f func()) { pullBeforeHandOver = f }

// TallyMarked reports whether the pusher marked a puller's tally: it waits
// to hear from that puller.
func (p *Push[T]) TallyMarked() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, r := range p.order {
		if r.parked {
			return true
		}
	}
	return false
}

// HandOver is the hand-over of the goroutines behind In, for int values.
func HandOver(out chan<- int, v int, stop <-chan struct{}) bool { return handOver(out, v, stop) }
