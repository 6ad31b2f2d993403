package iox

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// A pipeline spreads work over processes: nng's push/pull pattern over
// iceoryx2 shared memory. One Push end hands out messages; any number of Pull
// ends (up to MaxPullers) take them, and each message goes to exactly one of
// them.
//
// Services, all of iox's own, derived from the pipeline's name:
//
//   - NAME.iox-pull.<id> (publish-subscribe and event), one per puller, <id>
//     its random 16-digit hex id: the pusher publishes messages into the
//     puller's own lossless queue of BufferSize samples and wakes the puller
//     through the event service.
//   - NAME.iox-push (publish-subscribe and event): each puller publishes its
//     count of messages taken, lossy, newest wins, and wakes the pusher; a
//     puller's first such message is its hello and its last one its bye.
//
// Routing: a puller counts the messages it takes out of shared memory and
// publishes that count before it hands them over. The pusher knows how many it
// sent to each puller, so each puller's room is its queue's size minus the
// messages sent and not yet taken; a message goes to the next puller (round
// robin) that has room, and waits in the pusher's queue while none has.
//
// Redelivery: the pusher keeps a copy of every message a puller has not yet
// taken. When the puller closes (its bye carries its final count) or its
// process dies (seen through a pidfd), the messages beyond its last count are
// given to other pullers, ahead of the queue. Those the puller took are never
// sent again: a puller publishes its count before its Recv or In hands the
// messages on, so a message beyond the count was never handed to its user.
const (
	pushSuffix = ".iox-push"
	pullSuffix = ".iox-pull."

	// MaxPullers is how many pullers a pipeline admits at once.
	MaxPullers = 64

	pullIDLen = 16
	maxGone   = 1024 // departed pullers the pusher remembers (their ids are random)
	tookSize  = 32   // a puller's message to the pusher: id, tag, taken, kind (u64 each)
)

// Kinds of a puller's message to the pusher.
const (
	tookCount uint64 = iota // taken: messages of the pusher with the tag taken so far
	tookHello               // a new puller
	tookBye                 // the puller closed; taken is final
)

type took struct{ id, tag, taken, kind uint64 }

func (t took) put(b []byte) {
	binary.NativeEndian.PutUint64(b, t.id)
	binary.NativeEndian.PutUint64(b[8:], t.tag)
	binary.NativeEndian.PutUint64(b[16:], t.taken)
	binary.NativeEndian.PutUint64(b[24:], t.kind)
}

func readTook(b []byte) (took, bool) {
	if len(b) != tookSize {
		return took{}, false
	}
	return took{binary.NativeEndian.Uint64(b), binary.NativeEndian.Uint64(b[8:]),
		binary.NativeEndian.Uint64(b[16:]), binary.NativeEndian.Uint64(b[24:])}, true
}

func pullName(name string, id uint64) string { return fmt.Sprintf("%s%s%016x", name, pullSuffix, id) }

// pullID reads the puller id out of the name of a puller's service of the
// pipeline called name.
func pullID(name, svc string) (uint64, bool) {
	rest, ok := strings.CutPrefix(svc, name+pullSuffix)
	if !ok || !isLowerHex(rest, pullIDLen) {
		return 0, false
	}
	id, err := strconv.ParseUint(rest, 16, 64)
	return id, err == nil
}

// The options of the services every end opens alike.
func pushServiceOpts() []Option {
	return []Option{MaxPublishers(MaxPullers), MaxSubscribers(1), MaxNodes(MaxPullers + 2),
		BufferSize(4), SafeOverflow(true)}
}

func pushEventOpts() []Option {
	return []Option{MaxNotifiers(MaxPullers), MaxListeners(1), MaxNodes(MaxPullers + 2), MaxEventID(evMaxID),
		NotifierCreatedEvent(evHello), NotifierDeadEvent(evDead)}
}

func pullEventOpts() []Option {
	return []Option{MaxNotifiers(2), MaxListeners(1), MaxEventID(evMaxID)}
}

func pullServiceOpts(pt PayloadType) []Option {
	return []Option{WithPayloadType(pt), withHeader(), MaxPublishers(1), MaxSubscribers(1), SafeOverflow(false)}
}

// ---- the pushing end ----

