// Package layout reinterprets values of fixed-layout Go types (no pointers) as
// their bytes, for typed iox channels that carry a Rust #[repr(C)] struct's
// memory image.
package layout

import (
	"fmt"
	"reflect"
	"unsafe"
)

// Check reports why T cannot be carried as its bytes: it must hold no pointers,
// slices, maps, strings, interfaces, channels or functions.
func Check[T any]() error {
	return check(reflect.TypeFor[T]())
}

func check(t reflect.Type) error {
	switch t.Kind() {
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64, reflect.Complex64, reflect.Complex128:
		return nil
	case reflect.Array:
		return check(t.Elem())
	case reflect.Struct:
		for i := 0; i < t.NumField(); i++ {
			if err := check(t.Field(i).Type); err != nil {
				return fmt.Errorf("field %s: %w", t.Field(i).Name, err)
			}
		}
		return nil
	}
	return fmt.Errorf("%s is not fixed-layout (kind %s)", t, t.Kind())
}

// Bools returns the byte offsets of every bool in T (in fields and arrays), whose
// byte must be 0 or 1: Go cannot represent any other value.
func Bools[T any]() []uintptr {
	var out []uintptr
	var walk func(t reflect.Type, off uintptr)
	walk = func(t reflect.Type, off uintptr) {
		switch t.Kind() {
		case reflect.Bool:
			out = append(out, off)
		case reflect.Array:
			if !hasBool(t.Elem()) { // a large array of numbers is no loop
				return
			}
			for i := 0; i < t.Len(); i++ {
				walk(t.Elem(), off+uintptr(i)*t.Elem().Size())
			}
		case reflect.Struct:
			for i := 0; i < t.NumField(); i++ {
				walk(t.Field(i).Type, off+t.Field(i).Offset)
			}
		}
	}
	walk(reflect.TypeFor[T](), 0)
	return out
}

// hasBool reports whether a value of t holds a bool.
func hasBool(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Bool:
		return true
	case reflect.Array:
		return t.Len() > 0 && hasBool(t.Elem())
	case reflect.Struct:
		for i := 0; i < t.NumField(); i++ {
			if hasBool(t.Field(i).Type) {
				return true
			}
		}
	}
	return false
}

// Size and Align of T, from its type: a variable of T (what unsafe.Sizeof
// would need in generic code) is made on the heap once T is large, and a
// huge T (say [1 << 40]byte) would end the process out of memory.
func Size[T any]() int  { return int(reflect.TypeFor[T]().Size()) }
func Align[T any]() int { return reflect.TypeFor[T]().Align() }

// Append appends v's memory image to dst.
func Append[T any](dst []byte, v *T) []byte {
	return append(dst, unsafe.Slice((*byte)(unsafe.Pointer(v)), unsafe.Sizeof(*v))...)
}

// Load copies b (exactly Size[T] bytes) into a T.
func Load[T any](b []byte) T {
	var v T
	copy(unsafe.Slice((*byte)(unsafe.Pointer(&v)), unsafe.Sizeof(v)), b)
	return v
}

// Over returns a *T that points into b: b must be T's size and aligned for T.
// It reports an error otherwise; T must pass Check.
func Over[T any](b []byte) (*T, error) {
	size, align := Size[T](), Align[T]()
	if len(b) != size {
		return nil, fmt.Errorf("%d bytes for a type of %d bytes", len(b), size)
	}
	if size == 0 {
		return new(T), nil
	}
	p := unsafe.Pointer(unsafe.SliceData(b))
	if uintptr(p)%uintptr(align) != 0 {
		return nil, fmt.Errorf("the bytes are not aligned for the type (alignment %d)", align)
	}
	return (*T)(p), nil
}

// Mask returns, for each byte of T, 0xff when the byte belongs to a field's
// value and 0 when it is padding, so that two images of T compare equal when
// their values do, whatever their padding holds.
func Mask[T any]() []byte {
	out := make([]byte, Size[T]())
	var walk func(t reflect.Type, off uintptr)
	walk = func(t reflect.Type, off uintptr) {
		switch t.Kind() {
		case reflect.Array:
			for i := 0; i < t.Len(); i++ {
				walk(t.Elem(), off+uintptr(i)*t.Elem().Size())
			}
		case reflect.Struct:
			for i := 0; i < t.NumField(); i++ {
				walk(t.Field(i).Type, off+t.Field(i).Offset)
			}
		default:
			for i := uintptr(0); i < t.Size(); i++ {
				out[off+i] = 0xff
			}
		}
	}
	walk(reflect.TypeFor[T](), 0)
	return out
}
