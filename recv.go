package iox

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/iox-go/iox/internal/ffi"
)

// receiver takes messages out of a Subscriber on the goroutine that asks for
// them (Recv, or the goroutine behind In): it polls shared memory while spinning
// pays, and otherwise waits on the channel's listener itself, so the goroutine
// the poller wakes is the one that hands the message over.
type receiver[T any] struct {
	name     string
	sub      *Subscriber
	hub      *hub
	life     *life
	codec    Codec[T]
	raw      bool // []byte messages
	framed   bool // samples carry iox headers
	max      int
	spin     spinner
	every    time.Duration // look again after this long without an event (0: never)
	sem      chan struct{} // one receiving goroutine at a time
	w        chan struct{} // its hub wait channel
	mask     uint64        // the ids that may mean "look again"
	batch    *Batch
	small    []byte
	queue    []rxItem[T]
	head     int
	seq      seqCheck
	spare    *spares                       // buffers handed back with Recycle
	got      atomic.Uint64                 // messages confirmed to the peer (see confirmed)
	frozen   atomic.Bool                   // this end closed: got counts no more
	acked    atomic.Uint64                 // the most messages a peer said it had taken from us (its headers' got)
	busy     atomic.Int64                  // when a receiving goroutine last came or went (nanotime)
	yield    atomic.Pointer[chan struct{}] // closed to make the keeper step aside
	waiting  atomic.Int32                  // receiving goroutines waiting for sem
	onBye    func(h header)                // a port said bye (called while receiving)
	onTake   func(k int)                   // after every look into shared memory, which took k samples
	from     func(tag uint64) bool         // whether a framed sample of the port tag is for this end (nil: every one is)
	freed    int                           // samples taken since a waiting sender was last told of room
	lastSize int                           // the size of the last sample taken
	onDrop   func(error)
	drops    atomic.Uint64
	ww       *ffi.WaitWord // this end's wait word (see waitword.go); nil: senders notify every time
	released chan struct{} // a View was released: a borrow slot is free again

	pollTake, pollBorrow func() bool
}

type rxItem[T any] struct {
	v    T
	err  error
	view *View  // a message in place (RecvView)
	raw  []byte // a []byte message still in the batch's buffer: copied out when popped
}

func newReceiver[T any](name string, sub *Subscriber, h *hub, l *life, codec Codec[T], cfg chanConfig, framed, dedup bool) *receiver[T] {
	r := &receiver[T]{name: name, sub: sub, hub: h, life: l, codec: codec, framed: framed, max: cfg.maxMessage,
		spin: newSpinner(cfg.spin), sem: make(chan struct{}, 1), w: newSignal(), mask: bit(evData) | bit(evFull),
		batch: NewBatch(packStart*2, 64), spare: newSpares(cfg), onDrop: cfg.onDrop, released: newSignal()}
	r.small = r.batch.buf
	r.pollTake = func() bool { return r.poll(false) }
	r.pollBorrow = func() bool { return r.poll(true) }
	r.batch.limit = max(cfg.maxMessage, 1) // MaxMessageSize(0): decode drops what does not fit
	r.batch.grow = r.grow
	_, r.raw = any(codec).(Raw)
	r.seq.dedup = dedup
	if framed {
		r.batch.withHeaders(headerSize)
		r.batch.limit = max(r.batch.limit, packLimit)
	}
	return r
}

// recv returns the next message. Once the channel has ended it returns what is
// still on its way from a peer that closed or crashed, then the reason; after
// this end closed it returns the reason at once. A message it had to drop comes
// back as its error, and the next call goes on.
func (r *receiver[T]) recv(ctx context.Context) (T, error) {
	it, err := r.next(ctx, false)
	if err != nil {
		return it.v, err
	}
	return it.v, it.err
}

// waitTurn waits for the receiving side's turn (sem) that another holds: the
// keeper steps aside at once, a receiver when it is done. The end is no reason
// to stop waiting, unless this end ended the channel: after a peer's bye or
// crash what the holder of sem took is still to be delivered.
func (r *receiver[T]) waitTurn(ctx context.Context) error {
	if err := r.life.closedHere(); err != nil {
		return err // its turn is not given back (and a select would pick at random)
	}
	r.busy.Store(int64(nanotime()))
	return r.queueForTurn(ctx, r.life.closing())
}

