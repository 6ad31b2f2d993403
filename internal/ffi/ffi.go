// Package ffi is the only place where iox touches uintptr and unsafe to call the
// native library: a symbol table bound once, and typed wrappers over
// purego.SyscallN (no reflection, no callbacks, one crossing per call).
//
// Hot-path exports return an int64 that is a count or handle when >= 0 and a
// negated Status when < 0, so no out-parameter has to escape to the heap.
//
// Native code gets Go memory (message buffers, length arrays, option structs,
// strings, out-parameters) as addresses in uintptr arguments. A uintptr keeps
// nothing alive and is not updated when the runtime moves an object (goroutine
// stacks move when they grow), so every such address is taken through a call
// (call.go), which pins the object with a runtime.Pinner for the length of the
// native call: pinned, an object is on the heap, stays where it is and is not
// freed. That is the runtime's documented contract for handing Go memory to
// foreign code; it does not rest on the collector never moving heap objects nor
// on purego.SyscallN's //go:uintptrescapes, which covers only conversions written
// in its own argument list. Native code keeps no address after a call returns.
// A call pins itself for its life, so small inputs copied into it and its
// out-parameters need no pin of their own; calls are kept in a free list, so
// the hot ones allocate nothing. Calls that pass no Go memory may use
// purego.SyscallN directly.
package ffi

import (
	"fmt"
	"reflect"
	"unsafe"

	"github.com/ebitengine/purego"

	"github.com/iox-go/iox/loader"
)

// Status is a native status code.
type Status int32

// Native status codes; keep in step with internal/native/src/status.rs.
const (
	OK Status = iota
	EInvalidArgument
	EInvalidName
	ENotFound
	EAlreadyExists
	EIncompatibleType
	EIncompatible
	EVersionMismatch
	ELimitReached
	EPermission
	ETooLarge
	EWouldBlock
	EBufferTooSmall
	EOutOfMemory
	EConnection
	EBusy
	EInternal
	EPanic
	EEventID
	ETooManyLoans
	EDisconnected
)

// Modes of opening a service.
const (
	Open         = 0
	Create       = 1
	OpenOrCreate = 2
)

// Handle is an opaque native handle.
type Handle uintptr

