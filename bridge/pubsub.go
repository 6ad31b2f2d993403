package bridge

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/iox-go/iox"
)

// Publish-subscribe across hosts. The exporting bridge subscribes to the
// local service (lossless or lossy as the service is) and sends each message;
// the importing bridge publishes what arrives on a local publisher of the same
// kind and payload type. A lossless import's publisher holds messages
// (WaitSubscribers(1)) until a local subscriber is there, and the durable
// consumer holds the rest, so nothing is lost while nobody listens.

// pubWindow bounds the JetStream publications in flight per export.
const pubWindow = 256

// What an importing bridge killed and started again repeats: the messages it
// put in shared memory whose acknowledgements the server did not get. A
// lossless import acknowledges its frames at least once per ackEvery messages
// (a lossless pack carries at most ackEvery), and acknowledgements sit in the
// connection's buffer until its writer runs, so once ackFlush messages were
// acknowledged it flushes the connection (a round trip to the server): a
// restart repeats at most ackFlush+2*ackEvery = 1024 messages.
const (
	ackEvery = pubWindow / 2
	ackFlush = 4*pubWindow - 2*ackEvery
)

// ensureStream creates the stream of lossless channels and pairs, or updates
// it when its settings are not this bridge's. A stream that is as it should
// be is left alone: the server would otherwise rewrite its settings for
// every route that opens, while other routes create their consumers on it.
func (b *Bridge) ensureStream(ctx context.Context) error {
	cfg := jetstream.StreamConfig{
		Name:       b.stream,
		Subjects:   []string{b.cfg.Subject + "." + kindLossless + ".>", b.cfg.Subject + "." + kindPair + ".>"},
		Retention:  jetstream.InterestPolicy,
		Discard:    jetstream.DiscardNew,
		MaxBytes:   b.cfg.StreamMaxBytes,
		Storage:    jetstream.FileStorage,
		Duplicates: 2 * time.Minute,
	}
	b.streamMu.Lock()
	defer b.streamMu.Unlock()
	if s, err := b.js.Stream(ctx, b.stream); err == nil {
		if have := s.CachedInfo().Config; boundsAtLeast(have.MaxBytes, cfg.MaxBytes) {
			if sameStream(have, cfg) {
				return nil
			}
			cfg.MaxBytes = have.MaxBytes
		}
	}
	if _, err := b.js.CreateOrUpdateStream(ctx, cfg); err != nil {
		return natsError("create stream", b.stream, err)
	}
	return nil
}

// sameStream reports whether the settings that ensureStream makes, but for
// the bound (MaxBytes), are those of have.
func sameStream(have, want jetstream.StreamConfig) bool {
	return slices.Equal(have.Subjects, want.Subjects) && have.Retention == want.Retention &&
		have.Discard == want.Discard && have.Storage == want.Storage && have.Duplicates == want.Duplicates
}

// boundsAtLeast reports whether a stream bounded to have bytes (-1 or 0:
// unbounded) holds at least want. Bridges that bound the stream differently
// (StreamMaxBytes) leave it at the largest bound any of them asked for,
// rather than each setting its own in turn as its routes start.
func boundsAtLeast(have, want int64) bool {
	return have <= 0 || (want > 0 && have >= want)
}

