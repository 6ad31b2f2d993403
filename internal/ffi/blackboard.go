package ffi

import (
	"unsafe"

	"github.com/ebitengine/purego"
)

// BlackboardSyms is the part of the symbol table for blackboard services
// (internal/native/src/blackboard.rs).
type BlackboardSyms struct {
	BlackboardOpenFn     uintptr `sym:"iox_blackboard_open"`
	BlackboardDropFn     uintptr `sym:"iox_blackboard_drop"`
	BlackboardConfigFn   uintptr `sym:"iox_blackboard_config"`
	BlackboardKeysFn     uintptr `sym:"iox_blackboard_keys"`
	BlackboardDescribeFn uintptr `sym:"iox_blackboard_describe"`
	BBWriterCreateFn     uintptr `sym:"iox_bb_writer_create"`
	BBWriterDropFn       uintptr `sym:"iox_bb_writer_drop"`
	BBReaderCreateFn     uintptr `sym:"iox_bb_reader_create"`
	BBReaderDropFn       uintptr `sym:"iox_bb_reader_drop"`
	BBWriterEntryFn      uintptr `sym:"iox_bb_writer_entry"`
	BBEntryMutDropFn     uintptr `sym:"iox_bb_entry_mut_drop"`
	BBEntryMutUpdateFn   uintptr `sym:"iox_bb_entry_mut_update"`
	BBEntryMutLoanFn     uintptr `sym:"iox_bb_entry_mut_loan"`
	BBEntryMutCommitFn   uintptr `sym:"iox_bb_entry_mut_commit"`
	BBReaderEntryFn      uintptr `sym:"iox_bb_reader_entry"`
	BBEntryDropFn        uintptr `sym:"iox_bb_entry_drop"`
	BBEntryGetFn         uintptr `sym:"iox_bb_entry_get"`
	BBEntryCurrentFn     uintptr `sym:"iox_bb_entry_current"`
}

// Bits of BBOpts.Set.
const (
	BBMaxReaders = 1 << iota
	BBMaxNodes
)

// BBOpts mirrors the native struct of the same name.
type BBOpts struct{ Set, MaxReaders, MaxNodes uint64 }

// BBConfig mirrors the native struct of the same name.
type BBConfig struct{ MaxReaders, MaxNodes, KeySize, KeyAlign, Entries uint64 }

// BBType is a fixed-size type as Rust, C++ and Python peers declare it.
type BBType struct {
	Name        string
	Size, Align uint64
}

// bbType mirrors the native struct BbType.
type bbType struct {
	name        uintptr
	nameLen     uintptr
	size, align uint64
}

// bbEntry mirrors the native struct BbEntry.
type bbEntry struct {
	key   uintptr
	value bbType
	init  uintptr
}

// BBEntry is one entry of a new blackboard: its key's bytes, its value's type
// and its initial value's bytes.
type BBEntry struct {
	Key   []byte
	Value BBType
	Init  []byte
}

func (c *call) bbType(t *BBType) bbType {
	return bbType{name: c.str(t.Name), nameLen: uintptr(len(t.Name)), size: t.Size, align: t.Align}
}

// BlackboardOpen creates (mode Create, with entries) or opens (mode Open) the
// blackboard name whose keys are of type key; mask marks the key's data bytes.
func (l *Lib) BlackboardOpen(node Handle, name string, mode int, key BBType, mask []byte, entries []BBEntry, o *BBOpts, eb *ErrBuf) (Handle, Status) {
	var h Handle
	c := getCall()
	kt := c.bbType(&key)
	list := make([]bbEntry, len(entries))
	for i := range entries {
		e := &entries[i]
		list[i] = bbEntry{key: c.bytes(e.Key), value: c.bbType(&e.Value), init: c.bytes(e.Init)}
	}
	var listPtr uintptr
	if len(list) > 0 {
		listPtr = c.ptr(unsafe.Pointer(&list[0]))
	}
	c.a = [maxArgs]uintptr{uintptr(node), c.str(name), uintptr(len(name)), uintptr(mode),
		c.ptr(unsafe.Pointer(&kt)), c.bytes(mask), listPtr, uintptr(len(list)),
		c.ptr(unsafe.Pointer(o)), c.ptr(unsafe.Pointer(&h)), c.bytes(eb[:]), uintptr(len(eb))}
	r := c.run(l.BlackboardOpenFn, 12)
	return h, Status(int32(r))
}

// BlackboardDrop frees a blackboard service handle.
func (l *Lib) BlackboardDrop(h Handle) { purego.SyscallN(l.BlackboardDropFn, uintptr(h)) }

// BlackboardConfigOf returns the settings stored with the service.
func (l *Lib) BlackboardConfigOf(h Handle) (cfg BBConfig, s Status) {
	c := getCall()
	c.a[0], c.a[1] = uintptr(h), c.ptr(unsafe.Pointer(&cfg))
	r := c.run(l.BlackboardConfigFn, 2)
	return cfg, Status(int32(r))
}

// BlackboardKeys copies up to len(buf)/keySize keys into buf and returns how
// many keys the service has.
func (l *Lib) BlackboardKeys(h Handle, buf []byte, keySize int) (int, Status) {
	c := getCall()
	c.a[0], c.a[1], c.a[2] = uintptr(h), c.bytes(buf), uintptr(len(buf)/keySize)
	v, s := split(c.run(l.BlackboardKeysFn, 3))
	return int(v), s
}

// BBWriterCreate creates the service's one writer.
func (l *Lib) BBWriterCreate(svc Handle, eb *ErrBuf) (Handle, Status) {
	return l.createPort(l.BBWriterCreateFn, svc, eb)
}

