package ffi

import (
	"encoding/binary"
	"fmt"
	"unsafe"
)

// Listings (internal/native/src/listing.rs) arrive as packed records: a header
// of u64 words, the first being the record's size in bytes, then the record's
// strings, padded to a multiple of 8 bytes.

// Messaging patterns of ServiceRecord.Pattern.
const (
	PatternPublishSubscribe = 0
	PatternEvent            = 1
	PatternRequestResponse  = 2
	PatternBlackboard       = 3
)

// Node states of NodeRecord.State.
const (
	NodeAlive        = 0
	NodeDead         = 1
	NodeInaccessible = 2
	NodeUndefined    = 3
)

// ServiceRecord is one service of a ServiceList.
type ServiceRecord struct {
	Name       string
	Pattern    uint64
	Nodes      uint64
	PortsKnown bool
	Ports      [2]uint64 // publishers/subscribers, notifiers/listeners or clients/servers
}

// NodeRecord is one node of a NodeList.
type NodeRecord struct {
	State      uint64
	IDLo, IDHi uint64
	Name       string
	Executable string
}

const (
	serviceWords = 7
	nodeWords    = 6
)

// ServiceList writes the namespace's services as packed records into buf.
// When buf is too short it returns EBufferTooSmall and, in needed, the size
// the listing takes.
func (l *Lib) ServiceList(node Handle, buf []byte, eb *ErrBuf) (needed, count int, s Status) {
	return l.list(l.ServiceListFn, node, buf, eb)
}

// NodeList writes the namespace's nodes as packed records into buf (as
// ServiceList).
func (l *Lib) NodeList(node Handle, buf []byte, eb *ErrBuf) (needed, count int, s Status) {
	return l.list(l.NodeListFn, node, buf, eb)
}

func (l *Lib) list(fn uintptr, node Handle, buf []byte, eb *ErrBuf) (needed, count int, s Status) {
	c := getCall()
	c.a = [maxArgs]uintptr{uintptr(node), c.bytes(buf), uintptr(len(buf)),
		c.ptr(unsafe.Pointer(&c.out[0])), c.ptr(unsafe.Pointer(&c.ids[0])), c.bytes(eb[:]), uintptr(len(eb))}
	r := c.invoke(fn, 7)
	needed, count = int(c.out[0]), int(c.ids[0])
	c.release()
	return needed, count, Status(int32(r))
}

// records splits a listing into its records, each given as its header words
// and the bytes that follow them.
func records(buf []byte, count, words int) ([][]uint64, [][]byte, error) {
	heads := make([][]uint64, 0, count)
	tails := make([][]byte, 0, count)
	for i := 0; i < count; i++ {
		if len(buf) < words*8 {
			return nil, nil, fmt.Errorf("record %d: %d bytes left, a header takes %d", i, len(buf), words*8)
		}
		w := make([]uint64, words)
		for k := range w {
			w[k] = binary.NativeEndian.Uint64(buf[k*8:])
		}
		size := w[0]
		if size < uint64(words*8) || size > uint64(len(buf)) || size%8 != 0 {
			return nil, nil, fmt.Errorf("record %d: size %d of %d bytes left", i, size, len(buf))
		}
		heads = append(heads, w)
		tails = append(tails, buf[words*8:size])
		buf = buf[size:]
	}
	return heads, tails, nil
}

// cutStrings cuts the strings of lengths lens from the front of b.
func cutStrings(b []byte, lens ...uint64) ([]string, error) {
	out := make([]string, len(lens))
	for i, n := range lens {
		if n > uint64(len(b)) {
			return nil, fmt.Errorf("a string of %d bytes, %d left", n, len(b))
		}
		out[i], b = string(b[:n]), b[n:]
	}
	return out, nil
}

// ParseServices decodes count records of a ServiceList.
func ParseServices(buf []byte, count int) ([]ServiceRecord, error) {
	heads, tails, err := records(buf, count, serviceWords)
	if err != nil {
		return nil, err
	}
	out := make([]ServiceRecord, len(heads))
	for i, w := range heads {
		s, err := cutStrings(tails[i], w[6])
		if err != nil {
			return nil, fmt.Errorf("service record %d: %v", i, err)
		}
		out[i] = ServiceRecord{Name: s[0], Pattern: w[1], Nodes: w[2], PortsKnown: w[3] != 0, Ports: [2]uint64{w[4], w[5]}}
	}
	return out, nil
}

// ParseNodes decodes count records of a NodeList.
func ParseNodes(buf []byte, count int) ([]NodeRecord, error) {
	heads, tails, err := records(buf, count, nodeWords)
	if err != nil {
		return nil, err
	}
	out := make([]NodeRecord, len(heads))
	for i, w := range heads {
		s, err := cutStrings(tails[i], w[4], w[5])
		if err != nil {
			return nil, fmt.Errorf("node record %d: %v", i, err)
		}
		out[i] = NodeRecord{State: w[1], IDLo: w[2], IDHi: w[3], Name: s[0], Executable: s[1]}
	}
	return out, nil
}

// TypeInfo mirrors the native struct of the same name: Variant 0 is a dynamic
// slice of Size-byte elements, 1 one fixed-size value.
type TypeInfo struct {
	Variant, Size, Alignment, NameLen uint64
	NameBytes                         [TypeNameMax]byte
}

// Name returns the stored type name.
func (t *TypeInfo) Name() string { return string(t.NameBytes[:min(t.NameLen, TypeNameMax)]) }

// ReqResDescription mirrors the native struct of the same name.
type ReqResDescription struct {
	Config                                           ReqResConfig
	Request, RequestHeader, Response, ResponseHeader TypeInfo
}

// ReqResDescribe returns the settings and types of the existing
// request-response service name without joining it.
func (l *Lib) ReqResDescribe(node Handle, name string, eb *ErrBuf) (d ReqResDescription, s Status) {
	c := getCall()
	c.a = [maxArgs]uintptr{uintptr(node), c.str(name), uintptr(len(name)),
		c.ptr(unsafe.Pointer(&d)), c.bytes(eb[:]), uintptr(len(eb))}
	r := c.run(l.ReqResDescribeFn, 6)
	return d, Status(int32(r))
}
