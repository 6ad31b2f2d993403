package bridge

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/nats-io/nats.go"

	"github.com/iox-go/iox"
)

// Framing: how one iox message becomes NATS messages and back. A message
// travels as one NATS message when it fits the server's max_payload (less
// room for the headers, frameRoom), and otherwise as parts sent in order on
// the same subject, each with Iox-Part "i/n" and the whole message's size in
// Iox-Size; the receiving bridge joins them before it publishes locally.
//
// Small messages of a publish-subscribe service that wait together at the
// exporting bridge travel packed, several in one NATS message (Iox-Count n:
// n messages, each as its length in a uvarint and its bytes, at most
// packBytes in all), so that a burst costs the server, the client libraries
// and the stream one message per pack, not per message. A lone message is
// never held back to wait for others: packing only takes what is already
// there.

// Headers of the messages a bridge sends.
const (
	hType   = "Iox-Type"   // the payload type, TypeString
	hOrigin = "Iox-Origin" // the sending bridge's run id
	hID     = "Iox-Id"     // the message's id: origin, a dot, a counter
	hPart   = "Iox-Part"   // i/n for part i (from 1) of n
	hSize   = "Iox-Size"   // the size of the whole message
	hDrop   = "Iox-Drop"   // a notice in place of a message that could not cross: the reason
	hEnd    = "Iox-End"    // the end of a stream of responses: "ok", or why it ended
	hSeq    = "Iox-Seq"    // lossless: the frame's number among those its export sent, from 1
	hPub    = "Iox-Pub"    // lossless: the run id of the export that numbered it
	hCount  = "Iox-Count"  // a packed frame: how many messages it carries
	hBeat   = "Iox-Beat"   // calls: on a request, the beats asked for (ms); on the inbox, a beat (see rpc.go)
)

// Packing bounds: a pack holds at most packMessages messages and packBytes
// bytes of them (less when the server's max_payload is smaller); a message
// larger than packAlone goes alone.
const (
	packMessages = 1024
	packBytes    = 256 << 10
	packAlone    = 16 << 10
)

// frameRoom is what a frame leaves of max_payload for its headers.
const frameRoom = 1024

// typed is the []byte codec of a service of any payload type: the bridge
// relays bytes and checks the type at the service.
type typed struct{ pt iox.PayloadType }

func (c typed) PayloadType() iox.PayloadType              { return c.pt }
func (typed) Append(dst []byte, v []byte) ([]byte, error) { return append(dst, v...), nil }
func (c typed) Decode(b []byte) ([]byte, error) {
	if c.pt.Fixed && len(b) != c.pt.Size {
		return nil, fmt.Errorf("a %s is %d bytes, not %d", c.pt.Name, c.pt.Size, len(b))
	}
	return bytes.Clone(b), nil
}

// codecFor is the codec the bridge opens a service's ports with: Raw for
// byte services (most of them), whose ports receive into buffers the bridge
// hands back (Recycle) and send without encoding, and typed for the others.
func codecFor(pt iox.PayloadType) iox.Codec[[]byte] {
	if pt == iox.Bytes {
		return iox.Raw{}
	}
	return typed{pt}
}

// framer cuts messages into frames.
type framer struct {
	origin  string
	originV []string // origin as a header value
	limit   int      // largest payload of one frame
	count   atomic.Uint64
}

func newFramer(origin string, maxPayload int64) *framer {
	return &framer{origin: origin, originV: []string{origin}, limit: max(int(maxPayload)-frameRoom, 1)}
}

// frames returns the NATS messages that carry data on subject.
func (f *framer) frames(subject, typ string, data []byte) []*nats.Msg {
	id := f.nextID()
	n := max((len(data)+f.limit-1)/f.limit, 1)
	out := make([]*nats.Msg, n)
	for i := range n {
		m := f.msg(subject, typ, id)
		if n > 1 {
			m.Header.Set(hPart, fmt.Sprintf("%d/%d", i+1, n))
			m.Header.Set(hSize, strconv.Itoa(len(data)))
			m.Data = data[i*f.limit : min((i+1)*f.limit, len(data))]
		} else {
			m.Data = data
		}
		out[i] = m
	}
	return out
}

// nextID numbers the next message: the origin, a dot, a counter.
func (f *framer) nextID() string {
	return f.origin + "." + strconv.FormatUint(f.count.Add(1), 10)
}

// msg is a frame with the headers every frame carries. The header names are
// in canonical form already, so they are set without Header.Set's
// canonicalization; the origin's value is shared, as nothing changes it.
func (f *framer) msg(subject, typ, id string) *nats.Msg {
	return &nats.Msg{Subject: subject, Header: nats.Header{hType: {typ}, hOrigin: f.originV, hID: {id}}}
}

// packLimit is the most bytes of messages one pack carries.
func (f *framer) packLimit() int { return min(packBytes, f.limit) }

// packs reports whether a message of n bytes may travel in a pack.
func (f *framer) packs(n int) bool { return n <= packAlone && packedSize(n) <= f.packLimit() }

