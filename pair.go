package iox

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/iox-go/iox/internal/ffi"
)

// Pair is one end of a bidirectional, ordered, lossless channel between two
// processes: nng's pair pattern over iceoryx2 shared memory. Exactly two ends
// share a name; each sends with Send or Out and receives with Recv or In.
//
// Delivery: every message sent reaches the peer once, in order. Send copies the
// message into shared memory on the caller's goroutine, so the caller may reuse
// its buffer as soon as Send returns; while the peer's queue is full, or before
// the peer has arrived, messages wait in a bounded queue (WithChanCap) and Send
// blocks once that is full. Recv takes the next message on the caller's own
// goroutine, spinning briefly while the peer answers quickly and parking in the
// runtime poller otherwise. In and Out are ordinary Go channels fed by a
// goroutine that starts when they are first used; a value sent on Out is handed
// over to the pair, as with any Go channel; closing Out ends the goroutine
// behind it (Send still works).
//
// Ending: Err says why a pair ended and Done is closed then; Err is set before
// Recv or In report the end. The peer's Close is a clean end: Recv and In
// deliver everything the peer sent, then report ErrPeerClosed (which matches
// io.EOF). A peer process that dies without closing is noticed within
// milliseconds (the pair waits on the process with a pidfd; without pidfd
// support it looks every quarter of WithPeerTimeout) and reported as
// ErrPeerCrashed. A restarted process can open the same name again without
// manual cleanup.
//
// Pairing: an end pairs once, with the first end of the other slot that has
// not paired with another (see pairing.go). An end opened while the other
// slot still holds an end whose own peer closed or died (it is ending, or
// its program has not closed it yet) does not take that end for its peer:
// it takes nothing that end sends (what it had queued for its old peer, its
// bye), is not ended by its leaving, and waits for the end that opens in its
// place, holding what it sends until then. The ending end, for its part,
// hands a newcomer nothing and counts nothing of it as its old peer's
// confirmation.
//
// Shutdown: Close stops accepting messages, sends what was queued and a bye
// behind it, and waits up to the linger time (WithLinger, default 1 s) until the
// peer confirms that it took everything. It returns nil only then; otherwise an
// error matching ErrUndelivered says how many messages the peer did not
// confirm. A peer confirms what its end took while it was open: when both ends
// close at once, what one takes while closing is dropped and not confirmed, so
// a nil Close means the peer's application read every message or could have.
// The peer sees a clean end also when the bye did not fit because it was
// full. The context given to OpenPair bounds the pair's life: when it ends,
// the pair ends at once (Err wraps the context's cause), queued messages are
// dropped, and the peer sees a clean end. Always Close a pair, also after it
// ended, to release its shared memory.
type Pair[T any] struct {
	node  *Node
	name  string
	cfg   chanConfig
	life  *life
	fixed bool
	slot  int
	id    uint64 // this end's id, the tag of its samples (see pairing.go)

	mineSvc, peerSvc *PubSubService // I publish on mine and subscribe to the peer's
	mineEv, peerEv   *EventService  // events addressed to me, and to the peer
	pub              *Publisher
	sub              *Subscriber
	lis              *Listener
	ntf              *Notifier
	closers          []interface{ Close() error }

	hub *hub
	rx  *receiver[T]
	tx  *sender[T]
	hb  []byte // the header of the sample being sent (under tx.mu)
	bye []byte // the body of a bye: empty, or one zero value of a fixed type
	txW chan struct{}
	// ends the wait of awaitRoom when the peer goes (markGone): the hub
	// wait looks only at its ids, and a crash comes without one
	roomWait atomic.Pointer[context.CancelFunc]

	in         chan T
	inOnce     sync.Once
	outs       *outlet[T]
	feeds      group         // the keeper and the goroutines behind In and Out
	torn       chan struct{} // teardown began: those goroutines stop
	stopTx     chan struct{} // the send queue's goroutine stops
	stopTxOnce sync.Once
	gone       chan struct{} // the peer closed (its bye, or its end left) or crashed
	dead       chan struct{} // the peer's process is gone
	deadOnce   sync.Once
	goneOnce   sync.Once
	closer     closer

	word     *ffi.WaitWord                // this end's wait word (nil: none could be made)
	peerWord atomic.Pointer[ffi.WaitWord] // the peer's wait word (nil: notify every time)

	mu          sync.Mutex // guards the peer fields below
	peerNode    UniqueID
	peerID      atomic.Uint64 // the id of the end this end paired with (0: none yet)
	peerKnown   atomic.Bool   // this end paired (see pairing.go)
	unwatch     func()
	peerBye     bool
	peerGot     uint64
	acked       atomic.Bool // the peer confirmed it took everything up to our bye
	left        atomic.Bool // the peer's end is gone (evLeft), with or without a bye
	senderWaits atomic.Bool // the peer waits for room in our queue
}

