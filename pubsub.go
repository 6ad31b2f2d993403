package iox

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/iox-go/iox/internal/ffi"
)

// One-to-many channels: Pub sends every message to every Sub of a name.
//
// Lossless (the default): each subscriber receives every message published after
// it joined, in order, once. A subscriber whose queue is full holds the publisher
// back; a subscriber whose process died is noticed at once (pidfd) and removed,
// so it never blocks the publisher for longer. A subscriber watches its
// publishers' processes the same way: what a publisher that died sent is
// delivered, also when it died before it could wake the subscriber (see
// senders.go). Messages carry iox's header (see wire.go), so only iox peers
// use lossless services.
//
// Lossy: the publisher never waits; a slow subscriber loses its oldest messages.
// The service is a plain iceoryx2 one that Rust, C++ or Python peers can open;
// subscribers also poll (WithPoll) for publishers that never notify.
//
// Services: a channel called NAME uses the publish-subscribe service NAME, the
// event service NAME for "data waiting" notifications (event id 0, as in
// iceoryx2's event-based-communication examples), and the event service
// NAME.iox-space for iox's own signals from subscribers to publishers. A
// lossless publisher's Close also opens NAME.iox-ack.<tag> for the
// subscribers' confirmations.

const (
	spaceSuffix = ".iox-space" // events from subscribers to publishers
	ackSuffix   = ".iox-ack."  // + a publisher's tag: confirmations of its bye
)

// PeerEventKind says what happened to a subscriber.
type PeerEventKind int

const (
	PeerJoined  PeerEventKind = iota // a subscriber appeared
	PeerLeft                         // a subscriber closed
	PeerCrashed                      // a subscriber's process died; it was removed
)

func (k PeerEventKind) String() string {
	switch k {
	case PeerJoined:
		return "joined"
	case PeerLeft:
		return "left"
	case PeerCrashed:
		return "crashed"
	}
	return fmt.Sprintf("PeerEventKind(%d)", int(k))
}

// PeerEvent reports a change among a publisher's subscribers.
type PeerEvent struct {
	Kind PeerEventKind
	Port PortInfo
}

// joinService opens the service name checking only base (the payload type), so
// channels join services that other programs created with other settings; when
// there is none it creates one with base and settings.
func joinService[S any](open func(string, ...Option) (S, error), name string, base, settings []Option) (S, error) {
	s, err := open(name, append(append([]Option{}, base...), OpenOnly())...)
	if !errors.Is(err, ErrServiceNotFound) {
		return s, err
	}
	return open(name, append(append([]Option{}, base...), settings...)...)
}

// withHeader gives a service the iox header (see headerSize).
func withHeader() Option {
	return func(o *options) { o.set |= optHeader; o.svc.ps.HeaderSize = headerSize }
}

// pubsubService joins the channel's publish-subscribe service. A publisher's
// BufferSize must match the service's buffer, a subscriber's must fit in it (it
// is that subscriber's own buffer); both are checked whichever end came first.
func pubsubService(node *Node, op, name string, pt PayloadType, cfg chanConfig, subscriber bool) (*PubSubService, error) {
	typed := []Option{WithPayloadType(pt)}
	if !cfg.lossy {
		typed = append(typed, withHeader())
	}
	svc, err := joinService(node.PublishSubscribe, name, typed,
		[]Option{BufferSize(cfg.queue), History(cfg.history), SafeOverflow(cfg.lossy),
			MaxSubscribers(cfg.maxSubscribers), MaxPublishers(cfg.maxPublishers), MaxBorrowed(cfg.maxBorrowed)})
	if errors.Is(err, ErrIncompatibleType) {
		var e *Error
		if errors.As(err, &e) {
			if cfg.lossy {
				e.Detail += "; an iox lossless channel may use this name: open it without Lossy()"
			} else {
				e.Detail += "; a lossless channel carries iox's header, which plain iceoryx2 peers do not: use Lossy() to join a plain service"
			}
		}
		return nil, err
	}
	if err != nil {
		return nil, err
	}
	if cfg.set&optBufferSize != 0 && (svc.BufferSize() < cfg.queue || (!subscriber && svc.BufferSize() != cfg.queue)) {
		svc.Close()
		return nil, &Error{Op: op, Name: name, Kind: ErrIncompatible,
			Detail: fmt.Sprintf("the service holds %d messages per subscriber, BufferSize asks for %d", svc.BufferSize(), cfg.queue)}
	}
	if !cfg.lossy && svc.SafeOverflow() {
		svc.Close()
		return nil, &Error{Op: op, Name: name, Kind: ErrIncompatible,
			Detail: "a lossless channel needs a service without safe overflow; use Lossy() to join this one"}
	}
	return svc, nil
}

// eventService joins the event service of a channel: data events (suffix "")
// or iox's space events. The data events' service has the channel's own name,
// as in iceoryx2's event-based examples, so programs in other languages share
// it: it is created with iceoryx2's default largest event id, which leaves them
// the ids iox does not use (iox signals evData and evFull there and ignores the
// others).
func eventService(node *Node, name string, cfg chanConfig) (*EventService, error) {
	n := 2 * (cfg.maxSubscribers + cfg.maxPublishers) // room for crashed ports not yet removed
	settings := []Option{MaxNotifiers(n), MaxListeners(n)}
	space := len(name) > len(spaceSuffix) && name[len(name)-len(spaceSuffix):] == spaceSuffix
	if space {
		settings = append(settings, MaxEventID(evMaxID))
	}
	if space || !cfg.lossy {
		// Only iox's own ends use these: listeners hear of notifiers that
		// come, go or are found dead (a lossless subscriber's listener, of its
		// publishers: see senders.go).
		settings = append(settings, NotifierCreatedEvent(evHello), NotifierDroppedEvent(evLeft), NotifierDeadEvent(evDead))
	}
	return joinService(node.Event, name, nil, settings)
}

