package iox

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"
	"unsafe"

	"github.com/iox-go/iox/internal/ffi"
	"github.com/iox-go/iox/internal/layout"
)

// MaxBlackboardKeySize is iceoryx2's limit on the size of a blackboard key.
const MaxBlackboardKeySize = 64

// Blackboard is iceoryx2's blackboard service: a key-value store shared by
// processes, with one writer and many readers. Its entries (keys and the types
// of their values) are fixed when it is created. Keys are of the fixed-layout
// type K, and each entry's value is of a fixed-layout type of its own; both
// carry the type names Rust, C++ and Python peers use, so their blackboard
// programs share the service.
//
// A reader always sees a whole value: the writer writes into a cell no reader
// reads and publishes it atomically, so a writer that dies in the middle of a
// write leaves the last complete value.
//
// Changes are announced the way iceoryx2 documents it: an event service of the
// same name, notified with the entry's id (EntryWriter.ID) after each write.
// Watch waits on it.
//
// A Blackboard is safe for use by multiple goroutines. Writers, readers and
// entry handles made from it stay usable after it is closed; close them on
// their own.
type Blackboard[K any] struct {
	node   *Node
	lib    *ffi.Lib
	ref    ref
	name   string
	key    FixedCodec[K]
	mask   []byte
	config ffi.BBConfig
	maxID  EventID                // the largest entry id, when this process created the service
	types  map[string]PayloadType // entries' value types by key, when this handle created the service

	evMu sync.Mutex
	ev   *EventService // the change-notification service, opened on first use
}

// BlackboardEntry is one entry of a new blackboard; make it with Entry.
type BlackboardEntry[K any] struct {
	key   K
	value PayloadType
	init  []byte
	err   error
}

// Entry is the entry key whose value is of the type value describes, with
// initial as its first value.
func Entry[K, V any](key K, value FixedCodec[V], initial V) BlackboardEntry[K] {
	e := BlackboardEntry[K]{key: key, value: value.PayloadType()}
	if e.value.Name == "" {
		e.err = errors.New("the value's codec is the zero FixedCodec; make it with Fixed")
		return e
	}
	e.init, e.err = value.Append(nil, initial)
	return e
}

// OpenBlackboard creates the blackboard service name with entries, whose keys
// are of the type key describes. MaxReaders and MaxNodes bound its readers
// and the nodes that may open it. A service of that name that exists already
// is refused with ErrServiceExists; open it with OpenExistingBlackboard.
func OpenBlackboard[K any](n *Node, name string, key FixedCodec[K], entries []BlackboardEntry[K], opts ...Option) (*Blackboard[K], error) {
	const op = "create blackboard"
	if err := refuse(op, name, nodeArg(n)); err != nil {
		return nil, err
	}
	if len(entries) == 0 {
		return nil, &Error{Op: op, Name: name, Kind: ErrInvalidArgument, Detail: "a blackboard needs at least one entry"}
	}
	list := make([]ffi.BBEntry, len(entries))
	types := make(map[string]PayloadType, len(entries))
	var bound uint64
	for i, e := range entries {
		if e.err != nil {
			return nil, &Error{Op: op, Name: name, Kind: ErrInvalidArgument, Detail: fmt.Sprintf("entry %d: %v", i, e.err)}
		}
		k, err := key.Append(nil, e.key)
		if err != nil {
			return nil, &Error{Op: op, Name: name, Kind: ErrInvalidArgument, Detail: fmt.Sprintf("entry %d: key: %v", i, err)}
		}
		list[i] = ffi.BBEntry{Key: k, Value: bbType(e.value), Init: e.init}
		types[string(k)] = e.value
		bound += 2*uint64(e.value.Size+e.value.Align) + 64 + uint64(e.value.Align)
	}
	// The change-notification service comes first, with room for every
	// entry's id, so that no watcher or writer that opens the blackboard
	// before it makes one without.
	ev, err := eventsFor(n, name, EventID(bound))
	if err != nil {
		return nil, notificationsTooLarge(op, name, bound, err)
	}
	b, err := openBlackboard(n, op, name, ffi.Create, key, list, opts)
	if err != nil {
		ev.Close()
		return nil, err
	}
	b.maxID, b.ev = EventID(bound), ev
	b.types = make(map[string]PayloadType, len(types))
	for k, t := range types {
		b.types[string(b.masked([]byte(k)))] = t
	}
	return b, nil
}

