package iox

import (
	"context"
	"sync"
	"sync/atomic"
)

// outlet is the goroutine behind a channel's Out: it hands every value that
// arrives on the Go channel to the sender, as Send would. A value it took is
// the channel's responsibility: a graceful Close lets the outlet send the value
// in hand before the channel stops accepting, and a value that could not be
// sent counts in Close's report of what was not delivered.
type outlet[T any] struct {
	c       chan T
	once    sync.Once
	started atomic.Bool
	stop    chan struct{} // take nothing more
	done    chan struct{} // the goroutine ended
	ctx     context.Context
	cancel  context.CancelFunc // ends the send of the value in hand
	lost    atomic.Uint64      // values taken but not sent because the channel ended
}

func newOutlet[T any]() *outlet[T] {
	o := &outlet[T]{c: make(chan T), stop: make(chan struct{}), done: make(chan struct{})}
	o.ctx, o.cancel = context.WithCancel(context.Background())
	return o
}

// outSender is what an outlet hands values to: a channel's sender, or a
// pusher.
type outSender[T any] interface {
	send(ctx context.Context, v T) error
}

// open starts the goroutine (once, unless the channel's group stopped) and
// returns the channel.
func (o *outlet[T]) open(g *group, tx outSender[T], l *life, onDrop func(error)) chan<- T {
	o.once.Do(func() {
		o.started.Store(g.start(func() {
			defer close(o.done)
			o.forward(tx, l, onDrop)
		}))
	})
	return o.c
}

// forward sends what arrives until the outlet stops, the channel ends or the
// program closes the Go channel (as a producer closes the channel it sends
// on once it is done: its zero values are no messages). A value Send refuses (too large, unencodable) goes to onDrop and the outlet
// goes on; one that could not go because the channel ended, or because the
// outlet was told to give up, goes to onDrop and counts as lost.
func (o *outlet[T]) forward(tx outSender[T], l *life, onDrop func(error)) {
	for {
		select { // an ended channel takes nothing more
		case <-o.stop:
			return
		case <-l.Done():
			return
		default:
		}
		select {
		case v, ok := <-o.c:
			if !ok { // closed by the program: nothing more comes
				return
			}
			err := tx.send(o.ctx, v)
			if err == nil {
				continue
			}
			if onDrop != nil {
				onDrop(err)
			}
			if l.err() != nil || o.ctx.Err() != nil {
				o.lost.Add(1)
				return
			}
		case <-o.stop:
			return
		case <-l.Done():
			return
		}
	}
}

// finish stops taking values and waits until the value in hand, if any, was
// sent; when ctx ends first, that send is abandoned (and counted as lost).
func (o *outlet[T]) finish(ctx context.Context) {
	o.once.Do(func() {}) // no goroutine starts after this
	close(o.stop)
	if !o.started.Load() {
		return
	}
	select {
	case <-o.done:
	case <-ctx.Done():
		o.cancel()
		<-o.done
	}
	o.cancel()
}