// Push is the sending end of a pipeline: every message sent goes to exactly
// one puller, in order for each puller, and is never lost while a puller that
// can take it exists.
//
// Delivery: Send copies the message into the shared-memory queue of a puller
// that has room (pullers take turns), so a slow puller never holds the others
// back: it gets only what it makes room for. While no puller has room, or none
// is there yet, messages wait in the pusher's queue (WithChanCap, default 64),
// and Send blocks once that is full. A puller that closes or whose process
// dies has the messages it had not taken out of shared memory given to other
// pullers, ahead of the queue; a message it had taken (its Recv or In handed
// it over, or was about to) is not sent again, and is lost if the puller did
// not finish it — as with nng's push/pull, a pipeline delivers at most once to
// a puller's user and at least once to some puller's shared memory. A puller's
// death is seen at once through a pidfd (without pidfd support, every quarter
// of WithPeerTimeout).
//
// Ending: a pusher ends only by Close or by the end of the context it was
// opened with; pullers coming and going do not end it. Close stops accepting
// messages and waits up to the linger time (WithLinger, default 1 s) until
// pullers took every message; it returns nil only then and an error matching
// ErrUndelivered otherwise. When the context ends, the pusher ends at once and
// what was not taken is dropped. A pipeline has one pusher at a time: a second
// one fails with ErrLimitReached.
type Push[T any] struct {
	node  *Node
	name  string
	cfg   chanConfig
	life  *life
	tag   uint64
	pt    PayloadType
	enc   func([]byte, T) ([]byte, error)
	ports ports

	tookSvc *PubSubService
	tookSub *Subscriber
	ev      *EventService
	lis     *Listener
	hub     *hub
	batch   *Batch

	sem     chan struct{} // one Send at a time: they encode into scratch
	scratch []byte

	mu        sync.Mutex
	routes    map[uint64]*route
	order     []*route
	turn      int
	gone      map[uint64]bool // pullers that left: their late messages are ignored
	goneIDs   []uint64        // the same, oldest first: the map keeps the last maxGone
	pending   [][]byte        // messages no puller had room for, oldest first
	free      [][]byte
	wg        sync.WaitGroup // the keeper
	bg        sync.WaitGroup // routes being closed
	room      chan struct{}  // pending shrank
	changed   chan struct{}  // the keeper looked (for Close)
	poke      chan struct{}  // closed to make the keeper look again
	askedRoom bool           // the keeper waits for pullers to take something
	lingering bool           // Close waits for pullers to take everything
	stopping  bool           // the keeper stops
	drained   bool           // teardown: no new puller is attached

	resent atomic.Uint64 // messages given to another puller after theirs left

	out     chan T
	outOnce sync.Once
	feeds   group
	closer  closer
}

// route is the pusher's way to one puller.
type route struct {
	id       uint64
	svc      *PubSubService
	pub      *Publisher
	ev       *EventService
	ntf      *Notifier
	room     int    // the puller's queue size
	seq      uint64 // samples sent
	sent     uint64 // messages sent
	taken    uint64 // messages the puller said it took
	inflight [][]byte
	full     bool // a send found no room or no puller: skip until its next count
	pid      int
	unwatch  func()
	hdr      []byte
}

func (r *route) close() {
	r.unwatch()
	r.ntf.Close()
	r.ev.Close()
	r.pub.Close()
	r.svc.Close()
}

func (r *route) credit() int {
	if r.full {
		return 0
	}
	return r.room - int(r.sent-r.taken)
}

// OpenPush opens the pushing end of the []byte pipeline called name. ctx bounds
// its life (see Push). Opening never waits for pullers.
func OpenPush(ctx context.Context, node *Node, name string, opts ...Option) (*Push[[]byte], error) {
	return OpenPushOf[[]byte](ctx, node, name, Raw{}, opts...)
}

// OpenPushOf opens the pushing end of the pipeline called name carrying values
// of T encoded by codec (see Fixed for fixed-layout types). Pullers must use a
// codec of the same payload type.
func OpenPushOf[T any](ctx context.Context, node *Node, name string, codec Codec[T], opts ...Option) (*Push[T], error) {
	const op = "open push"
	cfg, err := prepare(ctx, op, name, pullSuffix+strings.Repeat("0", pullIDLen), opts)
	if err != nil {
		return nil, err
	}
	if err := cfg.only(op, name, "pusher", optBufferSize, optSpin, optPoll, optLossy, optHistory, optRecycling,
		optMaxSubscribers, optMaxPublishers, optWaitSubs); err != nil {
		return nil, err
	}
	p := &Push[T]{node: node, name: name, cfg: cfg, life: newLife(), tag: randomTag(), pt: payloadTypeOf(codec),
		enc: encoder(codec), batch: NewBatch(tookSize*64, 64), sem: make(chan struct{}, 1),
		routes: map[uint64]*route{}, gone: map[uint64]bool{}, room: newSignal(), changed: newSignal(),
		out: make(chan T)}
	if err := p.join(); err != nil {
		p.ports.release()
		return nil, err
	}
	p.hub = newHub(p.lis, nil)
	p.discover()
	p.wg.Add(1)
	go p.keep()
	p.closer.watch(ctx, "push", name, p.shutdown)
	return p, nil
}