// OpenPair opens one end of the []byte pair called name. ctx bounds the pair's
// life (see Pair): when it ends, the pair ends. Opening never waits for the
// peer, so the context needs no room for that.
func OpenPair(ctx context.Context, node *Node, name string, opts ...Option) (*Pair[[]byte], error) {
	return OpenPairOf[[]byte](ctx, node, name, Raw{}, opts...)
}

// OpenPairOf opens one end of the pair called name carrying values of T encoded
// by codec (see Fixed for fixed-layout types).
func OpenPairOf[T any](ctx context.Context, node *Node, name string, codec Codec[T], opts ...Option) (*Pair[T], error) {
	const op = "open pair"
	cfg, err := prepare(ctx, op, name, pairSuffix(1), opts, nodeArg(node), codecArg("codec", codec))
	if err != nil {
		return nil, err
	}
	if err := cfg.only(op, name, "pair", optLossy, optHistory, optMaxSubscribers, optMaxPublishers, optPoll, optWaitSubs); err != nil {
		return nil, err
	}
	node, hold, err := node.keep(op, name)
	if err != nil {
		return nil, err
	}
	p := &Pair[T]{node: node, name: name, cfg: cfg, life: newLife(), hb: make([]byte, headerSize), txW: newSignal(),
		in: make(chan T, cfg.chanCap), outs: newOutlet[T](), torn: make(chan struct{}), stopTx: make(chan struct{}),
		gone: make(chan struct{}), dead: make(chan struct{})}
	p.opened(hold) // released last
	pt := payloadTypeOf(codec)
	p.fixed = pt.Fixed
	if p.fixed { // a sample of a fixed type holds exactly one value, also a bye
		p.bye = make([]byte, pt.Size)
	}
	if err := p.join(pt); err != nil {
		p.release()
		return nil, err
	}
	p.hub = newHub(p.lis, p.onIDs)
	p.rx = newReceiver(name, p.sub, p.hub, p.life, codec, cfg, true, false)
	p.rx.ww = p.word
	p.rx.onBye, p.rx.onTake, p.rx.from = p.peerSaidBye, p.afterTake, p.fromPeer
	p.tx = newSender(name, p.life, codec, cfg, !p.fixed)
	p.tx.tag = p.id
	p.tx.deliver, p.tx.await, p.tx.stop = p.deliver, p.awaitRoom, p.stopTx
	p.tx.fail = func(err error) { p.end(err) }
	p.tx.present = func() bool {
		if !p.peerKnown.Load() {
			p.lookForPeer()
		}
		return p.peerThere()
	}
	p.tx.fits = p.pub.fits
	p.tx.loanRoom = func(tag, seq, copies uint64) (bool, bool) { return roomFor(p.peerWord.Load(), tag, seq, copies) }
	p.tx.behind = func(tag, seq, limit uint64) bool { return behind(p.peerWord.Load(), tag, seq, limit) }
	p.tx.seek = func() { // a peer whose word is not known yet would get large messages without a window
		if p.peerWord.Load() == nil {
			p.lookForPeer()
		}
	}
	p.tx.heard = p.rx.confirmed
	p.tx.sendLoan = func(smp *SampleMut, h *header) (bool, error) {
		if !p.mayDeliver() {
			return false, nil
		}
		h.got = p.rx.confirmed()
		h.put(smp.header(headerSize))
		n, err := smp.sendNotify(p.ntf, evData, p.peerWord.Load(), ffi.AllSubscribers)
		return n > 0, err
	}
	p.lookForPeer()
	p.feeds.start(func() { p.rx.keep(p.torn, cfg.queue+cfg.chanCap) })
	p.closer.watch(ctx, "pair", name, p.shutdown)
	return p, nil
}

