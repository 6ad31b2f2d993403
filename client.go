package iox

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Request/response as Go calls: a Caller sends requests to the servers of a
// request/response service and waits for their responses; a Responder (see
// OpenServer) hands the requests to Go code and sends the answers back.
//
// The service itself is a plain iceoryx2 request/response service of [u8] (or
// fixed-type) requests and responses without user headers, so Rust, C++ and
// Python clients and servers of the same iceoryx2 release take part as they
// are. Wake-ups travel on event services of their own: every iox server
// listens on NAME.iox-req, which iox clients notify after each request, and
// every iox client listens on NAME.iox-resp.<client id>, which iox servers
// notify after each response. Peers in other languages do not notify: while
// one is there, the side waiting for it looks every WithPoll interval.
//
// Semantics follow iceoryx2's: every server of the service receives every
// request and may answer it, and a client receives the responses of all of
// them, in the order each server sent its own. Call returns the first response;
// Stream delivers them all. To spread work, run one server with Serve's
// concurrency rather than several servers.
const (
	rpcReqSuffix  = ".iox-req"
	rpcRespSuffix = ".iox-resp."
	rpcIDLen      = 32 // hex digits of a client id
)

// Defaults of the request/response adapters' service settings. A service's
// shared memory grows with MaxClients × MaxServers × MaxActiveRequests² ×
// (ResponseBufferSize + 4) (see rpcMemoryRule); these defaults give a server
// and four clients 64 calls in flight in about 40 MiB, and leave room for
// MaxActiveRequests(64) on ordinary machines.
const (
	rpcMaxActive   = 16 // requests in flight per client (MaxActiveRequests)
	rpcRespBuffer  = 4  // responses a pending call holds unread (ResponseBufferSize)
	rpcMaxClients  = 4
	rpcMaxServers  = 1                // every server gets every request: one server with Serve's workers
	rpcWaitRetries = time.Millisecond // first retry interval of a full server or client
)

// Caller is the client end of a request/response service: Call sends a request
// and waits for the answer, Stream receives every response to one request.
// Many calls may be in flight at once, from any number of goroutines, up to the
// service's MaxActiveRequests; further calls wait for a slot.
type Caller[Req, Resp any] struct {
	name    string
	node    *Node
	cfg     chanConfig
	svc     *RequestResponseService
	client  *Client
	wakeSrv *Notifier // wakes the servers after a request
	lis     *Listener // servers wake this client here
	self    *Notifier // wakes this client's own waiters when a server dies
	reqEv   *EventService
	enc     func([]byte, Req) ([]byte, error)
	dec     Codec[Resp]
	slots   chan struct{}
	bufs    sync.Pool
	calls   sync.Pool // finished calls, reused with their receive buffers
	ports   ports
	life    *life
	closer  closer
	spinMu  sync.Mutex
	spin    spinner

	mu      sync.Mutex
	waiting map[*call]struct{}  // calls parked for a response
	leading bool                // one of them waits in the poller
	polling bool                // ... with the poll interval as its timeout (a server does not notify)
	checked uint64              // the latest listing after which the lead's way of waiting was checked
	ids     []EventID           // the lead's scratch
	watched map[UniqueID]*watch // server nodes whose death this client watches
	holds   map[UniqueID]int    // calls in flight that name each server node (call.servers)
	crashes atomic.Uint64       // server processes seen to die
	// crashed servers whose ports are being removed: until they are gone a
	// request may still go to them (see start)
	removing atomic.Int32
	// the nodes of the servers in the latest listing (see watchServers)
	listedNodes []UniqueID

	listings atomic.Uint64 // listings of the servers begun (watchServers numbers them)
	listed   atomic.Uint64 // the latest listing whose servers are watched

	beforeListing      func() // when set (tests), runs as a listing of the servers begins
	beforeCrashCleanup func() // when set (tests), runs after a crash was counted, before the dead port is removed
	atServerExit       func() // when set (tests), runs first when the process of a watched server is gone
}

