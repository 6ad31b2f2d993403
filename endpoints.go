package iox

import "context"

// Sender is the sending side every channel adapter shares: Pair, Pub and Push.
type Sender[T any] interface {
	// Send hands v over; it is copied before Send returns.
	Send(ctx context.Context, v T) error
	// Out is the same as a Go channel; a value sent on it is handed over.
	Out() chan<- T
	// Done is closed when the channel has ended; Err says why.
	Done() <-chan struct{}
	Err() error
	Close() error
}

// Receiver is the receiving side every channel adapter shares: Pair, Sub and
// Pull.
type Receiver[T any] interface {
	// Recv returns the next message, or why there is none.
	Recv(ctx context.Context) (T, error)
	// In is the same as a Go channel, closed after the end.
	In() <-chan T
	// Done is closed when the channel has ended; Err says why.
	Done() <-chan struct{}
	Err() error
	Close() error
}

var (
	_ Sender[[]byte]   = (*Pair[[]byte])(nil)
	_ Receiver[[]byte] = (*Pair[[]byte])(nil)
	_ Sender[[]byte]   = (*Pub[[]byte])(nil)
	_ Receiver[[]byte] = (*Sub[[]byte])(nil)
	_ Sender[[]byte]   = (*Push[[]byte])(nil)
	_ Receiver[[]byte] = (*Pull[[]byte])(nil)
)