func pairSuffix(slot int) string { return fmt.Sprintf(".iox-pair%d", slot) }

func randomTag() uint64 {
	var b [8]byte
	rand.Read(b[:])
	return binary.NativeEndian.Uint64(b[:]) | 1
}

// join claims a free end (slot) of the pair and opens the ports: a publisher on
// the slot's service, a listener for events addressed to the slot, a subscriber
// on the other slot's service and a notifier for events addressed to it.
func (p *Pair[T]) join(pt PayloadType) error {
	p.node.CleanupDeadNodes() // frees the slot of a crashed former end
	svcOpts := []Option{WithPayloadType(pt), withHeader(), MaxPublishers(1), MaxSubscribers(1),
		BufferSize(p.cfg.queue), SafeOverflow(false), MaxBorrowed(p.cfg.maxBorrowed)}
	evOpts := []Option{MaxNotifiers(2), MaxListeners(2), MaxEventID(evMaxID),
		NotifierCreatedEvent(evHello), NotifierDroppedEvent(evLeft), NotifierDeadEvent(evDead)}
	var svcs [2]*PubSubService
	defer func() { // the services this end did not keep
		for _, svc := range svcs {
			if svc != nil && svc != p.mineSvc && svc != p.peerSvc {
				svc.Close()
			}
		}
	}()
	for k := 0; k < 2 && p.pub == nil; k++ {
		svc, err := p.node.PublishSubscribe(p.name+pairSuffix(k), svcOpts...)
		if err != nil {
			return err
		}
		svcs[k] = svc
		if svc.BufferSize() != p.cfg.queue {
			return &Error{Op: "open pair", Name: p.name, Kind: ErrIncompatible,
				Detail: fmt.Sprintf("the other end was opened with BufferSize(%d), this one with BufferSize(%d)", svc.BufferSize(), p.cfg.queue)}
		}
		if pubs, _, err := svc.Counts(); err == nil && pubs > 0 {
			continue // the slot is taken (a crashed end's was freed above)
		}
		pub, err := svc.Publisher(FailWhenFull(0), MaxMessageSize(max(p.cfg.maxMessage, packLimit)),
			InitialMessageSize(packStart))
		if errors.Is(err, ErrLimitReached) {
			continue
		}
		if err != nil {
			return err
		}
		p.slot, p.mineSvc, p.pub = k, svc, pub
		p.opened(svc)
		p.opened(pub)
	}
	if p.pub == nil {
		return &Error{Op: "open pair", Name: p.name, Kind: ErrPairFull}
	}
	var err error
	if p.mineEv, err = p.node.Event(p.name+pairSuffix(p.slot), evOpts...); err != nil {
		return err
	}
	p.opened(p.mineEv)
	if p.lis, err = p.mineEv.Listener(); err != nil {
		return err
	}
	p.opened(p.lis)
	if p.peerSvc = svcs[1-p.slot]; p.peerSvc == nil {
		if p.peerSvc, err = p.node.PublishSubscribe(p.name+pairSuffix(1-p.slot), svcOpts...); err != nil {
			return err
		}
	}
	p.opened(p.peerSvc)
	if p.sub, err = p.peerSvc.Subscriber(); err != nil {
		return err
	}
	p.opened(p.sub)
	id, ok := p.sub.portID()
	if !ok {
		return &Error{Op: "open pair", Name: p.name, Kind: ErrInternal, Detail: "the subscriber's port id cannot be read"}
	}
	p.id = endID(id)
	// The wait word exists before the notifier that tells the peer this end is
	// here (evHello), so the peer finds it when it looks.
	if p.word = newWaitWord(p.node, p.sub, p.cfg.queue); p.word != nil {
		p.opened(wordCloser{p.word})
	}
	if p.peerEv, err = p.node.Event(p.name+pairSuffix(1-p.slot), evOpts...); err != nil {
		return err
	}
	p.opened(p.peerEv)
	if p.ntf, err = p.peerEv.Notifier(); err != nil { // tells a waiting peer we are here (evHello)
		return err
	}
	p.opened(p.ntf)
	return nil
}

