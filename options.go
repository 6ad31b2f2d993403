package iox

import (
	"fmt"
	"time"
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
	recycle        int     // spare receive buffers kept for Recycle
	waitSubs       int     // a publisher holds its messages until this many subscribers are there
	set            chanOpt // the options given
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
	}
}

// ChanOption configures a channel adapter (Pair, Pub, Sub).
type ChanOption func(*chanConfig)

// WithQueue sets how many messages each receiver holds in shared memory before a
// lossless sender waits (default 64). Both ends must agree.
func WithQueue(n int) ChanOption { return func(c *chanConfig) { c.set |= optQueue; c.queue = n } }

// WithChanCap sets the capacity of the Go channels (default 64).
func WithChanCap(n int) ChanOption { return func(c *chanConfig) { c.set |= optChanCap; c.chanCap = n } }

// WithMaxMessage bounds one message in bytes (default DefaultMaxMessageSize).
func WithMaxMessage(n int) ChanOption {
	return func(c *chanConfig) { c.set |= optMaxMessage; c.maxMessage = n }
}

// WithPeerTimeout bounds how long a crashed peer goes unnoticed (default 1 s).
func WithPeerTimeout(d time.Duration) ChanOption {
	return func(c *chanConfig) { c.set |= optPeerTimeout; c.peerTimeout = d }
}

// WithSpin makes receivers busy-poll shared memory for exactly d before they
// park in the runtime poller, whatever the load; WithSpin(0) never spins. The
// default is adaptive: a receiver spins for at most 100µs, and only while
// spinning has recently paid off (the peer answered within that time); spins
// that fail make it park at once for a growing number of waits, so a busy
// machine ends up parking.
func WithSpin(d time.Duration) ChanOption {
	return func(c *chanConfig) { c.set |= optSpin; c.spin = d }
}

// WaitSubscribers makes a publisher hold its messages (Send then waits, as under
// backpressure) until at least n subscribers are there: nng's "wait for N
// subscribers" for publishers whose first messages must not go to nobody.
func WaitSubscribers(n int) ChanOption {
	return func(c *chanConfig) { c.set |= optWaitSubs; c.waitSubs = n }
}

// OnDrop receives the errors of messages a receiving channel had to drop while
// it delivered through In(): too large for WithMaxMessage, undecodable, or
// malformed or out of sequence on iox's own services. Recv returns such errors
// itself, one per dropped message, and the channel goes on. fn runs on the
// goroutine that feeds In and must not block.
func OnDrop(fn func(error)) ChanOption {
	return func(c *chanConfig) { c.set |= optOnDrop; c.onDrop = fn }
}

// WithPoll sets how often a subscriber looks for messages from publishers that
// never notify, such as plain Rust or Python ones (default 10 ms).
func WithPoll(d time.Duration) ChanOption {
	return func(c *chanConfig) { c.set |= optPoll; c.poll = d }
}

// WithLinger sets how long Close waits for the peer to take the messages already
// sent (default 1 s).
func WithLinger(d time.Duration) ChanOption {
	return func(c *chanConfig) { c.set |= optLinger; c.linger = d }
}

// Lossy makes a publish-subscribe channel never block the publisher: a slow
// subscriber loses its oldest messages. The service is then a plain iceoryx2
// [u8] (or fixed-type) service that peers in other languages can open.
func Lossy() ChanOption { return func(c *chanConfig) { c.set |= optLossy; c.lossy = true } }

// WithHistory keeps the last k messages for subscribers that join late.
func WithHistory(k int) ChanOption { return func(c *chanConfig) { c.set |= optHistory; c.history = k } }

// WithRecycling keeps up to n received []byte buffers that the reader hands back
// with Recycle, and receives into them instead of allocating: a reader that is
// done with each message before the next one gets to zero allocations.
func WithRecycling(n int) ChanOption {
	return func(c *chanConfig) { c.set |= optRecycling; c.recycle = n }
}

// WithMaxSubscribers bounds the subscribers of a publish-subscribe channel (default 8).
func WithMaxSubscribers(n int) ChanOption {
	return func(c *chanConfig) { c.set |= optMaxSubscribers; c.maxSubscribers = n }
}

