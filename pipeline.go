package iox

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/iox-go/iox/internal/ffi"
	"github.com/iox-go/iox/internal/liveness"
)

// A pipeline spreads work over processes: nng's push/pull pattern over
// iceoryx2 shared memory. Any number of Push ends (up to MaxPushers) hand out
// messages; any number of Pull ends (up to MaxPullers) take them, and each
// message goes to exactly one of them.
//
// Services, all of iox's own, derived from the pipeline's name:
//
//   - NAME.iox-pull.<id> (publish-subscribe and event), one per puller, <id>
//     its random 16-digit hex id: every pusher publishes messages into the
//     puller's own lossless queue (BufferSize samples per pusher) and wakes the
//     puller through the event service when the puller's wait word says that
//     it parks.
//   - NAME.iox-push (publish-subscribe and event): a puller's hello and bye to
//     the pushers, and its wake-ups of pushers that wait for room.
//
// Beside each route from a pusher to a puller the pusher keeps a tally, a
// small shared-memory object of its own (a wait word, see waitword.go): the
// puller writes there how many of that pusher's messages it has handed over to
// its user, before it hands the next one over, and the pusher reads the count
// from its own mapping. The puller's room is its queue's size minus the
// messages sent and not yet handed over; a message goes to the next puller
// (round robin) that has room, and waits in the pusher's queue while none has.
// A pusher that waits for room marks the tally with the count at which it
// wants to hear again, and the puller that reaches it wakes the pushers.
//
// Redelivery: the pusher keeps a copy of every message a puller has not yet
// handed over. When the puller closes (its bye, and its wait word marked
// gone) or its process dies (seen through a pidfd), the messages beyond the
// tally's count are given to other pullers, ahead of the queue. Those the
// puller handed over are never sent again. The tally stays readable after
// the puller died whoever cleans up its resources: the pusher owns it.
const (
	pushSuffix = ".iox-push"
	pullSuffix = ".iox-pull."

	// MaxPullers is how many pullers a pipeline admits at once.
	MaxPullers = 64
	// MaxPushers is how many pushers a pipeline admits at once.
	MaxPushers = 16

	pullIDLen = 16
	maxGone   = 1024 // departed pullers a pusher remembers (their ids are random)
	tookSize  = 16   // a puller's message to the pushers: id, kind (u64 each)
	maxTally  = 4 * MaxPushers
)

// Kinds of a puller's message to the pushers.
const (
	tookHello uint64 = iota + 1 // a new puller
	tookBye                     // the puller closed: its tallies are final
)

type took struct{ id, kind uint64 }

func (t took) put(b []byte) {
	binary.NativeEndian.PutUint64(b, t.id)
	binary.NativeEndian.PutUint64(b[8:], t.kind)
}

func readTook(b []byte) (took, bool) {
	if len(b) != tookSize {
		return took{}, false
	}
	return took{binary.NativeEndian.Uint64(b), binary.NativeEndian.Uint64(b[8:])}, true
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
	return []Option{MaxPublishers(MaxPullers), MaxSubscribers(MaxPushers), MaxNodes(MaxPullers + MaxPushers + 2),
		BufferSize(4), SafeOverflow(true)}
}

func pushEventOpts() []Option {
	return []Option{MaxNotifiers(MaxPullers), MaxListeners(MaxPushers), MaxNodes(MaxPullers + MaxPushers + 2),
		MaxEventID(evMaxID), NotifierCreatedEvent(evHello), NotifierDeadEvent(evDead)}
}

// A puller's listener hears of pushers' notifiers that come, go or are found
// dead: it watches the pushers' processes (see senders.go).
func pullEventOpts() []Option {
	return []Option{MaxNotifiers(MaxPushers), MaxListeners(1), MaxNodes(MaxPushers + 2), MaxEventID(evMaxID),
		NotifierCreatedEvent(evHello), NotifierDroppedEvent(evLeft), NotifierDeadEvent(evDead)}
}

func pullServiceOpts(pt PayloadType) []Option {
	return []Option{WithPayloadType(pt), withHeader(), MaxPublishers(MaxPushers), MaxSubscribers(1),
		MaxNodes(MaxPushers + 2), SafeOverflow(false)}
}

// A tally's key among its owner's wait words: the pusher's tag and the
// puller's id. The puller writes (its id, the count) as the word's last
// sample; the pusher uses the word's buffer field for the count at which it
// wants to be woken and its parked mark for "wake me"; the pusher marks the
// word gone once it let the puller go.
func createTally(node *Node, tag, pull uint64) *ffi.WaitWord {
	nh, ok := node.ref.acquire()
	if !ok {
		return nil
	}
	defer node.ref.release()
	w, st := node.lib.WaitWordCreate(nh, tag, pull)
	if st != ffi.OK {
		return nil
	}
	w.SetBuffer(math.MaxUint64)
	return w
}

func openTally(node *Node, owner UniqueID, tag, pull uint64) *ffi.WaitWord {
	nh, ok := node.ref.acquire()
	if !ok {
		return nil
	}
	defer node.ref.release()
	w, _ := node.lib.WaitWordOpen(nh, owner.Lo, owner.Hi, tag, pull)
	return w
}