// masked is a key's bytes with its padding cleared: keys that compare equal
// have equal masked bytes.
func (b *Blackboard[K]) masked(kb []byte) []byte {
	if b.mask == nil {
		return kb
	}
	out := make([]byte, len(kb))
	for i := range kb {
		out[i] = kb[i] & b.mask[i]
	}
	return out
}

// typeMismatch adds the entry's own value type to an ErrIncompatibleType of
// the entry kb, when this handle created the service and so knows it:
// iceoryx2 0.10.0 keeps an entry's type to itself, so an opener's error names
// the type asked for only.
func (b *Blackboard[K]) typeMismatch(err error, kb []byte) error {
	var e *Error
	if !errors.As(err, &e) || e.Kind != ErrIncompatibleType || b.types == nil {
		return err
	}
	t, ok := b.types[string(b.masked(kb))]
	if !ok {
		return err
	}
	c := *e
	c.Detail += fmt.Sprintf("; it holds %q (size %d, alignment %d)", t.Name, t.Size, t.Align)
	return &c
}

// notificationsTooLarge says why a blackboard whose change-notification
// service does not fit is refused: its entries' ids are byte offsets (as in
// iceoryx2's examples), so the ids reach about twice the values' size, and
// each listener of the service keeps 8 bytes per id. Other errors pass.
func notificationsTooLarge(op, name string, top uint64, err error) error {
	var e *Error
	if !errors.As(err, &e) || e.Kind != ErrOutOfMemory {
		return err
	}
	return &Error{Op: op, Name: name, Kind: ErrOutOfMemory, Detail: fmt.Sprintf(
		"its change notifications do not fit: entry ids are the values' byte offsets, up to %d here, and each watcher keeps 8 bytes per id (%s)",
		top, e.Detail)}
}

// eventsFor opens, or creates with room for event ids up to top, the event
// service that carries a blackboard's change notifications.
func eventsFor(n *Node, name string, top EventID) (*EventService, error) {
	var settings []Option
	if top > 255 {
		settings = append(settings, MaxEventID(top))
	}
	return joinService(n.Event, name, nil, settings)
}

// OpenExistingBlackboard opens the blackboard service name, made by any
// process in any language, whose keys are of the type key describes. Another
// key type is refused with ErrIncompatibleType, naming both; MaxReaders and
// MaxNodes, when given, must be satisfied by the service (ErrIncompatible).
func OpenExistingBlackboard[K any](n *Node, name string, key FixedCodec[K], opts ...Option) (*Blackboard[K], error) {
	return openBlackboard(n, "open blackboard", name, ffi.Open, key, nil, opts)
}

func bbType(t PayloadType) ffi.BBType {
	return ffi.BBType{Name: t.Name, Size: uint64(t.Size), Align: uint64(t.Align)}
}

func openBlackboard[K any](n *Node, op, name string, mode int, key FixedCodec[K], entries []ffi.BBEntry, opts []Option) (*Blackboard[K], error) {
	if err := refuse(op, name, nodeArg(n)); err != nil {
		return nil, err
	}
	o, err := applyOptions(op, name, "blackboard", blackboardOpts, opts)
	if err != nil {
		return nil, err
	}
	if err := o.svc.checkCounts(); err != nil {
		return nil, &Error{Op: op, Name: name, Kind: ErrInvalidArgument, Detail: err.Error()}
	}
	kt := key.PayloadType()
	switch {
	case kt.Name == "":
		return nil, &Error{Op: op, Name: name, Kind: ErrInvalidArgument, Detail: "the key's codec is the zero FixedCodec; make it with Fixed"}
	case kt.Size > MaxBlackboardKeySize:
		return nil, &Error{Op: op, Name: name, Kind: ErrInvalidArgument,
			Detail: fmt.Sprintf("key type %q has %d bytes, more than iceoryx2's %d", kt.Name, kt.Size, MaxBlackboardKeySize)}
	}
	nh, err := n.acquireNode(op, name)
	if err != nil {
		return nil, err
	}
	defer n.ref.release()
	var mask []byte // nil: every byte counts
	if !key.raw {
		mask = layout.Mask[K]()
	}
	var eb ffi.ErrBuf
	h, st := n.lib.BlackboardOpen(nh, name, mode, bbType(kt), mask, entries, &o.svc.bb, &eb)
	if st != ffi.OK {
		return nil, statusError(n.lib, op, name, st, &eb)
	}
	b := &Blackboard[K]{node: n, lib: n.lib, name: name, key: key, mask: mask}
	b.ref.h = h
	b.config, _ = n.lib.BlackboardConfigOf(h)
	return b, nil
}

