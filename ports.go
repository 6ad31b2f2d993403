package iox

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/iox-go/iox/internal/ffi"
)

// PayloadType describes a service's payload the way iceoryx2 stores it, so that
// peers in Rust, C, C++ or Python open the same service. Bytes is a dynamic slice
// of u8 (Rust `[u8]`, Python `iox2.Slice[ctypes.c_uint8]`); a fixed-size payload
// carries the name, size and alignment of its `#[repr(C)]` Rust type.
type PayloadType struct {
	Name  string // Rust type name, e.g. "u8" or "my_app::Point"
	Size  int    // bytes of one element
	Align int    // alignment of one element
	Fixed bool   // one value per message rather than a slice
}

// Bytes is the payload type of byte services, the base case of iox.
var Bytes = PayloadType{Name: "u8", Size: 1, Align: 1}

// DefaultMaxMessageSize bounds one message unless MaxMessageSize says otherwise.
const DefaultMaxMessageSize = 64 << 20

type serviceConfig struct {
	mode    int
	payload PayloadType
	ps      ffi.PubSubOpts
	ev      ffi.EventOpts
	rr      ffi.ReqResOpts
	bb      ffi.BBOpts
	request PayloadType // of a request-response service (zero: Bytes)
	reply   PayloadType
}

// checkCounts refuses counts outside their bounds (see Option) before
// the native library sees them; the native library checks them again, and the
// memory they add up to.
func (c *serviceConfig) checkCounts() error {
	for _, b := range []struct {
		name  string
		set   bool
		v     uint64
		least int64
	}{
		{"MaxPublishers", c.ps.Set&ffi.PSMaxPublishers != 0, c.ps.MaxPublishers, 1},
		{"MaxSubscribers", c.ps.Set&ffi.PSMaxSubscribers != 0, c.ps.MaxSubscribers, 1},
		{"MaxNodes", c.ps.Set&ffi.PSMaxNodes != 0, c.ps.MaxNodes, 1},
		{"BufferSize", c.ps.Set&ffi.PSBufferSize != 0, c.ps.BufferSize, 1},
		{"History", c.ps.Set&ffi.PSHistorySize != 0, c.ps.HistorySize, 0},
		{"MaxBorrowed", c.ps.Set&ffi.PSMaxBorrowed != 0, c.ps.MaxBorrowed, 1},
		{"MaxNotifiers", c.ev.Set&ffi.EVMaxNotifiers != 0, c.ev.MaxNotifiers, 1},
		{"MaxListeners", c.ev.Set&ffi.EVMaxListeners != 0, c.ev.MaxListeners, 1},
		{"MaxReaders", c.bb.Set&ffi.BBMaxReaders != 0, c.bb.MaxReaders, 1},
		{"MaxNodes", c.bb.Set&ffi.BBMaxNodes != 0, c.bb.MaxNodes, 1},
	} {
		if v := int64(b.v); b.set && (v < b.least || v > MaxServiceCount) {
			return fmt.Errorf("%s %d is outside %d..%d", b.name, v, b.least, MaxServiceCount)
		}
	}
	return nil
}

// removeStale removes the service name of pattern (0 publish-subscribe, 1 event,
// 2 request-response) when it is busy because a process died while creating or
// removing it: iceoryx2 reports such a service as being created or removed for
// ever. It reports
// whether it removed something; a service that a live node holds stays.
func (n *Node) removeStale(nh ffi.Handle, name string, pattern int) bool {
	var eb ffi.ErrBuf
	removed, st := n.lib.ServiceRemoveStale(nh, name, pattern, &eb)
	return st == ffi.OK && removed
}

// acquireNode checks a service name and holds the node for an open call.
func (n *Node) acquireNode(op, name string) (ffi.Handle, error) {
	if err := checkName("service name", name, 255, false); err != nil {
		return 0, &Error{Op: op, Name: name, Kind: ErrInvalidName, Detail: err.Error()}
	}
	h, ok := n.ref.acquire()
	if !ok {
		return 0, closedError(op, name)
	}
	return h, nil
}

// PubSubService is an open publish-subscribe service: a name, a payload type and
// settings shared by every process that opens it. It makes Publishers and
// Subscribers.
type PubSubService struct {
	lib     *ffi.Lib
	ref     ref
	name    string
	payload PayloadType
	config  ffi.PubSubConfig
}

