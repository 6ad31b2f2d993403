package bridge

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/iox-go/iox"
)

// Calls across hosts. The bridge on the server's host holds a client of the
// local service and answers NATS requests on ROOT.rpc.TOKEN in the queue group
// of the same name (so several such bridges share the calls); the bridge on
// the caller's host holds a server of the local service and sends each request
// it receives with a reply inbox. Responses come back on the inbox in order,
// framed as messages are (so large responses are split and joined), and
// Iox-End ends the stream: "ok", or the error that ended it, which the
// caller's side turns into a request ended without an answer (ErrNoResponse
// for a Call that had none). Iox-End travels on a message of its own, or, when
// the stream ended cleanly right behind its last response, on that response's
// last frame. A request must fit one NATS message.

// A call that waits long is kept alive by beats: the caller's bridge asks
// for one every Announce period (Iox-Beat on the request, in milliseconds,
// at least callBeatMin), the serving bridge sends an empty message with
// Iox-Beat on the inbox at that pace while the call runs, and the caller's
// bridge ends a call that heard nothing for three periods (ErrNoResponse
// for the caller, as when the serving side ends a call unanswered): the
// serving bridge died, or the way to it, and with it the call's responses.

// callBeatMin bounds how often beats are sent.
const callBeatMin = 50 * time.Millisecond

// callBeat is the pace of beats a bridge asks for.
func (b *Bridge) callBeat() time.Duration { return max(b.cfg.Announce, callBeatMin) }

// rpcConcurrency bounds the calls one export serves at once.
const rpcConcurrency = 256

// rpcQueue bounds the calls of one export that wait for a slot (beating,
// see beating); beyond it the subscription waits, and its callers' bridges
// may end calls that wait there longer than three beats.
const rpcQueue = 4 * rpcConcurrency

// rpcLook is how often a waiting import checks that its caller is still there.
const rpcLook = 250 * time.Millisecond

func (b *Bridge) exportCalls(ctx context.Context, r *route) (func() error, error) {
	req, err := parseType(r.ann.Type)
	if err != nil {
		return nil, err
	}
	resp, err := parseType(r.ann.Resp)
	if err != nil {
		return nil, err
	}
	cl, err := iox.OpenClient[[]byte, []byte](ctx, b.cfg.Node, r.name, codecFor(req), codecFor(resp), iox.MaxMessageSize(b.cfg.MaxMessageSize))
	if err != nil {
		return nil, err
	}
	b.setOwn(r, iox.PortCounts{Clients: 1})
	subject := Subject(b.cfg.Subject, kindRPC, r.name)
	slots := make(chan struct{}, rpcConcurrency)
	queue := make(chan struct{}, rpcQueue)                // calls that wait for a slot, beating
	calls := make(chan struct{}, rpcConcurrency+rpcQueue) // counts calls in flight, for the end
	gone, err := b.watchCallers(ctx)
	if err != nil {
		cl.Close()
		return nil, natsError("export", r.name, err)
	}
	// enter counts a call in, unless the route ended: its end fills calls
	// to learn that every call ended, and a call counted in after that
	// would wait for ever (and with it the subscription's goroutine).
	enter := func(m *nats.Msg) bool {
		select {
		case calls <- struct{}{}:
			return true
		case <-ctx.Done():
			b.endCall(m, stoppedRelaying)
			return false
		}
	}
	sub, err := b.cfg.Conn.QueueSubscribe(subject, subject, func(m *nats.Msg) {
		if m.Reply == "" || m.Header.Get(hOrigin) == b.origin {
			return
		}
		select {
		case slots <- struct{}{}:
		default:
			select {
			case queue <- struct{}{}: // it waits for a slot on its own goroutine, beating
				if !enter(m) {
					<-queue
					return
				}
				reply, cctx, done := gone.track()
				go func() {
					defer done()
					defer b.beating(m, reply)()
					select {
					case slots <- struct{}{}:
						<-queue
					case <-cctx.Done():
						<-queue
						<-calls
						b.endCall(m, stoppedRelaying)
						return
					}
					defer func() { <-slots; <-calls }()
					b.serveCall(cctx, r, cl, m)
				}()
				return
			case slots <- struct{}{}: // the queue is full too: the subscription waits
			case <-ctx.Done():
				b.endCall(m, stoppedRelaying)
				return
			}
		}
		if !enter(m) {
			<-slots
			return
		}
		reply, cctx, done := gone.track()
		go func() {
			defer done()
			defer b.beating(m, reply)()
			defer func() { <-slots; <-calls }()
			b.serveCall(cctx, r, cl, m)
		}()
	})
	if err != nil {
		gone.close()
		cl.Close()
		return nil, natsError("export", r.name, err)
	}
	return func() error {
		<-ctx.Done()
		sub.Unsubscribe()
		defer gone.close()
		for range cap(calls) { // every call in flight ended
			calls <- struct{}{}
		}
		return cl.Close()
	}, nil
}