// exportPubSub subscribes to the local service and returns the loop that
// relays it.
func (b *Bridge) exportPubSub(ctx context.Context, r *route) (func() error, error) {
	pt, err := parseType(r.ann.Type)
	if err != nil {
		return nil, err
	}
	opts := []iox.Option{iox.MaxMessageSize(b.cfg.MaxMessageSize)}
	if set, err := b.cfg.Node.PubSubSettings(r.name); err == nil && set.BufferSize > 0 {
		opts = append(opts, iox.BufferSize(set.BufferSize)) // hold as much as the service lets a subscriber hold
	}
	if r.kind == KindLossy {
		opts = append(opts, iox.Lossy())
	} else if err := b.ensureStream(ctx); err != nil {
		return nil, err
	}
	// The subscriber lives until the route closes it, after the drain: a
	// cancelled context would drop what it holds.
	sub, err := iox.OpenSubOf[[]byte](context.WithoutCancel(ctx), b.cfg.Node, r.name, codecFor(pt), opts...)
	if err != nil {
		return nil, err
	}
	b.setOwn(r, iox.PortCounts{Subscribers: 1})
	subject := Subject(b.cfg.Subject, subjectKinds[r.kind], r.name)
	// send publishes a frame; own, when not nil, is the received message
	// that is the frame's data: a lossless export hands it back (Recycle)
	// only once the stream stored it, a lossy one at once (NATS core copies).
	send := func(m *nats.Msg, own []byte) error {
		err := b.cfg.Conn.PublishMsg(m)
		if own != nil {
			sub.Recycle(own)
		}
		return err
	}
	var pubs *jsPublisher
	if r.kind == KindLossless {
		pubs = newJSPublisher(b, r, sub.Recycle)
		send = pubs.publish
	}
	return func() error {
		defer sub.Close()
		if pubs != nil {
			defer pubs.close()
		}
		var batch [][]byte // messages taken that wait to be sent, in a pack
		size := 0          // their bytes in a pack
		most := packMessages
		if pubs != nil {
			most = ackEvery // what an importing bridge repeats after a crash stays bounded (see importPubSub)
		}
		// relay sends what batch holds: in a pack, or alone.
		relay := func() error {
			var err error
			switch len(batch) {
			case 0:
				return nil
			case 1:
				err = b.relayOne(ctx, r, subject, send, batch[0])
			default:
				if err = send(b.fr.pack(subject, r.ann.Type, batch), nil); err != nil && ctx.Err() == nil {
					b.report(r, natsError("relay", r.name, err))
				}
				for _, m := range batch { // copied into the pack
					sub.Recycle(m)
				}
			}
			clear(batch)
			batch, size = batch[:0], 0
			return ctx.Err()
		}
		// take relays what the program sends until the route ends.
		take := func() error {
			for {
				// Recv rather than RecvView: Recv drains the queue with one native
				// call for many messages, RecvView takes one per call. A message
				// Recv waited for goes at once, alone; one that was there
				// already may have others behind it, which join it in a pack
				// (TryRecv takes only what is there).
				var msg []byte
				var err error
				waited := false
				if len(batch) > 0 {
					var ok bool
					msg, ok, err = sub.TryRecv(ctx)
					if err == nil && !ok {
						if err := relay(); err != nil {
							return err
						}
						continue // nothing more waits
					}
				} else {
					t0 := time.Now()
					msg, err = sub.Recv(ctx)
					waited = time.Since(t0) >= packQuick
				}
				if err != nil {
					if err := relay(); err != nil {
						return err
					}
					if ctx.Err() != nil || errors.Is(err, iox.ErrClosed) {
						return ctx.Err()
					}
					var e *iox.Error
					if !errors.As(err, &e) || sub.Err() != nil {
						return err
					}
					// One message could not be taken: report it here and there.
					b.report(r, err)
					if errors.Is(err, iox.ErrMessageTooLarge) {
						err = send(b.fr.dropNotice(subject, r.ann.Type, "too large: "+e.Detail), nil)
					} else {
						err = send(b.fr.dropNotice(subject, r.ann.Type, e.Error()), nil)
					}
					if err != nil {
						b.report(r, err)
					}
					continue
				}
				if !b.fr.packs(len(msg)) || len(batch) == most || size+packedSize(len(msg)) > b.fr.packLimit() {
					if err := relay(); err != nil {
						batch = append(batch, msg) // taken: the drain relays it
						size += packedSize(len(msg))
						return err
					}
				}
				batch = append(batch, msg)
				size += packedSize(len(msg))
				if !b.fr.packs(len(msg)) || waited {
					if err := relay(); err != nil {
						return err
					}
				}
			}
		}
		// drain relays, as the route ends, what the subscriber holds: the
		// program's channel gave it to the bridge (a lossless publisher's
		// Flush said so), so a Close of the bridge (a restart) must not
		// drop it. It takes what waits (TryRecv: in shared memory, or taken
		// already by the subscriber while nobody received) until nothing
		// does, at most drainMax messages and for drainFor: a publisher that
		// goes on sending does not hold the end.
		drain := func() {
			dctx, cancel := context.WithTimeout(context.Background(), drainFor)
			defer cancel()
			for range drainMax {
				if dctx.Err() != nil {
					break
				}
				msg, ok, err := sub.TryRecv(dctx)
				if err != nil {
					if dctx.Err() != nil || sub.Err() != nil {
						break
					}
					b.report(r, err) // one message could not be taken
					continue
				}
				if !ok {
					break // nothing more waits
				}
				if !b.fr.packs(len(msg)) || len(batch) == most || size+packedSize(len(msg)) > b.fr.packLimit() {
					relay()
				}
				batch = append(batch, msg)
				size += packedSize(len(msg))
			}
			relay()
		}
		err := take()
		if ctx.Err() != nil && sub.Err() == nil {
			drain()
		}
		return err
	}, nil
}

// importLinger is how long a lossless import's publisher waits at its
// Close for the local subscribers' confirmation.
const importLinger = 100 * time.Millisecond

// drainMax and drainFor bound what an export relays after its route ended
// (see drain in exportPubSub), which ends once nothing waits: what a
// subscriber holds goes in far less time.
const (
	drainMax = 1 << 16
	drainFor = 2 * time.Second
)

// packQuick: a Recv that returns sooner did not wait for its message, which
// was there already, with others perhaps.
const packQuick = 5 * time.Microsecond

// relayOne sends one message alone, in as many frames as it needs; one
// frame owns it (see send in exportPubSub).
func (b *Bridge) relayOne(ctx context.Context, r *route, subject string, send func(*nats.Msg, []byte) error, msg []byte) error {
	frames := b.fr.frames(subject, r.ann.Type, msg)
	own := msg
	if len(frames) > 1 {
		own = nil
	}
	for _, f := range frames {
		if err := send(f, own); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			b.report(r, natsError("relay", r.name, err))
		}
	}
	return nil
}

// jsPublisher sends frames to JetStream in order, up to pubWindow in flight,
// and sends again (same message id, so the stream keeps one copy) what the
// server did not acknowledge, waiting while the stream is full.
type jsPublisher struct {
	b       *Bridge
	r       *route
	pending chan pendingPub
	done    chan struct{}
	id      string // the publisher's run id, in Iox-Pub
	seq     uint64 // frames published, numbered in Iox-Seq
	release func([]byte)
}

