package iox

import (
	"time"

	"github.com/iox-go/iox/internal/ffi"
)

// PubSubSettings are the settings a publish-subscribe service has, as the
// process that created it stored them: that may be another program, in another
// language, with values other than iox's defaults. Every process that opens the
// service shares them.
type PubSubSettings struct {
	MaxPublishers  int
	MaxSubscribers int
	MaxNodes       int
	BufferSize     int // unread messages each subscriber can hold
	History        int // messages a late subscriber receives on joining
	MaxBorrowed    int // messages one subscriber may hold borrowed at once
	SafeOverflow   bool
	Payload        PayloadType
	// UserHeader is the type of the header every message carries besides its
	// payload: Name "()" and Size 0 when there is none.
	UserHeader PayloadType
}

// EventSettings are the settings an event service has, as the process that
// created it stored them.
type EventSettings struct {
	MaxNotifiers int
	MaxListeners int
	MaxNodes     int
	MaxEventID   EventID
	// The events iceoryx2 signals when a notifier is created, closed or found
	// dead, when the service has them.
	NotifierCreatedEvent OptionalEventID
	NotifierDroppedEvent OptionalEventID
	NotifierDeadEvent    OptionalEventID
	// Deadline is the longest time between two notifications the service
	// expects (0: none).
	Deadline time.Duration
}

// OptionalEventID is an event id a service may have.
type OptionalEventID struct {
	ID  EventID
	Set bool
}

func pubsubSettings(c *ffi.PubSubConfig) PubSubSettings {
	return PubSubSettings{
		MaxPublishers:  int(c.MaxPublishers),
		MaxSubscribers: int(c.MaxSubscribers),
		MaxNodes:       int(c.MaxNodes),
		BufferSize:     int(c.BufferSize),
		History:        int(c.HistorySize),
		MaxBorrowed:    int(c.MaxBorrowed),
		SafeOverflow:   c.SafeOverflow != 0,
		Payload:        PayloadType{Name: c.PayloadTypeName(), Size: int(c.Size), Align: int(c.Alignment), Fixed: c.Variant != 0},
		UserHeader: PayloadType{Name: c.HeaderTypeName(), Size: int(c.HeaderSize), Align: int(c.HeaderAlignment),
			Fixed: c.HeaderVariant != 0},
	}
}

func eventSettings(c *ffi.EventConfig) EventSettings {
	opt := func(bit uint64, id uint64) OptionalEventID {
		if c.Set&bit == 0 {
			return OptionalEventID{}
		}
		return OptionalEventID{ID: EventID(id), Set: true}
	}
	s := EventSettings{
		MaxNotifiers:         int(c.MaxNotifiers),
		MaxListeners:         int(c.MaxListeners),
		MaxNodes:             int(c.MaxNodes),
		MaxEventID:           EventID(c.MaxEventID),
		NotifierCreatedEvent: opt(ffi.EVCreatedEvent, c.CreatedEvent),
		NotifierDroppedEvent: opt(ffi.EVDroppedEvent, c.DroppedEvent),
		NotifierDeadEvent:    opt(ffi.EVDeadEvent, c.DeadEvent),
	}
	if c.Set&ffi.EVHasDeadline != 0 {
		s.Deadline = time.Duration(min(c.DeadlineNs, 1<<63-1))
	}
	return s
}

// Settings returns the settings the service has (stored when it was created).
func (s *PubSubService) Settings() PubSubSettings { return pubsubSettings(&s.config) }

// Settings returns the settings the service has (stored when it was created).
func (e *EventService) Settings() EventSettings { return eventSettings(&e.config) }

// PubSubSettings returns the settings of the existing publish-subscribe service
// name without joining it, whatever its payload type: ErrServiceNotFound when
// there is none (or it is still being created), ErrVersionMismatch when another
// iceoryx2 release made it.
func (n *Node) PubSubSettings(name string) (PubSubSettings, error) {
	const op = "publish-subscribe settings"
	nh, err := n.acquireNode(op, name)
	if err != nil {
		return PubSubSettings{}, err
	}
	defer n.ref.release()
	var eb ffi.ErrBuf
	c, st := n.lib.PubSubDescribe(nh, name, &eb)
	if st != ffi.OK {
		return PubSubSettings{}, statusError(n.lib, op, name, st, &eb)
	}
	return pubsubSettings(&c), nil
}

// EventSettings returns the settings of the existing event service name without
// joining it (errors as for PubSubSettings).
func (n *Node) EventSettings(name string) (EventSettings, error) {
	const op = "event settings"
	nh, err := n.acquireNode(op, name)
	if err != nil {
		return EventSettings{}, err
	}
	defer n.ref.release()
	var eb ffi.ErrBuf
	c, st := n.lib.EventDescribe(nh, name, &eb)
	if st != ffi.OK {
		return EventSettings{}, statusError(n.lib, op, name, st, &eb)
	}
	return eventSettings(&c), nil
}
