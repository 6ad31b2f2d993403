package iox

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/iox-go/iox/internal/ffi"
)

// One-to-many channels: Pub sends every message to every Sub of a name.
//
// Lossless (the default): each subscriber receives every message published after
// it joined, in order, once. A subscriber whose queue is full holds the publisher
// back; a subscriber that crashed is noticed within the peer timeout and removed,
// so it never blocks the publisher for longer. Messages carry a small header
// (publisher tag and sequence number), so only iox peers use lossless services.
//
// Lossy: the publisher never waits; a slow subscriber loses its oldest messages.
// The service is a plain iceoryx2 one that Rust, C++ or Python peers can open;
// subscribers also poll (WithPoll) for publishers that never notify.
//
// Publishers come and go: a Sub stays open across them and receives from whichever
// are there. iceoryx2 discards what a publisher sent but a subscriber had not taken
// when that publisher closes, so a lossless Pub's Close waits (up to the linger
// time) until every subscriber has taken everything.

const (
	spaceSuffix = ".iox-space" // events from subscribers to publishers
	ackSuffix   = ".iox-ack"   // subscribers' acknowledgements of a publisher's bye
)

// PeerEventKind says what happened to a subscriber.
type PeerEventKind int

const (
	PeerJoined  PeerEventKind = iota // a subscriber appeared
	PeerLeft                         // a subscriber closed
	PeerCrashed                      // a subscriber's process died; it was removed
)

func (k PeerEventKind) String() string {
	return [...]string{"joined", "left", "crashed"}[k]
}

// PeerEvent reports a change among a publisher's subscribers.
type PeerEvent struct {
	Kind PeerEventKind
	Port PortInfo
}

// joinService opens the service name checking only base (the payload type), so
// channels join services that other programs created with other settings; when
// there is none it creates one with base and settings.
func joinService[S any](open func(string, ...ServiceOption) (S, error), name string, base, settings []ServiceOption) (S, error) {
	s, err := open(name, append(append([]ServiceOption{}, base...), OpenOnly())...)
	if !errors.Is(err, ErrServiceNotFound) {
		return s, err
	}
	return open(name, append(append([]ServiceOption{}, base...), settings...)...)
}

// withHeader gives a service the iox header (see headerSize).
func withHeader() ServiceOption {
	return func(c *serviceConfig) { c.ps.HeaderSize = headerSize }
}

func pubsubService(node *Node, name string, pt PayloadType, cfg chanConfig) (*PubSubService, error) {
	typed := []ServiceOption{WithPayloadType(pt)}
	if !cfg.lossy {
		typed = append(typed, withHeader())
	}
	return joinService(node.PublishSubscribe, name, typed,
		[]ServiceOption{BufferSize(cfg.queue), History(cfg.history), SafeOverflow(cfg.lossy),
			MaxSubscribers(cfg.maxSubscribers), MaxPublishers(cfg.maxPublishers)})
}

func eventService(node *Node, name string, cfg chanConfig) (*EventService, error) {
	n := 2 * (cfg.maxSubscribers + cfg.maxPublishers) // room for crashed ports not yet removed
	return joinService(node.Event, name, nil, []ServiceOption{MaxNotifiers(n), MaxListeners(n), MaxEventID(evMaxID)})
}

// Pub is the sending end of a publish-subscribe channel. It is safe for use by
// multiple goroutines.
type Pub[T any] struct {
	chanBase
	svc      *PubSubService
	codec    Codec[T]
	enc      func([]byte, T) ([]byte, error)
	fixed    bool // a fixed-size payload: one message per sample
	pub      *Publisher
	ntf      *Notifier // data events to subscribers
	spaceLis *Listener // space events from lossless subscribers
	ackEv    *EventService
	out      chan T
	tag      uint64
	seq      uint64
	flush    chan struct{}
	flushed  chan struct{}
	wakeSend chan struct{}
	peers    chan PeerEvent
	known    map[UniqueID]PortInfo
	subs     atomic.Int64
}

// OpenPub opens a publisher of []byte messages on the channel called name; ctx
// bounds its life.
func OpenPub(ctx context.Context, node *Node, name string, opts ...ChanOption) (*Pub[[]byte], error) {
	return OpenPubOf[[]byte](ctx, node, name, Raw{}, opts...)
}