// BlackboardSettings are what a blackboard service stores about itself.
type BlackboardSettings struct {
	MaxReaders, MaxNodes int
	Key                  PayloadType // the key type, as its creator named it
}

// BlackboardSettings reads the settings and the key type of the existing
// blackboard name without joining it, whatever its key type.
func (n *Node) BlackboardSettings(name string) (BlackboardSettings, error) {
	const op = "blackboard settings"
	nh, err := n.acquireNode(op, name)
	if err != nil {
		return BlackboardSettings{}, err
	}
	defer n.ref.release()
	var eb ffi.ErrBuf
	d, st := n.lib.BlackboardDescribe(nh, name, &eb)
	if st != ffi.OK {
		return BlackboardSettings{}, statusError(n.lib, op, name, st, &eb)
	}
	return blackboardSettings(&d), nil
}

func blackboardSettings(d *ffi.BBDescription) BlackboardSettings {
	return BlackboardSettings{MaxReaders: int(d.MaxReaders), MaxNodes: int(d.MaxNodes),
		Key: PayloadType{Name: string(d.KeyName[:min(d.KeyNameLen, uint64(len(d.KeyName)))]),
			Size: int(d.KeySize), Align: int(d.KeyAlign), Fixed: true}}
}

// Name returns the service name.
func (b *Blackboard[K]) Name() string { return b.name }

// MaxReaders returns the reader limit stored with the service.
func (b *Blackboard[K]) MaxReaders() int { return int(b.config.MaxReaders) }

// MaxNodes returns the node limit stored with the service.
func (b *Blackboard[K]) MaxNodes() int { return int(b.config.MaxNodes) }

