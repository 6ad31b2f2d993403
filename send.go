package iox

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// sender moves messages into shared memory. Send encodes the value and, when
// nothing is queued ahead of it, copies it into shared memory and notifies the
// receivers on the caller's goroutine: one native call. When the receivers
// cannot take it (full, or not there yet) the message is copied into a bounded
// queue, and a goroutine that runs only while the queue holds something waits
// for room and delivers it, packing small messages into shared samples. Order
// is kept either way.
type sender[T any] struct {
	name    string
	life    *life
	enc     func([]byte, T) ([]byte, error)
	max     int
	pack    bool
	tag     uint64
	deliver func(data []byte, h *header) (bool, error) // one sample; false: nobody could take it yet
	// await waits for room after a failed delivery; since is what news said
	// before that delivery began, so that news that came meanwhile ends
	// the wait at once
	await   func(ctx context.Context, stop <-chan struct{}, since uint64) error
	news    func() uint64                // a count of the receivers' news (room, arrivals, departures) so far (nil: none is kept)
	stop    <-chan struct{}              // ends the queue's goroutine (teardown)
	fail    func(error)                  // a queued message could not be sent
	present func() bool                  // the receivers are there (large messages wait for them)
	fits    func(op string, n int) error // a message of n bytes fits the payload type (nil: any does)
	heard   func() uint64                // messages received on the same channel so far (nil: it receives none)
	// zero copy (nil where the adapter has none): whether the receivers are
	// known to have room for one more sample (known false: they cannot tell,
	// and a loan is sent as a copy), and the send of a loaned sample
	loanRoom func(tag, seq, copies uint64) (room, known bool)
	sendLoan func(smp *SampleMut, h *header) (bool, error)
	// large messages (nil where the adapter cannot tell): whether the
	// receivers hold limit or more of this port's samples unread
	behind func(tag, seq, limit uint64) bool
	// seek, when set, looks for what behind needs (the peer's word) before
	// a large message goes, outside the sender's lock.
	seek func()

	sem       chan struct{} // one Send at a time: they encode into scratch
	scratch   []byte
	last      time.Duration // when the last Send returned (nanotime)
	lastHeard uint64        // heard() when the last Send returned
	streaming bool          // this Send follows the last one closely

	wg      sync.WaitGroup // the queue's goroutine
	pumpFn  func()         // s.pump, made once: starting the goroutine allocates nothing
	mu      sync.Mutex
	q       []outMsg
	qn      int // messages (and byes) in q
	qcap    int
	pumping bool
	pumps   uint64        // how often the queue's goroutine started
	room    chan struct{} // the queue shrank
	empty   chan struct{} // the queue emptied (for Close)
	free    [][]byte      // delivered queue buffers, reused
	seq     uint64        // samples sent
	sent    uint64        // messages sent
	hdr     header
	copies  uint64 // the last sample number that may have reached some receivers twice (sent again after a partial delivery)
}

// outMsg is one sample waiting in the queue: a plain message or bye, or
// (count > 0) small data messages packed as frames, appended in place as they
// are queued, so that packing costs no copy of its own.
type outMsg struct {
	data   []byte
	kind   uint32
	count  int  // frames in data; 0: data is one plain message
	alone  bool // a send of it failed already: it goes again exactly as it went
	sealed bool // its delivery was tried: nothing more may join it
}

// messages is how many messages (or byes) the entry holds.
func (m *outMsg) messages() int { return max(m.count, 1) }

// joins reports whether a small data message of n bytes may be packed into m.
func (m *outMsg) joins(n int) bool {
	return m.count > 0 && !m.sealed && m.count < packMessages && len(m.data)+frameSize+n <= packLimit
}

func newSender[T any](name string, l *life, codec Codec[T], cfg chanConfig, pack bool) *sender[T] {
	s := &sender[T]{name: name, life: l, enc: encoder(codec), max: cfg.maxMessage, pack: pack,
		sem: make(chan struct{}, 1), qcap: max(cfg.chanCap, 1), room: newSignal(), empty: newSignal()}
	s.pumpFn = s.pump
	return s
}

// encoder returns the function that turns a T into message bytes, reusing buf.
func encoder[T any](codec Codec[T]) func(buf []byte, v T) ([]byte, error) {
	if _, raw := any(codec).(Raw); raw {
		return func(_ []byte, v T) ([]byte, error) { return any(v).([]byte), nil }
	}
	return func(buf []byte, v T) ([]byte, error) { return appendSafe(codec, buf[:0], v) }
}

