package iox

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/iox-go/iox/internal/ffi"
)

// Fuzz targets for hostile input: names, option values and the decoding of what
// arrives from shared memory. `go test` replays the seeds below and any corpus
// under testdata/fuzz; `go test -fuzz FuzzX` searches for more.

var fuzzSpaces atomic.Int64

// fuzzSpace is an isolated namespace for one fuzz target in this process.
type fuzzSpace struct {
	node         *Node
	prefix, root string
	names        atomic.Int64
}

func newFuzzSpace(tb testing.TB) *fuzzSpace {
	tb.Helper()
	k := fuzzSpaces.Add(1)
	s := &fuzzSpace{
		prefix: fmt.Sprintf("t%d_fz%d_", os.Getpid(), k),
		root:   fmt.Sprintf("/tmp/ioxt/%d-fz%d/", os.Getpid(), k),
	}
	node, err := NewNode(WithIsolation(s.prefix, s.root))
	if err != nil {
		tb.Fatal(err)
	}
	s.node = node
	tb.Cleanup(func() {
		node.Close()
		RemoveIsolation(s.prefix, s.root)
	})
	return s
}

// name returns a service name not used before in this namespace.
func (s *fuzzSpace) name() string { return fmt.Sprintf("fz-%d", s.names.Add(1)) }

// inTime runs f, turning a panic into a test failure, and fails when f takes
// longer than d.
func inTime(t *testing.T, d time.Duration, what string, f func() error) {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		defer func() {
			if r := recover(); r != nil {
				done <- fmt.Errorf("panic: %v\n%s", r, debug.Stack())
			}
		}()
		done <- f()
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	case <-time.After(d):
		t.Fatalf("%s did not finish within %v", what, d)
	}
}

// typedKinds are the kinds a caller can act on; ErrInternal is not among them.
var typedKinds = []error{ErrInvalidName, ErrInvalidArgument, ErrServiceNotFound, ErrServiceExists,
	ErrIncompatible, ErrVersionMismatch, ErrLimitReached, ErrPermission, ErrMessageTooLarge,
	ErrWouldBlock, ErrBufferTooSmall, ErrOutOfMemory, ErrTooManyLoans, ErrConnection, ErrBusy,
	ErrPeerGone, ErrPairFull, ErrClosed, ErrInternal}

// checkTyped fails unless err is an *Error of one of the package's kinds.
func checkTyped(err error) error {
	var e *Error
	if !errors.As(err, &e) {
		return fmt.Errorf("untyped error %T: %v", err, err)
	}
	for _, k := range typedKinds {
		if errors.Is(err, k) {
			return nil
		}
	}
	return fmt.Errorf("error of unknown kind: %v", err)
}

// FuzzServiceName checks that Go's name validation agrees with the native
// library's, so a name Go accepts is never refused later and vice versa.
func FuzzServiceName(f *testing.F) {
	for _, s := range []string{"", "a", "a/b c", "iox2://x", "iox2:/", "caf\u00e9", "\x00", "\x7f", string(make([]byte, 255)), string(make([]byte, 256))} {
		f.Add(s)
	}
	lib, err := openLib("")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, name string) {
		goOK := ValidServiceName(name) == nil
		nativeOK := lib.ServiceNameCheck(name) == ffi.OK
		if goOK != nativeOK {
			t.Fatalf("name %q: Go valid=%v, native valid=%v", name, goOK, nativeOK)
		}
	})
}

// FuzzNodeName checks that Go's node-name validation agrees with iceoryx2's: a
// node is created exactly when Go accepts the name, and NewNode refuses the
// others with ErrInvalidName.
func FuzzNodeName(f *testing.F) {
	for _, s := range []string{"", "a", "node 1/x", strings.Repeat("n", 128), strings.Repeat("n", 129),
		"caf\u00e9", "\x00", "a\x00b", "\x7f", "\x01", "iox2://x", "..", "\xff", "\u2028"} {
		f.Add(s)
	}
	lib, err := openLib("")
	if err != nil {
		f.Fatal(err)
	}
	s := newFuzzSpace(f)
	f.Fuzz(func(t *testing.T, name string) {
		goErr := checkName("node name", name, 128, true)
		var eb ffi.ErrBuf
		h, st := lib.NodeCreate(name, s.prefix, s.root, ffi.NodeSharedNamespace, &eb)
		if st == ffi.OK {
			lib.NodeDrop(h)
		}
		if (goErr == nil) != (st == ffi.OK) {
			t.Fatalf("node name %q: Go says %v, native says %d (%s)", name, goErr, st, eb.String())
		}
		if goErr != nil {
			if _, err := NewNode(WithIsolation(s.prefix, s.root), WithNodeName(name)); !errors.Is(err, ErrInvalidName) {
				t.Fatalf("node name %q: NewNode gave %v, want ErrInvalidName", name, err)
			}
		}
	})
}