// BBReaderCreate creates a reader.
func (l *Lib) BBReaderCreate(svc Handle, eb *ErrBuf) (Handle, Status) {
	return l.createPort(l.BBReaderCreateFn, svc, eb)
}

func (l *Lib) createPort(fn uintptr, svc Handle, eb *ErrBuf) (Handle, Status) {
	var h Handle
	c := getCall()
	c.a[0], c.a[1], c.a[2], c.a[3] = uintptr(svc), c.ptr(unsafe.Pointer(&h)), c.bytes(eb[:]), uintptr(len(eb))
	r := c.run(fn, 4)
	return h, Status(int32(r))
}

// BBWriterDrop frees a writer.
func (l *Lib) BBWriterDrop(h Handle) { purego.SyscallN(l.BBWriterDropFn, uintptr(h)) }

// BBReaderDrop frees a reader.
func (l *Lib) BBReaderDrop(h Handle) { purego.SyscallN(l.BBReaderDropFn, uintptr(h)) }

// BBWriterEntry makes the writer's handle of the entry key of value type v and
// returns it with the entry's id.
func (l *Lib) BBWriterEntry(w Handle, key []byte, v BBType, eb *ErrBuf) (Handle, uint64, Status) {
	return l.entry(l.BBWriterEntryFn, w, key, v, eb)
}

// BBReaderEntry makes a reader's handle of the entry key of value type v and
// returns it with the entry's id.
func (l *Lib) BBReaderEntry(r Handle, key []byte, v BBType, eb *ErrBuf) (Handle, uint64, Status) {
	return l.entry(l.BBReaderEntryFn, r, key, v, eb)
}

func (l *Lib) entry(fn uintptr, port Handle, key []byte, v BBType, eb *ErrBuf) (Handle, uint64, Status) {
	var h Handle
	var id uint64
	c := getCall()
	vt := c.bbType(&v)
	c.a = [maxArgs]uintptr{uintptr(port), c.bytes(key), c.ptr(unsafe.Pointer(&vt)),
		c.ptr(unsafe.Pointer(&h)), c.ptr(unsafe.Pointer(&id)), c.bytes(eb[:]), uintptr(len(eb))}
	r := c.run(fn, 7)
	return h, id, Status(int32(r))
}

// BBEntryMutDrop frees a writer's entry handle.
func (l *Lib) BBEntryMutDrop(h Handle) { purego.SyscallN(l.BBEntryMutDropFn, uintptr(h)) }

// BBEntryDrop frees a reader's entry handle.
func (l *Lib) BBEntryDrop(h Handle) { purego.SyscallN(l.BBEntryDropFn, uintptr(h)) }

// BBEntryMutUpdate writes n bytes at p (the value's size) as the entry's new
// value and notifies ntf (0: none) with id. written is false when nothing was
// written; a status other than OK with written true means the notification failed.
func (l *Lib) BBEntryMutUpdate(h Handle, p unsafe.Pointer, n int, ntf Handle, id uint64) (written bool, s Status) {
	c := getCall()
	c.a[0], c.a[1], c.a[2], c.a[3], c.a[4] = uintptr(h), c.ptr(p), uintptr(n), uintptr(ntf), uintptr(id)
	_, s = split(c.run(l.BBEntryMutUpdateFn, 5))
	return s == OK || s != EInvalidArgument, s
}

// BBEntryMutLoan returns the shared-memory address the next value is written to.
func (l *Lib) BBEntryMutLoan(h Handle) (unsafe.Pointer, Status) {
	r, _, _ := purego.SyscallN(l.BBEntryMutLoanFn, uintptr(h))
	v, s := split(r)
	if s != OK {
		return nil, s
	}
	return *(*unsafe.Pointer)(unsafe.Pointer(&v)), OK // shared memory, not Go memory
}

// BBEntryMutCommit publishes the value written at the loaned address and
// notifies ntf (0: none) with id; a status other than OK means the
// notification failed.
func (l *Lib) BBEntryMutCommit(h Handle, ntf Handle, id uint64) Status {
	r, _, _ := purego.SyscallN(l.BBEntryMutCommitFn, uintptr(h), uintptr(ntf), uintptr(id))
	_, s := split(r)
	return s
}

// BBEntryGet copies the entry's value into the n bytes at p and returns its generation.
func (l *Lib) BBEntryGet(h Handle, p unsafe.Pointer, n int) (uint64, Status) {
	c := getCall()
	c.a[0], c.a[1], c.a[2] = uintptr(h), c.ptr(p), uintptr(n)
	v, s := split(c.run(l.BBEntryGetFn, 3))
	return uint64(v), s
}

// BBEntryCurrent reports whether generation is the entry's latest.
func (l *Lib) BBEntryCurrent(h Handle, generation uint64) (bool, Status) {
	r, _, _ := purego.SyscallN(l.BBEntryCurrentFn, uintptr(h), uintptr(generation))
	v, s := split(r)
	return v == 1, s
}

// BBDescription mirrors the native struct of the same name.
type BBDescription struct {
	MaxReaders, MaxNodes, KeySize, KeyAlign, KeyNameLen uint64
	KeyName                                             [256]byte
}

// BlackboardDescribe describes the existing blackboard name without joining it.
func (l *Lib) BlackboardDescribe(node Handle, name string, eb *ErrBuf) (d BBDescription, s Status) {
	c := getCall()
	c.a = [maxArgs]uintptr{uintptr(node), c.str(name), uintptr(len(name)),
		c.ptr(unsafe.Pointer(&d)), c.bytes(eb[:]), uintptr(len(eb))}
	r := c.run(l.BlackboardDescribeFn, 6)
	return d, Status(int32(r))
}