type pendingPub struct {
	msg *nats.Msg
	ack jetstream.PubAckFuture
	own []byte // the received message that is msg's data, handed back once stored
}

func newJSPublisher(b *Bridge, r *route, release func([]byte)) *jsPublisher {
	p := &jsPublisher{b: b, r: r, id: nuid.Next(), pending: make(chan pendingPub, pubWindow), done: make(chan struct{}), release: release}
	go p.confirm()
	return p
}

// publish sends m; own, when not nil, is a received message whose buffer m
// carries (as its only frame), handed back with release once the stream
// stored m or it was given up.
func (p *jsPublisher) publish(m *nats.Msg, own []byte) error {
	p.seq++
	m.Header.Set(hSeq, strconv.FormatUint(p.seq, 10))
	m.Header.Set(hPub, p.id)
	id := m.Header.Get(hID)
	if part := m.Header.Get(hPart); part != "" {
		id += "#" + part
	}
	m.Header.Set(jetstream.MsgIDHeader, id)
	f, err := p.b.js.PublishMsgAsync(m)
	if err != nil {
		if errors.Is(err, nats.ErrConnectionClosed) {
			return err
		}
		f = nil // sent again by confirm
	}
	select {
	case p.pending <- pendingPub{m, f, own}:
		return nil
	case <-p.done:
		return &iox.Error{Op: "relay", Name: p.r.name, Kind: iox.ErrClosed}
	}
}

// confirm waits for each acknowledgement in order; a publication that failed
// is sent again synchronously, with the same id, until it is stored or the
// export ends. Between attempts it waits for the connection to be back when
// it is down (link.wait), and otherwise for a pause that grows from
// retryFirst to retryMax (a server that is up but whose JetStream is not
// ready yet, or a full stream).
func (p *jsPublisher) confirm() {
	defer close(p.done)
	given, why := 0, error(nil) // publications given up as the bridge closed
	defer func() {
		if given > 0 {
			p.b.report(p.r, &iox.Error{Op: "relay", Name: p.r.name, Kind: iox.ErrUndelivered,
				Detail: fmt.Sprintf("the stream did not take %d frames before the bridge closed: %v", given, why)})
		}
	}()
	for pp := range p.pending {
		p.store(pp, &given, &why)
		if pp.own != nil {
			p.release(pp.own)
		}
	}
}