// Test hooks, set before the ends they concern are opened: pushBeforeQueue
// runs in Send after it found the pusher open and before it hands the
// message to a puller or the queue; pullBeforeHandOver runs in a receive
// after it took a message and before it counts it as handed over. Tests
// make Close run in those windows.
var pushBeforeQueue, pullBeforeHandOver func()

// ---- the pushing end ----

// Push is a sending end of a pipeline: every message sent goes to exactly
// one puller, in order for each puller, and is never lost while a puller that
// can take it exists.
//
// Delivery: Send copies the message into the shared-memory queue of a puller
// that has room (pullers take turns), so a slow puller never holds the others
// back: it gets only what it makes room for. While no puller has room, or none
// is there yet, messages wait in the pusher's queue (WithChanCap, default 64),
// and Send blocks once that is full; waiting messages go out packed, many to
// a sample. A puller that closes or whose process dies has the messages it
// had not handed over to its user given to other pullers, ahead of the queue;
// a message it handed over (its Recv returned it, or In's goroutine holds it)
// is not sent again, and is lost if the puller did not finish it — as with
// nng's push/pull, a pipeline delivers at most once to a puller's user and at
// least once to some puller's shared memory. A puller's death is seen at once
// through a pidfd (without pidfd support, every quarter of WithPeerTimeout).
//
// Several pushers may share a pipeline (up to MaxPushers), each with its own
// queue and its own share of every puller's room; a puller takes the messages
// of each pusher in the order that pusher sent them.
//
// Ending: a pusher ends only by Close or by the end of the context it was
// opened with; pullers and other pushers coming and going do not end it.
// Close stops accepting messages and waits up to the linger time (WithLinger,
// default 1 s) until pullers took every message this pusher sent; it returns
// nil only then and an error matching ErrUndelivered otherwise. When the
// context ends, the pusher ends at once and what was not taken is dropped.
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
	stage   []byte // a packed sample being built

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

	outs   *outlet[T]
	feeds  group
	closer closer
}

// route is the pusher's way to one puller.
type route struct {
	id       uint64
	svc      *PubSubService
	pub      *Publisher
	ev       *EventService
	ntf      *Notifier
	tally    *ffi.WaitWord // this pusher's: the puller's count of its messages handed over
	word     *ffi.WaitWord // the puller's wait word (nil: notify every send)
	room     int           // the puller's queue size
	seq      uint64        // samples sent
	sent     uint64        // messages sent
	taken    uint64        // messages the puller handed over
	inflight [][]byte
	full     bool // a send reached nobody: skip until the keeper looks again
	parked   bool // the tally is marked: wake the pushers
	pid      int
	unwatch  func()
	hdr      []byte
}

func (r *route) close() {
	r.unwatch()
	r.pub.Close() // before the notifier: the puller lists its pushers when it leaves (evLeft)
	r.ntf.Close()
	r.ev.Close()
	r.svc.Close()
	r.tally.Close()
	if r.word != nil {
		r.word.Close()
	}
}

// OpenPush opens a pushing end of the []byte pipeline called name. ctx bounds
// its life (see Push). Opening never waits for pullers.
func OpenPush(ctx context.Context, node *Node, name string, opts ...Option) (*Push[[]byte], error) {
	return OpenPushOf[[]byte](ctx, node, name, Raw{}, opts...)
}

