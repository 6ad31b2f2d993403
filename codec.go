package iox

import (
	"fmt"
	"unsafe"

	"github.com/iox-go/iox/internal/layout"
)

// Codec turns values of T into message bytes and back, so that typed channels
// ride on the same byte transport.
type Codec[T any] interface {
	// Append appends the encoding of v to dst and returns the result.
	Append(dst []byte, v T) ([]byte, error)
	// Decode decodes one message; b is valid only during the call.
	Decode(b []byte) (T, error)
}

// appendSafe is codec.Append with a panic turned into an error: codecs run on
// the channels' own goroutines (behind Out and In, the keeper of an idle
// receiving end), where the program could not recover a panic, and a
// careless codec may panic on a message a hostile peer crafted.
func appendSafe[T any](codec Codec[T], dst []byte, v T) (b []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			b, err = dst, fmt.Errorf("the codec panicked: %v", r)
		}
	}()
	return codec.Append(dst, v)
}

// decodeSafe is codec.Decode with a panic turned into an error (see
// appendSafe).
func decodeSafe[T any](codec Codec[T], b []byte) (v T, err error) {
	defer func() {
		if r := recover(); r != nil {
			var zero T
			v, err = zero, fmt.Errorf("the codec panicked: %v", r)
		}
	}()
	return codec.Decode(b)
}

// PayloadTyper is implemented by codecs whose messages have a payload type other
// than Bytes, so that services opened with them carry that type.
type PayloadTyper interface{ PayloadType() PayloadType }

// Raw is the identity codec of []byte channels; Decode copies the message.
type Raw struct{}

func (Raw) Append(dst []byte, v []byte) ([]byte, error) { return append(dst, v...), nil }
func (Raw) Decode(b []byte) ([]byte, error) {
	out := make([]byte, len(b))
	copy(out, b)
	return out, nil
}

// FixedCodec carries a fixed-layout T as its memory image, with the type name,
// size and alignment a Rust #[repr(C)] peer declares, so Rust, C and Python peers
// can open the same service.
type FixedCodec[T any] struct {
	pt    PayloadType
	bools []uintptr // offsets of T's bools
	raw   bool      // T is []byte holding the image of a type known at run time (FixedBytes)
}

// Fixed makes the codec of a fixed-layout T (numbers, bools, arrays and structs of
// them; no pointers, slices, strings or maps). rustName is the type name the peer's
// iceoryx2 uses, e.g. "my_app::Point" for Rust or the ctypes struct's type_name().
func Fixed[T any](rustName string) (FixedCodec[T], error) {
	if err := layout.Check[T](); err != nil {
		return FixedCodec[T]{}, &Error{Op: "fixed codec", Name: rustName, Kind: ErrInvalidArgument, Detail: err.Error()}
	}
	if rustName == "" || layout.Size[T]() == 0 {
		return FixedCodec[T]{}, &Error{Op: "fixed codec", Name: rustName, Kind: ErrInvalidArgument, Detail: "needs a type name and a non-empty type"}
	}
	return FixedCodec[T]{pt: PayloadType{Name: rustName, Size: layout.Size[T](), Align: layout.Align[T](), Fixed: true}, bools: layout.Bools[T]()}, nil
}

// FixedBytes makes the codec of a fixed-size type known only at run time, such
// as one named on a command line: its values are []byte of exactly t.Size
// bytes, the type's memory image. t needs a name, a size of at least 1 and a
// power-of-two alignment.
func FixedBytes(t PayloadType) (FixedCodec[[]byte], error) {
	if t.Name == "" || t.Size < 1 || t.Align < 1 || t.Align&(t.Align-1) != 0 {
		return FixedCodec[[]byte]{}, &Error{Op: "fixed codec", Name: t.Name, Kind: ErrInvalidArgument,
			Detail: fmt.Sprintf("needs a type name, a size of at least 1 and a power-of-two alignment, not %d and %d", t.Size, t.Align)}
	}
	t.Fixed = true
	return FixedCodec[[]byte]{pt: t, raw: true}, nil
}

// image returns where the memory image of *v is, of pt.Size bytes: v itself,
// or the bytes a FixedBytes value holds, which must be exactly that many.
func (c FixedCodec[T]) image(v *T) (unsafe.Pointer, error) {
	if !c.raw {
		return unsafe.Pointer(v), nil
	}
	return c.rawImage(*(*[]byte)(unsafe.Pointer(v)))
}

// rawImage is image of a FixedBytes value b.
func (c FixedCodec[T]) rawImage(b []byte) (unsafe.Pointer, error) {
	if len(b) != c.pt.Size {
		return nil, &Error{Op: "encode", Name: c.pt.Name, Kind: ErrInvalidArgument,
			Detail: fmt.Sprintf("value has %d bytes, the type %d", len(b), c.pt.Size)}
	}
	return unsafe.Pointer(unsafe.SliceData(b)), nil
}

// unmade reports whether c is the zero FixedCodec, made by neither Fixed nor
// FixedBytes.
func (c FixedCodec[T]) unmade() bool { return c.pt.Size == 0 }

// PayloadType is the fixed-size payload type of T.
func (c FixedCodec[T]) PayloadType() PayloadType { return c.pt }

func (c FixedCodec[T]) Append(dst []byte, v T) ([]byte, error) {
	p, err := c.image(&v)
	if err != nil {
		return dst, err
	}
	return append(dst, unsafe.Slice((*byte)(p), c.pt.Size)...), nil
}

func (c FixedCodec[T]) Decode(b []byte) (T, error) {
	if c.raw && len(b) == c.pt.Size {
		var v T
		*(*[]byte)(unsafe.Pointer(&v)) = append([]byte(nil), b...)
		return v, nil
	}
	if len(b) != c.pt.Size {
		var zero T
		return zero, &Error{Op: "decode", Name: c.pt.Name, Kind: ErrInvalidArgument,
			Detail: fmt.Sprintf("message has %d bytes, the type %d", len(b), c.pt.Size)}
	}
	for _, off := range c.bools {
		if b[off] > 1 {
			var zero T
			return zero, &Error{Op: "decode", Name: c.pt.Name, Kind: ErrInvalidArgument,
				Detail: fmt.Sprintf("byte %d is a bool of value %d", off, b[off])}
		}
	}
	return layout.Load[T](b), nil
}