// PublishSubscribe opens or creates (see OpenOnly, CreateOnly) the publish-subscribe
// service name.
func (n *Node) PublishSubscribe(name string, opts ...Option) (*PubSubService, error) {
	const op = "open publish-subscribe"
	o, err := applyOptions(op, name, "publish-subscribe service", pubSubOpts, opts)
	if err != nil {
		return nil, err
	}
	c := o.svc
	if err := c.checkCounts(); err != nil {
		return nil, &Error{Op: op, Name: name, Kind: ErrInvalidArgument, Detail: err.Error()}
	}
	p := c.payload
	if p.Name == "" || p.Size <= 0 || p.Align <= 0 || p.Align&(p.Align-1) != 0 {
		return nil, &Error{Op: op, Name: name, Kind: ErrInvalidArgument, Detail: fmt.Sprintf("payload type %+v", p)}
	}
	if p.Align > maxAlign || uint64(p.Size) > math.MaxUint32 {
		return nil, &Error{Op: op, Name: name, Kind: ErrInvalidArgument,
			Detail: fmt.Sprintf("payload type %+v: Size at most %d, Align at most %d", p, uint64(math.MaxUint32), maxAlign)}
	}
	c.ps.Size, c.ps.Alignment = uint64(p.Size), uint64(p.Align)
	if p.Fixed {
		c.ps.Variant = 1
	}
	nh, err := n.acquireNode(op, name)
	if err != nil {
		return nil, err
	}
	defer n.ref.release()
	var eb ffi.ErrBuf
	h, st := n.lib.PubSubOpen(nh, name, c.mode, &c.ps, p.Name, &eb)
	if st == ffi.EBusy && n.removeStale(nh, name, 0) {
		eb = ffi.ErrBuf{}
		h, st = n.lib.PubSubOpen(nh, name, c.mode, &c.ps, p.Name, &eb)
	}
	if st != ffi.OK {
		return nil, statusError(n.lib, op, name, st, &eb)
	}
	s := &PubSubService{lib: n.lib, name: name, payload: p}
	s.ref.h = h
	s.config, _ = n.lib.PubSubConfigOf(h)
	return s, nil
}

// maxAlign is the largest payload alignment (a Rust #[repr(align)] allows no more).
const maxAlign = 1 << 29

// Name returns the service name.
func (s *PubSubService) Name() string { return s.name }

// BufferSize returns how many unread messages each subscriber can hold.
func (s *PubSubService) BufferSize() int { return int(s.config.BufferSize) }

// HistorySize returns how many messages late subscribers receive on joining.
func (s *PubSubService) HistorySize() int { return int(s.config.HistorySize) }

// SafeOverflow reports whether a full subscriber loses its oldest message.
func (s *PubSubService) SafeOverflow() bool { return s.config.SafeOverflow != 0 }

// MaxSubscribers returns the subscriber limit stored with the service.
func (s *PubSubService) MaxSubscribers() int { return int(s.config.MaxSubscribers) }

// Counts returns how many publishers and subscribers are connected now
// (a crashed process counts until dead nodes are cleaned up).
func (s *PubSubService) Counts() (publishers, subscribers int, err error) {
	h, ok := s.ref.acquire()
	if !ok {
		return 0, 0, closedError("counts", s.name)
	}
	defer s.ref.release()
	p, q, st := s.lib.PubSubCounts(h)
	if st != ffi.OK {
		return 0, 0, statusError(s.lib, "counts", s.name, st, nil)
	}
	return int(p), int(q), nil
}

// UniqueID is a 128-bit iceoryx2 id of a node or port.
type UniqueID struct{ Lo, Hi uint64 }

func (u UniqueID) String() string { return fmt.Sprintf("%016x%016x", u.Hi, u.Lo) }

// PortInfo names one port of a service and the node that owns it.
type PortInfo struct {
	Port, Node UniqueID
}

// Publishers lists the publishers connected to the service now.
func (s *PubSubService) Publishers() ([]PortInfo, error) { return s.ports("publishers", 0) }

// Subscribers lists the subscribers connected to the service now.
func (s *PubSubService) Subscribers() ([]PortInfo, error) { return s.ports("subscribers", 1) }

func (s *PubSubService) ports(op string, which int) ([]PortInfo, error) {
	return listPorts(&s.ref, s.lib, op, s.name, which, s.lib.PubSubList)
}

// listPorts lists the ports of a service (which: the native listing's kind).
func listPorts(r *ref, lib *ffi.Lib, op, name string, which int, list func(ffi.Handle, int, []ffi.PortInfo) (int, ffi.Status)) ([]PortInfo, error) {
	h, ok := r.acquire()
	if !ok {
		return nil, closedError(op, name)
	}
	defer r.release()
	raw := make([]ffi.PortInfo, 8)
	for {
		n, st := list(h, which, raw)
		if st != ffi.OK {
			return nil, statusError(lib, op, name, st, nil)
		}
		if n <= len(raw) {
			out := make([]PortInfo, n)
			for i, r := range raw[:n] {
				out[i] = PortInfo{Port: UniqueID{r.PortLo, r.PortHi}, Node: UniqueID{r.NodeLo, r.NodeHi}}
			}
			return out, nil
		}
		raw = make([]ffi.PortInfo, n+8)
	}
}

// CleanupDeadNodes removes the ports of crashed processes from this service.
func (s *PubSubService) CleanupDeadNodes() (int, error) {
	return cleanupDead(&s.ref, s.lib, s.name, s.lib.PubSubCleanupDead)
}

// cleanupDead runs a service's removal of dead nodes' ports and returns how many
// nodes it cleaned up.
func cleanupDead(r *ref, lib *ffi.Lib, name string, clean func(ffi.Handle) (uint64, uint64, ffi.Status)) (int, error) {
	h, ok := r.acquire()
	if !ok {
		return 0, closedError("cleanup dead nodes", name)
	}
	defer r.release()
	c, _, st := clean(h)
	if st != ffi.OK {
		return 0, statusError(lib, "cleanup dead nodes", name, st, nil)
	}
	return int(c), nil
}

// Close releases the service handle; ports made from it stay usable.
func (s *PubSubService) Close() error {
	if s.ref.close(s.lib.PubSubDrop) != nil {
		return closedError("close publish-subscribe", s.name)
	}
	return nil
}

