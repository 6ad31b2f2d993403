package main

import (
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/iox-go/iox"
)

// The blackboard commands name the key and value types the way iceoryx2 does:
// a Rust primitive (u8 … u64, i8 … i64, f32, f64, bool), whose values are
// written as numbers, or NAME:SIZE:ALIGN for any other type (a #[repr(C)]
// struct, a ctypes.Structure), whose values are written as hex bytes of its
// memory image.
const typeHelp = "`TYPE`: a Rust primitive (u8..u64, i8..i64, f32, f64, bool) or NAME:SIZE:ALIGN, whose values are hex bytes"

var getCommand = command{
	name:    "get",
	args:    []string{"NAME", "KEY"},
	summary: "print the value of a blackboard entry",
	about: `Print the value of the entry KEY of the existing blackboard NAME, with -key and
-value naming the types of its keys and of the entry's value.`,
	flags: func(fs *flag.FlagSet, ns *namespace) func(*env, []string) error {
		bt := blackboardFlags(fs)
		asJSON := fs.Bool("json", false, `print JSON: {"value": V, "generation": N}`)
		return func(e *env, args []string) error {
			return withEntryReader(*ns, bt, args, func(r *iox.EntryReader[[]byte], vt valueType) error {
				v, err := r.Get()
				if err != nil {
					return err
				}
				return printValue(e, vt, v.Value, v.Generation, *asJSON)
			})
		}
	},
}

var setCommand = command{
	name:    "set",
	args:    []string{"NAME", "KEY", "VALUE"},
	summary: "write the value of a blackboard entry",
	about: `Write VALUE as the value of the entry KEY of the existing blackboard NAME, as
its writer (a blackboard has one: this fails while another process holds it),
and notify the entry's watchers. A negative KEY or VALUE is written as it is
("iox set bb 2 -7"): a negative number is never read as a flag.`,
	flags: func(fs *flag.FlagSet, ns *namespace) func(*env, []string) error {
		bt := blackboardFlags(fs)
		return func(e *env, args []string) error {
			kt, vt, err := bt.parse()
			if err != nil {
				return err
			}
			key, err := kt.parse(args[1])
			if err != nil {
				return usagef("key %q: %v", args[1], err)
			}
			val, err := vt.parse(args[2])
			if err != nil {
				return usagef("value %q: %v", args[2], err)
			}
			node, err := ns.node()
			if err != nil {
				return err
			}
			defer node.Close()
			bb, err := iox.OpenExistingBlackboard(node, args[0], kt.codec)
			if err != nil {
				return ns.notFound(err, "blackboard", args[0])
			}
			defer bb.Close()
			w, err := bb.Writer()
			if errors.Is(err, iox.ErrLimitReached) {
				return fmt.Errorf("another process holds the writer of %q: %w", args[0], err)
			}
			if err != nil {
				return err
			}
			defer w.Close()
			entry, err := iox.WriteEntry(w, key, vt.codec)
			if err != nil {
				return err
			}
			defer entry.Close()
			return entry.Set(val)
		}
	},
}

var watchCommand = command{
	name:    "watch",
	args:    []string{"NAME", "KEY"},
	summary: "print the value of a blackboard entry and each change",
	about: `Print the value of the entry KEY of the existing blackboard NAME, then each
newer value, until interrupted or until -n values. It wakes on the entry's
notifications (the blackboard's event service, notified with the entry's id);
-poll also looks at that interval, for writers that do not notify. A value
that changes faster than it is printed is printed at its latest.`,
	flags: func(fs *flag.FlagSet, ns *namespace) func(*env, []string) error {
		bt := blackboardFlags(fs)
		count := fs.Int("n", 0, "stop after `N` values (0: until interrupted)")
		poll := fs.Duration("poll", 0, "also look every `D` (0: on notifications only)")
		asJSON := fs.Bool("json", false, `print JSON lines: {"value": V}`)
		return func(e *env, args []string) error {
			if *count < 0 {
				return usagef("-n %d: the count must not be negative", *count)
			}
			if *poll < 0 {
				return usagef("-poll %v: the interval must not be negative", *poll)
			}
			return withEntryReader(*ns, bt, args, func(r *iox.EntryReader[[]byte], vt valueType) error {
				var opts []iox.Option
				if *poll > 0 {
					opts = append(opts, iox.WithPoll(*poll))
				}
				c, err := iox.WatchEntry(e.ctx, r, opts...)
				if e.ctx.Err() != nil {
					return nil // interrupted before the watch began: a clean end
				}
				if err != nil {
					return err
				}
				for got := 0; *count == 0 || got < *count; got++ {
					v, ok := <-c
					if !ok {
						return nil // interrupted: a clean end
					}
					if err := printValue(e, vt, v, 0, *asJSON); err != nil {
						return err
					}
				}
				return nil
			})
		}
	},
}

// blackboardTypes are the -key and -value flags.
type blackboardTypes struct{ key, value *string }

func blackboardFlags(fs *flag.FlagSet) blackboardTypes {
	return blackboardTypes{
		key:   fs.String("key", "u32", "the key type, "+typeHelp),
		value: fs.String("value", "u64", "the value type, "+typeHelp),
	}
}

func (b blackboardTypes) parse() (key, value valueType, err error) {
	if key, err = parseType(*b.key); err != nil {
		return key, value, usagef("-key %q: %v", *b.key, err)
	}
	if value, err = parseType(*b.value); err != nil {
		return key, value, usagef("-value %q: %v", *b.value, err)
	}
	return key, value, nil
}