// Lib holds the resolved addresses of every native export.
type Lib struct {
	Path string

	StatusTextFn          uintptr `sym:"iox_status_text"`
	SetLogLevelFn         uintptr `sym:"iox_set_log_level"`
	ServiceNameCheckFn    uintptr `sym:"iox_service_name_check"`
	IceoryxVersionFn      uintptr `sym:"iox_iceoryx2_version"`
	NodeCreateFn          uintptr `sym:"iox_node_create"`
	NodeDropFn            uintptr `sym:"iox_node_drop"`
	NodeCleanupDeadFn     uintptr `sym:"iox_node_cleanup_dead"`
	ServiceRemoveStaleFn  uintptr `sym:"iox_service_remove_stale"`
	NodeIDFn              uintptr `sym:"iox_node_id"`
	PubSubOpenFn          uintptr `sym:"iox_pubsub_open"`
	PubSubDropFn          uintptr `sym:"iox_pubsub_drop"`
	PubSubCountsFn        uintptr `sym:"iox_pubsub_counts"`
	PubSubConfigFn        uintptr `sym:"iox_pubsub_config"`
	PubSubDescribeFn      uintptr `sym:"iox_pubsub_describe"`
	PubSubCleanupDeadFn   uintptr `sym:"iox_pubsub_cleanup_dead"`
	PubSubListFn          uintptr `sym:"iox_pubsub_list"`
	SubscriberIDFn        uintptr `sym:"iox_subscriber_id"`
	PublisherCreateFn     uintptr `sym:"iox_publisher_create"`
	PublisherDropFn       uintptr `sym:"iox_publisher_drop"`
	PublisherSendCopyFn   uintptr `sym:"iox_publisher_send_copy"`
	PublisherSendManyFn   uintptr `sym:"iox_publisher_send_batch"`
	PublisherLoanFn       uintptr `sym:"iox_publisher_loan"`
	PublisherUpdateFn     uintptr `sym:"iox_publisher_update"`
	SampleMutSendFn       uintptr `sym:"iox_sample_mut_send"`
	SampleMutDropFn       uintptr `sym:"iox_sample_mut_drop"`
	SampleMutSendNotifyFn uintptr `sym:"iox_sample_mut_send_notify"`
	SubscriberCreateFn    uintptr `sym:"iox_subscriber_create"`
	SubscriberDropFn      uintptr `sym:"iox_subscriber_drop"`
	SubscriberReceiveFn   uintptr `sym:"iox_subscriber_receive"`
	SubscriberBorrowFn    uintptr `sym:"iox_subscriber_borrow"`
	SubscriberHasFn       uintptr `sym:"iox_subscriber_has_samples"`
	SampleReleaseFn       uintptr `sym:"iox_sample_release"`
	EventOpenFn           uintptr `sym:"iox_event_open"`
	EventDropFn           uintptr `sym:"iox_event_drop"`
	EventInfoFn           uintptr `sym:"iox_event_info"`
	EventConfigFn         uintptr `sym:"iox_event_config"`
	EventDescribeFn       uintptr `sym:"iox_event_describe"`
	NotifierCreateFn      uintptr `sym:"iox_notifier_create"`
	NotifierDropFn        uintptr `sym:"iox_notifier_drop"`
	NotifierNotifyFn      uintptr `sym:"iox_notifier_notify"`
	ListenerCreateFn      uintptr `sym:"iox_listener_create"`
	ListenerDropFn        uintptr `sym:"iox_listener_drop"`
	ListenerFdFn          uintptr `sym:"iox_listener_fd"`
	ListenerTryWaitFn     uintptr `sym:"iox_listener_try_wait"`
	NodeIDDetailsFn       uintptr `sym:"iox_node_id_details"`
	PublisherSendNotifyFn uintptr `sym:"iox_publisher_send_notify"`
	PanicCountFn          uintptr `sym:"iox_panic_count"`
	RemoveIsolationFn     uintptr `sym:"iox_remove_isolation"`
	ShmCapacityFn         uintptr `sym:"iox_shm_capacity"`
	ServiceListFn         uintptr `sym:"iox_service_list"`
	NodeListFn            uintptr `sym:"iox_node_list"`
	WaitWordCreateFn      uintptr `sym:"iox_waitword_create"`
	WaitWordOpenFn        uintptr `sym:"iox_waitword_open"`
	WaitWordDropFn        uintptr `sym:"iox_waitword_drop"`
	WaitWordRemoveFn      uintptr `sym:"iox_waitword_remove"`

	ReqResOpenFn          uintptr `sym:"iox_reqres_open"`
	ReqResDropFn          uintptr `sym:"iox_reqres_drop"`
	ReqResConfigFn        uintptr `sym:"iox_reqres_config"`
	ReqResCountsFn        uintptr `sym:"iox_reqres_counts"`
	ReqResListFn          uintptr `sym:"iox_reqres_list"`
	ReqResCleanupDeadFn   uintptr `sym:"iox_reqres_cleanup_dead"`
	ReqResDescribeFn      uintptr `sym:"iox_reqres_describe"`
	ClientCreateFn        uintptr `sym:"iox_client_create"`
	ClientDropFn          uintptr `sym:"iox_client_drop"`
	ClientIDFn            uintptr `sym:"iox_client_id"`
	ClientSendNotifyFn    uintptr `sym:"iox_client_send_notify"`
	PendingDropFn         uintptr `sym:"iox_pending_drop"`
	PendingReceiveFn      uintptr `sym:"iox_pending_receive"`
	PendingConnectedFn    uintptr `sym:"iox_pending_connected"`
	PendingSkipFn         uintptr `sym:"iox_pending_skip"`
	ServerCreateFn        uintptr `sym:"iox_server_create"`
	ServerDropFn          uintptr `sym:"iox_server_drop"`
	ServerHasRequestsFn   uintptr `sym:"iox_server_has_requests"`
	ServerReceiveFn       uintptr `sym:"iox_server_receive"`
	ActiveDropFn          uintptr `sym:"iox_active_drop"`
	ActiveConnectedFn     uintptr `sym:"iox_active_connected"`
	ActiveRespondNotifyFn uintptr `sym:"iox_active_respond_notify"`

	BlackboardSyms // blackboard.go
}

// Bind resolves every symbol of the table from an opened library.
func Bind(l *loader.Library) (*Lib, error) {
	lib := &Lib{Path: l.Path}
	v := reflect.ValueOf(lib).Elem()
	for _, f := range reflect.VisibleFields(v.Type()) { // with those of embedded tables
		name := f.Tag.Get("sym")
		if name == "" {
			continue
		}
		addr, err := l.Symbol(name)
		if err != nil {
			return nil, err
		}
		v.FieldByIndex(f.Index).SetUint(uint64(addr))
	}
	return lib, nil
}

