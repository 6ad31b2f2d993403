package iox_test

// BenchmarkBlackboard: the cost of a Get and a Set of an 8 B and a 4 KiB value,
// against what a Go program would otherwise use: a sync.RWMutex-protected map
// in one process, and the same exchange with a process that holds the map,
// over a Unix socket (one request and one answer per Get or Set).

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"testing"

	"github.com/iox-go/iox"
)

func init() { children["bench-bb-uds"] = childBlackboardUDS }

// bbBenchKey is the key every case reads and writes (one entry per value size).
const bbBenchKey = uint64(7)

func BenchmarkBlackboard(b *testing.B) {
	for _, op := range []string{"get", "set"} {
		b.Run(op+"/8B", func(b *testing.B) { benchBlackboardSize[uint64](b, op, "u64") })
		b.Run(op+"/4KiB", func(b *testing.B) { benchBlackboardSize[blob](b, op, "[u8; 4096]") })
	}
}

func benchBlackboardSize[V any](b *testing.B, op, rustName string) {
	b.Run("iox", func(b *testing.B) { benchBlackboardIox[V](b, op, rustName) })
	b.Run("rwmutex-map", func(b *testing.B) { benchBlackboardMap[V](b, op) })
	b.Run("uds", func(b *testing.B) { benchBlackboardUDS[V](b, op) })
}

func benchBlackboardIox[V any](b *testing.B, op, rustName string) {
	ns := newNamespace(b)
	node := ns.node(b)
	u64 := must(iox.Fixed[uint64]("u64"))
	codec := must(iox.Fixed[V](rustName))
	var zero V
	bb, err := iox.OpenBlackboard(node, "bench-bb", u64, []iox.BlackboardEntry[uint64]{iox.Entry(bbBenchKey, codec, zero)})
	if err != nil {
		b.Fatal(err)
	}
	defer bb.Close()
	w, err := bb.Writer()
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	r, err := bb.Reader()
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	we, err := iox.WriteEntry(w, bbBenchKey, codec)
	if err != nil {
		b.Fatal(err)
	}
	defer we.Close()
	re, err := iox.ReadEntry(r, bbBenchKey, codec)
	if err != nil {
		b.Fatal(err)
	}
	defer re.Close()
	b.ReportAllocs()
	b.ResetTimer()
	switch op {
	case "get":
		for range b.N {
			if _, err := re.Get(); err != nil {
				b.Fatal(err)
			}
		}
	case "set":
		var v V
		for range b.N {
			if err := we.Set(v); err != nil {
				b.Fatal(err)
			}
		}
	}
}

func benchBlackboardMap[V any](b *testing.B, op string) {
	var mu sync.RWMutex
	m := map[uint64]V{bbBenchKey: *new(V)}
	var sink V
	defer func() { bbSink = sink }()
	b.ReportAllocs()
	b.ResetTimer()
	switch op {
	case "get":
		for range b.N {
			mu.RLock()
			sink = m[bbBenchKey]
			mu.RUnlock()
		}
	case "set":
		var v V
		for range b.N {
			mu.Lock()
			m[bbBenchKey] = v
			mu.Unlock()
		}
	}
}

// bbSink keeps the map's Gets from being optimized away.
var bbSink any

// The Unix-socket exchange: a request is an op byte ('g' or 's') and the 8-byte
// key, followed for 's' by the value; the answer to 'g' is the value, to 's'
// one byte.
func benchBlackboardUDS[V any](b *testing.B, op string) {
	size := must(iox.Fixed[V]("v")).PayloadType().Size
	ns := newNamespace(b)
	addr := udsAddr(ns, "bb")
	ln, err := net.Listen("unix", addr)
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	c := spawn(b, ns, "bench-bb-uds", "IOX_BENCH_ADDR="+addr, "IOX_BENCH_SIZE="+strconv.Itoa(size))
	conn := acceptOne(b, ln)
	defer conn.Close()
	c.expect("ready")

	get := make([]byte, 9)
	get[0] = 'g'
	binary.LittleEndian.PutUint64(get[1:], bbBenchKey)
	set := make([]byte, 9+size)
	set[0] = 's'
	binary.LittleEndian.PutUint64(set[1:], bbBenchKey)
	reply := make([]byte, size)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		var err error
		if op == "get" {
			if _, err = conn.Write(get); err == nil {
				_, err = io.ReadFull(conn, reply)
			}
		} else {
			if _, err = conn.Write(set); err == nil {
				_, err = io.ReadFull(conn, reply[:1])
			}
		}
		if err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	conn.Close() // the child stops at end of stream
}

// childBlackboardUDS holds a map of IOX_BENCH_SIZE-byte values and answers the
// requests of benchBlackboardUDS.
func childBlackboardUDS() error {
	size, err := strconv.Atoi(os.Getenv("IOX_BENCH_SIZE"))
	if err != nil {
		return err
	}
	conn, err := net.Dial("unix", os.Getenv("IOX_BENCH_ADDR"))
	if err != nil {
		return err
	}
	defer conn.Close()
	fmt.Println("ready")
	m := map[uint64][]byte{}
	req := make([]byte, 9)
	for {
		if _, err := io.ReadFull(conn, req); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		k := binary.LittleEndian.Uint64(req[1:])
		v, ok := m[k]
		if !ok {
			v = make([]byte, size)
			m[k] = v
		}
		switch req[0] {
		case 'g':
			_, err = conn.Write(v)
		case 's':
			if _, err = io.ReadFull(conn, v); err == nil {
				_, err = conn.Write(req[:1])
			}
		default:
			err = errors.New("unknown request")
		}
		if err != nil {
			return err
		}
	}
}