func (p *Pair[T]) opened(c interface{ Close() error }) { p.closers = append(p.closers, c) }

func (p *Pair[T]) release() {
	for i := len(p.closers) - 1; i >= 0; i-- {
		p.closers[i].Close()
	}
	p.closers = nil
}

// Send hands v to the pair: it is encoded and copied into shared memory (or
// into the send queue while the peer cannot take it) before Send returns, so
// the caller may reuse v's memory. Send waits while the queue is full. An
// oversized or unencodable value fails this Send alone (ErrMessageTooLarge,
// ErrInvalidArgument) and the pair goes on; once the pair has ended Send returns
// Err (ErrClosed after Close). nil means accepted, not yet confirmed.
func (p *Pair[T]) Send(ctx context.Context, v T) error { return p.tx.send(ctx, v) }

// Recv returns the next message. After the peer closed it returns the rest of
// the peer's messages, then ErrPeerClosed; after Close it returns ErrClosed. A
// message that had to be dropped (too large, undecodable) comes back as its
// error, and the next Recv goes on.
func (p *Pair[T]) Recv(ctx context.Context) (T, error) { return p.rx.recv(ctx) }

// TryRecv returns the next message if one has arrived, and ok false at once
// when none has: it never waits for a message. It waits only for its turn
// while a Recv or In of this end waits for one, until ctx ends (then it
// returns ctx's error; with a ctx that has ended already, also while the end's
// own goroutine holds the turn, which it otherwise hands over at once).
// Otherwise it answers as Recv: after the peer closed it returns the rest of
// the peer's messages, then ErrPeerClosed; a message that had to be dropped
// comes back as its error (ok false), and the next call goes on; after Close
// it returns ErrClosed. A sender waiting for room is told of it as by Recv.
func (p *Pair[T]) TryRecv(ctx context.Context) (v T, ok bool, err error) { return p.rx.tryRecv(ctx) }

// In is the channel of messages from the peer; it is closed after the pair
// ended (once the peer's messages are delivered, when the peer closed) and Err
// is set before that. A goroutine behind it starts on the first call.
func (p *Pair[T]) In() <-chan T {
	p.inOnce.Do(func() {
		if !p.feeds.start(func() { p.rx.feed(p.in, p.torn) }) {
			close(p.in) // the pair ended before In was first used
		}
	})
	return p.in
}

// Out is the channel of messages to the peer. It has no buffer: a value sent on
// it is handed to the pair as by Send; one that Out took before Close goes out
// before the bye, and counts in Close's result. After the pair ended a send on
// Out blocks, so select on Done as well. Values Send refuses go to OnDrop. A
// goroutine behind it starts on the first call.
// That goroutine is a sender of its own: values sent on Out keep their order,
// but a Send made after a send on Out returned may arrive before that value.
func (p *Pair[T]) Out() chan<- T { return p.outs.open(&p.feeds, p.tx, p.life, p.cfg.onDrop) }

