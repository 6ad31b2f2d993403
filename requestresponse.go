package iox

import (
	"fmt"
	"math"

	"github.com/iox-go/iox/internal/ffi"
)

// Request-response: a Client sends a request and gets a PendingResponse back,
// through which any number of responses stream in; a Server receives the
// request as an ActiveRequest and sends the responses through it. The server
// ends the stream by closing the ActiveRequest; the client gives up by closing
// the PendingResponse, which the server sees as Connected() == false.
//
// A request goes to every server of the service, and each of them may answer.
// Requests and responses are plain iceoryx2 messages ([u8], or one fixed-size
// type each, with no user header), so Rust, C++ and Python peers with
// `request_response::<[u8], [u8]>()` or `Slice[ctypes.c_uint8]` share the
// service.
//
// Every PendingResponse and ActiveRequest holds shared memory until it is
// closed, and counts against MaxActiveRequests until then: close each one.

// checkReqResCounts refuses request-response counts outside 1..MaxServiceCount
// before the native library sees them.
func (c *serviceConfig) checkReqResCounts() error {
	for _, b := range []struct {
		name string
		bit  uint64
		v    uint64
	}{
		{"MaxClients", ffi.RRMaxClients, c.rr.MaxClients},
		{"MaxServers", ffi.RRMaxServers, c.rr.MaxServers},
		{"MaxNodes", ffi.RRMaxNodes, c.rr.MaxNodes},
		{"MaxActiveRequests", ffi.RRMaxActiveRequests, c.rr.MaxActiveRequests},
		{"ResponseBufferSize", ffi.RRResponseBuffer, c.rr.ResponseBuffer},
		{"MaxBorrowedResponses", ffi.RRMaxBorrowedResponses, c.rr.MaxBorrowedResponses},
	} {
		if v := int64(b.v); c.rr.Set&b.bit != 0 && (v < 1 || v > MaxServiceCount) {
			return fmt.Errorf("%s %d is outside 1..%d", b.name, v, MaxServiceCount)
		}
	}
	return nil
}

// payloadOpts checks a payload type and gives its native form.
func payloadOpts(what string, p PayloadType) (ffi.PayloadOpts, error) {
	if p.Name == "" || p.Size <= 0 || p.Align <= 0 || p.Align&(p.Align-1) != 0 {
		return ffi.PayloadOpts{}, fmt.Errorf("%s type %+v", what, p)
	}
	if p.Align > maxAlign || uint64(p.Size) > math.MaxUint32 {
		return ffi.PayloadOpts{}, fmt.Errorf("%s type %+v: Size at most %d, Align at most %d", what, p, uint64(math.MaxUint32), maxAlign)
	}
	o := ffi.PayloadOpts{Size: uint64(p.Size), Alignment: uint64(p.Align)}
	if p.Fixed {
		o.Variant = 1
	}
	return o, nil
}

// RequestResponseService is an open request-response service: a name, request
// and response types and settings shared by every process that opens it. It
// makes Clients and Servers.
type RequestResponseService struct {
	lib      *ffi.Lib
	ref      ref
	name     string
	request  PayloadType
	response PayloadType
	config   ffi.ReqResConfig
}

// RequestResponse opens or creates (see OpenOnly, CreateOnly) the
// request-response service name. Its options are MaxClients, MaxServers,
// MaxNodes, MaxActiveRequests, ResponseBufferSize, MaxBorrowedResponses,
// FireAndForget, SafeOverflow, WithRequestType and WithResponseType; when the
// service is opened, each one given must be satisfied by it (ErrIncompatible,
// or ErrIncompatibleType for the types). A request-response service may share
// its name with a publish-subscribe or event service.
func (n *Node) RequestResponse(name string, opts ...Option) (*RequestResponseService, error) {
	const op = "open request-response"
	o, err := applyOptions(op, name, "request-response service", reqResOpts, opts)
	if err != nil {
		return nil, err
	}
	c := o.svc
	if err := c.checkReqResCounts(); err != nil {
		return nil, &Error{Op: op, Name: name, Kind: ErrInvalidArgument, Detail: err.Error()}
	}
	if c.request.Name == "" && c.request.Size == 0 {
		c.request = Bytes
	}
	if c.reply.Name == "" && c.reply.Size == 0 {
		c.reply = Bytes
	}
	if c.rr.Request, err = payloadOpts("request", c.request); err == nil {
		c.rr.Response, err = payloadOpts("response", c.reply)
	}
	if err != nil {
		return nil, &Error{Op: op, Name: name, Kind: ErrInvalidArgument, Detail: err.Error()}
	}
	nh, err := n.acquireNode(op, name)
	if err != nil {
		return nil, err
	}
	defer n.ref.release()
	var eb ffi.ErrBuf
	h, st := n.lib.ReqResOpen(nh, name, c.mode, &c.rr, c.request.Name, c.reply.Name, &eb)
	if st == ffi.EBusy && n.removeStale(nh, name, 2) {
		eb = ffi.ErrBuf{}
		h, st = n.lib.ReqResOpen(nh, name, c.mode, &c.rr, c.request.Name, c.reply.Name, &eb)
	}
	if st != ffi.OK {
		return nil, statusError(n.lib, op, name, st, &eb)
	}
	s := &RequestResponseService{lib: n.lib, name: name, request: c.request, response: c.reply}
	s.ref.h = h
	s.config, _ = n.lib.ReqResConfigOf(h)
	return s, nil
}