// join opens the pusher's ports: the subscriber for the pullers' counts and
// the listener for their wake-ups.
func (p *Push[T]) join() error {
	p.node.CleanupDeadNodes() // frees the place of a crashed former pusher
	var err error
	if p.tookSvc, err = p.node.PublishSubscribe(p.name+pushSuffix, pushServiceOpts()...); err != nil {
		return err
	}
	p.ports.add(p.tookSvc)
	if p.tookSub, err = p.tookSvc.Subscriber(); err != nil {
		return pushTaken(err, p.name)
	}
	p.ports.add(p.tookSub)
	if p.ev, err = p.node.Event(p.name+pushSuffix, pushEventOpts()...); err != nil {
		return err
	}
	p.ports.add(p.ev)
	if p.lis, err = p.ev.Listener(); err != nil {
		return pushTaken(err, p.name)
	}
	p.ports.add(p.lis)
	return nil
}

func pushTaken(err error, name string) error {
	if errors.Is(err, ErrLimitReached) {
		return &Error{Op: "open push", Name: name, Kind: ErrLimitReached, Detail: "the pipeline has a pusher already"}
	}
	return err
}

// discover attaches the pullers that were there before this pusher: their
// services are in the namespace's listing. Later pullers say hello.
func (p *Push[T]) discover() {
	infos, err := p.node.Services()
	if err != nil {
		return
	}
	for _, info := range infos {
		if info.Pattern != PatternPublishSubscribe {
			continue
		}
		if id, ok := pullID(p.name, info.Name); ok {
			p.mu.Lock()
			p.attach(id)
			p.mu.Unlock()
		}
	}
}

// attach opens the way to the puller id (held under mu). A puller that is not
// (or no longer) there is left alone: its hello brings it back.
func (p *Push[T]) attach(id uint64) {
	if p.routes[id] != nil || p.gone[id] || p.drained || len(p.routes) >= MaxPullers {
		return
	}
	name := pullName(p.name, id)
	r := &route{id: id, hdr: make([]byte, headerSize)}
	var ps ports
	fail := func() { ps.release() }
	var err error
	if r.svc, err = p.node.PublishSubscribe(name, append(pullServiceOpts(p.pt), OpenOnly())...); err != nil {
		fail()
		return
	}
	ps.add(r.svc)
	subs, err := r.svc.Subscribers()
	if err != nil || len(subs) == 0 {
		fail()
		return
	}
	if r.pub, err = r.svc.Publisher(FailWhenFull(0), MaxMessageSize(max(p.cfg.maxMessage, packLimit)),
		InitialMessageSize(min(packLimit, max(p.cfg.maxMessage, 1)))); err != nil {
		fail()
		return
	}
	ps.add(r.pub)
	if r.ev, err = p.node.Event(name, append(pullEventOpts(), OpenOnly())...); err != nil {
		fail()
		return
	}
	ps.add(r.ev)
	if r.ntf, err = r.ev.Notifier(); err != nil {
		fail()
		return
	}
	r.room = r.svc.BufferSize()
	r.pid, _, _ = p.node.lib.NodeIDDetails(subs[0].Node.Lo, subs[0].Node.Hi)
	p.routes[id] = r
	p.order = append(p.order, r)
	r.unwatch = watchNode(p.node.lib, subs[0].Node, p.cfg.peerTimeout/4, func() { p.left(id, nil) })
}