// split turns a hot-path return value into a value and a status.
func split(r uintptr) (uintptr, Status) {
	v := int64(r)
	if v < 0 {
		return 0, Status(-v)
	}
	return uintptr(v), OK
}

// ErrBuf receives the crate's own description of a cold-path failure.
type ErrBuf [512]byte

func (b *ErrBuf) String() string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b[:])
}

// StatusText returns the native description of a status code.
func (l *Lib) StatusText(s Status) string {
	var buf [128]byte
	c := getCall()
	c.a[0], c.a[1], c.a[2] = uintptr(s), c.bytes(buf[:]), uintptr(len(buf))
	r := c.run(l.StatusTextFn, 3)
	return string(buf[:min(int(r), len(buf))])
}

// IceoryxVersion returns the iceoryx2 release the library was built on.
func (l *Lib) IceoryxVersion() string {
	var buf [64]byte
	c := getCall()
	c.a[0], c.a[1] = c.bytes(buf[:]), uintptr(len(buf))
	r := c.run(l.IceoryxVersionFn, 2)
	return string(buf[:min(int(r), len(buf))])
}

// PanicCount returns how many panics the native library caught since it was
// loaded (each logged as one line and returned as EPanic).
func (l *Lib) PanicCount() uint64 {
	r, _, _ := purego.SyscallN(l.PanicCountFn)
	return uint64(r)
}

// SetLogLevel sets the crate's global log level (0 trace .. 5 fatal).
func (l *Lib) SetLogLevel(level int) Status {
	r, _, _ := purego.SyscallN(l.SetLogLevelFn, uintptr(level))
	return Status(int32(r))
}

// ServiceNameCheck applies the crate's service-name rules.
func (l *Lib) ServiceNameCheck(name string) Status {
	c := getCall()
	c.a[0], c.a[1] = c.str(name), uintptr(len(name))
	r := c.run(l.ServiceNameCheckFn, 2)
	return Status(int32(r))
}

// NodeSharedNamespace is the NodeCreate flag that leaves the namespace open to
// nodes of other users.
const NodeSharedNamespace = 1 << 0

// NodeNoAutoCleanup is the NodeCreate flag that leaves dead nodes' resources
// in place until an explicit NodeCleanupDead.
const NodeNoAutoCleanup = 1 << 1

// NodeCreate creates a node; prefix and root select an isolated configuration.
func (l *Lib) NodeCreate(name, prefix, root string, flags uint32, eb *ErrBuf) (Handle, Status) {
	var h Handle
	c := getCall()
	c.a = [maxArgs]uintptr{
		c.str(name), uintptr(len(name)),
		c.str(prefix), uintptr(len(prefix)),
		c.str(root), uintptr(len(root)), uintptr(flags),
		c.ptr(unsafe.Pointer(&h)), c.bytes(eb[:]), uintptr(len(eb))}
	r := c.run(l.NodeCreateFn, 10)
	return h, Status(int32(r))
}

// RemoveIsolation deletes the shared-memory objects and the root folder of the
// namespace that prefix and root select.
func (l *Lib) RemoveIsolation(prefix, root string, eb *ErrBuf) Status {
	c := getCall()
	c.a = [maxArgs]uintptr{c.str(prefix), uintptr(len(prefix)), c.str(root), uintptr(len(root)),
		c.bytes(eb[:]), uintptr(len(eb))}
	r := c.run(l.RemoveIsolationFn, 6)
	return Status(int32(r))
}

// ShmCapacity returns the size in bytes of the file system that holds
// shared-memory objects (0 when unknown).
func (l *Lib) ShmCapacity() uint64 {
	r, _, _ := purego.SyscallN(l.ShmCapacityFn)
	return uint64(r)
}

// NodeDrop frees a node handle.
func (l *Lib) NodeDrop(h Handle) { purego.SyscallN(l.NodeDropFn, uintptr(h)) }

// ServiceRemoveStale removes a service that a dead process left half created or
// half removed (pattern 0 publish-subscribe, 1 event, 2 request-response).
func (l *Lib) ServiceRemoveStale(h Handle, name string, pattern int, eb *ErrBuf) (bool, Status) {
	var removed uint64
	c := getCall()
	c.a = [maxArgs]uintptr{uintptr(h), c.str(name), uintptr(len(name)),
		uintptr(pattern), c.ptr(unsafe.Pointer(&removed)), c.bytes(eb[:]), uintptr(len(eb))}
	r := c.run(l.ServiceRemoveStaleFn, 7)
	return removed != 0, Status(int32(r))
}

