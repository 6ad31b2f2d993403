package iox

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// life records how a channel ends. The first reason wins, and Err is non-nil
// from the moment Done is closed, so a reader that sees the end also finds its
// reason.
type life struct {
	ctx     context.Context
	cancel  context.CancelCauseFunc
	mu      sync.Mutex
	here    chan struct{} // closed when this end closes (Close or its context)
	hereErr error
}

func newLife() *life {
	l := &life{here: make(chan struct{})}
	l.ctx, l.cancel = context.WithCancelCause(context.Background())
	return l
}

// end ends the channel with err unless it ended already; it reports whether err
// became the reason. local means this end closes (Close or its context):
// receivers and senders stop at once, with err, even when the peer ended first.
func (l *life) end(err error, local bool) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if local && l.hereErr == nil {
		l.hereErr = err
		close(l.here)
	}
	if l.ctx.Err() != nil {
		return false
	}
	l.cancel(err)
	return true
}

// closing is closed when this end closes.
func (l *life) closing() <-chan struct{} { return l.here }

// Done is closed when the channel has ended.
func (l *life) Done() <-chan struct{} { return l.ctx.Done() }

// err is nil while the channel is open, then why it ended.
func (l *life) err() error {
	if l.ctx.Err() == nil {
		return nil
	}
	return context.Cause(l.ctx)
}

// waited is what a wait bounded by ctx (and possibly by a shorter timeout, to
// look again) means for its caller: nil when it returned or only timed out,
// the channel's reason once the channel ended, otherwise the wait's error.
func (l *life) waited(ctx context.Context, err error) error {
	switch {
	case err == nil, errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil:
		return nil
	case l.err() != nil:
		return l.err()
	}
	return err
}

// pause waits d, or less when ctx ends (its error) or the channel ends (its
// reason): the retry interval of a sender whose receiver has no room yet.
func (l *life) pause(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-l.Done():
		return l.err()
	}
}

// closedHere is the reason this end closed, nil while it has not.
func (l *life) closedHere() error {
	select {
	case <-l.here:
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.hereErr
	default:
		return nil
	}
}

// doneContext is a context that has ended: a wait bounded by it does not wait.
var doneContext = func() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}()

// contextEnded is the reason a channel ends when the context it was opened with
// ends: an *Error naming the operation, wrapping the context's cause.
func contextEnded(op, name string, ctx context.Context) error {
	return &Error{Op: op, Name: name, Kind: context.Cause(ctx), Detail: "the context the channel was opened with ended"}
}

// group runs the goroutines a channel starts on demand (behind In, Out, Peers)
// and stops accepting new ones when the channel is torn down, so that a first
// use racing with the end never starts one that nobody waits for.
type group struct {
	mu      sync.Mutex
	wg      sync.WaitGroup
	stopped bool
}

// start runs fn on a new goroutine unless the group stopped; it reports whether
// it did.
func (g *group) start(fn func()) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.stopped {
		return false
	}
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		fn()
	}()
	return true
}

// stop refuses new goroutines and waits for the running ones.
func (g *group) stop() {
	g.mu.Lock()
	g.stopped = true
	g.mu.Unlock()
	g.wg.Wait()
}

// closer runs a channel's teardown once, whether Close or the end of the
// context the channel was opened with asks first, and tells a user's first
// Close (the teardown's result) from later ones (ErrClosed).
type closer struct {
	once     sync.Once
	user     atomic.Bool
	err      error
	done     chan struct{}
	teardown func(reason error, graceful bool) error
	unwatch  func() bool
}

// watch arms the closer: teardown runs gracefully on Close, at once when ctx
// ends (with an *Error naming op and name that wraps the context's cause).
func (c *closer) watch(ctx context.Context, op, name string, teardown func(reason error, graceful bool) error) {
	c.done, c.teardown = make(chan struct{}), teardown
	c.unwatch = context.AfterFunc(ctx, func() { c.run(contextEnded(op, name, ctx), false) })
}

func (c *closer) run(reason error, graceful bool) {
	c.once.Do(func() {
		c.err = c.teardown(reason, graceful)
		close(c.done)
	})
}

// close is Close: the graceful teardown ending the channel with ErrClosed (op),
// waited for; the first call returns what it reported, later ones ErrClosed
// (closeOp).
func (c *closer) close(op, closeOp, name string) error {
	first := !c.user.Swap(true)
	c.unwatch()
	c.run(&Error{Op: op, Name: name, Kind: ErrClosed}, true)
	<-c.done
	if !first {
		return &Error{Op: closeOp, Name: name, Kind: ErrClosed}
	}
	return c.err
}
