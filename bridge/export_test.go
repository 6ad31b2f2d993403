package bridge

import (
	"context"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// LookupConsumer is how an importing bridge looks up its durable consumer.
type LookupConsumer = func(ctx context.Context, js jetstream.JetStream, stream, name string) (jetstream.Consumer, error)

// SetLookupConsumer makes importing bridges look up their consumers with
// wrap(the lookup they used), and returns the function that restores that
// lookup. Call it before starting the bridges it is meant for, and restore
// once they are closed: bridges read it from their own goroutines.
func SetLookupConsumer(wrap func(next LookupConsumer) LookupConsumer) (restore func()) {
	prev := lookupConsumer
	lookupConsumer = wrap(prev)
	return func() { lookupConsumer = prev }
}

// LookupAttempts is how often an import tries to look up its consumer.
const LookupAttempts = lookupAttempts

// set makes *p v and returns the function that puts the old value back.
func set[T any](p *T, v T) (restore func()) {
	prev := *p
	*p = v
	return func() { *p = prev }
}

// SetImportAckWait sets the AckWait of the consumers that imports create from
// now on, and returns the function that restores it.
func SetImportAckWait(d time.Duration) (restore func()) { return set(&importAckWait, d) }

// SetLostDelivery makes imports act as if their client never got the
// deliveries for which lost returns true, and returns the function that
// restores the default (none lost). Restore once the bridges are closed.
func SetLostDelivery(lost func(jetstream.Msg) bool) (restore func()) { return set(&lostDelivery, lost) }

// SetQuietAfter sets how long deliveries pause before an import asks whether
// its client dropped some, and returns the function that restores it. Set it
// before starting the bridges it is meant for, and restore once they are
// closed.
func SetQuietAfter(d time.Duration) (restore func()) { return set(&quietAfter, d) }
