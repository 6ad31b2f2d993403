package iox

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// Pair is one end of a bidirectional, ordered, lossless channel between two
// processes — nng's pair pattern over iceoryx2 shared memory. Exactly two ends
// share a name; each sends on Out and receives on In.
//
// Delivery: every message sent reaches the peer once, in order. While the peer's
// queue is full, or before the peer has arrived, sending blocks (the Go channel
// fills, then Out blocks), so Out stays usable in select. Messages sent before the
// peer arrives are delivered when it does.
//
// Ending: Err says why a pair ended (ErrPeerClosed, ErrPeerCrashed, ErrClosed
// after Close, the context's error, or a failure) and Done is closed then. The
// peer's Close is a clean end (ErrPeerClosed): In delivers everything the peer
// sent, then closes.
// A peer that dies without closing is noticed within the peer timeout (default
// 1 s) and reported as ErrPeerCrashed; a restarted process can open the same name
// again, and so can this one, without manual cleanup.
//
// Shutdown: Close stops accepting messages, sends what Out had accepted, and waits
// up to the linger time (default 1 s) until the peer has taken it all. Cancelling
// the context stops at once: messages the peer has not taken yet are lost, and the
// peer sees a clean end. After either, Send fails with the reason; a bare send on
// Out blocks, so select on Done as well.
type Pair[T any] struct {
	chanBase
	codec Codec[T]
	enc   func([]byte, T) ([]byte, error)
	fixed bool // a fixed-size payload: one message per sample
	slot  int

	mineSvc, peerSvc *PubSubService // I publish on mine and subscribe to the peer's
	mineEv, peerEv   *EventService  // events addressed to me, and to the peer
	pub              *Publisher
	sub              *Subscriber
	lis              *Listener
	ntf              *Notifier
	spare            chan []byte // WithRecycling's free list

	out chan T // the user's messages to the peer
	in  chan T // the peer's messages to the user

	quit       chan struct{} // ends the receiver
	flush      chan struct{} // Close asks the sender to send what it holds
	flushed    chan struct{}
	quitOnce   sync.Once
	wakeSend   chan struct{}
	wakeRecv   chan struct{}
	byeSig     chan struct{}
	drained    chan struct{}
	checkSig   chan struct{}
	contact    atomic.Bool // a peer said hello, took a message or sent one
	peerBye    atomic.Bool // the peer said bye
	byePending atomic.Bool // ... and the receiver has not acknowledged it yet
	peerDead   atomic.Bool
	recvDone   chan struct{}
	connected  atomic.Bool
	peerSeen   bool // supervisor-owned from here on
	peerNode   UniqueID
	suspicious bool
}

// OpenPair opens one end of the []byte pair called name. ctx bounds the pair's
// life: when it ends, so does the pair.
func OpenPair(ctx context.Context, node *Node, name string, opts ...ChanOption) (*Pair[[]byte], error) {
	return OpenPairOf[[]byte](ctx, node, name, Raw{}, opts...)
}

// OpenPairOf opens one end of the pair called name carrying values of T encoded
// by codec (see Fixed for fixed-layout types).
func OpenPairOf[T any](ctx context.Context, node *Node, name string, codec Codec[T], opts ...ChanOption) (*Pair[T], error) {
	cfg, err := prepare(ctx, "open pair", name, pairSuffix(1), opts)
	if err != nil {
		return nil, err
	}
	p := &Pair[T]{
		codec: codec, enc: encoder(codec),
		out: make(chan T, cfg.chanCap), in: make(chan T, cfg.chanCap), quit: make(chan struct{}),
		flush: make(chan struct{}), flushed: make(chan struct{}),
		wakeSend: newSignal(), wakeRecv: newSignal(), byeSig: newSignal(), drained: newSignal(), checkSig: newSignal(),
		recvDone: make(chan struct{}), spare: newSpares(cfg),
	}
	p.init(ctx, node, name, cfg)
	pt := payloadTypeOf(codec)
	p.fixed = pt.Fixed
	if err := p.join(pt); err != nil {
		p.release()
		p.stop()
		return nil, err
	}
	p.pumps.Add(2)
	go p.dispatch()
	go p.sendLoop()
	go p.recvLoop()
	go p.supervise()
	return p, nil
}

func pairSuffix(slot int) string { return fmt.Sprintf(".iox-pair%d", slot) }