// OpenClient opens a client of the request/response service name, whose
// requests are Req values encoded by reqCodec and whose responses are Resp
// values decoded by respCodec (Raw for []byte, Fixed for fixed-layout types).
// ctx bounds the client's life, as for every channel: when it ends, calls in
// flight fail and the client ends. Opening never waits for a server; a Call
// made while there is none waits for one (see Call).
//
// Options: MaxMessageSize bounds requests and responses, WithSpin,
// WithPeerTimeout and WithPoll work as on channels, WithChanCap sizes Stream's
// channel, and the service settings MaxActiveRequests, ResponseBufferSize,
// MaxClients, MaxServers and MaxNodes apply when the client creates the
// service (and are checked against it otherwise: asking for more than the
// service has is refused with ErrIncompatible, naming the setting). Their
// defaults are 16, 4, 4 and 1: each client–server pair then takes about
// 8 MiB of shared memory, and in general about 1 KiB × MaxClients ×
// MaxServers × MaxActiveRequests² × (ResponseBufferSize + 4), so
// MaxActiveRequests(64) takes about 128 MiB per pair.
func OpenClient[Req, Resp any](ctx context.Context, node *Node, name string, reqCodec Codec[Req], respCodec Codec[Resp], opts ...Option) (*Caller[Req, Resp], error) {
	const op = "open client"
	o, err := prepareRPC(ctx, op, name, "client", opts, nodeArg(node), codecArg("request codec", reqCodec), codecArg("response codec", respCodec))
	if err != nil {
		return nil, err
	}
	node, hold, err := node.keep(op, name)
	if err != nil {
		return nil, err
	}
	c := &Caller[Req, Resp]{name: name, node: node, cfg: o.ch, enc: encoder(reqCodec), dec: respCodec, life: newLife(),
		watched: map[UniqueID]*watch{}, holds: map[UniqueID]int{}, waiting: map[*call]struct{}{}, spin: newSpinner(o.ch.spin)}
	c.ports.add(hold) // released last
	if c.svc, err = rpcService(node, name, payloadTypeOf(reqCodec), payloadTypeOf(respCodec), o); err != nil {
		c.ports.release()
		return nil, err
	}
	c.ports.add(c.svc)
	if err := c.open(o); err != nil {
		c.ports.release()
		return nil, err
	}
	c.slots = make(chan struct{}, c.svc.Config().MaxActiveRequests)
	c.closer.watch(ctx, "client", name, c.shutdown)
	return c, nil
}

func (c *Caller[Req, Resp]) open(o options) error {
	var err error
	if c.client, err = c.svc.Client(MaxMessageSize(o.ch.maxMessage)); err != nil {
		return err
	}
	c.ports.add(c.client)
	if c.reqEv, err = rpcEvents(c.node, c.name+rpcReqSuffix, c.svc.Config()); err != nil {
		return err
	}
	c.ports.add(c.reqEv)
	if c.wakeSrv, err = c.reqEv.Notifier(); err != nil {
		return err
	}
	c.ports.add(c.wakeSrv)
	own, err := rpcEvents(c.node, rpcRespName(c.name, c.client.ID()), c.svc.Config())
	if err != nil {
		return err
	}
	c.ports.add(own)
	if c.lis, err = own.Listener(); err != nil {
		return err
	}
	c.ports.add(c.lis)
	if c.self, err = own.Notifier(); err != nil {
		return err
	}
	c.ports.add(c.self)
	return nil
}

// Call sends req and returns the first response. It waits, bounded by ctx,
// while all of the client's request slots are taken, while no server is there
// yet, and while the servers' request buffers are full. Errors:
//   - ErrNoResponse (an *Error): the servers ended the call without answering,
//     for example because the handler failed, panicked or the server closed;
//   - ErrPeerCrashed: every server that had the request died;
//   - ErrMessageTooLarge: req or the response exceeds MaxMessageSize;
//   - the error of ctx; then the server sees that the caller went away.
//
// After the client ended Call returns Err.
func (c *Caller[Req, Resp]) Call(ctx context.Context, req Req) (Resp, error) {
	var zero Resp
	call, err := c.start(ctx, req)
	if err != nil {
		return zero, err
	}
	defer c.finish(call)
	v, ok, err := c.next(ctx, call)
	switch {
	case err != nil:
		return zero, err
	case !ok:
		return zero, c.unanswered(call)
	}
	return v, nil
}

