package iox

import (
	"fmt"
	"reflect"

	"github.com/iox-go/iox/internal/layout"
)

// Zero-copy messages. A sender loans shared memory, writes the message into it
// and sends it without a copy (Loan, SendLoan on Pair and Pub); a receiver
// reads a message where it lies (RecvView on Pair and Sub) and releases it.
// As gives a typed pointer over either. Rules:
//
//   - A View's bytes are the sender's shared memory, mapped read-only into the
//     receiver (as iceoryx2 maps other processes' samples): a write crashes
//     the receiving process ("unexpected fault address"). A View stays valid
//     until Release. After SendLoan the sender can no longer reach the
//     message's memory through the Loan (its Bytes are nil), and must not keep
//     the slice to write through it later.
//   - A receiving end holds at most MaxBorrowed views at once (default 4, one
//     of which a copying Recv needs); RecvView beyond it, and Recv while it is
//     reached, return ErrTooManyLoans at once. Release a View to free its slot.
//   - A Loan that is not sent is returned with Release. A sender holds at most
//     two loans at once (ErrTooManyLoans beyond). A Loan goes only through the
//     end that made it (the sample is its publisher's).
//   - Loans and views keep the order and the lossless delivery of Send and
//     Recv: SendLoan goes after what was sent before and waits (like Send) while
//     the receiver has no room; RecvView returns messages in order with Recv.
//   - Close, with views still held, leaves their memory in place until they are
//     released (iceoryx2 keeps a borrowed sample's memory alive); a receiver
//     whose process dies has its views reclaimed with its other resources.

// Loan is shared memory lent to a sender for one message. It can be sent
// only by the channel end that made it: another's SendLoan refuses it with
// ErrInvalidArgument, and it stays as it was. It is not safe for concurrent
// use.
type Loan struct {
	smp   *SampleMut
	data  []byte
	owner any // the sender that made it
}

// Bytes is the memory to write the message into; nil after SendLoan or
// Release.
func (l *Loan) Bytes() []byte { return l.data }

// Release returns an unsent loan. It does nothing after SendLoan or a first
// Release.
func (l *Loan) Release() {
	if l.smp != nil {
		l.smp.Discard()
		l.smp, l.data = nil, nil
	}
}

// take hands the loan's sample over for sending; nil when it was sent or
// released already.
func (l *Loan) take() *SampleMut {
	s := l.smp
	l.smp, l.data = nil, nil
	return s
}

// View is a received message in place in shared memory (or, when the message
// had to be copied on its way, its copy). It is not safe for concurrent use.
type View struct {
	smp  *Sample
	data []byte
	done chan struct{} // told when the view is released
}

// Bytes is the message, read-only, valid until Release.
func (v *View) Bytes() []byte { return v.data }

// Release gives the message's memory back to the sender. It does nothing the
// second time.
func (v *View) Release() {
	if v.smp != nil {
		v.smp.Release()
		v.smp = nil
		wake(v.done)
	}
	v.data = nil
}

// As gives a *T over b, the bytes of a Loan or a View (or any byte slice), for
// the fixed-layout types Fixed accepts: no pointers, b exactly T's size and
// aligned for T, and every bool of T a 0 or 1 byte. Writing through it writes
// b. Anything else is ErrInvalidArgument naming the type.
func As[T any](b []byte) (*T, error) {
	fail := func(detail string) (*T, error) { // named from the type: a value of a huge T would not fit in memory
		return nil, &Error{Op: "as", Name: reflect.TypeFor[T]().String(), Kind: ErrInvalidArgument, Detail: detail}
	}
	if err := layout.Check[T](); err != nil {
		return fail(err.Error())
	}
	p, err := layout.Over[T](b)
	if err != nil {
		return fail(err.Error())
	}
	for _, off := range layout.Bools[T]() {
		if b[off] > 1 {
			return fail(fmt.Sprintf("byte %d is a bool of value %d", off, b[off]))
		}
	}
	return p, nil
}