// WithMaxPublishers bounds the publishers of a publish-subscribe channel (default 2).
func WithMaxPublishers(n int) ChanOption {
	return func(c *chanConfig) { c.set |= optMaxPublishers; c.maxPublishers = n }
}

// chanOpt names the channel options, so that an adapter can refuse those that
// do not apply to it.
type chanOpt uint32

const (
	optQueue chanOpt = 1 << iota
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
)

var chanOptNames = map[chanOpt]string{optQueue: "WithQueue", optChanCap: "WithChanCap", optMaxMessage: "WithMaxMessage",
	optPeerTimeout: "WithPeerTimeout", optSpin: "WithSpin", optPoll: "WithPoll", optLinger: "WithLinger", optLossy: "Lossy",
	optHistory: "WithHistory", optRecycling: "WithRecycling", optMaxSubscribers: "WithMaxSubscribers",
	optMaxPublishers: "WithMaxPublishers", optWaitSubs: "WaitSubscribers", optOnDrop: "OnDrop"}

// only refuses the options of refused, which do not apply to the adapter what.
func (c chanConfig) only(op, name, what string, refused ...chanOpt) error {
	for _, o := range refused {
		if c.set&o != 0 {
			return &Error{Op: op, Name: name, Kind: ErrInvalidArgument,
				Detail: fmt.Sprintf("%s does not apply to a %s", chanOptNames[o], what)}
		}
	}
	return nil
}

// Bounds of the adapters' settings: larger values cannot be allocated or would
// overflow iceoryx2's size computations.
const (
	maxChanCap = 1 << 20
	maxCount   = 1 << 16
)

func newChanConfig(op, name string, opts []ChanOption) (chanConfig, error) {
	c := defaultChanConfig()
	for _, o := range opts {
		o(&c)
	}
	bad := func(detail string) (chanConfig, error) {
		return c, &Error{Op: op, Name: name, Kind: ErrInvalidArgument, Detail: detail}
	}
	switch {
	case c.recycle < 0 || c.recycle > 1<<20:
		return bad("recycling keeps between 0 and 1<<20 buffers")
	case c.queue < 1:
		return bad("queue must hold at least one message")
	case c.chanCap < 0:
		return bad("negative channel capacity")
	case c.maxMessage < 0:
		return bad("negative message limit")
	case c.peerTimeout < 4*time.Millisecond:
		return bad("peer timeout below 4ms")
	case c.waitSubs < 0 || c.waitSubs > c.maxSubscribers:
		return bad(fmt.Sprintf("WaitSubscribers(%d) must be between 0 and the subscriber limit (%d)", c.waitSubs, c.maxSubscribers))
	case (c.spin < 0 && c.spin != spinAdaptive) || c.spin > time.Minute || c.poll <= 0 || c.linger < 0:
		return bad("spin (at most 1 minute), poll and linger must not be negative (poll positive)")
	case c.history < 0 || (!c.lossy && c.history > c.queue):
		return bad(fmt.Sprintf("history %d must be between 0 and the queue (%d)", c.history, c.queue))
	case c.maxSubscribers < 1 || c.maxPublishers < 1:
		return bad("need room for at least one publisher and one subscriber")
	case c.chanCap > maxChanCap:
		return bad(fmt.Sprintf("channel capacity %d over %d", c.chanCap, maxChanCap))
	case c.queue > maxCount || c.history > maxCount || c.maxSubscribers > maxCount || c.maxPublishers > maxCount:
		return bad(fmt.Sprintf("queue, history, subscribers and publishers must each be at most %d", maxCount))
	}
	return c, nil
}

// prepare checks what every adapter constructor checks: the name (with room for
// suffix), the options, and that ctx is still live.
func prepare(ctx interface{ Err() error }, op, name, suffix string, opts []ChanOption) (chanConfig, error) {
	if err := checkName("service name", name, 255-len(suffix), false); err != nil {
		return chanConfig{}, &Error{Op: op, Name: name, Kind: ErrInvalidName, Detail: err.Error()}
	}
	cfg, err := newChanConfig(op, name, opts)
	if err != nil {
		return cfg, err
	}
	return cfg, ctx.Err()
}
