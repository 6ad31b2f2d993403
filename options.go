package iox

import (
	"context"
	"fmt"
	"reflect"
	"time"

	"github.com/iox-go/iox/internal/ffi"
)

// Settings shared by the channel adapters (Pair, Pub, Sub).
type chanConfig struct {
	queue          int           // messages each receiver can hold in shared memory
	chanCap        int           // capacity of the Go channels
	maxMessage     int           // largest message in bytes
	peerTimeout    time.Duration // bound for noticing a crashed peer
	spin           time.Duration // busy-poll before parking, for low latency
	poll           time.Duration // receive poll for peers that never notify
	linger         time.Duration // how long Close waits for the peer to take what was sent
	lossy          bool
	history        int
	maxSubscribers int
	maxPublishers  int
	maxBorrowed    int    // messages a receiver may hold borrowed at once (views, and one being copied)
	recycle        int    // spare receive buffers kept for Recycle
	recycleSet     bool   // WithRecycling was given: keep exactly recycle
	waitSubs       int    // a publisher holds its messages until this many subscribers are there
	set            optSet // the options given
	onDrop         func(error)
}

func defaultChanConfig() chanConfig {
	return chanConfig{
		queue:          64,
		chanCap:        64,
		maxMessage:     DefaultMaxMessageSize,
		peerTimeout:    time.Second,
		spin:           spinAdaptive,
		poll:           10 * time.Millisecond,
		linger:         time.Second,
		maxSubscribers: 8,
		maxPublishers:  2,
		maxBorrowed:    4,
		recycle:        defaultRecycle,
	}
}

// defaultRecycle is how many buffers handed back with Recycle a receiving
// channel keeps unless WithRecycling says otherwise.
const defaultRecycle = 8

// Option configures a service, a port or a channel adapter. iox has one
// vocabulary for both layers: a setting that is iceoryx2's own bears iceoryx2's
// name (BufferSize is the subscriber buffer size, History the history size,
// MaxPublishers, MaxSubscribers, MaxNodes, …) and means the same on a service
// opened with Node.PublishSubscribe as on a channel opened with OpenPub. Every
// constructor refuses an option that does not apply to it with
// ErrInvalidArgument, naming the option.
//
// Settings of a service are stored when it is created; when it is opened, each
// setting given explicitly must be satisfied by the existing service, or the
// open fails with ErrIncompatible.
//
// Bounds: every count is at most MaxServiceCount, and the counts that size
// something must be at least 1 (ErrInvalidArgument otherwise). iceoryx2 sizes
// a service up front: each publisher's data segment holds
// MaxSubscribers×(BufferSize+MaxBorrowed)+History+MaxLoans samples, and its
// bookkeeping and connections grow with the same count. Before a service is
// created, iox computes what it needs once every port it admits exists, and
// refuses with ErrOutOfMemory when that is more than a quarter of what
// /dev/shm and RAM (MemAvailable) can hold at that moment; the error names the
// settings that alone would make it fit and their largest values. Publisher,
// Subscriber, Notifier and Listener check their own share the same way.
type Option func(*options)

// options collects what the given Options set, for every layer; set records
// which options were given, so that a constructor can refuse the others.
type options struct {
	set optSet
	ch  chanConfig
	svc serviceConfig
	pub publisherConfig
	sub subscriberConfig

	nilFunc string // the option given a nil function, named
}

// optSet names options as bits.
type optSet uint64

const (
	optBufferSize optSet = 1 << iota
	optChanCap
	optMaxMessage
	optPeerTimeout
	optSpin
	optPoll
	optLinger
	optLossy
	optHistory
	optRecycling
	optMaxSubscribers
	optMaxPublishers
	optWaitSubs
	optOnDrop
	optOpenMode
	optPayloadType
	optHeader
	optMaxNodes
	optSafeOverflow
	optMaxBorrowed
	optMaxNotifiers
	optMaxListeners
	optMaxEventID
	optDeadEvent
	optDroppedEvent
	optCreatedEvent
	optInitialMessage
	optMaxLoans
	optFailWhenFull
	optSubscriberBuffer
	optMaxClients
	optMaxServers
	optMaxActiveRequests
	optResponseBuffer
	optMaxBorrowedResponses
	optFireAndForget
	optRequestType
	optResponseType
	optMaxReaders
)

