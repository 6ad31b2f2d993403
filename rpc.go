package iox

import (
	"context"

	"github.com/iox-go/iox/internal/ffi"
)

// rpcOpts are the options the request/response adapters take.
const rpcOpts = optMaxMessage | optPeerTimeout | optSpin | optPoll | optChanCap | optOnDrop | optMaxNodes |
	optSafeOverflow | optMaxClients | optMaxServers | optMaxActiveRequests | optResponseBuffer

// prepareRPC checks what OpenClient and OpenServer check: the name (with room
// for the longest suffix), the options, and that ctx is still live.
func prepareRPC(ctx context.Context, op, name, what string, opts []Option) (options, error) {
	if err := checkName("service name", name, 255-len(rpcRespSuffix)-rpcIDLen, false); err != nil {
		return options{}, &Error{Op: op, Name: name, Kind: ErrInvalidName, Detail: err.Error()}
	}
	o, err := applyOptions(op, name, what, rpcOpts, opts)
	if err != nil {
		return o, err
	}
	if what == "client" {
		if err := o.ch.only(op, name, what, optOnDrop); err != nil {
			return o, err
		}
	}
	if err := o.ch.check(op, name); err != nil {
		return o, err
	}
	if err := o.svc.checkReqResCounts(); err != nil {
		return o, &Error{Op: op, Name: name, Kind: ErrInvalidArgument, Detail: err.Error()}
	}
	return o, ctx.Err()
}

// rpcService joins the request/response service name: it opens it as it is
// when it exists (created by iox or by a program in another language; the
// settings given must be satisfied by it) and otherwise creates it with the
// settings given and iox's defaults for the others, lossless both ways.
func rpcService(node *Node, name string, req, resp PayloadType, o options) (*RequestResponseService, error) {
	base := []Option{WithRequestType(req), WithResponseType(resp), withReqResSettings(o)}
	var settings []Option
	for _, d := range []struct {
		bit optSet
		opt Option
	}{
		{optMaxActiveRequests, MaxActiveRequests(rpcMaxActive)},
		{optResponseBuffer, ResponseBufferSize(rpcRespBuffer)},
		{optMaxClients, MaxClients(rpcMaxClients)},
		{optMaxServers, MaxServers(rpcMaxServers)},
		{optSafeOverflow, SafeOverflow(false)},
	} {
		if o.set&d.bit == 0 {
			settings = append(settings, d.opt)
		}
	}
	return joinService(node.RequestResponse, name, base, settings)
}

// withReqResSettings gives a request/response service the settings of o that
// were set explicitly.
func withReqResSettings(o options) Option {
	return func(dst *options) {
		dst.set |= o.set & (optMaxNodes | optSafeOverflow | optMaxClients | optMaxServers | optMaxActiveRequests | optResponseBuffer)
		src, d := &o.svc.rr, &dst.svc.rr
		for _, f := range []struct {
			bit      uint64
			from, to *uint64
		}{
			{ffi.RRMaxClients, &src.MaxClients, &d.MaxClients},
			{ffi.RRMaxServers, &src.MaxServers, &d.MaxServers},
			{ffi.RRMaxNodes, &src.MaxNodes, &d.MaxNodes},
			{ffi.RRMaxActiveRequests, &src.MaxActiveRequests, &d.MaxActiveRequests},
			{ffi.RRResponseBuffer, &src.ResponseBuffer, &d.ResponseBuffer},
			{ffi.RRSafeOverflowRequests, &src.SafeOverflowRequests, &d.SafeOverflowRequests},
			{ffi.RRSafeOverflowResponses, &src.SafeOverflowResponses, &d.SafeOverflowResponses},
		} {
			if src.Set&f.bit != 0 {
				d.Set |= f.bit
				*f.to = *f.from
			}
		}
	}
}

// rpcEvents joins one of the wake-up event services of a request/response
// service.
func rpcEvents(node *Node, name string, c RequestResponseConfig) (*EventService, error) {
	n := 2*(c.MaxClients+c.MaxServers) + 1 // room for crashed ports not yet removed
	return joinService(node.Event, name, nil, []Option{MaxNotifiers(n), MaxListeners(n), MaxEventID(evMaxID)})
}

// rpcRespName is the name of the event service a client listens on.
func rpcRespName(name string, client UniqueID) string { return name + rpcRespSuffix + client.String() }