type publisherConfig struct {
	opts    ffi.PublisherOpts
	maxSize int
}

// Publisher sends messages to every subscriber of a service. It is safe for use
// by multiple goroutines.
type Publisher struct {
	lib     *ffi.Lib
	ref     ref
	name    string
	maxSize int
	elem    int
	fixed   bool
	full    error // ErrWouldBlock for this publisher, made once: senders retry on it
}

// Publisher creates a publisher port.
func (s *PubSubService) Publisher(opts ...Option) (*Publisher, error) {
	const op = "create publisher"
	o, err := applyOptions(op, s.name, "publisher", publisherOpts, opts)
	if err != nil {
		return nil, err
	}
	c := o.pub
	if c.maxSize < 0 {
		return nil, &Error{Op: op, Name: s.name, Kind: ErrInvalidArgument, Detail: "negative MaxMessageSize"}
	}
	if err := c.check(); err != nil {
		return nil, &Error{Op: op, Name: s.name, Kind: ErrInvalidArgument, Detail: err.Error()}
	}
	if s.payload.Fixed {
		c.opts.InitialMaxLen = uint64(s.payload.Size)
		c.maxSize = s.payload.Size
	}
	c.opts.InitialMaxLen = min(c.opts.InitialMaxLen, uint64(max(c.maxSize, 1)))
	h, ok := s.ref.acquire()
	if !ok {
		return nil, closedError(op, s.name)
	}
	defer s.ref.release()
	var eb ffi.ErrBuf
	ph, st := s.lib.PublisherCreate(h, &c.opts, &eb)
	if st != ffi.OK {
		return nil, statusError(s.lib, op, s.name, st, &eb)
	}
	p := &Publisher{lib: s.lib, name: s.name, maxSize: c.maxSize, elem: s.payload.Size, fixed: s.payload.Fixed,
		full: &Error{Op: "send", Name: s.name, Kind: ErrWouldBlock}}
	p.ref.h = ph
	return p, nil
}

// check refuses publisher options outside their bounds.
func (c *publisherConfig) check() error {
	switch o := c.opts; {
	case int64(o.InitialMaxLen) < 0:
		return fmt.Errorf("InitialMessageSize %d is negative", int64(o.InitialMaxLen))
	case int64(o.MaxLoaned) < 0 || o.MaxLoaned > MaxServiceCount:
		return fmt.Errorf("MaxLoans %d is outside 0..%d", int64(o.MaxLoaned), MaxServiceCount)
	case o.Backpressure == ffi.BPFail && (int64(o.Spin) < 0 || o.Spin > MaxSpin):
		return fmt.Errorf("FailWhenFull spin %d is outside 0..%d", int64(o.Spin), MaxSpin)
	}
	return nil
}

func (p *Publisher) checkSize(op string, n int) error {
	if n > p.maxSize {
		return &Error{Op: op, Name: p.name, Kind: ErrMessageTooLarge,
			Detail: fmt.Sprintf("%d bytes, at most %d", n, p.maxSize)}
	}
	if c := shmCapacity(p.lib); n > c {
		return &Error{Op: op, Name: p.name, Kind: ErrOutOfMemory,
			Detail: fmt.Sprintf("%d bytes do not fit in shared memory (%d bytes)", n, c)}
	}
	return p.fits(op, n)
}

// fits refuses a message of n bytes that is no whole number of the payload
// type's elements (exactly one for a fixed type).
func (p *Publisher) fits(op string, n int) error { return fitsPayload(op, p.name, p.elem, p.fixed, n) }

// fitsPayload refuses a message of n bytes that is no whole number of
// elements of elem bytes (exactly one when fixed).
func fitsPayload(op, name string, elem int, fixed bool, n int) error {
	if elem > 0 && (n%elem != 0 || (fixed && n != elem)) {
		return &Error{Op: op, Name: name, Kind: ErrInvalidArgument,
			Detail: fmt.Sprintf("%d bytes do not fit the payload type's element size %d", n, elem)}
	}
	return nil
}

// shmCapacity is the size of the file system that holds shared memory (cached:
// it does not change while the process runs): no message can be larger.
func shmCapacity(lib *ffi.Lib) int {
	shmCap.once.Do(func() {
		shmCap.n = math.MaxInt
		if c := lib.ShmCapacity(); c > 0 {
			shmCap.n = int(min(c, math.MaxInt))
		}
	})
	return shmCap.n
}

var shmCap struct {
	once sync.Once
	n    int
}

// Send copies msg into shared memory and delivers it in one native call. It
// returns how many subscribers received it. A nil or empty msg sends an empty
// message.
func (p *Publisher) Send(msg []byte) (int, error) {
	if err := p.checkSize("send", len(msg)); err != nil {
		return 0, err
	}
	h, ok := p.ref.acquire()
	if !ok {
		return 0, closedError("send", p.name)
	}
	n, st := p.lib.PublisherSendCopy(h, msg)
	p.ref.release()
	return n, p.sendError(st)
}