// packedSize is what a message of n bytes takes in a pack.
func packedSize(n int) int {
	k := 1
	for v := uint64(n); v >= 0x80; v >>= 7 {
		k++
	}
	return k + n
}

// pack returns one NATS message that carries msgs (two or more, each of
// which packs, packLimit bytes in all) on subject.
func (f *framer) pack(subject, typ string, msgs [][]byte) *nats.Msg {
	n := 0
	for _, m := range msgs {
		n += packedSize(len(m))
	}
	data := make([]byte, 0, n)
	for _, m := range msgs {
		data = binary.AppendUvarint(data, uint64(len(m)))
		data = append(data, m...)
	}
	m := f.msg(subject, typ, f.nextID())
	m.Header[hCount] = []string{strconv.Itoa(len(msgs))}
	m.Data = data
	return m
}

// dropNotice is the message sent in place of one that cannot cross, so that
// the receiving side reports it too.
func (f *framer) dropNotice(subject, typ, reason string) *nats.Msg {
	m := f.msg(subject, typ, f.nextID())
	m.Header[hDrop] = []string{reason}
	return m
}

// assembler joins the frames of one sender's messages, which arrive in
// order; a message whose parts do not follow each other is dropped and
// reported.
type assembler struct {
	name string // the service, for errors
	typ  string // the payload type the service carries
	max  int    // the largest message the local side takes

	id    string // the message being joined
	next  int    // the part expected next (from 1)
	parts int
	size  int
	buf   []byte
	skip  string // id of a message being refused, whose parts are ignored
}

func (a *assembler) fail(kind error, format string, args ...any) error {
	return &iox.Error{Op: "bridge receive", Name: a.name, Kind: kind, Detail: fmt.Sprintf(format, args...)}
}

// messages takes one frame that may be a pack (publish-subscribe services):
// it returns the messages it completes, none while a message's parts are
// being joined, and an error for what had to be dropped (both may come at
// once: a pack's messages that are too large are dropped, the others
// delivered).
func (a *assembler) messages(m *nats.Msg) ([][]byte, error) {
	if m.Header == nil || m.Header.Get(hCount) == "" {
		msg, ok, err := a.add(m)
		if !ok {
			return nil, err
		}
		return [][]byte{msg}, err
	}
	if err := a.check(m); err != nil {
		return nil, err
	}
	var lost error
	if a.id != "" {
		lost = a.fail(iox.ErrProtocol, "message %s lost part %d of %d", a.id, a.next, a.parts)
		a.reset()
	}
	id := m.Header.Get(hID)
	n, err := strconv.Atoi(m.Header.Get(hCount))
	if err != nil || n < 1 || n > len(m.Data) || m.Header.Get(hPart) != "" {
		return nil, join(lost, a.fail(iox.ErrProtocol, "pack %s: bad %s %q", id, hCount, m.Header.Get(hCount)))
	}
	out := make([][]byte, 0, n)
	data := m.Data
	large := 0
	for range n {
		size, k := binary.Uvarint(data)
		if k <= 0 || size > uint64(len(data)-k) {
			return nil, join(lost, a.fail(iox.ErrProtocol, "pack %s of %d messages is malformed; it was dropped", id, n))
		}
		msg := data[k : k+int(size) : k+int(size)]
		data = data[k+int(size):]
		if len(msg) > a.max {
			large++
			continue
		}
		out = append(out, msg)
	}
	if len(data) != 0 {
		return nil, join(lost, a.fail(iox.ErrProtocol, "pack %s has %d bytes beyond its %d messages; it was dropped", id, len(data), n))
	}
	if large > 0 {
		lost = join(lost, a.fail(iox.ErrMessageTooLarge, "%d messages of pack %s are larger than the %d bytes the service takes; they were dropped", large, id, a.max))
	}
	return out, lost
}

// check looks at the headers every frame carries: the bridge's own, and the
// service's payload type.
func (a *assembler) check(m *nats.Msg) error {
	if m.Header == nil || m.Header.Get(hType) == "" || m.Header.Get(hID) == "" {
		return a.fail(iox.ErrProtocol, "a message of %d bytes without the bridge's headers (%s, %s)", len(m.Data), hType, hID)
	}
	if t := m.Header.Get(hType); t != a.typ {
		return a.fail(iox.ErrIncompatibleType, "the message carries %s, the service %s", t, a.typ)
	}
	if r := m.Header.Get(hDrop); r != "" {
		return a.fail(kindOfDrop(r), "the sending side could not relay a message: %s", r)
	}
	return nil
}