// ports collects what a channel opened, to close it in reverse order.
type ports []interface{ Close() error }

func (p *ports) add(c interface{ Close() error }) { *p = append(*p, c) }

func (p *ports) release() {
	for i := len(*p) - 1; i >= 0; i-- {
		(*p)[i].Close()
	}
	*p = nil
}

// Pub is the sending end of a publish-subscribe channel. It is safe for use by
// multiple goroutines.
type Pub[T any] struct {
	node  *Node
	name  string
	cfg   chanConfig
	life  *life
	ports ports
	svc   *PubSubService
	pub   *Publisher
	ntf   *Notifier // data events to subscribers
	space *EventService
	lis   *Listener // hello and space events from subscribers
	hub   *hub
	tx    *sender[T]
	hb    []byte
	bye   []byte // the body of a bye: empty, or one zero value of a fixed type
	lens  []uint64
	txW   chan struct{}

	outs      *outlet[T]
	peers     chan PeerEvent
	peersOnce sync.Once
	feeds     group
	torn      chan struct{}
	stopTx    chan struct{}
	closer    closer

	mu          sync.Mutex
	known       map[UniqueID]PortInfo // subscribers at the last look
	watched     nodeWatches           // the subscribers' processes
	crashed     map[UniqueID]bool     // ... and whose processes died
	words       []portWord            // subscribers' wait words (a slice: every send looks at them all)
	peersClosed bool                  // Peers' channel is closed
	rescanAt    time.Duration         // when to look again for the words of subscribers that had none
	rescanGap   time.Duration         // ... and how long after that (see wordRescan)

	// Subscriber news for a send waiting for room (see awaitRoom): Peers'
	// goroutine waits on the same hub for the same ids and may take them.
	news     atomic.Uint64                      // batches of subscriber ids the hub drained
	roomWait atomic.Pointer[context.CancelFunc] // ends the wait of awaitRoom
	byeOut   atomic.Bool                        // Close's bye went out (tests read it)
	rushed   atomic.Uint64                      // awaitRoom's returns at once for news (tests read them)
	waited   atomic.Uint64                      // awaitRoom's waits in the hub (tests read them)
}

// A subscriber without a word when the publisher looked (one in another
// language, or an iox one that had listed its port but not made its word yet)
// gets a notification after every send. The publisher looks for the missing
// words again after wordRescanMin, then ever less often up to wordRescanMax:
// an iox subscriber's word is found soon after it was made, and the look
// costs little where none will ever come.
const (
	wordRescanMin = time.Millisecond
	wordRescanMax = time.Second
)

// portWord is a subscriber port's wait word.
type portWord struct {
	port UniqueID
	*ffi.WaitWord
}

// OpenPub opens a publisher of []byte messages on the channel called name; ctx
// bounds its life.
func OpenPub(ctx context.Context, node *Node, name string, opts ...Option) (*Pub[[]byte], error) {
	return OpenPubOf[[]byte](ctx, node, name, Raw{}, opts...)
}

// OpenPubOf opens a publisher of T values encoded by codec.
func OpenPubOf[T any](ctx context.Context, node *Node, name string, codec Codec[T], opts ...Option) (*Pub[T], error) {
	const op = "open publisher channel"
	cfg, err := prepare(ctx, op, name, ackSuffix+"0123456789abcdef", opts, nodeArg(node), codecArg("codec", codec))
	if err != nil {
		return nil, err
	}
	if err := cfg.only(op, name, "publisher", optSpin, optPoll, optRecycling); err != nil {
		return nil, err
	}
	node, hold, err := node.keep(op, name)
	if err != nil {
		return nil, err
	}
	p := &Pub[T]{node: node, name: name, cfg: cfg, life: newLife(), hb: make([]byte, headerSize), lens: make([]uint64, 1),
		txW: newSignal(), outs: newOutlet[T](), peers: make(chan PeerEvent, 64), torn: make(chan struct{}),
		stopTx: make(chan struct{}),
		known:  map[UniqueID]PortInfo{}, watched: newNodeWatches(node.lib, cfg.peerTimeout/4), crashed: map[UniqueID]bool{},
	}
	p.ports.add(hold) // released last
	pt := payloadTypeOf(codec)
	if err := p.open(op, pt); err != nil {
		p.ports.release()
		return nil, err
	}
	if pt.Fixed { // a sample of a fixed type holds exactly one value, also a bye
		p.bye = make([]byte, pt.Size)
	}
	p.hub = newHub(p.lis, p.onIDs)
	p.tx = newSender(name, p.life, codec, cfg, !cfg.lossy && !pt.Fixed && cfg.history == 0) // history counts samples
	p.tx.tag = randomTag()
	p.tx.deliver, p.tx.await, p.tx.stop, p.tx.news = p.deliver, p.awaitRoom, p.stopTx, p.news.Load
	p.tx.fail = func(err error) { p.life.end(err, false); p.hub.kick() }
	p.tx.present = func() bool { return p.Subscribers() >= max(p.cfg.waitSubs, 1) }
	p.tx.fits = p.pub.fits
	p.tx.loanRoom = p.loanRoom
	p.tx.sendLoan = p.sendLoan
	p.scan()
	if cfg.history > 0 {
		p.watchPeers() // late joiners get the history even while nothing is sent
	}
	p.closer.watch(ctx, "publisher channel", name, p.shutdown)
	return p, nil
}

