package iox

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/iox-go/iox/internal/ffi"
	"github.com/iox-go/iox/internal/liveness"
)

// rpcIdleLook is how often an idle Responder with only iox clients looks
// whether a client in another language (which never notifies) has joined.
const rpcIdleLook = time.Second

// Responder is the server end of a request/response service (see OpenServer).
// Requests come from In or Recv; each is answered through its Request, or by a
// handler run by Serve.
type Responder[Req, Resp any] struct {
	name   string
	node   *Node
	cfg    chanConfig
	svc    *RequestResponseService
	server *Server
	reqEv  *EventService
	lis    *Listener
	dec    Codec[Req]
	enc    func([]byte, Resp) ([]byte, error)
	ports  ports
	life   *life
	closer closer
	feeds  group
	inOnce sync.Once
	in     chan *Request[Req, Resp]

	rxMu     sync.Mutex    // one receive at a time, into buf
	released chan struct{} // a held request was released (see waitReleased)
	buf      []byte
	ids      []EventID // the listener's drained ids
	spin     spinner

	mu    sync.Mutex
	wakes map[UniqueID]*Notifier // per client; nil for clients that do not listen
	open  map[*Request[Req, Resp]]struct{}
}

// OpenServer opens a server of the request/response service name, whose
// requests are Req values decoded by reqCodec and whose responses are Resp
// values encoded by respCodec. ctx bounds the server's life. Options as for
// OpenClient, plus OnDrop, which receives the errors of requests that could
// not be answered (undecodable or oversized requests, failed handlers).
func OpenServer[Req, Resp any](ctx context.Context, node *Node, name string, reqCodec Codec[Req], respCodec Codec[Resp], opts ...Option) (*Responder[Req, Resp], error) {
	const op = "open server"
	o, err := prepareRPC(ctx, op, name, "server", opts, nodeArg(node), codecArg("request codec", reqCodec), codecArg("response codec", respCodec))
	if err != nil {
		return nil, err
	}
	node, hold, err := node.keep(op, name)
	if err != nil {
		return nil, err
	}
	r := &Responder[Req, Resp]{name: name, node: node, cfg: o.ch, dec: reqCodec, enc: encoder(respCodec), life: newLife(),
		in: make(chan *Request[Req, Resp], o.ch.chanCap), spin: newSpinner(o.ch.spin), released: newSignal(),
		wakes: map[UniqueID]*Notifier{}, open: map[*Request[Req, Resp]]struct{}{}}
	r.ports.add(hold) // released last
	if r.svc, err = rpcService(node, name, payloadTypeOf(reqCodec), payloadTypeOf(respCodec), o); err != nil {
		r.ports.release()
		return nil, err
	}
	r.ports.add(r.svc)
	if err := r.openPorts(); err != nil {
		r.ports.release()
		return nil, err
	}
	r.closer.watch(ctx, "server", name, r.shutdown)
	return r, nil
}

func (r *Responder[Req, Resp]) openPorts() error {
	var err error
	if r.server, err = r.svc.Server(MaxMessageSize(r.cfg.maxMessage)); err != nil {
		return err
	}
	r.ports.add(r.server)
	if r.reqEv, err = rpcEvents(r.node, r.name+rpcReqSuffix, r.svc.Config()); err != nil {
		return err
	}
	r.ports.add(r.reqEv)
	if r.lis, err = r.reqEv.Listener(); err != nil {
		return err
	}
	r.ports.add(r.lis)
	return nil
}