// stoppedRelaying is why a call ends unanswered when its export ends.
const stoppedRelaying = "the serving bridge stopped relaying the service"

// beatPeriod is how often the caller's bridge asks for beats on the call of
// m (Iox-Beat), or 0 for none.
func beatPeriod(m *nats.Msg) time.Duration {
	ms, err := strconv.ParseInt(m.Header.Get(hBeat), 10, 32)
	if err != nil || ms <= 0 {
		return 0
	}
	return max(time.Duration(ms)*time.Millisecond, callBeatMin)
}

// callers ends the calls of an export whose callers are gone. Each beat
// carries a reply subject of the call's own (track): the server answers a
// beat whose inbox nobody holds any more (the calling bridge died) with "no
// responders", and the calling bridge answers a beat of a call it no longer
// relays (its caller gave up); either answer ends the call here, and the
// local request with it, so that the handler's context ends.
type callers struct {
	base string
	sub  *nats.Subscription
	ctx  context.Context
	mu   sync.Mutex
	n    uint64
	live map[string]context.CancelFunc
}

func (b *Bridge) watchCallers(ctx context.Context) (*callers, error) {
	c := &callers{base: nats.NewInbox(), ctx: ctx, live: map[string]context.CancelFunc{}}
	var err error
	c.sub, err = b.cfg.Conn.Subscribe(c.base+".*", func(m *nats.Msg) {
		c.mu.Lock()
		cancel := c.live[strings.TrimPrefix(m.Subject, c.base+".")]
		c.mu.Unlock()
		if cancel != nil {
			cancel()
		}
	})
	return c, err
}

// track registers one call: the reply subject of its beats, its context,
// and the function that ends it.
func (c *callers) track() (reply string, ctx context.Context, done func()) {
	ctx, cancel := context.WithCancel(c.ctx)
	c.mu.Lock()
	c.n++
	id := strconv.FormatUint(c.n, 36)
	c.live[id] = cancel
	c.mu.Unlock()
	return c.base + "." + id, ctx, func() {
		c.mu.Lock()
		delete(c.live, id)
		c.mu.Unlock()
		cancel()
	}
}

func (c *callers) close() { c.sub.Unsubscribe() }

// beating sends beats on the inbox of the call of m (with reply as their
// reply subject, see callers), at the pace it asks for, from now until the
// returned function is called: while the call waits for a slot of the
// export or of the local client, and while it runs.
func (b *Bridge) beating(m *nats.Msg, reply string) (stop func()) {
	p := beatPeriod(m)
	if p == 0 {
		return func() {}
	}
	var mu sync.Mutex
	stopped := false
	var t *time.Timer
	mu.Lock()
	defer mu.Unlock()
	t = time.AfterFunc(p, func() {
		mu.Lock()
		defer mu.Unlock()
		if stopped {
			return
		}
		e := nats.NewMsg(m.Reply)
		e.Reply = reply
		e.Header.Set(hOrigin, b.origin)
		e.Header.Set(hBeat, "1")
		b.cfg.Conn.PublishMsg(e)
		t.Reset(p)
	})
	return func() {
		mu.Lock()
		defer mu.Unlock()
		stopped = true
		t.Stop()
	}
}

// endCall ends the call of m, unanswered, for reason.
func (b *Bridge) endCall(m *nats.Msg, reason string) {
	e := nats.NewMsg(m.Reply)
	e.Header.Set(hOrigin, b.origin)
	e.Header.Set(hEnd, reason)
	b.cfg.Conn.PublishMsg(e)
}

