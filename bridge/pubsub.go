package bridge

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

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

// ensureStream creates or updates the stream of lossless channels.
func (b *Bridge) ensureStream(ctx context.Context) error {
	_, err := b.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:       b.stream,
		Subjects:   []string{b.cfg.Subject + "." + kindLossless + ".>"},
		Retention:  jetstream.InterestPolicy,
		Discard:    jetstream.DiscardNew,
		MaxBytes:   b.cfg.StreamMaxBytes,
		Storage:    jetstream.FileStorage,
		Duplicates: 2 * time.Minute,
	})
	if err != nil {
		return natsError("create stream", b.stream, err)
	}
	return nil
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
	sub, err := iox.OpenSubOf[[]byte](ctx, b.cfg.Node, r.name, typed{pt}, opts...)
	if err != nil {
		return nil, err
	}
	b.setOwn(r, iox.PortCounts{Subscribers: 1})
	subject := Subject(b.cfg.Subject, subjectKinds[r.kind], r.name)
	var send func(*nats.Msg) error = b.cfg.Conn.PublishMsg
	var pubs *jsPublisher
	if r.kind == KindLossless {
		pubs = newJSPublisher(b, r)
		send = pubs.publish
	}
	return func() error {
		defer sub.Close()
		if pubs != nil {
			defer pubs.close()
		}
		for {
			msg, err := sub.Recv(ctx)
			if err != nil {
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
					err = send(b.fr.dropNotice(subject, r.ann.Type, "too large: "+e.Detail))
				} else {
					err = send(b.fr.dropNotice(subject, r.ann.Type, e.Error()))
				}
				if err != nil {
					b.report(r, err)
				}
				continue
			}
			for _, f := range b.fr.frames(subject, r.ann.Type, msg) {
				if err := send(f); err != nil {
					if ctx.Err() != nil {
						return ctx.Err()
					}
					b.report(r, natsError("relay", r.name, err))
				}
			}
		}
	}, nil
}

// jsPublisher sends frames to JetStream in order, up to pubWindow in flight,
// and sends again (same message id, so the stream keeps one copy) what the
// server did not acknowledge, waiting while the stream is full.
type jsPublisher struct {
	b       *Bridge
	r       *route
	pending chan pendingPub
	done    chan struct{}
	seq     uint64 // frames published, numbered in Iox-Seq
}

type pendingPub struct {
	msg *nats.Msg
	ack jetstream.PubAckFuture
}

func newJSPublisher(b *Bridge, r *route) *jsPublisher {
	p := &jsPublisher{b: b, r: r, pending: make(chan pendingPub, pubWindow), done: make(chan struct{})}
	go p.confirm()
	return p
}

func (p *jsPublisher) publish(m *nats.Msg) error {
	p.seq++
	m.Header.Set(hSeq, strconv.FormatUint(p.seq, 10))
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
	case p.pending <- pendingPub{m, f}:
		return nil
	case <-p.done:
		return &iox.Error{Op: "relay", Name: p.r.name, Kind: iox.ErrClosed}
	}
}