// store waits until the stream stored one publication, sending it again as
// long as needed, or gives it up (counted in given) as the bridge closes.
func (p *jsPublisher) store(pp pendingPub, given *int, why *error) {
	var err error
	if pp.ack != nil {
		select {
		case <-pp.ack.Ok():
			return
		case err = <-pp.ack.Err():
		}
	}
	if *given > 0 { // the bridge closes and the server is away: the rest goes too
		*given++
		return
	}
	pause := retryFirst
	for {
		if p.b.ctx.Err() != nil && !p.b.cfg.Conn.IsConnected() || p.b.cfg.Conn.IsClosed() {
			*given, *why = 1, err
			return
		}
		if !p.b.cfg.Conn.IsConnected() {
			ctx, cancel := context.WithTimeout(p.b.ctx, retryMax)
			p.b.link.wait(ctx) // the connection is back, or a pause
			cancel()
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err = p.b.js.PublishMsg(ctx, pp.msg)
		cancel()
		if err == nil {
			return
		}
		if p.b.ctx.Err() != nil && pause >= retryMax {
			*given, *why = 1, err
			return
		}
		if p.b.cfg.Conn.IsConnected() {
			backoff(context.Background(), &pause)
		}
	}
}

// Pauses between attempts at what a connected server may refuse for a while
// (storing a publication, looking up or resetting a consumer): the first is
// retryFirst, and each is twice the one before, up to retryMax.
const (
	retryFirst = 10 * time.Millisecond
	retryMax   = 500 * time.Millisecond
)

// backoff waits for *pause, which it then doubles (up to retryMax) for the
// next attempt, or until ctx ends (false).
func backoff(ctx context.Context, pause *time.Duration) bool {
	t := time.NewTimer(*pause)
	defer t.Stop()
	select {
	case <-t.C:
		*pause = min(2**pause, retryMax)
		return true
	case <-ctx.Done():
		return false
	}
}

// close waits until every publication was acknowledged (or given up).
func (p *jsPublisher) close() {
	close(p.pending)
	<-p.done
}

// importPubSub opens the local publisher and the NATS side of an import.
func (b *Bridge) importPubSub(ctx context.Context, r *route) (func() error, error) {
	pt, err := parseType(r.ann.Type)
	if err != nil {
		return nil, err
	}
	opts := []iox.Option{iox.MaxMessageSize(b.cfg.MaxMessageSize)}
	if r.kind == KindLossy {
		opts = append(opts, iox.Lossy())
	} else {
		// Its Close waits only briefly for the local subscribers to confirm
		// the end: the import acknowledges by what reached shared memory
		// (see the end of the loop), which a confirmation adds nothing to.
		opts = append(opts, iox.WaitSubscribers(1), iox.WithLinger(importLinger))
	}
	// The publisher lives until the route closes it: a cancelled context
	// would drop what it queued (see the end of the lossless loop).
	pub, err := iox.OpenPubOf[[]byte](context.WithoutCancel(ctx), b.cfg.Node, r.name, codecFor(pt), opts...)
	if err != nil {
		return nil, err
	}
	b.setOwn(r, iox.PortCounts{Publishers: 1})
	asm := newSenders(r.name, r.ann.Type, b.cfg.MaxMessageSize)
	subject := Subject(b.cfg.Subject, subjectKinds[r.kind], r.name)
	if r.kind == KindLossy {
		sub, err := b.cfg.Conn.Subscribe(subject, func(m *nats.Msg) {
			if m.Header.Get(hOrigin) == b.origin {
				return
			}
			msgs, err := asm.messages(m)
			if err != nil {
				b.report(r, err)
			}
			for _, msg := range msgs {
				if err := pub.Send(ctx, msg); err != nil && ctx.Err() == nil {
					b.report(r, err)
				}
			}
		})
		if err != nil {
			pub.Close()
			return nil, natsError("import", r.name, err)
		}
		sub.SetPendingLimits(-1, 4*b.cfg.MaxMessageSize)
		return func() error {
			<-ctx.Done()
			sub.Unsubscribe()
			pub.Close()
			return nil
		}, nil
	}
	if err := b.ensureStream(ctx); err != nil {
		pub.Close()
		return nil, err
	}
	durable := durableName(b.cfg.Name, r.name)
	ccfg := jetstream.ConsumerConfig{
		Durable:           durable,
		FilterSubject:     subject,
		AckPolicy:         jetstream.AckExplicitPolicy,
		AckWait:           importAckWait, // what the client dropped comes again soon (reorder waits longer)
		MaxAckPending:     4 * pubWindow,
		InactiveThreshold: b.cfg.ConsumerIdle,
		DeliverPolicy:     jetstream.DeliverAllPolicy,
	}
	// What an earlier run of this import delivered of a frame it could not
	// deliver whole (see the end of the loop) is kept in the consumer.
	var mark partMark
	v, ok, err := b.keptMark(ctx, durable)
	if err != nil {
		pub.Close()
		return nil, natsError("import", r.name, err)
	}
	if ok {
		mark = parseMark(v)
		ccfg.Metadata = map[string]string{markKey: v} // kept until a later run's end changes it
	}
	cons, err := b.js.CreateOrUpdateConsumer(ctx, b.stream, ccfg)
	if err != nil {
		pub.Close()
		return nil, natsError("import", r.name, err)
	}
	ord := newReorder()
	ord.resume(ctx, b.js, b.stream, subject, cons.CachedInfo().AckFloor.Stream)
	it, err := cons.Messages(jetstream.PullMaxMessages(pubWindow), jetstream.PullExpiry(2*time.Second), jetstream.PullHeartbeat(500*time.Millisecond)) // a short expiry notices a restarted server soon
	if err != nil {
		pub.Close()
		return nil, natsError("import", r.name, err)
	}
	// Frames an earlier run of this import was given but did not take come
	// again at once, not after AckWait.
	keeper := b.keepConsumer(ctx, r, durable, cons.CachedInfo().NumAckPending > 0)
	return func() error {
		stop := context.AfterFunc(ctx, it.Stop)
		defer stop()
		defer keeper.close()
		// Frames taken but not acknowledged yet, by stream sequence: the parts
		// of a message being joined, and messages waiting for the local
		// publisher's Flush. A copy of one of them (redelivered) takes its
		// place, so the acknowledgement goes to the latest delivery.
		unacked := map[uint64]jetstream.Msg{}
		parts := map[string][]uint64{} // by sending bridge (Iox-Origin)
		var held []uint64
		var heldN []int // for each frame held, the messages it completes (0: a part)
		heldMsgs := 0   // the messages of the frames held
		whole := true   // whether the last frame held went to the publisher whole
		acked := 0      // messages acknowledged since the server last confirmed a flush
		streamSeq := func(m jetstream.Msg) uint64 {
			md, _ := m.Metadata() // checked when the frame came
			return md.Sequence.Stream
		}
		// followed reports whether the server had more frames for the
		// consumer when it sent m: what is held may then be acknowledged
		// with them. The last frame of a burst is acknowledged once its
		// messages are in shared memory, so that the consumer drains (an
		// import whose export is gone ends only once it has).
		followed := func(m jetstream.Msg) bool {
			md, _ := m.Metadata()
			return md.NumPending > 0
		}
		var last jetstream.Msg // the frame acknowledged last
		ack := func(seqs []uint64) {
			for _, q := range seqs {
				last = unacked[q]
				last.Ack()
				delete(unacked, q)
			}
		}
		// An import that ends (its export gone, or the bridge closing)
		// closes its publisher, which delivers what it queued (for up to its
		// linger time), and then acknowledges every frame whose messages
		// reached shared memory, so that an import of the same service
		// started later delivers them no more and the others again. The
		// queue is in order: what is still queued is the last messages. Of
		// a pack that reached shared memory in part, the consumer keeps how
		// many messages did (the mark), and the frame comes again without
		// them.
		defer func() {
			fctx, cancel := context.WithTimeout(context.Background(), closeFlush)
			pub.Flush(fctx)
			cancel()
			pub.Close()
			delivered := heldMsgs - pub.Pending()
			n, sum := 0, 0
			for i, c := range heldN {
				if c == 0 {
					continue // a part: acknowledged with its message's last frame
				}
				if sum+c > delivered || i == len(heldN)-1 && !whole {
					if got := delivered - sum; got > 0 {
						mark.set(held[i], got)
					}
					break
				}
				sum += c
				n = i + 1
			}
			ack(held[:n])
			if mark.changed && b.cfg.Conn.IsConnected() {
				ccfg.Metadata = map[string]string{markKey: mark.String()}
				fctx, cancel := context.WithTimeout(context.Background(), closeFlush)
				if _, err := b.js.UpdateConsumer(fctx, b.stream, ccfg); err != nil {
					b.report(r, natsError("import", r.name, err))
				}
				cancel()
			}
			// The server takes acknowledgements in order and answers one
			// sent again with a reply once it took it: so an import started
			// next finds the consumer's floor past everything acknowledged.
			if last != nil && b.cfg.Conn.IsConnected() {
				fctx, cancel := context.WithTimeout(context.Background(), closeFlush)
				b.cfg.Conn.RequestWithContext(fctx, last.Reply(), []byte("+ACK"))
				cancel()
			}
		}()
		take := func(m jetstream.Msg) error {
			nm := &nats.Msg{Subject: m.Subject(), Header: m.Headers(), Data: m.Data()}
			msgs, aerr := asm.messages(nm)
			if aerr != nil {
				b.report(r, aerr)
			}
			q := streamSeq(m)
			unacked[q] = m
			msgs = msgs[mark.skip(q, len(msgs)):]
			origin := m.Headers().Get(hOrigin)
			for o, ps := range parts { // joins that ended otherwise (forgotten for other senders)
				if o != origin && !asm.joining(o) {
					ack(ps)
					delete(parts, o)
				}
			}
			if len(msgs) == 0 {
				if !asm.joining(origin) { // nothing is being joined: done with what came
					ack(append(parts[origin], q))
					delete(parts, origin)
				} else {
					parts[origin] = append(parts[origin], q)
				}
				return nil
			}
			// Acknowledged once the message is in shared memory (not only in
			// the local publisher's send queue, which a killed bridge loses):
			// a restart sends again at most what was not yet acknowledged.
			sent := 0 // queued in the publisher
			whole = true
			for i, msg := range msgs {
				err := pub.Send(ctx, msg)
				if err != nil && ctx.Err() != nil {
					if i == 0 {
						return ctx.Err() // nothing of it went: it comes again
					}
					// Part of a pack went: the rest follows, for a while, so
					// that the frame is acknowledged whole (see the end).
					fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), closeFlush)
					err = pub.Send(fctx, msg)
					cancel()
					if err != nil {
						whole = false
						break
					}
				}
				if err != nil {
					b.report(r, err)
					continue
				}
				sent++
			}
			for range parts[origin] {
				heldN = append(heldN, 0)
			}
			held = append(append(held, parts[origin]...), q)
			heldN = append(heldN, sent) // not whole: never acknowledged, it comes again
			delete(parts, origin)
			heldMsgs += sent
			if !whole {
				return ctx.Err()
			}
			if pub.Pending() > 0 && heldMsgs < ackEvery && followed(m) {
				return nil // acknowledged with a later message
			}
			if err := pub.Flush(ctx); err != nil && ctx.Err() != nil {
				return ctx.Err()
			}
			ack(held)
			acked += heldMsgs
			held, heldN, heldMsgs = held[:0], heldN[:0], 0
			if acked >= ackFlush {
				fctx, cancel := context.WithTimeout(ctx, closeFlush)
				err := b.cfg.Conn.FlushWithContext(fctx)
				cancel()
				if err == nil || !b.cfg.Conn.IsConnected() { // the server lost the connection's deliveries too
					acked = 0
				}
			}
			return nil
		}
		// A quiet spell of quietAfter after frames may mean that the client
		// dropped deliveries (nats.go drops what comes into a full
		// iterator), which no later frame shows the gap of: when the last
		// frame said that the server had more (pending), or when the
		// iterator may have filled (a run of at least pubWindow frames), the
		// keeper resets the consumer (in the second case once the server
		// said that it delivered more than came), so that they come again
		// at once instead of after AckWait.
		pending, run := false, 0
		var seen uint64 // the newest stream sequence that came
		for {
			var m jetstream.Msg
			var err error
			if run > 0 {
				m, err = it.Next(jetstream.NextMaxWait(quietAfter))
				if errors.Is(err, nats.ErrTimeout) {
					if pending || run >= pubWindow {
						keeper.quiet(pending, seen)
					}
					pending, run = false, 0
					continue
				}
			} else {
				m, err = it.Next()
			}
			if err != nil {
				if errors.Is(err, jetstream.ErrMsgIteratorClosed) || ctx.Err() != nil {
					return ctx.Err()
				}
				continue // the iterator goes on after a missed heartbeat or a reconnection
			}
			if lostDelivery(m) {
				continue
			}
			md, err := m.Metadata()
			if err != nil { // not a JetStream message
				m.Term()
				b.report(r, natsError("import", r.name, err))
				continue
			}
			ready, skipped := ord.add(m)
			if skipped >= 0 { // not a copy delivered again
				pending, run, seen = md.NumPending > 0, run+1, max(seen, md.Sequence.Stream)
			}
			keeper.gap(ord.waiting())
			switch {
			case skipped < 0:
				if _, ok := unacked[md.Sequence.Stream]; ok {
					unacked[md.Sequence.Stream] = m
				} else {
					m.Ack() // a copy of what is in shared memory already
				}
			case skipped > 0:
				b.report(r, &iox.Error{Op: "bridge receive", Name: r.name, Kind: iox.ErrUndelivered,
					Detail: fmt.Sprintf("%d frames of the exporting bridge never reached the stream", skipped)})
			}
			for _, x := range ready {
				if err := take(x); err != nil {
					return err
				}
			}
		}
	}, nil
}

