package bridge

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/iox-go/iox"
)

// Pairs across hosts. A pair has two ends; across hosts each bridge holds the
// end that faces its host's program, and the two bridges join their ends over
// JetStream, one subject per direction:
//
//	ROOT.pr.TOKEN.a   from the exporting host (the program that opened first)
//	ROOT.pr.TOKEN.b   from the importing host
//
// The exporting bridge opens its end once a program on its host opened one
// (a pair service NAME.iox-pair0 or NAME.iox-pair1 with a publisher it did
// not open) and announces the pair; a bridge whose Import matches opens the
// end on its host, where the program opens the other. Each direction is read
// by a durable consumer named after the pair and direction (so one importing
// bridge per pair: a pair has two ends), created by both bridges before they
// take a message, so what a program sends before the other bridge is there
// waits in the stream.
//
// What is kept, as tested:
//   - every message crosses once, in order, in each direction, also across a
//     restart of the NATS server (the frames are numbered and deduplicated,
//     and the consumers reset, as lossless channels' are);
//   - a program's Close on one host reaches the other as a clean end behind
//     every message it sent: the other program reads them all, then
//     ErrPeerClosed;
//   - a program's Close returns nil once its host's bridge took every
//     message: the confirmation comes from the bridge, not from the program
//     on the other host;
//   - a bridge that dies ends the pair: on its host its end is gone (the
//     program sees ErrPeerCrashed, as with a local peer); on the other host,
//     once the dead bridge's announcements stop (three Announce periods;
//     the importing bridge announces that it holds the session) and what
//     it put in the stream was relayed, the program reads an in-order,
//     duplicate-free prefix of what was sent and then a clean end
//     (ErrPeerClosed: the bridge cannot tell it a crash).
//   - a pair's route ends by its own relay: an export whose program closed
//     stays until the program's bye is in the stream, and an import whose
//     export is gone stays until its consumer has nothing left to take, so
//     a message sent just before Close is never cut off.
//     A pair the restarted bridges open again starts a new session; frames
//     of an earlier session are dropped (Iox-Session), and a second
//     importing bridge for a session ends it.
//   - a program that opens the pair again right after its session ended
//     does not pair with this bridge's end of the old session, which may
//     still be closing: it waits for the new session's end (see the root
//     package's pairing.go).
//
// A program's crash crosses as a clean end too (the other bridge reports
// ErrPeerCrashed in its status).

// KindPair names relayed pairs in Status.
const KindPair = "pair"

// kindPair is the subject kind of pairs.
const kindPair = "pr"

// Headers of pair frames.
const (
	hSession = "Iox-Session" // the pair session: the exporting route's id
	hBye     = "Iox-Bye"     // the sending host's program closed its end (or it ended: the reason)
)

// pairDirs are the subjects' last tokens: a for the exporting side's
// messages, b for the importing side's.
const (
	pairFromExport = "a"
	pairFromImport = "b"
)

// pairDurable is the consumer that reads one direction of a pair.
func pairDurable(root, name, dir string) string {
	return durableName("pair_"+root, name, dir)
}

// pairSide is what differs between the two bridges of a pair.
type pairSide struct {
	out, in string // the directions this bridge writes and reads
}

func (b *Bridge) exportPair(ctx context.Context, r *route) (func() error, error) {
	return b.runPair(ctx, r, pairSide{out: pairFromExport, in: pairFromImport})
}

func (b *Bridge) importPair(ctx context.Context, r *route) (func() error, error) {
	return b.runPair(ctx, r, pairSide{out: pairFromImport, in: pairFromExport})
}