// Keys returns the keys of the blackboard's entries.
func (b *Blackboard[K]) Keys() ([]K, error) {
	h, ok := b.ref.acquire()
	if !ok {
		return nil, closedError("keys", b.name)
	}
	defer b.ref.release()
	size := b.key.PayloadType().Size
	buf := make([]byte, int(b.config.Entries)*size)
	k, st := b.lib.BlackboardKeys(h, buf, size)
	if st != ffi.OK {
		return nil, statusError(b.lib, "keys", b.name, st, nil)
	}
	out := make([]K, 0, k)
	for i := 0; i < min(k, len(buf)/size); i++ {
		v, err := b.key.Decode(buf[i*size : (i+1)*size])
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// Close releases the service handle; writers, readers and entries stay usable.
// A second Close returns ErrClosed.
func (b *Blackboard[K]) Close() error {
	if b.ref.close(b.lib.BlackboardDrop) != nil {
		return closedError("close blackboard", b.name)
	}
	b.evMu.Lock()
	if b.ev != nil {
		b.ev.Close()
		b.ev = nil
	}
	b.evMu.Unlock()
	return nil
}

// withEvents calls f with the blackboard's change-notification service (an
// event service of the same name, as iceoryx2's
// blackboard_event_based_communication example has it) able to carry id, to
// make a port of it. The service handle is opened on first use and kept until
// Close; after Close it is opened for the call only, since the ports made from
// it outlive it, so writers and entry readers made before Close keep making
// entry handles and watches.
func (b *Blackboard[K]) withEvents(id EventID, f func(*EventService) error) error {
	b.evMu.Lock()
	defer b.evMu.Unlock()
	if b.ev != nil {
		return f(b.ev)
	}
	ev, err := eventsFor(b.node, b.name, max(id, b.maxID))
	if err != nil {
		return err
	}
	if _, ok := b.ref.acquire(); ok {
		b.ref.release()
		b.ev = ev
	} else {
		defer ev.Close()
	}
	return f(ev)
}

// keyBytes is the memory image of key.
func (b *Blackboard[K]) keyBytes(key K) ([]byte, error) { return b.key.Append(nil, key) }

// ---- writer ----

// BlackboardWriter is the one writer of a blackboard; it makes an EntryWriter
// per entry with WriteEntry. A second writer of the same service, in any
// process, is refused with ErrLimitReached.
type BlackboardWriter[K any] struct {
	bb   *Blackboard[K]
	lib  *ffi.Lib
	ref  ref
	name string
}

// Writer creates the service's writer.
func (b *Blackboard[K]) Writer() (*BlackboardWriter[K], error) {
	const op = "create blackboard writer"
	h, ok := b.ref.acquire()
	if !ok {
		return nil, closedError(op, b.name)
	}
	defer b.ref.release()
	var eb ffi.ErrBuf
	wh, st := b.lib.BBWriterCreate(h, &eb)
	if st != ffi.OK {
		return nil, statusError(b.lib, op, b.name, st, &eb)
	}
	w := &BlackboardWriter[K]{bb: b, lib: b.lib, name: b.name}
	w.ref.h = wh
	return w, nil
}

// Close releases the writer; its entry handles stay usable until closed.
// A second Close returns ErrClosed.
func (w *BlackboardWriter[K]) Close() error {
	if w.ref.close(w.lib.BBWriterDrop) != nil {
		return closedError("close blackboard writer", w.name)
	}
	return nil
}

// EntryWriter writes one entry's value, of type V. Each write notifies the
// blackboard's event service with the entry's id, so that watchers in any
// language wake. It is safe for use by multiple goroutines; a Set while a Loan
// is open is refused (ErrTooManyLoans) rather than mixed into it.
type EntryWriter[V any] struct {
	lib   *ffi.Lib
	ref   ref
	name  string
	id    EventID
	size  int
	ntf   *Notifier
	mu    sync.Mutex // one write at a time
	loan  bool       // a Loan is open (under mu)
	buf   *V         // the value being set (under mu), so a Set allocates nothing
	codec FixedCodec[V]
}

// WriteEntry makes the writer's handle of the entry key, whose value is of the
// type value describes. A key the blackboard lacks gives ErrEntryNotFound; a
// value type other than the entry's gives ErrIncompatibleType naming the type
// asked for, and the entry's own when this process created the blackboard
// through this handle (iceoryx2 keeps an entry's type to itself); a second
// handle of one entry gives ErrLimitReached.
func WriteEntry[K, V any](w *BlackboardWriter[K], key K, value FixedCodec[V]) (*EntryWriter[V], error) {
	const op = "write entry"
	if w == nil {
		return nil, nilArg(op, "", "writer")
	}
	vt := value.PayloadType()
	if vt.Name == "" {
		return nil, &Error{Op: op, Name: w.name, Kind: ErrInvalidArgument, Detail: "the value's codec is the zero FixedCodec; make it with Fixed"}
	}
	kb, err := w.bb.keyBytes(key)
	if err != nil {
		return nil, err
	}
	h, ok := w.ref.acquire()
	if !ok {
		return nil, closedError(op, w.name)
	}
	var eb ffi.ErrBuf
	eh, id, st := w.lib.BBWriterEntry(h, kb, bbType(vt), &eb)
	w.ref.release()
	if st != ffi.OK {
		return nil, w.bb.typeMismatch(entryError(w.lib, op, w.name, st, &eb), kb)
	}
	e := &EntryWriter[V]{lib: w.lib, name: w.name, id: EventID(id), size: vt.Size, codec: value, buf: new(V)}
	e.ref.h = eh
	err = w.bb.withEvents(e.id, func(ev *EventService) (err error) {
		e.ntf, err = ev.Notifier()
		return err
	})
	if err != nil {
		w.lib.BBEntryMutDrop(eh)
		return nil, err
	}
	return e, nil
}

// entryError is statusError with the entry's own kinds.
func entryError(lib *ffi.Lib, op, name string, st ffi.Status, eb *ffi.ErrBuf) error {
	err := statusError(lib, op, name, st, eb)
	if st == ffi.ENotFound {
		err.(*Error).Kind = ErrEntryNotFound
	}
	return err
}

// ID returns the entry's id: the event id its changes are notified with.
func (e *EntryWriter[V]) ID() EventID { return e.id }

// Set writes v as the entry's value and notifies watchers.
func (e *EntryWriter[V]) Set(v V) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.loan {
		return &Error{Op: "set", Name: e.name, Kind: ErrTooManyLoans, Detail: "a Loan of this entry is open"}
	}
	h, ok := e.ref.acquire()
	if !ok {
		return closedError("set", e.name)
	}
	p := unsafe.Pointer(e.buf)
	if e.codec.raw {
		var err error
		if p, err = e.codec.rawImage(*(*[]byte)(unsafe.Pointer(&v))); err != nil {
			e.ref.release()
			return err
		}
	} else {
		*e.buf = v
	}
	nh, ok := e.ntf.ref.acquire()
	if !ok { // closed with the entry writer, which is held
		e.ref.release()
		return closedError("set", e.name)
	}
	written, st := e.lib.BBEntryMutUpdate(h, p, e.size, nh, uint64(e.id))
	e.ntf.ref.release()
	e.ref.release()
	return e.writeError("set", written, st)
}

// writeError reports a write's status: nothing written, or written without
// telling the watchers.
func (e *EntryWriter[V]) writeError(op string, written bool, st ffi.Status) error {
	if st == ffi.OK {
		return nil
	}
	err := statusError(e.lib, op, e.name, st, nil).(*Error)
	if written {
		err.Detail = "the value was written, but its watchers were not notified"
	}
	return err
}

// Loan opens the entry's next value for writing in place in shared memory:
// write through Value, then Commit to publish it (and notify), or Discard to
// leave the entry as it was. Readers see nothing of it before Commit. One Loan
// of an entry may be open at a time (ErrTooManyLoans).
func (e *EntryWriter[V]) Loan() (*EntryLoan[V], error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.loan {
		return nil, &Error{Op: "loan", Name: e.name, Kind: ErrTooManyLoans, Detail: "a Loan of this entry is open"}
	}
	h, ok := e.ref.acquire()
	if !ok {
		return nil, closedError("loan", e.name)
	}
	p, st := e.lib.BBEntryMutLoan(h)
	e.ref.release()
	if st != ffi.OK {
		return nil, statusError(e.lib, "loan", e.name, st, nil)
	}
	e.loan = true
	v := (*V)(p)
	if e.codec.raw { // a []byte over the cell
		b := unsafe.Slice((*byte)(p), e.size)
		v = (*V)(unsafe.Pointer(&b))
	}
	return &EntryLoan[V]{e: e, p: v}, nil
}

// Close releases the entry handle (another WriteEntry may then take the
// entry). A second Close returns ErrClosed.
func (e *EntryWriter[V]) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.ref.close(e.lib.BBEntryMutDrop) != nil {
		return closedError("close entry writer", e.name)
	}
	e.ntf.Close()
	return nil
}