// sendHeader is Send with the service's user header taken from hdr.
func (p *Publisher) sendHeader(msg, hdr []byte) (int, error) {
	if err := p.checkSize("send", len(msg)); err != nil {
		return 0, err
	}
	h, ok := p.ref.acquire()
	if !ok {
		return 0, closedError("send", p.name)
	}
	n, st := p.lib.PublisherSendCopyHeader(h, msg, hdr)
	p.ref.release()
	return n, p.sendError(st)
}

// sendNotify is sendHeader (hdr may be empty) that also notifies id on ntf when
// the message reached a subscriber: a channel's whole send in one native call.
// With the receiver's wait word w (may be nil) it notifies only a receiver that
// parks.
func (p *Publisher) sendNotify(msg, hdr []byte, ntf *Notifier, id EventID, w *ffi.WaitWord) (int, error) {
	if err := p.checkSize("send", len(msg)); err != nil {
		return 0, err
	}
	h, ok := p.ref.acquire()
	if !ok {
		return 0, closedError("send", p.name)
	}
	defer p.ref.release()
	var nh ffi.Handle
	if ntf != nil {
		if nh, ok = ntf.ref.acquire(); !ok {
			return 0, closedError("send", p.name)
		}
		defer ntf.ref.release()
	}
	if afterClaim != nil && w != nil && nh != 0 {
		// the claim that the native call makes, then afterClaim, then no
		// notification
		n, st := p.lib.PublisherSendNotify(h, msg, hdr, 0, uint64(id), nil)
		if n > 0 && w.Claim() {
			afterClaim()
		}
		return n, p.sendError(st)
	}
	n, st := p.lib.PublisherSendNotify(h, msg, hdr, nh, uint64(id), w)
	return n, p.sendError(st)
}

// sendBatch sends the messages of lens, back to back in data, in one native call
// (with user headers from hdrs when not empty). It returns how many it sent; it
// stops before the first that fails or reaches fewer than minRecipients
// subscribers, and reports an error only when that is the first and not a full
// receiver.
func (p *Publisher) sendBatch(data []byte, lens []uint64, hdrs []byte, minRecipients int) (int, error) {
	for _, n := range lens {
		if err := p.checkSize("send", int(n)); err != nil {
			return 0, err
		}
	}
	h, ok := p.ref.acquire()
	if !ok {
		return 0, closedError("send", p.name)
	}
	k, st := p.lib.PublisherSendBatch(h, data, lens, hdrs, minRecipients)
	p.ref.release()
	return k, p.sendError(st)
}

func (p *Publisher) sendError(st ffi.Status) error {
	switch st {
	case ffi.OK:
		return nil
	case ffi.EWouldBlock:
		return p.full
	}
	return statusError(p.lib, "send", p.name, st, nil)
}

// Loan reserves a message of n bytes in shared memory for writing in place (zero
// copy). Fill SampleMut.Bytes, then Send or Discard it.
func (p *Publisher) Loan(n int) (*SampleMut, error) {
	if n < 0 {
		return nil, &Error{Op: "loan", Name: p.name, Kind: ErrInvalidArgument, Detail: "negative size"}
	}
	if err := p.checkSize("loan", n); err != nil {
		return nil, err
	}
	h, ok := p.ref.acquire()
	if !ok {
		return nil, closedError("loan", p.name)
	}
	sh, st := p.lib.PublisherLoan(h, n)
	p.ref.release()
	if st != ffi.OK {
		return nil, statusError(p.lib, "loan", p.name, st, nil)
	}
	m := &SampleMut{lib: p.lib, name: p.name, data: ffi.SampleBytes(sh)}
	m.h.Store(uintptr(sh))
	return m, nil
}

// Update connects the publisher to subscribers that joined since its last send,
// delivering history to them without sending anything new.
func (p *Publisher) Update() error {
	h, ok := p.ref.acquire()
	if !ok {
		return closedError("update", p.name)
	}
	defer p.ref.release()
	if st := p.lib.PublisherUpdate(h); st != ffi.OK {
		return statusError(p.lib, "update", p.name, st, nil)
	}
	return nil
}

// Close releases the publisher. A second Close returns ErrClosed.
func (p *Publisher) Close() error {
	if p.ref.close(p.lib.PublisherDrop) != nil {
		return closedError("close publisher", p.name)
	}
	return nil
}

// SampleMut is a message loaned from a Publisher, written in place in shared
// memory. It is not safe for concurrent use.
type SampleMut struct {
	lib  *ffi.Lib
	name string
	h    atomic.Uintptr // the native sample until Send or Discard
	data []byte
}

// Bytes is the message's memory in shared memory; valid until Send or Discard.
func (s *SampleMut) Bytes() []byte { return s.data }

// Send delivers the message and returns how many subscribers received it.
func (s *SampleMut) Send() (int, error) {
	h := ffi.Handle(s.h.Swap(0)) // only one of racing calls gets the handle
	if h == 0 {
		return 0, closedError("send sample", s.name)
	}
	s.data = nil
	n, st := s.lib.SampleMutSend(h)
	if st != ffi.OK {
		return n, statusError(s.lib, "send sample", s.name, st, nil)
	}
	return n, nil
}

