package iox

import (
	"context"
	"sync"
)

// bell wakes every waiter each time its listener fires, for goroutines that
// each wait for something of their own behind one listener: the calls of a
// Caller each wait for their own response, the workers of a Responder for any
// request. One waiter at a time waits in the runtime poller; when it returns it
// rings (whatever ended its wait), and every waiter looks again. A waiter reads the bell's count before
// it looks (seen) and waits only while the count is unchanged, so a ring
// between its look and its wait is never missed.
type bell struct {
	lis     *Listener
	mu      sync.Mutex
	rings   uint64
	polling bool
	rung    chan struct{} // closed at the next ring
	ids     []EventID     // the poller's scratch
}

func newBell(lis *Listener) *bell { return &bell{lis: lis, rung: make(chan struct{})} }

// seen is the count of rings so far.
func (b *bell) seen() uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.rings
}

// wait returns once the bell rang after seen, or with the error of ctx, errDone
// when done is closed, or the listener's error.
func (b *bell) wait(ctx context.Context, done <-chan struct{}, seen uint64) error {
	for {
		b.mu.Lock()
		if b.rings != seen {
			b.mu.Unlock()
			return nil
		}
		if !b.polling {
			b.polling = true
			b.mu.Unlock()
			ids, err := b.lis.waitInto(ctx, done, b.ids[:0])
			b.ids = ids[:0]
			b.mu.Lock()
			b.polling = false
			b.rings++
			close(b.rung)
			b.rung = make(chan struct{})
			b.mu.Unlock()
			if err != nil {
				return err
			}
			continue
		}
		rung := b.rung
		b.mu.Unlock()
		select {
		case <-rung:
		case <-done:
			return errDone
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