func (p *Pub[T]) open(op string, pt PayloadType) error {
	var err error
	if p.svc, err = pubsubService(p.node, op, p.name, pt, p.cfg, false); err != nil {
		return err
	}
	p.ports.add(p.svc)
	if p.pub, err = p.svc.Publisher(MaxMessageSize(max(p.cfg.maxMessage, packLimit)), FailWhenFull(0),
		InitialMessageSize(min(packStart, max(p.cfg.maxMessage, 1)))); err != nil {
		return err
	}
	p.ports.add(p.pub)
	ev, err := eventService(p.node, p.name, p.cfg)
	if err != nil {
		return err
	}
	p.ports.add(ev)
	if p.ntf, err = ev.Notifier(); err != nil {
		return err
	}
	p.ports.add(p.ntf)
	if p.space, err = eventService(p.node, p.name+spaceSuffix, p.cfg); err != nil {
		return err
	}
	p.ports.add(p.space)
	if p.lis, err = p.space.Listener(); err != nil {
		return err
	}
	p.ports.add(p.lis)
	return nil
}

// Send hands v to the publisher: it is encoded and copied into shared memory
// (or into the send queue while a lossless subscriber is full, or while fewer
// than WaitSubscribers subscribers are there) before Send returns, so the caller
// may reuse v's memory. Send waits while the queue is full. An oversized or
// unencodable value fails this Send alone; once the channel has ended Send
// returns Err.
func (p *Pub[T]) Send(ctx context.Context, v T) error { return p.tx.send(ctx, v) }

// Out is the channel of messages to publish; it has no buffer, and a value sent
// on it is handed over as by Send; one that Out took before Close is published
// before the bye, and counts in Close's result. After the channel ended a send
// on Out blocks, so select on Done as well. Values Send refuses go to OnDrop. A
// goroutine behind it starts on the first call.
// That goroutine is a sender of its own: values sent on Out keep their order,
// but a Send made after a send on Out returned may arrive before that value.
func (p *Pub[T]) Out() chan<- T { return p.outs.open(&p.feeds, p.tx, p.life, p.cfg.onDrop) }

// Pending reports how many messages Send accepted that are not in shared
// memory yet (they wait in the send queue).
func (p *Pub[T]) Pending() int {
	_, queued := p.tx.counts()
	return queued
}

// Flush waits until every message Send accepted so far is in shared memory,
// ctx ends or the channel ends: a program that must know its messages left
// the process (before it tells a source they are safe) flushes. After Close
// it returns ErrClosed (Close's own result says what was delivered).
func (p *Pub[T]) Flush(ctx context.Context) error {
	if ctx == nil {
		return nilArg("flush", p.name, "ctx")
	}
	if err := p.life.closedHere(); err != nil {
		return err
	}
	if p.tx.flush(ctx) {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := p.life.err(); err != nil {
		return err
	}
	return &Error{Op: "flush", Name: p.name, Kind: ErrUndelivered, Detail: "the send queue stopped"}
}

// Subscribers returns how many subscribers the service has now.
func (p *Pub[T]) Subscribers() int {
	_, n, err := p.svc.Counts()
	if err != nil {
		return 0
	}
	return n
}

// Peers reports subscribers joining, leaving and crashing, and is closed when
// the publisher is closed. Events are dropped when nobody reads them and 64 are
// waiting. A goroutine behind it starts on the first call.
func (p *Pub[T]) Peers() <-chan PeerEvent {
	p.watchPeers()
	return p.peers
}

// Done is closed when the publisher has ended; Err says why.
func (p *Pub[T]) Done() <-chan struct{} { return p.life.Done() }

// Err is nil while the publisher is open, then why it ended: ErrClosed after
// Close, an *Error wrapping the cause of its context, or a failure.
func (p *Pub[T]) Err() error { return p.life.err() }

// Close stops publishing: it sends what was queued and, in lossless mode, a bye
// behind it, and waits up to the linger time until every subscriber the bye
// reached confirmed that it took everything (one that joined later is owed
// nothing). It returns nil only then; otherwise an error matching
// ErrUndelivered says how many subscribers did not confirm (at once when
// those that left without confirming can no longer be made up). A second
// Close returns ErrClosed.
func (p *Pub[T]) Close() error {
	return p.closer.close("publisher channel", "close publisher channel", p.name)
}

// deliver sends one sample to every subscriber. In lossless mode a subscriber
// that is full makes it fail, and the queue's goroutine sends it again once
// there is room; subscribers drop the copies they already have (same tag and
// sequence number).
func (p *Pub[T]) deliver(data []byte, h *header) (bool, error) {
	if p.cfg.waitSubs > 0 && h.kind == kindData && p.Subscribers() < p.cfg.waitSubs {
		return false, nil
	}
	if p.cfg.lossy {
		if h.kind != kindData {
			return true, nil // lossy services carry no iox headers, hence no bye
		}
		n, err := p.pub.sendNotify(data, nil, nil, evData, nil)
		if errors.Is(err, ErrWouldBlock) {
			// It reached fewer subscribers than the service counted before
			// it: one left during the send (or is full on a service without
			// safe overflow, and loses the message as a slow subscriber of a
			// lossy channel does). A lossy send does not fail for that: the
			// others got it, and the subscribers are looked at again.
			p.wakeStale(true)
			return true, nil
		}
		if err != nil {
			return false, err
		}
		p.wakeReached(n)
		return true, nil
	}
	if h.kind == kindBye {
		data = p.bye
	}
	h.put(p.hb)
	p.lens[0] = uint64(len(data))
	k, err := p.pub.sendBatch(data, p.lens, p.hb, -1)
	if err != nil && !errors.Is(err, ErrWouldBlock) {
		return false, err
	}
	if k == 1 {
		p.wake()
		return true, nil
	}
	return false, nil
}

// wake notifies the subscribers after a send: only when one of them parks (its
// wait word says so), or when one has no word or is new since the last look
// (then it is looked up; it may be parked already). A subscriber in another
// language has no word, so while one is there every send notifies.
func (p *Pub[T]) wake() { p.wakeStale(p.stale()) }

// wakeReached is wake after a lossy send that reached n subscribers: every
// subscriber connected gets a lossy message, so a number other than the
// subscribers known tells that one came or went, without asking the service.
func (p *Pub[T]) wakeReached(n int) { p.wakeStale(p.staleAt(n, false)) }

func (p *Pub[T]) wakeStale(stale bool) {
	if stale { // a subscriber came (and may park already) or went
		p.scan()
	}
	p.notifyParked(stale)
}

// notifyParked sends the data event when a subscriber parks (its word says
// so), cannot tell (no word), or left (one that replaced it may park
// unknown to this publisher), or when force is set.
func (p *Pub[T]) notifyParked(force bool) {
	p.mu.Lock()
	notify := force || len(p.words) < len(p.known)
	for _, w := range p.words {
		if w.Claim() {
			notify = true
			if afterClaim != nil {
				afterClaim()
			}
		} else if w.Gone() {
			notify = true
		}
	}
	p.mu.Unlock()
	if notify {
		p.ntf.Notify(evData)
	}
}

// stale reports whether the subscribers changed since the last scan (their
// number, or a word whose subscriber closed), or whether it is time to look
// again for the words of subscribers that had none (see wordRescanMin).
func (p *Pub[T]) stale() bool { return p.staleAt(p.Subscribers(), false) }

// staleAt is stale for a subscriber count just read.
func (p *Pub[T]) staleAt(subscribers int, eager bool) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	stale := subscribers != len(p.known)
	for _, w := range p.words {
		stale = stale || w.Gone()
	}
	if len(p.words) < len(p.known) && !stale {
		// a word may have come since; eager (before a loan, which goes as a
		// copy while a subscriber cannot tell its room) looks again at once
		// while the subscribers changed only just
		stale = nanotime() >= p.rescanAt || (eager && p.rescanGap <= wordRescanMin)
	}
	return stale
}

