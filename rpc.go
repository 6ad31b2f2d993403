package iox

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/iox-go/iox/internal/ffi"
)

// rpcOpts are the options the request/response adapters take.
const rpcOpts = optMaxMessage | optPeerTimeout | optSpin | optPoll | optChanCap | optOnDrop | optMaxNodes |
	optSafeOverflow | optMaxClients | optMaxServers | optMaxActiveRequests | optResponseBuffer

// prepareRPC checks what OpenClient and OpenServer check: the name (with room
// for the longest suffix), the options, and that ctx is still live.
func prepareRPC(ctx context.Context, op, name, what string, opts []Option, args ...string) (options, error) {
	if err := refuse(op, name, append([]string{ctxArg(ctx)}, args...)...); err != nil {
		return options{}, err
	}
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
	svc, err := joinService(node.RequestResponse, name, base, settings)
	var e *Error
	switch {
	case err == nil || !errors.As(err, &e):
	case errors.Is(err, ErrOutOfMemory):
		e.Detail += "; " + rpcMemoryRule
	case errors.Is(err, ErrIncompatible) && !errors.Is(err, ErrIncompatibleType):
		if why := rpcShortfall(node, name, req, resp, o); why != "" {
			e.Detail += "; " + why
		}
	}
	return svc, err
}

// rpcMemoryRule is what a request/response service's shared memory grows
// with (the native library's estimate, reqres.rs, has the details): each
// client keeps, for each server, a channel per request slot (2 ×
// MaxServers × MaxActiveRequests), each with a flag for every response the
// server can hold (2 × MaxClients × MaxActiveRequests × (ResponseBufferSize +
// 4)) in each of the 256 segments a growing data segment may have.
const rpcMemoryRule = "each client–server pair of a request/response service takes about " +
	"1 KiB × MaxClients × MaxServers × MaxActiveRequests² × (ResponseBufferSize + 4) of shared memory, " +
	"so lower MaxActiveRequests first (iox's defaults, 4 × 1 × 16² × 8, take about 8 MiB per pair)"

// rpcShortfall names the settings of o that ask for more than the existing
// service name was created with, "" when it finds none.
func rpcShortfall(node *Node, name string, req, resp PayloadType, o options) string {
	svc, err := node.RequestResponse(name, WithRequestType(req), WithResponseType(resp), OpenOnly())
	if err != nil {
		return ""
	}
	has := svc.Config()
	svc.Close()
	var short []string
	for _, s := range []struct {
		name      string
		bit       optSet
		want, got int
	}{
		{"MaxActiveRequests", optMaxActiveRequests, int(o.svc.rr.MaxActiveRequests), has.MaxActiveRequests},
		{"ResponseBufferSize", optResponseBuffer, int(o.svc.rr.ResponseBuffer), has.ResponseBufferSize},
		{"MaxClients", optMaxClients, int(o.svc.rr.MaxClients), has.MaxClients},
		{"MaxServers", optMaxServers, int(o.svc.rr.MaxServers), has.MaxServers},
		{"MaxNodes", optMaxNodes, int(o.svc.rr.MaxNodes), has.MaxNodes},
	} {
		if o.set&s.bit != 0 && s.want > s.got {
			short = append(short, fmt.Sprintf("%s(%d) asks for more than its %d", s.name, s.want, s.got))
		}
	}
	if len(short) == 0 {
		return ""
	}
	return "the service exists, created with other settings by its first client or server, and " +
		strings.Join(short, ", ") + ": ask for at most that (or leave the option out), or create the service with more"
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