// sendNotify is Send that also notifies id on ntf (when not nil) when the
// message reached a subscriber (with the receiver's wait word w, only when it
// parks): a zero-copy channel send in one native call. It fails with
// ErrWouldBlock when fewer than minRecipients subscribers got it
// (ffi.AllSubscribers: every subscriber of the service).
func (s *SampleMut) sendNotify(ntf *Notifier, id EventID, w *ffi.WaitWord, minRecipients int) (int, error) {
	h := ffi.Handle(s.h.Swap(0))
	if h == 0 {
		return 0, closedError("send sample", s.name)
	}
	s.data = nil
	var nh ffi.Handle
	if ntf != nil {
		var ok bool
		if nh, ok = ntf.ref.acquire(); !ok {
			s.lib.SampleMutDrop(h)
			return 0, closedError("send sample", s.name)
		}
		defer ntf.ref.release()
	}
	n, st := s.lib.SampleMutSendNotify(h, nh, uint64(id), w, minRecipients)
	if st != ffi.OK {
		return n, statusError(s.lib, "send sample", s.name, st, nil)
	}
	return n, nil
}

// header is the sample's user header of n bytes, written in place.
func (s *SampleMut) header(n int) []byte { return ffi.SampleHeader(ffi.Handle(s.h.Load()), n) }

// Discard returns the message unsent.
func (s *SampleMut) Discard() error {
	h := ffi.Handle(s.h.Swap(0))
	if h == 0 {
		return closedError("discard sample", s.name)
	}
	s.data = nil
	s.lib.SampleMutDrop(h)
	return nil
}

type subscriberConfig struct{ bufferSize uint64 }

// Subscriber receives every message published to its service after it joined. It
// is safe for use by multiple goroutines.
type Subscriber struct {
	lib  *ffi.Lib
	ref  ref
	name string
}

// Subscriber creates a subscriber port.
func (s *PubSubService) Subscriber(opts ...Option) (*Subscriber, error) {
	const op = "create subscriber"
	o, err := applyOptions(op, s.name, "subscriber", subscriberOpts, opts)
	if err != nil {
		return nil, err
	}
	c := o.sub
	if int64(c.bufferSize) < 0 {
		return nil, &Error{Op: op, Name: s.name, Kind: ErrInvalidArgument,
			Detail: fmt.Sprintf("SubscriberBuffer %d is negative", int64(c.bufferSize))}
	}
	h, ok := s.ref.acquire()
	if !ok {
		return nil, closedError(op, s.name)
	}
	defer s.ref.release()
	var eb ffi.ErrBuf
	sh, st := s.lib.SubscriberCreate(h, c.bufferSize, &eb)
	if st != ffi.OK {
		return nil, statusError(s.lib, op, s.name, st, &eb)
	}
	sub := &Subscriber{lib: s.lib, name: s.name}
	sub.ref.h = sh
	return sub, nil
}

// portID returns the subscriber's port id (ok false once it is closed).
func (s *Subscriber) portID() (id UniqueID, ok bool) {
	h, live := s.ref.acquire()
	if !live {
		return UniqueID{}, false
	}
	lo, hi, st := s.lib.SubscriberID(h)
	s.ref.release()
	return UniqueID{lo, hi}, st == ffi.OK
}

// TryReceive copies the next message into buf without waiting. ok is false when no
// message is waiting. When buf is too small the message stays queued and the error
// is a *BufferTooSmallError (errors.Is ErrBufferTooSmall) saying how much it needs.
func (s *Subscriber) TryReceive(buf []byte) (n int, ok bool, err error) {
	h, live := s.ref.acquire()
	if !live {
		return 0, false, closedError("receive", s.name)
	}
	k, n, st := s.lib.SubscriberReceiveOne(h, buf)
	s.ref.release()
	switch {
	case st == ffi.EBufferTooSmall:
		return 0, false, &BufferTooSmallError{Need: n}
	case st != ffi.OK:
		return 0, false, statusError(s.lib, "receive", s.name, st, nil)
	case k == 0:
		return 0, false, nil
	}
	return n, true, nil
}

// Batch holds messages received together by ReceiveBatch, back to back in one
// buffer. Reuse it to receive without allocating.
type Batch struct {
	buf     []byte
	lens    []uint64
	offs    []int
	n       int
	hdrs    []byte // user headers, hdrSize bytes per message, when asked for
	hdrSize int
	limit   int                // larger messages are dropped (0: no limit)
	most    int                // take at most this many messages (0: as many as it holds)
	grow    func(n int) []byte // a buffer for one message larger than buf (nil: make)
}

// Limits of NewBatch's arguments.
const (
	MaxBatchBuffer   = 1 << 30 // bytes; a message larger than the buffer still grows it
	MaxBatchMessages = 1 << 16
)

// NewBatch makes a batch for up to maxMessages messages in a buffer of bufSize
// bytes; the buffer grows when a single message needs more. Out-of-range values
// are clamped, never a panic: bufSize to 0..MaxBatchBuffer, maxMessages to
// 1..MaxBatchMessages.
func NewBatch(bufSize, maxMessages int) *Batch {
	bufSize = min(max(bufSize, 0), MaxBatchBuffer)
	maxMessages = min(max(maxMessages, 1), MaxBatchMessages)
	return &Batch{buf: make([]byte, bufSize), lens: make([]uint64, maxMessages), offs: make([]int, maxMessages+1)}
}

// Len returns how many messages the last ReceiveBatch delivered.
func (b *Batch) Len() int { return b.n }