// queueForTurn waits for sem, which another holds, once the keeper was asked
// to step aside, until ctx ends or closing (nil: never) is closed.
func (r *receiver[T]) queueForTurn(ctx context.Context, closing <-chan struct{}) error {
	r.waiting.Add(1) // before stepAside: the keeper looks at it after taking sem
	defer r.waiting.Add(-1)
	r.stepAside()
	select {
	case r.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-closing:
		return r.life.closedHere()
	}
}

// tryRecv is recv that never waits for a message: ok is false when none has
// arrived (in shared memory or in the queue). It waits only for the receiving
// side's turn, which a receiver that waits for a message holds (Recv, In),
// until ctx ends; the keeper steps aside for it as for Recv (unless ctx has
// ended already), so what the keeper took while nobody received comes out
// here.
func (r *receiver[T]) tryRecv(ctx context.Context) (v T, ok bool, err error) {
	if ctx == nil {
		return v, false, nilArg("receive", r.name, "ctx")
	}
	select {
	case r.sem <- struct{}{}:
	default:
		if err := r.waitTurn(ctx); err != nil {
			return v, false, err
		}
	}
	defer func() { r.busy.Store(int64(nanotime())) }() // after the turn is given back
	defer func() { <-r.sem }()
	if err := r.life.closedHere(); err != nil {
		return v, false, err // after this end closed, what is queued is dropped
	}
	// A look may take only samples that carry no message (a bye, a copy
	// already taken): then it looks again. When nothing waits, the news that
	// only the listener brings is taken without waiting (see drainNow), since
	// a receiver that only tries never parks there: a sender that waits for
	// room is told of it by the look after that (see roomDue), and data that
	// came meanwhile is taken.
	drained := false
	for r.head == len(r.queue) {
		k, err := r.look(false)
		if err != nil {
			if e := r.life.err(); e != nil {
				return v, false, e
			}
			return v, false, err
		}
		if k == 0 {
			if drained || r.hub.drainNow() == 0 {
				break
			}
			drained = true
		}
	}
	if r.head < len(r.queue) {
		it := r.pop()
		return it.v, it.err == nil, it.err
	}
	return v, false, r.life.err()
}

// recvView is recv that leaves a plain message in shared memory: the View
// holds it until released. A message that was copied already (packed with
// others, or taken while nobody received) comes as a View of its copy.
func (r *receiver[T]) recvView(ctx context.Context) (*View, error) {
	it, err := r.next(ctx, true)
	switch {
	case err != nil:
		return nil, err
	case it.err != nil:
		return nil, it.err
	case it.view != nil:
		return it.view, nil
	}
	if b, ok := any(it.v).([]byte); ok {
		return &View{data: b}, nil
	}
	b, err := appendSafe(r.codec, nil, it.v)
	if err != nil {
		return nil, &Error{Op: "receive", Name: r.name, Kind: ErrInvalidArgument, Detail: err.Error()}
	}
	return &View{data: b}, nil
}