// OpenPushOf opens a pushing end of the pipeline called name carrying values
// of T encoded by codec (see Fixed for fixed-layout types). Pullers must use a
// codec of the same payload type.
func OpenPushOf[T any](ctx context.Context, node *Node, name string, codec Codec[T], opts ...Option) (*Push[T], error) {
	const op = "open push"
	cfg, err := prepare(ctx, op, name, pullSuffix+strings.Repeat("0", pullIDLen), opts, nodeArg(node), codecArg("codec", codec))
	if err != nil {
		return nil, err
	}
	if err := cfg.only(op, name, "pusher", optBufferSize, optSpin, optPoll, optLossy, optHistory, optRecycling,
		optMaxSubscribers, optMaxPublishers, optWaitSubs); err != nil {
		return nil, err
	}
	node, hold, err := node.keep(op, name)
	if err != nil {
		return nil, err
	}
	p := &Push[T]{node: node, name: name, cfg: cfg, life: newLife(), tag: randomTag(), pt: payloadTypeOf(codec),
		enc: encoder(codec), batch: NewBatch(tookSize*64, 64), sem: make(chan struct{}, 1),
		routes: map[uint64]*route{}, gone: map[uint64]bool{}, room: newSignal(), changed: newSignal(),
		outs: newOutlet[T]()}
	p.ports.add(hold) // released last
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

// join opens the pusher's ports: the subscriber for the pullers' hellos and
// byes and the listener for their wake-ups.
func (p *Push[T]) join() error {
	p.node.CleanupDeadNodes() // frees the places of crashed former pushers
	var err error
	if p.tookSvc, err = p.node.PublishSubscribe(p.name+pushSuffix, pushServiceOpts()...); err != nil {
		return err
	}
	p.ports.add(p.tookSvc)
	if p.tookSub, err = p.tookSvc.Subscriber(); err != nil {
		return pushersFull(err, p.name)
	}
	p.ports.add(p.tookSub)
	if p.ev, err = p.node.Event(p.name+pushSuffix, pushEventOpts()...); err != nil {
		return err
	}
	p.ports.add(p.ev)
	if p.lis, err = p.ev.Listener(); err != nil {
		return pushersFull(err, p.name)
	}
	p.ports.add(p.lis)
	return nil
}

func pushersFull(err error, name string) error {
	if errors.Is(err, ErrLimitReached) {
		return &Error{Op: "open push", Name: name, Kind: ErrLimitReached,
			Detail: fmt.Sprintf("the pipeline has %d pushers already", MaxPushers)}
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
	// The tally comes before the publisher: a puller that gets a sample of
	// this pusher finds it.
	if r.tally = createTally(p.node, p.tag, id); r.tally == nil {
		fail()
		return
	}
	ps.add(wordCloser{r.tally})
	if r.pub, err = r.svc.Publisher(FailWhenFull(0), MaxMessageSize(max(p.cfg.maxMessage, packLimit)),
		InitialMessageSize(min(packStart, max(p.cfg.maxMessage, 1)))); err != nil {
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
	r.word = openWaitWord(p.node, subs[0])
	r.room = r.svc.BufferSize()
	r.pid, _, _ = p.node.lib.NodeIDDetails(subs[0].Node.Lo, subs[0].Node.Hi)
	p.routes[id] = r
	p.order = append(p.order, r)
	r.unwatch = watchNode(p.node.lib, subs[0].Node, p.cfg.peerTimeout/4, func() { p.left(id) })
}

// readTook takes the pullers' messages (held under mu): hellos and byes. It
// returns the pullers to attach.
func (p *Push[T]) readTook() (hello []uint64) {
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
			switch {
			case r == nil && t.kind == tookHello:
				hello = append(hello, t.id)
			case r != nil && t.kind == tookBye:
				p.drop(r)
			}
		}
		if k < len(p.batch.lens) {
			return hello
		}
	}
}

// refresh reads the pullers' messages, attaches new pullers and lets go of
// those whose wait word says they closed (under mu).
func (p *Push[T]) refresh() {
	for _, id := range p.readTook() {
		p.attach(id)
	}
	for i := 0; i < len(p.order); {
		if r := p.order[i]; r.word != nil && r.word.Gone() {
			p.drop(r) // removes it from order
			continue
		}
		i++
	}
}

// left runs when the puller id's process died.
func (p *Push[T]) left(id uint64) {
	p.mu.Lock()
	if r := p.routes[id]; r != nil {
		p.drop(r)
	}
	p.mu.Unlock()
}

// drop removes the route to a puller that left and gives the messages it had
// not handed over to the others, ahead of the queue (under mu). The tally is
// this pusher's own, so its count is there whoever removed the puller's
// resources.
func (p *Push[T]) drop(r *route) {
	p.syncLeft(r)
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
	}
	// The keeper looks at once: it may wait to hear from this puller, which
	// can no longer wake it (one killed after it claimed the keeper's mark
	// took its messages and told nobody), and Close waits for the keeper.
	p.askedRoom = false
	p.wakeKeeper()
	r.tally.SetGone()       // the puller may go now
	r.ntf.Notify(evDrained) // and is told so if it waits
	p.bg.Add(1)
	go func() { // outside mu: watchNode's cancel waits for a callback that may want mu
		defer p.bg.Done()
		r.close()
	}()
	p.hub.kick()
}

// sync reads from the tally how many messages the puller handed over and
// frees their copies (under mu).
func (p *Push[T]) sync(r *route) {
	if id, n, ok := r.tally.Last(); ok {
		p.takeUpTo(r, id, n)
	}
}

// syncLeft is sync for a puller that left: one killed while it wrote its
// count leaves the tally's counter odd for good, and sync would read nothing,
// so what it counted would be given to others again (under mu).
func (p *Push[T]) syncLeft(r *route) {
	id, n := r.tally.LastLeft()
	p.takeUpTo(r, id, n)
}

// takeUpTo frees the copies of r's messages up to the count n that the
// tally holds for the puller id (under mu).
func (p *Push[T]) takeUpTo(r *route, id, n uint64) {
	if id != r.id || n <= r.taken || n > r.sent {
		return
	}
	for ; r.taken < n; r.taken++ {
		p.recycle(r.inflight[0])
		r.inflight[0] = nil
		r.inflight = r.inflight[1:]
	}
}