// Loan lends n bytes of shared memory for the next message, to write in place
// and send with SendLoan (see Loan for the rules). ctx is not waited on: a
// loan is there at once or refused (ErrTooManyLoans while two are out).
func (p *Pair[T]) Loan(ctx context.Context, n int) (*Loan, error) {
	if ctx == nil {
		return nil, nilArg("loan", p.name, "ctx")
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return p.tx.loan(p.pub, n)
}

// SendLoan sends a loaned message without copying it, after what was sent
// before; like Send it waits while the peer has no room (a peer not there yet
// gets a copy, queued as Send queues). The loan is spent either way.
func (p *Pair[T]) SendLoan(ctx context.Context, l *Loan) error { return p.tx.sendLoaned(ctx, l) }

// RecvView returns the next message in place in shared memory, valid until
// View.Release (see View for the rules); in order with Recv.
func (p *Pair[T]) RecvView(ctx context.Context) (*View, error) { return p.rx.recvView(ctx) }

// Done is closed when the pair has ended; Err says why.
func (p *Pair[T]) Done() <-chan struct{} { return p.life.Done() }

// Err is nil while the pair is open, then why it ended: ErrPeerClosed,
// ErrPeerCrashed, ErrClosed after Close, an *Error wrapping the cause of the
// context it was opened with, or a failure.
func (p *Pair[T]) Err() error { return p.life.err() }

// Connected reports whether this end has found its peer, the end it pairs
// with (an end still ending after another pair is none).
func (p *Pair[T]) Connected() bool { return p.peerKnown.Load() }

// Recycle hands a received message's buffer back for reuse: the next messages
// are received into it instead of a new buffer (how many are kept: see
// WithRecycling). Do not use b afterwards; a buffer handed back twice is
// kept once.
func (p *Pair[T]) Recycle(b []byte) { recycle(p.rx.spare, b) }

// Close ends the pair gracefully (see Pair) and releases it. It returns nil only
// when the peer confirmed every message, an error matching ErrUndelivered
// otherwise. A second Close returns ErrClosed.
func (p *Pair[T]) Close() error { return p.closer.close("pair", "close pair", p.name) }

// end ends the pair with err, which is not this end's doing.
func (p *Pair[T]) end(err error) {
	p.life.end(err, false)
	p.hub.kick()
}

// deliver sends one sample of the send queue or of Send, to the peer alone
// (see mayDeliver).
func (p *Pair[T]) deliver(data []byte, h *header) (bool, error) {
	if !p.mayDeliver() {
		return false, nil
	}
	if h.kind == kindBye {
		data = p.bye
	}
	h.got = p.rx.confirmed()
	h.put(p.hb)
	n, err := p.pub.sendNotify(data, p.hb, p.ntf, evData, p.peerWord.Load())
	if err == nil && n > 0 {
		return true, nil
	}
	if err == nil || errors.Is(err, ErrWouldBlock) {
		return false, nil
	}
	return false, err
}

// awaitRoom waits until the peer made room or arrived. It tells a full peer
// that a sender waits (evFull); before this end paired there is nobody to
// tell, and only an end that comes (evHello) or goes (evLeft) is news. As a
// safety net it also looks again after a quarter of the peer timeout, which
// costs nothing while nothing is queued. It gives up (goneErr) once the
// peer's process died, or once the peer closed and its subscriber is gone:
// nobody will take anything more.
func (p *Pair[T]) awaitRoom(parent context.Context, stop <-chan struct{}, _ uint64) error {
	ctx, cancel := context.WithTimeout(parent, p.cfg.peerTimeout/4)
	defer cancel()
	p.roomWait.Store(&cancel)
	defer p.roomWait.CompareAndSwap(&cancel, nil)
	if isDone(p.dead) || (p.gonePeer() && !p.peerThere()) {
		return p.goneErr()
	}
	news := bit(evHello) | bit(evLeft)
	if p.peerKnown.Load() {
		p.ntf.Notify(evFull)
		news |= bit(evSpace)
	}
	_, err := p.hub.wait(ctx, stop, news, p.txW)
	if (errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)) && parent.Err() == nil {
		return nil // look again
	}
	return err
}

// goneErr is why a send gives up on a peer that can take nothing more: the
// pair's end, or, before the pair has ended (the peer's process is gone
// before this end read its bye or its leaving), the end that is on its way.
func (p *Pair[T]) goneErr() error {
	if err := p.life.err(); err != nil {
		return err
	}
	if isDone(p.dead) && !p.left.Load() && !p.peerClosedItsEnd() {
		return &Error{Op: "send", Name: p.name, Kind: ErrPeerCrashed}
	}
	return &Error{Op: "send", Name: p.name, Kind: ErrPeerClosed}
}

// onIDs sees every batch of event ids drained from the listener.
func (p *Pair[T]) onIDs(bits uint64) {
	if bits&bit(evFull) != 0 {
		p.senderWaits.Store(true)
	}
	if bits&(bit(evHello)|bit(evDead)) != 0 {
		p.lookForPeer()
	}
	if bits&bit(evLeft) != 0 {
		p.onLeft()
	}
}