// withEntryReader opens the entry args[1] of the blackboard args[0] for reading and runs do.
func withEntryReader(ns namespace, bt blackboardTypes, args []string, do func(*iox.EntryReader[[]byte], valueType) error) error {
	kt, vt, err := bt.parse()
	if err != nil {
		return err
	}
	key, err := kt.parse(args[1])
	if err != nil {
		return usagef("key %q: %v", args[1], err)
	}
	node, err := ns.node()
	if err != nil {
		return err
	}
	defer node.Close()
	bb, err := iox.OpenExistingBlackboard(node, args[0], kt.codec)
	if err != nil {
		return ns.notFound(err, "blackboard", args[0])
	}
	defer bb.Close()
	r, err := bb.Reader()
	if err != nil {
		return err
	}
	defer r.Close()
	entry, err := iox.ReadEntry(r, key, vt.codec)
	if err != nil {
		return err
	}
	defer entry.Close()
	return do(entry, vt)
}

// valueType is a type named on the command line, with how its values are
// written.
type valueType struct {
	codec iox.FixedCodec[[]byte]
	prim  string // the Rust primitive, or "" for hex bytes
}

var primitives = map[string]int{"u8": 1, "u16": 2, "u32": 4, "u64": 8, "i8": 1, "i16": 2, "i32": 4, "i64": 8,
	"f32": 4, "f64": 8, "bool": 1}

func parseType(s string) (valueType, error) {
	if size, ok := primitives[s]; ok {
		c, err := iox.FixedBytes(iox.PayloadType{Name: s, Size: size, Align: size})
		return valueType{codec: c, prim: s}, err
	}
	parts := strings.Split(s, ":")
	if len(parts) != 3 || parts[0] == "" {
		return valueType{}, errors.New("not a Rust primitive nor NAME:SIZE:ALIGN")
	}
	size, err1 := strconv.Atoi(parts[1])
	align, err2 := strconv.Atoi(parts[2])
	if err1 != nil || err2 != nil {
		return valueType{}, errors.New("SIZE and ALIGN must be numbers")
	}
	c, err := iox.FixedBytes(iox.PayloadType{Name: parts[0], Size: size, Align: align})
	return valueType{codec: c}, err
}

// parse reads a value of the type from the command line.
func (t valueType) parse(s string) ([]byte, error) {
	size := t.codec.PayloadType().Size
	if t.prim == "" {
		// The bytes come from the command line: their number, not the
		// type's size (which may be absurd), sets what is allocated.
		h, err := hex.DecodeString(s)
		if err == nil && len(h) != size {
			err = fmt.Errorf("%d bytes, the type has %d", len(h), size)
		}
		return h, err
	}
	b := make([]byte, size)
	var err error
	switch t.prim {
	case "bool":
		var v bool
		if v, err = strconv.ParseBool(s); v {
			b[0] = 1
		}
	case "f32", "f64":
		var v float64
		if v, err = strconv.ParseFloat(s, size*8); err == nil {
			if size == 4 {
				binary.NativeEndian.PutUint32(b, math.Float32bits(float32(v)))
			} else {
				binary.NativeEndian.PutUint64(b, math.Float64bits(v))
			}
		}
	default:
		var u uint64
		if t.prim[0] == 'i' {
			var v int64
			v, err = strconv.ParseInt(s, 0, size*8)
			u = uint64(v)
		} else {
			u, err = strconv.ParseUint(s, 0, size*8)
		}
		putUint(b, u)
	}
	return b, err
}

func putUint(b []byte, u uint64) {
	switch len(b) {
	case 1:
		b[0] = byte(u)
	case 2:
		binary.NativeEndian.PutUint16(b, uint16(u))
	case 4:
		binary.NativeEndian.PutUint32(b, uint32(u))
	case 8:
		binary.NativeEndian.PutUint64(b, u)
	}
}

func getUint(b []byte) uint64 {
	switch len(b) {
	case 1:
		return uint64(b[0])
	case 2:
		return uint64(binary.NativeEndian.Uint16(b))
	case 4:
		return uint64(binary.NativeEndian.Uint32(b))
	}
	return binary.NativeEndian.Uint64(b)
}

// format writes a value of the type as the command line reads it; for JSON,
// numbers stay numbers (but NaN and the infinities, which JSON lacks, become
// the strings NaN, +Inf and -Inf) and bytes are a hex string.
func (t valueType) format(b []byte) (text string, jsonValue any) {
	switch t.prim {
	case "":
		s := hex.EncodeToString(b)
		return s, s
	case "bool":
		return strconv.FormatBool(b[0] != 0), b[0] != 0
	case "f32", "f64":
		var v float64
		if len(b) == 4 {
			v = float64(math.Float32frombits(binary.NativeEndian.Uint32(b)))
		} else {
			v = math.Float64frombits(binary.NativeEndian.Uint64(b))
		}
		text := strconv.FormatFloat(v, 'g', -1, 8*len(b))
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return text, text // JSON has no such numbers
		}
		return text, v
	}
	u := getUint(b)
	if t.prim[0] == 'i' {
		v := int64(u) << (64 - 8*len(b)) >> (64 - 8*len(b)) // sign-extend
		return strconv.FormatInt(v, 10), v
	}
	return strconv.FormatUint(u, 10), u
}

func printValue(e *env, vt valueType, b []byte, generation uint64, asJSON bool) error {
	text, jv := vt.format(b)
	line := []byte(text)
	if asJSON {
		var err error
		if generation > 0 {
			line, err = json.Marshal(struct {
				Value      any    `json:"value"`
				Generation uint64 `json:"generation"`
			}{jv, generation})
		} else {
			line, err = json.Marshal(struct {
				Value any `json:"value"`
			}{jv})
		}
		if err != nil {
			return err
		}
	}
	_, err := e.stdout.Write(append(line, '\n'))
	return err
}
