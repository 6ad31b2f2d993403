package iox

import (
	"context"
	"errors"
	"sync"
)

// Events is an event service as a channel: Notify signals an event id to every
// Events (and Listener) of the name, and Recv or In deliver the ids signalled
// to this one. Notifications of one id coalesce until they are delivered. Recv
// waits in the runtime's network poller on the caller's goroutine; In is fed by
// a goroutine that starts on its first use, so a quiet Events holds no
// goroutine and no OS thread.
//
// Shutdown follows the channel adapters: Close, or the end of the context it was
// opened with, ends it; Err is set first, then In is closed; ids not yet
// delivered are dropped; Notify and Recv then return Err.
type Events struct {
	name  string
	cfg   chanConfig
	life  *life
	ports ports
	ntf   *Notifier
	lis   *Listener

	sem    chan struct{} // one receiving goroutine at a time
	ids    []EventID     // drained, not yet delivered
	spin   spinner
	in     chan EventID
	inOnce sync.Once
	feeds  group
	torn   chan struct{}
	mu     sync.RWMutex // Notify holds it shared; teardown exclusively
	closer closer
}

// OpenEvents opens (or creates, with iceoryx2's default settings) the event
// service name and returns it as a channel of event ids. WithSpin makes the
// receiver poll before parking; WithChanCap sizes In.
func OpenEvents(ctx context.Context, node *Node, name string, opts ...Option) (*Events, error) {
	const op = "open events"
	cfg, err := prepare(ctx, op, name, "", opts, nodeArg(node))
	if err != nil {
		return nil, err
	}
	if err := cfg.only(op, name, "event channel", optBufferSize, optMaxMessage, optPeerTimeout, optPoll, optLinger, optLossy,
		optHistory, optRecycling, optMaxSubscribers, optMaxPublishers, optWaitSubs, optOnDrop); err != nil {
		return nil, err
	}
	e := &Events{name: name, cfg: cfg, life: newLife(), sem: make(chan struct{}, 1),
		spin: newSpinner(cfg.spin), in: make(chan EventID, cfg.chanCap), torn: make(chan struct{})}
	svc, err := joinService(node.Event, name, nil, nil)
	if err != nil {
		return nil, err
	}
	e.ports.add(svc)
	if e.ntf, err = svc.Notifier(); err != nil {
		e.ports.release()
		return nil, err
	}
	e.ports.add(e.ntf)
	if e.lis, err = svc.Listener(); err != nil {
		e.ports.release()
		return nil, err
	}
	e.ports.add(e.lis)
	e.closer.watch(ctx, "events", name, e.shutdown)
	return e, nil
}

// Notify signals id to every listener of the service (this one included) and
// returns how many it reached.
func (e *Events) Notify(id EventID) (int, error) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	if err := e.life.err(); err != nil {
		return 0, err
	}
	return e.ntf.Notify(id)
}

// Recv returns the next event id signalled to this Events, waiting for one.
func (e *Events) Recv(ctx context.Context) (EventID, error) {
	if ctx == nil {
		return 0, nilArg("receive", e.name, "ctx")
	}
	select {
	case e.sem <- struct{}{}:
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-e.life.Done():
		return 0, e.life.err()
	}
	defer func() { <-e.sem }()
	for len(e.ids) == 0 {
		if err := e.life.err(); err != nil {
			return 0, err
		}
		ids, err := e.lis.tryWaitInto(e.ids)
		if err != nil {
			return 0, e.fault(err)
		}
		e.ids = ids
		if len(e.ids) > 0 {
			break
		}
		if e.spin.spin(func() bool {
			e.ids, err = e.lis.tryWaitInto(e.ids)
			return err != nil || len(e.ids) > 0
		}, e.life.Done(), ctx.Done()) {
			continue
		}
		ids, err = e.lis.waitInto(ctx, e.life.Done(), e.ids)
		e.spin.parked()
		if errors.Is(err, errDone) {
			return 0, e.life.err()
		}
		if err != nil {
			return 0, e.fault(err)
		}
		e.ids = ids
	}
	id := e.ids[0]
	e.ids = append(e.ids[:0], e.ids[1:]...)
	return id, nil
}

func (e *Events) fault(err error) error {
	if end := e.life.err(); end != nil {
		return end
	}
	return err
}

// In delivers the event ids signalled to this Events; it is closed after the
// end, and Err is set before that. A goroutine behind it starts on the first
// call.
func (e *Events) In() <-chan EventID {
	e.inOnce.Do(func() {
		started := e.feeds.start(func() {
			defer close(e.in)
			for {
				id, err := e.Recv(context.Background())
				if err != nil {
					return
				}
				if !handOver(e.in, id, e.torn) {
					return
				}
			}
		})
		if !started {
			close(e.in) // it ended before In was first used
		}
	})
	return e.in
}

// Done is closed when the Events has ended; Err says why.
func (e *Events) Done() <-chan struct{} { return e.life.Done() }

// Err is nil while open, then ErrClosed, an *Error wrapping the cause of its
// context, or a failure.
func (e *Events) Err() error { return e.life.err() }

// Close ends the Events and waits for its goroutine. A second Close returns
// ErrClosed.
func (e *Events) Close() error { return e.closer.close("events", "close events", e.name) }

func (e *Events) shutdown(reason error, _ bool) error {
	e.life.end(reason, true)
	e.lis.kick()
	close(e.torn)
	e.feeds.stop()
	e.sem <- struct{}{}
	e.mu.Lock()
	e.ports.release()
	e.mu.Unlock()
	return nil
}