// Name returns the service name.
func (s *RequestResponseService) Name() string { return s.name }

// RequestResponseConfig is the settings a request-response service has: those
// it was created with, by whichever process created it.
type RequestResponseConfig struct {
	MaxClients, MaxServers, MaxNodes int
	MaxActiveRequests                int  // requests one client may have in flight
	ResponseBufferSize               int  // unread responses a client holds per request and server
	MaxBorrowedResponses             int  // responses a client may hold borrowed per request
	MaxLoanedRequests                int  // requests a client may hold loaned at once
	FireAndForget                    bool // servers also get requests whose client gave up
	SafeOverflowRequests             bool // a full request buffer loses its oldest request
	SafeOverflowResponses            bool // a full response buffer loses its oldest response
	RequestType, ResponseType        PayloadType
	// The user headers requests and responses carry besides their payload:
	// Name "()" and Size 0 when there is none.
	RequestHeader, ResponseHeader PayloadType
}

// Config returns the settings in force.
func (s *RequestResponseService) Config() RequestResponseConfig {
	c := s.config
	typ := func(p PayloadType, o ffi.PayloadOpts) PayloadType {
		return PayloadType{Name: p.Name, Size: int(o.Size), Align: int(o.Alignment), Fixed: o.Variant != 0}
	}
	return RequestResponseConfig{
		MaxClients: int(c.MaxClients), MaxServers: int(c.MaxServers), MaxNodes: int(c.MaxNodes),
		MaxActiveRequests: int(c.MaxActiveRequests), ResponseBufferSize: int(c.ResponseBuffer),
		MaxBorrowedResponses: int(c.MaxBorrowedResponses), MaxLoanedRequests: int(c.MaxLoanedRequests),
		FireAndForget: c.FireAndForget != 0, SafeOverflowRequests: c.SafeOverflowRequests != 0,
		SafeOverflowResponses: c.SafeOverflowResponses != 0,
		RequestType:           typ(s.request, c.Request), ResponseType: typ(s.response, c.Response),
		// iox opens request-response services with the plain "()" header only.
		RequestHeader: noHeader, ResponseHeader: noHeader,
	}
}

// noHeader is the user header type of services without one.
var noHeader = PayloadType{Name: "()", Size: 0, Align: 1, Fixed: true}

// Counts returns how many clients and servers are connected now (a crashed
// process counts until dead nodes are cleaned up).
func (s *RequestResponseService) Counts() (clients, servers int, err error) {
	h, ok := s.ref.acquire()
	if !ok {
		return 0, 0, closedError("counts", s.name)
	}
	defer s.ref.release()
	c, v, st := s.lib.ReqResCounts(h)
	if st != ffi.OK {
		return 0, 0, statusError(s.lib, "counts", s.name, st, nil)
	}
	return int(c), int(v), nil
}

// Clients lists the clients connected to the service now.
func (s *RequestResponseService) Clients() ([]PortInfo, error) { return s.ports("clients", 0) }

// Servers lists the servers connected to the service now.
func (s *RequestResponseService) Servers() ([]PortInfo, error) { return s.ports("servers", 1) }

func (s *RequestResponseService) ports(op string, which int) ([]PortInfo, error) {
	return listPorts(&s.ref, s.lib, op, s.name, which, s.lib.ReqResList)
}