// readCounts takes the pullers' messages (held under mu): counts, hellos and
// byes. It returns the pullers to attach.
func (p *Push[T]) readCounts() (hello []uint64) {
	for {
		k, err := p.tookSub.ReceiveBatch(p.batch)
		if err != nil || k == 0 {
			return hello
		}
		for i := 0; i < k; i++ {
			t, ok := readTook(p.batch.Message(i))
			if !ok || p.gone[t.id] {
				continue
			}
			r := p.routes[t.id]
			if r == nil {
				if t.kind != tookBye {
					hello = append(hello, t.id)
				}
				continue
			}
			if t.tag == p.tag && t.taken > r.taken && t.taken <= r.sent {
				for j := r.taken; j < t.taken; j++ {
					p.recycle(r.inflight[0])
					r.inflight[0] = nil
					r.inflight = r.inflight[1:]
				}
				r.taken = t.taken
				r.full = false
			} else if t.kind == tookCount || t.kind == tookHello {
				r.full = false
			}
			if t.kind == tookBye {
				r.ntf.Notify(evDrained) // the puller may go now
				p.drop(r)
			}
		}
		if k < len(p.batch.lens) {
			return hello
		}
	}
}

// refresh reads the pullers' messages and attaches new pullers (under mu).
func (p *Push[T]) refresh() {
	for _, id := range p.readCounts() {
		p.attach(id)
	}
}

// left runs when the puller id's process died.
func (p *Push[T]) left(id uint64, _ error) {
	p.mu.Lock()
	p.readCounts() // its last count, published before it died
	r := p.routes[id]
	if r != nil {
		p.drop(r)
	}
	p.mu.Unlock()
}

// drop removes the route to a puller that left and gives the messages it had
// not taken to the others, ahead of the queue (under mu).
func (p *Push[T]) drop(r *route) {
	delete(p.routes, r.id)
	p.gone[r.id] = true
	if p.goneIDs = append(p.goneIDs, r.id); len(p.goneIDs) > maxGone {
		delete(p.gone, p.goneIDs[0])
		p.goneIDs = p.goneIDs[1:]
	}
	for i, o := range p.order {
		if o == r {
			p.order = append(p.order[:i], p.order[i+1:]...)
			break
		}
	}
	if n := len(r.inflight); n > 0 {
		p.resent.Add(uint64(n))
		p.pending = append(r.inflight, p.pending...)
		r.inflight = nil
		p.askedRoom = false // the keeper looks at once
		p.wakeKeeper()
	}
	p.bg.Add(1)
	go func() { // outside mu: watchNode's cancel waits for a callback that may want mu
		defer p.bg.Done()
		r.close()
	}()
	p.hub.kick()
}

func (p *Push[T]) recycle(b []byte) {
	if cap(b) <= 64<<10 && len(p.free) < 256 {
		p.free = append(p.free, b[:0])
	}
}

func (p *Push[T]) copyOf(msg []byte) []byte {
	var b []byte
	if n := len(p.free); n > 0 {
		b, p.free = p.free[n-1], p.free[:n-1]
	}
	return append(b, msg...)
}