// Recv returns the next request. A request that cannot be taken (larger than
// MaxMessageSize, or undecodable) is ended without a response and reported by
// Recv's error, one per request, after which the server goes on. While the
// server holds MaxActiveRequests requests of one client (whose callers gave up
// on some and sent new ones), iceoryx2 hands it no more, and Recv waits until
// one of them is answered or closed. Once the server ended Recv returns Err.
func (r *Responder[Req, Resp]) Recv(ctx context.Context) (*Request[Req, Resp], error) {
	if ctx == nil {
		return nil, nilArg("receive", r.name, "ctx")
	}
	r.rxMu.Lock()
	defer r.rxMu.Unlock()
	for {
		if err := r.life.err(); err != nil {
			return nil, err
		}
		q, err := r.take()
		if errors.Is(err, ErrTooManyLoans) {
			if err := r.waitReleased(ctx); err != nil {
				return nil, err
			}
			continue
		}
		if q != nil || err != nil {
			return q, err
		}
		if r.spin.spin(r.hasRequests, r.life.Done(), ctx.Done()) {
			continue
		}
		every := rpcIdleLook
		if r.foreignClients() {
			every = r.cfg.poll
		}
		// Recv holds rxMu, so it waits alone: a notification that came after
		// take looked keeps the listener readable and ends this wait at once.
		wctx, cancel := context.WithTimeout(ctx, every)
		ids, err := r.lis.waitInto(wctx, r.life.Done(), r.ids[:0])
		r.ids = ids[:0]
		cancel()
		r.spin.parked()
		if err := r.life.waited(ctx, err); err != nil {
			return nil, err
		}
	}
}

// waitReleased waits until the server releases a request it holds. iceoryx2
// hands a server at most MaxActiveRequests requests of one client at a time;
// a caller that gave up frees its own slot at once and may send again while
// the server still holds the old request, and then the next receive is
// refused (ErrTooManyLoans) until a held request is answered or closed.
func (r *Responder[Req, Resp]) waitReleased(ctx context.Context) error {
	r.mu.Lock()
	held := len(r.open)
	r.mu.Unlock()
	if held == 0 { // nothing of this server's to wait for: look again later
		return r.life.pause(ctx, r.cfg.poll)
	}
	select {
	case <-r.released:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-r.life.Done():
		return r.life.err()
	}
}

func (r *Responder[Req, Resp]) hasRequests() bool {
	ok, _ := r.server.HasRequests()
	return ok
}

// take receives one request if there is one; held under rxMu.
func (r *Responder[Req, Resp]) take() (*Request[Req, Resp], error) {
	for {
		a, n, ok, err := r.server.TryReceive(r.buf)
		if need, small := bufferNeed(err); small {
			if need > r.cfg.maxMessage {
				// take it into a scratch buffer only to end it
				if a, _, ok, err = r.server.TryReceive(make([]byte, need)); ok && err == nil {
					a.Close()
				}
				return nil, &Error{Op: "receive request", Name: r.name, Kind: ErrMessageTooLarge,
					Detail: fmt.Sprintf("request of %d bytes, MaxMessageSize is %d", need, r.cfg.maxMessage)}
			}
			r.buf = make([]byte, need)
			continue
		}
		if err != nil {
			if e := r.life.err(); e != nil {
				return nil, e
			}
			return nil, &Error{Op: "receive request", Name: r.name, Kind: err}
		}
		if !ok {
			return nil, nil
		}
		v, err := decodeSafe(r.dec, r.buf[:n])
		if err != nil {
			a.Close()
			return nil, &Error{Op: "receive request", Name: r.name, Kind: ErrProtocol, Detail: err.Error()}
		}
		q := &Request[Req, Resp]{Value: v, r: r, active: a, wake: r.wakeFor(a.Origin())}
		r.mu.Lock()
		if r.open == nil { // the server closed meanwhile
			r.mu.Unlock()
			a.Close()
			return nil, r.life.err()
		}
		r.open[q] = struct{}{}
		r.mu.Unlock()
		return q, nil
	}
}

// callerDied reports whether the process of the client origin has died, and
// then removes what it left in the service. A client no longer listed is
// gone too.
func (r *Responder[Req, Resp]) callerDied(origin UniqueID) bool {
	clients, err := r.svc.Clients()
	if err != nil {
		return false
	}
	for _, c := range clients {
		if c.Port != origin {
			continue
		}
		pid, created, st := r.node.lib.NodeIDDetails(c.Node.Lo, c.Node.Hi)
		if st != ffi.OK || liveness.Alive(pid, created) {
			return false
		}
		r.svc.CleanupDeadNodes()
		return true
	}
	return true
}

