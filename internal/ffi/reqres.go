package ffi

import (
	"unsafe"

	"github.com/ebitengine/purego"
)

// Bits of ReqResOpts.Set.
const (
	RRMaxClients = 1 << iota
	RRMaxServers
	RRMaxNodes
	RRMaxActiveRequests
	RRResponseBuffer
	RRMaxBorrowedResponses
	RRMaxLoanedRequests
	RRFireAndForget
	RRSafeOverflowRequests
	RRSafeOverflowResponses
)

// PayloadOpts mirrors the native struct of the same name: Variant 0 is a
// dynamic slice of Size-byte elements, 1 one fixed-size value.
type PayloadOpts struct{ Variant, Size, Alignment uint64 }

// ReqResOpts mirrors the native struct of the same name.
type ReqResOpts struct {
	Set, MaxClients, MaxServers, MaxNodes, MaxActiveRequests, ResponseBuffer,
	MaxBorrowedResponses, MaxLoanedRequests, FireAndForget, SafeOverflowRequests,
	SafeOverflowResponses uint64
	Request, Response PayloadOpts
}

// ReqResConfig mirrors the native struct of the same name.
type ReqResConfig struct {
	MaxClients, MaxServers, MaxNodes, MaxActiveRequests, ResponseBuffer,
	MaxBorrowedResponses, MaxLoanedRequests, FireAndForget, SafeOverflowRequests,
	SafeOverflowResponses uint64
	Request, Response PayloadOpts
}

// ClientOpts mirrors the native struct of the same name.
type ClientOpts struct{ InitialMaxLen, Allocation, MaxActiveRequests, Spin uint64 }

// ServerOpts mirrors the native struct of the same name.
type ServerOpts struct{ InitialMaxLen, Allocation, MaxLoaned, Spin uint64 }

// ReqResOpen opens or creates a request-response service.
func (l *Lib) ReqResOpen(node Handle, name string, mode int, o *ReqResOpts, reqType, respType string, eb *ErrBuf) (Handle, Status) {
	var h Handle
	c := getCall()
	c.a = [maxArgs]uintptr{uintptr(node),
		c.str(name), uintptr(len(name)), uintptr(mode),
		c.ptr(unsafe.Pointer(o)),
		c.str(reqType), uintptr(len(reqType)),
		c.str(respType), uintptr(len(respType)),
		c.ptr(unsafe.Pointer(&h)), c.bytes(eb[:]), uintptr(len(eb))}
	r := c.run(l.ReqResOpenFn, 12)
	return h, Status(int32(r))
}

// ReqResDrop frees a service handle.
func (l *Lib) ReqResDrop(h Handle) { purego.SyscallN(l.ReqResDropFn, uintptr(h)) }

// ReqResConfigOf returns the settings stored with the service.
func (l *Lib) ReqResConfigOf(h Handle) (cfg ReqResConfig, s Status) {
	c := getCall()
	c.a[0], c.a[1] = uintptr(h), c.ptr(unsafe.Pointer(&cfg))
	r := c.run(l.ReqResConfigFn, 2)
	return cfg, Status(int32(r))
}

// ReqResCounts returns the number of clients and servers.
func (l *Lib) ReqResCounts(h Handle) (clients, servers uint64, s Status) {
	return getCall().pair(l.ReqResCountsFn, h)
}

// ReqResList lists the clients (which=0) or servers (which=1) into out and
// returns how many exist.
func (l *Lib) ReqResList(h Handle, which int, out []PortInfo) (int, Status) {
	c := getCall()
	c.a[0], c.a[1], c.a[3] = uintptr(h), uintptr(which), uintptr(len(out))
	if len(out) > 0 {
		c.a[2] = c.ptr(unsafe.Pointer(&out[0]))
	}
	v, s := split(c.run(l.ReqResListFn, 4))
	return int(v), s
}

// ReqResCleanupDead removes dead nodes' ports from one service.
func (l *Lib) ReqResCleanupDead(h Handle) (cleaned, failed uint64, s Status) {
	return getCall().pair(l.ReqResCleanupDeadFn, h)
}

// ClientCreate creates a client port.
func (l *Lib) ClientCreate(svc Handle, o *ClientOpts, eb *ErrBuf) (Handle, Status) {
	var h Handle
	c := getCall()
	c.a = [maxArgs]uintptr{uintptr(svc), c.ptr(unsafe.Pointer(o)),
		c.ptr(unsafe.Pointer(&h)), c.bytes(eb[:]), uintptr(len(eb))}
	r := c.run(l.ClientCreateFn, 5)
	return h, Status(int32(r))
}

// ClientDrop frees a client.
func (l *Lib) ClientDrop(h Handle) { purego.SyscallN(l.ClientDropFn, uintptr(h)) }

// ClientID returns the client's unique port id.
func (l *Lib) ClientID(h Handle) (lo, hi uint64, s Status) {
	return getCall().pair(l.ClientIDFn, h)
}

// ClientSendNotify copies p into a fresh request, sends it and, when ntf is not
// 0, notifies event id on ntf: one crossing. It returns the pending response.
func (l *Lib) ClientSendNotify(h Handle, p []byte, ntf Handle, id uint64) (Handle, Status) {
	c := getCall()
	c.a[0], c.a[1], c.a[2], c.a[3], c.a[4] = uintptr(h), c.input(p), uintptr(len(p)), uintptr(ntf), uintptr(id)
	v, s := split(c.run(l.ClientSendNotifyFn, 5))
	return Handle(v), s
}