// OpenPubOf opens a publisher of T values encoded by codec.
func OpenPubOf[T any](ctx context.Context, node *Node, name string, codec Codec[T], opts ...ChanOption) (*Pub[T], error) {
	cfg, err := prepare(ctx, "open publisher channel", name, spaceSuffix, opts)
	if err != nil {
		return nil, err
	}
	p := &Pub[T]{codec: codec, enc: encoder(codec), out: make(chan T, cfg.chanCap),
		flush: make(chan struct{}), flushed: make(chan struct{}), wakeSend: newSignal(),
		peers: make(chan PeerEvent, 64), known: map[UniqueID]PortInfo{}}
	p.init(ctx, node, name, cfg)
	var tag [8]byte
	rand.Read(tag[:])
	p.tag = binary.NativeEndian.Uint64(tag[:])
	pt := payloadTypeOf(codec)
	p.fixed = pt.Fixed
	if err := p.open(pt); err != nil {
		p.release()
		p.stop()
		return nil, err
	}
	p.scan()
	p.pumps.Add(1)
	go p.sendLoop()
	if !cfg.lossy {
		p.pumps.Add(1)
		go p.listenSpace()
	}
	go p.supervise()
	return p, nil
}

func (p *Pub[T]) open(pt PayloadType) error {
	var err error
	if p.svc, err = pubsubService(p.node, p.name, pt, p.cfg); err != nil {
		return err
	}
	p.opened(p.svc)
	if p.pub, err = p.svc.Publisher(MaxMessageSize(max(p.cfg.maxMessage, packLimit)), FailWhenFull(0),
		InitialMessageSize(packLimit)); err != nil {
		return err
	}
	p.opened(p.pub)
	ev, err := eventService(p.node, p.name, p.cfg)
	if err != nil {
		return err
	}
	p.opened(ev)
	if p.ntf, err = ev.Notifier(); err != nil {
		return err
	}
	p.opened(p.ntf)
	if p.cfg.lossy {
		return nil
	}
	space, err := eventService(p.node, p.name+spaceSuffix, p.cfg)
	if err != nil {
		return err
	}
	p.opened(space)
	if p.spaceLis, err = space.Listener(); err != nil {
		return err
	}
	p.opened(p.spaceLis)
	if p.ackEv, err = eventService(p.node, p.name+ackSuffix, p.cfg); err != nil {
		return err
	}
	p.opened(p.ackEv)
	return nil
}

// C is the channel of messages to publish.
func (p *Pub[T]) C() chan<- T { return p.out }

// Send hands v to the publisher, waiting while the pipeline is full (lossless
// mode). It fails with ctx's error, with ErrClosed after Close, or with the reason
// the channel ended; ErrMessageTooLarge for a []byte over the limit.
func (p *Pub[T]) Send(ctx context.Context, v T) error {
	if b, ok := any(v).([]byte); ok && len(b) > p.cfg.maxMessage {
		return &Error{Op: "send", Name: p.name, Kind: ErrMessageTooLarge,
			Detail: fmt.Sprintf("%d bytes, at most %d", len(b), p.cfg.maxMessage)}
	}
	return sendValue(ctx, p.out, p.closeReq, &p.end, v)
}

// Subscribers returns how many subscribers the publisher saw at its last look
// (it looks every quarter of the peer timeout).
func (p *Pub[T]) Subscribers() int { return int(p.subs.Load()) }

// Peers reports subscribers joining, leaving and crashing. Events are dropped when
// nobody reads them and 64 are waiting.
func (p *Pub[T]) Peers() <-chan PeerEvent { return p.peers }

// Close stops publishing: it sends what C had accepted and, in lossless mode,
// waits up to the linger time until every subscriber has taken it. A second Close
// returns ErrClosed.
func (p *Pub[T]) Close() error { return p.close("close publisher channel") }

// sendLoop publishes the messages of C, one native call each.
func (p *Pub[T]) sendLoop() {
	defer p.pumps.Done()
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	hdr, lens := make([]byte, headerSize), make([]uint64, 1)
	outbox[T]{name: p.name, out: p.out, enc: p.enc, max: p.cfg.maxMessage, pack: !p.cfg.lossy && !p.fixed && p.cfg.history == 0, // history counts samples
		flush: p.flush, flushed: p.flushed, stop: p.stopCtx.Done(), fail: p.end.end,
	}.pump(func(s outSample) bool { return p.publish(s, hdr, lens, retry) })
}