// foreignClients reports whether a client is there that does not notify: one
// without a notifier on the request events.
func (r *Responder[Req, Resp]) foreignClients() bool {
	clients, _, err := r.svc.Counts()
	if err != nil {
		return true
	}
	notifiers, _, err := r.reqEv.Counts()
	return err != nil || clients > notifiers
}

// wakeFor returns the notifier that wakes the client origin, nil for a client
// that does not listen (one in another language).
func (r *Responder[Req, Resp]) wakeFor(origin UniqueID) *Notifier {
	r.mu.Lock()
	defer r.mu.Unlock()
	if n, ok := r.wakes[origin]; ok || r.wakes == nil {
		return n
	}
	if len(r.wakes) >= 2*r.svc.Config().MaxClients { // clients came and went
		r.forgetGone()
	}
	var n *Notifier
	if ev, err := r.node.Event(rpcRespName(r.name, origin), OpenOnly()); err == nil {
		n, _ = ev.Notifier()
		ev.Close()
	}
	r.wakes[origin] = n
	return n
}

// forgetGone closes the cached notifiers of clients that left; held under mu.
func (r *Responder[Req, Resp]) forgetGone() {
	clients, err := r.svc.Clients()
	if err != nil {
		return
	}
	here := make(map[UniqueID]bool, len(clients))
	for _, c := range clients {
		here[c.Port] = true
	}
	for id, n := range r.wakes {
		if !here[id] {
			if n != nil {
				n.Close()
			}
			delete(r.wakes, id)
		}
	}
}

// In delivers the requests; it is closed when the server ends. Requests that
// cannot be taken go to OnDrop. A goroutine behind it starts on the first call.
func (r *Responder[Req, Resp]) In() <-chan *Request[Req, Resp] {
	r.inOnce.Do(func() {
		if !r.feeds.start(r.feed) {
			close(r.in)
		}
	})
	return r.in
}

func (r *Responder[Req, Resp]) feed() {
	defer close(r.in)
	ctx := r.life.ctx
	var backoff time.Duration
	for {
		q, err := r.Recv(ctx)
		if err != nil {
			if r.life.err() != nil || r.failed(ctx, err, &backoff) != nil {
				return
			}
			continue
		}
		backoff = 0
		if !handOver(r.in, q, r.life.Done()) {
			q.Close()
			return
		}
	}
}

func (r *Responder[Req, Resp]) drop(err error) {
	if r.cfg.onDrop != nil {
		r.cfg.onDrop(err)
	}
}

// failed reports a failed Recv of a loop that goes on (In's feed, a Serve
// worker) to OnDrop. Such an error either took one request with it (too
// large, undecodable) or came from the native library without taking any,
// and may come again at once: then the loop waits before it tries again,
// from 1 ms doubling up to WithPoll (backoff holds the last wait; the loop
// resets it after a request). It returns the error of ctx or of the server's
// end when they cut the wait short.
func (r *Responder[Req, Resp]) failed(ctx context.Context, err error, backoff *time.Duration) error {
	r.drop(err)
	if errors.Is(err, ErrMessageTooLarge) || errors.Is(err, ErrProtocol) {
		*backoff = 0
		return nil
	}
	*backoff = min(max(2**backoff, rpcWaitRetries), r.cfg.poll)
	return r.life.pause(ctx, *backoff)
}