var optNames = map[optSet]string{optBufferSize: "BufferSize", optChanCap: "WithChanCap", optMaxMessage: "MaxMessageSize",
	optPeerTimeout: "WithPeerTimeout", optSpin: "WithSpin", optPoll: "WithPoll", optLinger: "WithLinger", optLossy: "Lossy",
	optHistory: "History", optRecycling: "WithRecycling", optMaxSubscribers: "MaxSubscribers",
	optMaxPublishers: "MaxPublishers", optWaitSubs: "WaitSubscribers", optOnDrop: "OnDrop",
	optOpenMode: "OpenOnly/CreateOnly", optPayloadType: "WithPayloadType", optHeader: "the iox header",
	optMaxNodes: "MaxNodes", optSafeOverflow: "SafeOverflow", optMaxBorrowed: "MaxBorrowed",
	optMaxNotifiers: "MaxNotifiers", optMaxListeners: "MaxListeners", optMaxEventID: "MaxEventID",
	optDeadEvent: "NotifierDeadEvent", optDroppedEvent: "NotifierDroppedEvent", optCreatedEvent: "NotifierCreatedEvent",
	optInitialMessage: "InitialMessageSize", optMaxLoans: "MaxLoans", optFailWhenFull: "FailWhenFull",
	optSubscriberBuffer: "SubscriberBuffer", optMaxClients: "MaxClients", optMaxServers: "MaxServers",
	optMaxActiveRequests: "MaxActiveRequests", optResponseBuffer: "ResponseBufferSize",
	optMaxBorrowedResponses: "MaxBorrowedResponses", optFireAndForget: "FireAndForget",
	optRequestType: "WithRequestType", optResponseType: "WithResponseType", optMaxReaders: "MaxReaders"}

// What each constructor takes.
const (
	chanOpts = optBufferSize | optChanCap | optMaxMessage | optPeerTimeout | optSpin | optPoll | optLinger |
		optLossy | optHistory | optRecycling | optMaxSubscribers | optMaxPublishers | optWaitSubs | optOnDrop |
		optMaxBorrowed
	pubSubOpts = optOpenMode | optPayloadType | optHeader | optMaxPublishers | optMaxSubscribers | optMaxNodes |
		optBufferSize | optHistory | optSafeOverflow | optMaxBorrowed
	eventOpts = optOpenMode | optMaxNodes | optMaxNotifiers | optMaxListeners | optMaxEventID |
		optDeadEvent | optDroppedEvent | optCreatedEvent
	publisherOpts  = optMaxMessage | optInitialMessage | optMaxLoans | optFailWhenFull
	subscriberOpts = optSubscriberBuffer
	reqResOpts     = optOpenMode | optMaxNodes | optSafeOverflow | optMaxClients | optMaxServers | optMaxActiveRequests |
		optResponseBuffer | optMaxBorrowedResponses | optFireAndForget | optRequestType | optResponseType
	clientOpts = optMaxMessage | optInitialMessage | optFailWhenFull | optMaxLoans
	serverOpts = optMaxMessage | optInitialMessage | optFailWhenFull | optMaxLoans
	// blackboard services and their watchers (WithPoll)
	blackboardOpts = optMaxReaders | optMaxNodes
	watchOpts      = optPoll
)

// applyOptions runs opts over every layer's defaults and refuses, naming it,
// the first option outside allowed, which does not apply to what.
func applyOptions(op, name, what string, allowed optSet, opts []Option) (options, error) {
	o := options{ch: defaultChanConfig(), svc: serviceConfig{mode: ffi.OpenOrCreate, payload: Bytes},
		pub: publisherConfig{maxSize: DefaultMaxMessageSize}}
	o.pub.opts.InitialMaxLen = 4096
	o.pub.opts.Allocation = 1 // power-of-two growth
	for _, opt := range opts {
		if opt != nil {
			opt(&o)
		}
	}
	o.ch.set = o.set
	if o.nilFunc != "" {
		return o, nilArg(op, name, o.nilFunc)
	}
	if extra := o.set &^ allowed; extra != 0 {
		return o, &Error{Op: op, Name: name, Kind: ErrInvalidArgument,
			Detail: fmt.Sprintf("%s does not apply to a %s", optNames[extra&-extra], what)}
	}
	return o, nil
}

// only refuses the options of refused, which do not apply to the adapter what.
func (c chanConfig) only(op, name, what string, refused ...optSet) error {
	for _, o := range refused {
		if c.set&o != 0 {
			return &Error{Op: op, Name: name, Kind: ErrInvalidArgument,
				Detail: fmt.Sprintf("%s does not apply to a %s", optNames[o], what)}
		}
	}
	return nil
}