// NodeCleanupDead removes the resources of dead nodes.
func (l *Lib) NodeCleanupDead(h Handle) (cleaned, failed uint64, s Status) {
	return getCall().pair(l.NodeCleanupDeadFn, h)
}

// NodeID returns the node's 128-bit unique id.
func (l *Lib) NodeID(h Handle) (lo, hi uint64, s Status) {
	return getCall().pair(l.NodeIDFn, h)
}

// Bits of PubSubOpts.Set.
const (
	PSMaxPublishers = 1 << iota
	PSMaxSubscribers
	PSMaxNodes
	PSBufferSize
	PSHistorySize
	PSSafeOverflow
	PSMaxBorrowed
)

// PubSubOpts mirrors the native struct of the same name.
type PubSubOpts struct {
	Set, MaxPublishers, MaxSubscribers, MaxNodes, BufferSize, HistorySize,
	SafeOverflow, MaxBorrowed, Variant, Size, Alignment, HeaderSize uint64
}

// TypeNameMax is the longest type name iceoryx2 stores.
const TypeNameMax = 256

// PubSubConfig mirrors the native struct of the same name. Variants: 0 a
// dynamic slice, 1 fixed size.
type PubSubConfig struct {
	MaxPublishers, MaxSubscribers, MaxNodes, BufferSize, HistorySize,
	SafeOverflow, MaxBorrowed, Variant, Size, Alignment, HeaderSize,
	HeaderAlignment, HeaderVariant, PayloadNameLen, HeaderNameLen uint64
	PayloadName, HeaderName [TypeNameMax]byte
}

// PayloadTypeName returns the stored payload type name.
func (c *PubSubConfig) PayloadTypeName() string {
	return string(c.PayloadName[:min(c.PayloadNameLen, TypeNameMax)])
}

// HeaderTypeName returns the stored user-header type name.
func (c *PubSubConfig) HeaderTypeName() string {
	return string(c.HeaderName[:min(c.HeaderNameLen, TypeNameMax)])
}

// PubSubOpen opens or creates a publish-subscribe service.
func (l *Lib) PubSubOpen(node Handle, name string, mode int, o *PubSubOpts, typeName string, eb *ErrBuf) (Handle, Status) {
	var h Handle
	c := getCall()
	c.a = [maxArgs]uintptr{uintptr(node),
		c.str(name), uintptr(len(name)), uintptr(mode),
		c.ptr(unsafe.Pointer(o)),
		c.str(typeName), uintptr(len(typeName)),
		c.ptr(unsafe.Pointer(&h)), c.bytes(eb[:]), uintptr(len(eb))}
	r := c.run(l.PubSubOpenFn, 10)
	return h, Status(int32(r))
}

// PubSubDrop frees a service handle.
func (l *Lib) PubSubDrop(h Handle) { purego.SyscallN(l.PubSubDropFn, uintptr(h)) }

// PubSubCounts returns the number of publishers and subscribers.
func (l *Lib) PubSubCounts(h Handle) (pubs, subs uint64, s Status) {
	return getCall().pair(l.PubSubCountsFn, h)
}

// PubSubConfigOf returns the settings stored with the service.
func (l *Lib) PubSubConfigOf(h Handle) (cfg PubSubConfig, s Status) {
	c := getCall()
	c.a[0], c.a[1] = uintptr(h), c.ptr(unsafe.Pointer(&cfg))
	r := c.run(l.PubSubConfigFn, 2)
	return cfg, Status(int32(r))
}

// PubSubDescribe returns the settings of the existing publish-subscribe service
// name without joining it.
func (l *Lib) PubSubDescribe(node Handle, name string, eb *ErrBuf) (cfg PubSubConfig, s Status) {
	c := getCall()
	c.a = [maxArgs]uintptr{uintptr(node), c.str(name), uintptr(len(name)),
		c.ptr(unsafe.Pointer(&cfg)), c.bytes(eb[:]), uintptr(len(eb))}
	r := c.run(l.PubSubDescribeFn, 6)
	return cfg, Status(int32(r))
}

// PubSubCleanupDead removes dead nodes' ports from one service.
func (l *Lib) PubSubCleanupDead(h Handle) (cleaned, failed uint64, s Status) {
	return getCall().pair(l.PubSubCleanupDeadFn, h)
}