// maxChanEntries is the largest channel capacity a process can be expected to
// allocate on request: 16 Mi entries (384 MiB of []byte headers).
const maxChanEntries = 1 << 24

// FuzzChanOptions feeds arbitrary option values to the channel adapters: each
// set is refused with ErrInvalidArgument, or the adapters open (or fail with a
// typed error), carry a message and close, in bounded time and without a panic.
func FuzzChanOptions(f *testing.F) {
	ms := int64(time.Millisecond)
	// queue, chanCap, maxMsg, peerTimeout, spin, poll, linger, history, maxSubs, maxPubs, lossy
	f.Add(int64(64), int64(64), int64(DefaultMaxMessageSize), int64(time.Second), int64(0), 10*ms, int64(time.Second), int64(0), int64(8), int64(2), false)
	f.Add(int64(1), int64(0), int64(0), 4*ms, int64(0), int64(1), int64(0), int64(0), int64(1), int64(1), false)
	f.Add(int64(1), int64(0), int64(0), 4*ms, int64(0), int64(1), int64(0), int64(1), int64(1), int64(1), true)
	f.Add(int64(0), int64(-1), int64(-1), int64(0), int64(-1), int64(0), int64(-1), int64(-1), int64(0), int64(0), false)
	f.Add(int64(4), int64(4), int64(math.MaxInt64), int64(math.MaxInt64), int64(0), int64(math.MaxInt64), int64(math.MaxInt64), int64(4), int64(3), int64(3), false)
	f.Add(int64(16), int64(16), int64(16), int64(time.Second), int64(time.Millisecond), 10*ms, int64(time.Second), int64(100), int64(2), int64(2), true)
	f.Add(int64(8), int64(8), int64(64), int64(time.Second), int64(15*time.Second), 10*ms, int64(time.Second), int64(0), int64(2), int64(2), false)
	f.Add(int64(8), int64(1<<40), int64(64), int64(time.Second), int64(0), 10*ms, int64(time.Second), int64(0), int64(2), int64(2), false)
	f.Add(int64(math.MaxInt64), int64(math.MaxInt64), int64(math.MaxInt64), int64(math.MaxInt64), int64(math.MaxInt64), int64(math.MaxInt64), int64(math.MaxInt64), int64(math.MaxInt64), int64(math.MaxInt64), int64(math.MaxInt64), true)
	s := newFuzzSpace(f)
	f.Fuzz(func(t *testing.T, queue, chanCap, maxMsg, peerTimeout, spin, poll, linger, history, maxSubs, maxPubs int64, lossy bool) {
		opts := []Option{BufferSize(int(queue)), WithChanCap(int(chanCap)), MaxMessageSize(int(maxMsg)),
			WithPeerTimeout(time.Duration(peerTimeout)), WithSpin(time.Duration(spin)), WithPoll(time.Duration(poll)),
			WithLinger(time.Duration(linger)), History(int(history)), MaxSubscribers(int(maxSubs)),
			MaxPublishers(int(maxPubs))}
		if lossy {
			opts = append(opts, Lossy())
		}
		cfg, err := newChanConfig("fuzz", "fz", opts)
		if err != nil {
			if !errors.Is(err, ErrInvalidArgument) {
				t.Fatalf("refused with %v, want ErrInvalidArgument", err)
			}
			return
		}
		if cfg.chanCap > maxChanEntries {
			t.Fatalf("accepted a channel capacity of %d: making the channels would exhaust memory or panic", cfg.chanCap)
		}
		if cfg.chanCap > 1<<16 || cfg.queue > 1<<12 || cfg.history > 1<<12 || cfg.maxSubscribers > 64 || cfg.maxPublishers > 64 {
			return // accepted, but too costly to open on every input (see TestExtremeChannelOptionsGiveTypedErrors)
		}
		msg := make([]byte, min(cfg.maxMessage, 32))
		for i := range msg {
			msg[i] = byte(i + 1)
		}
		// Everything must be done well before the adapters' own context ends
		// them, so a wait that only the context ends counts as a hang.
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		inTime(t, 10*time.Second, "pair", func() error { return fuzzPair(ctx, s, opts, msg) })
		inTime(t, 10*time.Second, "pubsub", func() error { return fuzzPubSub(ctx, s, opts, msg) })
	})
}