// loanRoom reports whether every subscriber has room for one more sample from
// this publisher (known false: a subscriber cannot tell, so a loan goes as a
// copy). A lossy channel always has room: the oldest message gives way.
func (p *Pub[T]) loanRoom(tag, seq, copies uint64) (room, known bool) {
	if p.cfg.lossy {
		return true, true
	}
	subs := p.Subscribers()
	if p.cfg.waitSubs > 0 && subs < p.cfg.waitSubs {
		return false, false
	}
	if p.staleAt(subs, true) { // a subscriber came or went, or had no word yet
		p.scan()
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.known) == 0 || len(p.words) < len(p.known) {
		return false, false
	}
	room = true
	for _, w := range p.words {
		r, k := roomFor(w.WaitWord, tag, seq, copies)
		if !k {
			return false, false
		}
		room = room && r
	}
	return room, true
}

// sendLoan sends a loaned sample (the header written in place on a lossless
// channel) and wakes the subscribers that park. Every subscriber whose room
// loanRoom checked must get it; one that came since may miss it, as it would
// any message published before it joined, and when it got it, it is woken.
// loanRoom looked at the subscribers just before, so they are not counted
// again: the number the sample reached tells of a newcomer.
//
// A sample that reached anybody is spent (ok), also when a subscriber missed
// it: its sequence number is taken, and the next sample must not carry it
// again (subscribers would drop that as a copy). Reaching fewer subscribers
// than loanRoom saw is no failure when those missing closed meanwhile (their
// words say so); one still there that missed it makes it ErrUndelivered.
func (p *Pub[T]) sendLoan(smp *SampleMut, h *header) (bool, error) {
	min := 0
	if !p.cfg.lossy {
		h.put(smp.header(headerSize))
		p.mu.Lock()
		min = len(p.words)
		p.mu.Unlock()
	}
	n, err := smp.sendNotify(nil, evData, nil, 0) // how many it reached is judged here
	if n > 0 {
		if p.cfg.lossy {
			p.wakeReached(n)
		} else {
			// More recipients than the words it knew: one came since loanRoom
			// (and may park already), so every listener is told.
			p.notifyParked(n > min)
		}
	}
	if err != nil {
		return false, err
	}
	if p.cfg.lossy || n >= min {
		return true, nil // whoever is there got it (on a lossy channel also nobody, as with Send)
	}
	if n >= p.staying() {
		return true, nil // the subscribers it missed closed meanwhile
	}
	return n > 0, &Error{Op: "send loan", Name: p.name, Kind: ErrUndelivered,
		Detail: fmt.Sprintf("%d of %d subscribers took the message", n, min)}
}

// staying counts the subscribers whose words do not say they closed.
func (p *Pub[T]) staying() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, w := range p.words {
		if !w.Gone() {
			n++
		}
	}
	return n
}