// Send hands v to the pipeline: it is encoded and copied into a puller's
// shared-memory queue, or into the pusher's queue while no puller has room,
// before Send returns, so the caller may reuse v's memory. Send waits while
// the queue is full. An oversized or unencodable value fails this Send alone
// (ErrMessageTooLarge, ErrInvalidArgument); once the pusher has ended Send
// returns Err (ErrClosed after Close). nil means accepted, not yet taken.
func (p *Push[T]) Send(ctx context.Context, v T) error {
	select {
	case p.sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	case <-p.life.Done():
		return p.life.err()
	}
	defer func() { <-p.sem }()
	if err := p.life.err(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	msg, err := p.enc(p.scratch, v)
	if err != nil {
		return &Error{Op: "encode", Name: p.name, Kind: ErrInvalidArgument, Detail: err.Error()}
	}
	if _, raw := any(v).([]byte); !raw {
		p.scratch = msg[:0]
	}
	if len(msg) > p.cfg.maxMessage {
		return &Error{Op: "send", Name: p.name, Kind: ErrMessageTooLarge,
			Detail: fmt.Sprintf("%d bytes, at most %d", len(msg), p.cfg.maxMessage)}
	}
	p.mu.Lock()
	if len(p.pending) == 0 {
		ok, err := p.route(msg, true)
		if err != nil || ok {
			p.mu.Unlock()
			return err
		}
	}
	for len(p.pending) >= max(p.cfg.chanCap, 1) {
		p.mu.Unlock()
		select {
		case <-p.room:
		case <-ctx.Done():
			return ctx.Err()
		case <-p.life.Done():
			return p.life.err()
		}
		p.mu.Lock()
	}
	p.pending = append(p.pending, p.copyOf(msg))
	p.wakeKeeper()
	p.mu.Unlock()
	return nil
}

// route sends msg to a puller with room (under mu); false when none has. On
// Send's direct way (fast), messages given back by a puller that left go
// first: then msg waits behind them.
func (p *Push[T]) route(msg []byte, fast bool) (bool, error) {
	for attempt := 0; attempt < 2; attempt++ {
		if attempt == 1 {
			p.refresh()
			if fast && len(p.pending) > 0 {
				return false, nil
			}
		}
		for range len(p.order) {
			r := p.order[p.turn%len(p.order)]
			p.turn++
			if r.credit() <= 0 {
				continue
			}
			h := header{tag: p.tag, seq: r.seq + 1, first: r.sent, kind: kindData}
			h.put(r.hdr)
			n, err := r.pub.sendNotify(msg, r.hdr, r.ntf, evData, nil) // pullers have no wait word
			if err != nil && !errors.Is(err, ErrWouldBlock) {
				if errors.Is(err, ErrMessageTooLarge) || errors.Is(err, ErrInvalidArgument) {
					return false, err
				}
				r.full = true // a puller that went away: its bye or death follows
				continue
			}
			if n == 0 {
				r.full = true
				continue
			}
			r.seq++
			r.sent++
			r.inflight = append(r.inflight, p.copyOf(msg))
			return true, nil
		}
	}
	return false, nil
}

// wakeKeeper makes the keeper look again when it waits only for pullers
// coming and going (under mu).
func (p *Push[T]) wakeKeeper() {
	if p.poke != nil && !p.askedRoom {
		close(p.poke)
		p.poke = nil
		p.hub.kick()
	}
}

// keep is the pusher's goroutine, from open to teardown. It delivers the
// queue while pullers have room, attaches pullers that say hello and gives
// back the messages of pullers that leave. While messages wait for room (or
// Close waits for pullers to take them), it asks the pullers concerned to say
// when they took something (evFull), then waits for that; otherwise it waits
// only for pullers coming and going, so an idle pusher costs nothing.
func (p *Push[T]) keep() {
	defer p.wg.Done()
	w := newSignal()
	for {
		p.mu.Lock()
		if p.stopping {
			p.mu.Unlock()
			return
		}
		p.refresh()
		p.flush()
		need := p.needRoom()
		if need {
			// Ask first, then look again: a puller that took something
			// before it heard the question has published its count by now.
			p.ask()
			p.refresh()
			p.flush()
			need = p.needRoom()
		}
		p.askedRoom = need
		poke := make(chan struct{})
		p.poke = poke
		p.mu.Unlock()
		wake(p.changed)
		ctx, cancel := context.Background(), context.CancelFunc(func() {})
		if need {
			ctx, cancel = context.WithTimeout(ctx, p.cfg.peerTimeout/4) // a safety net
		}
		_, err := p.hub.wait(ctx, poke, bit(evSpace)|bit(evHello)|bit(evLeft)|bit(evDead), w)
		cancel()
		if err != nil && !errors.Is(err, errDone) && !errors.Is(err, context.DeadlineExceeded) {
			p.life.end(err, false)
			return
		}
	}
}

// needRoom reports whether the keeper waits for pullers to take something:
// messages wait in the queue, or Close waits for pullers to take what they
// have (under mu).
func (p *Push[T]) needRoom() bool {
	queued, untaken := p.counts()
	return queued > 0 || (p.lingering && untaken > 0)
}

// ask tells the pullers that have untaken messages, or all of them while
// messages wait, that the pusher waits to hear what they took (under mu).
func (p *Push[T]) ask() {
	for _, r := range p.order {
		if len(p.pending) > 0 || r.sent > r.taken {
			r.ntf.Notify(evFull)
		}
	}
}

// flush delivers the queue while pullers have room (under mu).
func (p *Push[T]) flush() {
	for len(p.pending) > 0 {
		ok, err := p.route(p.pending[0], false)
		if err != nil && p.cfg.onDrop != nil { // a message no puller can take
			p.cfg.onDrop(err)
		}
		if !ok && err == nil {
			return
		}
		p.recycle(p.pending[0])
		p.pending[0] = nil
		p.pending = p.pending[1:]
		wake(p.room)
	}
}

// Out is the channel of messages to the pipeline. It has no buffer: a value
// sent on it is handed over as by Send, and after the pusher ended a send on
// Out blocks, so select on Done as well. Values Send refuses go to OnDrop. A
// goroutine behind it starts on the first call.
func (p *Push[T]) Out() chan<- T {
	p.outOnce.Do(func() {
		p.feeds.start(func() {
			for {
				select {
				case v := <-p.out:
					if err := p.Send(context.Background(), v); err != nil && p.cfg.onDrop != nil {
						p.cfg.onDrop(err)
					}
				case <-p.life.Done():
					return
				}
			}
		})
	})
	return p.out
}

// Pullers reports how many pullers the pusher knows now.
func (p *Push[T]) Pullers() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.refresh()
	return len(p.routes)
}