func fuzzPair(ctx context.Context, s *fuzzSpace, opts []Option, msg []byte) error {
	name := s.name()
	a, err := OpenPair(ctx, s.node, name, opts...)
	if err != nil {
		return checkTyped(err)
	}
	defer a.Close()
	b, err := OpenPair(ctx, s.node, name, opts...)
	if err != nil {
		return checkTyped(err)
	}
	defer b.Close()
	if err := a.Send(ctx, msg); err != nil {
		return fmt.Errorf("send: %w", err)
	}
	if m, err := b.Recv(ctx); err != nil || string(m) != string(msg) {
		return fmt.Errorf("receive: %q, %v", m, err)
	}
	if err := b.Send(ctx, msg); err != nil {
		return fmt.Errorf("send back: %w", err)
	}
	if m, err := a.Recv(ctx); err != nil || string(m) != string(msg) {
		return fmt.Errorf("receive back: %q, %v", m, err)
	}
	if err := a.Close(); err != nil {
		return fmt.Errorf("close: %w", err)
	}
	return b.Close()
}

func fuzzPubSub(ctx context.Context, s *fuzzSpace, opts []Option, msg []byte) error {
	name := s.name()
	sub, err := OpenSub(ctx, s.node, name, opts...)
	if err != nil {
		return checkTyped(err)
	}
	defer sub.Close()
	pub, err := OpenPub(ctx, s.node, name, opts...)
	if err != nil {
		return checkTyped(err)
	}
	defer pub.Close()
	if pub.Subscribers() != 1 {
		return fmt.Errorf("publisher sees %d subscribers", pub.Subscribers())
	}
	if err := pub.Send(ctx, msg); err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	if m, err := sub.Recv(ctx); err != nil || string(m) != string(msg) {
		return fmt.Errorf("receive: %q, %v", m, err)
	}
	if err := pub.Close(); err != nil {
		return fmt.Errorf("close publisher: %w", err)
	}
	return sub.Close()
}

// A channel capacity no process can allocate must be refused, not attempted:
// make(chan) of it panics or kills the process with an out-of-memory error.
func TestChanOptionsRefuseChannelsNoProcessCanHold(t *testing.T) {
	for _, n := range []int{maxChanEntries + 1, 1 << 40, math.MaxInt} {
		_, err := newChanConfig("open pair", "x", []Option{WithChanCap(n)})
		if !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("WithChanCap(%d): %v, want ErrInvalidArgument", n, err)
		}
	}
}

// fuzzRecord is a fixed-layout value with padding, a float and bools.
type fuzzRecord struct {
	A int32
	B bool
	C [3]uint16
	D float64
	E uint8
	F bool
}