// next is recv telling a dropped message (it.err) from the end (err); with
// view, it takes a message in place when it takes one from shared memory.
func (r *receiver[T]) next(ctx context.Context, view bool) (rxItem[T], error) {
	if ctx == nil {
		return rxItem[T]{}, nilArg("receive", r.name, "ctx")
	}
	var zero rxItem[T]
	select {
	case r.sem <- struct{}{}:
		// What an earlier look queued goes out without touching shared
		// memory or the clock: a packed sample yields many messages.
		if r.head < len(r.queue) && r.life.closedHere() == nil {
			it := r.pop()
			<-r.sem
			return it, nil
		}
		r.busy.Store(int64(nanotime()))
	default:
		if err := r.waitTurn(ctx); err != nil {
			return zero, err
		}
	}
	defer func() { r.busy.Store(int64(nanotime())) }() // after the turn is given back
	defer func() { <-r.sem }()
	for {
		if err := r.life.closedHere(); err != nil {
			return zero, err // after this end closed, what is queued is dropped
		}
		if r.head < len(r.queue) {
			return r.pop(), nil
		}
		k, err := r.look(view)
		if err != nil {
			if e := r.life.err(); e != nil {
				return zero, e
			}
			return zero, err
		}
		if k > 0 || r.head < len(r.queue) {
			continue
		}
		if err := r.life.err(); err != nil {
			return zero, err
		}
		poll := r.pollTake
		if view {
			poll = r.pollBorrow
		}
		if r.spin.spin(poll, r.life.Done(), ctx.Done()) {
			continue
		}
		if r.arm(view) {
			continue
		}
		if r.every > 0 {
			wctx, cancel := context.WithTimeout(ctx, r.every)
			_, err = r.hub.wait(wctx, r.life.Done(), r.mask, r.w)
			cancel()
			if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
				err = nil
			}
		} else {
			_, err = r.hub.wait(ctx, r.life.Done(), r.mask, r.w)
		}
		r.disarm()
		r.spin.parked()
		if err != nil && !errors.Is(err, errDone) {
			if e := r.life.err(); e != nil && errors.Is(err, ErrClosed) {
				return zero, e
			}
			return zero, err
		}
	}
}

// arm marks the wait word before the receiver parks and looks once more (in
// place for a View); it reports whether that found something (then the mark
// is cleared again and the receiver does not park). Without a word it reports
// false.
func (r *receiver[T]) arm(view bool) bool {
	if r.ww == nil {
		return false
	}
	r.ww.Park()
	if k, err := r.look(view); err != nil || k > 0 {
		r.ww.Unpark()
		return true
	}
	return false
}

// disarm clears the mark after a wait.
func (r *receiver[T]) disarm() {
	if r.ww != nil {
		r.ww.Unpark()
	}
}

// roomDue reports, for a sender that waits for room, whether to tell it now:
// once this receiver took half its buffer since it last did, or when it found
// shared memory empty (k == 0). Telling it of every single sample would make
// a sender and a receiver that takes one sample at a time (views) trade an
// event per message. Called on the receiving goroutine.
//
// A sender of large messages keeps only largeWindow of them in flight: it is
// told once half of those were taken.
func (r *receiver[T]) roomDue(k, buffer int) bool {
	r.freed += k
	due := max(buffer/2, 1)
	if r.lastSize >= directFrom {
		due = min(due, max(int(largeWindow(r.lastSize))/2, 1))
	}
	if k == 0 || r.freed >= due {
		r.freed = 0
		return true
	}
	return false
}

// dropWord closes the wait word once nobody receives any more.
func (r *receiver[T]) dropWord() {
	r.hold(context.Background())
	if r.ww != nil {
		r.ww.Close()
		r.ww = nil
	}
	<-r.sem
}

// poll looks into shared memory once while spinning (in place for a View);
// pollTake and pollBorrow are its two forms, made once.
func (r *receiver[T]) poll(view bool) bool {
	k, err := r.look(view)
	return err != nil || k > 0 || r.head < len(r.queue)
}

// look looks into shared memory once: it takes what waits (take), or for a
// View the next sample in place (borrow).
func (r *receiver[T]) look(view bool) (int, error) {
	if view {
		return r.borrow()
	}
	return r.take()
}

func (r *receiver[T]) pop() rxItem[T] {
	it := r.queue[r.head]
	if it.raw != nil {
		it.v, it.raw = r.copyOut(it.raw), nil
	}
	r.queue[r.head] = rxItem[T]{}
	r.head++
	if r.head == len(r.queue) {
		r.queue, r.head = r.queue[:0], 0
	}
	return it
}

// copyOut copies a []byte message out of the batch's buffer into a buffer of
// its own (a recycled one when there is one).
func (r *receiver[T]) copyOut(m []byte) T {
	buf := r.buffer(len(m))
	copy(buf, m)
	return any(buf).(T)
}