// send encodes v and delivers it or queues a copy; once it returns, the caller
// may reuse v's memory. An oversized or unencodable value fails this send alone.
func (s *sender[T]) send(ctx context.Context, v T) error {
	if err := s.enter(ctx); err != nil {
		return err
	}
	defer func() { <-s.sem }()
	msg, err := s.enc(s.scratch, v)
	if err != nil {
		return &Error{Op: "encode", Name: s.name, Kind: ErrInvalidArgument, Detail: err.Error()}
	}
	if _, raw := any(v).([]byte); !raw {
		s.scratch = msg[:0]
	}
	if len(msg) > s.max {
		return &Error{Op: "send", Name: s.name, Kind: ErrMessageTooLarge,
			Detail: fmt.Sprintf("%d bytes, at most %d", len(msg), s.max)}
	}
	if s.fits != nil { // before it may wait in the queue, where it would fail the channel
		if err := s.fits("send", len(msg)); err != nil {
			return err
		}
	}
	// Sends that follow each other within streamGap (from the end of one to
	// the start of the next), with nothing received in between, are a
	// stream: their small messages go through the queue, whose goroutine
	// packs them many to a sample. A lone message, or an answer to one
	// received (however quick the round trip), goes straight out.
	now := nanotime()
	var heard uint64
	if s.heard != nil {
		heard = s.heard()
	}
	s.streaming = s.pack && now-s.last < streamGap && heard == s.lastHeard
	err = s.put(ctx, msg, kindData)
	s.last, s.lastHeard = nanotime(), heard
	return err
}

// enter takes the one turn to send (release with <-s.sem), unless ctx or the
// channel ended first: then it returns why.
func (s *sender[T]) enter(ctx context.Context) error {
	if ctx == nil {
		return nilArg("send", s.name, "ctx")
	}
	select {
	case s.sem <- struct{}{}:
	default:
		select {
		case s.sem <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		case <-s.life.Done():
			return s.life.err()
		}
	}
	err := s.life.closedHere()
	if err == nil {
		err = s.life.err()
	}
	if err == nil {
		err = ctx.Err()
	}
	if err != nil {
		<-s.sem
	}
	return err
}

// directFrom is the size from which a message for receivers that are there
// waits in Send rather than in the queue: copying it costs more than waiting.
const directFrom = 64 << 10

// streamGap is how soon a Send must follow the previous one to count as part
// of a stream.
const streamGap = 5 * time.Microsecond

// put delivers msg at once when nothing is queued, or queues a copy. A large
// message for receivers that are there is not copied: the caller waits until it
// goes straight from its buffer into shared memory, after what is queued.
func (s *sender[T]) put(ctx context.Context, msg []byte, kind uint32) error {
	if kind == kindData && len(msg) >= directFrom && s.present != nil && s.present() {
		return s.putDirect(ctx, msg)
	}
	s.mu.Lock()
	tried := len(s.q) == 0 && !s.pumping && !(s.streaming && kind == kindData)
	if tried {
		ok, err := s.sendOne(msg, kind)
		if err != nil || ok {
			s.mu.Unlock()
			return err
		}
	}
	// A bye waits for room only on the queue's goroutine (or ctx): the channel
	// has ended by the time it is sent.
	ended := s.life.Done()
	if kind == kindBye {
		ended = nil
	}
	for s.qn >= s.qcap {
		if kind == kindBye && !s.pumping { // nobody makes room any more
			s.mu.Unlock()
			return errDone
		}
		s.mu.Unlock()
		select {
		case <-s.room:
		case <-ctx.Done():
			return ctx.Err()
		case <-ended:
			return s.life.err()
		}
		s.mu.Lock()
	}
	// A sample that reached some receivers but not all must go again with the
	// same sequence number and content, so that those drop the copy.
	s.queue(msg, kind, tried)
	if !s.pumping {
		s.pumping = true
		s.wg.Add(1)
		s.pumps++
		go s.pumpFn()
	}
	s.mu.Unlock()
	return nil
}

// freeBytes bounds the delivered queue buffers a sender keeps for reuse.
const freeBytes = 1 << 20

// largeBudget is how many bytes of large messages a sender keeps in flight
// to one receiver at most, whatever its buffer holds: a few samples that
// stay in the processor's cache move faster than a buffer's worth that does
// not (every sample of a deep queue of 1 MiB messages comes from memory).
const largeBudget = 4 << 20

// newsNow is the adapter's count of receiver news, for await.
func (s *sender[T]) newsNow() uint64 {
	if s.news == nil {
		return 0
	}
	return s.news()
}