// FuzzFixedDecode decodes arbitrary bytes as a fixed-layout value: a wrong length
// or a bool byte other than 0 or 1 (which no Rust or C peer sends, and which Go
// cannot represent) is refused with ErrInvalidArgument; anything else decodes to
// the fields the bytes hold.
func FuzzFixedDecode(f *testing.F) {
	codec, err := Fixed[fuzzRecord]("iox::FuzzRecord")
	if err != nil {
		f.Fatal(err)
	}
	size := int(unsafe.Sizeof(fuzzRecord{}))
	good, _ := codec.Append(nil, fuzzRecord{A: -7, B: true, C: [3]uint16{1, 2, 65535}, D: math.Inf(-1), E: 200, F: false})
	f.Add([]byte{})
	f.Add(good)
	f.Add(make([]byte, size))
	f.Add(make([]byte, size-1))
	f.Add(make([]byte, size+1))
	badBool := append([]byte{}, good...)
	badBool[unsafe.Offsetof(fuzzRecord{}.B)] = 2
	f.Add(badBool)
	f.Add([]byte(strings.Repeat("\xff", size)))
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := codec.Decode(b)
		if len(b) != size {
			if !errors.Is(err, ErrInvalidArgument) {
				t.Fatalf("%d bytes: %v, want ErrInvalidArgument", len(b), err)
			}
			return
		}
		var r fuzzRecord
		ob, of := unsafe.Offsetof(r.B), unsafe.Offsetof(r.F)
		if b[ob] > 1 || b[of] > 1 {
			if !errors.Is(err, ErrInvalidArgument) {
				t.Fatalf("bool bytes %d and %d decoded (%v); want ErrInvalidArgument", b[ob], b[of], err)
			}
			return
		}
		if err != nil {
			t.Fatalf("decode: %v", err)
		}
		le := binary.NativeEndian
		want := fuzzRecord{
			A: int32(le.Uint32(b[unsafe.Offsetof(r.A):])),
			B: b[ob] == 1,
			D: math.Float64frombits(le.Uint64(b[unsafe.Offsetof(r.D):])),
			E: b[unsafe.Offsetof(r.E)],
			F: b[of] == 1,
		}
		for i := range want.C {
			want.C[i] = le.Uint16(b[int(unsafe.Offsetof(r.C))+2*i:])
		}
		if v.A != want.A || v.B != want.B || v.C != want.C || math.Float64bits(v.D) != math.Float64bits(want.D) ||
			v.E != want.E || v.F != want.F {
			t.Fatalf("decoded %+v, the bytes hold %+v", v, want)
		}
		if again, _ := codec.Append(nil, v); len(again) != size {
			t.Fatalf("re-encoded to %d bytes", len(again))
		}
	})
}