// add takes one frame. It returns the whole message once its last part
// arrived (ok), and an error for a frame or message that had to be dropped
// (a half-joined message included); both may come at once.
func (a *assembler) add(m *nats.Msg) (msg []byte, ok bool, err error) {
	if err := a.check(m); err != nil {
		return nil, false, err
	}
	id := m.Header.Get(hID)
	if m.Header.Get(hCount) != "" { // only publish-subscribe services pack (see messages)
		return nil, false, a.fail(iox.ErrProtocol, "pack %s where packs do not travel; it was dropped", id)
	}
	var lost error
	if a.id != "" && id != a.id {
		lost = a.fail(iox.ErrProtocol, "message %s lost part %d of %d", a.id, a.next, a.parts)
		a.reset()
	}
	part := m.Header.Get(hPart)
	if part == "" {
		if len(m.Data) > a.max {
			return nil, false, join(lost, a.fail(iox.ErrMessageTooLarge, "a message of %d bytes, the service takes %d", len(m.Data), a.max))
		}
		return m.Data, true, lost
	}
	if id == a.skip {
		return nil, false, lost
	}
	var i, n int
	if _, err := fmt.Sscanf(part, "%d/%d", &i, &n); err != nil || i < 1 || i > n || n < 2 {
		return nil, false, join(lost, a.fail(iox.ErrProtocol, "bad %s %q", hPart, part))
	}
	size, err := strconv.Atoi(m.Header.Get(hSize))
	if err != nil || size < 0 {
		return nil, false, join(lost, a.fail(iox.ErrProtocol, "bad %s %q", hSize, m.Header.Get(hSize)))
	}
	if a.id == "" {
		if i != 1 {
			a.skip = id
			return nil, false, join(lost, a.fail(iox.ErrProtocol, "message %s arrived from part %d of %d", id, i, n))
		}
		if size > a.max {
			a.skip = id
			return nil, false, join(lost, a.fail(iox.ErrMessageTooLarge, "a message of %d bytes, the service takes %d", size, a.max))
		}
		a.id, a.next, a.parts, a.size = id, 1, n, size
		// Room for what came and some more parts: a forged Iox-Size does
		// not make the bridge hold memory the sender did not fill.
		a.buf = make([]byte, 0, min(size, joinRoom*len(m.Data)))
	}
	if i != a.next || n != a.parts || size != a.size || len(a.buf)+len(m.Data) > a.size {
		a.skip = id
		e := a.fail(iox.ErrProtocol, "message %s: part %d of %d does not follow part %d", id, i, n, a.next-1)
		a.reset()
		return nil, false, join(lost, e)
	}
	a.buf = append(a.buf, m.Data...)
	a.next++
	if i < n {
		return nil, false, lost
	}
	msg = a.buf
	a.reset()
	if len(msg) != size {
		return nil, false, join(lost, a.fail(iox.ErrProtocol, "message %s has %d of %d bytes", id, len(msg), size))
	}
	return msg, true, lost
}

func (a *assembler) reset() { a.id, a.next, a.parts, a.size, a.buf = "", 0, 0, 0, nil }

// joinRoom bounds what a message being joined holds ahead of its parts, in
// parts.
const joinRoom = 16

// senders joins the frames that several bridges send on one subject: each
// sender's frames arrive in order, but those of two senders (two hosts that
// export the same name) may interleave, so each origin (Iox-Origin) has its
// own assembler. At most maxSenders are kept: a new one forgets idle ones
// first, then one whose message was being joined (reported as lost).
type senders struct {
	name, typ string
	max       int
	by        map[string]*assembler
}

const maxSenders = 64

func newSenders(name, typ string, max int) *senders {
	return &senders{name: name, typ: typ, max: max, by: map[string]*assembler{}}
}

// of returns the assembler of m's sender, and an error for a message of
// another sender that had to be forgotten to make room.
func (s *senders) of(m *nats.Msg) (*assembler, error) {
	origin := ""
	if m.Header != nil {
		origin = m.Header.Get(hOrigin)
	}
	if a := s.by[origin]; a != nil {
		return a, nil
	}
	var lost error
	if len(s.by) >= maxSenders {
		for o, a := range s.by {
			if a.id == "" {
				delete(s.by, o)
			}
		}
		for o, a := range s.by {
			if len(s.by) < maxSenders {
				break
			}
			lost = join(lost, a.fail(iox.ErrProtocol, "message %s lost part %d of %d (more than %d bridges were sending)", a.id, a.next, a.parts, maxSenders))
			delete(s.by, o)
		}
	}
	a := &assembler{name: s.name, typ: s.typ, max: s.max}
	s.by[origin] = a
	return a, lost
}

// messages is assembler.messages for the frame's sender.
func (s *senders) messages(m *nats.Msg) ([][]byte, error) {
	a, lost := s.of(m)
	msgs, err := a.messages(m)
	return msgs, join(lost, err)
}

// joining reports whether a message of origin is being joined.
func (s *senders) joining(origin string) bool {
	a := s.by[origin]
	return a != nil && a.id != ""
}

// kindOfDrop maps a drop notice's reason to the error kind it reports.
func kindOfDrop(reason string) error {
	if strings.HasPrefix(reason, "too large") {
		return iox.ErrMessageTooLarge
	}
	return iox.ErrProtocol
}

func join(a, b error) error {
	if a == nil {
		return b
	}
	if b == nil {
		return a
	}
	return fmt.Errorf("%w; %w", a, b)
}
