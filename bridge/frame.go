package bridge

import (
	"bytes"
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

// framer cuts messages into frames.
type framer struct {
	origin string
	limit  int // largest payload of one frame
	count  atomic.Uint64
}

func newFramer(origin string, maxPayload int64) *framer {
	return &framer{origin: origin, limit: max(int(maxPayload)-frameRoom, 1)}
}

// frames returns the NATS messages that carry data on subject.
func (f *framer) frames(subject, typ string, data []byte) []*nats.Msg {
	id := f.origin + "." + strconv.FormatUint(f.count.Add(1), 10)
	n := max((len(data)+f.limit-1)/f.limit, 1)
	out := make([]*nats.Msg, n)
	for i := range n {
		m := nats.NewMsg(subject)
		m.Header.Set(hType, typ)
		m.Header.Set(hOrigin, f.origin)
		m.Header.Set(hID, id)
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

// dropNotice is the message sent in place of one that cannot cross, so that
// the receiving side reports it too.
func (f *framer) dropNotice(subject, typ, reason string) *nats.Msg {
	m := nats.NewMsg(subject)
	m.Header.Set(hType, typ)
	m.Header.Set(hOrigin, f.origin)
	m.Header.Set(hID, f.origin+"."+strconv.FormatUint(f.count.Add(1), 10))
	m.Header.Set(hDrop, reason)
	return m
}

// assembler joins the frames of one subject's messages. Frames of one sender
// arrive in order; a message whose parts do not follow each other is dropped
// and reported.
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

// add takes one frame. It returns the whole message once its last part
// arrived (ok), and an error for a frame or message that had to be dropped
// (a half-joined message included); both may come at once.
func (a *assembler) add(m *nats.Msg) (msg []byte, ok bool, err error) {
	if m.Header == nil || m.Header.Get(hType) == "" || m.Header.Get(hID) == "" {
		return nil, false, a.fail(iox.ErrProtocol, "a message of %d bytes without the bridge's headers (%s, %s)", len(m.Data), hType, hID)
	}
	if t := m.Header.Get(hType); t != a.typ {
		return nil, false, a.fail(iox.ErrIncompatibleType, "the message carries %s, the service %s", t, a.typ)
	}
	id := m.Header.Get(hID)
	if r := m.Header.Get(hDrop); r != "" {
		return nil, false, a.fail(kindOfDrop(r), "the sending side could not relay a message: %s", r)
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
		a.buf = make([]byte, 0, size)
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