// join claims a free end (slot) of the pair and opens the ports: a publisher on
// the slot's service, a listener for events addressed to the slot, a subscriber
// on the other slot's service and a notifier for events addressed to it.
func (p *Pair[T]) join(pt PayloadType) error {
	p.node.CleanupDeadNodes() // frees the slot of a crashed former end
	svcOpts := []ServiceOption{WithPayloadType(pt), withHeader(), MaxPublishers(1), MaxSubscribers(1),
		BufferSize(p.cfg.queue), SafeOverflow(false)}
	evOpts := []ServiceOption{MaxNotifiers(2), MaxListeners(2), MaxEventID(evMaxID),
		NotifierCreatedEvent(evHello), NotifierDeadEvent(evDead)}
	for k := 0; k < 2 && p.pub == nil; k++ {
		svc, err := p.node.PublishSubscribe(p.name+pairSuffix(k), svcOpts...)
		if err != nil {
			return err
		}
		pub, err := svc.Publisher(FailWhenFull(0), MaxMessageSize(max(p.cfg.maxMessage, packLimit)),
			InitialMessageSize(packLimit))
		if errors.Is(err, ErrLimitReached) {
			svc.Close()
			continue
		}
		if err != nil {
			svc.Close()
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
	if p.peerSvc, err = p.node.PublishSubscribe(p.name+pairSuffix(1-p.slot), svcOpts...); err != nil {
		return err
	}
	p.opened(p.peerSvc)
	if p.sub, err = p.peerSvc.Subscriber(); err != nil {
		return err
	}
	p.opened(p.sub)
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

// Out is the channel of messages to the peer.
func (p *Pair[T]) Out() chan<- T { return p.out }

// In is the channel of messages from the peer; it is closed when the pair ends
// (after the peer's last message when the peer closed cleanly).
func (p *Pair[T]) In() <-chan T { return p.in }

// Connected reports whether the peer has arrived.
func (p *Pair[T]) Connected() bool { return p.connected.Load() }

// Send hands v to the pair, waiting while the pipeline is full. It fails with
// ctx's error, with ErrClosed after Close, or with the reason the pair ended;
// ErrMessageTooLarge for a []byte over the limit. nil means accepted, not yet
// delivered.
func (p *Pair[T]) Send(ctx context.Context, v T) error {
	if b, ok := any(v).([]byte); ok && len(b) > p.cfg.maxMessage {
		return &Error{Op: "send", Name: p.name, Kind: ErrMessageTooLarge,
			Detail: fmt.Sprintf("%d bytes, at most %d", len(b), p.cfg.maxMessage)}
	}
	return sendValue(ctx, p.out, p.closeReq, &p.end, v)
}

// Recv waits for the next message. When the pair has ended and every message is
// delivered it returns the reason (ErrPeerClosed after a clean close).
func (p *Pair[T]) Recv(ctx context.Context) (T, error) {
	return recvValue(ctx, p.in, &p.end)
}

// Recycle hands a received message's buffer back for reuse (with WithRecycling;
// otherwise it does nothing). Do not use b afterwards.
func (p *Pair[T]) Recycle(b []byte) { recycle(p.spare, b) }

// Close ends the pair gracefully (see the type's documentation) and waits until
// every goroutine it started has stopped. A second Close returns ErrClosed.
func (p *Pair[T]) Close() error {
	err := p.close("close pair")
	p.quitOnce.Do(func() { close(p.quit) })
	<-p.recvDone
	return err
}

// fail ends the pair with err (the first reason wins).
func (p *Pair[T]) fail(err error) {
	p.end.end(err)
}

// dispatch turns notifications addressed to this end into wake-ups of the pumps.
// It waits in the runtime poller, holding no OS thread.
func (p *Pair[T]) dispatch() {
	defer p.pumps.Done()
	var ids []EventID // reused: a wait allocates nothing
	for {
		var err error
		ids, err = p.lis.waitInto(p.stopCtx, ids)
		if err != nil {
			if p.stopCtx.Err() == nil {
				p.fail(err)
			}
			return
		}
		for _, id := range ids {
			switch id {
			case evData:
				wake(p.wakeRecv)
			case evSpace:
				wake(p.wakeSend)
			case evHello:
				p.contact.Store(true)
				wake(p.checkSig)
				wake(p.wakeSend)
			case evDead:
				p.peerDead.Store(true)
				wake(p.checkSig)
			case evBye:
				p.peerBye.Store(true)
				p.byePending.Store(true)
				wake(p.byeSig)
				wake(p.wakeRecv)
			case evDrained:
				wake(p.drained)
			}
		}
		// Let the woken pumps run before this goroutine re-arms the wait: the
		// message reaches its reader a system call sooner.
		runtime.Gosched()
	}
}

// sendLoop moves messages from Out into shared memory, one native call each,
// waiting (not spinning) while the peer is absent or its queue is full.
func (p *Pair[T]) sendLoop() {
	defer p.pumps.Done()
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	hdr := make([]byte, headerSize)
	outbox[T]{name: p.name, out: p.out, enc: p.enc, max: p.cfg.maxMessage, pack: !p.fixed,
		flush: p.flush, flushed: p.flushed, stop: p.stopCtx.Done(), fail: p.fail,
	}.pump(func(s outSample) bool { return p.deliver(s, hdr, retry) })
}

// deliver sends the sample until the peer's queue has taken it; false when the
// pair stops.
func (p *Pair[T]) deliver(s outSample, hdr []byte, retry *time.Timer) bool {
	putHeader(hdr, 0, 0, uint64(s.count))
	for {
		n, err := p.pub.sendHeader(s.data, hdr)
		if err == nil && n > 0 {
			p.contact.Store(true)
			if len(p.out) == 0 {
				p.ntf.Notify(evData)
			}
			return true
		}
		if err != nil && !errors.Is(err, ErrWouldBlock) {
			p.fail(err)
			return false
		}
		// the peer is absent or its queue is full: make sure it drains, then wait
		p.ntf.Notify(evData)
		retry.Reset(p.cfg.peerTimeout / 4)
		select {
		case <-p.wakeSend:
		case <-retry.C:
		case <-p.stopCtx.Done():
			retry.Stop()
			return false
		}
		retry.Stop()
	}
}

// recvLoop moves messages from shared memory to In. After the peer's bye it takes
// everything left at once, acknowledges it, delivers it and closes In.
func (p *Pair[T]) recvLoop() {
	defer close(p.recvDone)
	box := newInbox(p.name, p.sub, p.codec, true, false)
	box.spare = p.spare
	box.deliver(p.in, delivery{
		ctx: p.ctx, quit: p.quit, wake: p.wakeRecv, bye: p.byeSig,
		byeSaid: func() bool { return p.byePending.Swap(false) },
		acked: func() {
			p.ntf.Notify(evDrained)
			p.fail(&Error{Op: "receive", Name: p.name, Kind: ErrPeerClosed})
		},
		endAtBye:  true,
		room:      func() { p.ntf.Notify(evSpace) },
		got:       func() { p.contact.Store(true) },
		full:      p.cfg.queue,
		spin:      p.cfg.spin,
		idle:      p.cfg.peerTimeout / 4,
		hasWaiter: func() bool { has, err := p.sub.HasMessages(); return err != nil || has },
		fail:      p.fail,
	})
}

// supervise watches the peer, ends the pair when asked or when the peer goes, and
// releases everything.
func (p *Pair[T]) supervise() {
	tick := time.NewTicker(p.cfg.peerTimeout / 4)
	defer tick.Stop()
	p.check()
	var reason error
	graceful := false
	for reason == nil {
		select {
		case <-tick.C:
			reason = p.check()
		case <-p.checkSig:
			reason = p.check()
		case <-p.end.done:
			reason = p.end.reason()
		case <-p.closeReq:
			graceful, reason = true, &Error{Op: "pair", Name: p.name, Kind: ErrClosed}
		case <-p.ctx.Done():
			reason = p.ctx.Err()
		}
	}
	if graceful {
		p.linger(tick)
	} else if !errors.Is(reason, ErrPeerGone) {
		p.ntf.Notify(evBye) // the peer sees a clean end
	}
	p.fail(reason) // before In closes, so a reader that sees it closed finds the reason
	if !errors.Is(reason, ErrPeerClosed) {
		p.quitOnce.Do(func() { close(p.quit) })
	}
	p.teardown(reason)
}

// linger sends what Out holds, says bye, and waits until the peer has taken it
// all, the peer is gone, or the linger time is over.
func (p *Pair[T]) linger(tick *time.Ticker) {
	deadline := time.NewTimer(p.cfg.linger)
	defer deadline.Stop()
	close(p.flush)
	wait := func(c <-chan struct{}) bool {
		for {
			select {
			case <-c:
				return true
			case <-deadline.C:
				return false
			case <-tick.C:
				if p.check() != nil {
					return false
				}
			}
		}
	}
	if !wait(p.flushed) || !p.peerSeen || p.peerBye.Load() && p.peerGone() {
		return
	}
	p.ntf.Notify(evBye)
	wait(p.drained)
}

// check looks for the peer: it notes its arrival, and reports ErrPeerCrashed when
// a peer that was there is gone without having said bye.
func (p *Pair[T]) check() error {
	p.node.CleanupDeadNodes()
	node, present := p.peer()
	if !p.peerSeen {
		if present {
			p.peerSeen, p.peerNode = true, node
			p.connected.Store(true)
			wake(p.wakeSend)
			return nil
		}
		if !p.contact.Load() && !p.peerDead.Load() {
			return nil
		}
		// messages went to or came from a peer this end never got to see:
		// it came and went between two looks
		p.peerSeen = true
	}
	if present && node == p.peerNode {
		p.suspicious = false
		return nil
	}
	if p.peerBye.Load() {
		return nil // the receiver ends the pair once it delivered the rest
	}
	if p.suspicious || p.peerDead.Load() || present { // present: another process took the slot
		return &Error{Op: "pair", Name: p.name, Kind: ErrPeerCrashed}
	}
	p.suspicious = true // a bye may still be on its way: confirm on the next look
	return nil
}

// peer reports the node of the peer's subscriber on this end's service, and
// whether the peer has both of its ports.
func (p *Pair[T]) peer() (UniqueID, bool) {
	subs, err := p.mineSvc.Subscribers()
	if err != nil || len(subs) == 0 {
		return UniqueID{}, false
	}
	pubs, _, err := p.peerSvc.Counts()
	return subs[0].Node, err == nil && pubs > 0
}

func (p *Pair[T]) peerGone() bool {
	_, present := p.peer()
	return !present
}