// keptMark returns the mark (markKey) that an earlier run of an import kept
// in its durable consumer; ok is false when the consumer has none or does
// not exist. Only "not found" means that there is no mark: the import
// creates or updates its consumer with the mark it read, so a mark it did
// not read would be dropped, and the restart would repeat part of a pack. A
// lookup that fails otherwise (a timeout, a server whose JetStream is not
// ready yet) is tried again, after a pause (backoff), up to lookupAttempts
// times; then its error is returned, the import's start fails, and the
// export's next announcement starts it again.
func (b *Bridge) keptMark(ctx context.Context, durable string) (mark string, ok bool, err error) {
	pause := retryFirst
	for attempt := 1; ; attempt++ {
		var c jetstream.Consumer
		actx, cancel := context.WithTimeout(ctx, 2*time.Second)
		c, err = lookupConsumer(actx, b.js, b.stream, durable)
		cancel()
		switch {
		case err == nil:
			mark, ok = c.CachedInfo().Config.Metadata[markKey]
			return mark, ok, nil
		case errors.Is(err, jetstream.ErrConsumerNotFound):
			return "", false, nil
		case ctx.Err() != nil:
			return "", false, ctx.Err()
		case attempt == lookupAttempts:
			return "", false, fmt.Errorf("look up consumer %s: %w", durable, err)
		}
		if !backoff(ctx, &pause) {
			return "", false, ctx.Err()
		}
	}
}