// Done is closed when the pusher has ended; Err says why.
func (p *Push[T]) Done() <-chan struct{} { return p.life.Done() }

// Err is nil while the pusher is open, then why it ended: ErrClosed after
// Close, or an *Error wrapping the cause of the context it was opened with.
func (p *Push[T]) Err() error { return p.life.err() }

// Close ends the pusher gracefully (see Push) and releases it. It returns nil
// only when pullers took every message, an error matching ErrUndelivered
// otherwise. A second Close returns ErrClosed.
func (p *Push[T]) Close() error { return p.closer.close("push", "close push", p.name) }

func (p *Push[T]) shutdown(reason error, graceful bool) error {
	p.life.end(reason, true)
	var result error
	if graceful {
		result = p.linger()
	} else {
		result = p.untaken("the context ended first")
	}
	p.mu.Lock()
	p.stopping, p.askedRoom = true, false
	p.wakeKeeper()
	p.mu.Unlock()
	p.hub.kick()
	p.wg.Wait()
	p.feeds.stop()
	p.mu.Lock()
	p.drained = true
	routes := p.order
	p.order, p.routes = nil, map[uint64]*route{}
	p.mu.Unlock()
	for _, r := range routes {
		r.close()
	}
	p.bg.Wait()
	p.ports.release()
	return result
}

// linger waits until pullers took everything, or the linger time is over.
func (p *Push[T]) linger() error {
	ctx, cancel := context.WithTimeout(context.Background(), p.cfg.linger)
	defer cancel()
	p.mu.Lock()
	p.lingering = true
	p.askedRoom = false
	p.wakeKeeper()
	p.mu.Unlock()
	for {
		p.mu.Lock()
		queued, untaken := p.counts()
		p.mu.Unlock()
		if queued+untaken == 0 {
			return nil
		}
		select {
		case <-p.changed:
			continue
		case <-ctx.Done():
		}
		break
	}
	p.mu.Lock()
	known := len(p.routes)
	p.mu.Unlock()
	why := "pullers did not take them within the linger time"
	if known == 0 {
		why = "no puller was there to take them"
	}
	return p.untaken(why)
}

// counts returns the messages queued and those sent but not taken (under mu).
func (p *Push[T]) counts() (queued, untaken int) {
	for _, r := range p.order {
		untaken += int(r.sent - r.taken)
	}
	return len(p.pending), untaken
}

// untaken is Close's result.
func (p *Push[T]) untaken(why string) error {
	p.mu.Lock()
	p.readCounts()
	queued, untaken := p.counts()
	p.mu.Unlock()
	if queued+untaken == 0 {
		return nil
	}
	return &Error{Op: "close push", Name: p.name, Kind: ErrUndelivered,
		Detail: fmt.Sprintf("%d messages not taken (%d still queued): %s", queued+untaken, queued, why)}
}

// ---- the pulling end ----

// Pull is a receiving end of a pipeline: it gets the share of the pusher's
// messages that it makes room for, in the order the pusher sent them.
//
// Recv (or the goroutine behind In) takes one message at a time out of the
// puller's shared-memory queue (BufferSize messages, default 64), on the
// caller's goroutine, spinning briefly and then parking in the runtime
// poller. Before it hands a message over it tells the pusher that it took it:
// from then on the message is this puller's, and is lost if the puller's
// process dies before finishing it. What is still in the queue when the
// puller closes or dies goes to other pullers. In has no buffer, so a puller
// using In holds at most the one message its goroutine waits to hand over.
//
// A puller waits for messages while no pusher is there, and goes on with the
// next pusher; it ends only by Close or by the end of its context, after which
// Recv returns Err.
type Pull[T any] struct {
	node  *Node
	name  string
	cfg   chanConfig
	life  *life
	id    uint64
	ports ports

	sub    *Subscriber
	lis    *Listener
	tookPb *Publisher
	ntf    *Notifier
	hub    *hub
	rx     *receiver[T]
	tb     []byte
	last   took        // the count last published
	asked  atomic.Bool // the pusher waits to hear what this puller took
	held   int         // In's goroutine ended holding a message (read after feeds.stop)

	in     chan T
	inOnce sync.Once
	feeds  group
	torn   chan struct{}
	closer closer
}