// PortInfo identifies one port of a service and the node that owns it.
type PortInfo struct{ PortLo, PortHi, NodeLo, NodeHi uint64 }

// PubSubList lists the publishers (which=0) or subscribers (which=1) into out and
// returns how many exist.
func (l *Lib) PubSubList(h Handle, which int, out []PortInfo) (int, Status) {
	c := getCall()
	c.a[0], c.a[1], c.a[3] = uintptr(h), uintptr(which), uintptr(len(out))
	if len(out) > 0 {
		c.a[2] = c.ptr(unsafe.Pointer(&out[0]))
	}
	v, s := split(c.run(l.PubSubListFn, 4))
	return int(v), s
}

// Publisher backpressure modes.
const (
	BPDiscard = 0
	BPFail    = 1
)

// PublisherOpts mirrors the native struct of the same name.
type PublisherOpts struct {
	InitialMaxLen, Allocation, MaxLoaned, Backpressure, Spin uint64
}

// PublisherCreate creates a publisher port.
func (l *Lib) PublisherCreate(svc Handle, o *PublisherOpts, eb *ErrBuf) (Handle, Status) {
	var h Handle
	c := getCall()
	c.a = [maxArgs]uintptr{uintptr(svc), c.ptr(unsafe.Pointer(o)),
		c.ptr(unsafe.Pointer(&h)), c.bytes(eb[:]), uintptr(len(eb))}
	r := c.run(l.PublisherCreateFn, 5)
	return h, Status(int32(r))
}

// PublisherDrop frees a publisher.
func (l *Lib) PublisherDrop(h Handle) { purego.SyscallN(l.PublisherDropFn, uintptr(h)) }

// PublisherSendCopy copies p into a fresh sample and sends it; returns the recipients.
func (l *Lib) PublisherSendCopy(h Handle, p []byte) (int, Status) {
	c := getCall()
	c.a[0], c.a[1], c.a[2] = uintptr(h), c.input(p), uintptr(len(p))
	v, s := split(c.run(l.PublisherSendCopyFn, 4))
	return int(v), s
}

// PublisherSendCopyHeader is PublisherSendCopy with the service's user header taken
// from hdr (which must hold the service's header size).
func (l *Lib) PublisherSendCopyHeader(h Handle, p []byte, hdr []byte) (int, Status) {
	c := getCall()
	c.a[0], c.a[1], c.a[2], c.a[3] = uintptr(h), c.input(p), uintptr(len(p)), c.input(hdr)
	v, s := split(c.run(l.PublisherSendCopyFn, 4))
	return int(v), s
}

// PublisherSendNotify sends p with the user header hdr (may be empty) and, when
// it reached a subscriber and ntf is not 0, notifies event id on ntf: one
// crossing. With the receiver's wait word w (may be nil) it notifies only when
// the receiver parks.
func (l *Lib) PublisherSendNotify(h Handle, p []byte, hdr []byte, ntf Handle, id uint64, w *WaitWord) (int, Status) {
	c := getCall()
	c.a[0], c.a[1], c.a[2], c.a[3] = uintptr(h), c.input(p), uintptr(len(p)), c.input(hdr)
	c.a[4], c.a[5], c.a[6] = uintptr(ntf), uintptr(id), w.addr()
	v, s := split(c.run(l.PublisherSendNotifyFn, 7))
	return int(v), s
}

// SampleMutSendNotify sends a loaned sample and frees its handle, then notifies
// as PublisherSendNotify does (ntf may be 0): a zero-copy send in one crossing.
// It fails with EWouldBlock when fewer than minRecipients subscribers got it
// (AllSubscribers: every subscriber of the service).
func (l *Lib) SampleMutSendNotify(h Handle, ntf Handle, id uint64, w *WaitWord, minRecipients int) (int, Status) {
	c := getCall()
	c.a[0], c.a[1], c.a[2], c.a[3], c.a[4] = uintptr(h), uintptr(ntf), uintptr(id), w.addr(), uintptr(minRecipients)
	v, s := split(c.run(l.SampleMutSendNotifyFn, 5))
	return int(v), s
}

// NodeIDDetails returns the process id that created node id (lo, hi) and the
// CLOCK_MONOTONIC time in ns at which it did.
func (l *Lib) NodeIDDetails(lo, hi uint64) (pid int, createdNs int64, s Status) {
	c := getCall()
	c.a[0], c.a[1] = uintptr(lo), uintptr(hi)
	c.a[2], c.a[3] = c.ptr(unsafe.Pointer(&c.out[0])), c.ptr(unsafe.Pointer(&c.ids[0]))
	r := c.invoke(l.NodeIDDetailsFn, 4)
	pid, createdNs = int(c.out[0]), int64(c.ids[0])
	c.release()
	return pid, createdNs, Status(int32(r))
}