// largeWindow is how many unread samples of n bytes a receiver may hold.
func largeWindow(n int) uint64 { return uint64(max(2, largeBudget/max(n, 1))) }

// putDirect sends msg once the queue is empty and the receivers have room.
func (s *sender[T]) putDirect(ctx context.Context, msg []byte) error {
	for {
		if s.seek != nil {
			s.seek()
		}
		s.mu.Lock()
		if len(s.q) == 0 && !s.pumping {
			var ok bool
			var err error
			since := s.newsNow()
			if s.behind == nil || !s.behind(s.tag, s.seq, largeWindow(len(msg))) {
				ok, err = s.sendOne(msg, kindData)
			}
			s.mu.Unlock()
			if err != nil || ok {
				return err
			}
			if err := s.await(ctx, s.stop, since); err != nil {
				if e := s.life.err(); e != nil {
					return e
				}
				if ctx.Err() != nil {
					return ctx.Err()
				}
				return err
			}
			continue
		}
		s.mu.Unlock()
		select { // the queue goes first
		case <-s.empty:
		case <-ctx.Done():
			return ctx.Err()
		case <-s.life.Done():
			return s.life.err()
		}
	}
}

// loan lends n bytes of shared memory on pub for the next message.
func (s *sender[T]) loan(pub *Publisher, n int) (*Loan, error) {
	if err := s.life.closedHere(); err != nil {
		return nil, err
	}
	if err := s.life.err(); err != nil {
		return nil, err
	}
	if n < 0 {
		return nil, &Error{Op: "loan", Name: s.name, Kind: ErrInvalidArgument, Detail: fmt.Sprintf("%d bytes", n)}
	}
	if n > s.max {
		return nil, &Error{Op: "loan", Name: s.name, Kind: ErrMessageTooLarge, Detail: fmt.Sprintf("%d bytes, at most %d", n, s.max)}
	}
	smp, err := pub.Loan(n)
	if err != nil {
		return nil, err
	}
	return &Loan{smp: smp, data: smp.Bytes(), owner: s}, nil
}

// sendLoaned sends a loaned message in place, after what was sent before: once
// the receivers are known to have room for it (a loaned sample cannot be taken
// back when they have none). Receivers that cannot tell their room (a peer
// not there yet, no wait word) get a copy, as Send would give them.
func (s *sender[T]) sendLoaned(ctx context.Context, l *Loan) error {
	if l == nil {
		return nilArg("send loan", s.name, "loan")
	}
	if l.owner != any(s) && l.smp != nil { // its sample would go out on the channel that made it
		return &Error{Op: "send loan", Name: s.name, Kind: ErrInvalidArgument,
			Detail: "the loan was made by another channel end: send it there, or Release it"}
	}
	smp := l.take()
	if smp == nil {
		return &Error{Op: "send loan", Name: s.name, Kind: ErrInvalidArgument, Detail: "the loan was sent or released already"}
	}
	defer func() {
		if smp.h.Load() != 0 { // a loan that was not sent goes back
			smp.Discard()
		}
	}()
	if err := s.enter(ctx); err != nil {
		return err
	}
	defer func() { <-s.sem }()
	for {
		s.mu.Lock()
		if len(s.q) == 0 && !s.pumping {
			since := s.newsNow()
			room, known := s.loanRoom(s.tag, s.seq, s.copies)
			if !known {
				s.mu.Unlock()
				// A copy, in order. It needs a sample of its own: the loan's
				// goes back first, so that a sender holding every loan it may
				// have can still send one.
				msg := append([]byte(nil), smp.Bytes()...)
				smp.Discard()
				return s.put(ctx, msg, kindData)
			}
			if room {
				s.hdr = header{tag: s.tag, seq: s.seq + 1, first: s.sent, kind: kindData}
				ok, err := s.sendLoan(smp, &s.hdr)
				if ok {
					s.seq++
					s.sent++
				}
				s.mu.Unlock()
				if err == nil && !ok {
					err = &Error{Op: "send loan", Name: s.name, Kind: ErrUndelivered, Detail: "not every receiver took the message"}
				}
				return err
			}
			s.mu.Unlock()
			if err := s.await(ctx, s.stop, since); err != nil {
				if e := s.life.err(); e != nil {
					return e
				}
				return err
			}
			continue
		}
		s.mu.Unlock()
		select { // the queue goes first
		case <-s.empty:
		case <-ctx.Done():
			return ctx.Err()
		case <-s.life.Done():
			return s.life.err()
		}
	}
}