// MaxServiceCount bounds every count an Option takes, whatever the machine
// holds: beyond it iceoryx2's size computations are no longer safe.
const MaxServiceCount = 1 << 20

// ---- settings of iceoryx2 services, shared by ports and channels ----

// BufferSize sets how many messages each subscriber can hold unread (iceoryx2's
// subscriber buffer size): 1..MaxServiceCount (on a channel 1..1<<16). On a lossless channel it is how
// many samples a receiver holds in shared memory before the sender waits
// (default 64; both ends must agree): a sample is one message, or up to 64
// small messages of a stream packed together; the receiving end's goroutine
// holds more in its process (see WithChanCap). MaxSubscribers×BufferSize samples must fit
// the memory bound (see Option); BufferSize(1024) with the other settings at
// their defaults needs about 70 MiB per publisher of 4 KiB messages.
func BufferSize(n int) Option {
	return func(o *options) {
		o.set |= optBufferSize
		o.ch.queue = n
		o.svc.ps.Set |= ffi.PSBufferSize
		o.svc.ps.BufferSize = uint64(n)
	}
}

// History keeps the last n messages for subscribers that join late (iceoryx2's
// history size): 0..MaxServiceCount (on a channel 0..1<<16), within the memory bound (see Option); on a
// lossless channel at most BufferSize.
func History(n int) Option {
	return func(o *options) {
		o.set |= optHistory
		o.ch.history = n
		o.svc.ps.Set |= ffi.PSHistorySize
		o.svc.ps.HistorySize = uint64(n)
	}
}

// MaxPublishers bounds the publishers of a publish-subscribe service:
// 1..MaxServiceCount (channels: 1..1<<16, default 2), and each publisher counts fully
// against the memory bound (see Option).
func MaxPublishers(n int) Option {
	return func(o *options) {
		o.set |= optMaxPublishers
		o.ch.maxPublishers = n
		o.svc.ps.Set |= ffi.PSMaxPublishers
		o.svc.ps.MaxPublishers = uint64(n)
	}
}

// MaxSubscribers bounds the subscribers of a publish-subscribe service:
// 1..MaxServiceCount (channels: 1..1<<16, default 8). Every publisher's data segment has
// room for each subscriber's buffer, so this multiplies BufferSize and
// MaxBorrowed in the memory bound (see Option).
func MaxSubscribers(n int) Option {
	return func(o *options) {
		o.set |= optMaxSubscribers
		o.ch.maxSubscribers = n
		o.svc.ps.Set |= ffi.PSMaxSubscribers
		o.svc.ps.MaxSubscribers = uint64(n)
	}
}

// MaxMessageSize bounds one message in bytes (default DefaultMaxMessageSize; not
// negative); a larger Send fails with ErrMessageTooLarge, and a channel drops a
// larger incoming message with that error. A publisher's data segment grows to
// hold messages up to this size on demand, so the bound the machine sets is
// checked when a message needs the room: a message larger than /dev/shm, or a
// segment that cannot grow, fails with ErrOutOfMemory.
func MaxMessageSize(n int) Option {
	return func(o *options) {
		o.set |= optMaxMessage
		o.ch.maxMessage = n
		o.pub.maxSize = n
	}
}

// ---- services (Node.PublishSubscribe, Node.Event) ----

// OpenOnly opens an existing service and fails with ErrServiceNotFound otherwise.
func OpenOnly() Option { return func(o *options) { o.set |= optOpenMode; o.svc.mode = ffi.Open } }

// CreateOnly creates the service and fails with ErrServiceExists if it exists.
func CreateOnly() Option { return func(o *options) { o.set |= optOpenMode; o.svc.mode = ffi.Create } }

// WithPayloadType sets the payload type of a publish-subscribe service (default
// Bytes). Size is 1 to 1<<32-1 bytes; Align a power of two of at most 1<<29 (the
// largest a Rust type can ask for). Every sample is at least Align bytes, so a
// large alignment also counts against the memory bound (see Option).
func WithPayloadType(t PayloadType) Option {
	return func(o *options) { o.set |= optPayloadType; o.svc.payload = t }
}