// peerLeft runs when the peer's end is gone without a crash: it closed, and
// its last sample (the bye, or whatever it could not confirm) is in shared
// memory already, where the receiver still finds it. A peer whose bye found
// this end full ends the pair this way, as cleanly as with its bye.
func (p *Pair[T]) peerLeft() {
	p.left.Store(true)
	p.life.end(&Error{Op: "receive", Name: p.name, Kind: ErrPeerClosed}, false)
	p.markGone()
}

// afterTake runs after every look into shared memory by the receiver (which
// took k samples): it tells a waiting sender of room (see roomDue).
func (p *Pair[T]) afterTake(k int) {
	if p.senderWaits.Load() && p.rx.roomDue(k, p.cfg.queue) && p.senderWaits.Swap(false) {
		p.ntf.Notify(evSpace)
	}
	if !p.peerKnown.Load() && p.rx.got.Load() > 0 {
		p.lookForPeer()
	}
}

// peerExited runs when the peer's process is gone.
func (p *Pair[T]) peerExited() {
	p.mu.Lock()
	bye := p.peerBye
	p.mu.Unlock()
	p.deadOnce.Do(func() { close(p.dead) })
	p.tx.mu.Lock() // words are closed under it
	if w := p.peerWord.Load(); w != nil {
		w.Remove() // a crashed peer leaves its word behind
	}
	p.tx.mu.Unlock()
	p.markGone()
	if !bye && !p.left.Load() && !p.peerClosedItsEnd() {
		p.end(&Error{Op: "pair", Name: p.name, Kind: ErrPeerCrashed})
	}
	p.hub.kick()
}

// markGone records that the peer closed or died. The send queue goes on while
// the peer's subscriber is there (a peer that closes at the same time still
// takes this end's bye); awaitRoom stops it once nobody can take anything.
func (p *Pair[T]) markGone() {
	p.goneOnce.Do(func() { close(p.gone) })
	p.hub.kick()
	if c := p.roomWait.Load(); c != nil {
		(*c)() // awaitRoom looks again, and gives up if nobody takes anything more
	}
}

func (p *Pair[T]) gonePeer() bool { return isDone(p.gone) }

// peerSaidBye runs when the receiver reads the peer's bye: everything the peer
// sent has arrived. It confirms that to the peer.
func (p *Pair[T]) peerSaidBye(h header) {
	p.mu.Lock()
	p.peerBye, p.peerGot = true, h.got
	p.mu.Unlock()
	// A closing end confirms only what it took before it closed: what it takes
	// while closing is dropped, and its own bye carries its count.
	if p.rx.confirmed() >= h.first || p.life.closedHere() == nil {
		p.ntf.Notify(evDrained)
	}
	p.life.end(&Error{Op: "receive", Name: p.name, Kind: ErrPeerClosed}, false)
	p.markGone()
}

// shutdown ends the pair with reason and releases it. Gracefully, it first
// sends the value Out holds, the queue and a bye, and waits for the peer's
// confirmation. On the end of its context it drops the queue and tries the bye
// once. Either way the peer's end learns of it: from the bye, or, when the bye
// did not fit, from this end's notifier leaving (evLeft), which is released
// after the ports that carry messages.
func (p *Pair[T]) shutdown(reason error, graceful bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), p.cfg.linger)
	defer cancel()
	if graceful {
		p.outs.finish(ctx)
	}
	p.life.end(reason, true)
	p.hub.kick()
	if !graceful {
		p.outs.finish(doneContext)
	}
	p.rx.freeze()
	var result error
	if graceful {
		result = p.linger(ctx)
	} else {
		result = p.unconfirmed("the context ended first")
	}
	close(p.torn)
	p.rx.stepAside()
	p.stopTxOnce.Do(func() { close(p.stopTx) })
	p.hub.kick()
	p.tx.wg.Wait()
	if !graceful && p.peerThere() && p.tx.sendBye(nil) {
		// what was queued is lost; the peer sees a clean end once it took
		// the bye (or from evLeft), and this end waits for it a little
		p.awaitAck(ctx)
	}
	p.feeds.stop()
	p.mu.Lock()
	if p.unwatch != nil {
		p.unwatch()
	}
	p.mu.Unlock()
	p.sub.Close() // the ports that carry messages go before the notifier (evLeft)
	p.pub.Close()
	p.rx.dropWord()
	p.tx.mu.Lock() // no send uses the peer's word any more
	p.mu.Lock()
	if w := p.peerWord.Swap(nil); w != nil {
		w.Close()
	}
	p.mu.Unlock()
	p.tx.mu.Unlock()
	p.release()
	return result
}