// runPair opens the bridge's end of the pair and returns the loop that relays
// it both ways until the route ends, the program's end is closed or the
// other side's bye comes.
func (b *Bridge) runPair(ctx context.Context, r *route, side pairSide) (func() error, error) {
	pt, err := parseType(r.ann.Type)
	if err != nil {
		return nil, err
	}
	if r.ann.Session == "" {
		return nil, &iox.Error{Op: "import", Name: r.name, Kind: iox.ErrProtocol, Detail: "a pair announced without a session"}
	}
	if err := b.ensureStream(ctx); err != nil {
		return nil, err
	}
	base := Subject(b.cfg.Subject, kindPair, r.name)
	cfg := func(dir string) jetstream.ConsumerConfig {
		return jetstream.ConsumerConfig{
			Durable:           pairDurable(b.cfg.Subject, r.name, dir),
			FilterSubject:     base + "." + dir,
			AckPolicy:         jetstream.AckExplicitPolicy,
			AckWait:           5 * time.Second,
			MaxAckPending:     4 * pubWindow,
			InactiveThreshold: b.cfg.ConsumerIdle,
			DeliverPolicy:     jetstream.DeliverAllPolicy,
		}
	}
	// The consumer of what this side sends exists before the first message,
	// so the stream keeps it until the other bridge reads it.
	if _, err := b.js.CreateOrUpdateConsumer(ctx, b.stream, cfg(side.out)); err != nil {
		return nil, natsError("pair", r.name, err)
	}
	cons, err := b.js.CreateOrUpdateConsumer(ctx, b.stream, cfg(side.in))
	if err != nil {
		return nil, natsError("pair", r.name, err)
	}
	opts := []iox.Option{iox.MaxMessageSize(b.cfg.MaxMessageSize)}
	if r.ann.Buffer > 0 {
		opts = append(opts, iox.BufferSize(r.ann.Buffer))
	}
	// The end lives until the route closes it: a cancelled context would
	// drop what it queued.
	end, err := iox.OpenPairOf[[]byte](context.Background(), b.cfg.Node, r.name, codecFor(pt), opts...)
	if err != nil {
		return nil, err
	}
	b.setOwn(r, iox.PortCounts{Publishers: 1})
	ord := newReorder()
	ord.resume(ctx, b.js, b.stream, base+"."+side.in, cons.CachedInfo().AckFloor.Stream)
	it, err := cons.Messages(jetstream.PullMaxMessages(pubWindow), jetstream.PullExpiry(2*time.Second), jetstream.PullHeartbeat(500*time.Millisecond))
	if err != nil {
		end.Close()
		return nil, natsError("pair", r.name, err)
	}
	pubs := newJSPublisher(b, r, nil)
	durable := pairDurable(b.cfg.Subject, r.name, side.in)
	keeper := b.keepConsumer(ctx, r, durable, false)
	if side.in == pairFromExport {
		r.drained = func(ctx context.Context) bool { return b.pairDrained(ctx, durable) }
	}
	return func() error {
		defer keeper.close()
		rctx, stopRelay := context.WithCancel(ctx)
		defer stopRelay()
		stopIt := context.AfterFunc(rctx, it.Stop)
		defer stopIt()
		outDone, inDone := make(chan error, 1), make(chan error, 1)
		go func() { outDone <- b.pairOut(rctx, r, end, pubs, base+"."+side.out) }()
		go func() { inDone <- b.pairIn(rctx, r, end, it, ord, keeper) }()
		attached := make(chan struct{})
		if side.out == pairFromImport {
			go func() { defer close(attached); b.attach(rctx, r) }()
		} else {
			close(attached)
		}
		defer func() { <-attached }()
		// The pair ends when the program's bye went out (its end is gone
		// and everything it sent was relayed before), when the other side's
		// bye came, or when the route ends. When the program's end is found
		// gone while a message is handed to it, pairOut still relays what
		// the program sent before, and then its bye.
		var inErr, outErr error
		select {
		case outErr = <-outDone:
			stopRelay()
			inErr = <-inDone
		case inErr = <-inDone:
			if !errors.Is(inErr, errProgramGone) {
				stopRelay()
			}
			outErr = <-outDone
		}
		stopRelay() // both loops ended: so does attach, which the deferred wait joins
		if errors.Is(inErr, errProgramGone) {
			inErr = nil
		}
		pubs.close()
		cerr := end.Close()
		if errors.Is(cerr, iox.ErrClosed) || errors.Is(cerr, iox.ErrPeerClosed) || errors.Is(cerr, iox.ErrPeerCrashed) {
			cerr = nil
		}
		return errors.Join(inErr, outErr, cerr)
	}, nil
}