// MaxNodes bounds the nodes that may open the service at once: 1..MaxServiceCount.
func MaxNodes(n int) Option {
	return func(o *options) {
		o.set |= optMaxNodes
		c := &o.svc
		c.ps.Set |= ffi.PSMaxNodes
		c.ps.MaxNodes = uint64(n)
		c.ev.Set |= ffi.EVMaxNodes
		c.ev.MaxNodes = uint64(n)
		c.rr.Set |= ffi.RRMaxNodes
		c.rr.MaxNodes = uint64(n)
		c.bb.Set |= ffi.BBMaxNodes
		c.bb.MaxNodes = uint64(n)
	}
}

// MaxReaders bounds the readers of a blackboard service: 1..MaxServiceCount.
// Opening an existing blackboard with it requires at least that many.
func MaxReaders(n int) Option {
	return func(o *options) {
		o.set |= optMaxReaders
		o.svc.bb.Set |= ffi.BBMaxReaders
		o.svc.bb.MaxReaders = uint64(n)
	}
}

// SafeOverflow chooses what a full subscriber buffer does: true replaces the
// oldest unread message (the publisher never blocks), false keeps it and lets the
// publisher decide (drop, or ErrWouldBlock with FailWhenFull). On a
// request-response service it applies to the servers' request buffers and the
// clients' response buffers alike: false makes a Send to a full one fail with
// ErrWouldBlock.
func SafeOverflow(on bool) Option {
	return func(o *options) {
		o.set |= optSafeOverflow
		v := uint64(0)
		if on {
			v = 1
		}
		c := &o.svc
		c.ps.Set |= ffi.PSSafeOverflow
		c.ps.SafeOverflow = v
		c.rr.Set |= ffi.RRSafeOverflowRequests | ffi.RRSafeOverflowResponses
		c.rr.SafeOverflowRequests, c.rr.SafeOverflowResponses = v, v
	}
}

// MaxBorrowed bounds how many messages one subscriber may hold borrowed at once:
// 1..MaxServiceCount (on a channel 1..1<<16), and like BufferSize it is
// multiplied by MaxSubscribers in the memory bound (see Option). On a channel
// it bounds the Views a receiving end holds at once (default 4), and a Recv
// needs a free one for the message it copies: a RecvView beyond it, or a Recv
// while the Views hold all of them, returns ErrTooManyLoans.
func MaxBorrowed(n int) Option {
	return func(o *options) {
		o.set |= optMaxBorrowed
		o.ch.maxBorrowed = n
		c := &o.svc
		c.ps.Set |= ffi.PSMaxBorrowed
		c.ps.MaxBorrowed = uint64(n)
	}
}

// MaxNotifiers bounds the notifiers of an event service: 1..MaxServiceCount.
// Each notifier keeps about 1.2 KiB per listener the service admits.
func MaxNotifiers(n int) Option {
	return func(o *options) {
		o.set |= optMaxNotifiers
		c := &o.svc
		c.ev.Set |= ffi.EVMaxNotifiers
		c.ev.MaxNotifiers = uint64(n)
	}
}

// MaxListeners bounds the listeners of an event service: 1..MaxServiceCount,
// within the memory bound (see Option and MaxEventID).
func MaxListeners(n int) Option {
	return func(o *options) {
		o.set |= optMaxListeners
		c := &o.svc
		c.ev.Set |= ffi.EVMaxListeners
		c.ev.MaxListeners = uint64(n)
	}
}

// MaxEventID sets the largest event id of an event service. Each listener keeps
// an 8-byte counter per id, which every wait scans, so MaxListeners×8×(id+1)
// bytes must fit the memory bound (see Option): ErrOutOfMemory otherwise,
// ErrInvalidArgument when the size overflows.
func MaxEventID(id EventID) Option {
	return func(o *options) {
		o.set |= optMaxEventID
		c := &o.svc
		c.ev.Set |= ffi.EVMaxEventID
		c.ev.MaxEventID = uint64(id)
	}
}

// NotifierDeadEvent makes iceoryx2 signal id to the listeners when a notifier's
// process dies (seen when dead nodes are cleaned up).
func NotifierDeadEvent(id EventID) Option {
	return func(o *options) {
		o.set |= optDeadEvent
		c := &o.svc
		c.ev.Set |= ffi.EVDeadEvent
		c.ev.DeadEvent = uint64(id)
	}
}

// NotifierDroppedEvent makes iceoryx2 signal id when a notifier is closed.
func NotifierDroppedEvent(id EventID) Option {
	return func(o *options) {
		o.set |= optDroppedEvent
		c := &o.svc
		c.ev.Set |= ffi.EVDroppedEvent
		c.ev.DroppedEvent = uint64(id)
	}
}