// lookupAttempts bounds the attempts of keptMark: about a second of pauses,
// which a server whose JetStream is briefly unavailable outlasts; a longer
// outage is left to the export's announcements, which start the import
// again.
const lookupAttempts = 8

// lookupConsumer looks up an import's durable consumer. It is a variable so
// that tests can make the lookup fail.
var lookupConsumer = func(ctx context.Context, js jetstream.JetStream, stream, name string) (jetstream.Consumer, error) {
	return js.Consumer(ctx, stream, name)
}

// partMark is what an import keeps in its consumer's metadata (markKey) when
// it ended with a pack in shared memory in part: the frame's stream sequence
// and how many of its messages, from its first, reached shared memory. The
// frame comes again to the next run, which skips them. A stream sequence is
// never used twice, so a mark whose frame was acknowledged since is never
// matched again.
type partMark struct {
	seq     uint64
	n       int
	changed bool // set in this run: to be stored
}

const markKey = "iox-delivered"

func parseMark(s string) partMark {
	var m partMark
	if _, err := fmt.Sscanf(s, "%d:%d", &m.seq, &m.n); err != nil || m.n < 0 {
		return partMark{}
	}
	return m
}

func (m partMark) String() string { return fmt.Sprintf("%d:%d", m.seq, m.n) }

// skip returns how many of the n messages of the frame at stream sequence q
// an earlier run delivered.
func (m *partMark) skip(q uint64, n int) int {
	if q != m.seq {
		return 0
	}
	return min(m.n, n)
}

// set records that got more messages of the frame at stream sequence q
// reached shared memory (after those an earlier run delivered).
func (m *partMark) set(q uint64, got int) {
	if q == m.seq {
		got += m.n
	}
	m.seq, m.n, m.changed = q, got, true
}

// consumerKeeper resets an import's consumer after each reconnection (and at
// its start, when asked: what an earlier run was given comes again at once),
// when frames wait behind a gap for gapReset, and when deliveries stopped
// short of what the server delivered (quiet): a delivery the client dropped
// (a full iterator) or that a server restart lost comes again then, not after
// AckWait. Each gap that opens gets its reset, also while frames of another
// numbering still wait behind an older gap (one that no reset fills, as a
// made-up numbering's).
type consumerKeeper struct {
	gaps   chan struct{}
	quiets chan quietSpell
	open   atomic.Uint64 // the newest gap frames wait behind (reorder.waiting); 0: none
	cancel context.CancelFunc
	done   chan struct{}
}

func (b *Bridge) keepConsumer(ctx context.Context, r *route, durable string, now bool) *consumerKeeper {
	resets, unnotify := b.link.notify()
	reset := func(ctx context.Context) { b.resetConsumer(ctx, r, durable) }
	missed := func(ctx context.Context, seen uint64) bool { return b.deliveredPast(ctx, durable, seen) }
	return startKeeper(ctx, resets, unnotify, reset, missed, now)
}

