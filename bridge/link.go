package bridge

import (
	"context"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// link follows the NATS connection's state, so that what waits for the
// server waits for its return instead of a timer: a publication that failed
// while the connection was down is sent again as soon as it is back, and an
// import resets its consumer then (see importPubSub), so that what the server
// delivered before it stopped, and the bridge never got, comes again at once
// instead of after the consumer's AckWait.
//
// nats.go reconnects by itself; how soon depends on the connection's
// ReconnectWait.
// ReconnectWait is the pause between attempts to reconnect that the iox
// command gives nats.go (whose default is 2 s), and the one advised for a
// Config.Conn: a bridge resumes once its connection is back, so this bounds
// what a restart of the server adds.
const ReconnectWait = 250 * time.Millisecond

type link struct {
	nc     *nats.Conn
	events chan nats.Status
	done   chan struct{}

	mu        sync.Mutex
	up        chan struct{}              // closed while connected; replaced when the connection drops
	listeners map[chan struct{}]struct{} // told of each reconnection
}

func newLink(nc *nats.Conn) *link {
	l := &link{nc: nc, events: nc.StatusChanged(nats.CONNECTED, nats.RECONNECTING, nats.DISCONNECTED, nats.CLOSED),
		done: make(chan struct{}), up: make(chan struct{}), listeners: map[chan struct{}]struct{}{}}
	if nc.IsConnected() {
		close(l.up)
	}
	go l.follow()
	return l
}

func (l *link) follow() {
	defer close(l.done)
	for s := range l.events {
		l.mu.Lock()
		wasUp := false
		select {
		case <-l.up:
			wasUp = true
		default:
		}
		// Closed counts as up: nothing should wait for a return that cannot come.
		isUp := s == nats.CONNECTED || s == nats.CLOSED
		switch {
		case wasUp && !isUp:
			l.up = make(chan struct{})
		case !wasUp && isUp:
			close(l.up)
			if s == nats.CONNECTED {
				for ch := range l.listeners {
					select {
					case ch <- struct{}{}:
					default: // one pending notice is enough
					}
				}
			}
		}
		l.mu.Unlock()
	}
}

// close stops following the connection.
func (l *link) close() {
	l.nc.RemoveStatusListener(l.events)
	<-l.done
}

// wait returns once the connection is up (or closed for good), or ctx ended.
func (l *link) wait(ctx context.Context) error {
	l.mu.Lock()
	up := l.up
	l.mu.Unlock()
	select {
	case <-up:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// notify returns a channel that receives a value after each reconnection
// (notices that come before the last one was taken are merged), and the
// function that stops it.
func (l *link) notify() (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	l.mu.Lock()
	l.listeners[ch] = struct{}{}
	l.mu.Unlock()
	return ch, func() {
		l.mu.Lock()
		delete(l.listeners, ch)
		l.mu.Unlock()
	}
}