// EntryLoan is an entry's next value, loaned in shared memory by
// EntryWriter.Loan. It is not safe for concurrent use.
type EntryLoan[V any] struct {
	e    *EntryWriter[V]
	p    *V
	done bool
}

// Value points to the value being written, in shared memory; valid until
// Commit, Discard or the EntryWriter's Close. It holds what an earlier write
// left in that cell, not necessarily the current value.
func (l *EntryLoan[V]) Value() *V { return l.p }

// Commit publishes the value and notifies watchers.
func (l *EntryLoan[V]) Commit() error {
	e := l.e
	e.mu.Lock()
	defer e.mu.Unlock()
	if l.done {
		return closedError("commit", e.name)
	}
	l.done, l.p, e.loan = true, nil, false
	h, ok := e.ref.acquire()
	if !ok {
		return closedError("commit", e.name)
	}
	nh, ok := e.ntf.ref.acquire()
	if !ok {
		e.ref.release()
		return closedError("commit", e.name)
	}
	st := e.lib.BBEntryMutCommit(h, nh, uint64(e.id))
	e.ntf.ref.release()
	e.ref.release()
	return e.writeError("commit", true, st)
}

// Discard drops the loan; the entry keeps its value.
func (l *EntryLoan[V]) Discard() error {
	e := l.e
	e.mu.Lock()
	defer e.mu.Unlock()
	if l.done {
		return closedError("discard", e.name)
	}
	l.done, l.p, e.loan = true, nil, false
	return nil
}

// ---- reader ----

// BlackboardReader reads a blackboard; it makes an EntryReader per entry with
// ReadEntry. A service admits MaxReaders readers (ErrLimitReached beyond).
type BlackboardReader[K any] struct {
	bb   *Blackboard[K]
	lib  *ffi.Lib
	ref  ref
	name string
}

