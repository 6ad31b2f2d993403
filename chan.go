package iox

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"runtime"
	"sync"
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
	recycle        int // spare receive buffers kept for Recycle
}

func defaultChanConfig() chanConfig {
	return chanConfig{
		queue:          64,
		chanCap:        64,
		maxMessage:     DefaultMaxMessageSize,
		peerTimeout:    time.Second,
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
func WithQueue(n int) ChanOption { return func(c *chanConfig) { c.queue = n } }

// WithChanCap sets the capacity of the Go channels (default 64).
func WithChanCap(n int) ChanOption { return func(c *chanConfig) { c.chanCap = n } }

// WithMaxMessage bounds one message in bytes (default DefaultMaxMessageSize).
func WithMaxMessage(n int) ChanOption { return func(c *chanConfig) { c.maxMessage = n } }

// WithPeerTimeout bounds how long a crashed peer goes unnoticed (default 1 s).
func WithPeerTimeout(d time.Duration) ChanOption { return func(c *chanConfig) { c.peerTimeout = d } }

// WithSpin makes receivers busy-poll for up to d before parking in the runtime
// poller: lower latency for one core's worth of CPU while traffic flows (default 0).
func WithSpin(d time.Duration) ChanOption { return func(c *chanConfig) { c.spin = d } }

// WithPoll sets how often a subscriber looks for messages from publishers that
// never notify, such as plain Rust or Python ones (default 10 ms).
func WithPoll(d time.Duration) ChanOption { return func(c *chanConfig) { c.poll = d } }

// WithLinger sets how long Close waits for the peer to take the messages already
// sent (default 1 s).
func WithLinger(d time.Duration) ChanOption { return func(c *chanConfig) { c.linger = d } }

// Lossy makes a publish-subscribe channel never block the publisher: a slow
// subscriber loses its oldest messages. The service is then a plain iceoryx2
// [u8] (or fixed-type) service that peers in other languages can open.
func Lossy() ChanOption { return func(c *chanConfig) { c.lossy = true } }

// WithHistory keeps the last k messages for subscribers that join late.
func WithHistory(k int) ChanOption { return func(c *chanConfig) { c.history = k } }

// WithRecycling keeps up to n received []byte buffers that the reader hands back
// with Recycle, and receives into them instead of allocating: a reader that is
// done with each message before the next one gets to zero allocations.
func WithRecycling(n int) ChanOption { return func(c *chanConfig) { c.recycle = n } }

// WithMaxSubscribers bounds the subscribers of a publish-subscribe channel (default 8).
func WithMaxSubscribers(n int) ChanOption { return func(c *chanConfig) { c.maxSubscribers = n } }

// WithMaxPublishers bounds the publishers of a publish-subscribe channel (default 2).
func WithMaxPublishers(n int) ChanOption { return func(c *chanConfig) { c.maxPublishers = n } }

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
	case c.spin < 0 || c.poll <= 0 || c.linger < 0:
		return bad("spin, poll and linger must not be negative (poll positive)")
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

// Event ids the adapters use on their event services.
const (
	evData    EventID = iota // new messages are waiting
	evSpace                  // a receiver took messages: there is room again
	evHello                  // a peer's notifier appeared
	evBye                    // the sender is closing; nothing follows
	evDrained                // the receiver has taken everything after a bye
	evDead                   // a notifier's process died (sent by dead-node cleanup)
	evMaxID   EventID = 7
)

// wake signals c without blocking; signals coalesce.
func wake(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

func newSignal() chan struct{} { return make(chan struct{}, 1) }

// adapterName checks that name leaves room for the suffixes the adapter appends.
func adapterName(op, name, longestSuffix string) error {
	if err := checkName("service name", name, 255-len(longestSuffix), false); err != nil {
		return &Error{Op: op, Name: name, Kind: ErrInvalidName, Detail: err.Error()}
	}
	return nil
}

// encoder returns the function that turns a T into message bytes, reusing buf.
func encoder[T any](codec Codec[T]) func(buf []byte, v T) ([]byte, error) {
	if _, raw := any(codec).(Raw); raw {
		return func(_ []byte, v T) ([]byte, error) { return any(v).([]byte), nil }
	}
	return func(buf []byte, v T) ([]byte, error) { return codec.Append(buf[:0], v) }
}

func payloadTypeOf[T any](codec Codec[T]) PayloadType {
	if pt, ok := any(codec).(PayloadTyper); ok {
		return pt.PayloadType()
	}
	return Bytes
}

// ending records why an adapter ended: the first reason wins.
type ending struct {
	once sync.Once
	err  error
	done chan struct{}
}

func newEnding() ending { return ending{done: make(chan struct{})} }

func (e *ending) end(err error) {
	e.once.Do(func() {
		e.err = err
		close(e.done)
	})
}

// reason is nil until the adapter ended.
func (e *ending) reason() error {
	select {
	case <-e.done:
		return e.err
	default:
		return nil
	}
}

// newSpares makes the free list of WithRecycling (nil without it).
func newSpares(cfg chanConfig) chan []byte {
	if cfg.recycle <= 0 {
		return nil
	}
	return make(chan []byte, cfg.recycle)
}

// recycle gives b back to a free list without blocking.
func recycle(spare chan []byte, b []byte) {
	if spare == nil || cap(b) == 0 {
		return
	}
	select {
	case spare <- b[:0]:
	default:
	}
}

// recvValue waits for the next value on in; once in is closed it returns the
// reason the adapter ended.
func recvValue[T any](ctx context.Context, in <-chan T, e *ending) (T, error) {
	var zero T
	select {
	case v, ok := <-in:
		if !ok {
			return zero, e.reason()
		}
		return v, nil
	case <-ctx.Done():
		return zero, ctx.Err()
	}
}

// sendValue hands v to a pump through ch, failing visibly once the adapter ended.
func sendValue[T any](ctx context.Context, ch chan<- T, closing <-chan struct{}, e *ending, v T) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	select {
	case <-closing:
		return ErrClosed
	case <-e.done:
		return e.err
	default:
	}
	select {
	case ch <- v:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-closing:
		return ErrClosed
	case <-e.done:
		return e.err
	}
}

// Samples on iox's own services (pairs, lossless publish-subscribe) carry a user
// header: the publisher's tag and the sample's sequence number, so subscribers can
// drop the copies a publisher sends again after a full subscriber refused a sample,
// and how many messages the sample packs. A packed sample holds that many frames,
// each a 4-byte length and the message; 0 means the sample is one plain message.
// Packing many small messages into one sample makes one native send, one queue
// slot and one receive serve them all.
const (
	headerSize = 24
	frameSize  = 4
)

func putHeader(h []byte, tag, seq, count uint64) {
	binary.NativeEndian.PutUint64(h, tag)
	binary.NativeEndian.PutUint64(h[8:], seq)
	binary.NativeEndian.PutUint64(h[16:], count)
}

// inbox takes samples out of a subscriber, unpacks and decodes their messages and
// queues them for a Go channel.
type inbox[T any] struct {
	name   string
	sub    *Subscriber
	codec  Codec[T]
	batch  *Batch
	small  []byte // the batch's own buffer; a larger message gets one of its own
	raw    bool   // []byte messages: such a buffer is handed over as the message
	queue  []T
	head   int
	spare  chan []byte       // buffers given back by the reader, reused for []byte messages
	framed bool              // samples carry iox headers
	dedup  bool              // drop samples seen already (lossless publish-subscribe)
	last   map[uint64]uint64 // publisher tag → last sequence number
}

func newInbox[T any](name string, sub *Subscriber, codec Codec[T], framed, dedup bool) *inbox[T] {
	b := &inbox[T]{name: name, sub: sub, codec: codec, batch: NewBatch(256<<10, 64), framed: framed, dedup: dedup}
	b.small = b.batch.buf
	_, b.raw = any(codec).(Raw)
	if framed {
		b.batch.withHeaders(headerSize)
		b.last = map[uint64]uint64{}
	}
	return b
}

func (b *inbox[T]) pending() bool { return b.head < len(b.queue) }

func (b *inbox[T]) pop() {
	var zero T
	b.queue[b.head] = zero
	b.head++
	if b.head == len(b.queue) {
		b.queue, b.head = b.queue[:0], 0
	}
}

// take receives waiting samples until none is left or it took limit of them, and
// returns how many samples left shared memory.
func (b *inbox[T]) take(limit int) (int, error) {
	took := 0
	for took < limit {
		k, err := b.sub.ReceiveBatch(b.batch)
		if err != nil {
			return took, err
		}
		for i := 0; i < k; i++ {
			if err := b.unpack(i); err != nil {
				return took, err
			}
		}
		if cap(b.batch.buf) != cap(b.small) {
			b.batch.buf = b.small // the large message's own buffer now belongs to it
		}
		took += k
		if k == 0 {
			break
		}
	}
	return took, nil
}

// unpack queues the messages of sample i of the batch.
func (b *inbox[T]) unpack(i int) error {
	msg := b.batch.Message(i)
	count := uint64(0)
	if b.framed {
		h := b.batch.header(i)
		tag, seq := binary.NativeEndian.Uint64(h), binary.NativeEndian.Uint64(h[8:])
		if b.dedup {
			if last, ok := b.last[tag]; ok && seq <= last {
				return nil // a copy sent again: this subscriber has it already
			}
			b.last[tag] = seq
		}
		count = binary.NativeEndian.Uint64(h[16:])
	}
	if count == 0 {
		if b.raw && cap(b.batch.buf) != cap(b.small) {
			// ReceiveBatch gave this large message a buffer of its own (it is
			// alone in it): hand it over instead of copying it again
			b.queue = append(b.queue, any(msg).(T))
			return nil
		}
		return b.decode(msg)
	}
	for ; count > 0; count-- {
		if len(msg) < frameSize {
			return b.corrupt()
		}
		n := int(binary.NativeEndian.Uint32(msg))
		if len(msg)-frameSize < n {
			return b.corrupt()
		}
		if err := b.decode(msg[frameSize : frameSize+n : frameSize+n]); err != nil {
			return err
		}
		msg = msg[frameSize+n:]
	}
	return nil
}

func (b *inbox[T]) decode(m []byte) error {
	if b.raw && b.spare != nil {
		select {
		case buf := <-b.spare: // a buffer the reader gave back with Recycle
			if cap(buf) >= len(m) {
				buf = buf[:len(m)]
				copy(buf, m)
				b.queue = append(b.queue, any(buf).(T))
				return nil
			}
		default:
		}
	}
	v, err := b.codec.Decode(m)
	if err != nil {
		return &Error{Op: "decode", Name: b.name, Kind: ErrInvalidArgument, Detail: err.Error()}
	}
	b.queue = append(b.queue, v)
	return nil
}

func (b *inbox[T]) corrupt() error {
	return &Error{Op: "receive", Name: b.name, Kind: ErrInvalidArgument, Detail: "malformed packed sample"}
}

// delivery describes how an inbox is pumped into a Go channel.
type delivery struct {
	ctx       context.Context
	quit      <-chan struct{} // stop now
	wake      <-chan struct{} // messages may be waiting
	bye       <-chan struct{} // a sender said bye
	byeSaid   func() bool     // consumes a pending bye
	acked     func()          // everything up to the bye has left shared memory
	endAtBye  bool            // deliver what is queued after the ack, then stop
	room      func()          // a full queue was emptied: a waiting sender may go on
	got       func()          // messages arrived (optional)
	full      int             // taking this many at once means the queue was full
	spin      time.Duration
	idle      time.Duration // look again after this long without a wake-up
	hasWaiter func() bool   // messages are waiting (for spinning)
	fail      func(error)
}

// deliver pumps b into out as d says; it closes out when it returns.
func (b *inbox[T]) deliver(out chan<- T, d delivery) {
	defer close(out)
	idle := time.NewTimer(time.Hour)
	idle.Stop()
	defer idle.Stop()
	ended := false
	drainAtBye := func() bool {
		if !d.byeSaid() {
			return true
		}
		if _, err := b.take(math.MaxInt); err != nil {
			return b.failed(err, d)
		}
		d.room()
		d.acked()
		ended = d.endAtBye
		return true
	}
	for {
		if !b.pending() && !ended {
			n, err := b.take(d.full)
			if err != nil && !b.failed(err, d) {
				return
			}
			if n > 0 && d.got != nil {
				d.got()
			}
			// A sender waits only on a full queue, and then nothing else empties
			// it: telling it about room only after taking a full queue is enough,
			// and saves the peer a wake-up per message.
			if n >= d.full {
				d.room()
			}
			if !drainAtBye() {
				return
			}
		}
		if b.pending() {
			select {
			case out <- b.queue[b.head]:
				b.pop()
			case <-d.bye:
				if !drainAtBye() {
					return
				}
			case <-d.quit:
				return
			case <-d.ctx.Done():
				return
			}
			continue
		}
		if ended {
			return
		}
		if d.spin > 0 && spinFor(d) {
			continue // a message came while spinning: no need to wait for its event
		}
		idle.Reset(d.idle)
		select {
		case <-d.wake:
		case <-d.bye:
			if !drainAtBye() {
				return
			}
		case <-idle.C:
		case <-d.quit:
			return
		case <-d.ctx.Done():
			return
		}
		idle.Stop()
	}
}

// spinFor busy-polls for up to d.spin and reports whether a message arrived; it
// stops at once when the receiver is told to stop.
func spinFor(d delivery) bool {
	for deadline := time.Now().Add(d.spin); time.Now().Before(deadline); runtime.Gosched() {
		if d.hasWaiter() {
			return true
		}
		select {
		case <-d.quit: // told to stop: the wait below returns
			return false
		case <-d.ctx.Done():
			return false
		default:
		}
	}
	return false
}

// failed reports a receive failure; false means stop. A closed subscriber is the
// normal end of a torn-down adapter, not a failure.
func (b *inbox[T]) failed(err error, d delivery) bool {
	if !errors.Is(err, ErrClosed) {
		d.fail(err)
	}
	return false
}

// outbox is what a sending pump needs: the Go channel it empties, the encoder, and
// the life-cycle signals of its adapter.
type outbox[T any] struct {
	name    string
	out     <-chan T
	enc     func([]byte, T) ([]byte, error)
	max     int             // largest message
	pack    bool            // small messages may share a sample (dynamic payloads on iox services)
	flush   <-chan struct{} // send what out holds, then close flushed
	flushed chan struct{}
	stop    <-chan struct{}
	fail    func(error)
}

// Packing: small messages already waiting in the Go channel share one sample.
const (
	packMessages = 64
	packBytes    = 64 << 10
	packSmall    = 4 << 10 // larger messages go alone, without a staging copy
	packLimit    = packBytes + packSmall + frameSize
)

// outSample is one sample to send: its bytes and how many messages it packs (0: it
// is one plain message).
type outSample struct {
	data  []byte
	count int
}

// pump moves values from out into shared memory with publish, one sample at a
// time, until stop, a failure, or a finished flush; publish returns false when it
// must stop.
func (o outbox[T]) pump(publish func(s outSample) bool) {
	var scratch, staging []byte
	flushing := false
	for {
		var v T
		if flushing {
			select {
			case v = <-o.out:
			default:
				close(o.flushed)
				return
			}
		} else {
			select {
			case v = <-o.out:
			case <-o.flush:
				flushing = true
				continue
			case <-o.stop:
				return
			}
		}
		msg, err := o.encode(scratch, v)
		if err != nil {
			return
		}
		if _, raw := any(v).([]byte); !raw {
			scratch = msg[:0]
		}
		if !o.pack || len(msg) > packSmall {
			if !publish(outSample{data: msg}) {
				return
			}
			continue
		}
		staging = appendFrame(staging[:0], msg)
		count := 1
	more:
		for count < packMessages && len(staging) < packBytes {
			select {
			case v = <-o.out:
			default:
				break more
			}
			if msg, err = o.encode(scratch, v); err != nil {
				return
			}
			if len(msg) > packSmall { // send the pack, then this one alone
				if !publish(outSample{data: staging, count: count}) || !publish(outSample{data: msg}) {
					return
				}
				staging, count = staging[:0], 0
				break more
			}
			staging = appendFrame(staging, msg)
			count++
		}
		if count > 0 && !publish(outSample{data: staging, count: count}) {
			return
		}
	}
}

func appendFrame(dst, msg []byte) []byte {
	dst = binary.NativeEndian.AppendUint32(dst, uint32(len(msg)))
	return append(dst, msg...)
}

func (o outbox[T]) encode(scratch []byte, v T) ([]byte, error) {
	msg, err := o.enc(scratch, v)
	if err == nil && len(msg) > o.max {
		err = fmt.Errorf("%d bytes, at most %d", len(msg), o.max)
		o.fail(&Error{Op: "send", Name: o.name, Kind: ErrMessageTooLarge, Detail: err.Error()})
		return msg, err
	}
	if err != nil {
		o.fail(&Error{Op: "encode", Name: o.name, Kind: ErrInvalidArgument, Detail: err.Error()})
	}
	return msg, err
}

// prepare checks what every adapter constructor checks: the name (with room for
// suffix), the options, and that ctx is still live.
func prepare(ctx context.Context, op, name, suffix string, opts []ChanOption) (chanConfig, error) {
	if err := adapterName(op, name, suffix); err != nil {
		return chanConfig{}, err
	}
	cfg, err := newChanConfig(op, name, opts)
	if err != nil {
		return cfg, err
	}
	return cfg, ctx.Err()
}

// chanBase holds what every channel adapter shares: the ports it opened and its
// life cycle.
type chanBase struct {
	node     *Node
	name     string
	cfg      chanConfig
	closers  []interface{ Close() error }
	ctx      context.Context
	stopCtx  context.Context
	stop     context.CancelFunc
	closeReq chan struct{}
	once     sync.Once
	end      ending
	pumps    sync.WaitGroup
	torn     chan struct{}
}

func (b *chanBase) init(ctx context.Context, node *Node, name string, cfg chanConfig) {
	b.node, b.name, b.cfg, b.ctx = node, name, cfg, ctx
	b.closeReq, b.end, b.torn = make(chan struct{}), newEnding(), make(chan struct{})
	b.stopCtx, b.stop = context.WithCancel(context.Background())
}

func (b *chanBase) opened(c interface{ Close() error }) { b.closers = append(b.closers, c) }

func (b *chanBase) release() {
	for i := len(b.closers) - 1; i >= 0; i-- {
		b.closers[i].Close()
	}
	b.closers = nil
}

// Done is closed when the channel has ended; Err says why.
func (b *chanBase) Done() <-chan struct{} { return b.end.done }

// Err is nil while the channel is open, then why it ended.
func (b *chanBase) Err() error { return b.end.reason() }

// teardown ends the adapter with reason (unless it ended already), stops its
// pumps, waits for them and closes everything it opened.
func (b *chanBase) teardown(reason error) {
	b.end.end(reason)
	b.stop()
	b.pumps.Wait()
	b.release()
	close(b.torn)
}

// close asks the supervisor to end the channel and waits until it has.
func (b *chanBase) close(op string) error {
	first := false
	b.once.Do(func() { first = true; close(b.closeReq) })
	<-b.torn
	if !first {
		return &Error{Op: op, Name: b.name, Kind: ErrClosed}
	}
	return nil
}