// settle copies the queued messages that are still in the batch's buffer out
// of it, before the buffer takes the next batch.
func (r *receiver[T]) settle() {
	for i := r.head; i < len(r.queue); i++ {
		if it := &r.queue[i]; it.raw != nil {
			it.v, it.raw = r.copyOut(it.raw), nil
		}
	}
}

// take moves the samples waiting in shared memory (up to one batch) into the
// queue and returns how many samples it took. A []byte message stays in the
// batch's buffer until it is popped, so that a stream of small messages
// unpacks into one buffer of its own at a time, not a batch of them.
func (r *receiver[T]) take() (int, error) {
	r.settle()
	k, err := r.sub.ReceiveBatch(r.batch)
	if err != nil {
		if !errors.Is(err, ErrMessageTooLarge) {
			return 0, err
		}
		if r.framed { // the dropped sample still counts in its port's sequence
			h := readHeader(r.batch.header(0))
			if !r.foreign(h) {
				if fresh, bad := r.seq.check(h.tag, h.seq); fresh && bad == nil {
					r.dropTaken(err)
				} else {
					r.drop(err)
				}
			}
		} else {
			r.drop(err)
		}
		k = 1
	}
	// Senders learn the receiver's room here, and a sender whose bye this
	// batch holds finds it here when the acknowledgement comes (unpack sends
	// it).
	if r.ww != nil && r.framed && r.batch.Len() > 0 {
		h := readHeader(r.batch.header(r.batch.Len() - 1))
		r.ww.SetLast(h.tag, h.seq)
	}
	for i := 0; i < r.batch.Len(); i++ {
		r.unpack(i)
	}
	if n := r.batch.Len(); n > 0 {
		r.lastSize = len(r.batch.Message(n - 1))
	}
	if cap(r.batch.buf) != cap(r.small) {
		r.batch.buf = r.small // the large message's own buffer now belongs to it
	}
	if r.onTake != nil {
		r.onTake(k)
	}
	return k, nil
}

// unpack queues the messages of sample i of the batch.
func (r *receiver[T]) unpack(i int) {
	var h header
	if r.framed {
		h = readHeader(r.batch.header(i))
	}
	msg := r.batch.Message(i)
	if r.admit(h) && !r.unpackPacked(msg, h) {
		if r.raw && cap(r.batch.buf) != cap(r.small) {
			// ReceiveBatch gave this large message a buffer of its own (it is
			// alone in it): hand it over instead of copying it again
			r.deliver(any(msg).(T))
			return
		}
		r.decode(msg)
	}
}

// admit checks a sample's iox header (on framed services): its sender, its
// sequence, the peer's confirmation count, and its kind. It reports whether
// the sample carries messages; a bye is handled here, a sample that is not
// for this end is dropped unseen, and one that breaks the format is dropped
// (and reported).
func (r *receiver[T]) admit(h header) bool {
	if !r.framed {
		return true
	}
	if r.foreign(h) {
		return false
	}
	fresh, err := r.seq.check(h.tag, h.seq)
	if err != nil {
		detail := err.Error()
		if !fresh {
			detail += "; the sample was dropped"
		}
		r.drop(&Error{Op: "receive", Name: r.name, Kind: ErrProtocol, Detail: detail})
	}
	if !fresh {
		return false
	}
	for a := r.acked.Load(); h.got > a && !r.acked.CompareAndSwap(a, h.got); a = r.acked.Load() {
	}
	switch h.kind {
	case kindData:
		return true
	case kindBye:
		r.seq.forget(h.tag)
		if r.onBye != nil {
			r.onBye(h)
		}
	default:
		r.drop(&Error{Op: "receive", Name: r.name, Kind: ErrProtocol, Detail: fmt.Sprintf("sample of unknown kind %d dropped", h.kind)})
	}
	return false
}

// foreign reports whether a sample comes from a port whose samples are not
// for this end (a pair's end that another end paired with): it is dropped
// unseen, and counts in nothing.
func (r *receiver[T]) foreign(h header) bool { return r.from != nil && !r.from(h.tag) }