// serveCall makes one call on the local service and sends its responses to
// the NATS request's inbox.
func (b *Bridge) serveCall(ctx context.Context, r *route, cl *iox.Caller[[]byte, []byte], m *nats.Msg) {
	end := func(reason string) { b.endCall(m, reason) }
	asm := &assembler{name: r.name, typ: r.ann.Type, max: b.cfg.MaxMessageSize}
	req, ok, err := asm.add(m)
	if err != nil || !ok {
		if err == nil {
			err = &iox.Error{Op: "bridge call", Name: r.name, Kind: iox.ErrMessageTooLarge, Detail: "a request must fit one NATS message"}
		}
		b.report(r, err)
		end(err.Error())
		return
	}
	st, err := cl.Stream(ctx, req)
	if err != nil {
		end(err.Error())
		return
	}
	defer st.Close()
	in := st.In()
	v, ok := <-in
	for ok {
		// The response after v, or the stream's end, may be there already:
		// a clean end then travels with v, as its last frame's Iox-End (a
		// call with one answer costs one NATS message back, not two).
		next, more, waiting := []byte(nil), false, false
		select {
		case next, more = <-in:
		default:
			waiting = true
		}
		last := !waiting && !more && st.Err() == nil
		frames := b.fr.frames(m.Reply, r.ann.Resp, v)
		if last {
			frames[len(frames)-1].Header[hEnd] = []string{"ok"}
		}
		for _, f := range frames {
			if err := b.cfg.Conn.PublishMsg(f); err != nil {
				b.report(r, natsError("relay response", r.name, err))
				return
			}
		}
		if last {
			return
		}
		if waiting {
			next, more = <-in
		}
		v, ok = next, more
	}
	if err := st.Err(); err != nil {
		end(err.Error())
		return
	}
	end("ok")
}

func (b *Bridge) importCalls(ctx context.Context, r *route) (func() error, error) {
	req, err := parseType(r.ann.Type)
	if err != nil {
		return nil, err
	}
	resp, err := parseType(r.ann.Resp)
	if err != nil {
		return nil, err
	}
	srv, err := iox.OpenServer[[]byte, []byte](ctx, b.cfg.Node, r.name, codecFor(req), codecFor(resp), iox.MaxMessageSize(b.cfg.MaxMessageSize))
	if err != nil {
		return nil, err
	}
	b.setOwn(r, iox.PortCounts{Servers: 1})
	mux, err := newInboxMux(b.cfg.Conn, b.cfg.MaxMessageSize)
	if err != nil {
		srv.Close()
		return nil, natsError("import", r.name, err)
	}
	return func() error {
		defer srv.Close()
		defer mux.close()
		var calls sync.WaitGroup
		defer calls.Wait()
		for {
			q, err := srv.Recv(ctx)
			if err != nil {
				if ctx.Err() != nil || errors.Is(err, iox.ErrClosed) {
					return ctx.Err()
				}
				if srv.Err() != nil {
					return err // the server ended
				}
				b.report(r, err) // one request could not be taken
				continue
			}
			calls.Go(func() { b.forwardCall(ctx, r, mux, q) })
		}
	}, nil
}

// forwardCall sends one local request over NATS and relays the responses.
func (b *Bridge) forwardCall(ctx context.Context, r *route, mux *inboxMux, q *iox.Request[[]byte, []byte]) {
	subject := Subject(b.cfg.Subject, kindRPC, r.name)
	frames := b.fr.frames(subject, r.ann.Type, q.Value)
	if len(frames) != 1 {
		b.report(r, &iox.Error{Op: "bridge call", Name: r.name, Kind: iox.ErrMessageTooLarge,
			Detail: fmt.Sprintf("a request of %d bytes; one NATS message takes %d", len(q.Value), b.fr.limit)})
		q.Close()
		return
	}
	inbox, in := mux.open()
	defer mux.drop(inbox)
	frames[0].Reply = inbox
	beat := b.callBeat()
	frames[0].Header[hBeat] = []string{strconv.FormatInt(beat.Milliseconds(), 10)}
	heard := time.Now() // when the serving side was last heard of
	if err := b.cfg.Conn.PublishMsg(frames[0]); err != nil {
		b.report(r, natsError("bridge call", r.name, err))
		q.Close()
		return
	}
	asm := &assembler{name: r.name, typ: r.ann.Resp, max: b.cfg.MaxMessageSize}
	for {
		m, err := in.next(ctx, rpcLook)
		if err != nil {
			if ctx.Err() != nil {
				q.Close()
				return
			}
			if errors.Is(err, context.DeadlineExceeded) {
				if !q.Connected() {
					q.Close() // the caller went away
					return
				}
				if time.Since(heard) > 3*beat {
					b.report(r, &iox.Error{Op: "bridge call", Name: r.name, Kind: iox.ErrPeerGone,
						Detail: fmt.Sprintf("nothing came from the serving bridge for %v: it or the way to it is gone", time.Since(heard).Round(time.Millisecond))})
					q.Close()
					return
				}
				continue
			}
			b.report(r, natsError("bridge call", r.name, err))
			q.Close()
			return
		}
		heard = time.Now()
		if _, ok := m.Header[hBeat]; ok {
			if !q.Connected() { // the caller went away: the serving bridge ends the call too
				if m.Reply != "" {
					b.cfg.Conn.Publish(m.Reply, nil)
				}
				q.Close()
				return
			}
			continue
		}
		if m.Header.Get("Status") == "503" { // no bridge serves it
			q.Close()
			return
		}
		if reason, ok := m.Header[hEnd]; ok {
			if m.Header.Get(hID) != "" { // the last response, which carries the end
				v, ok, err := asm.add(m)
				if err != nil {
					b.report(r, err)
				}
				if ok {
					if err := q.Send(ctx, v); err != nil && !errors.Is(err, iox.ErrPeerClosed) && ctx.Err() == nil {
						b.report(r, err)
					}
				}
			}
			if len(reason) > 0 && reason[0] != "ok" && !strings.Contains(reason[0], "no response") {
				b.report(r, &iox.Error{Op: "bridge call", Name: r.name, Kind: iox.ErrNoResponse, Detail: "the serving side: " + reason[0]})
			}
			q.Close()
			return
		}
		v, ok, err := asm.add(m)
		if err != nil {
			b.report(r, err)
		}
		if !ok {
			continue
		}
		if err := q.Send(ctx, v); err != nil {
			if !errors.Is(err, iox.ErrPeerClosed) && ctx.Err() == nil {
				b.report(r, err)
			}
			q.Close()
			return
		}
	}
}