// NotifierCreatedEvent makes iceoryx2 signal id when a notifier is created.
func NotifierCreatedEvent(id EventID) Option {
	return func(o *options) {
		o.set |= optCreatedEvent
		c := &o.svc
		c.ev.Set |= ffi.EVCreatedEvent
		c.ev.CreatedEvent = uint64(id)
	}
}

// ---- request/response services (Node.RequestResponse) ----

// MaxClients bounds the clients of a request-response service: 1..MaxServiceCount.
// Every server keeps room for each client's requests in flight, so it
// multiplies MaxActiveRequests in the memory bound (see Option).
func MaxClients(n int) Option {
	return func(o *options) {
		o.set |= optMaxClients
		c := &o.svc
		c.rr.Set |= ffi.RRMaxClients
		c.rr.MaxClients = uint64(n)
	}
}

// MaxServers bounds the servers of a request-response service: 1..MaxServiceCount,
// and every client keeps room for its requests at each server (see Option).
func MaxServers(n int) Option {
	return func(o *options) {
		o.set |= optMaxServers
		c := &o.svc
		c.rr.Set |= ffi.RRMaxServers
		c.rr.MaxServers = uint64(n)
	}
}

// MaxActiveRequests bounds the requests one client may have in flight, that is
// PendingResponses not yet closed: 1..MaxServiceCount. A Send beyond it fails
// with ErrLimitReached. The memory a service needs grows with its square (a
// response channel per request, each tracking every response a server can
// hold), so it counts heavily in the memory bound (see Option).
func MaxActiveRequests(n int) Option {
	return func(o *options) {
		o.set |= optMaxActiveRequests
		c := &o.svc
		c.rr.Set |= ffi.RRMaxActiveRequests
		c.rr.MaxActiveRequests = uint64(n)
	}
}

// ResponseBufferSize sets how many responses to one request a client holds
// unread per server: 1..MaxServiceCount, within the memory bound (see
// Option). When it is full, a server's Send replaces the oldest unread
// response (SafeOverflow, iceoryx2's default) or fails with ErrWouldBlock
// (SafeOverflow(false)).
func ResponseBufferSize(n int) Option {
	return func(o *options) {
		o.set |= optResponseBuffer
		c := &o.svc
		c.rr.Set |= ffi.RRResponseBuffer
		c.rr.ResponseBuffer = uint64(n)
	}
}

// MaxBorrowedResponses bounds the responses a client may hold borrowed per
// request: 1..MaxServiceCount, within the memory bound (see Option).
// iox copies responses out, so it needs 1; peers that borrow may need more.
func MaxBorrowedResponses(n int) Option {
	return func(o *options) {
		o.set |= optMaxBorrowedResponses
		c := &o.svc

		c.rr.Set |= ffi.RRMaxBorrowedResponses
		c.rr.MaxBorrowedResponses = uint64(n)
	}
}

// FireAndForget chooses whether servers also receive requests whose client
// already closed the PendingResponse (iceoryx2's default: true). Such a
// request's ActiveRequest is not Connected, and sending on it fails with
// ErrPeerClosed.
func FireAndForget(on bool) Option {
	return func(o *options) {
		o.set |= optFireAndForget
		c := &o.svc

		c.rr.Set |= ffi.RRFireAndForget
		c.rr.FireAndForget = 0
		if on {
			c.rr.FireAndForget = 1
		}
	}
}

// WithRequestType sets the request payload type of a request-response service
// (default Bytes), with the bounds of WithPayloadType.
func WithRequestType(t PayloadType) Option {
	return func(o *options) { o.set |= optRequestType; o.svc.request = t }
}

// WithResponseType sets the response payload type of a request-response
// service (default Bytes), with the bounds of WithPayloadType.
func WithResponseType(t PayloadType) Option {
	return func(o *options) { o.set |= optResponseType; o.svc.reply = t }
}

// ---- ports (Publisher, Subscriber) ----

// InitialMessageSize sizes the first shared-memory segment for messages of n bytes;
// it grows on demand up to MaxMessageSize (default 4 KiB; not negative; larger
// values are cut to MaxMessageSize). The segment holds every sample that can be
// in flight at once (see Option), each of this size: when that does not
// fit the memory bound, Publisher fails with ErrOutOfMemory naming the largest
// InitialMessageSize that would.
func InitialMessageSize(n int) Option {
	return func(o *options) {
		o.set |= optInitialMessage
		c := &o.pub
		c.opts.InitialMaxLen = uint64(n)
	}
}