// linger delivers what is queued and a bye, then waits for the peer to confirm.
// The bye goes also to a peer that closes at the same time: its count of what
// it took from this end is final only in its own bye, which it sends while
// this end's is on its way.
func (p *Pair[T]) linger(ctx context.Context) error {
	_, queued := p.tx.counts()
	if !isDone(p.dead) && (queued > 0 || p.peerThere()) && p.tx.sendBye(ctx) {
		p.awaitAck(ctx)
	}
	p.mu.Lock()
	bye := p.peerBye
	p.mu.Unlock()
	why := "the peer did not confirm them within the linger time"
	switch {
	case bye, p.left.Load():
		why = "the peer closed first"
	case isDone(p.dead):
		why = "the peer's process died"
	case !p.peerKnown.Load():
		why = "no peer arrived"
	}
	return p.unconfirmed(why)
}

// unconfirmed is Close's result: nil when the peer confirmed every message
// (its bye's or last sample's count, or its acknowledgement of our bye), an
// ErrUndelivered error saying how many it did not, and why, otherwise.
func (p *Pair[T]) unconfirmed(why string) error {
	sent, queued := p.tx.counts()
	p.mu.Lock()
	bye, byeGot := p.peerBye, p.peerGot
	p.mu.Unlock()
	missing := uint64(queued) + p.outs.lost.Load()
	switch {
	case bye: // the peer closed: what it had taken by then is final
		missing += sent - min(byeGot, sent)
	case p.acked.Load(): // the peer took everything up to our bye
	default: // what the peer's own messages said it had taken
		missing += sent - min(p.rx.acked.Load(), sent)
	}
	if missing == 0 {
		return nil
	}
	return &Error{Op: "close pair", Name: p.name, Kind: ErrUndelivered,
		Detail: fmt.Sprintf("%d of %d messages not confirmed: %s", missing, sent+uint64(queued)+p.outs.lost.Load(), why)}
}

// awaitAck waits for the peer's confirmation of the bye (evDrained, when the
// peer's word shows the bye taken: see tookBye), meanwhile taking what the
// peer sends so that a peer closing at the same time gets its own
// confirmation.
func (p *Pair[T]) awaitAck(ctx context.Context) {
	if !p.rx.hold(ctx) {
		return
	}
	defer func() { <-p.rx.sem }()
	w := newSignal()
	bye := p.tx.samples() // the bye went last
	for !p.acked.Load() && !p.saidBye() {
		left := p.left.Load() // before the look: what it left is in shared memory by then
		k, err := p.rx.take()
		if err != nil {
			return
		}
		if k > 0 && ctx.Err() == nil { // more may be waiting behind one batch
			continue
		}
		if left { // the peer left: its confirmation, if any, was drained already
			if p.hub.pendingOf(bit(evDrained)) != 0 && p.tookBye(bye) {
				p.acked.Store(true)
			}
			return
		}
		if p.rx.arm(false) {
			continue
		}
		got, err := p.hub.wait(ctx, p.dead, bit(evDrained)|bit(evData)|bit(evFull)|bit(evLeft), w)
		p.rx.disarm()
		if got&bit(evDrained) != 0 && p.tookBye(bye) {
			p.acked.Store(true)
		}
		if err != nil {
			return
		}
	}
}

// saidBye reports whether the peer's bye arrived: it closed, and its count of
// what it took from us is final (what it takes while closing is dropped).
func (p *Pair[T]) saidBye() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.peerBye
}