// CleanupDeadNodes removes the ports of crashed processes from this service and
// returns how many nodes were cleaned up.
func (s *RequestResponseService) CleanupDeadNodes() (int, error) {
	return cleanupDead(&s.ref, s.lib, s.name, s.lib.ReqResCleanupDead)
}

// Close releases the service handle; clients and servers made from it stay usable.
func (s *RequestResponseService) Close() error {
	if s.ref.close(s.lib.ReqResDrop) != nil {
		return closedError("close request-response", s.name)
	}
	return nil
}

// messageShape bounds the messages a port sends.
type messageShape struct {
	max, elem int
	fixed     bool
}

func (m messageShape) check(lib *ffi.Lib, op, name string, n int) error {
	if n > m.max {
		return &Error{Op: op, Name: name, Kind: ErrMessageTooLarge, Detail: fmt.Sprintf("%d bytes, at most %d", n, m.max)}
	}
	if c := shmCapacity(lib); n > c {
		return &Error{Op: op, Name: name, Kind: ErrOutOfMemory,
			Detail: fmt.Sprintf("%d bytes do not fit in shared memory (%d bytes)", n, c)}
	}
	if n%m.elem != 0 || (m.fixed && n != m.elem) {
		return &Error{Op: op, Name: name, Kind: ErrInvalidArgument,
			Detail: fmt.Sprintf("%d bytes do not fit the payload type's element size %d", n, m.elem)}
	}
	return nil
}

// portConfig applies the Options a Client or Server takes for
// messages of type p.
func portConfig(op, name, what string, allowed optSet, p PayloadType, opts []Option) (publisherConfig, messageShape, error) {
	o, err := applyOptions(op, name, what, allowed, opts)
	if err != nil {
		return o.pub, messageShape{}, err
	}
	c := o.pub
	if c.maxSize < 0 {
		return c, messageShape{}, &Error{Op: op, Name: name, Kind: ErrInvalidArgument, Detail: "negative MaxMessageSize"}
	}
	if err := c.check(); err != nil {
		return c, messageShape{}, &Error{Op: op, Name: name, Kind: ErrInvalidArgument, Detail: err.Error()}
	}
	if p.Fixed {
		c.opts.InitialMaxLen = uint64(p.Size)
		c.maxSize = p.Size
	}
	c.opts.InitialMaxLen = min(c.opts.InitialMaxLen, uint64(max(c.maxSize, 1)))
	return c, messageShape{max: c.maxSize, elem: p.Size, fixed: p.Fixed}, nil
}

// Client sends requests to the servers of a request-response service. It is
// safe for use by multiple goroutines.
type Client struct {
	lib  *ffi.Lib
	ref  ref
	name string
	id   UniqueID
	msg  messageShape
	// Errors a sender retries on, made once so that a retry allocates nothing.
	full, busy, none error
}

// Client creates a client port. It takes MaxMessageSize and InitialMessageSize
// for its requests, and FailWhenFull's spin: a Send to a server whose request
// buffer is full (on a service without SafeOverflow) retries that often, then
// fails with ErrWouldBlock; without FailWhenFull it fails at once. MaxLoans does
// not apply (a Send holds one request only while it runs).
func (s *RequestResponseService) Client(opts ...Option) (*Client, error) {
	const op = "create client"
	c, msg, err := portConfig(op, s.name, "client", clientOpts, s.request, opts)
	if err != nil {
		return nil, err
	}
	if c.opts.MaxLoaned != 0 {
		return nil, &Error{Op: op, Name: s.name, Kind: ErrInvalidArgument,
			Detail: "MaxLoans does not apply to a client: a Send loans one request only while it runs"}
	}
	o := ffi.ClientOpts{InitialMaxLen: c.opts.InitialMaxLen, Allocation: c.opts.Allocation, Spin: c.opts.Spin}
	h, ok := s.ref.acquire()
	if !ok {
		return nil, closedError(op, s.name)
	}
	defer s.ref.release()
	var eb ffi.ErrBuf
	ch, st := s.lib.ClientCreate(h, &o, &eb)
	if st != ffi.OK {
		return nil, statusError(s.lib, op, s.name, st, &eb)
	}
	lo, hi, _ := s.lib.ClientID(ch)
	cl := &Client{lib: s.lib, name: s.name, id: UniqueID{lo, hi}, msg: msg,
		full: &Error{Op: "send request", Name: s.name, Kind: ErrWouldBlock},
		busy: &Error{Op: "send request", Name: s.name, Kind: ErrLimitReached,
			Detail: fmt.Sprintf("the client has MaxActiveRequests (%d) pending responses open", s.config.MaxActiveRequests)},
		none: &Error{Op: "send request", Name: s.name, Kind: ErrNoServer}}
	cl.ref.h = ch
	return cl, nil
}