// OpenPull opens a pulling end of the []byte pipeline called name. ctx bounds
// its life (see Pull). Opening never waits for the pusher.
func OpenPull(ctx context.Context, node *Node, name string, opts ...Option) (*Pull[[]byte], error) {
	return OpenPullOf[[]byte](ctx, node, name, Raw{}, opts...)
}

// OpenPullOf opens a pulling end of the pipeline called name carrying values
// of T decoded by codec.
func OpenPullOf[T any](ctx context.Context, node *Node, name string, codec Codec[T], opts ...Option) (*Pull[T], error) {
	const op = "open pull"
	cfg, err := prepare(ctx, op, name, pullSuffix+strings.Repeat("0", pullIDLen), opts)
	if err != nil {
		return nil, err
	}
	if err := cfg.only(op, name, "puller", optChanCap, optPeerTimeout, optPoll, optLossy, optHistory,
		optMaxSubscribers, optMaxPublishers, optWaitSubs); err != nil {
		return nil, err
	}
	p := &Pull[T]{node: node, name: name, cfg: cfg, life: newLife(), id: randomID(), tb: make([]byte, tookSize),
		in: make(chan T), torn: make(chan struct{})}
	if err := p.join(payloadTypeOf(codec)); err != nil {
		p.ports.release()
		return nil, err
	}
	p.hub = newHub(p.lis, p.onIDs)
	p.rx = newReceiver(name, p.sub, p.hub, p.life, codec, cfg, true, false)
	// One sample at a time: what a puller takes is what it hands over next.
	b := p.rx.batch
	b.lens, b.offs, b.hdrs = b.lens[:1], b.offs[:2], b.hdrs[:headerSize]
	p.rx.onTake = p.tookSome
	p.say(took{id: p.id, kind: tookHello}, evHello)
	p.closer.watch(ctx, "pull", name, p.shutdown)
	return p, nil
}

func randomID() uint64 {
	var b [8]byte
	rand.Read(b[:])
	return binary.NativeEndian.Uint64(b[:]) | 1<<63
}

// join creates the puller's queue and wake-up services and opens its ways to
// the pusher.
func (p *Pull[T]) join(pt PayloadType) error {
	name := pullName(p.name, p.id)
	svc, err := p.node.PublishSubscribe(name, append(pullServiceOpts(pt), BufferSize(p.cfg.queue), CreateOnly())...)
	if err != nil {
		return err
	}
	p.ports.add(svc)
	if p.sub, err = svc.Subscriber(); err != nil {
		return err
	}
	p.ports.add(p.sub)
	ev, err := p.node.Event(name, append(pullEventOpts(), CreateOnly())...)
	if err != nil {
		return err
	}
	p.ports.add(ev)
	if p.lis, err = ev.Listener(); err != nil {
		return err
	}
	p.ports.add(p.lis)
	tsvc, err := p.node.PublishSubscribe(p.name+pushSuffix, pushServiceOpts()...)
	if err != nil {
		return err
	}
	p.ports.add(tsvc)
	if p.tookPb, err = tsvc.Publisher(MaxMessageSize(tookSize), InitialMessageSize(tookSize)); err != nil {
		if errors.Is(err, ErrLimitReached) {
			return &Error{Op: "open pull", Name: p.name, Kind: ErrLimitReached,
				Detail: fmt.Sprintf("the pipeline has %d pullers already", MaxPullers)}
		}
		return err
	}
	p.ports.add(p.tookPb)
	pev, err := p.node.Event(p.name+pushSuffix, pushEventOpts()...)
	if err != nil {
		return err
	}
	p.ports.add(pev)
	if p.ntf, err = pev.Notifier(); err != nil {
		return err
	}
	p.ports.add(p.ntf)
	return nil
}

// say tells the pusher t, and with a non-zero id also wakes it, in one
// native call. It reports whether a pusher was there to hear it.
func (p *Pull[T]) say(t took, id EventID) bool {
	t.put(p.tb)
	var n int
	if id != 0 {
		n, _ = p.tookPb.sendNotify(p.tb, nil, p.ntf, id, nil)
	} else {
		n, _ = p.tookPb.Send(p.tb)
	}
	p.last = t
	return n > 0
}

// onIDs sees the event ids the puller's listener delivers: evFull means that
// the pusher waits to hear what this puller took.
func (p *Pull[T]) onIDs(bits uint64) {
	if bits&bit(evFull) != 0 {
		p.asked.Store(true)
	}
}