// Reader creates a reader.
func (b *Blackboard[K]) Reader() (*BlackboardReader[K], error) {
	const op = "create blackboard reader"
	h, ok := b.ref.acquire()
	if !ok {
		return nil, closedError(op, b.name)
	}
	defer b.ref.release()
	var eb ffi.ErrBuf
	rh, st := b.lib.BBReaderCreate(h, &eb)
	if st != ffi.OK {
		return nil, statusError(b.lib, op, b.name, st, &eb)
	}
	r := &BlackboardReader[K]{bb: b, lib: b.lib, name: b.name}
	r.ref.h = rh
	return r, nil
}

// Close releases the reader; its entry handles stay usable until closed.
// A second Close returns ErrClosed.
func (r *BlackboardReader[K]) Close() error {
	if r.ref.close(r.lib.BBReaderDrop) != nil {
		return closedError("close blackboard reader", r.name)
	}
	return nil
}

// EntryValue is a value read from an entry with its generation, which grows
// with every write.
type EntryValue[V any] struct {
	Value      V
	Generation uint64
}

// EntryReader reads one entry's value, of type V. It is safe for use by
// multiple goroutines.
type EntryReader[V any] struct {
	lib   *ffi.Lib
	ref   ref
	name  string
	id    EventID
	codec FixedCodec[V]
	bb    interface {
		withEvents(EventID, func(*EventService) error) error
	}
	done      chan struct{} // closed by Close, ends watches
	watches   sync.WaitGroup
	closeOnce sync.Once
	bufs      sync.Pool // of *V: where the native call copies a value, so a Get allocates nothing
}

// ReadEntry makes a reader's handle of the entry key, whose value is of the
// type value describes. Refusals as for WriteEntry, without the limit.
func ReadEntry[K, V any](r *BlackboardReader[K], key K, value FixedCodec[V]) (*EntryReader[V], error) {
	const op = "read entry"
	if r == nil {
		return nil, nilArg(op, "", "reader")
	}
	vt := value.PayloadType()
	if vt.Name == "" {
		return nil, &Error{Op: op, Name: r.name, Kind: ErrInvalidArgument, Detail: "the value's codec is the zero FixedCodec; make it with Fixed"}
	}
	kb, err := r.bb.keyBytes(key)
	if err != nil {
		return nil, err
	}
	h, ok := r.ref.acquire()
	if !ok {
		return nil, closedError(op, r.name)
	}
	var eb ffi.ErrBuf
	eh, id, st := r.lib.BBReaderEntry(h, kb, bbType(vt), &eb)
	r.ref.release()
	if st != ffi.OK {
		return nil, r.bb.typeMismatch(entryError(r.lib, op, r.name, st, &eb), kb)
	}
	e := &EntryReader[V]{lib: r.lib, name: r.name, id: EventID(id), codec: value, bb: r.bb, done: make(chan struct{})}
	e.bufs.New = func() any { return new(V) }
	e.ref.h = eh
	return e, nil
}

// ID returns the entry's id: the event id its changes are notified with.
func (e *EntryReader[V]) ID() EventID { return e.id }

// Get returns the entry's latest complete value and its generation.
func (e *EntryReader[V]) Get() (EntryValue[V], error) {
	var out EntryValue[V]
	h, ok := e.ref.acquire()
	if !ok {
		return out, closedError("get", e.name)
	}
	var g uint64
	var st ffi.Status
	if e.codec.raw { // a fresh []byte per value
		b := make([]byte, e.codec.pt.Size)
		g, st = e.lib.BBEntryGet(h, unsafe.Pointer(unsafe.SliceData(b)), len(b))
		out.Value = *(*V)(unsafe.Pointer(&b))
	} else {
		buf := e.bufs.Get().(*V)
		g, st = e.lib.BBEntryGet(h, unsafe.Pointer(buf), e.codec.pt.Size)
		out.Value = *buf
		e.bufs.Put(buf)
	}
	e.ref.release()
	if st != ffi.OK {
		return EntryValue[V]{}, statusError(e.lib, "get", e.name, st, nil)
	}
	if len(e.codec.bools) > 0 {
		if _, err := e.codec.Decode(unsafe.Slice((*byte)(unsafe.Pointer(&out.Value)), e.codec.pt.Size)); err != nil {
			return EntryValue[V]{}, err
		}
	}
	out.Generation = g
	return out, nil
}

