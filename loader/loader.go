// Package loader finds the iox native library, opens it with dlopen (through
// purego, so no cgo is involved), checks that it speaks the ABI version this Go
// code was written for, and resolves its symbols.
//
// Search order: an explicit path, then the IOX_NATIVE_LIB environment variable,
// then the project's own build output (internal/native/target/release), then a
// copy beside the running executable, then the system's dynamic-linker path.
// An explicit path or the environment variable, when given, is the only place
// tried: a wrong setting is reported rather than silently replaced.
package loader

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	"github.com/ebitengine/purego"
)

const (
	// ABIVersion is the native ABI version this package was written for.
	ABIVersion = 7
	// EnvVar names the environment variable that points at the library file.
	EnvVar = "IOX_NATIVE_LIB"
	// LibName is the file name of the native library.
	LibName = "libiox_native.so"
	// BuildCommand is the one command that builds the library from the source tree.
	BuildCommand = "make native"
)

// Errors reported by Open; compare with errors.Is.
var (
	ErrNotFound      = errors.New("iox native library not found")
	ErrABIMismatch   = errors.New("iox native library has another ABI version")
	ErrMissingSymbol = errors.New("iox native library lacks a symbol")
)

// Attempt records one place Open tried and why it failed.
type Attempt struct {
	Path string
	Err  string
}

// NotFoundError lists every path that was tried.
type NotFoundError struct{ Tried []Attempt }

func (e *NotFoundError) Error() string {
	var b strings.Builder
	b.WriteString("iox: native library not found; tried:")
	for _, a := range e.Tried {
		fmt.Fprintf(&b, "\n  %s: %s", a.Path, a.Err)
	}
	fmt.Fprintf(&b, "\nbuild it with `%s` in the iox source tree, or set %s to its path", BuildCommand, EnvVar)
	return b.String()
}

func (e *NotFoundError) Is(target error) bool { return target == ErrNotFound }

// ABIMismatchError reports a library built for another ABI version.
type ABIMismatchError struct {
	Path      string
	Got, Want uint32
}

func (e *ABIMismatchError) Error() string {
	return fmt.Sprintf("iox: native library %s has ABI version %d, this package needs %d; rebuild it with `%s`",
		e.Path, e.Got, e.Want, BuildCommand)
}

func (e *ABIMismatchError) Is(target error) bool { return target == ErrABIMismatch }

// MissingSymbolError reports a symbol the library does not export.
type MissingSymbolError struct{ Path, Symbol string }

func (e *MissingSymbolError) Error() string {
	return fmt.Sprintf("iox: native library %s does not export %s; rebuild it with `%s`", e.Path, e.Symbol, BuildCommand)
}

func (e *MissingSymbolError) Is(target error) bool { return target == ErrMissingSymbol }

// Library is an opened native library. It stays loaded for the life of the process.
type Library struct {
	Path   string
	handle uintptr
}

// Symbol returns the address of an exported function.
func (l *Library) Symbol(name string) (uintptr, error) {
	addr, err := purego.Dlsym(l.handle, name)
	if err != nil || addr == 0 {
		return 0, &MissingSymbolError{Path: l.Path, Symbol: name}
	}
	return addr, nil
}

var (
	mu     sync.Mutex
	opened = map[string]*Library{}
)

// Candidates returns, in order, the paths Open would try for the given explicit path.
func Candidates(explicit string) []string {
	if explicit != "" {
		return []string{explicit}
	}
	if env := os.Getenv(EnvVar); env != "" {
		return []string{env}
	}
	var out []string
	if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(file) {
		root := filepath.Dir(filepath.Dir(file))
		out = append(out, filepath.Join(root, "internal", "native", "target", "release", LibName))
	}
	if exe, err := os.Executable(); err == nil {
		out = append(out, filepath.Join(filepath.Dir(exe), LibName))
	}
	return append(out, LibName) // bare name: the dynamic linker's search path
}

// Open loads the library from the first candidate that works (see Candidates) and
// checks its ABI version. Loaded libraries are cached by path.
func Open(explicit string) (*Library, error) {
	return openFirst(Candidates(explicit))
}

func openFirst(paths []string) (*Library, error) {
	mu.Lock()
	defer mu.Unlock()
	nf := &NotFoundError{}
	for _, p := range paths {
		if lib, ok := opened[p]; ok {
			return lib, nil
		}
		if strings.ContainsRune(p, '/') {
			if _, err := os.Stat(p); err != nil {
				nf.Tried = append(nf.Tried, Attempt{p, "no such file"})
				continue
			}
		}
		h, err := purego.Dlopen(p, purego.RTLD_NOW|purego.RTLD_LOCAL)
		if err != nil {
			nf.Tried = append(nf.Tried, Attempt{p, err.Error()})
			continue
		}
		lib := &Library{Path: p, handle: h}
		if err := lib.checkABI(); err != nil {
			return nil, err
		}
		opened[p] = lib
		return lib, nil
	}
	return nil, nf
}

func (l *Library) checkABI() error {
	if _, err := l.Symbol("iox_abi_version"); err != nil {
		return err
	}
	var version func() uint32
	purego.RegisterLibFunc(&version, l.handle, "iox_abi_version")
	if got := version(); got != ABIVersion {
		return &ABIMismatchError{Path: l.Path, Got: got, Want: ABIVersion}
	}
	return nil
}