// call is one request in flight.
type call struct {
	pending *PendingResponse
	crashes uint64     // server deaths seen when it was sent
	sent    uint64     // listings of the servers begun when it was sent
	buf     []byte     // receive buffer
	watched bool       // the servers' processes are watched for this call
	servers []UniqueID // the nodes of the servers in a listing begun after it was sent

	// The outcome of the last look into the pending response, by the call's
	// own goroutine or, while it waits, by the lead waiter on its behalf.
	n        int
	got1     bool // a response is in buf[:n]
	live     bool
	err      error
	ready    bool          // something to act on: a response, the end, an error
	wake     chan struct{} // a waiting call is woken here
	pollFunc func() bool
}

// look receives into the call's buffer and records what it found.
func (cl *call) look() bool {
	cl.n, cl.got1, cl.live, cl.err = cl.pending.receive(cl.buf)
	cl.ready = cl.got1 || !cl.live || cl.err != nil
	return cl.ready
}

// start takes a slot and sends req, waiting for a server when there is none.
func (c *Caller[Req, Resp]) start(ctx context.Context, req Req) (*call, error) {
	if ctx == nil {
		return nil, nilArg("call", c.name, "ctx")
	}
	if err := c.life.err(); err != nil {
		return nil, err
	}
	select {
	case c.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-c.life.Done():
		return nil, c.life.err()
	}
	// The select above may take a free slot although ctx or the client
	// ended already: then nothing is sent.
	err := c.life.err()
	if err == nil {
		err = ctx.Err()
	}
	if err != nil {
		<-c.slots
		return nil, err
	}
	bp, _ := c.bufs.Get().(*[]byte)
	if bp == nil {
		bp = new([]byte)
	}
	msg, err := c.enc(*bp, req)
	defer func() {
		if cap(msg) <= 64<<10 {
			*bp = msg[:0]
			c.bufs.Put(bp)
		}
	}()
	if err == nil && len(msg) > c.cfg.maxMessage {
		err = &Error{Op: "call", Name: c.name, Kind: ErrMessageTooLarge,
			Detail: fmt.Sprintf("request of %d bytes, MaxMessageSize is %d", len(msg), c.cfg.maxMessage)}
	}
	if err != nil {
		<-c.slots
		return nil, err
	}
	retry := rpcWaitRetries
	for {
		crashes := c.crashes.Load()
		if c.removing.Load() > 0 {
			// The port of a server whose crash is counted may still be
			// there and take this request: the call counts as sent before
			// that crash, so that it asks whether its servers died (see
			// ended) also once the port is gone before its listing. The
			// watch raises removing before the count, and this reads them
			// the other way round: a count read with removing at zero
			// does not include a crash whose port is still there.
			crashes--
		}
		p, err := c.client.sendNotify(msg, c.wakeSrv, evData)
		if err == nil {
			cl := c.newCall()
			cl.pending, cl.crashes, cl.sent = p, crashes, c.listings.Load()
			return cl, nil
		}
		if !errors.Is(err, ErrNoServer) && !errors.Is(err, ErrWouldBlock) && !errors.Is(err, ErrLimitReached) {
			<-c.slots
			if e := c.life.err(); e != nil {
				return nil, e
			}
			return nil, err
		}
		// No server yet, or the servers' buffers are full: look again soon.
		if err := c.life.pause(ctx, retry); err != nil {
			<-c.slots
			return nil, err
		}
		retry = min(2*retry, c.cfg.poll)
	}
}

// respBuffer is the room a call receives into at first: responses that fit
// come in one look; a larger one grows the buffer (see next).
const respBuffer = 1 << 10

// keptRespBuffer is the largest receive buffer a finished call keeps for reuse.
const keptRespBuffer = 64 << 10

// newCall returns a finished call to reuse, or a new one.
func (c *Caller[Req, Resp]) newCall() *call {
	if cl, _ := c.calls.Get().(*call); cl != nil {
		return cl
	}
	cl := &call{buf: make([]byte, min(respBuffer, c.cfg.maxMessage)), wake: make(chan struct{}, 1)}
	cl.pollFunc = cl.look
	return cl
}