// publish sends the sample to every subscriber. In lossless mode a full
// subscriber makes it wait for room and send the sample again; subscribers drop
// the copies they already have (same tag and sequence number).
func (p *Pub[T]) publish(s outSample, hdr []byte, lens []uint64, retry *time.Timer) bool {
	p.seq++
	putHeader(hdr, p.tag, p.seq, uint64(s.count))
	lens[0] = uint64(len(s.data))
	backoff := time.Duration(0)
	for {
		var k int
		var err error
		if p.cfg.lossy {
			k, err = p.pub.sendBatch(s.data, lens, nil, 0)
		} else {
			k, err = p.pub.sendBatch(s.data, lens, hdr, ffi.AllSubscribers)
		}
		if err != nil && !errors.Is(err, ErrWouldBlock) {
			p.end.end(err)
			return false
		}
		if k == 1 {
			break
		}
		p.ntf.Notify(evData)
		// A full subscriber reports ErrWouldBlock and signals room when it has
		// taken its queue. A subscriber that was not reached without saying so
		// (not yet attached to the publisher's newest memory segment) signals
		// nothing: look again soon, backing off.
		wait := p.cfg.peerTimeout / 4
		if err == nil {
			backoff = min(max(2*backoff, 50*time.Microsecond), wait)
			wait = backoff
		}
		retry.Reset(wait)
		select {
		case <-p.wakeSend:
		case <-retry.C:
		case <-p.stopCtx.Done():
			retry.Stop()
			return false
		}
		retry.Stop()
	}
	if len(p.out) == 0 {
		p.ntf.Notify(evData)
	}
	return true
}

// listenSpace wakes the sender when a subscriber made room.
func (p *Pub[T]) listenSpace() {
	defer p.pumps.Done()
	for {
		if _, err := p.spaceLis.Wait(p.stopCtx); err != nil {
			if p.stopCtx.Err() == nil {
				p.end.end(err)
			}
			return
		}
		wake(p.wakeSend)
	}
}

// scan removes crashed processes' ports, then compares the subscribers with the
// last look and reports the differences.
func (p *Pub[T]) scan() {
	before, err := p.svc.Subscribers()
	if err != nil {
		return
	}
	p.node.CleanupDeadNodes()
	after, err := p.svc.Subscribers()
	if err != nil {
		return
	}
	now := map[UniqueID]PortInfo{}
	for _, s := range after {
		now[s.Port] = s
	}
	listed := map[UniqueID]bool{}
	for _, s := range before {
		listed[s.Port] = true
	}
	for id, s := range p.known {
		if _, ok := now[id]; !ok {
			kind := PeerLeft
			if listed[id] { // still listed before the cleanup: its process had died
				kind = PeerCrashed
				wake(p.wakeSend)
			}
			p.report(PeerEvent{kind, s})
		}
	}
	for id, s := range now {
		if _, ok := p.known[id]; !ok {
			p.report(PeerEvent{PeerJoined, s})
		}
	}
	p.known = now
	p.subs.Store(int64(len(now)))
	p.pub.Update() // late joiners get the history even while nothing is sent
}

func (p *Pub[T]) report(e PeerEvent) {
	select {
	case p.peers <- e:
	default:
	}
}

// supervise looks at the subscribers regularly and ends the channel when asked.
func (p *Pub[T]) supervise() {
	tick := time.NewTicker(p.cfg.peerTimeout / 4)
	defer tick.Stop()
	var reason error
	graceful := false
	for reason == nil {
		select {
		case <-tick.C:
			p.scan()
		case <-p.end.done:
			reason = p.end.reason()
		case <-p.closeReq:
			graceful, reason = true, &Error{Op: "publisher channel", Name: p.name, Kind: ErrClosed}
		case <-p.ctx.Done():
			reason = p.ctx.Err()
		}
	}
	if graceful {
		p.linger(tick)
	}
	p.ntf.Notify(evBye)
	p.teardown(reason)
}