// confirm waits for each acknowledgement in order; a publication that failed
// is sent again synchronously, with a growing pause, until it is stored or the
// export ends.
func (p *jsPublisher) confirm() {
	defer close(p.done)
	for pp := range p.pending {
		var err error
		if pp.ack != nil {
			select {
			case <-pp.ack.Ok():
				continue
			case err = <-pp.ack.Err():
			}
		}
		pause := 10 * time.Millisecond
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_, err = p.b.js.PublishMsg(ctx, pp.msg)
			cancel()
			if err == nil {
				break
			}
			if p.b.ctx.Err() != nil && pause > time.Second {
				p.b.report(p.r, &iox.Error{Op: "relay", Name: p.r.name, Kind: iox.ErrUndelivered, Detail: "the stream did not take a message before the bridge closed: " + err.Error()})
				break
			}
			t := time.NewTimer(pause)
			<-t.C
			pause = min(2*pause, 2*time.Second)
		}
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
		opts = append(opts, iox.WaitSubscribers(1))
	}
	pub, err := iox.OpenPubOf[[]byte](ctx, b.cfg.Node, r.name, typed{pt}, opts...)
	if err != nil {
		return nil, err
	}
	b.setOwn(r, iox.PortCounts{Publishers: 1})
	asm := &assembler{name: r.name, typ: r.ann.Type, max: b.cfg.MaxMessageSize}
	subject := Subject(b.cfg.Subject, subjectKinds[r.kind], r.name)
	if r.kind == KindLossy {
		sub, err := b.cfg.Conn.Subscribe(subject, func(m *nats.Msg) {
			if m.Header.Get(hOrigin) == b.origin {
				return
			}
			msg, ok, err := asm.add(m)
			if err != nil {
				b.report(r, err)
			}
			if ok {
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
	cons, err := b.js.CreateOrUpdateConsumer(ctx, b.stream, jetstream.ConsumerConfig{
		Durable:           durableName(b.cfg.Name, r.name),
		FilterSubject:     subject,
		AckPolicy:         jetstream.AckExplicitPolicy,
		AckWait:           5 * time.Second, // what the client dropped comes again soon (reorder waits longer)
		MaxAckPending:     4 * pubWindow,
		InactiveThreshold: b.cfg.ConsumerIdle,
		DeliverPolicy:     jetstream.DeliverAllPolicy,
	})
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
	return func() error {
		stop := context.AfterFunc(ctx, it.Stop)
		defer stop()
		defer pub.Close()
		var parts, held []jetstream.Msg // parts of a message being joined; messages not acknowledged yet
		take := func(m jetstream.Msg) error {
			nm := &nats.Msg{Subject: m.Subject(), Header: m.Headers(), Data: m.Data()}
			msg, ok, aerr := asm.add(nm)
			if aerr != nil {
				b.report(r, aerr)
			}
			if !ok {
				if asm.id == "" { // nothing is being joined: done with what came
					for _, p := range parts {
						p.Ack()
					}
					parts = parts[:0]
					m.Ack()
				} else {
					parts = append(parts, m)
				}
				return nil
			}
			// Acknowledged once the message is in shared memory (not only in
			// the local publisher's send queue, which a killed bridge loses):
			// a restart sends again at most what was not yet acknowledged.
			if err := pub.Send(ctx, msg); err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				b.report(r, err)
			}
			held = append(append(held, parts...), m)
			parts = parts[:0]
			if pub.Pending() > 0 && len(held) < pubWindow/2 {
				return nil // acknowledged with a later message
			}
			if err := pub.Flush(ctx); err != nil && ctx.Err() != nil {
				return ctx.Err()
			}
			for _, h := range held {
				h.Ack()
			}
			held = held[:0]
			return nil
		}
		for {
			m, err := it.Next()
			if err != nil {
				if errors.Is(err, jetstream.ErrMsgIteratorClosed) || ctx.Err() != nil {
					return ctx.Err()
				}
				continue // the iterator goes on after a missed heartbeat or a reconnection
			}
			if _, err := m.Metadata(); err != nil { // not a JetStream message
				m.Term()
				b.report(r, natsError("import", r.name, err))
				continue
			}
			ready, skipped := ord.add(m)
			if skipped > 0 {
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

// durableName is the durable consumer of one importing bridge and service.
func durableName(bridge, service string) string {
	var s strings.Builder
	for _, c := range bridge + "_" + EscapeName(service) {
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-' {
			s.WriteRune(c)
		} else {
			fmt.Fprintf(&s, "_%02x", c)
		}
	}
	return s.String()
}

// reorder puts the frames of each exporting bridge back in the order it sent
// them (Iox-Seq): a frame the stream refused is sent again, after others that
// were stored meanwhile. Frames behind a gap wait, unacknowledged, until it
// is filled; a gap that stays for reorderWait (or behind more than
// reorderMax frames) is given up and reported. Duplicates (a frame sent again
// by the server or by the exporting bridge) are acknowledged and dropped.
type reorder struct {
	next map[string]uint64 // by origin: the Iox-Seq expected next (0: none seen)
	held map[string]map[uint64]jetstream.Msg
	gap  map[string]time.Time // since when an origin waits for a gap
}

const (
	reorderWait = 30 * time.Second // several AckWaits: a frame dropped on the way is sent again meanwhile
	reorderMax  = 8 * pubWindow    // above MaxAckPending: the server sends no more than that unacknowledged
)

func newReorder() *reorder {
	return &reorder{next: map[string]uint64{}, held: map[string]map[uint64]jetstream.Msg{}, gap: map[string]time.Time{}}
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
		o.next[m.Header.Get(hOrigin)] = seq
	}
}

// add takes one frame and returns those now ready, in order, and how many
// frames were given up.
func (o *reorder) add(m jetstream.Msg) (ready []jetstream.Msg, skipped int) {
	h := m.Headers()
	origin := h.Get(hOrigin)
	seq, err := strconv.ParseUint(h.Get(hSeq), 10, 64)
	if err != nil || origin == "" || seq == 0 {
		return []jetstream.Msg{m}, 0 // not numbered: the assembler judges it
	}
	next := o.next[origin]
	switch {
	case next == 0 || seq == next:
		ready = append(ready, m)
		o.next[origin] = seq + 1
	case seq < next:
		m.Ack() // a copy of what was taken
		return nil, 0
	default:
		if o.held[origin] == nil {
			o.held[origin] = map[uint64]jetstream.Msg{}
			o.gap[origin] = time.Now()
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
		if time.Since(o.gap[origin]) < reorderWait && len(held) < reorderMax {
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
		o.gap[origin] = time.Now() // the wait starts again at the new gap
	}
	return ready, skipped
}