// credit is how many more messages r's puller has room for (under mu).
func (p *Push[T]) credit(r *route) int {
	if r.full {
		return 0
	}
	p.sync(r)
	return r.room - int(r.sent-r.taken)
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
	if ctx == nil {
		return nilArg("send", p.name, "ctx")
	}
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
	// before it may wait in the queue, where it would be dropped
	if err := fitsPayload("send", p.name, p.pt.Size, p.pt.Fixed, len(msg)); err != nil {
		return err
	}
	if pushBeforeQueue != nil {
		pushBeforeQueue()
	}
	p.mu.Lock()
	if len(p.pending) > 0 {
		p.flush() // pullers may have made room since
	}
	if len(p.pending) == 0 {
		if r := p.next(); r != nil {
			ok, err := p.deliver(r, msg, 0)
			if ok {
				r.inflight = append(r.inflight, p.copyOf(msg))
			}
			if ok || err != nil {
				p.mu.Unlock()
				return err
			}
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
		p.flush()
	}
	p.pending = append(p.pending, p.copyOf(msg))
	p.wakeKeeper()
	p.mu.Unlock()
	return nil
}

// next returns the puller to send to, one that has room; nil when none has
// (under mu). Pullers take turns, and among them those that wait in a receive
// call go first, then the ones that work on what they received. A waiting
// puller gets its turn whether it spins or parks: preferring the spinning ones
// (no wake-up) would starve a parked one while others keep up.
func (p *Push[T]) next() *route {
	var best *route
	rank, at := 2, 0
	for i := range len(p.order) {
		r := p.order[(p.turn+i)%len(p.order)]
		if p.credit(r) <= 0 {
			continue
		}
		k := 1
		if w := r.word; w == nil || w.Waiting() {
			k = 0
		}
		if k < rank {
			best, rank, at = r, k, i
			if k == 0 {
				break
			}
		}
	}
	p.turn += at + 1
	return best
}

// deliver sends one sample to r's puller: a plain message (count 0) or count
// messages packed in frames (under mu). It reports whether the puller got it;
// a puller that got nothing is skipped until the keeper looks again (its bye
// or death follows), and an error is for the message itself.
func (p *Push[T]) deliver(r *route, data []byte, count int) (bool, error) {
	h := header{tag: p.tag, seq: r.seq + 1, first: r.sent, count: uint32(count), kind: kindData}
	h.put(r.hdr)
	n, err := r.pub.sendNotify(data, r.hdr, r.ntf, evData, r.word)
	if err != nil && !errors.Is(err, ErrWouldBlock) {
		if count == 0 && (errors.Is(err, ErrMessageTooLarge) || errors.Is(err, ErrInvalidArgument)) {
			return false, err
		}
		r.full = true
		return false, nil
	}
	if n == 0 {
		r.full = true
		return false, nil
	}
	r.seq++
	r.sent += uint64(max(count, 1))
	return true, nil
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
// Close waits for pullers to take them), it marks the tallies of the pullers
// concerned with the count at which it wants to hear from them, then waits
// for that; otherwise it waits only for pullers coming and going, so an idle
// pusher costs nothing.
func (p *Push[T]) keep() {
	defer p.wg.Done()
	w := newSignal()
	for {
		p.mu.Lock()
		p.unpark()
		if p.stopping {
			p.mu.Unlock()
			return
		}
		for _, r := range p.order {
			r.full = false
		}
		p.refresh()
		p.flush()
		need := p.needRoom()
		if need {
			// Mark first, then look again: a puller that handed messages
			// over before it saw the mark has written its count by now.
			p.park()
			p.flush()
			if need = p.needRoom(); !need {
				p.unpark()
			}
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

// park marks the tallies of the pullers that have untaken messages with the
// count at which the keeper wants to hear from them: once half their room is
// free while messages wait, once they took everything while Close waits
// (under mu).
func (p *Push[T]) park() {
	for _, r := range p.order {
		if r.sent == r.taken {
			continue
		}
		at := r.sent
		if len(p.pending) > 0 {
			at = r.sent - uint64(r.room) + uint64(max(r.room/2, 1))
		}
		r.tally.SetBuffer(at)
		r.tally.Park()
		r.parked = true
	}
}

// unpark takes the marks off again (under mu).
func (p *Push[T]) unpark() {
	for _, r := range p.order {
		if r.parked {
			r.tally.Unpark()
			r.tally.SetBuffer(math.MaxUint64)
			r.parked = false
		}
	}
}

// flush delivers the queue while pullers have room (under mu). Small waiting
// messages go packed, many to a sample, each puller getting at most its room
// and its share of the queue.
func (p *Push[T]) flush() {
	for len(p.pending) > 0 {
		r := p.next()
		if r == nil {
			return
		}
		limit := min(p.credit(r), packMessages, max(len(p.pending)/len(p.order), 1))
		k, size := 0, 0
		for k < min(limit, len(p.pending)) {
			m := p.pending[k]
			// a sample of a fixed type holds exactly one value: never a pack
			if p.pt.Fixed || len(m) > packSmall || size+frameSize+len(m) > packBytes {
				break
			}
			size += frameSize + len(m)
			k++
		}
		var ok bool
		var err error
		if k <= 1 {
			k = 1
			ok, err = p.deliver(r, p.pending[0], 0)
		} else {
			p.stage = p.stage[:0]
			for _, m := range p.pending[:k] {
				p.stage = appendFrame(p.stage, m)
			}
			ok, err = p.deliver(r, p.stage, k)
		}
		switch {
		case err != nil: // a message no puller can take
			if p.cfg.onDrop != nil {
				p.cfg.onDrop(err)
			}
			p.recycle(p.pending[0])
		case ok:
			r.inflight = append(r.inflight, p.pending[:k]...)
		default:
			continue // r is skipped now
		}
		clear(p.pending[:k])
		p.pending = p.pending[k:]
		wake(p.room)
	}
}

// Out is the channel of messages to the pipeline. It has no buffer: a value
// sent on it is handed over as by Send; one that Out took before Close goes to
// a puller before Close waits for the pullers (it waits for room within the
// linger time), and counts in Close's result. After the pusher ended a send on
// Out blocks, so select on Done as well. Values Send refuses go to OnDrop. A
// goroutine behind it starts on the first call.
// That goroutine is a sender of its own: values sent on Out keep their order,
// but a Send made after a send on Out returned may arrive before that value.
func (p *Push[T]) Out() chan<- T { return p.outs.open(&p.feeds, p, p.life, p.cfg.onDrop) }

// send is Send for Out's goroutine.
func (p *Push[T]) send(ctx context.Context, v T) error { return p.Send(ctx, v) }

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
	ctx, cancel := context.WithTimeout(context.Background(), p.cfg.linger)
	defer cancel()
	if graceful {
		p.outs.finish(ctx) // the value Out holds goes first
	}
	p.life.end(reason, true)
	p.quiesce()
	var result error
	if graceful {
		result = p.linger(ctx)
	} else {
		p.outs.finish(doneContext)
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

// quiesce waits for a Send that found the pusher open before it ended: its
// message is queued or sent once it gives the turn back, and what Close
// counts then includes it. Later Sends find the pusher ended. A Send that
// waits for room returns at the end, so this wait is short.
func (p *Push[T]) quiesce() {
	p.sem <- struct{}{}
	<-p.sem
}

// linger waits until pullers took everything, or ctx (the linger time) ends.
func (p *Push[T]) linger(ctx context.Context) error {
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
			return p.untaken("no puller had room for Out's value within the linger time")
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
		p.sync(r)
		untaken += int(r.sent - r.taken)
	}
	return len(p.pending), untaken
}

// untaken is Close's result: nil when pullers took every message, including
// the value Out held, an ErrUndelivered error saying how many they did not
// take, and why, otherwise.
func (p *Push[T]) untaken(why string) error {
	p.mu.Lock()
	queued, untaken := p.counts()
	p.mu.Unlock()
	lost := int(p.outs.lost.Load())
	if queued+untaken+lost == 0 {
		return nil
	}
	return &Error{Op: "close push", Name: p.name, Kind: ErrUndelivered,
		Detail: fmt.Sprintf("%d messages not taken (%d still queued, %d held by Out and not sent): %s", queued+untaken+lost, queued, lost, why)}
}

// ---- the pulling end ----

// Pull is a receiving end of a pipeline: it gets the share of the pushers'
// messages that it makes room for, those of each pusher in the order that
// pusher sent them.
//
// Recv (or the goroutine behind In) takes messages out of the puller's
// shared-memory queue (BufferSize samples per pusher, default 64), on the
// caller's goroutine, spinning briefly and then parking in the runtime
// poller. Before it hands a message over it counts it in the pusher's tally:
// from then on the message is this puller's, and is lost if the puller's
// process dies before finishing it. What it has not handed over when it
// closes or dies goes to other pullers. In has no buffer, so a puller using
// In holds at most the one message its goroutine waits to hand over.
//
// A puller waits for messages while no pusher is there, and goes on with the
// pushers that come; it ends only by Close or by the end of its context,
// after which Recv returns Err. It watches the pushers' processes: what a
// pusher that died sent is delivered, also when it died before it could wake
// the puller (see senders.go).
type Pull[T any] struct {
	node  *Node
	name  string
	cfg   chanConfig
	life  *life
	id    uint64
	ports ports

	svc     *PubSubService // the puller's queue
	sub     *Subscriber
	word    *ffi.WaitWord // the queue's wait word
	wmu     sync.RWMutex  // word: Close unmaps it
	lis     *Listener
	tookPb  *Publisher
	pipeSvc *PubSubService // the pipeline's own service (pushSuffix): every puller publishes there
	ntf     *Notifier
	hub     *hub
	senders *senders // the pushers' processes
	rx      *receiver[pulled[T]]
	spins   spinStats
	dec     *pullCodec[T]
	decoded uint64 // the decoder's count after the last look
	tb      []byte
	held    int // In's goroutine ended holding a message (read after feeds.stop)

	handing sync.RWMutex      // held shared by a receive from its take to its hand-over; Close waits for those
	mu      sync.Mutex        // counts: Recv and In's goroutine hand over concurrently
	tallies map[uint64]*tally // by pusher tag
	segs    []segment         // the samples whose messages are not all handed over
	order   []uint64          // tallies' tags, oldest first

	in     chan T
	inOnce sync.Once
	feeds  group
	torn   chan struct{}
	closer closer
}

// tally is a puller's view of a pusher's tally (nil w: the pusher's was not
// found; its messages are not counted).
type tally struct {
	w     *ffi.WaitWord
	owner UniqueID // the pusher's node
	n     uint64   // the count written last
	segs  int      // segments that still count into it
}

// segment is a sample taken out of shared memory: its messages were decoded
// as numbers from..from+count-1 and are the pusher's first+1..first+count.
type segment struct {
	t     *tally
	from  uint64
	count uint64
	first uint64
	left  uint64
}

// pulled is a message as the receiver queues it: the value (or why it could
// not be decoded) and its number, by which it is counted when handed over.
type pulled[T any] struct {
	v   T
	err error
	n   uint64
}

// pullCodec numbers the messages as they are decoded, in the order they are
// queued.
type pullCodec[T any] struct {
	inner Codec[T]
	raw   bool
	spare **spares
	n     uint64 // the next number (touched by the receiving goroutine only)
}

func (c *pullCodec[T]) Append(dst []byte, v pulled[T]) ([]byte, error) {
	return appendSafe(c.inner, dst, v.v)
}

func (c *pullCodec[T]) Decode(b []byte) (pulled[T], error) {
	it := pulled[T]{n: c.n}
	c.n++
	if c.raw {
		buf := (*c.spare).get(len(b))
		if buf == nil {
			buf = make([]byte, len(b))
		}
		copy(buf, b)
		it.v = any(buf).(T)
		return it, nil
	}
	it.v, it.err = decodeSafe(c.inner, b)
	if it.err != nil {
		it.err = &Error{Op: "decode", Name: "", Kind: ErrInvalidArgument, Detail: it.err.Error() + "; the message was dropped"}
	}
	return it, nil
}

// OpenPull opens a pulling end of the []byte pipeline called name. ctx bounds
// its life (see Pull). Opening never waits for a pusher.
func OpenPull(ctx context.Context, node *Node, name string, opts ...Option) (*Pull[[]byte], error) {
	return OpenPullOf[[]byte](ctx, node, name, Raw{}, opts...)
}

// OpenPullOf opens a pulling end of the pipeline called name carrying values
// of T decoded by codec.
func OpenPullOf[T any](ctx context.Context, node *Node, name string, codec Codec[T], opts ...Option) (*Pull[T], error) {
	const op = "open pull"
	cfg, err := prepare(ctx, op, name, pullSuffix+strings.Repeat("0", pullIDLen), opts, nodeArg(node), codecArg("codec", codec))
	if err != nil {
		return nil, err
	}
	if err := cfg.only(op, name, "puller", optChanCap, optPeerTimeout, optPoll, optLossy, optHistory,
		optMaxSubscribers, optMaxPublishers, optWaitSubs); err != nil {
		return nil, err
	}
	node, hold, err := node.keep(op, name)
	if err != nil {
		return nil, err
	}
	p := &Pull[T]{node: node, name: name, cfg: cfg, life: newLife(), id: randomID(), tb: make([]byte, tookSize),
		tallies: map[uint64]*tally{}, in: make(chan T), torn: make(chan struct{})}
	p.ports.add(hold) // released last
	if err := p.join(payloadTypeOf(codec)); err != nil {
		p.ports.release()
		return nil, err
	}
	p.senders = newSenders(node.lib, p.svc.Publishers, cfg.peerTimeout/4, func() { p.hub.post(bit(evData)) })
	p.hub = newHub(p.lis, p.senders.onIDs)
	p.senders.refresh() // none yet (the queue is new); later pushers say hello
	_, raw := any(codec).(Raw)
	p.dec = &pullCodec[T]{inner: codec, raw: raw}
	p.rx = newReceiver[pulled[T]](name, p.sub, p.hub, p.life, p.dec, cfg, true, false)
	p.rx.spin.crowd, p.rx.spin.stats = p.crowded, &p.spins
	p.dec.spare = &p.rx.spare
	p.rx.ww = p.word
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
// the pushers.
func (p *Pull[T]) join(pt PayloadType) error {
	name := pullName(p.name, p.id)
	var err error
	if p.svc, err = p.node.PublishSubscribe(name, append(pullServiceOpts(pt), BufferSize(p.cfg.queue), CreateOnly())...); err != nil {
		return err
	}
	p.ports.add(p.svc)
	if p.sub, err = p.svc.Subscriber(); err != nil {
		return err
	}
	p.ports.add(p.sub)
	if p.word = newWaitWord(p.node, p.sub, p.cfg.queue); p.word != nil {
		p.ports.add(wordCloser{p.word})
	}
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
	p.pipeSvc = tsvc
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

// crowded reports whether other pullers share the pipeline (see spinner):
// each puller publishes its tallies on the pipeline's service.
func (p *Pull[T]) crowded() bool {
	pullers, _, err := p.pipeSvc.Counts()
	return err == nil && pullers > 1
}

// say tells the pushers t and wakes them with id, in one native call. It
// reports whether a pusher was there to hear it.
func (p *Pull[T]) say(t took, id EventID) bool {
	t.put(p.tb)
	n, _ := p.tookPb.sendNotify(p.tb, nil, p.ntf, id, nil)
	return n > 0
}

// tookSome runs after every look into shared memory, on the receiving
// goroutine: it notes which pusher's messages each sample taken carried, so
// that handing them over counts them in that pusher's tally.
func (p *Pull[T]) tookSome(int) {
	b := p.rx.batch
	from := p.decoded
	p.decoded = p.dec.n
	if b.Len() == 0 {
		return
	}
	var want uint64
	for i := range b.Len() {
		if h := readHeader(b.header(i)); h.kind == kindData {
			want += uint64(max(h.count, 1))
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	// Some messages were dropped on the way in (and reported to Recv): which
	// number is which message is not known, so the samples count as handed
	// over now.
	exact := p.dec.n-from == want
	for i := range b.Len() {
		h := readHeader(b.header(i))
		if h.kind != kindData {
			continue
		}
		count := uint64(max(h.count, 1))
		t := p.tally(h.tag)
		switch {
		case t.w == nil:
		case !exact:
			p.count(t, h.first+count)
		default:
			t.segs++
			p.segs = append(p.segs, segment{t: t, from: from, count: count, first: h.first, left: count})
		}
		from += count
	}
}

// tally returns the puller's view of the tally of the pusher with tag,
// opening it on first use (under mu). The pusher made it before its first
// sample: it is found among the nodes of the queue's publishers.
func (p *Pull[T]) tally(tag uint64) *tally {
	if t := p.tallies[tag]; t != nil {
		return t
	}
	t := &tally{}
	if pubs, err := p.svc.Publishers(); err == nil {
		for _, pub := range pubs {
			if t.w = openTally(p.node, pub.Node, tag, p.id); t.w != nil {
				t.owner = pub.Node
				break
			}
		}
	}
	p.tallies[tag] = t
	p.order = append(p.order, tag)
	// Pushers come and go: forget the oldest that nothing counts into.
	for i := 0; len(p.tallies) > maxTally && i < len(p.order); {
		old := p.tallies[p.order[i]]
		if old.segs > 0 || old == t {
			i++
			continue
		}
		if old.w != nil {
			old.w.Close()
		}
		delete(p.tallies, p.order[i])
		p.order = append(p.order[:i], p.order[i+1:]...)
	}
	return t
}

// count writes n into t's tally, when it is more than it says, and wakes the
// pushers when the pusher waits for that count (under mu).
func (p *Pull[T]) count(t *tally, n uint64) {
	if n <= t.n || t.w == nil {
		return
	}
	t.n = n
	t.w.SetLast(p.id, n)
	if n >= t.w.Buffer() && t.w.Claim() {
		if afterClaim != nil {
			afterClaim()
		}
		p.ntf.Notify(evSpace)
	}
}

// handOver counts the message numbered n as handed over, before it is.
func (p *Pull[T]) handOver(n uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := range p.segs {
		s := &p.segs[i]
		if n < s.from || n >= s.from+s.count {
			continue
		}
		p.count(s.t, s.first+n-s.from+1)
		if s.left--; s.left == 0 {
			s.t.segs--
			p.segs = append(p.segs[:i], p.segs[i+1:]...)
		}
		return
	}
}

// waiting tells the pushers, through the wait word, whether a receive call
// waits (see Push.next).
func (p *Pull[T]) waiting(on bool) {
	p.wmu.RLock()
	if p.word != nil {
		p.word.SetWaiting(on)
	}
	p.wmu.RUnlock()
}

// next is the receiver's next message, counted as handed over when it is one.
func (p *Pull[T]) next(ctx context.Context) (rxItem[pulled[T]], error) {
	if ctx == nil { // before the wait word says a receive waits
		return rxItem[pulled[T]]{}, nilArg("receive", p.name, "ctx")
	}
	// A message taken is counted as handed over before Close says bye (see
	// quiesce): a message the receive returns is never given to another
	// puller as well.
	p.handing.RLock()
	defer p.handing.RUnlock()
	p.waiting(true)
	it, err := p.rx.next(ctx, false)
	p.waiting(false)
	if err == nil && it.err == nil && pullBeforeHandOver != nil {
		pullBeforeHandOver()
	}
	if err == nil && it.err == nil {
		p.handOver(it.v.n)
	}
	return it, err
}

// quiesce waits for the receives that took a message and have not counted
// it yet. Once the puller's life ended, no receive takes anything more
// (receiver.next returns the end), so this wait is short.
func (p *Pull[T]) quiesce() {
	p.handing.Lock()
	p.handing.Unlock()
}

// Recv returns the next message, waiting while none is there; after Close it
// returns ErrClosed. A message that had to be dropped (too large, undecodable)
// comes back as its error, and the next Recv goes on.
func (p *Pull[T]) Recv(ctx context.Context) (T, error) {
	it, err := p.next(ctx)
	if err != nil {
		return it.v.v, err
	}
	if it.err != nil {
		return it.v.v, it.err
	}
	if it.v.err != nil {
		return it.v.v, p.named(it.v.err)
	}
	return it.v.v, nil
}

// TryRecv returns the next message if one has arrived, and ok false at once
// when none has: it never waits for a message. It waits only for its turn
// while a Recv or In of this puller waits for one, until ctx ends (then it
// returns ctx's error). Otherwise it answers as Recv: a message that had to
// be dropped comes back as its error (ok false), and the next call goes on;
// after Close it returns ErrClosed.
func (p *Pull[T]) TryRecv(ctx context.Context) (v T, ok bool, err error) {
	if ctx == nil {
		return v, false, nilArg("receive", p.name, "ctx")
	}
	p.handing.RLock() // see next
	defer p.handing.RUnlock()
	it, ok, err := p.rx.tryRecv(ctx)
	if !ok {
		return v, false, err
	}
	p.handOver(it.n)
	if it.err != nil {
		return v, false, p.named(it.err)
	}
	return it.v, true, nil
}

func (p *Pull[T]) named(err error) error {
	var e *Error
	if errors.As(err, &e) && e.Name == "" {
		c := *e
		c.Name = p.name
		return &c
	}
	return err
}

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
		it, err := p.next(context.Background())
		if err != nil {
			return
		}
		if it.err == nil {
			it.err = it.v.err
		}
		if it.err != nil {
			if p.cfg.onDrop != nil {
				p.cfg.onDrop(p.named(it.err))
			}
			continue
		}
		if !handOver(p.in, it.v.v, p.torn) {
			p.held = 1 // handed over to this goroutine and not on: Close reports it
			return
		}
	}
}

// Recycle hands a received message's buffer back for reuse: the next messages
// are received into it instead of a new buffer (how many are kept: see
// WithRecycling). Do not use b afterwards; a buffer handed back twice is
// kept once.
func (p *Pull[T]) Recycle(b []byte) { recycle(p.rx.spare, b) }

// Done is closed when the puller has ended; Err says why.
func (p *Pull[T]) Done() <-chan struct{} { return p.life.Done() }

// Err is nil while the puller is open, then why it ended: ErrClosed after
// Close, or an *Error wrapping the cause of the context it was opened with.
func (p *Pull[T]) Err() error { return p.life.err() }

// Close ends the puller and releases it: what it has not handed over goes
// back to the pushers for other pullers. Close waits up to the linger time
// (WithLinger, default 1 s) for each pusher that sent it messages to confirm
// that it let it go; without that confirmation it returns an error matching
// ErrUndelivered, as it does when it dropped a message that In's goroutine
// held while nobody read In. With no pusher there it does not wait. A second
// Close returns ErrClosed.
func (p *Pull[T]) Close() error { return p.closer.close("pull", "close pull", p.name) }

func (p *Pull[T]) shutdown(reason error, _ bool) (result error) {
	p.life.end(reason, true)
	p.senders.close()
	close(p.torn)
	p.rx.stepAside()
	p.hub.kick()
	p.quiesce()
	p.feeds.stop()
	p.rx.sem <- struct{}{} // no Recv takes anything any more: the tallies are final
	if p.held > 0 {
		result = &Error{Op: "close pull", Name: p.name, Kind: ErrUndelivered,
			Detail: fmt.Sprintf("%d messages handed over to In and not read were dropped", p.held)}
	}
	if p.word != nil {
		p.word.SetGone() // the pushers let this puller go at their next look
	}
	if p.say(took{id: p.id, kind: tookBye}, evLeft) {
		// The pushers that sent messages here confirm that they let this
		// puller go: then they have given back what it did not hand over.
		ctx, cancel := context.WithTimeout(context.Background(), p.cfg.linger)
		w := newSignal()
		unwatch := p.watchPushers()
		for !p.released() {
			if _, err := p.hub.wait(ctx, nil, bit(evDrained), w); err != nil {
				if result == nil {
					result = &Error{Op: "close pull", Name: p.name, Kind: ErrUndelivered,
						Detail: "a pusher did not confirm within the linger time that it let this puller go: the messages waiting for this puller may be lost"}
				}
				break
			}
		}
		unwatch()
		cancel()
	}
	<-p.rx.sem
	p.wmu.Lock()
	p.word = nil // ports.release unmaps it
	p.wmu.Unlock()
	p.ports.release()
	p.mu.Lock()
	for _, t := range p.tallies {
		if t.w != nil {
			t.w.Close()
		}
	}
	p.tallies, p.segs = nil, nil // a Recv that returns now counts nothing more
	p.mu.Unlock()
	return result
}

// watchPushers watches the processes of the pushers that sent messages here
// and did not confirm yet, while Close waits for them: the death of one wakes
// the wait, which then no longer waits for it (see released). It returns the
// function that stops watching.
func (p *Pull[T]) watchPushers() (stop func()) {
	owners := map[UniqueID]bool{}
	p.mu.Lock()
	for _, t := range p.tallies {
		if t.w != nil && !t.w.Gone() {
			owners[t.owner] = true
		}
	}
	p.mu.Unlock()
	watches := newNodeWatches(p.node.lib, p.cfg.peerTimeout/4)
	for owner := range owners {
		watches.add(owner, func() { p.hub.post(bit(evDrained)) })
	}
	return watches.stop
}

// released reports whether every pusher that sent messages here and is
// alive confirmed that it let the puller go.
func (p *Pull[T]) released() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, t := range p.tallies {
		if t.w == nil || t.w.Gone() {
			continue
		}
		if pid, created, st := p.node.lib.NodeIDDetails(t.owner.Lo, t.owner.Hi); st == ffi.OK && liveness.Alive(pid, created) {
			return false
		}
	}
	return true
}