// ID returns the client's port id: the origin its requests carry to servers.
func (c *Client) ID() UniqueID { return c.id }

// Send copies req into shared memory and sends it to every server in one
// native call. It returns the PendingResponse through which the responses
// come; close it when done. Send fails with ErrLimitReached while the client
// has MaxActiveRequests PendingResponses open, with ErrWouldBlock when a
// server's request buffer is full (see Client), with ErrNoServer when no
// server is there, and with ErrMessageTooLarge for a request over
// MaxMessageSize; in each case nothing was sent.
func (c *Client) Send(req []byte) (*PendingResponse, error) { return c.sendNotify(req, nil, 0) }

// sendNotify is Send that also notifies id on ntf (when not nil): a call's whole
// send in one native call.
func (c *Client) sendNotify(req []byte, ntf *Notifier, id EventID) (*PendingResponse, error) {
	if err := c.msg.check(c.lib, "send request", c.name, len(req)); err != nil {
		return nil, err
	}
	h, ok := c.ref.acquire()
	if !ok {
		return nil, closedError("send request", c.name)
	}
	var nh ffi.Handle
	if ntf != nil {
		if nh, ok = ntf.ref.acquire(); !ok {
			c.ref.release()
			return nil, closedError("send request", c.name)
		}
	}
	ph, st := c.lib.ClientSendNotify(h, req, nh, uint64(id))
	if ntf != nil {
		ntf.ref.release()
	}
	c.ref.release()
	switch st {
	case ffi.OK:
	case ffi.EWouldBlock:
		return nil, c.full
	case ffi.ELimitReached:
		return nil, c.busy
	case ffi.EDisconnected:
		return nil, c.none
	default:
		return nil, statusError(c.lib, "send request", c.name, st, nil)
	}
	p := &PendingResponse{lib: c.lib, name: c.name}
	p.ref.h = ph
	return p, nil
}

// Close releases the client. Its PendingResponses stay usable. A second Close
// returns ErrClosed.
func (c *Client) Close() error {
	if c.ref.close(c.lib.ClientDrop) != nil {
		return closedError("close client", c.name)
	}
	return nil
}

// PendingResponse is the client's end of one request: the responses of every
// server that received it arrive here, in the order each server sent them. It
// is safe for use by multiple goroutines.
type PendingResponse struct {
	lib  *ffi.Lib
	ref  ref
	name string
}

// TryReceive copies the next response into buf without waiting. ok is false
// when no response is waiting. When buf is too small the response stays queued
// and the error is a *BufferTooSmallError (errors.Is ErrBufferTooSmall) saying
// how much it needs.
func (p *PendingResponse) TryReceive(buf []byte) (n int, ok bool, err error) {
	n, ok, _, err = p.receive(buf)
	return n, ok, err
}

// receive is TryReceive that also reports, in the same native call, whether
// more may come: live is false once every server ended the stream (or left)
// and nothing is left to receive.
func (p *PendingResponse) receive(buf []byte) (n int, ok, live bool, err error) {
	h, open := p.ref.acquire()
	if !open {
		return 0, false, false, closedError("receive response", p.name)
	}
	k, n, live, st := p.lib.PendingReceiveOne(h, buf)
	p.ref.release()
	switch {
	case st == ffi.EBufferTooSmall:
		return 0, false, true, &BufferTooSmallError{Need: n}
	case st != ffi.OK:
		return 0, false, live, statusError(p.lib, "receive response", p.name, st, nil)
	case k == 0:
		return 0, false, live, nil
	}
	return n, true, live, nil
}

// ReceiveBatch copies up to the batch's capacity of waiting responses in one
// native call and returns how many it got (0 when none waits).
func (p *PendingResponse) ReceiveBatch(b *Batch) (int, error) {
	if b == nil {
		return 0, nilArg("receive", p.name, "batch")
	}
	k, _, err := p.receiveBatch(b)
	return k, err
}

