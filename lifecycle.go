package iox

import (
	"context"
	"sync"
)

// life records how a channel ends. The first reason wins, and Err is non-nil
// from the moment Done is closed, so a reader that sees the end also finds its
// reason.
type life struct {
	ctx    context.Context
	cancel context.CancelCauseFunc
	mu     sync.Mutex
	local  bool // ended by this end (Close or its context): receivers stop at once
}

func newLife() *life {
	l := &life{}
	l.ctx, l.cancel = context.WithCancelCause(context.Background())
	return l
}

// end ends the channel with err unless it ended already; it reports whether err
// became the reason.
func (l *life) end(err error, local bool) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ctx.Err() != nil {
		return false
	}
	l.local = local
	l.cancel(err)
	return true
}

// Done is closed when the channel has ended.
func (l *life) Done() <-chan struct{} { return l.ctx.Done() }

// err is nil while the channel is open, then why it ended.
func (l *life) err() error {
	if l.ctx.Err() == nil {
		return nil
	}
	return context.Cause(l.ctx)
}

// endedHere reports whether this end ended the channel itself.
func (l *life) endedHere() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ctx.Err() != nil && l.local
}

// contextEnded is the reason a channel ends when the context it was opened with
// ends: an *Error naming the operation, wrapping the context's cause.
func contextEnded(op, name string, ctx context.Context) error {
	return &Error{Op: op, Name: name, Kind: context.Cause(ctx), Detail: "the context the channel was opened with ended"}
}