// finish gives the call's slot back; dropping its pending response tells the
// servers that nobody waits for more answers. The call is reused: nothing
// refers to it any more (it left the waiting calls before it finished).
func (c *Caller[Req, Resp]) finish(cl *call) {
	cl.pending.Close()
	if len(cl.servers) > 0 {
		c.letGo(cl.servers)
	}
	<-c.slots
	if cap(cl.buf) > keptRespBuffer {
		return
	}
	*cl = call{buf: cl.buf, wake: cl.wake, pollFunc: cl.pollFunc}
	c.calls.Put(cl)
}

// next returns the call's next response, or ok false at the end of its stream.
func (c *Caller[Req, Resp]) next(ctx context.Context, cl *call) (v Resp, ok bool, err error) {
	c.spinMu.Lock()
	sp := c.spin
	c.spinMu.Unlock()
	defer func() {
		c.spinMu.Lock()
		c.spin = sp
		c.spinMu.Unlock()
	}()
	for {
		if !cl.ready && !cl.look() {
			if err := c.ended(cl); err != nil {
				return v, false, err
			}
			if !sp.spin(cl.pollFunc, c.life.Done(), ctx.Done()) {
				err := c.park(ctx, cl)
				sp.parked()
				if err != nil {
					return v, false, err
				}
				continue
			}
		}
		cl.ready = false
		switch {
		case cl.err != nil:
			if need, ok := bufferNeed(cl.err); ok {
				if need > c.cfg.maxMessage {
					return v, false, &Error{Op: "call", Name: c.name, Kind: ErrMessageTooLarge,
						Detail: fmt.Sprintf("response of %d bytes, MaxMessageSize is %d", need, c.cfg.maxMessage)}
				}
				cl.buf = make([]byte, need)
				continue
			}
			if e := c.life.err(); e != nil {
				return v, false, e
			}
			return v, false, cl.err
		case cl.got1:
			v, err := decodeSafe(c.dec, cl.buf[:cl.n])
			if err != nil {
				return v, false, &Error{Op: "call", Name: c.name, Kind: ErrProtocol, Detail: err.Error()}
			}
			return v, true, nil
		default: // the end of the stream
			return v, false, nil
		}
	}
}

// ended is the error that ends a call still waiting: the client's end, or the
// death of every server after the call was sent.
func (c *Caller[Req, Resp]) ended(cl *call) error {
	if err := c.life.err(); err != nil {
		return err
	}
	if now := c.crashes.Load(); now != cl.crashes {
		if c.serversCrashed(cl) {
			return &Error{Op: "call", Name: c.name, Kind: ErrPeerCrashed, Detail: "the server died"}
		}
		cl.crashes = now // another server is there and has the request too
	}
	return nil
}

// serversCrashed reports, after a server died, whether every server that had
// the call's request died: those of the listing begun after it was sent all
// crashed, or no server is alive. A server that came after the request was
// sent never had it, so its being alive does not keep the call waiting.
func (c *Caller[Req, Resp]) serversCrashed(cl *call) bool {
	some, all := c.crashedOf(cl)
	return some && all || c.liveServers() == 0
}

// crashedOf reports whether some, and whether all, of the servers of the
// call's listing were seen to crash.
func (c *Caller[Req, Resp]) crashedOf(cl *call) (some, all bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	all = true
	for _, node := range cl.servers {
		crashed := c.watched[node] != nil && c.watched[node].crashed
		some, all = some || crashed, all && crashed
	}
	return some, all
}