// buffer returns an empty queue buffer that holds n bytes: a delivered one
// when the last of those is large enough.
func (s *sender[T]) buffer(n int) []byte {
	if k := len(s.free); k > 0 {
		b := s.free[k-1]
		if cap(b) >= n {
			s.free = s.free[:k-1]
			return b[:0]
		}
	}
	return make([]byte, 0, n)
}

// sendOne sends one plain message (or a bye) as one sample; held under mu.
func (s *sender[T]) sendOne(msg []byte, kind uint32) (bool, error) {
	s.hdr = header{tag: s.tag, seq: s.seq + 1, first: s.sent, kind: kind}
	ok, err := s.deliver(msg, &s.hdr)
	if ok {
		s.seq++
		if kind == kindData {
			s.sent++
		}
	} else {
		s.copies = s.seq + 1
	}
	return ok, err
}

// queue puts a copy of msg at the tail of the queue, packed into the last
// entry when both are small data messages; held under mu.
func (s *sender[T]) queue(msg []byte, kind uint32, alone bool) {
	s.qn++
	packable := s.pack && kind == kindData && !alone && len(msg) <= packSmall
	if !packable {
		s.q = append(s.q, outMsg{data: append(s.buffer(len(msg)), msg...), kind: kind, alone: alone})
		return
	}
	if n := len(s.q); n > 0 && s.q[n-1].joins(len(msg)) {
		tail := &s.q[n-1]
		tail.data = appendFrame(tail.data, msg)
		tail.count++
		return
	}
	s.q = append(s.q, outMsg{data: appendFrame(s.buffer(packLimit), msg), kind: kind, count: 1})
}

// pump delivers the queue, waiting for room whenever the receivers are full.
func (s *sender[T]) pump() {
	defer s.wg.Done()
	s.mu.Lock()
	defer s.mu.Unlock()
	defer wake(s.empty)
	for len(s.q) > 0 {
		head := &s.q[0]
		head.sealed = true
		data, count := head.data, head.count
		if count == 1 { // one message alone goes plain
			data, count = data[frameSize:], 0
		}
		for {
			s.hdr = header{tag: s.tag, seq: s.seq + 1, first: s.sent, count: uint32(count), kind: head.kind}
			since := s.newsNow()
			ok, err := s.deliver(data, &s.hdr)
			if err != nil {
				s.fail(err)
				s.pumping = false
				return
			}
			if ok {
				break
			}
			s.copies = s.seq + 1
			s.mu.Unlock()
			err = s.await(context.Background(), s.stop, since)
			s.mu.Lock()
			head = &s.q[0]
			if err != nil {
				s.pumping = false
				return
			}
		}
		s.seq++
		n := head.messages()
		if head.kind == kindData {
			s.sent += uint64(n)
		}
		s.qn -= n
		if cap(head.data) <= 64<<10 && (len(s.free)+1)*cap(head.data) <= freeBytes {
			s.free = append(s.free, head.data)
		}
		s.q = append(s.q[:0], s.q[1:]...)
		wake(s.room)
	}
	s.pumping = false
}

// counts returns how many messages were sent into shared memory and queued.
func (s *sender[T]) counts() (sent uint64, queued int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, m := range s.q {
		if m.kind == kindData {
			n += m.messages()
		}
	}
	return s.sent, n
}

// samples returns how many samples went out; after a bye, the bye's number.
func (s *sender[T]) samples() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.seq
}

// flush waits until the queue is empty, ctx ends, or the queue's goroutine stops.
func (s *sender[T]) flush(ctx context.Context) bool {
	for {
		s.mu.Lock()
		idle := len(s.q) == 0 && !s.pumping
		stuck := len(s.q) > 0 && !s.pumping
		s.mu.Unlock()
		if idle {
			return true
		}
		if stuck {
			return false
		}
		select {
		case <-s.empty:
		case <-ctx.Done():
			return false
		}
	}
}

// sendBye puts a bye behind the queued messages; with a nil ctx it only tries
// once, at once, and drops the queue. It reports whether the bye went out.
func (s *sender[T]) sendBye(ctx context.Context) bool {
	if ctx == nil { // the queue's goroutine has stopped
		s.mu.Lock()
		defer s.mu.Unlock()
		ok, _ := s.sendOne(nil, kindBye)
		return ok
	}
	select {
	case s.sem <- struct{}{}:
	case <-ctx.Done():
		return false
	}
	defer func() { <-s.sem }()
	if s.put(ctx, nil, kindBye) != nil {
		return false
	}
	return s.flush(ctx)
}