// FuzzInboxHeaders sends samples with arbitrary iox headers through real shared
// memory into a lossless subscriber's receiver, as a buggy or hostile publisher
// could: sequence numbers that repeat, go back, jump or sit at the top of the
// range, and packed samples whose frame count or frame lengths lie. The
// receiver must never panic; it delivers exactly the messages of the samples in
// sequence, intact, drops copies silently, and reports every sample it drops for
// another reason (a jump, or the damaged rest of a malformed sample) as one
// ErrProtocol item in its place, after the frames before the damage.
func FuzzInboxHeaders(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0, 1, 0, 1, 0, 2, 1, 3, 0, 3, 0, 5})
	f.Add([]byte{0, 3, 1, 1, 0, 2, 1, 1, 0, 3, 0, 1, 1, 1, 1, 1})
	f.Add([]byte{2, 0xff, 0, 5, 2, 1, 0, 5, 3, 0, 1, 0, 3, 0, 0, 0})
	f.Add([]byte{1, 0xfe, 0, 250, 1, 0xff, 0, 251, 0, 0, 0, 0})
	f.Add([]byte{0, 1, 1, 4, 0, 2, 2, 4, 0, 3, 0, 1})
	f.Add([]byte{0, 1, 3, 9, 0, 2, 0, 1})
	f.Add([]byte{0, 1, 1, 200, 0, 2, 3, 200})
	f.Add([]byte{0, 1, 0, 1, 0, 0xfe, 0, 1, 0, 0xff, 0, 1, 0, 2, 0, 1, 0, 3, 0, 1}) // two forged samples, then the real stream
	s := newFuzzSpace(f)
	svc, err := s.node.PublishSubscribe("inbox", withHeader(), BufferSize(64), SafeOverflow(false))
	if err != nil {
		f.Fatal(err)
	}
	defer svc.Close()
	pub, err := svc.Publisher()
	if err != nil {
		f.Fatal(err)
	}
	defer pub.Close()
	sub, err := svc.Subscriber()
	if err != nil {
		f.Fatal(err)
	}
	defer sub.Close()
	tags := []uint64{0, 1, 0x0123456789abcdef, math.MaxUint64}
	scratch := NewBatch(1<<20, 64)
	cfg := defaultChanConfig()
	f.Fuzz(func(t *testing.T, data []byte) {
		for { // what an earlier input left behind
			if k, err := sub.ReceiveBatch(scratch); err != nil || k == 0 {
				break
			}
		}
		r := newReceiver[[]byte]("inbox", sub, nil, newLife(), Raw{}, cfg, true, true)
		type state struct{ last uint64 }
		model := map[uint64]*state{}
		type item struct {
			msg  string
			drop bool // a reported drop (ErrProtocol)
		}
		var want []item
		hdr := make([]byte, headerSize)
		for i := 0; i+3 < len(data) && i < 4*48; i += 4 {
			tag := tags[data[i]%4]
			var seq uint64
			switch v := data[i+1]; v {
			case 0xff:
				seq = math.MaxUint64
			case 0xfe:
				seq = math.MaxUint64 - 1
			default:
				seq = uint64(v)
			}
			kind, size := data[i+2]%4, int(data[i+3])
			payload, count, frames, ok := hostileSample(kind, size, i)
			h := header{tag: tag, seq: seq, count: uint32(min(count, math.MaxUint32))}
			h.put(hdr)
			if k, err := pub.sendHeader(payload, hdr); err != nil || k != 1 {
				t.Fatalf("send %d: %d, %v", i/4, k, err)
			}
			st, seen := model[tag]
			switch {
			case !seen:
				model[tag] = &state{last: seq}
			case seq == st.last+1:
				st.last = seq
			case seq == st.last:
				continue // a copy: dropped without a word
			default:
				want = append(want, item{drop: true}) // forged: reported and dropped
				continue
			}
			for _, m := range frames {
				want = append(want, item{msg: string(m)})
			}
			if !ok {
				want = append(want, item{drop: true})
			}
		}
		for {
			k, err := r.take()
			if err != nil {
				t.Fatalf("take: %v", err)
			}
			if k == 0 {
				break
			}
		}
		got := r.queue[r.head:]
		if len(got) != len(want) {
			t.Fatalf("delivered %d items, want %d", len(got), len(want))
		}
		for i, w := range want {
			if w.drop {
				if !errors.Is(got[i].err, ErrProtocol) {
					t.Fatalf("item %d: %v, want a reported drop (ErrProtocol)", i, got[i].err)
				}
				continue
			}
			if got[i].err != nil || string(got[i].v) != w.msg {
				t.Fatalf("item %d damaged: %d bytes (%v), want %d", i, len(got[i].v), got[i].err, len(w.msg))
			}
		}
	})
}

// hostileSample builds a sample of the given kind: 0 a plain message, 1 a
// well-formed packed sample, 2 a packed sample whose count claims more frames
// than it holds, 3 a packed sample whose last frame claims more bytes than are
// left. It returns the payload, the header's count, the messages an inbox
// delivers from it, and whether it is well-formed.
func hostileSample(kind byte, size, salt int) (payload []byte, count uint64, frames [][]byte, ok bool) {
	fill := func(n, seed int) []byte {
		b := make([]byte, n)
		for k := range b {
			b[k] = byte(k*7 + seed)
		}
		return b
	}
	if kind == 0 {
		n := size * 7
		if size >= 250 {
			n = 300000 + size // larger than the inbox's first buffer
		}
		m := fill(n, salt)
		return m, 0, [][]byte{m}, true
	}
	k := 1 + size%5
	for j := 0; j < k; j++ {
		m := fill((j*13+size)%40, salt+j)
		frame := binary.NativeEndian.AppendUint32(nil, uint32(len(m)))
		if kind == 3 && j == k-1 {
			frame = binary.NativeEndian.AppendUint32(nil, uint32(len(m)+1+size))
		} else {
			frames = append(frames, m)
		}
		payload = append(append(payload, frame...), m...)
	}
	switch kind {
	case 1:
		return payload, uint64(k), frames, true
	case 2:
		if size%2 == 1 {
			return payload, math.MaxUint64, frames, false
		}
		return payload, uint64(k + 1), frames, false
	}
	return payload, uint64(k), frames, false
}