// AllSubscribers as minRecipients asks every subscriber of the service to get a message.
const AllSubscribers = -1

// PublisherSendBatch sends the messages of lens, back to back in data (with user
// headers from hdrs when not empty), in one crossing. It stops before the first
// that fails or reaches fewer than minRecipients subscribers and returns how many
// it sent.
func (l *Lib) PublisherSendBatch(h Handle, data []byte, lens []uint64, hdrs []byte, minRecipients int) (int, Status) {
	c := getCall()
	c.a[0], c.a[1], c.a[2] = uintptr(h), c.input(data), c.inputWords(lens)
	c.a[3], c.a[4], c.a[5] = uintptr(len(lens)), c.input(hdrs), uintptr(minRecipients)
	v, s := split(c.run(l.PublisherSendManyFn, 6))
	return int(v), s
}

// PublisherLoan loans a writable sample of n bytes in shared memory.
func (l *Lib) PublisherLoan(h Handle, n int) (Handle, Status) {
	c := getCall()
	c.a[0], c.a[1] = uintptr(h), uintptr(n)
	v, s := split(c.run(l.PublisherLoanFn, 2))
	return Handle(v), s
}

// PublisherUpdate connects to new subscribers (delivers history).
func (l *Lib) PublisherUpdate(h Handle) Status {
	r, _, _ := purego.SyscallN(l.PublisherUpdateFn, uintptr(h))
	return Status(int32(r))
}

// SampleBytes views the payload of a loaned or borrowed sample handle, whose first
// two words are the payload address and length.
func SampleBytes(h Handle) []byte {
	words := (*[2]uintptr)(*(*unsafe.Pointer)(unsafe.Pointer(&h)))
	if words[1] == 0 {
		return []byte{}
	}
	data := *(*unsafe.Pointer)(unsafe.Pointer(&words[0]))
	return unsafe.Slice((*byte)(data), int(words[1]))
}

// SampleHeader views the n-byte user header of a loaned or borrowed sample
// handle, whose third word is the header's address.
func SampleHeader(h Handle, n int) []byte {
	words := (*[3]unsafe.Pointer)(*(*unsafe.Pointer)(unsafe.Pointer(&h)))
	if n == 0 || words[2] == nil {
		return nil
	}
	return unsafe.Slice((*byte)(words[2]), n)
}

// SampleMutSend sends a loaned sample and frees its handle.
func (l *Lib) SampleMutSend(h Handle) (int, Status) {
	c := getCall()
	c.a[0] = uintptr(h)
	v, s := split(c.run(l.SampleMutSendFn, 1))
	return int(v), s
}

// SampleMutDrop returns a loaned sample unsent.
func (l *Lib) SampleMutDrop(h Handle) {
	c := getCall()
	c.a[0] = uintptr(h)
	c.run(l.SampleMutDropFn, 1)
}

// SubscriberCreate creates a subscriber port (bufferSize 0 = the service's maximum).
func (l *Lib) SubscriberCreate(svc Handle, bufferSize uint64, eb *ErrBuf) (Handle, Status) {
	var h Handle
	c := getCall()
	c.a = [maxArgs]uintptr{uintptr(svc), uintptr(bufferSize),
		c.ptr(unsafe.Pointer(&h)), c.bytes(eb[:]), uintptr(len(eb))}
	r := c.run(l.SubscriberCreateFn, 5)
	return h, Status(int32(r))
}

// SubscriberDrop frees a subscriber.
func (l *Lib) SubscriberDrop(h Handle) { purego.SyscallN(l.SubscriberDropFn, uintptr(h)) }