// unpackPacked queues the messages of a packed sample (h.count of them),
// copying each; it reports false for a plain one, which the caller delivers.
func (r *receiver[T]) unpackPacked(msg []byte, h header) bool {
	count := h.count
	if count == 0 {
		return false
	}
	for ; count > 0; count-- {
		m, rest, err := nextFrame(msg)
		if err != nil {
			r.drop(&Error{Op: "receive", Name: r.name, Kind: ErrProtocol,
				Detail: fmt.Sprintf("malformed packed sample: %v; its last %d messages were dropped", err, count)})
			return true
		}
		r.decode(m)
		msg = rest
	}
	return true
}

// borrow takes the next sample in place, for a View: a plain message stays in
// shared memory (queued as a view, which holds the sample until released);
// anything else is handled as take does and the sample released at once. It
// returns how many samples it took (0 or 1).
func (r *receiver[T]) borrow() (int, error) {
	smp, ok, err := r.sub.Borrow()
	if err != nil {
		return 0, err
	}
	if !ok {
		if r.onTake != nil {
			r.onTake(0)
		}
		return 0, nil
	}
	var h header
	if r.framed {
		h = readHeader(smp.header(headerSize))
		if r.ww != nil {
			r.ww.SetLast(h.tag, h.seq)
		}
	}
	data := smp.Bytes()
	r.lastSize = len(data)
	kept := false
	switch {
	case !r.admit(h) || r.unpackPacked(data, h):
	case len(data) > r.max:
		r.decode(data) // reported as too large, not copied
	case !r.frozen.Load():
		r.queue = append(r.queue, rxItem[T]{view: &View{smp: smp, data: data, done: r.released}})
		r.got.Add(1)
		kept = true
	}
	if !kept {
		r.settle() // packed messages are copied out before the sample goes back
		smp.Release()
	}
	if r.onTake != nil {
		r.onTake(1)
	}
	return 1, nil
}

func (r *receiver[T]) deliver(v T) {
	if r.frozen.Load() { // this end closed: nobody reads it
		return
	}
	r.queue = append(r.queue, rxItem[T]{v: v})
	r.got.Add(1)
}

// confirmed is how many messages this end confirms to its peer: those it took
// out of shared memory while it was open, which its application read or could
// have read. Once it closes (freeze) the count is final: what it takes while
// closing is dropped and not confirmed.
func (r *receiver[T]) confirmed() uint64 { return r.got.Load() }

// freeze makes the count final when this end closes (after its life ended
// here, so that no Recv takes anything more for the application) and drops
// what is queued. From then on the receiving side takes and drops what
// arrives, so that a peer closing at the same time gets its bye through.
func (r *receiver[T]) freeze() {
	r.hold(context.Background())
	r.dropQueue()
	r.frozen.Store(true)
	<-r.sem
}

// dropQueue drops what is queued (held under sem), releasing the samples of
// views nobody got.
func (r *receiver[T]) dropQueue() {
	for _, it := range r.queue[r.head:] {
		if it.view != nil {
			it.view.Release()
		}
	}
	clear(r.queue)
	r.queue, r.head = r.queue[:0], 0
}

func (r *receiver[T]) decode(m []byte) {
	if len(m) > r.max {
		r.dropTaken(&Error{Op: "receive", Name: r.name, Kind: ErrMessageTooLarge,
			Detail: fmt.Sprintf("a message of %d bytes arrived, at most %d accepted; it was dropped", len(m), r.max)})
		return
	}
	if r.raw {
		if !r.frozen.Load() {
			r.queue = append(r.queue, rxItem[T]{raw: m})
			r.got.Add(1)
		}
		return
	}
	v, err := decodeSafe(r.codec, m)
	if err != nil {
		r.dropTaken(&Error{Op: "decode", Name: r.name, Kind: ErrInvalidArgument, Detail: err.Error() + "; the message was dropped"})
		return
	}
	r.deliver(v)
}