// receiveBatch is ReceiveBatch that also reports whether more may come (see receive).
func (p *PendingResponse) receiveBatch(b *Batch) (int, bool, error) {
	b.n = 0
	h, open := p.ref.acquire()
	if !open {
		return 0, false, closedError("receive response", p.name)
	}
	k, live, st := p.lib.PendingReceive(h, b.buf, b.lens)
	if st == ffi.EBufferTooSmall {
		need := int(b.lens[0])
		if b.limit > 0 && need > b.limit {
			// drop it where it is: the response never reaches Go memory
			p.lib.PendingSkip(h)
			p.ref.release()
			return 0, true, &Error{Op: "receive response", Name: p.name, Kind: ErrMessageTooLarge,
				Detail: fmt.Sprintf("a response of %d bytes arrived, at most %d accepted; it was dropped", need, b.limit)}
		}
		if b.grow != nil {
			b.buf = b.grow(need)
		} else {
			b.buf = make([]byte, need)
		}
		k, live, st = p.lib.PendingReceive(h, b.buf, b.lens)
	}
	p.ref.release()
	if st != ffi.OK {
		return 0, live, statusError(p.lib, "receive response", p.name, st, nil)
	}
	off := 0
	for i := 0; i < k; i++ {
		b.offs[i] = off
		off += int(b.lens[i])
	}
	b.offs[k] = off
	b.n = k
	return k, live, nil
}

// Connected reports whether more responses may come: a server still has the
// request open, or a response is waiting. It is false once every server ended
// the stream (or left) and everything was received, and after Close.
func (p *PendingResponse) Connected() bool {
	h, open := p.ref.acquire()
	if !open {
		return false
	}
	live, st := p.lib.PendingConnected(h)
	p.ref.release()
	return st == ffi.OK && live
}

// Close gives up the request: servers see their ActiveRequest disconnected,
// and responses not yet received are dropped. A second Close returns ErrClosed.
func (p *PendingResponse) Close() error {
	if p.ref.close(p.lib.PendingDrop) != nil {
		return closedError("close pending response", p.name)
	}
	return nil
}

// Server receives the requests of a request-response service and answers each
// through its ActiveRequest. It is safe for use by multiple goroutines.
type Server struct {
	lib   *ffi.Lib
	ref   ref
	name  string
	reply *replyShape
}

// replyShape is what a server's ActiveRequests share.
type replyShape struct {
	lib  *ffi.Lib
	name string
	msg  messageShape
	// Errors a responder retries on or stops at, made once.
	full, gone error
}

// Server creates a server port. It takes MaxMessageSize and InitialMessageSize
// for its responses, MaxLoans (responses loaned at once per request; 0 =
// iceoryx2's default) and FailWhenFull's spin: a response to a client whose
// buffer is full (on a service without SafeOverflow) retries that often, then
// fails with ErrWouldBlock; without FailWhenFull it fails at once.
func (s *RequestResponseService) Server(opts ...Option) (*Server, error) {
	const op = "create server"
	c, msg, err := portConfig(op, s.name, "server", serverOpts, s.response, opts)
	if err != nil {
		return nil, err
	}
	o := ffi.ServerOpts{InitialMaxLen: c.opts.InitialMaxLen, Allocation: c.opts.Allocation, MaxLoaned: c.opts.MaxLoaned, Spin: c.opts.Spin}
	h, ok := s.ref.acquire()
	if !ok {
		return nil, closedError(op, s.name)
	}
	defer s.ref.release()
	var eb ffi.ErrBuf
	sh, st := s.lib.ServerCreate(h, &o, &eb)
	if st != ffi.OK {
		return nil, statusError(s.lib, op, s.name, st, &eb)
	}
	srv := &Server{lib: s.lib, name: s.name, reply: &replyShape{lib: s.lib, name: s.name, msg: msg,
		full: &Error{Op: "send response", Name: s.name, Kind: ErrWouldBlock},
		gone: &Error{Op: "send response", Name: s.name, Kind: ErrPeerClosed,
			Detail: "the client closed its pending response or is gone"}}}
	srv.ref.h = sh
	return srv, nil
}