// Message returns message i; it stays valid until the next ReceiveBatch.
func (b *Batch) Message(i int) []byte { return b.buf[b.offs[i]:b.offs[i+1]:b.offs[i+1]] }

// withHeaders makes the batch also receive each message's user header of size bytes.
func (b *Batch) withHeaders(size int) *Batch {
	b.hdrSize, b.hdrs = size, make([]byte, size*len(b.lens))
	return b
}

// header returns message i's user header (withHeaders only).
func (b *Batch) header(i int) []byte { return b.hdrs[i*b.hdrSize : (i+1)*b.hdrSize] }

// ReceiveBatch drains up to the batch's capacity of waiting messages in one native
// call and returns how many it got (0 when none waits).
func (s *Subscriber) ReceiveBatch(b *Batch) (int, error) {
	if b == nil {
		return 0, nilArg("receive", s.name, "batch")
	}
	b.n = 0
	h, live := s.ref.acquire()
	if !live {
		return 0, closedError("receive", s.name)
	}
	lens, hdrs := b.lens, b.hdrs
	if b.most > 0 && b.most < len(lens) {
		lens = lens[:b.most]
		hdrs = hdrs[:len(lens)*b.hdrSize]
	}
	k, st := s.lib.SubscriberReceive(h, b.buf, lens, hdrs)
	if st == ffi.EBufferTooSmall {
		need := int(b.lens[0])
		if b.limit > 0 && need > b.limit {
			// drop it where it is: the message never reaches Go memory
			if sh, bst := s.lib.SubscriberBorrow(h); bst == ffi.OK && sh != 0 {
				s.lib.SampleRelease(sh)
			}
			s.ref.release()
			return 0, &Error{Op: "receive", Name: s.name, Kind: ErrMessageTooLarge,
				Detail: fmt.Sprintf("a message of %d bytes arrived, at most %d accepted; it was dropped", need, b.limit)}
		}
		if b.grow != nil {
			b.buf = b.grow(need)
		} else {
			b.buf = make([]byte, need)
		}
		k, st = s.lib.SubscriberReceive(h, b.buf, lens, hdrs)
	}
	s.ref.release()
	if st != ffi.OK {
		return 0, statusError(s.lib, "receive", s.name, st, nil)
	}
	off := 0
	for i := 0; i < k; i++ {
		b.offs[i] = off
		off += int(b.lens[i])
	}
	b.offs[k] = off
	b.n = k
	return k, nil
}

// Borrow takes the next message without copying: Sample.Bytes points into shared
// memory until Release. ok is false when no message is waiting. A subscriber may
// hold only the service's MaxBorrowed samples at once (ErrTooManyLoans beyond).
func (s *Subscriber) Borrow() (sample *Sample, ok bool, err error) {
	h, live := s.ref.acquire()
	if !live {
		return nil, false, closedError("borrow", s.name)
	}
	sh, st := s.lib.SubscriberBorrow(h)
	s.ref.release()
	if st != ffi.OK {
		return nil, false, statusError(s.lib, "borrow", s.name, st, nil)
	}
	if sh == 0 {
		return nil, false, nil
	}
	smp := &Sample{lib: s.lib, name: s.name, data: ffi.SampleBytes(sh)}
	smp.h.Store(uintptr(sh))
	return smp, true, nil
}

// HasMessages reports whether a message is waiting.
func (s *Subscriber) HasMessages() (bool, error) {
	h, live := s.ref.acquire()
	if !live {
		return false, closedError("has messages", s.name)
	}
	defer s.ref.release()
	ok, st := s.lib.SubscriberHasSamples(h)
	if st != ffi.OK {
		return false, statusError(s.lib, "has messages", s.name, st, nil)
	}
	return ok, nil
}

// Close releases the subscriber. A second Close returns ErrClosed.
func (s *Subscriber) Close() error {
	if s.ref.close(s.lib.SubscriberDrop) != nil {
		return closedError("close subscriber", s.name)
	}
	return nil
}

// Sample is a received message borrowed in place from shared memory.
type Sample struct {
	lib  *ffi.Lib
	name string
	h    atomic.Uintptr // the native sample until Release
	data []byte
}

// Bytes is the message, read-only, valid until Release.
func (s *Sample) Bytes() []byte { return s.data }

// header is the sample's user header of n bytes, read in place.
func (s *Sample) header(n int) []byte { return ffi.SampleHeader(ffi.Handle(s.h.Load()), n) }

// Release gives the message's memory back to the publisher.
func (s *Sample) Release() error {
	h := ffi.Handle(s.h.Swap(0)) // only one of racing calls gets the handle
	if h == 0 {
		return closedError("release sample", s.name)
	}
	s.data = nil
	s.lib.SampleRelease(h)
	return nil
}

// EventID identifies an event of an event service.
type EventID uint64

// EventService is an open event service; it makes Notifiers and Listeners.
type EventService struct {
	lib    *ffi.Lib
	ref    ref
	name   string
	config ffi.EventConfig
}