// MaxLoans bounds how many samples may be loaned from the publisher at once
// (0 = iceoryx2's default of 2; at most MaxServiceCount, within the memory bound).
func MaxLoans(n int) Option {
	return func(o *options) {
		o.set |= optMaxLoans
		c := &o.pub
		c.opts.MaxLoaned = uint64(n)
	}
}

// MaxSpin bounds FailWhenFull's retries: beyond them iceoryx2 sleeps inside the
// send call, which cannot be cancelled.
const MaxSpin = 10000

// FailWhenFull makes Send return ErrWouldBlock when a subscriber's buffer is full
// (on a service without SafeOverflow), instead of skipping that subscriber. The
// message may have reached other subscribers. While the subscriber has taken
// part since the publisher connected, Send first retries up to spin times
// (0..MaxSpin; iceoryx2 yields the thread between tries); a subscriber that has
// not looked for messages since then fails at once. Send then returns (k, nil)
// with k > 0 when every subscriber got the message, (0, nil) when there is no
// subscriber, and (0, ErrWouldBlock) when one was full. A subscriber that leaves
// during the Send can also cause ErrWouldBlock.
func FailWhenFull(spin int) Option {
	return func(o *options) {
		o.set |= optFailWhenFull
		c := &o.pub
		c.opts.Backpressure = ffi.BPFail
		c.opts.Spin = uint64(spin)
	}
}

// SubscriberBuffer sets this subscriber's buffer: 1 to the service's BufferSize
// (0 = the service's BufferSize); ErrInvalidArgument otherwise. A subscriber
// keeps bookkeeping for every publisher the service admits: when that does not
// fit the memory bound (see Option), Subscriber fails with ErrOutOfMemory.
func SubscriberBuffer(n int) Option {
	return func(o *options) { o.set |= optSubscriberBuffer; o.sub.bufferSize = uint64(n) }
}

// ---- channel adapters (Pair, Pub, Sub, Events) ----

// WithChanCap sets the capacity of the Go channels (default 64): 0..1<<20,
// ErrInvalidArgument otherwise. It also bounds what each end holds in its
// process: a sending end queues up to that many messages (at least one) while
// its receivers are full; a receiving end that nobody reads has its own
// goroutine take up to BufferSize + WithChanCap messages out of shared memory
// (so that a peer's bye and a waiting sender are seen), beside the BufferSize
// that shared memory holds. A lossless sender whose receiver reads nothing
// thus gets up to 2×BufferSize + WithChanCap messages out to it, plus its own
// queue, before Send waits (a packed sample of small messages counts as one
// in shared memory and is taken whole).
func WithChanCap(n int) Option {
	return func(o *options) { o.set |= optChanCap; c := &o.ch; c.chanCap = n }
}

// WithPeerTimeout bounds how long a crashed peer goes unnoticed (default 1 s;
// at least 4 ms, ErrInvalidArgument otherwise).
func WithPeerTimeout(d time.Duration) Option {
	return func(o *options) { o.set |= optPeerTimeout; c := &o.ch; c.peerTimeout = d }
}

// WithSpin makes receivers busy-poll shared memory for exactly d before they
// park in the runtime poller, whatever the load; WithSpin(0) never spins, and
// a negative d or one over a minute is refused (ErrInvalidArgument). The default is adaptive: a
// receiver spins for at most 100µs, and only while spinning has recently paid
// off (the peer answered within that time); spins that fail make it park at
// once for a growing number of waits, so a busy machine ends up parking.
func WithSpin(d time.Duration) Option {
	if d < 0 {
		d = spinRefused // not the adaptive default's mark: check refuses it
	}
	return func(o *options) { o.set |= optSpin; c := &o.ch; c.spin = d }
}

// WaitSubscribers makes a publisher hold its messages (Send then waits, as under
// backpressure) until at least n subscribers are there: nng's "wait for N
// subscribers" for publishers whose first messages must not go to nobody.
func WaitSubscribers(n int) Option {
	return func(o *options) { o.set |= optWaitSubs; c := &o.ch; c.waitSubs = n }
}

