package iox

import (
	"errors"
	"fmt"
	"io"
	"net"

	"github.com/iox-go/iox/internal/ffi"
	"github.com/iox-go/iox/loader"
)

// Errors returned by iox; compare with errors.Is.
var (
	// ErrLibraryNotFound: no native library could be loaded (see loader.Candidates).
	ErrLibraryNotFound = loader.ErrNotFound
	// ErrABIMismatch: the native library was built for another ABI version.
	ErrABIMismatch = loader.ErrABIMismatch
	// ErrMissingSymbol: the native library lacks a function iox needs.
	ErrMissingSymbol = loader.ErrMissingSymbol

	ErrInvalidName     = errors.New("iox: invalid name")
	ErrInvalidArgument = errors.New("iox: invalid argument")
	ErrServiceNotFound = errors.New("iox: service does not exist")
	ErrServiceExists   = errors.New("iox: service already exists")
	// ErrIncompatible: an existing service has other settings or another payload type.
	ErrIncompatible = errors.New("iox: incompatible service")
	// ErrIncompatibleType: an existing service carries another payload type.
	// errors.Is(err, ErrIncompatible) also holds for it.
	ErrIncompatibleType = &subError{"iox: incompatible payload type", []error{ErrIncompatible}}
	ErrVersionMismatch  = errors.New("iox: iceoryx2 version mismatch")
	ErrLimitReached     = errors.New("iox: limit reached")
	ErrPermission       = errors.New("iox: permission denied")
	ErrMessageTooLarge  = errors.New("iox: message too large")
	// ErrWouldBlock: a subscriber's buffer is full and the publisher refuses to drop.
	ErrWouldBlock     = errors.New("iox: receiver buffer full")
	ErrBufferTooSmall = errors.New("iox: buffer too small for message")
	ErrOutOfMemory    = errors.New("iox: out of shared memory for samples")
	ErrTooManyLoans   = errors.New("iox: too many samples loaned or borrowed")
	ErrConnection     = errors.New("iox: connection failure")
	ErrBusy           = errors.New("iox: service is being created or removed by another process")
	ErrPeerGone       = errors.New("iox: peer gone")
	// ErrPeerClosed: the peer ended the conversation cleanly. errors.Is also
	// matches ErrPeerGone and io.EOF, so readers can treat it as end of stream.
	ErrPeerClosed = &subError{"iox: peer closed", []error{ErrPeerGone, io.EOF}}
	// ErrPeerCrashed: the peer's process died without closing (errors.Is ErrPeerGone).
	ErrPeerCrashed = &subError{"iox: peer crashed", []error{ErrPeerGone}}
	// ErrNoServer: a request found no server of its request-response service
	// (errors.Is ErrPeerGone).
	ErrNoServer = &subError{"iox: no server", []error{ErrPeerGone}}
	// ErrNoResponse: the servers ended a call without answering it (the
	// handler failed or panicked, or the server closed).
	ErrNoResponse = errors.New("iox: no response")
	// ErrEntryNotFound: a blackboard has no entry of that key (errors.Is also
	// matches ErrServiceNotFound).
	ErrEntryNotFound = &subError{"iox: blackboard has no such entry", []error{ErrServiceNotFound}}
	// ErrPairFull: both ends of the pair are taken.
	ErrPairFull = errors.New("iox: pair already has two ends")
	// ErrClosed: use after Close. errors.Is also matches net.ErrClosed.
	ErrClosed = &subError{"iox: use of closed handle", []error{net.ErrClosed}}
	// ErrProtocol: a message on one of iox's own services did not follow iox's
	// wire format (malformed, or out of sequence); it was dropped and the
	// channel went on.
	ErrProtocol = errors.New("iox: peer broke the protocol")
	// ErrUndelivered: Close could not confirm that the peer took every message;
	// the error's detail says how many.
	ErrUndelivered = errors.New("iox: messages not delivered")
	ErrInternal    = errors.New("iox: internal failure")
)

// subError is a sentinel that also matches its parent with errors.Is.
type subError struct {
	msg     string
	parents []error
}

func (e *subError) Error() string { return e.msg }
func (e *subError) Is(target error) bool {
	for _, p := range e.parents {
		if target == p {
			return true
		}
	}
	return false
}

// Error describes a failed operation. Kind is one of the package's Err* values.
type Error struct {
	Op     string // "open pubsub", "send", …
	Name   string // service or node name, when there is one
	Kind   error
	Detail string // the native library's own description, when it gave one
}

func (e *Error) Error() string {
	s := "iox: " + e.Op
	if e.Name != "" {
		s += fmt.Sprintf(" %q", e.Name)
	}
	s += ": " + trimPrefix(e.Kind.Error())
	if e.Detail != "" {
		s += " (" + e.Detail + ")"
	}
	return s
}

func (e *Error) Unwrap() error { return e.Kind }

// BufferTooSmallError says how large a buffer the next message needs.
type BufferTooSmallError struct{ Need int }

func (e *BufferTooSmallError) Error() string {
	return fmt.Sprintf("iox: buffer too small: next message has %d bytes", e.Need)
}
func (e *BufferTooSmallError) Is(target error) bool { return target == ErrBufferTooSmall }

// bufferNeed reports the room the next message needs when err says it did not
// fit (a nil err costs nothing: the common case of a message that fits).
func bufferNeed(err error) (int, bool) {
	if err == nil {
		return 0, false
	}
	var small *BufferTooSmallError
	if errors.As(err, &small) {
		return small.Need, true
	}
	return 0, false
}

func trimPrefix(s string) string {
	if len(s) > 5 && s[:5] == "iox: " {
		return s[5:]
	}
	return s
}

var statusKinds = map[ffi.Status]error{
	ffi.EInvalidArgument:  ErrInvalidArgument,
	ffi.EInvalidName:      ErrInvalidName,
	ffi.ENotFound:         ErrServiceNotFound,
	ffi.EAlreadyExists:    ErrServiceExists,
	ffi.EIncompatibleType: ErrIncompatibleType,
	ffi.EIncompatible:     ErrIncompatible,
	ffi.EVersionMismatch:  ErrVersionMismatch,
	ffi.ELimitReached:     ErrLimitReached,
	ffi.EPermission:       ErrPermission,
	ffi.ETooLarge:         ErrMessageTooLarge,
	ffi.EWouldBlock:       ErrWouldBlock,
	ffi.EBufferTooSmall:   ErrBufferTooSmall,
	ffi.EOutOfMemory:      ErrOutOfMemory,
	ffi.EConnection:       ErrConnection,
	ffi.EBusy:             ErrBusy,
	ffi.ETooManyLoans:     ErrTooManyLoans,
	ffi.EEventID:          ErrInvalidArgument,
	ffi.EDisconnected:     ErrPeerGone,
}

// statusError turns a native status into an *Error.
func statusError(lib *ffi.Lib, op, name string, s ffi.Status, eb *ffi.ErrBuf) error {
	kind, ok := statusKinds[s]
	if !ok {
		kind = ErrInternal
	}
	e := &Error{Op: op, Name: name, Kind: kind}
	if eb != nil {
		e.Detail = eb.String()
	}
	if e.Detail == "" && kind == ErrInternal && lib != nil {
		e.Detail = lib.StatusText(s)
	}
	return e
}