// awaitRoom waits until a subscriber made room, joined, left or died. It tells
// the subscribers that a publisher waits (evFull), removes crashed ones, and as
// a safety net looks again after a quarter of the peer timeout. A subscriber
// that parked with a sample it was not told of (a copy that reached it while
// others were full) is woken first; one that is awake needs no event for it.
//
// Peers' goroutine waits on the same hub for subscribers coming and going,
// and the one of them that takes those ids from the hub takes them from the
// other. So the wait also ends when the hub drains subscriber news (onIDs
// ends it), or at once when news came since the send that reached nobody
// began.
func (p *Pub[T]) awaitRoom(parent context.Context, stop <-chan struct{}, since uint64) error {
	stale := p.stale()
	if stale {
		p.scan()
	}
	p.notifyParked(stale)
	p.ntf.Notify(evFull)
	ctx, cancel := context.WithTimeout(parent, p.cfg.peerTimeout/4)
	defer cancel()
	p.roomWait.Store(&cancel)
	defer p.roomWait.CompareAndSwap(&cancel, nil)
	if p.news.Load() != since {
		p.rushed.Add(1)
		return nil // look again
	}
	p.waited.Add(1)
	_, err := p.hub.wait(ctx, stop, subscriberNews, p.txW)
	if (errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)) && parent.Err() == nil {
		return nil
	}
	return err
}

// subscriberNews are the ids that may mean room for a waiting send: a
// subscriber took something, came, left or died.
const subscriberNews = 1<<evSpace | 1<<evHello | 1<<evLeft | 1<<evDead

// onIDs sees every batch of ids the hub drains, on the polling goroutine: news
// of the subscribers ends the wait of awaitRoom, whoever takes the ids.
func (p *Pub[T]) onIDs(bits uint64) {
	if bits&subscriberNews != 0 {
		p.roomNews()
	}
}

// roomNews ends the wait of awaitRoom (now, or the next one at once).
func (p *Pub[T]) roomNews() {
	p.news.Add(1)
	if c := p.roomWait.Load(); c != nil {
		(*c)()
	}
}

// watchPeers starts the goroutine that follows the subscribers (once).
func (p *Pub[T]) watchPeers() {
	p.peersOnce.Do(func() {
		started := p.feeds.start(func() {
			defer p.closePeers()
			w := newSignal()
			for {
				_, err := p.hub.wait(context.Background(), p.torn, bit(evHello)|bit(evLeft)|bit(evDead), w)
				if err != nil {
					return
				}
				p.scan()
			}
		})
		if !started {
			p.closePeers() // the publisher ended before Peers was first used
		}
	})
}

// scan removes crashed processes' ports, compares the subscribers with the last
// look, reports the differences, and watches the processes of new subscribers.
func (p *Pub[T]) scan() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.crashed) > 0 {
		p.node.CleanupDeadNodes()
	}
	now, err := p.svc.Subscribers()
	if err != nil {
		return
	}
	current := map[UniqueID]PortInfo{}
	for _, s := range now {
		current[s.Port] = s
	}
	for id, s := range p.known {
		if _, ok := current[id]; !ok {
			kind := PeerLeft
			if p.crashed[s.Node] {
				kind = PeerCrashed
			}
			p.report(PeerEvent{kind, s})
		}
	}
	nodes := map[UniqueID]bool{}
	joined := false
	for id, s := range current {
		nodes[s.Node] = true
		if _, ok := p.known[id]; !ok {
			p.report(PeerEvent{PeerJoined, s})
			joined = true
		}
		node := s.Node
		p.watched.add(node, func() { p.subscriberDied(node) })
	}
	kept := p.words[:0]
	for _, w := range p.words {
		if _, ok := current[w.port]; ok {
			kept = append(kept, w)
			continue
		}
		if p.crashed[p.known[w.port].Node] {
			w.Remove() // a crashed subscriber leaves its word behind
		}
		w.Close()
	}
	clear(p.words[len(kept):])
	p.words = kept
	for id, s := range current {
		if !slices.ContainsFunc(p.words, func(w portWord) bool { return w.port == id }) {
			if w := openWaitWord(p.node, s); w != nil {
				p.words = append(p.words, portWord{id, w})
			}
		}
	}
	for _, node := range p.watched.keep(nodes) {
		delete(p.crashed, node)
	}
	if joined || len(current) != len(p.known) {
		p.rescanGap = 0 // the subscribers changed: look again soon
	}
	p.known = current
	if len(p.words) < len(p.known) {
		p.rescanGap = min(max(2*p.rescanGap, wordRescanMin), wordRescanMax)
		p.rescanAt = nanotime() + p.rescanGap
	} else {
		p.rescanGap = 0
	}
	if joined {
		if p.cfg.history > 0 {
			p.pub.Update() // late joiners get the history
		}
		// A subscriber this publisher did not know yet may have parked
		// with a message waiting (a send that came before this look did
		// not claim its wait word): it looks again.
		p.ntf.Notify(evData)
	}
}

// subscriberDied runs when a subscriber's process is gone: its ports are
// removed so that it holds nobody back.
func (p *Pub[T]) subscriberDied(node UniqueID) {
	p.mu.Lock()
	p.crashed[node] = true
	p.mu.Unlock()
	p.node.CleanupDeadNodes()
	p.scan()
	p.hub.kick()
	p.roomNews() // a send waiting for the dead subscriber's room goes on
}

// report hands e to Peers (under mu), dropping it when nobody reads or Peers
// is closed: a look at the subscribers may come after the end (a send of the
// bye looks too).
func (p *Pub[T]) report(e PeerEvent) {
	if p.peersClosed {
		return
	}
	select {
	case p.peers <- e:
	default:
	}
}

// closePeers closes the channel of Peers.
func (p *Pub[T]) closePeers() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.peersClosed = true
	close(p.peers)
}