// grow returns the buffer for a sample larger than the batch's: for a packed
// sample the batch's own buffer, grown to hold two of the largest packs (a
// stream of larger messages packs them larger, and goes on doing so), for
// any other a buffer of its own, handed over with the message. Nothing
// queued refers to the batch's buffer here: take settled it first.
func (r *receiver[T]) grow(n int) []byte {
	if r.framed && n <= packLimit && readHeader(r.batch.header(0)).count > 0 {
		r.small = make([]byte, packLimit*2)
		return r.small
	}
	return r.buffer(n)
}

// buffer returns a buffer of n bytes for a []byte message: one the reader handed
// back with Recycle when one is large enough, a new one otherwise.
func (r *receiver[T]) buffer(n int) []byte {
	if b := r.spare.get(n); b != nil {
		return b
	}
	return make([]byte, n)
}

// drop reports a message that could not be delivered: Recv returns err in its
// place, and the goroutine behind In hands it to OnDrop.
func (r *receiver[T]) drop(err error) {
	r.drops.Add(1)
	r.queue = append(r.queue, rxItem[T]{err: err})
}

// dropTaken is drop for a message of the peer's own stream that this end
// took while open and reported in its place (too large, undecodable): it
// counts as taken, as what Recv returned in its place tells the
// application of it, so a Close confirms it whichever end closes first.
func (r *receiver[T]) dropTaken(err error) {
	r.drop(err)
	if !r.frozen.Load() {
		r.got.Add(1)
	}
}

// newSpares makes the free list of WithRecycling (nil without it).
// spares are the receive buffers a reader handed back with Recycle, used last
// in first out: the buffer handed back last is the one most likely still in
// the processor's cache.
type spares struct {
	mu    sync.Mutex
	free  [][]byte
	held  map[*byte]struct{} // where the buffers in free begin: one handed back twice is kept once
	limit int                // buffers kept
	keep  int                // of which larger than spareSmall
	large int                // kept now larger than spareSmall
}

// spareSmall is the largest buffer that the default keeps beyond its 8: a
// stream of small messages has many in flight at once (a packed sample
// unpacks into up to packMessages of them), large ones come one at a time.
const (
	spareSmall = 64 << 10
	spareMax   = 1024
)

func newSpares(cfg chanConfig) *spares {
	if cfg.recycle <= 0 {
		return nil
	}
	n := cfg.recycle
	if !cfg.recycleSet {
		n = max(n, min(cfg.chanCap+packMessages, spareMax))
	}
	return &spares{limit: n, keep: cfg.recycle, held: make(map[*byte]struct{})}
}

// recycle gives b back to a free list without blocking.
func recycle(s *spares, b []byte) {
	if s == nil || cap(b) == 0 {
		return
	}
	large := cap(b) > spareSmall
	at := unsafe.SliceData(b)
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.free) >= s.limit || large && s.large >= s.keep {
		return
	}
	if _, twice := s.held[at]; twice { // two messages would share it
		return
	}
	if large {
		s.large++
	}
	s.held[at] = struct{}{}
	s.free = append(s.free, b[:0])
}

// get returns the buffer handed back last, with length n, when it holds n
// bytes (nil otherwise: a smaller one is dropped, as the message sizes
// changed).
func (s *spares) get(n int) []byte {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	k := len(s.free)
	if k == 0 {
		return nil
	}
	b := s.free[k-1]
	s.free[k-1] = nil
	s.free = s.free[:k-1]
	delete(s.held, unsafe.SliceData(b))
	if cap(b) > spareSmall {
		s.large--
	}
	if cap(b) < n {
		return nil
	}
	return b[:n]
}

// keepAfter is how long a channel's receiving side must have been idle before
// its keeper takes over.
const (
	keepAfter   = 2 * time.Millisecond
	keepMaxLook = 100 * time.Millisecond
)