// Serve answers requests with handler on workers goroutines, each of which
// takes the next request and runs the handler for it, until ctx ends or the
// server ends; it returns why. A handler's error, or a panic inside it
// (recovered: it does not take the process down), ends that request without
// a response, so the caller's Call fails with ErrNoResponse, and goes to
// OnDrop; the server goes on. So does an answer that cannot be sent (larger
// than MaxMessageSize, or refused by the codec). The handlers' context ends
// when ctx ends or the server ends (its cause is then the server's Err).
// Serve waits for its handlers before it returns.
func (r *Responder[Req, Resp]) Serve(ctx context.Context, workers int, handler func(context.Context, Req) (Resp, error)) error {
	if err := refuse("serve", r.name, ctxArg(ctx)); err != nil {
		return err
	}
	if handler == nil {
		return nilArg("serve", r.name, "handler")
	}
	if workers < 1 || workers > maxCount {
		return &Error{Op: "serve", Name: r.name, Kind: ErrInvalidArgument, Detail: fmt.Sprintf("workers %d outside 1..%d", workers, maxCount)}
	}
	// The handlers' context ends with ctx and with the server: a handler
	// that waits on it is not left waiting once the server closed (Serve
	// waits for its handlers).
	hctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stop := context.AfterFunc(r.life.ctx, func() { cancel(r.life.err()) })
	defer stop()
	errs := make(chan error, workers)
	for range workers {
		go func() {
			var backoff time.Duration
			for {
				q, err := r.Recv(ctx)
				if err != nil {
					if ctx.Err() != nil || r.life.err() != nil {
						errs <- err
						return
					}
					if err := r.failed(ctx, err, &backoff); err != nil {
						errs <- err
						return
					}
					continue
				}
				backoff = 0
				r.handle(hctx, q, handler)
			}
		}()
	}
	err := <-errs
	for range workers - 1 {
		<-errs
	}
	return err
}

func (r *Responder[Req, Resp]) handle(ctx context.Context, q *Request[Req, Resp], handler func(context.Context, Req) (Resp, error)) {
	defer func() {
		if p := recover(); p != nil {
			r.drop(&Error{Op: "serve", Name: r.name, Kind: ErrNoResponse, Detail: fmt.Sprintf("the handler panicked: %v", p)})
			q.Close()
		}
	}()
	v, err := handler(ctx, q.Value)
	if err != nil {
		r.drop(&Error{Op: "serve", Name: r.name, Kind: ErrNoResponse, Detail: "the handler failed: " + err.Error()})
		q.Close()
		return
	}
	if err := q.Reply(ctx, v); err != nil {
		// The answer cannot be sent (too large, refused by the codec, or ctx
		// ended): end the request, so that the caller gets ErrNoResponse now
		// rather than at its deadline. After ErrPeerClosed it ended already.
		r.drop(err)
		q.Close()
	}
}

// Clients returns how many clients the service has now (0 once the server
// ended). A server that is about to close can wait for its clients to leave:
// Close releases the responses they have not read yet.
func (r *Responder[Req, Resp]) Clients() int {
	if r.life.err() != nil {
		return 0
	}
	n, _, err := r.svc.Counts()
	if err != nil {
		return 0
	}
	return n
}

// Done is closed when the server has ended; Err says why.
func (r *Responder[Req, Resp]) Done() <-chan struct{} { return r.life.Done() }

// Err is nil while the server is open, then why it ended: ErrClosed after
// Close, or an *Error wrapping the cause of its context.
func (r *Responder[Req, Resp]) Err() error { return r.life.err() }

// Close ends the server: requests not yet answered end without a response, so
// their callers' Calls fail with ErrNoResponse. iceoryx2 then frees the
// server's shared memory, and with it the responses its clients have not read
// yet: close a server once its clients are done (see Clients). A second Close
// returns ErrClosed.
func (r *Responder[Req, Resp]) Close() error { return r.closer.close("server", "close server", r.name) }

func (r *Responder[Req, Resp]) shutdown(reason error, _ bool) error {
	r.life.end(reason, true)
	r.lis.kick()
	r.feeds.stop()
	r.rxMu.Lock() // no receive in progress from here on
	r.mu.Lock()
	open, wakes := r.open, r.wakes
	r.open, r.wakes = nil, nil
	r.mu.Unlock()
	for q := range open {
		q.end() // wakes its caller, which then sees the end
	}
	for _, n := range wakes {
		if n != nil {
			n.Close()
		}
	}
	r.ports.release()
	r.rxMu.Unlock()
	return nil
}

// Request is one request a Responder received, with the means to answer it:
// Reply for a single response, Send for each response of a stream and Close to
// end the stream. A request not answered keeps its caller waiting, so every
// Request ends with Reply or Close. It is safe for use by multiple goroutines.
type Request[Req, Resp any] struct {
	// Value is the request.
	Value Req

	r      *Responder[Req, Resp]
	active *ActiveRequest
	wake   *Notifier // wakes the caller; nil for callers that do not listen
	mu     sync.Mutex
	ended  bool
	buf    []byte
}

