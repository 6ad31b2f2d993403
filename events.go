package iox

import (
	"context"
	"runtime"
	"sync"
	"time"
)

// Events is an event service as a channel: Notify signals an event id to every
// Events (and Listener) of the name, and C delivers the ids signalled to this one.
// Notifications of one id coalesce until they are delivered. The goroutine behind C
// waits in the runtime's network poller, so a quiet Events holds no OS thread.
//
// Shutdown follows the channel adapters: cancelling ctx or calling Close ends the
// goroutine and closes C; ids not yet delivered are dropped; Notify then fails.
type Events struct {
	name string
	cfg  chanConfig
	svc  *EventService
	ntf  *Notifier
	lis  *Listener
	c    chan EventID

	ctx      context.Context
	stopCtx  context.Context
	stop     context.CancelFunc
	closeReq chan struct{}
	once     sync.Once
	mu       sync.RWMutex // Notify holds it shared; teardown exclusively
	end      ending
	done     chan struct{}
}

// OpenEvents opens (or creates, with iceoryx2's default settings) the event service
// name and returns it as a channel of event ids. WithSpin makes the waiting
// goroutine poll briefly before parking; WithChanCap sizes C.
func OpenEvents(ctx context.Context, node *Node, name string, opts ...ChanOption) (*Events, error) {
	cfg, err := prepare(ctx, "open events", name, "", opts)
	if err != nil {
		return nil, err
	}
	e := &Events{name: name, cfg: cfg, c: make(chan EventID, cfg.chanCap), ctx: ctx,
		closeReq: make(chan struct{}), end: newEnding(), done: make(chan struct{})}
	if e.svc, err = joinService(node.Event, name, nil, nil); err != nil {
		return nil, err
	}
	if e.ntf, err = e.svc.Notifier(); err != nil {
		e.svc.Close()
		return nil, err
	}
	if e.lis, err = e.svc.Listener(); err != nil {
		e.ntf.Close()
		e.svc.Close()
		return nil, err
	}
	e.stopCtx, e.stop = context.WithCancel(context.Background())
	go e.run()
	return e, nil
}

// C delivers the event ids signalled to this service; it is closed at the end.
func (e *Events) C() <-chan EventID { return e.c }

// Done is closed when the Events has ended; Err says why.
func (e *Events) Done() <-chan struct{} { return e.end.done }

// Err is nil while open, then ErrClosed, the context's error, or a failure.
func (e *Events) Err() error { return e.end.reason() }

// Notify signals id to every listener of the service (this one included) and
// returns how many it reached.
func (e *Events) Notify(id EventID) (int, error) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	if err := e.end.reason(); err != nil {
		return 0, err
	}
	return e.ntf.Notify(id)
}

// Close ends the Events and waits for its goroutine. A second Close returns
// ErrClosed.
func (e *Events) Close() error {
	first := false
	e.once.Do(func() { first = true; close(e.closeReq) })
	<-e.done
	if !first {
		return &Error{Op: "close events", Name: e.name, Kind: ErrClosed}
	}
	return nil
}

// run moves signalled ids into C until the Events ends.
func (e *Events) run() {
	defer e.teardown()
	go func() {
		select {
		case <-e.closeReq:
			e.end.end(&Error{Op: "events", Name: e.name, Kind: ErrClosed})
		case <-e.ctx.Done():
			e.end.end(e.ctx.Err())
		case <-e.stopCtx.Done():
		}
		e.stop()
	}()
	for {
		ids, err := e.wait()
		if err != nil {
			if e.stopCtx.Err() == nil {
				e.end.end(err)
			}
			return
		}
		for _, id := range ids {
			select {
			case e.c <- id:
			case <-e.stopCtx.Done():
				return
			}
		}
	}
}

// wait returns the next ids, polling for up to the spin time before parking.
func (e *Events) wait() ([]EventID, error) {
	if e.cfg.spin > 0 {
		for deadline := time.Now().Add(e.cfg.spin); time.Now().Before(deadline); runtime.Gosched() {
			if ids, err := e.lis.TryWait(); err != nil || len(ids) > 0 {
				return ids, err
			}
			if e.stopCtx.Err() != nil {
				return nil, e.stopCtx.Err()
			}
		}
	}
	return e.lis.Wait(e.stopCtx)
}

func (e *Events) teardown() {
	e.end.end(&Error{Op: "events", Name: e.name, Kind: ErrClosed})
	e.stop()
	e.mu.Lock()
	e.lis.Close()
	e.ntf.Close()
	e.svc.Close()
	e.mu.Unlock()
	close(e.c)
	close(e.done)
}