// PendingDrop frees a pending response; its servers see the client gave up.
func (l *Lib) PendingDrop(h Handle) {
	c := getCall()
	c.a[0] = uintptr(h)
	c.run(l.PendingDropFn, 1)
}

// PendingReceive copies up to len(lens) responses into buf. On EBufferTooSmall
// lens[0] holds the size of the next response. live is false once every
// server ended the stream and nothing is left.
func (l *Lib) PendingReceive(h Handle, buf []byte, lens []uint64) (n int, live bool, s Status) {
	c := getCall()
	c.a[0], c.a[1], c.a[2] = uintptr(h), c.bytes(buf), uintptr(len(buf))
	c.a[3], c.a[4], c.a[5] = c.ptr(unsafe.Pointer(&lens[0])), uintptr(len(lens)), c.ptr(unsafe.Pointer(&c.out[0]))
	r := c.invoke(l.PendingReceiveFn, 6)
	live = c.out[0] != 0
	c.release()
	v, s := split(r)
	return int(v), live, s
}

// PendingReceiveOne receives at most one response into buf. n is its length,
// or on EBufferTooSmall the length it needs; live as for PendingReceive.
func (l *Lib) PendingReceiveOne(h Handle, buf []byte) (k, n int, live bool, s Status) {
	c := getCall()
	c.ids[0] = 0
	c.a[0], c.a[1], c.a[2] = uintptr(h), c.bytes(buf), uintptr(len(buf))
	c.a[3], c.a[4], c.a[5] = c.ptr(unsafe.Pointer(&c.out[0])), 1, c.ptr(unsafe.Pointer(&c.ids[0]))
	r := c.invoke(l.PendingReceiveFn, 6)
	n, live = int(c.out[0]), c.ids[0] != 0
	c.release()
	v, s := split(r)
	return int(v), n, live, s
}

// PendingSkip drops the next response unread; false when none waits.
func (l *Lib) PendingSkip(h Handle) (bool, Status) {
	c := getCall()
	c.a[0] = uintptr(h)
	v, s := split(c.run(l.PendingSkipFn, 1))
	return v != 0, s
}

// PendingConnected reports whether a server may still respond or a response waits.
func (l *Lib) PendingConnected(h Handle) (bool, Status) {
	c := getCall()
	c.a[0] = uintptr(h)
	v, s := split(c.run(l.PendingConnectedFn, 1))
	return v != 0, s
}

// ServerCreate creates a server port.
func (l *Lib) ServerCreate(svc Handle, o *ServerOpts, eb *ErrBuf) (Handle, Status) {
	var h Handle
	c := getCall()
	c.a = [maxArgs]uintptr{uintptr(svc), c.ptr(unsafe.Pointer(o)),
		c.ptr(unsafe.Pointer(&h)), c.bytes(eb[:]), uintptr(len(eb))}
	r := c.run(l.ServerCreateFn, 5)
	return h, Status(int32(r))
}

// ServerDrop frees a server; its active requests stay usable.
func (l *Lib) ServerDrop(h Handle) { purego.SyscallN(l.ServerDropFn, uintptr(h)) }

// ServerHasRequests reports whether a request is waiting.
func (l *Lib) ServerHasRequests(h Handle) (bool, Status) {
	c := getCall()
	c.a[0], c.a[1] = uintptr(h), c.ptr(unsafe.Pointer(&c.out[0]))
	r := c.invoke(l.ServerHasRequestsFn, 2)
	has := c.out[0] != 0
	c.release()
	return has, Status(int32(r))
}

// ServerReceive receives at most one request into buf: k is 1 when it got one,
// n its length (on EBufferTooSmall the length it needs), active the handle
// through which it is answered and (lo, hi) the client's port id.
func (l *Lib) ServerReceive(h Handle, buf []byte) (k, n int, active Handle, lo, hi uint64, s Status) {
	c := getCall()
	c.ids[0], c.ids[1], c.ids[2] = 0, 0, 0
	c.a[0], c.a[1], c.a[2] = uintptr(h), c.bytes(buf), uintptr(len(buf))
	c.a[3], c.a[4] = c.ptr(unsafe.Pointer(&c.out[0])), c.ptr(unsafe.Pointer(&c.ids[0]))
	c.a[5], c.a[6] = c.ptr(unsafe.Pointer(&c.ids[1])), c.ptr(unsafe.Pointer(&c.ids[2]))
	r := c.invoke(l.ServerReceiveFn, 7)
	n, active, lo, hi = int(c.out[0]), Handle(c.ids[0]), c.ids[1], c.ids[2]
	c.release()
	v, s := split(r)
	return int(v), n, active, lo, hi, s
}

// ActiveDrop frees an active request, which ends its response stream.
func (l *Lib) ActiveDrop(h Handle) {
	c := getCall()
	c.a[0] = uintptr(h)
	c.run(l.ActiveDropFn, 1)
}

// ActiveConnected reports whether the request's client still waits for responses.
func (l *Lib) ActiveConnected(h Handle) (bool, Status) {
	c := getCall()
	c.a[0] = uintptr(h)
	v, s := split(c.run(l.ActiveConnectedFn, 1))
	return v != 0, s
}

// ActiveRespondNotify copies p into a fresh response, sends it to the request's
// client and, when ntf is not 0, notifies event id on ntf: one crossing.
func (l *Lib) ActiveRespondNotify(h Handle, p []byte, ntf Handle, id uint64) Status {
	c := getCall()
	c.a[0], c.a[1], c.a[2], c.a[3], c.a[4] = uintptr(h), c.input(p), uintptr(len(p)), uintptr(ntf), uintptr(id)
	_, s := split(c.run(l.ActiveRespondNotifyFn, 5))
	return s
}