// park waits until the call has something to act on (cl.ready), a server
// died, or, while a server that never notifies is there, the poll interval
// passed. Of the calls that wait, one at a time (the lead) waits in the
// runtime poller on the client's listener; when it wakes it looks into every
// waiting call's pending response and wakes those that got something, so a
// response wakes the call it belongs to and not every call in flight. A lead
// whose call is done, or whose context ended, hands the lead to another
// waiting call (see leave). A call that finds a server that never notifies
// while the lead waits without a timeout wakes the lead, which then waits
// for at most the poll interval (that server may have come after the lead
// began, and answer this call).
func (c *Caller[Req, Resp]) park(ctx context.Context, cl *call) error {
	first := !cl.watched
	if first {
		cl.watched = true
		if c.listed.Load() <= cl.sent { // no listing began after it was sent
			c.watchServers()
		}
	}
	c.mu.Lock()
	if first {
		cl.servers = c.listedNodes
		for _, node := range cl.servers {
			c.holds[node]++ // watched until the call finishes (see letGo)
		}
	}
	c.waiting[cl] = struct{}{}
	cl.look() // what arrived before it was there to be looked at by a lead
	c.mu.Unlock()
	defer c.leave(cl)
	for {
		c.mu.Lock()
		if cl.ready || c.crashes.Load() != cl.crashes {
			c.mu.Unlock()
			return nil
		}
		if !c.leading {
			c.leading = true
			c.mu.Unlock()
			if err := c.lead(ctx); err != nil {
				return err
			}
			continue
		}
		// A server that does not notify may have come after the lead began
		// to wait without a timeout, and answer this call: then the lead
		// wakes and waits again, looking every poll interval. Only a server
		// in a listing that ended since the last check can be one (the
		// call's own listing began after it was sent), so calls that share
		// a listing check once.
		listed := c.listed.Load()
		check := !c.polling && listed > c.checked
		if check {
			c.checked = listed
		}
		c.mu.Unlock()
		if check && c.foreignServers() {
			c.self.Notify(evData)
		}
		select {
		case <-cl.wake:
		case <-ctx.Done():
			return ctx.Err()
		case <-c.life.Done():
			return c.life.err()
		}
	}
}

// lead waits once in the poller, then looks into every waiting call and wakes
// those that are ready (all of them after a server died), and gives up the lead.
func (c *Caller[Req, Resp]) lead(ctx context.Context) error {
	wctx, cancel := ctx, context.CancelFunc(func() {})
	c.mu.Lock()
	c.checked = c.listed.Load() // servers listed before are looked at now
	c.mu.Unlock()
	if c.foreignServers() {
		wctx, cancel = context.WithTimeout(ctx, c.cfg.poll)
		c.mu.Lock()
		c.polling = true
		c.mu.Unlock()
	}
	ids, err := c.lis.waitInto(wctx, c.life.Done(), c.ids[:0])
	c.ids = ids[:0]
	cancel()
	c.mu.Lock()
	c.leading, c.polling = false, false
	crashed := c.crashes.Load()
	for w := range c.waiting {
		if w.ready || w.look() || w.crashes != crashed {
			wake(w.wake)
		}
	}
	c.mu.Unlock()
	// A lead whose own call still waits takes the lead again; one that leaves
	// hands it on in leave.
	return c.life.waited(ctx, err)
}

// leave withdraws a call from the waiting ones. While nobody leads, it wakes
// one of the calls still waiting, which takes the lead: whichever way a call
// leaves (answered, its context ended, a server died), including a lead and a
// call that was woken to take the lead, the calls that stay are never left
// without a lead to wake them.
func (c *Caller[Req, Resp]) leave(cl *call) {
	c.mu.Lock()
	delete(c.waiting, cl)
	if !c.leading {
		for w := range c.waiting {
			wake(w.wake)
			break
		}
	}
	c.mu.Unlock()
	select { // a wake meant for this call is not needed any more
	case <-cl.wake:
	default:
	}
}

// unanswered is the error of a call whose stream ended without a response.
// The stream ends once every server that had the request is gone, so one of
// them seen to crash makes it a crash, also while a server that came after
// the request was sent (and so is in the call's listing) is alive.
func (c *Caller[Req, Resp]) unanswered(cl *call) error {
	if err := c.ended(cl); err != nil {
		return err
	}
	if some, _ := c.crashedOf(cl); some {
		return &Error{Op: "call", Name: c.name, Kind: ErrPeerCrashed, Detail: "the server died"}
	}
	return &Error{Op: "call", Name: c.name, Kind: ErrNoResponse,
		Detail: "the server ended the call without a response (its handler failed or it closed)"}
}

// foreignServers reports whether a server is there that does not notify: one
// without a listener on the request events.
func (c *Caller[Req, Resp]) foreignServers() bool {
	_, servers, err := c.svc.Counts()
	if err != nil {
		return true
	}
	_, listeners, err := c.reqEv.Counts()
	return err != nil || servers > listeners
}