// TryReceive copies the next request into buf without waiting and returns the
// ActiveRequest through which to answer it (close it to end the response
// stream). ok is false when no request is waiting. When buf is too small the
// request stays queued and the error is a *BufferTooSmallError saying how much
// it needs.
func (s *Server) TryReceive(buf []byte) (req *ActiveRequest, n int, ok bool, err error) {
	h, open := s.ref.acquire()
	if !open {
		return nil, 0, false, closedError("receive request", s.name)
	}
	k, n, ah, lo, hi, st := s.lib.ServerReceive(h, buf)
	s.ref.release()
	switch {
	case st == ffi.EBufferTooSmall:
		return nil, 0, false, &BufferTooSmallError{Need: n}
	case st != ffi.OK:
		return nil, 0, false, statusError(s.lib, "receive request", s.name, st, nil)
	case k == 0:
		return nil, 0, false, nil
	}
	a := &ActiveRequest{r: s.reply, origin: UniqueID{lo, hi}}
	a.ref.h = ah
	return a, n, true, nil
}

// HasRequests reports whether a request is waiting.
func (s *Server) HasRequests() (bool, error) {
	h, open := s.ref.acquire()
	if !open {
		return false, closedError("has requests", s.name)
	}
	defer s.ref.release()
	ok, st := s.lib.ServerHasRequests(h)
	if st != ffi.OK {
		return false, statusError(s.lib, "has requests", s.name, st, nil)
	}
	return ok, nil
}

// Close releases the server. Its ActiveRequests stay usable. Once the server
// and all its ActiveRequests are closed, iceoryx2 releases the server's shared
// memory, and responses that clients have not received yet may be lost: keep
// the server, or the ActiveRequest, open until its clients are done. A second
// Close returns ErrClosed.
func (s *Server) Close() error {
	if s.ref.close(s.lib.ServerDrop) != nil {
		return closedError("close server", s.name)
	}
	return nil
}

// ActiveRequest is the server's end of one request: the responses sent through
// it reach the request's client in order. It is safe for use by multiple
// goroutines.
type ActiveRequest struct {
	r      *replyShape
	ref    ref
	origin UniqueID
}

// Origin returns the port id of the client that sent the request (Client.ID).
func (a *ActiveRequest) Origin() UniqueID { return a.origin }

// Send copies resp into shared memory and sends it to the request's client in
// one native call. It fails with ErrPeerClosed when the client no longer waits
// for responses (it closed its PendingResponse or is gone), with ErrWouldBlock
// when the client's buffer is full (see Server), and with ErrMessageTooLarge
// for a response over MaxMessageSize; in each case nothing was sent.
func (a *ActiveRequest) Send(resp []byte) error { return a.sendNotify(resp, nil, 0) }

// sendNotify is Send that also notifies id on ntf (when not nil), in the same
// native call.
func (a *ActiveRequest) sendNotify(resp []byte, ntf *Notifier, id EventID) error {
	r := a.r
	if err := r.msg.check(r.lib, "send response", r.name, len(resp)); err != nil {
		return err
	}
	h, ok := a.ref.acquire()
	if !ok {
		return closedError("send response", r.name)
	}
	var nh ffi.Handle
	if ntf != nil {
		if nh, ok = ntf.ref.acquire(); !ok {
			a.ref.release()
			return closedError("send response", r.name)
		}
	}
	st := r.lib.ActiveRespondNotify(h, resp, nh, uint64(id))
	if ntf != nil {
		ntf.ref.release()
	}
	a.ref.release()
	return r.sendResult(st)
}

// sendResult is the error of a response's send that returned st.
func (r *replyShape) sendResult(st ffi.Status) error {
	switch st {
	case ffi.OK:
		return nil
	case ffi.EWouldBlock:
		return r.full
	case ffi.EDisconnected:
		return r.gone
	}
	return statusError(r.lib, "send response", r.name, st, nil)
}

// Connected reports whether the client still waits for responses: false once
// it closed its PendingResponse (or is gone, once its node was cleaned up),
// and after Close.
func (a *ActiveRequest) Connected() bool {
	h, ok := a.ref.acquire()
	if !ok {
		return false
	}
	live, st := a.r.lib.ActiveConnected(h)
	a.ref.release()
	return st == ffi.OK && live
}

// Close ends the response stream: the client's PendingResponse stops being
// Connected once it has received what was sent. A second Close returns ErrClosed.
func (a *ActiveRequest) Close() error {
	if a.ref.close(a.r.lib.ActiveDrop) != nil {
		return closedError("close active request", a.r.name)
	}
	return nil
}