// Event opens or creates (see OpenOnly, CreateOnly) the event service name. An event
// service and a publish-subscribe service may share a name.
func (n *Node) Event(name string, opts ...Option) (*EventService, error) {
	const op = "open event"
	o, err := applyOptions(op, name, "event service", eventOpts, opts)
	if err != nil {
		return nil, err
	}
	c := o.svc
	if err := c.checkCounts(); err != nil {
		return nil, &Error{Op: op, Name: name, Kind: ErrInvalidArgument, Detail: err.Error()}
	}
	nh, err := n.acquireNode(op, name)
	if err != nil {
		return nil, err
	}
	defer n.ref.release()
	var eb ffi.ErrBuf
	h, st := n.lib.EventOpen(nh, name, c.mode, &c.ev, &eb)
	if st == ffi.EBusy && n.removeStale(nh, name, 1) {
		eb = ffi.ErrBuf{}
		h, st = n.lib.EventOpen(nh, name, c.mode, &c.ev, &eb)
	}
	if st != ffi.OK {
		return nil, statusError(n.lib, op, name, st, &eb)
	}
	e := &EventService{lib: n.lib, name: name}
	e.ref.h = h
	e.config, _ = n.lib.EventConfigOf(h)
	return e, nil
}

// Name returns the service name.
func (e *EventService) Name() string { return e.name }

// MaxEventID returns the largest event id the service accepts.
func (e *EventService) MaxEventID() EventID { return EventID(e.config.MaxEventID) }

// Counts returns how many notifiers and listeners are connected now.
func (e *EventService) Counts() (notifiers, listeners int, err error) {
	h, ok := e.ref.acquire()
	if !ok {
		return 0, 0, closedError("counts", e.name)
	}
	defer e.ref.release()
	a, b, _, st := e.lib.EventInfo(h)
	if st != ffi.OK {
		return 0, 0, statusError(e.lib, "counts", e.name, st, nil)
	}
	return int(a), int(b), nil
}

// Close releases the service handle; ports made from it stay usable.
func (e *EventService) Close() error {
	if e.ref.close(e.lib.EventDrop) != nil {
		return closedError("close event", e.name)
	}
	return nil
}

// Notifier signals event ids to every Listener of its service.
type Notifier struct {
	lib  *ffi.Lib
	ref  ref
	name string
}

// Notifier creates a notifier port.
func (e *EventService) Notifier() (*Notifier, error) {
	const op = "create notifier"
	h, ok := e.ref.acquire()
	if !ok {
		return nil, closedError(op, e.name)
	}
	defer e.ref.release()
	var eb ffi.ErrBuf
	nh, st := e.lib.NotifierCreate(h, 0, &eb)
	if st != ffi.OK {
		return nil, statusError(e.lib, op, e.name, st, &eb)
	}
	n := &Notifier{lib: e.lib, name: e.name}
	n.ref.h = nh
	return n, nil
}

// Notify signals id and returns how many listeners it reached. Notifications of
// the same id coalesce until a listener drains them.
func (n *Notifier) Notify(id EventID) (int, error) {
	h, ok := n.ref.acquire()
	if !ok {
		return 0, closedError("notify", n.name)
	}
	k, st := n.lib.NotifierNotify(h, uint64(id))
	n.ref.release()
	if st != ffi.OK {
		return 0, statusError(n.lib, "notify", n.name, st, nil)
	}
	return k, nil
}

// Close releases the notifier. A second Close returns ErrClosed.
func (n *Notifier) Close() error {
	if n.ref.close(n.lib.NotifierDrop) != nil {
		return closedError("close notifier", n.name)
	}
	return nil
}

// Listener receives the event ids signalled on its service. Wait parks in the Go
// runtime's network poller on the listener's socket, so a waiting Listener holds
// no OS thread. It is safe for use by multiple goroutines.
type Listener struct {
	lib  *ffi.Lib
	ref  ref
	name string
	file *os.File        // duplicate of the native socket, non-blocking
	conn syscall.RawConn // readiness of file
	turn chan struct{}   // one waiter at a time owns the read deadline
	done chan struct{}   // closed by Close
	woke atomic.Bool     // interrupt: the wait returns with no ids

	// owned by the goroutine holding turn
	after     context.Context // the context whose end kicks the wait
	stopAfter func() bool
	got       []EventID
	werr      error
	drained   func(uintptr) bool // drains into got; made once, so a wait allocates nothing
}

// Listener creates a listener port.
func (e *EventService) Listener() (*Listener, error) {
	const op = "create listener"
	h, ok := e.ref.acquire()
	if !ok {
		return nil, closedError(op, e.name)
	}
	defer e.ref.release()
	var eb ffi.ErrBuf
	lh, st := e.lib.ListenerCreate(h, &eb)
	if st != ffi.OK {
		return nil, statusError(e.lib, op, e.name, st, &eb)
	}
	l := &Listener{lib: e.lib, name: e.name, turn: make(chan struct{}, 1), done: make(chan struct{})}
	l.drained = func(uintptr) bool {
		l.got, l.werr = l.tryWaitInto(l.got)
		return l.werr != nil || len(l.got) > 0
	}
	l.ref.h = lh
	if err := l.attach(); err != nil {
		e.lib.ListenerDrop(lh)
		return nil, &Error{Op: op, Name: e.name, Kind: ErrInternal, Detail: err.Error()}
	}
	return l, nil
}