// pairOut relays what the program on this host sends, then its bye.
func (b *Bridge) pairOut(ctx context.Context, r *route, end *iox.Pair[[]byte], pubs *jsPublisher, subject string) error {
	stamp := func(m *nats.Msg) *nats.Msg {
		m.Header.Set(hSession, r.ann.Session)
		return m
	}
	for {
		msg, err := end.Recv(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var e *iox.Error
			if errors.As(err, &e) && end.Err() == nil && !errors.Is(err, iox.ErrPeerGone) && !errors.Is(err, iox.ErrClosed) {
				// One message could not be taken (too large for the
				// bridge's MaxMessageSize, or malformed): the pair goes on,
				// and both sides report it, as for other channels.
				b.report(r, err)
				reason := e.Error()
				if errors.Is(err, iox.ErrMessageTooLarge) {
					reason = "too large: " + e.Detail
				}
				if err := pubs.publish(stamp(b.fr.dropNotice(subject, r.ann.Type, reason)), nil); err != nil {
					if ctx.Err() != nil {
						return nil
					}
					b.report(r, natsError("relay", r.name, err))
				}
				continue
			}
			// The program closed its end (everything it sent came before) or
			// its process died: the other side ends too.
			reason := "closed"
			if !errors.Is(err, iox.ErrPeerClosed) {
				reason = err.Error()
			}
			bye := stamp(b.fr.dropNotice(subject, r.ann.Type, ""))
			bye.Header.Del(hDrop)
			bye.Header.Set(hBye, reason)
			if err := pubs.publish(bye, nil); err != nil {
				return err
			}
			return nil
		}
		for _, f := range b.fr.frames(subject, r.ann.Type, msg) {
			if err := pubs.publish(stamp(f), nil); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				b.report(r, natsError("relay", r.name, err))
			}
		}
	}
}

// pairIn relays what the other side sends to this host's program, in order,
// and ends at the other side's bye (closing the end, so the program reads
// everything and then a clean end). A frame is acknowledged once the end
// took its message (sent it, or queued it for the program).
func (b *Bridge) pairIn(ctx context.Context, r *route, end *iox.Pair[[]byte], it jetstream.MessagesContext, ord *reorder, keeper *consumerKeeper) error {
	asm := &assembler{name: r.name, typ: r.ann.Type, max: b.cfg.MaxMessageSize}
	var parts []jetstream.Msg
	for {
		m, err := it.Next()
		if err != nil {
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) || ctx.Err() != nil {
				return nil
			}
			continue // the iterator goes on after a missed heartbeat or a reconnection
		}
		if _, err := m.Metadata(); err != nil {
			m.Term()
			b.report(r, natsError("pair", r.name, err))
			continue
		}
		if s := m.Headers().Get(hSession); s != r.ann.Session {
			m.Ack() // an earlier session's frame
			continue
		}
		ready, skipped := ord.add(m)
		keeper.gap(ord.waiting())
		switch {
		case skipped < 0:
			m.Ack() // a copy of a frame taken already
		case skipped > 0:
			b.report(r, &iox.Error{Op: "bridge receive", Name: r.name, Kind: iox.ErrUndelivered,
				Detail: fmt.Sprintf("%d frames of the other side never reached the stream", skipped)})
		}
		for _, x := range ready {
			if reason := x.Headers().Get(hBye); reason != "" {
				x.Ack()
				if reason != "closed" {
					b.report(r, &iox.Error{Op: "pair", Name: r.name, Kind: iox.ErrPeerCrashed, Detail: "the other host's end: " + reason})
				}
				return nil
			}
			nm := &nats.Msg{Subject: x.Subject(), Header: x.Headers(), Data: x.Data()}
			msg, ok, aerr := asm.add(nm)
			if aerr != nil {
				b.report(r, aerr)
			}
			if !ok {
				if asm.id == "" {
					for _, p := range parts {
						p.Ack()
					}
					parts = parts[:0]
					x.Ack()
				} else {
					parts = append(parts, x)
				}
				continue
			}
			if err := end.Send(ctx, msg); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				if errors.Is(err, iox.ErrPeerClosed) || errors.Is(err, iox.ErrPeerCrashed) {
					return errProgramGone // the pair ends here: pairOut sends the program's bye
				}
				return err
			}
			for _, p := range parts {
				p.Ack()
			}
			parts = parts[:0]
			x.Ack()
		}
	}
}