// Reply sends v as the response and ends the request. It waits, bounded by
// ctx, while the caller's response buffer is full. Errors: ErrPeerClosed when
// the caller went away (its Call's context ended, or it closed),
// ErrPeerCrashed when the caller's process died while Reply waited for room
// (noticed within a quarter of WithPeerTimeout), ErrClosed when the request
// was already answered or the server closed, ErrMessageTooLarge.
func (q *Request[Req, Resp]) Reply(ctx context.Context, v Resp) error { return q.send(ctx, v, true) }

// Send sends v as one response of a stream; Close ends the stream. Errors as
// for Reply.
func (q *Request[Req, Resp]) Send(ctx context.Context, v Resp) error { return q.send(ctx, v, false) }

// Connected reports whether the caller still waits for responses.
func (q *Request[Req, Resp]) Connected() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return !q.ended && q.active.Connected()
}

// Close ends the request; a caller still waiting for its first response gets
// ErrNoResponse. Closing an ended request returns ErrClosed.
func (q *Request[Req, Resp]) Close() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.ended {
		return &Error{Op: "close request", Name: q.r.name, Kind: ErrClosed}
	}
	q.finish()
	return nil
}

func (q *Request[Req, Resp]) send(ctx context.Context, v Resp, last bool) error {
	op := "send response"
	if last {
		op = "reply"
	}
	if ctx == nil {
		return nilArg(op, q.r.name, "ctx")
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.ended {
		return &Error{Op: op, Name: q.r.name, Kind: ErrClosed, Detail: "the request was answered already or the server closed"}
	}
	msg, err := q.r.enc(q.buf, v)
	if err != nil {
		return &Error{Op: op, Name: q.r.name, Kind: ErrInvalidArgument, Detail: err.Error()}
	}
	if cap(msg) <= 64<<10 {
		q.buf = msg[:0]
	}
	if len(msg) > q.r.cfg.maxMessage {
		return &Error{Op: op, Name: q.r.name, Kind: ErrMessageTooLarge,
			Detail: fmt.Sprintf("response of %d bytes, MaxMessageSize is %d", len(msg), q.r.cfg.maxMessage)}
	}
	wake := q.wake
	if last {
		wake = nil // finish wakes the caller once, for the answer and the end
	}
	retry := rpcWaitRetries
	var waited time.Duration // since the caller's process was last looked at
	for {
		err := q.active.sendNotify(msg, wake, evData)
		if err == nil {
			break
		}
		if errors.Is(err, ErrPeerClosed) {
			q.finish()
			return &Error{Op: op, Name: q.r.name, Kind: ErrPeerClosed, Detail: "the caller went away"}
		}
		if !errors.Is(err, ErrWouldBlock) {
			return err
		}
		// The caller's buffer is full: it frees room as it reads, unless its
		// process died, which iceoryx2 does not tell a server.
		if waited >= q.r.cfg.peerTimeout/4 {
			waited = 0
			if q.r.callerDied(q.active.Origin()) {
				q.finish()
				return &Error{Op: op, Name: q.r.name, Kind: ErrPeerCrashed, Detail: "the caller's process died"}
			}
		}
		if err := q.r.life.pause(ctx, retry); err != nil {
			return err
		}
		waited += retry
		retry = min(2*retry, q.r.cfg.poll)
	}
	if last {
		q.finish()
	}
	return nil
}

// finish ends the request once; held under q.mu. The caller learns of the
// end when it next looks, so it is woken.
func (q *Request[Req, Resp]) finish() {
	q.ended = true
	q.active.Close()
	if q.wake != nil {
		q.wake.Notify(evData)
	}
	q.r.mu.Lock()
	if q.r.open != nil {
		delete(q.r.open, q)
	}
	q.r.mu.Unlock()
	wake(q.r.released)
}

// end is finish for the server's shutdown.
func (q *Request[Req, Resp]) end() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.ended {
		q.ended = true
		q.active.Close()
		if q.wake != nil {
			q.wake.Notify(evData)
		}
	}
}