// Changed reports whether a value newer than v was written since v was read.
// It may report a change that v already holds (a write that finished while v
// was read), never miss one.
func (e *EntryReader[V]) Changed(v EntryValue[V]) (bool, error) {
	h, ok := e.ref.acquire()
	if !ok {
		return false, closedError("changed", e.name)
	}
	cur, st := e.lib.BBEntryCurrent(h, v.Generation)
	e.ref.release()
	if st != ffi.OK {
		return false, statusError(e.lib, "changed", e.name, st, nil)
	}
	return !cur, nil
}

// WatchEntry delivers the value of the entry e reads now and each newer value after it, until
// ctx ends or the entry reader is closed; then the channel is closed. It wakes
// on the blackboard's event service (a writer that notifies the entry's id:
// any iox writer, or a Rust one following iceoryx2's
// blackboard_event_based_communication example) and waits in the runtime's
// poller meanwhile, so a quiet watch costs nothing. WithPoll(d) also looks
// every d, for writers that do not notify.
//
// A watcher that falls behind is not queued for: it receives the latest value
// when it takes the next one, never a partly written one.
//
// It is a function rather than a method because a Go channel cannot carry
// values of 64 KiB or more: an EntryReader of such a value is still usable,
// with Get and Changed.
func WatchEntry[V any](ctx context.Context, e *EntryReader[V], opts ...Option) (<-chan V, error) {
	const op = "watch"
	if e == nil {
		return nil, nilArg(op, "", "entry reader")
	}
	if ctx == nil {
		return nil, nilArg(op, e.name, "ctx")
	}
	o, err := applyOptions(op, e.name, "blackboard watch", watchOpts, opts)
	if err != nil {
		return nil, err
	}
	poll := time.Duration(0)
	if o.set&optPoll != 0 {
		if o.ch.poll <= 0 {
			return nil, &Error{Op: op, Name: e.name, Kind: ErrInvalidArgument, Detail: fmt.Sprintf("WithPoll %v is not positive", o.ch.poll)}
		}
		poll = o.ch.poll
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var lis *Listener
	err = e.bb.withEvents(e.id, func(ev *EventService) (err error) {
		lis, err = ev.Listener()
		return err
	})
	if err != nil {
		return nil, err
	}
	first, err := e.Get()
	if err == nil { // counted before a Close can wait for the watches
		if _, ok := e.ref.acquire(); ok {
			e.watches.Add(1)
			e.ref.release()
		} else {
			err = closedError(op, e.name)
		}
	}
	if err != nil {
		lis.Close()
		return nil, err
	}
	out := make(chan V)
	bell := make(chan struct{}, 1)
	quit := make(chan struct{}) // the bell's goroutine ended
	go func() {                 // rings bell when the entry's id is notified
		defer close(quit)
		var ids []EventID
		for {
			var err error
			if ids, err = lis.waitInto(ctx, e.done, ids[:0]); err != nil {
				return
			}
			if slices.Contains(ids, e.id) {
				wake(bell)
			}
		}
	}()
	go func() {
		defer e.watches.Done()
		defer close(out)
		defer func() {
			lis.Close() // wakes the bell's goroutine
			<-quit
		}()
		var tick <-chan time.Time
		if poll > 0 {
			t := time.NewTicker(poll)
			defer t.Stop()
			tick = t.C
		}
		cur, pending := first, true
		refresh := func() bool {
			v, err := e.Get()
			if err != nil {
				return false
			}
			if v.Generation != cur.Generation {
				cur, pending = v, true
			}
			return true
		}
		for {
			var send chan<- V
			if pending {
				send = out
			}
			select {
			case send <- cur.Value:
				pending = false
			case <-bell:
				if !refresh() {
					return
				}
			case <-tick:
				if !refresh() {
					return
				}
			case <-quit:
				return
			case <-e.done:
				return
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, nil
}

// Close releases the entry handle and ends its watches, returning once they
// have left the event service. A second Close returns ErrClosed.
func (e *EntryReader[V]) Close() error {
	if e.ref.close(e.lib.BBEntryDrop) != nil {
		return closedError("close entry reader", e.name)
	}
	e.closeOnce.Do(func() { close(e.done) })
	e.watches.Wait()
	return nil
}