// shutdown ends the publisher with reason and releases it; gracefully, it first
// delivers the queue and, in lossless mode, waits for every subscriber's
// confirmation.
func (p *Pub[T]) shutdown(reason error, graceful bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), p.cfg.linger)
	defer cancel()
	if graceful {
		p.outs.finish(ctx)
	}
	p.life.end(reason, true)
	p.hub.kick()
	var result error
	if graceful {
		result = p.linger(ctx)
	} else {
		p.outs.finish(doneContext)
		if sent, queued := p.tx.counts(); queued > 0 || p.outs.lost.Load() > 0 || (sent > 0 && !p.cfg.lossy) {
			result = &Error{Op: "close publisher channel", Name: p.name, Kind: ErrUndelivered,
				Detail: fmt.Sprintf("the context ended first: %d messages dropped from the queue, %d sent but not confirmed",
					uint64(queued)+p.outs.lost.Load(), sent)}
		}
	}
	close(p.torn)
	close(p.stopTx)
	p.hub.kick()
	p.tx.wg.Wait()
	p.feeds.stop()
	if !graceful && !p.cfg.lossy {
		p.tx.sendBye(nil)
	}
	p.mu.Lock()
	p.watched.stop()
	for _, w := range p.words {
		w.Close()
	}
	p.words = nil
	p.mu.Unlock()
	// The publisher goes before the notifier that told subscribers it came:
	// when they hear of the notifier leaving (evLeft), they list the
	// publishers without it and stop watching its process.
	p.pub.Close()
	p.ports.release()
	return result
}