// watchServers watches the processes of the servers there now, so that calls
// fail quickly when they die.
//
// A call that waits needs a listing begun after it was sent, which names
// every server that got its request and is still there: their number alone
// does not tell who they are (a server that closed while its process lives
// on and one that came in another process leave it the same). Calls that
// wait at the same time share one listing; its servers' nodes are kept
// (listedNodes) to tell whether every server that had a call's request died.
//
// A node stays watched while it is in the latest listing or a call in flight
// names it; then the client forgets it (see forgetServers), so that a client
// that outlives many servers watches only those still there.
func (c *Caller[Req, Resp]) watchServers() {
	id := c.listings.Add(1)
	if c.beforeListing != nil {
		c.beforeListing()
	}
	crashedServers.listing(c.name, 1)
	defer crashedServers.listing(c.name, -1) // once the servers listed are watched
	servers, err := c.svc.Servers()
	if err != nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.life.err() != nil {
		return
	}
	defer func() {
		if c.listed.Load() < id {
			c.listed.Store(id) // under mu: listings end one at a time
			c.listedNodes = make([]UniqueID, 0, len(servers))
			for _, s := range servers {
				c.listedNodes = append(c.listedNodes, s.Node)
			}
			c.forgetServers()
		}
	}()
	for _, s := range servers {
		if _, ok := c.watched[s.Node]; ok || s.Node == (UniqueID{}) {
			continue
		}
		node, w := s.Node, &watch{}
		crashedServers.watch(c.name, node, w, c)
		w.stop = watchNode(c.node.lib, node, c.cfg.peerTimeout/4, func() {
			if c.atServerExit != nil {
				c.atServerExit()
			}
			c.mu.Lock()
			mine := c.watched[node] == w && !w.ended
			w.ended = true // the record below is this call's to let go of
			c.mu.Unlock()
			if !mine {
				return // forgotten meanwhile: no call asks about it
			}
			crashed, others := crashedServers.died(c.name, node, c.serving(node), w)
			var seen []serverWatch
			if crashed {
				// Counted before the cleanup removes the server's port, by
				// this client and by the others of this process that watch
				// the node (whose own watches may fire later): a call or
				// stream that sees its end then sees the crash too, rather
				// than an end without a response.
				for _, o := range append(others, serverWatch{w, c}) {
					if o.client.crashSeen(node, o.w) {
						seen = append(seen, o)
					}
				}
				if c.beforeCrashCleanup != nil {
					c.beforeCrashCleanup()
				}
			}
			c.svc.CleanupDeadNodes()
			for _, o := range seen {
				o.client.crashRemoved()
			}
			crashedServers.forget(c.name, node, w) // after the cleanup: see crashedServers
			// The waiting calls look again: those of a server that
			// crashed fail, those of one that closed first see their end.
			c.self.Notify(evDead)
		})
		c.watched[node] = w
	}
}

// watch is a client's watch of one server node's process.
type watch struct {
	stop    func()
	ended   bool // the process ended or the watch stopped: the client let go of its record in crashedServers, or is letting go
	crashed bool // the process died while its server was in the service (counted in crashes)
}

// crashSeen counts the crash of node, the server node that w watches, once,
// and marks the removal of its port under way (see start); it reports
// whether it did, and then crashRemoved must follow once the port is gone.
// A watch the client let go of counts nothing: no call asks about it.
func (c *Caller[Req, Resp]) crashSeen(node UniqueID, w *watch) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.watched[node] != w {
		return false
	}
	c.removing.Add(1) // before the count: see start
	if !w.crashed {
		w.crashed = true
		c.crashes.Add(1)
	}
	return true
}

// crashRemoved follows crashSeen once the dead server's port is gone; the
// waiting calls look again.
func (c *Caller[Req, Resp]) crashRemoved() {
	c.removing.Add(-1)
	c.self.Notify(evDead)
}

// forgetServers stops watching the server nodes that are not in the latest
// listing (whose nodes the next call to wait takes) and that no call in
// flight names. Under mu.
func (c *Caller[Req, Resp]) forgetServers() {
	for node, w := range c.watched {
		if c.holds[node] == 0 && !slices.Contains(c.listedNodes, node) {
			c.unwatch(node, w)
		}
	}
}

