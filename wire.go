package iox

import (
	"encoding/binary"
	"fmt"
)

// Samples on iox's own services (pairs, lossless publish-subscribe) carry a user
// header of headerSize bytes:
//
//	tag   u64  the sending port's random tag
//	seq   u64  the sample's sequence number from that port (1, 2, 3, …)
//	first u64  how many messages the port sent before this sample
//	got   u64  bye only: how many messages the sender had taken from its peer
//	count u32  how many messages the sample packs (0: it is one plain message)
//	kind  u32  kindData or kindBye
//
// A packed sample holds count frames, each a 4-byte length and the message.
// Packing many small messages into one sample makes one native send, one queue
// slot and one receive serve them all. Sequence numbers let receivers drop the
// copies a lossless publisher sends again and notice samples that do not belong
// to the stream. A bye is the last sample of a port: it travels behind the data,
// so a receiver has everything once it reads the bye.
const (
	headerSize = 40
	frameSize  = 4
)

const (
	kindData uint32 = iota
	kindBye
)

type header struct {
	tag, seq, first, got uint64
	count, kind          uint32
}

func (h *header) put(b []byte) {
	binary.NativeEndian.PutUint64(b, h.tag)
	binary.NativeEndian.PutUint64(b[8:], h.seq)
	binary.NativeEndian.PutUint64(b[16:], h.first)
	binary.NativeEndian.PutUint64(b[24:], h.got)
	binary.NativeEndian.PutUint32(b[32:], h.count)
	binary.NativeEndian.PutUint32(b[36:], h.kind)
}

func readHeader(b []byte) header {
	return header{
		tag:   binary.NativeEndian.Uint64(b),
		seq:   binary.NativeEndian.Uint64(b[8:]),
		first: binary.NativeEndian.Uint64(b[16:]),
		got:   binary.NativeEndian.Uint64(b[24:]),
		count: binary.NativeEndian.Uint32(b[32:]),
		kind:  binary.NativeEndian.Uint32(b[36:]),
	}
}

// Packing: small messages waiting in a sender's queue share one sample. A
// sample costs its native send and receive whatever it holds, so a stream of
// 4 KiB messages goes up to 14 to a sample. Ports start with samples of
// packStart bytes (what a stream of the smallest messages needs), so that a
// channel that never streams larger ones keeps its shared memory small; a
// larger pack grows the sender's samples once.
const (
	packMessages = 64
	packBytes    = 56 << 10
	packSmall    = 4 << 10 // larger messages go alone, without a staging copy
	packLimit    = packBytes + packSmall + frameSize
	packStart    = 16<<10 + packSmall + frameSize
)

func appendFrame(dst, msg []byte) []byte {
	dst = binary.NativeEndian.AppendUint32(dst, uint32(len(msg)))
	return append(dst, msg...)
}

// nextFrame splits the first frame off a packed sample.
func nextFrame(b []byte) (msg, rest []byte, err error) {
	if len(b) < frameSize {
		return nil, nil, fmt.Errorf("a frame needs %d bytes, %d left", frameSize, len(b))
	}
	n := int(binary.NativeEndian.Uint32(b))
	if len(b)-frameSize < n {
		return nil, nil, fmt.Errorf("a frame of %d bytes, %d left", n, len(b)-frameSize)
	}
	return b[frameSize : frameSize+n : frameSize+n], b[frameSize+n:], nil
}

// seqCheck follows the sequence numbers of the ports a receiver hears from.
// iox's own services never lose a sample (no safe overflow), a port numbers its
// samples 1, 2, 3, …, and a lossless publisher sends a sample again only until
// every subscriber has it, so a copy always carries the last number. Anything
// else, a number that jumps ahead or goes back, cannot come from the port whose
// tag it carries: it is reported and dropped, and the port's own stream goes on.
// So forged samples can neither silence a port nor slip in unnoticed.
type seqCheck struct {
	ports map[uint64]*seqState
	dedup bool // copies of samples are expected (lossless publish-subscribe)
}

type seqState struct{ last uint64 }

// check reports whether the sample is to be delivered; err describes one that
// must be reported.
func (c *seqCheck) check(tag, seq uint64) (fresh bool, err error) {
	st, ok := c.ports[tag]
	if !ok {
		if c.ports == nil {
			c.ports = map[uint64]*seqState{}
		}
		c.ports[tag] = &seqState{last: seq}
		return true, nil
	}
	switch {
	case seq == st.last+1:
		st.last = seq
		return true, nil
	case seq == st.last && c.dedup:
		return false, nil
	case seq <= st.last:
		return false, fmt.Errorf("sample %d of port %x repeats or goes back (last was %d)", seq, tag, st.last)
	default:
		return false, fmt.Errorf("sample %d of port %x jumps ahead of %d", seq, tag, st.last)
	}
}

// forget stops following a port (after its bye).
func (c *seqCheck) forget(tag uint64) { delete(c.ports, tag) }

// Event ids of iox's own event services (pairs, and the space services of
// lossless publish-subscribe). Lossy channels use evData alone, on the event
// service of the channel's own name, as iceoryx2's examples do.
const (
	evData    EventID = iota // new messages are waiting
	evSpace                  // a receiver took messages: there is room again
	evHello                  // a peer's notifier appeared
	evLeft                   // a peer's notifier was closed
	evDrained                // the receiver has taken everything up to a bye
	evDead                   // a notifier's process died (sent by dead-node cleanup)
	evFull                   // a sender found the receiver full and waits for room
	evMaxID   EventID = 7
)

// payloadTypeOf is the payload type of the codec's messages; constructors
// check the codec with codecArg (payloadTypeSafe) first.
func payloadTypeOf[T any](codec Codec[T]) PayloadType {
	pt, _ := payloadTypeSafe(codec)
	return pt
}

// payloadTypeSafe is the codec's PayloadType (Bytes without one), with a
// panic of that method turned into an error.
func payloadTypeSafe[T any](codec Codec[T]) (pt PayloadType, err error) {
	typer, ok := any(codec).(PayloadTyper)
	if !ok {
		return Bytes, nil
	}
	defer func() {
		if r := recover(); r != nil {
			pt, err = Bytes, fmt.Errorf("its PayloadType panicked: %v", r)
		}
	}()
	return typer.PayloadType(), nil
}