// linger sends what C holds and, in lossless mode, says bye and waits until every
// subscriber acknowledged that it took everything, or the linger time is over.
func (p *Pub[T]) linger(tick *time.Ticker) {
	deadline := time.NewTimer(p.cfg.linger)
	defer deadline.Stop()
	close(p.flush)
	select {
	case <-p.flushed:
	case <-deadline.C:
		return
	}
	if p.cfg.lossy {
		return
	}
	p.ntf.Notify(evBye)
	for {
		_, subs, err := p.svc.Counts()
		acks, _, err2 := p.ackEv.Counts()
		if err != nil || err2 != nil || acks >= subs {
			return
		}
		select {
		case <-deadline.C:
			return
		case <-time.After(time.Millisecond):
		case <-tick.C:
			p.node.CleanupDeadNodes()
		}
	}
}

// Sub is the receiving end of a publish-subscribe channel.
type Sub[T any] struct {
	chanBase
	svc      *PubSubService
	codec    Codec[T]
	sub      *Subscriber
	lis      *Listener
	spaceNtf *Notifier
	ackEv    *EventService
	ack      *Notifier // present while acknowledging a publisher's bye
	ackUntil time.Time
	in       chan T
	quit     chan struct{}
	wake     chan struct{}
	byeSig   chan struct{}
	bye      atomic.Bool
	recvDone chan struct{}
	spare    chan []byte // WithRecycling's free list
}

// OpenSub opens a subscriber of []byte messages on the channel called name; ctx
// bounds its life. It receives the messages published after it joined (and the
// history, WithHistory).
func OpenSub(ctx context.Context, node *Node, name string, opts ...ChanOption) (*Sub[[]byte], error) {
	return OpenSubOf[[]byte](ctx, node, name, Raw{}, opts...)
}

// OpenSubOf opens a subscriber of T values decoded by codec.
func OpenSubOf[T any](ctx context.Context, node *Node, name string, codec Codec[T], opts ...ChanOption) (*Sub[T], error) {
	cfg, err := prepare(ctx, "open subscriber channel", name, spaceSuffix, opts)
	if err != nil {
		return nil, err
	}
	s := &Sub[T]{codec: codec, in: make(chan T, cfg.chanCap), quit: make(chan struct{}),
		wake: newSignal(), byeSig: newSignal(), recvDone: make(chan struct{}), spare: newSpares(cfg)}
	s.init(ctx, node, name, cfg)
	if err := s.open(payloadTypeOf(codec)); err != nil {
		s.release()
		s.stop()
		return nil, err
	}
	s.pumps.Add(1)
	go s.dispatch()
	go s.recvLoop()
	go s.supervise()
	return s, nil
}

func (s *Sub[T]) open(pt PayloadType) error {
	var err error
	if s.svc, err = pubsubService(s.node, s.name, pt, s.cfg); err != nil {
		return err
	}
	s.opened(s.svc)
	if !s.cfg.lossy && s.svc.SafeOverflow() {
		return &Error{Op: "open subscriber channel", Name: s.name, Kind: ErrIncompatible,
			Detail: "a lossless channel needs a service without safe overflow"}
	}
	if s.sub, err = s.svc.Subscriber(SubscriberBuffer(min(s.cfg.queue, s.svc.BufferSize()))); err != nil {
		return err
	}
	s.opened(s.sub)
	ev, err := eventService(s.node, s.name, s.cfg)
	if err != nil {
		return err
	}
	s.opened(ev)
	if s.lis, err = ev.Listener(); err != nil {
		return err
	}
	s.opened(s.lis)
	if s.cfg.lossy {
		return nil
	}
	space, err := eventService(s.node, s.name+spaceSuffix, s.cfg)
	if err != nil {
		return err
	}
	s.opened(space)
	if s.spaceNtf, err = space.Notifier(); err != nil {
		return err
	}
	s.opened(s.spaceNtf)
	if s.ackEv, err = eventService(s.node, s.name+ackSuffix, s.cfg); err != nil {
		return err
	}
	s.opened(s.ackEv)
	return nil
}

// C is the channel of received messages; it is closed when the subscriber ends.
func (s *Sub[T]) C() <-chan T { return s.in }