// letGo is the end of a call that named the server nodes of servers: a node
// that no other call names, and that is not in the latest listing, is
// forgotten.
func (c *Caller[Req, Resp]) letGo(servers []UniqueID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, node := range servers {
		if c.holds[node]--; c.holds[node] > 0 {
			continue
		}
		delete(c.holds, node)
		if w := c.watched[node]; w != nil && !slices.Contains(c.listedNodes, node) {
			c.unwatch(node, w)
		}
	}
}

// unwatch stops watching node and lets go of its record. Under mu.
func (c *Caller[Req, Resp]) unwatch(node UniqueID, w *watch) {
	delete(c.watched, node)
	w.stop()
	if !w.ended {
		w.ended = true
		crashedServers.forget(c.name, node, w)
	}
}

// crashedServers is what the clients of this process know of the processes
// of their servers, per service: the server nodes they watch, and those whose
// process died while their server was still in the service. The first client
// to see such a death removes the server's port; the others learn of the
// crash here, and the first to see it counts it in each of them before it
// removes the port. A node's record lives while a client watches it, and while a
// client lists the service's servers: a listing begun before the port was
// removed may name the node, and its client watches the node only after it
// is listed. So the records are bounded by the servers alive and the
// clients' calls in flight.
var crashedServers = serverRecords{services: map[string]*serviceRecords{}}

type serverRecords struct {
	mu       sync.Mutex
	services map[string]*serviceRecords
}

type serviceRecords struct {
	listings int // listings of its servers under way
	nodes    map[UniqueID]*serverRecord
}

type serverRecord struct {
	watchers map[*watch]serverWatcher // the clients that watch the node, by their watch
	crashed  bool                     // its process died while its server was in the service
}

// serverWatcher is a client that watches server nodes: the first client to
// see a crash counts it in the others (see crashedServers).
type serverWatcher interface {
	crashSeen(node UniqueID, w *watch) bool
	crashRemoved()
}

// serverWatch is one client's watch of a server node.
type serverWatch struct {
	w      *watch
	client serverWatcher
}

// at returns the records of service, made on first use. Under mu.
func (r *serverRecords) at(service string) *serviceRecords {
	s := r.services[service]
	if s == nil {
		s = &serviceRecords{nodes: map[UniqueID]*serverRecord{}}
		r.services[service] = s
	}
	return s
}

// drop removes the records that no client needs any more. Under mu.
func (r *serverRecords) drop(service string, s *serviceRecords) {
	if s.listings > 0 {
		return
	}
	for node, rec := range s.nodes {
		if len(rec.watchers) == 0 {
			delete(s.nodes, node)
		}
	}
	if len(s.nodes) == 0 {
		delete(r.services, service)
	}
}

// listing counts a listing of service's servers that begins (+1) or ends (-1).
func (r *serverRecords) listing(service string, delta int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.at(service)
	s.listings += delta
	r.drop(service, s)
}

// watch records client's watch w of node, a server of service.
func (r *serverRecords) watch(service string, node UniqueID, w *watch, client serverWatcher) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.at(service)
	rec := s.nodes[node]
	if rec == nil {
		rec = &serverRecord{watchers: map[*watch]serverWatcher{}}
		s.nodes[node] = rec
	}
	rec.watchers[w] = client
}

// forget is the end of the watch w of node.
func (r *serverRecords) forget(service string, node UniqueID, w *watch) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.at(service)
	if rec := s.nodes[node]; rec != nil {
		delete(rec.watchers, w)
	}
	r.drop(service, s)
}

// died records that node's process died, with its server still in the
// service when serving, and reports whether it crashed so: as the client of
// the watch self found, or as another found before it removed the server's
// port. With a crash it returns the other clients' watches of the node.
func (r *serverRecords) died(service string, node UniqueID, serving bool, self *watch) (bool, []serverWatch) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.services[service]
	if s == nil || s.nodes[node] == nil {
		return serving, nil // not watched: nobody else can tell
	}
	rec := s.nodes[node]
	rec.crashed = rec.crashed || serving
	if !rec.crashed {
		return false, nil
	}
	var others []serverWatch
	for w, client := range rec.watchers {
		if w != self {
			others = append(others, serverWatch{w, client})
		}
	}
	return true, others
}