// startKeeper runs a keeper that calls reset on each value of resets, at its
// start when now, for each gap that stays open for gapReset, and for each
// quiet spell that is sure, or for which missed says that the server
// delivered past what came; ended runs once it stopped.
func startKeeper(ctx context.Context, resets <-chan struct{}, ended func(), reset func(context.Context),
	missed func(ctx context.Context, seen uint64) bool, now bool) *consumerKeeper {
	k := &consumerKeeper{gaps: make(chan struct{}, 1), quiets: make(chan quietSpell, 1), done: make(chan struct{})}
	ctx, k.cancel = context.WithCancel(ctx)
	go func() {
		defer close(k.done)
		defer ended()
		if now {
			reset(ctx)
		}
		for {
			select {
			case <-ctx.Done():
				return
			case <-resets:
			case q := <-k.quiets:
				if !q.sure && (missed == nil || !missed(ctx, q.seen)) {
					continue
				}
			case <-k.gaps:
				g := k.open.Load()
				t := time.NewTimer(gapReset)
				select {
				case <-t.C:
				case <-ctx.Done():
					t.Stop()
					return
				}
				if g == 0 || k.open.Load() != g {
					continue // filled meanwhile, or a newer gap opened: its own signal waits
				}
			}
			reset(ctx)
		}
	}()
	return k
}

// gap tells which gap frames wait behind now (reorder.waiting: 0 for none, a
// new number for each gap that opens); the reading loop calls it after each
// frame.
func (k *consumerKeeper) gap(g uint64) {
	if k.open.Swap(g) != g && g != 0 {
		select {
		case k.gaps <- struct{}{}:
		default:
		}
	}
}

// quietSpell is a pause of the deliveries after frames (see the import's
// loop): sure when the last frame said that the server had more, and seen
// the newest stream sequence that came.
type quietSpell struct {
	sure bool
	seen uint64
}

// quiet tells the keeper of a quiet spell; one it has not taken yet gives
// way to the newer (the import's loop is the only sender, so the channel
// has room once that one is gone).
func (k *consumerKeeper) quiet(sure bool, seen uint64) {
	select {
	case <-k.quiets:
	default:
	}
	select {
	case k.quiets <- quietSpell{sure, seen}:
	default:
	}
}

func (k *consumerKeeper) close() {
	k.cancel()
	<-k.done
}

// resetConsumer makes the server deliver again, at once, what an import's
// consumer delivered and the bridge did not acknowledge (lost with a
// connection that dropped, or with a server that restarted), instead of
// after AckWait. The reorder drops what came twice. A server that keeps
// refusing (one without the reset API) leaves it to AckWait.
func (b *Bridge) resetConsumer(ctx context.Context, r *route, durable string) {
	pause := retryFirst
	for attempt := 0; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := b.js.ResetConsumer(actx, b.stream, durable)
		cancel()
		if err == nil || ctx.Err() != nil {
			return
		}
		if attempt == resetAttempts {
			b.report(r, natsError("reset consumer", r.name, err))
			return
		}
		if !backoff(ctx, &pause) {
			return
		}
	}
}

// deliveredPast reports whether the server delivered frames of the consumer
// durable past the stream sequence seen; false when it cannot tell.
func (b *Bridge) deliveredPast(ctx context.Context, durable string, seen uint64) bool {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	c, err := b.js.Consumer(ctx, b.stream, durable)
	return err == nil && c.CachedInfo().Delivered.Stream > seen
}

// gapReset is how long frames wait behind a gap before the import resets its
// consumer.
const gapReset = 300 * time.Millisecond

// quietAfter is how long deliveries pause after frames before the import
// asks whether the client dropped some (see its loop).
var quietAfter = gapReset

// importAckWait is the AckWait of an import's consumer: a frame delivered and
// not acknowledged comes again after it, when no reset brought it sooner.
var importAckWait = 5 * time.Second

// lostDelivery reports whether the import is to act as if its client never
// got m (tests lose deliveries with it, as a full iterator does).
var lostDelivery = func(jetstream.Msg) bool { return false }

// resetAttempts bounds the attempts to reset a consumer after a
// reconnection (JetStream may take a moment to be ready on a restarted
// server).
const resetAttempts = 20

// durableName names the durable consumer of one importing bridge and
// service (parts: the bridge's name and the service's), or of one direction
// of a pair (see pairDurable): a readable prefix, cut so that the name stays
// within JetStream's 255 bytes, then a hash of the parts, so that parts that
// read alike (services "x/y" and "x_2fy"; bridge "a_b" importing "c" and
// bridge "a" importing "b_c") never share a consumer.
func durableName(parts ...string) string {
	h := sha256.New()
	var s strings.Builder
	for i, p := range parts {
		h.Write(binary.AppendUvarint(nil, uint64(len(p))))
		h.Write([]byte(p))
		if i > 0 {
			s.WriteByte('_')
		}
		for _, c := range []byte(p) {
			if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-' {
				s.WriteByte(c)
			} else {
				s.WriteByte('_')
			}
		}
	}
	sum := hex.EncodeToString(h.Sum(nil)[:durableHash])
	prefix := s.String()
	return prefix[:min(len(prefix), durableMax-1-len(sum))] + "_" + sum
}