// SubscriberReceive drains up to len(lens) messages into buf. On EBufferTooSmall
// lens[0] holds the size of the next message. When hdrs is not empty it receives
// each message's user header (hdrs holds exactly len(lens) headers).
//
// lens and hdrs are received into the call itself when they fit there, and
// the entries written are copied out after it: that costs less than pinning
// them.
func (l *Lib) SubscriberReceive(h Handle, buf []byte, lens []uint64, hdrs []byte) (int, Status) {
	c := getCall()
	c.a[0], c.a[1], c.a[2] = uintptr(h), c.bytes(buf), uintptr(len(buf))
	c.a[4] = uintptr(len(lens))
	inCall := len(lens) > 0 && len(lens)+(len(hdrs)+7)/8 <= len(c.in)
	if inCall {
		c.a[3] = c.room(len(lens))
		if len(hdrs) > 0 {
			c.a[5] = c.room((len(hdrs) + 7) / 8)
		}
	} else {
		c.a[3], c.a[5] = c.ptr(unsafe.Pointer(&lens[0])), c.bytes(hdrs)
	}
	v, s := split(c.invoke(l.SubscriberReceiveFn, 6))
	if inCall {
		k := int(v)
		switch {
		case s == EBufferTooSmall:
			k = 1
		case s != OK:
			k = 0
		}
		copy(lens[:k], c.in[:k])
		if len(hdrs) > 0 {
			hs := len(hdrs) / len(lens)
			room := unsafe.Slice((*byte)(unsafe.Pointer(&c.in[len(lens)])), len(hdrs))
			copy(hdrs[:k*hs], room)
		}
	}
	c.release()
	return int(v), s
}

// SubscriberReceiveOne receives at most one message into buf. n is its length, or
// on EBufferTooSmall the length it needs.
func (l *Lib) SubscriberReceiveOne(h Handle, buf []byte) (k, n int, s Status) {
	c := getCall()
	c.a[0], c.a[1], c.a[2] = uintptr(h), c.bytes(buf), uintptr(len(buf))
	c.a[3], c.a[4] = c.ptr(unsafe.Pointer(&c.out[0])), 1
	r := c.invoke(l.SubscriberReceiveFn, 6)
	n = int(c.out[0])
	c.release()
	v, s := split(r)
	return int(v), n, s
}

// SubscriberID returns the subscriber's unique port id.
func (l *Lib) SubscriberID(h Handle) (lo, hi uint64, s Status) {
	return getCall().pair(l.SubscriberIDFn, h)
}

// SubscriberBorrow borrows the next message in place (0 when none waits).
func (l *Lib) SubscriberBorrow(h Handle) (Handle, Status) {
	c := getCall()
	c.a[0] = uintptr(h)
	v, s := split(c.run(l.SubscriberBorrowFn, 1))
	return Handle(v), s
}

// SampleRelease returns a borrowed message.
func (l *Lib) SampleRelease(h Handle) {
	c := getCall()
	c.a[0] = uintptr(h)
	c.run(l.SampleReleaseFn, 1)
}

// SubscriberHasSamples reports whether a message is waiting.
func (l *Lib) SubscriberHasSamples(h Handle) (bool, Status) {
	c := getCall()
	c.a[0], c.a[1] = uintptr(h), c.ptr(unsafe.Pointer(&c.out[0]))
	r := c.invoke(l.SubscriberHasFn, 2)
	has := c.out[0] != 0
	c.release()
	return has, Status(int32(r))
}

// Bits of EventOpts.Set.
const (
	EVMaxNotifiers = 1 << iota
	EVMaxListeners
	EVMaxNodes
	EVMaxEventID
	EVCreatedEvent
	EVDroppedEvent
	EVDeadEvent
)

// EventOpts mirrors the native struct of the same name.
type EventOpts struct {
	Set, MaxNotifiers, MaxListeners, MaxNodes, MaxEventID, CreatedEvent, DroppedEvent, DeadEvent uint64
}

// EventOpen opens or creates an event service.
func (l *Lib) EventOpen(node Handle, name string, mode int, o *EventOpts, eb *ErrBuf) (Handle, Status) {
	var h Handle
	c := getCall()
	c.a = [maxArgs]uintptr{uintptr(node),
		c.str(name), uintptr(len(name)), uintptr(mode),
		c.ptr(unsafe.Pointer(o)), c.ptr(unsafe.Pointer(&h)),
		c.bytes(eb[:]), uintptr(len(eb))}
	r := c.run(l.EventOpenFn, 8)
	return h, Status(int32(r))
}

// EventDrop frees an event service handle.
func (l *Lib) EventDrop(h Handle) { purego.SyscallN(l.EventDropFn, uintptr(h)) }