// serving reports whether a server of the node is still in the service, as
// one is after its process died with it open. A server that closed, and then
// its process ended, is no crash: its calls ended without a response when it
// closed, however late they see it. Where the listing fails, it says yes.
//
// A client in another process may have removed a crashed server's port
// already; then the calls waiting here see their stream end and fail with
// ErrNoResponse rather than ErrPeerCrashed.
func (c *Caller[Req, Resp]) serving(node UniqueID) bool {
	servers, err := c.svc.Servers()
	if err != nil {
		return true
	}
	for _, s := range servers {
		if s.Node == node {
			return true
		}
	}
	return false
}

// liveServers counts the servers whose process is alive.
func (c *Caller[Req, Resp]) liveServers() int {
	c.svc.CleanupDeadNodes()
	_, n, err := c.svc.Counts()
	if err != nil {
		return 0
	}
	return n
}

// Stream sends req and returns the responses as they come: every server's, in
// the order each sent its own. It waits as Call does before the request is
// sent. The stream's channel closes at its end; Err then says why.
func (c *Caller[Req, Resp]) Stream(ctx context.Context, req Req) (*Stream[Resp], error) {
	cl, err := c.start(ctx, req)
	if err != nil {
		return nil, err
	}
	s := &Stream[Resp]{c: make(chan Resp, c.cfg.chanCap), done: make(chan struct{})}
	sctx, cancel := context.WithCancel(ctx)
	s.cancel = cancel
	go func() {
		s.err = c.pump(sctx, cl, s.c)
		cancel()
		c.finish(cl)
		close(s.done) // Err is set before In closes
		close(s.c)
	}()
	return s, nil
}

// pump delivers the call's responses on out until its stream ends, and
// returns why it ended.
func (c *Caller[Req, Resp]) pump(ctx context.Context, cl *call, out chan<- Resp) error {
	for {
		v, ok, err := c.next(ctx, cl)
		if err != nil || !ok {
			if err == nil && c.crashes.Load() != cl.crashes && c.serversCrashed(cl) {
				err = &Error{Op: "stream", Name: c.name, Kind: ErrPeerCrashed, Detail: "the server died"}
			}
			return err
		}
		select {
		case out <- v:
		case <-ctx.Done():
			return ctx.Err()
		case <-c.life.Done():
			return c.life.err()
		}
	}
}

// Done is closed when the client has ended; Err says why.
func (c *Caller[Req, Resp]) Done() <-chan struct{} { return c.life.Done() }

// Err is nil while the client is open, then why it ended: ErrClosed after
// Close, or an *Error wrapping the cause of its context.
func (c *Caller[Req, Resp]) Err() error { return c.life.err() }

// Close ends the client: calls in flight fail with ErrClosed and the servers
// see their callers go away. A second Close returns ErrClosed.
func (c *Caller[Req, Resp]) Close() error { return c.closer.close("client", "close client", c.name) }

func (c *Caller[Req, Resp]) shutdown(reason error, _ bool) error {
	c.life.end(reason, true)
	c.lis.kick()
	// Calls in flight see the end and give their slots back.
	for i := 0; i < cap(c.slots); i++ {
		c.slots <- struct{}{}
	}
	c.mu.Lock()
	for node, w := range c.watched {
		c.unwatch(node, w)
	}
	c.watched = nil
	c.mu.Unlock()
	c.ports.release()
	return nil
}

// Stream is the responses to one request (see Caller.Stream).
type Stream[Resp any] struct {
	c      chan Resp
	done   chan struct{}
	cancel context.CancelFunc
	err    error
}

// In delivers the responses and is closed at the end of the stream.
func (s *Stream[Resp]) In() <-chan Resp { return s.c }

// Err is nil while the stream goes on, then why it ended: nil at its normal
// end (also when the server ended it without a response: a stream may have
// none; Call tells that apart as ErrNoResponse), ErrPeerCrashed, the
// context's error (context.Canceled after Close), or the client's end. It is
// set before In closes.
func (s *Stream[Resp]) Err() error {
	select {
	case <-s.done:
		return s.err
	default:
		return nil
	}
}

// Close stops receiving: the servers see that the caller went away. It returns
// once the stream has ended.
func (s *Stream[Resp]) Close() error {
	s.cancel()
	for range s.c {
	}
	<-s.done
	return nil
}