// inboxMux receives the responses of every call an import forwards on one
// subscription (INBOX.*), so a call costs no subscription of its own.
type inboxMux struct {
	base  string
	sub   *nats.Subscription
	mu    sync.Mutex
	calls map[string]*callQueue
	n     uint64
}

func newInboxMux(nc *nats.Conn, maxMsg int) (*inboxMux, error) {
	m := &inboxMux{base: nats.NewInbox(), calls: map[string]*callQueue{}}
	var err error
	m.sub, err = nc.Subscribe(m.base+".*", func(msg *nats.Msg) {
		m.mu.Lock()
		q := m.calls[msg.Subject]
		m.mu.Unlock()
		if q != nil {
			q.push(msg)
			return
		}
		if _, beat := msg.Header[hBeat]; beat && msg.Reply != "" {
			nc.Publish(msg.Reply, nil) // a call this bridge relays no more: the serving bridge ends it
		}
	})
	if err != nil {
		return nil, err
	}
	m.sub.SetPendingLimits(-1, 4*maxMsg)
	return m, nil
}

// open makes the inbox of one call.
func (m *inboxMux) open() (string, *callQueue) {
	q := &callQueue{wake: make(chan struct{}, 1)}
	m.mu.Lock()
	m.n++
	inbox := m.base + "." + strconv.FormatUint(m.n, 36)
	m.calls[inbox] = q
	m.mu.Unlock()
	return inbox, q
}

func (m *inboxMux) drop(inbox string) {
	m.mu.Lock()
	delete(m.calls, inbox)
	m.mu.Unlock()
}

func (m *inboxMux) close() { m.sub.Unsubscribe() }

// callQueue holds one call's responses until its goroutine takes them; the
// responses of a stream are bounded by what the serving side sends.
type callQueue struct {
	mu   sync.Mutex
	msgs []*nats.Msg
	wake chan struct{}
}

func (q *callQueue) push(m *nats.Msg) {
	q.mu.Lock()
	q.msgs = append(q.msgs, m)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// next returns the next response, context.DeadlineExceeded after look
// without one, or the error of ctx.
func (q *callQueue) next(ctx context.Context, look time.Duration) (*nats.Msg, error) {
	var t *time.Timer
	for {
		q.mu.Lock()
		if len(q.msgs) > 0 {
			m := q.msgs[0]
			q.msgs[0] = nil
			q.msgs = q.msgs[1:]
			q.mu.Unlock()
			if t != nil {
				t.Stop()
			}
			return m, nil
		}
		q.mu.Unlock()
		if t == nil {
			t = time.NewTimer(look)
		}
		select {
		case <-q.wake:
		case <-t.C:
			return nil, context.DeadlineExceeded
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		}
	}
}