// EventInfo returns the number of notifiers and listeners and the largest event id.
func (l *Lib) EventInfo(h Handle) (notifiers, listeners, maxID uint64, s Status) {
	c := getCall()
	c.a[0], c.a[1] = uintptr(h), c.ptr(unsafe.Pointer(&c.out[0]))
	c.a[2], c.a[3] = c.ptr(unsafe.Pointer(&c.out[1])), c.ptr(unsafe.Pointer(&c.ids[0]))
	r := c.invoke(l.EventInfoFn, 4)
	notifiers, listeners, maxID = c.out[0], c.out[1], c.ids[0]
	c.release()
	return notifiers, listeners, maxID, Status(int32(r))
}

// EVHasDeadline is the EventConfig.Set bit of a service with a deadline.
const EVHasDeadline = 1 << 7

// EventConfig mirrors the native struct of the same name: the notifier events
// and the deadline count only when their bit is in Set.
type EventConfig struct {
	Set, MaxNotifiers, MaxListeners, MaxNodes, MaxEventID, CreatedEvent, DroppedEvent, DeadEvent, DeadlineNs uint64
}

// EventConfigOf returns the settings stored with the event service.
func (l *Lib) EventConfigOf(h Handle) (cfg EventConfig, s Status) {
	c := getCall()
	c.a[0], c.a[1] = uintptr(h), c.ptr(unsafe.Pointer(&cfg))
	r := c.run(l.EventConfigFn, 2)
	return cfg, Status(int32(r))
}

// EventDescribe returns the settings of the existing event service name
// without joining it.
func (l *Lib) EventDescribe(node Handle, name string, eb *ErrBuf) (cfg EventConfig, s Status) {
	c := getCall()
	c.a = [maxArgs]uintptr{uintptr(node), c.str(name), uintptr(len(name)),
		c.ptr(unsafe.Pointer(&cfg)), c.bytes(eb[:]), uintptr(len(eb))}
	r := c.run(l.EventDescribeFn, 6)
	return cfg, Status(int32(r))
}

// NotifierCreate creates a notifier port.
func (l *Lib) NotifierCreate(svc Handle, defaultID uint64, eb *ErrBuf) (Handle, Status) {
	var h Handle
	c := getCall()
	c.a = [maxArgs]uintptr{uintptr(svc), uintptr(defaultID),
		c.ptr(unsafe.Pointer(&h)), c.bytes(eb[:]), uintptr(len(eb))}
	r := c.run(l.NotifierCreateFn, 5)
	return h, Status(int32(r))
}

// NotifierDrop frees a notifier.
func (l *Lib) NotifierDrop(h Handle) { purego.SyscallN(l.NotifierDropFn, uintptr(h)) }

// NotifierNotify signals event id to every listener; returns how many were reached.
func (l *Lib) NotifierNotify(h Handle, id uint64) (int, Status) {
	c := getCall()
	c.a[0], c.a[1] = uintptr(h), uintptr(id)
	v, s := split(c.run(l.NotifierNotifyFn, 2))
	return int(v), s
}

// ListenerCreate creates a listener port.
func (l *Lib) ListenerCreate(svc Handle, eb *ErrBuf) (Handle, Status) {
	var h Handle
	c := getCall()
	c.a = [maxArgs]uintptr{uintptr(svc),
		c.ptr(unsafe.Pointer(&h)), c.bytes(eb[:]), uintptr(len(eb))}
	r := c.run(l.ListenerCreateFn, 4)
	return h, Status(int32(r))
}

// ListenerDrop frees a listener (and closes its file descriptor).
func (l *Lib) ListenerDrop(h Handle) { purego.SyscallN(l.ListenerDropFn, uintptr(h)) }

// ListenerFd returns the listener's file descriptor, owned by the library.
func (l *Lib) ListenerFd(h Handle) int {
	r, _, _ := purego.SyscallN(l.ListenerFdFn, uintptr(h))
	return int(int32(r))
}

// ListenerDrain drains every pending event id without blocking and appends them
// to dst as E.
func ListenerDrain[E ~uint64](l *Lib, h Handle, dst []E) ([]E, Status) {
	c := getCall()
	defer c.release()
	for {
		c.a[0], c.a[1], c.a[2] = uintptr(h), c.ptr(unsafe.Pointer(&c.ids[0])), uintptr(len(c.ids))
		k, s := split(c.invoke(l.ListenerTryWaitFn, 3))
		if s != OK {
			return dst, s
		}
		for _, id := range c.ids[:k] {
			dst = append(dst, E(id))
		}
		if int(k) < len(c.ids) {
			return dst, OK
		}
	}
}

// String describes a status for debugging.
func (s Status) String() string { return fmt.Sprintf("iox status %d", int32(s)) }
