package bridge

import (
	"context"

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
