// Package iox makes iceoryx2 — zero-copy, lock-free shared-memory IPC — feel like
// ordinary Go: open a Node, open a service by name, and move bytes between
// processes through shared memory with ports (Publisher, Subscriber, Notifier,
// Listener) or with channel adapters, or share a key-value store with
// iceoryx2's blackboard (OpenBlackboard).
//
// Bad input gets a typed *Error, whose Kind errors.Is compares with the Err*
// values, never a panic: a nil context, node, codec (also a nil pointer in a
// non-nil Codec), handler or handle given to a function or method is refused
// with ErrInvalidArgument, naming it, before anything is created. Methods called on a nil handle (a nil *Pair, …)
// panic, as Go's own do.
//
// The native library (a small C ABI over the iceoryx2 crate, built from
// internal/native with `make native`) is loaded at run time with purego, so the
// package builds and runs with CGO_ENABLED=0.
package iox