// keep is the goroutine that looks after the receiving side while nobody
// receives: it takes what arrives into the queue (up to room items), so that a
// peer's bye is seen (Done closes, Err says so, and the peer's Close gets its
// confirmation), a waiting sender learns about room, and a peer that arrived is
// watched. It waits in the poller, with no timer while idle, and steps aside
// for Recv at once; it takes over only after receivers were idle for
// keepAfter, so that a busy receiving loop never meets it.
func (r *receiver[T]) keep(torn <-chan struct{}, room int) {
	t := time.NewTimer(time.Hour)
	t.Stop()
	defer t.Stop()
	w := newSignal()
	for {
		// While receivers stay busy, look less and less often (up to every
		// keepMaxLook), so that a long exchange costs the keeper few wake-ups.
		look := keepAfter
		for {
			idle := nanotime() - time.Duration(r.busy.Load())
			if idle >= keepAfter {
				break
			}
			t.Reset(max(keepAfter-idle, look))
			look = min(2*look, keepMaxLook)
			select {
			case <-t.C:
			case <-torn:
				return
			}
		}
		yield := make(chan struct{})
		r.yield.Store(&yield)
		select {
		case r.sem <- struct{}{}:
		case <-yield:
			continue
		case <-torn:
			return
		}
		if isDone(torn) { // Close began after yield was published: it may have missed it
			<-r.sem
			return
		}
		for r.waiting.Load() == 0 && nanotime()-time.Duration(r.busy.Load()) >= keepAfter {
			if r.within(room) {
				if _, err := r.take(); err != nil {
					if errors.Is(err, ErrTooManyLoans) { // views hold every borrow slot
						select {
						case <-r.released:
							continue
						case <-yield:
						}
					}
					break
				}
				if r.within(room) && r.arm(false) {
					continue
				}
			}
			_, err := r.hub.wait(context.Background(), yield, r.mask, w)
			r.disarm()
			if err != nil {
				break
			}
		}
		r.batch.most = 0 // the receivers take as much as they find
		r.yield.CompareAndSwap(&yield, nil)
		<-r.sem
		if isDone(torn) {
			return
		}
	}
}

// hold takes the receiving side for a goroutine that is not a receiver (Close
// confirming or looking for a bye): the keeper steps aside at once, as for
// Recv. It reports false, holding nothing, when ctx ended first. Release with
// <-r.sem.
func (r *receiver[T]) hold(ctx context.Context) bool {
	r.busy.Store(int64(nanotime()))
	select {
	case r.sem <- struct{}{}:
		return true
	default:
	}
	return r.queueForTurn(ctx, nil) == nil
}

// stepAside makes the keeper give up the receiving side.
func (r *receiver[T]) stepAside() {
	if y := r.yield.Swap(nil); y != nil {
		close(*y)
		r.hub.kick()
	}
}

// feed is the goroutine behind In: it receives until the channel ends, then
// closes out. Messages that had to be dropped go to OnDrop.
// It stops early when torn is closed (the channel is being torn down).
func (r *receiver[T]) feed(out chan<- T, torn <-chan struct{}) {
	defer close(out)
	for {
		it, err := r.next(context.Background(), false)
		if err != nil {
			return
		}
		if it.err != nil {
			if r.onDrop != nil {
				r.onDrop(it.err)
			}
			continue
		}
		if tryHandOver(out, it.v) { // a channel with room takes it without a full select
			r.drain(out)
			continue
		}
		if !handOver(out, it.v, torn) {
			return
		}
	}
}

// within bounds the keeper's next look to what fits in room beside what is
// queued (so what it holds never goes beyond room), and reports whether
// anything fits.
func (r *receiver[T]) within(room int) bool {
	held := len(r.queue) - r.head
	r.batch.most = max(room-held, 1)
	return held < room
}

// drain hands what is queued to out under one turn, for as long as out has
// room, so that the messages of a packed sample do not each take the turn.
func (r *receiver[T]) drain(out chan<- T) {
	select {
	case r.sem <- struct{}{}:
	default:
		return
	}
	for r.head < len(r.queue) && r.life.closedHere() == nil {
		it := &r.queue[r.head]
		if it.err != nil {
			break // next reports it
		}
		if it.raw != nil {
			it.v, it.raw = r.copyOut(it.raw), nil
		}
		select {
		case out <- it.v:
			r.pop()
			continue
		default:
		}
		break
	}
	<-r.sem
}