// Loan lends n bytes of shared memory for the next message, to write in place
// and publish with SendLoan (see Loan for the rules).
func (p *Pub[T]) Loan(ctx context.Context, n int) (*Loan, error) {
	if ctx == nil {
		return nil, nilArg("loan", p.name, "ctx")
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return p.tx.loan(p.pub, n)
}

// SendLoan publishes a loaned message without copying it, after what was sent
// before. On a lossless channel it goes in place once every subscriber is
// known to have room for it (it waits, like Send, while one has none), and as
// a copy while a subscriber cannot tell (one that just joined). The loan is
// spent either way.
func (p *Pub[T]) SendLoan(ctx context.Context, l *Loan) error { return p.tx.sendLoaned(ctx, l) }

// linger delivers the queue and a bye, then waits until every subscriber
// confirmed (lossless) or the linger time is over.
func (p *Pub[T]) linger(ctx context.Context) error {
	var acks *EventService
	var ackLis *Listener
	var ackErr error // the confirmations cannot be awaited: reported after the queue and the bye went
	if !p.cfg.lossy {
		// Every subscriber the service admits (it may have been made for more
		// than this publisher's MaxSubscribers) confirms with a notifier of
		// its own, and those that leave keep theirs for a while.
		subs := max(p.cfg.maxSubscribers, p.svc.MaxSubscribers())
		acks, ackErr = p.node.Event(fmt.Sprintf("%s%s%016x", p.name, ackSuffix, p.tx.tag),
			MaxNotifiers(2*subs), MaxListeners(1), MaxEventID(evMaxID), NotifierCreatedEvent(evHello))
		if ackErr == nil {
			defer acks.Close()
			if ackLis, ackErr = acks.Listener(); ackErr == nil {
				defer ackLis.Close()
			}
		}
	}
	sent := p.tx.sendBye(ctx)
	p.byeOut.Store(sent)
	_, queued := p.tx.counts()
	if lost := p.outs.lost.Load(); lost > 0 {
		return &Error{Op: "close publisher channel", Name: p.name, Kind: ErrUndelivered,
			Detail: fmt.Sprintf("%d messages taken by Out were not published before the linger time ended", lost)}
	}
	if queued > 0 {
		return &Error{Op: "close publisher channel", Name: p.name, Kind: ErrUndelivered,
			Detail: fmt.Sprintf("%d messages were still queued when the linger time ended", queued)}
	}
	if p.cfg.lossy { // everything is in shared memory: nothing to wait for
		return nil
	}
	if ackErr != nil {
		return &Error{Op: "close publisher channel", Name: p.name, Kind: ErrUndelivered,
			Detail: fmt.Sprintf("the queue and the bye went out, but the subscribers' confirmations cannot be awaited: %v", ackErr)}
	}
	if subs := p.Subscribers(); !sent && subs > 0 {
		return &Error{Op: "close publisher channel", Name: p.name, Kind: ErrUndelivered,
			Detail: fmt.Sprintf("%d of %d subscribers did not confirm: the linger time ended before the bye went out", subs, subs)}
	}
	// The subscribers there once the bye went out are those it reached, and
	// each of them owes a confirmation (one that confirmed and left keeps
	// it); one that joins later was owed nothing and never sees the bye. One
	// that left or died without confirming never will: once those still
	// there cannot make up the count, waiting is over.
	owed := p.subscriberPorts()
	w := newSignal()
	h := newHub(ackLis, nil)
	for {
		p.scan()
		confirmed, _, err := acks.Counts()
		if err != nil {
			return err
		}
		want, there := p.owedThere(owed)
		if confirmed >= want {
			return nil
		}
		if confirmed+there < want {
			return &Error{Op: "close publisher channel", Name: p.name, Kind: ErrUndelivered,
				Detail: fmt.Sprintf("%d of %d subscribers did not confirm: they left before they had taken everything", want-confirmed, want)}
		}
		if ctx.Err() != nil {
			return &Error{Op: "close publisher channel", Name: p.name, Kind: ErrUndelivered,
				Detail: fmt.Sprintf("%d of %d subscribers did not confirm within the linger time", want-confirmed, want)}
		}
		// a confirmation comes with its notifier (evHello); a subscriber
		// that leaves sends nothing here, so look again now and then
		wctx, cancel := context.WithTimeout(ctx, p.cfg.peerTimeout/4)
		h.wait(wctx, nil, bit(evHello), w)
		cancel()
	}
}

// owedThere counts the subscribers owed a confirmation (the ports of owed,
// or those there now when owed is nil: they could not be listed) and those
// of them still there.
func (p *Pub[T]) owedThere(owed map[UniqueID]bool) (want, there int) {
	if owed == nil {
		n := p.Subscribers()
		return n, n
	}
	now := p.subscriberPorts()
	if now == nil { // who left cannot be told: they may all be there
		return len(owed), len(owed)
	}
	for port := range now {
		if owed[port] {
			there++
		}
	}
	return len(owed), there
}

// subscriberPorts is the set of the service's subscriber ports now (nil when
// they cannot be listed).
func (p *Pub[T]) subscriberPorts() map[UniqueID]bool {
	list, err := p.svc.Subscribers()
	if err != nil {
		return nil
	}
	ports := make(map[UniqueID]bool, len(list))
	for _, s := range list {
		ports[s.Port] = true
	}
	return ports
}

// Sub is the receiving end of a publish-subscribe channel.
type Sub[T any] struct {
	node     *Node
	name     string
	cfg      chanConfig
	life     *life
	ports    ports
	svc      *PubSubService
	sub      *Subscriber
	lis      *Listener
	spaceNtf *Notifier
	word     *ffi.WaitWord // this subscriber's wait word (lossless)
	hub      *hub
	rx       *receiver[T]
	senders  *senders // the publishers' processes (lossless)

	in     chan T
	inOnce sync.Once
	feeds  group
	torn   chan struct{}
	closer closer

	pubWaits  atomic.Bool
	spinStats spinStats
	acks      []ack // confirmations of publishers' byes, kept while their publishers wait (looked at every twice the linger time)
}

type ack struct {
	svc   *EventService
	ntf   *Notifier
	until time.Time
}

// crowded reports whether other subscribers share the channel (see spinner).
func (s *Sub[T]) crowded() bool {
	_, subs, err := s.svc.Counts()
	return err == nil && subs > 1
}

// OpenSub opens a subscriber of []byte messages on the channel called name; ctx
// bounds its life. It receives the messages published after it joined (and the
// history, History).
func OpenSub(ctx context.Context, node *Node, name string, opts ...Option) (*Sub[[]byte], error) {
	return OpenSubOf[[]byte](ctx, node, name, Raw{}, opts...)
}

// OpenSubOf opens a subscriber of T values decoded by codec.
func OpenSubOf[T any](ctx context.Context, node *Node, name string, codec Codec[T], opts ...Option) (*Sub[T], error) {
	const op = "open subscriber channel"
	cfg, err := prepare(ctx, op, name, ackSuffix+"0123456789abcdef", opts, nodeArg(node), codecArg("codec", codec))
	if err != nil {
		return nil, err
	}
	if err := cfg.only(op, name, "subscriber", optWaitSubs); err != nil {
		return nil, err
	}
	node, hold, err := node.keep(op, name)
	if err != nil {
		return nil, err
	}
	s := &Sub[T]{node: node, name: name, cfg: cfg, life: newLife(), in: make(chan T, cfg.chanCap),
		torn: make(chan struct{})}
	s.ports.add(hold) // released last
	if err := s.open(op, payloadTypeOf(codec)); err != nil {
		s.ports.release()
		return nil, err
	}
	if !cfg.lossy {
		s.senders = newSenders(node.lib, s.svc.Publishers, cfg.peerTimeout/4, func() { s.hub.post(bit(evData)) })
	}
	s.hub = newHub(s.lis, func(bits uint64) {
		if bits&bit(evFull) != 0 {
			s.pubWaits.Store(true)
		}
		if s.senders != nil {
			s.senders.onIDs(bits)
		}
	})
	s.rx = newReceiver(name, s.sub, s.hub, s.life, codec, cfg, !cfg.lossy, !cfg.lossy)
	s.rx.ww = s.word
	s.rx.onBye, s.rx.onTake = s.acknowledge, s.afterTake
	s.rx.spin.crowd, s.rx.spin.stats = s.crowded, &s.spinStats
	if cfg.lossy {
		s.rx.every = cfg.poll // publishers in other languages may never notify
	} else {
		// Publishers that come later are listed when their notifiers appear
		// (evHello), which this subscriber's listener hears from now on.
		s.senders.refresh()
		s.feeds.start(func() { s.rx.keep(s.torn, cfg.queue+cfg.chanCap) })
	}
	s.closer.watch(ctx, "subscriber channel", name, s.shutdown)
	return s, nil
}

func (s *Sub[T]) open(op string, pt PayloadType) error {
	var err error
	if s.svc, err = pubsubService(s.node, op, s.name, pt, s.cfg, true); err != nil {
		return err
	}
	s.ports.add(s.svc)
	if s.sub, err = s.svc.Subscriber(SubscriberBuffer(min(s.cfg.queue, s.svc.BufferSize()))); err != nil {
		return err
	}
	s.ports.add(s.sub)
	// The wait word exists before the notifier that tells publishers this
	// subscriber is here. A lossy channel's publishers in other languages know
	// no word and notify every time; iox's own notify only when it parks.
	if s.word = newWaitWord(s.node, s.sub, min(s.cfg.queue, s.svc.BufferSize())); s.word != nil {
		s.ports.add(wordCloser{s.word})
	}
	ev, err := eventService(s.node, s.name, s.cfg)
	if err != nil {
		return err
	}
	s.ports.add(ev)
	if s.lis, err = ev.Listener(); err != nil {
		return err
	}
	s.ports.add(s.lis)
	space, err := eventService(s.node, s.name+spaceSuffix, s.cfg)
	if err != nil {
		return err
	}
	s.ports.add(space)
	if s.spaceNtf, err = space.Notifier(); err != nil { // publishers see it join (evHello)
		return err
	}
	s.ports.add(s.spaceNtf)
	return nil
}

// Recv returns the next message. After Close it returns ErrClosed. A message
// that had to be dropped (too large, undecodable, out of sequence) comes back
// as its error, and the next Recv goes on.
func (s *Sub[T]) Recv(ctx context.Context) (T, error) { return s.rx.recv(ctx) }

// TryRecv returns the next message if one has arrived, and ok false at once
// when none has: it never waits for a message. It waits only for its turn
// while a Recv or In of this subscriber waits for one, until ctx ends (then
// it returns ctx's error; with a ctx that has ended already, also while the
// subscriber's own goroutine holds the turn, which it otherwise hands over at
// once). Otherwise it answers as Recv: a message that had to be dropped comes
// back as its error (ok false), and the next call goes on; after Close it
// returns ErrClosed. A publisher waiting for room is told of it as by Recv.
func (s *Sub[T]) TryRecv(ctx context.Context) (v T, ok bool, err error) { return s.rx.tryRecv(ctx) }

// In is the channel of received messages; it is closed after the subscriber
// ended, and Err is set before that. A goroutine behind it starts on the first
// call; messages it had to drop go to OnDrop.
func (s *Sub[T]) In() <-chan T {
	s.inOnce.Do(func() {
		if !s.feeds.start(func() { s.rx.feed(s.in, s.torn) }) {
			close(s.in) // the subscriber ended before In was first used
		}
	})
	return s.in
}

// RecvView returns the next message in place in shared memory, valid until
// View.Release (see View for the rules); in order with Recv.
func (s *Sub[T]) RecvView(ctx context.Context) (*View, error) { return s.rx.recvView(ctx) }

// Done is closed when the subscriber has ended; Err says why.
func (s *Sub[T]) Done() <-chan struct{} { return s.life.Done() }

// Err is nil while the subscriber is open, then why it ended: ErrClosed after
// Close, an *Error wrapping the cause of its context, or a failure.
func (s *Sub[T]) Err() error { return s.life.err() }

// Recycle hands a received message's buffer back for reuse: the next messages
// are received into it instead of a new buffer (how many are kept: see
// WithRecycling). Do not use b afterwards; a buffer handed back twice is
// kept once.
func (s *Sub[T]) Recycle(b []byte) { recycle(s.rx.spare, b) }

// Close stops the subscriber and releases it. A second Close returns ErrClosed.
func (s *Sub[T]) Close() error {
	return s.closer.close("subscriber channel", "close subscriber channel", s.name)
}

func (s *Sub[T]) shutdown(reason error, _ bool) error {
	s.life.end(reason, true)
	if s.senders != nil {
		s.senders.close()
	}
	s.hub.kick()
	close(s.torn)
	s.rx.stepAside()
	s.feeds.stop()
	s.rx.sem <- struct{}{} // the receiver owns the confirmations until it stops
	s.rx.dropQueue()
	if s.word != nil {
		s.word.SetGone() // publishers look for who receives now
	}
	// The subscriber goes before the notifier that told publishers it came:
	// when they hear of the notifier leaving, the subscriber is gone too.
	s.sub.Close()
	for _, a := range s.acks {
		a.ntf.Close()
		a.svc.Close()
	}
	s.acks = nil
	s.ports.release()
	return nil
}

// afterTake runs after every look into shared memory: it tells a waiting
// publisher that there is room, and withdraws the confirmations whose
// publishers no longer wait for them.
func (s *Sub[T]) afterTake(k int) {
	if s.pubWaits.Load() && s.rx.roomDue(k, s.cfg.queue) && s.pubWaits.Swap(false) {
		s.spaceNtf.Notify(evSpace)
	}
	if len(s.acks) > 0 && time.Now().After(s.acks[0].until) {
		a := s.acks[0]
		s.acks = s.acks[1:]
		if _, listeners, err := a.svc.Counts(); err == nil && listeners > 0 {
			// its publisher still waits (its linger may be longer than
			// ours): the confirmation stays, and is looked at again later
			a.until = time.Now().Add(ackTime(s.cfg.linger))
			s.acks = append(s.acks, a)
			return
		}
		a.ntf.Close()
		a.svc.Close()
	}
}

// acknowledge confirms a lossless publisher's bye: everything it sent has left
// shared memory. The publisher counts the confirming notifiers on the event
// service of its own tag, so confirmations never mix between publishers.
func (s *Sub[T]) acknowledge(h header) {
	svc, err := s.node.Event(fmt.Sprintf("%s%s%016x", s.name, ackSuffix, h.tag), OpenOnly())
	if err != nil {
		return // the publisher is gone already
	}
	ntf, err := svc.Notifier()
	if err != nil {
		svc.Close()
		return
	}
	s.acks = append(s.acks, ack{svc: svc, ntf: ntf, until: time.Now().Add(ackTime(s.cfg.linger))})
}

// ackTime is how long a confirmation stays: twice the linger time, without
// overflowing for a linger meant as "forever".
func ackTime(linger time.Duration) time.Duration {
	if linger > time.Duration(1<<62) {
		return 1 << 62
	}
	return 2 * linger
}
