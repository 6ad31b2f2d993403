package iox

import (
	"bytes"
	"fmt"
	"math"
	"testing"
	"time"
)

// FuzzBlackboardOptions creates blackboards from random key and value types,
// entry counts and options at the native boundary and, when one is made,
// writes and reads every entry. Every refusal must be an *Error of a kind a
// caller can act on; a value must read back as written; the native library
// must not panic; nothing may stay in /dev/shm once everything is closed.
func FuzzBlackboardOptions(f *testing.F) {
	// keySize, keyAlign, valueSize, valueAlign, entries, dupKey, set, maxReaders, maxNodes
	f.Add(int64(4), int64(4), int64(8), int64(8), uint8(2), false, uint8(0), int64(0), int64(0))
	f.Add(int64(24), int64(8), int64(4096), int64(8), uint8(3), false, uint8(3), int64(4), int64(4))
	f.Add(int64(65), int64(1), int64(8), int64(8), uint8(1), false, uint8(0), int64(0), int64(0))
	f.Add(int64(8), int64(8), int64(8), int64(8), uint8(2), true, uint8(0), int64(0), int64(0))
	f.Add(int64(8), int64(3), int64(0), int64(0), uint8(0), false, uint8(3), int64(-1), int64(math.MaxInt64))
	f.Add(int64(6), int64(4), int64(1<<40), int64(1<<40), uint8(1), false, uint8(1), int64(1<<20), int64(0))
	f.Add(int64(math.MaxInt64), int64(math.MinInt64), int64(math.MinInt64), int64(math.MaxInt64), uint8(255), true,
		uint8(255), int64(math.MinInt64), int64(math.MaxInt64))
	s := newFuzzSpace(f)
	lib, err := openLib("")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, keySize, keyAlign, valueSize, valueAlign int64, entries uint8, dupKey bool,
		set uint8, maxReaders, maxNodes int64) {
		var opts []Option
		if set&1 != 0 {
			opts = append(opts, MaxReaders(int(maxReaders)))
		}
		if set&2 != 0 {
			opts = append(opts, MaxNodes(int(maxNodes)))
		}
		before := lib.PanicCount()
		inTime(t, 30*time.Second, "blackboard", func() error {
			return fuzzBlackboard(s, keySize, keyAlign, valueSize, valueAlign, int(entries)%16, dupKey, opts)
		})
		if n := lib.PanicCount() - before; n != 0 {
			t.Fatalf("the native library panicked %d times", n)
		}
		if left := shmLeftovers(s.prefix); len(left) > 0 {
			t.Fatalf("left in /dev/shm after closing everything: %v", left)
		}
	})
}

func fuzzBlackboard(s *fuzzSpace, keySize, keyAlign, valueSize, valueAlign int64, n int, dupKey bool, opts []Option) error {
	clamp := func(v int64) int { return int(max(min(v, math.MaxInt32), math.MinInt32)) }
	kc, err := FixedBytes(PayloadType{Name: "FuzzKey", Size: clamp(keySize), Align: clamp(keyAlign)})
	if err != nil {
		return refusal("key codec", err)
	}
	vc, err := FixedBytes(PayloadType{Name: "FuzzValue", Size: clamp(valueSize), Align: clamp(valueAlign)})
	if err != nil {
		return refusal("value codec", err)
	}
	ks, vs := kc.PayloadType().Size, vc.PayloadType().Size
	key := func(i int) []byte {
		if dupKey {
			i = 0
		}
		b := make([]byte, min(ks, 1<<10)) // a key longer than that is refused whatever it holds
		for j := range b {
			b[j] = byte(i + j)
		}
		return b
	}
	value := func(i, round int) []byte {
		b := make([]byte, min(vs, 1<<16)) // a larger value is refused for its length
		for j := range b {
			b[j] = byte(i*31 + j + round)
		}
		return b
	}
	var list []BlackboardEntry[[]byte]
	for i := range n {
		list = append(list, Entry(key(i), vc, value(i, 0)))
	}
	name := s.name()
	bb, err := OpenBlackboard(s.node, name, kc, list, opts...)
	if err != nil {
		return refusal("create blackboard", err)
	}
	defer bb.Close()
	w, err := bb.Writer()
	if err != nil {
		return refusal("writer", err)
	}
	defer w.Close()
	r, err := bb.Reader()
	if err != nil {
		return refusal("reader", err)
	}
	defer r.Close()
	for i := range n {
		we, err := WriteEntry(w, key(i), vc)
		if err != nil {
			return refusal("write entry", err)
		}
		defer we.Close()
		re, err := ReadEntry(r, key(i), vc)
		if err != nil {
			return refusal("read entry", err)
		}
		defer re.Close()
		if err := we.Set(value(i, 1)); err != nil {
			return refusal("set", err)
		}
		v, err := re.Get()
		if err != nil {
			return refusal("get", err)
		}
		if !bytes.Equal(v.Value, value(i, 1)) {
			return fmt.Errorf("entry %d read back other bytes than were written", i)
		}
	}
	return nil
}