// durableMax is the longest consumer name JetStream takes; durableHash is
// how many bytes of the parts' SHA-256 a name carries.
const (
	durableMax  = 255
	durableHash = 12
)

// reorder puts the frames of each export back in the order it sent them
// (Iox-Seq, per seqKey): a frame the stream refused is sent again, after
// others that were stored meanwhile. Frames behind a gap wait,
// unacknowledged, until it is filled; a gap that stays for reorderWait (or
// behind more than reorderMax frames) is given up and reported. Duplicates (a
// frame sent again by the server or by the exporting bridge) are dropped; the
// caller acknowledges them.
//
// Numberings are kept while they may still send: beyond reorderKeep of them,
// one that holds no frame and sent none for reorderWait is forgotten when
// another begins (a restarted export numbers under a new key, and a client
// that may publish on the subject could make up keys without end).
type reorder struct {
	next map[string]uint64 // by seqKey: the Iox-Seq expected next (0: none seen)
	held map[string]map[uint64]jetstream.Msg
	gap  map[string]time.Time // since when a numbering waits for a gap
	last map[string]time.Time // when a numbering's last frame came
	now  func() time.Time
	gaps uint64 // gaps opened so far: the number of the newest
}

const (
	reorderWait = 30 * time.Second // several AckWaits: a frame dropped on the way is sent again meanwhile
	reorderMax  = 8 * pubWindow    // above MaxAckPending: the server sends no more than that unacknowledged
	reorderKeep = 1024             // numberings kept before idle ones are forgotten
)

func newReorder() *reorder {
	return &reorder{next: map[string]uint64{}, held: map[string]map[uint64]jetstream.Msg{},
		gap: map[string]time.Time{}, last: map[string]time.Time{}, now: time.Now}
}

// forget drops the numberings that hold no frame and sent none for
// reorderWait, once more than reorderKeep are kept.
func (o *reorder) forget(now time.Time) {
	if len(o.next) < reorderKeep {
		return
	}
	for k, t := range o.last {
		if o.held[k] == nil && now.Sub(t) >= reorderWait {
			delete(o.next, k)
			delete(o.last, k)
		}
	}
}

// resume sets where the frames of an import that starts again resume: at the
// first frame its consumer has not acknowledged (the server sends it again
// only after AckWait, behind newer ones). Without it the first frame to come
// would be taken as the start.
func (o *reorder) resume(ctx context.Context, js jetstream.JetStream, stream, subject string, floor uint64) {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return
	}
	m, err := s.GetMsg(ctx, floor+1, jetstream.WithGetMsgSubject(subject))
	if err != nil {
		return // nothing unacknowledged
	}
	if seq, err := strconv.ParseUint(m.Header.Get(hSeq), 10, 64); err == nil && m.Header.Get(hOrigin) != "" {
		o.next[seqKey(m.Header)] = seq
		o.last[seqKey(m.Header)] = o.now()
	}
}

// seqKey names the numbering a frame's Iox-Seq belongs to: its publisher's
// (Iox-Pub) in its bridge's run (Iox-Origin). An export that starts again
// numbers from 1 under a new key, so its frames are not taken for copies.
func seqKey(h nats.Header) string { return h.Get(hOrigin) + "/" + h.Get(hPub) }

// waiting reports the newest gap that frames wait behind (each gap that
// opens, or moves on to a later number, gets a new one), or 0 when none.
func (o *reorder) waiting() uint64 {
	if len(o.held) == 0 {
		return 0
	}
	return o.gaps
}

// add takes one frame and returns those now ready, in order, and how many
// frames were given up; -1 when the frame is a copy of one already taken
// (the caller acknowledges it, or lets it stand for the original).
func (o *reorder) add(m jetstream.Msg) (ready []jetstream.Msg, skipped int) {
	h := m.Headers()
	origin := seqKey(h)
	seq, err := strconv.ParseUint(h.Get(hSeq), 10, 64)
	if err != nil || h.Get(hOrigin) == "" || seq == 0 {
		return []jetstream.Msg{m}, 0 // not numbered: the assembler judges it
	}
	now := o.now()
	next, known := o.next[origin]
	if !known {
		o.forget(now)
	}
	o.last[origin] = now
	switch {
	case next == 0 || seq == next:
		ready = append(ready, m)
		o.next[origin] = seq + 1
	case seq < next:
		return nil, -1 // a copy of what was taken
	default:
		if o.held[origin] == nil {
			o.held[origin] = map[uint64]jetstream.Msg{}
			o.gap[origin] = now
			o.gaps++
		}
		o.held[origin][seq] = m
	}
	held := o.held[origin]
	for len(held) > 0 {
		n := o.next[origin]
		if x, ok := held[n]; ok {
			delete(held, n)
			ready = append(ready, x)
			o.next[origin] = n + 1
			continue
		}
		if now.Sub(o.gap[origin]) < reorderWait && len(held) < reorderMax {
			break
		}
		low := uint64(0)
		for k := range held {
			if low == 0 || k < low {
				low = k
			}
		}
		skipped += int(low - n)
		o.next[origin] = low
	}
	if len(held) == 0 {
		delete(o.held, origin)
		delete(o.gap, origin)
	} else if len(ready) > 0 {
		o.gap[origin] = now // the wait starts again at the new gap
		o.gaps++
	}
	return ready, skipped
}
