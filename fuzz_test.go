package iox

import (
	"testing"

	"github.com/iox-go/iox/internal/ffi"
)

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