// tookSome runs after every look into shared memory, before what was taken
// is handed over: it publishes the new count to the pusher, and wakes the
// pusher when it asked.
func (p *Pull[T]) tookSome(int) {
	t := p.last
	if b := p.rx.batch; b.Len() > 0 {
		h := readHeader(b.header(b.Len() - 1))
		t = took{id: p.id, tag: h.tag, taken: h.first, kind: tookCount}
		if h.kind == kindData {
			t.taken += uint64(max(h.count, 1))
		}
	}
	switch {
	case p.asked.Swap(false):
		p.say(t, evSpace)
	case t != p.last:
		p.say(t, 0)
	}
}

// Recv returns the next message, waiting while none is there; after Close it
// returns ErrClosed. A message that had to be dropped (too large, undecodable)
// comes back as its error, and the next Recv goes on.
func (p *Pull[T]) Recv(ctx context.Context) (T, error) { return p.rx.recv(ctx) }

// In is the channel of this puller's messages; it is closed after the puller
// ended. It has no buffer (see Pull), so its goroutine holds at most one
// message that nobody read yet; Close drops that one and says so. Messages
// that had to be dropped go to OnDrop. The goroutine starts on the first
// call.
func (p *Pull[T]) In() <-chan T {
	p.inOnce.Do(func() {
		if !p.feeds.start(p.feed) {
			close(p.in)
		}
	})
	return p.in
}

// feed is the goroutine behind In.
func (p *Pull[T]) feed() {
	defer close(p.in)
	for {
		it, err := p.rx.next(context.Background(), false)
		if err != nil {
			return
		}
		if it.err != nil {
			if p.cfg.onDrop != nil {
				p.cfg.onDrop(it.err)
			}
			continue
		}
		select {
		case p.in <- it.v:
		case <-p.torn:
			p.held = 1 // taken and not handed over: Close reports it
			return
		}
	}
}

// Recycle hands a received message's buffer back for reuse (with
// WithRecycling; otherwise it does nothing). Do not use b afterwards.
func (p *Pull[T]) Recycle(b []byte) { recycle(p.rx.spare, b) }

// Done is closed when the puller has ended; Err says why.
func (p *Pull[T]) Done() <-chan struct{} { return p.life.Done() }

// Err is nil while the puller is open, then why it ended: ErrClosed after
// Close, or an *Error wrapping the cause of the context it was opened with.
func (p *Pull[T]) Err() error { return p.life.err() }

// Close ends the puller and releases it: what is still in its queue goes back
// to the pusher for other pullers. Close waits up to the linger time
// (WithLinger, default 1 s) for the pusher to confirm that it heard; without
// that confirmation it returns an error matching ErrUndelivered, as it does
// when it dropped a message it had taken and not handed over (In's goroutine
// holding one, or a Recv that Close interrupted). With no pusher there it
// does not wait. A second Close returns ErrClosed.
func (p *Pull[T]) Close() error { return p.closer.close("pull", "close pull", p.name) }

func (p *Pull[T]) shutdown(reason error, _ bool) (result error) {
	p.life.end(reason, true)
	close(p.torn)
	p.rx.stepAside()
	p.hub.kick()
	p.feeds.stop()
	p.rx.sem <- struct{}{} // no Recv takes anything any more
	// Messages taken and not handed over go back: the count excludes them.
	// What was taken is this puller's: the pusher no longer has it. Taken
	// and not handed over now, it is lost, and Close says so.
	if n := len(p.rx.queue) - p.rx.head + p.held; n > 0 {
		result = &Error{Op: "close pull", Name: p.name, Kind: ErrUndelivered,
			Detail: fmt.Sprintf("%d messages taken and not handed over were dropped", n)}
	}
	bye := p.last
	bye.id, bye.kind = p.id, tookBye
	if p.say(bye, evLeft) {
		// The bye is lost if this puller's ports go before the pusher read
		// it: wait for its confirmation.
		ctx, cancel := context.WithTimeout(context.Background(), p.cfg.linger)
		_, err := p.hub.wait(ctx, nil, bit(evDrained), newSignal())
		cancel()
		if err != nil && result == nil {
			result = &Error{Op: "close pull", Name: p.name, Kind: ErrUndelivered,
				Detail: "the pusher did not confirm within the linger time that it read this puller's last count: the messages waiting for this puller may be lost"}
		}
	}
	<-p.rx.sem
	p.ports.release()
	return result
}