// OnDrop receives the errors of messages a channel had to drop where no caller
// could be told: on the receiving side, while it delivered through In() (too
// large for MaxMessageSize, undecodable, or malformed or out of sequence on
// iox's own services; Recv returns such errors itself, one per dropped
// message); on a pair's sending side, a value taken from Out() that could not
// be sent (refused by the codec, too large, or the pair ended as it was
// sent); on a server (OpenServer), requests that could not be taken or
// answered. The channel goes on. fn runs on the goroutine that feeds In or
// drains Out (or a Serve worker) and must not block. A nil fn is refused with
// ErrInvalidArgument.
func OnDrop(fn func(error)) Option {
	return func(o *options) {
		o.set |= optOnDrop
		o.ch.onDrop = fn
		if fn == nil {
			o.nilFunc = "OnDrop's function"
		}
	}
}

// WithPoll sets how often a subscriber looks for messages from publishers that
// never notify, such as plain Rust or Python ones (default 10 ms; d must be
// positive, ErrInvalidArgument otherwise). A blackboard
// Watch polls only when given WithPoll, for writers that do not notify.
func WithPoll(d time.Duration) Option {
	return func(o *options) { o.set |= optPoll; c := &o.ch; c.poll = d }
}

// WithLinger sets how long Close waits for the peer to take the messages already
// sent (default 1 s; not negative, ErrInvalidArgument otherwise).
func WithLinger(d time.Duration) Option {
	return func(o *options) { o.set |= optLinger; c := &o.ch; c.linger = d }
}

// Lossy makes a publish-subscribe channel never block the publisher: a slow
// subscriber loses its oldest messages. The service is then a plain iceoryx2
// [u8] (or fixed-type) service that peers in other languages can open.
func Lossy() Option { return func(o *options) { o.set |= optLossy; o.ch.lossy = true } }

// WithRecycling keeps up to n received []byte buffers that the reader hands back
// with Recycle (0 keeps none), and receives into them instead of allocating. By
// default a channel keeps 8 buffers of any size, and buffers of up to 64 KiB as
// many as its receiving side can hold at once (WithChanCap plus one packed
// sample, at most 1024): a reader that hands back every message it is done
// with allocates nothing per message, also while a stream of small messages
// runs ahead of it.
func WithRecycling(n int) Option {
	return func(o *options) { o.set |= optRecycling; c := &o.ch; c.recycle, c.recycleSet = n, true }
}

// Bounds of the adapters' settings: larger values cannot be allocated or would
// overflow iceoryx2's size computations.
const (
	maxChanCap = 1 << 20
	maxCount   = 1 << 16
)

func newChanConfig(op, name string, opts []Option) (chanConfig, error) {
	o, err := applyOptions(op, name, "channel", chanOpts, opts)
	if err != nil {
		return o.ch, err
	}
	return o.ch, o.ch.check(op, name)
}

// check refuses channel settings outside their bounds.
func (c chanConfig) check(op, name string) error {
	bad := func(detail string) error {
		return &Error{Op: op, Name: name, Kind: ErrInvalidArgument, Detail: detail}
	}
	switch {
	case c.recycle < 0 || c.recycle > 1<<20:
		return bad(fmt.Sprintf("WithRecycling(%d): it keeps between 0 and 1<<20 buffers", c.recycle))
	case c.queue < 1:
		return bad(fmt.Sprintf("BufferSize(%d): the queue must hold at least one message", c.queue))
	case c.chanCap < 0:
		return bad(fmt.Sprintf("WithChanCap(%d): a channel capacity is not negative", c.chanCap))
	case c.maxMessage < 0:
		return bad(fmt.Sprintf("MaxMessageSize(%d): a message limit is not negative", c.maxMessage))
	case c.peerTimeout < 4*time.Millisecond:
		return bad(fmt.Sprintf("WithPeerTimeout(%v): the peer timeout is at least 4ms", c.peerTimeout))
	case c.maxSubscribers < 1 || c.maxSubscribers > maxCount:
		return bad(fmt.Sprintf("MaxSubscribers(%d) must be between 1 and %d", c.maxSubscribers, maxCount))
	case c.maxBorrowed < 1 || c.maxBorrowed > maxCount:
		return bad(fmt.Sprintf("MaxBorrowed(%d) must be between 1 and %d", c.maxBorrowed, maxCount))
	case c.maxPublishers < 1 || c.maxPublishers > maxCount:
		return bad(fmt.Sprintf("MaxPublishers(%d) must be between 1 and %d", c.maxPublishers, maxCount))
	case c.waitSubs < 0 || c.waitSubs > c.maxSubscribers:
		return bad(fmt.Sprintf("WaitSubscribers(%d) must be between 0 and the subscriber limit (%d)", c.waitSubs, c.maxSubscribers))
	case c.spin == spinRefused || (c.spin < 0 && c.spin != spinAdaptive):
		return bad("WithSpin: a spin time is not negative")
	case c.spin > time.Minute:
		return bad(fmt.Sprintf("WithSpin(%v): a spin time is at most 1 minute", c.spin))
	case c.poll <= 0:
		return bad(fmt.Sprintf("WithPoll(%v): the poll interval is positive", c.poll))
	case c.linger < 0:
		return bad(fmt.Sprintf("WithLinger(%v): a linger time is not negative", c.linger))
	case c.history < 0 || (!c.lossy && c.history > c.queue):
		return bad(fmt.Sprintf("History(%d) must be between 0 and the queue, BufferSize(%d)", c.history, c.queue))
	case c.chanCap > maxChanCap:
		return bad(fmt.Sprintf("WithChanCap(%d): a channel capacity is at most %d", c.chanCap, maxChanCap))
	case c.queue > maxCount:
		return bad(fmt.Sprintf("BufferSize(%d): a queue holds at most %d messages", c.queue, maxCount))
	case c.history > maxCount:
		return bad(fmt.Sprintf("History(%d): at most %d", c.history, maxCount))
	}
	return nil
}