// attach duplicates the native socket into a non-blocking *os.File so that the
// runtime poller can wait on it; only the duplicate is ever closed by Go.
func (l *Listener) attach() error {
	fd := l.lib.ListenerFd(l.ref.h)
	if fd < 0 {
		return errors.New("listener has no file descriptor")
	}
	dup, err := syscall.Dup(fd)
	if err != nil {
		return err
	}
	syscall.CloseOnExec(dup)
	if err := syscall.SetNonblock(dup, true); err != nil {
		syscall.Close(dup)
		return err
	}
	l.file = os.NewFile(uintptr(dup), "iox-listener")
	l.conn, err = l.file.SyscallConn()
	if err != nil {
		l.file.Close()
		return err
	}
	return nil
}

// TryWait returns the event ids signalled since the last wait, without waiting
// (nil when there are none).
func (l *Listener) TryWait() ([]EventID, error) { return l.tryWaitInto(nil) }

// tryWaitInto is TryWait appending to dst.
func (l *Listener) tryWaitInto(dst []EventID) ([]EventID, error) {
	h, ok := l.ref.acquire()
	if !ok {
		return dst, closedError("try wait", l.name)
	}
	defer l.ref.release()
	dst, st := ffi.ListenerDrain(l.lib, h, dst)
	if st != ffi.OK {
		return dst, statusError(l.lib, "try wait", l.name, st, nil)
	}
	return dst, nil
}

// Wait blocks until at least one event id is signalled and returns the ids. It
// returns ctx.Err() when ctx ends first and ErrClosed when the listener is closed.
func (l *Listener) Wait(ctx context.Context) ([]EventID, error) { return l.waitInto(ctx, nil, nil) }

// errDone is what a wait returns when the done channel given to it was closed.
var errDone = errors.New("iox: wait ended")

// waitInto is Wait appending the ids to dst, so a loop can reuse one slice. It
// also returns errDone once done (which may be nil) is closed and the listener
// was kicked (see kick).
func (l *Listener) waitInto(ctx context.Context, done <-chan struct{}, dst []EventID) ([]EventID, error) {
	if ctx == nil {
		return nil, nilArg("wait", l.name, "ctx")
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	select {
	case l.turn <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-done:
		return nil, errDone
	case <-l.done:
		return nil, closedError("wait", l.name)
	}
	defer func() { <-l.turn }()
	if ctx.Done() != nil && ctx != l.after {
		// A context that can end wakes the poller then. The registration stays
		// for the next waits with the same context, so a loop of waits
		// allocates once; a late kick from it is harmless (see below).
		if l.stopAfter != nil {
			l.stopAfter()
		}
		l.after, l.stopAfter = ctx, context.AfterFunc(ctx, l.kick)
	}
	if _, ok := ctx.Deadline(); ok && ctx == l.after {
		// A context with a deadline is mostly made for one wait and
		// cancelled right after it: a registration left in place would then
		// kick (and wake) the next wait for nothing, from a goroutine of its
		// own.
		defer func() {
			l.stopAfter()
			l.after, l.stopAfter = nil, nil
		}()
	}
	// The poller calls drained, parks the goroutine while it reports nothing,
	// and calls it again once the socket is readable. Draining inside the
	// callback, after the poller reset its readiness, loses no wake-up.
	l.got, l.werr = dst[:0], nil
	for {
		err := l.conn.Read(l.drained)
		switch {
		case err == nil:
			return l.got, l.werr
		case l.isClosed():
			return nil, closedError("wait", l.name)
		case ctx.Err() != nil:
			return nil, ctx.Err()
		case isDone(done):
			return nil, errDone
		case errors.Is(err, os.ErrDeadlineExceeded):
			// a kick meant for an earlier wait: clear it, then look again at
			// what a kick meant for this one would have changed
			l.file.SetReadDeadline(time.Time{})
			switch {
			case l.isClosed():
				return nil, closedError("wait", l.name)
			case ctx.Err() != nil:
				return nil, ctx.Err()
			case isDone(done):
				return nil, errDone
			case l.woke.Swap(false):
				return l.got, nil
			}
		default:
			return nil, &Error{Op: "wait", Name: l.name, Kind: ErrInternal, Detail: err.Error()}
		}
	}
}

// kick wakes the goroutine waiting in waitInto, which then checks whether its
// context or done channel ended; call it after ending them.
func (l *Listener) kick() { l.file.SetReadDeadline(time.Unix(1, 0)) }

// interrupt makes the wait in waitInto return (now, or the next one) with the
// ids drained so far, possibly none: its caller has news that came without
// an event (see hub.post).
func (l *Listener) interrupt() {
	l.woke.Store(true)
	l.kick()
}

func isDone(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

func (l *Listener) isClosed() bool {
	select {
	case <-l.done:
		return true
	default:
		return false
	}
}

// Close releases the listener and wakes any Wait with ErrClosed. A second Close
// returns ErrClosed.
func (l *Listener) Close() error {
	l.ref.mu.Lock()
	closing := l.ref.h == 0 || l.isClosed()
	if !closing {
		close(l.done)
	}
	l.ref.mu.Unlock()
	if closing {
		return closedError("close listener", l.name)
	}
	// Wake a waiting Read and let it finish before the descriptor goes; its
	// callback takes the handle shared, so no lock may be held here.
	l.kick()
	l.turn <- struct{}{} // no wait runs any more
	if l.stopAfter != nil {
		l.stopAfter()
	}
	l.file.Close()
	l.ref.close(l.lib.ListenerDrop)
	return nil
}