// errProgramGone is pairIn's word that the program's end is gone.
var errProgramGone = errors.New("the program's end is gone")

// pairDrained tells whether the importing side's consumer has no frame left
// that the program's end did not take. An error other than a consumer that
// no longer exists (nothing then waits) counts as not drained: the import
// asks again later.
func (b *Bridge) pairDrained(ctx context.Context, durable string) bool {
	c, err := b.js.Consumer(ctx, b.stream, durable)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		return true
	}
	if err != nil {
		return false
	}
	info, err := c.Info(ctx)
	if err != nil {
		return errors.Is(err, jetstream.ErrConsumerNotFound)
	}
	return info.NumPending == 0 && info.NumAckPending == 0
}

// onAttach notes that an importing bridge holds the other end of an exported
// pair's session. A second importing bridge (the first restarted, or another
// host) ends the session: its first end is gone, and a pair has two ends.
func (b *Bridge) onAttach(a announcement) {
	b.mu.Lock()
	r := b.exports[a.Name]
	if r == nil || r.kind != KindPair || r.ann.Session != a.Session {
		b.mu.Unlock()
		return
	}
	switch r.attached {
	case "":
		r.attached = a.Origin
	case a.Origin:
	default:
		b.mu.Unlock()
		r.cancel()
		return
	}
	r.attachedAt, r.attachedEvery = time.Now(), a.period()
	b.mu.Unlock()
}

// attach announces, every Announce until ctx ends, that this bridge holds
// the importing end of a pair's session.
func (b *Bridge) attach(ctx context.Context, r *route) {
	a := r.ann
	a.Origin, a.Bridge, a.Attach = b.origin, b.cfg.Name, true
	t := time.NewTicker(b.cfg.Announce)
	defer t.Stop()
	for {
		b.announce(a)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// newSession names one export of a pair.
func newSession() string { return nuid.Next() }

// pairBuffer is the BufferSize of a pair's services on this host, or 0.
func (b *Bridge) pairBuffer(name string) int {
	for _, k := range []string{".iox-pair0", ".iox-pair1"} {
		if set, err := b.cfg.Node.PubSubSettings(name + k); err == nil && set.BufferSize > 0 {
			return set.BufferSize
		}
	}
	return 0
}

// pairEnds collects, from a listing, the pairs with ends on this host: by
// base name, the payload type and the number of ends (publishers).
func pairEnds(list []iox.ServiceInfo) map[string]struct {
	typ  string
	ends int
} {
	out := map[string]struct {
		typ  string
		ends int
	}{}
	for _, s := range list {
		base, role := iox.DescribeName(s.Name)
		if (role != iox.RolePair0 && role != iox.RolePair1) || s.PubSub == nil {
			continue
		}
		e := out[base]
		e.typ = TypeString(s.PubSub.Payload)
		e.ends += s.Ports.Publishers
		out[base] = e
	}
	return out
}