// prepare checks what every adapter constructor checks: its arguments (ctx
// and what args says of the others, see refuse), the name (with room for
// suffix), the options, and that ctx is still live.
func prepare(ctx context.Context, op, name, suffix string, opts []Option, args ...string) (chanConfig, error) {
	if err := refuse(op, name, append([]string{ctxArg(ctx)}, args...)...); err != nil {
		return chanConfig{}, err
	}
	if err := checkName("service name", name, 255-len(suffix), false); err != nil {
		return chanConfig{}, &Error{Op: op, Name: name, Kind: ErrInvalidName, Detail: err.Error()}
	}
	cfg, err := newChanConfig(op, name, opts)
	if err != nil {
		return cfg, err
	}
	return cfg, ctx.Err()
}

// ---- arguments an entry point cannot do without ----

// An entry point given nil for a context, a node, a codec, a handler or a
// handle refuses it with ErrInvalidArgument, naming the argument, before it
// creates or starts anything. Methods called on a nil handle (a nil *Pair,
// *Caller, …) are not entry points: they panic, as Go's own methods do.

// nilArg is the error of an entry point given nil for the argument what.
func nilArg(op, name, what string) error {
	return &Error{Op: op, Name: name, Kind: ErrInvalidArgument, Detail: what + " is nil"}
}

// refuse returns the error of the first of problems that is not empty (each
// says what is wrong with one argument, see ctxArg, nodeArg and codecArg), or
// nil when there is none.
func refuse(op, name string, problems ...string) error {
	for _, p := range problems {
		if p != "" {
			return &Error{Op: op, Name: name, Kind: ErrInvalidArgument, Detail: p}
		}
	}
	return nil
}

// ctxArg is what is wrong with a context argument.
func ctxArg(ctx context.Context) string {
	if ctx == nil {
		return "ctx is nil"
	}
	return ""
}

// nodeArg is what is wrong with a node argument.
func nodeArg(n *Node) string {
	if n == nil {
		return "node is nil"
	}
	return ""
}

// codecArg is what is wrong with the codec argument what: nil, a nil
// pointer (or map, func, slice or chan) in a non-nil interface, the zero
// FixedCodec, which describes no type, or a PayloadType method that panics.
// The channel would otherwise fail on its first message, or panic in the
// constructor.
func codecArg[T any](what string, c Codec[T]) string {
	if c == nil {
		return what + " is nil"
	}
	switch v := reflect.ValueOf(c); v.Kind() {
	case reflect.Pointer, reflect.Map, reflect.Func, reflect.Slice, reflect.Chan:
		if v.IsNil() {
			return fmt.Sprintf("%s is nil (a nil %T)", what, c)
		}
	}
	if f, ok := c.(interface{ unmade() bool }); ok && f.unmade() {
		return what + " is the zero FixedCodec; make it with Fixed or FixedBytes"
	}
	if _, err := payloadTypeSafe(c); err != nil {
		return fmt.Sprintf("%s (%T): %v", what, c, err)
	}
	return ""
}