// Recv waits for the next message; after the end it returns the reason.
func (s *Sub[T]) Recv(ctx context.Context) (T, error) {
	return recvValue(ctx, s.in, &s.end)
}

// Recycle hands a received message's buffer back for reuse (with WithRecycling;
// otherwise it does nothing). Do not use b afterwards.
func (s *Sub[T]) Recycle(b []byte) { recycle(s.spare, b) }

// Close stops the subscriber and waits for its goroutines. A second Close returns
// ErrClosed.
func (s *Sub[T]) Close() error {
	err := s.close("close subscriber channel")
	<-s.recvDone
	return err
}

// dispatch turns data and bye notifications into wake-ups of the receiver.
func (s *Sub[T]) dispatch() {
	defer s.pumps.Done()
	var ids []EventID // reused: a wait allocates nothing
	for {
		var err error
		ids, err = s.lis.waitInto(s.stopCtx, ids)
		if err != nil {
			if s.stopCtx.Err() == nil {
				s.end.end(err)
			}
			return
		}
		for _, id := range ids {
			switch id {
			case evData:
				wake(s.wake)
			case evBye:
				s.bye.Store(true)
				wake(s.byeSig)
			}
		}
		// Let the woken pumps run before this goroutine re-arms the wait: the
		// message reaches its reader a system call sooner.
		runtime.Gosched()
	}
}

// recvLoop moves messages from shared memory to C.
func (s *Sub[T]) recvLoop() {
	defer close(s.recvDone)
	box := newInbox(s.name, s.sub, s.codec, !s.cfg.lossy, !s.cfg.lossy)
	box.spare = s.spare
	box.deliver(s.in, delivery{
		ctx: s.ctx, quit: s.quit, wake: s.wake, bye: s.byeSig,
		byeSaid: func() bool { s.expireAck(); return s.bye.Swap(false) },
		acked:   s.acknowledge,
		room: func() {
			if s.spaceNtf != nil {
				s.spaceNtf.Notify(evSpace)
			}
		},
		full:      min(s.cfg.queue, s.svc.BufferSize()),
		spin:      s.cfg.spin,
		idle:      s.idle(),
		hasWaiter: func() bool { has, err := s.sub.HasMessages(); return err != nil || has },
		fail:      s.end.end,
	})
}

// idle is how long the receiver waits for a notification before looking anyway:
// lossy services may have publishers that never notify; iox's lossless publishers
// always do.
func (s *Sub[T]) idle() time.Duration {
	if s.cfg.lossy {
		return s.cfg.poll
	}
	return s.cfg.peerTimeout / 4
}

// acknowledge tells a closing lossless publisher that everything it sent has left
// shared memory: the publisher counts the acknowledging notifiers.
func (s *Sub[T]) acknowledge() {
	if s.ackEv == nil || s.ack != nil {
		s.ackUntil = time.Now().Add(ackTime(s.cfg.linger))
		return
	}
	if n, err := s.ackEv.Notifier(); err == nil {
		s.ack, s.ackUntil = n, time.Now().Add(ackTime(s.cfg.linger))
	}
}

// ackTime is how long an acknowledgement stays: twice the linger time, without
// overflowing for a linger meant as "forever".
func ackTime(linger time.Duration) time.Duration {
	if linger > math.MaxInt64/2 {
		return math.MaxInt64
	}
	return 2 * linger
}

// expireAck withdraws an acknowledgement once the publisher had time to see it.
func (s *Sub[T]) expireAck() {
	if s.ack != nil && time.Now().After(s.ackUntil) {
		s.ack.Close()
		s.ack = nil
	}
}

// supervise ends the subscriber when asked and releases everything.
func (s *Sub[T]) supervise() {
	var reason error
	select {
	case <-s.end.done:
		reason = s.end.reason()
	case <-s.closeReq:
		reason = &Error{Op: "subscriber channel", Name: s.name, Kind: ErrClosed}
	case <-s.ctx.Done():
		reason = s.ctx.Err()
	}
	s.end.end(reason)
	close(s.quit)
	<-s.recvDone // the receiver owns the acknowledging notifier until it stops
	if s.ack != nil {
		s.ack.Close()
	}
	s.teardown(reason)
}
