//go:build linux

// Package loader finds the iox native library, opens it with dlopen (through
// purego, so no cgo is involved), checks that it speaks the ABI version this Go
// code was written for, and resolves its symbols.
//
// Search order; the first library that loads is used:
//
//  1. an explicit path (iox.WithLibrary);
//  2. the file named by the IOX_NATIVE_LIB environment variable;
//  3. the build output of the iox checkout this package was compiled from
//     (internal/native/target/release, written by `make native`), so that work
//     on the Rust code runs against its own build;
//  4. libiox_native.so beside the running executable, for programs deployed
//     with a library of their own;
//  5. the copy embedded in the program (linux/amd64; package
//     internal/embedded), loaded from memory without leaving a file behind
//     (memfd_create, then dlopen of /proc/self/fd/N) or, where that fails,
//     from a content-addressed, owner-only file in the user's cache folder
//     (os.UserCacheDir()/iox);
//  6. libiox_native.so by name, through the system's dynamic-linker path.
//
// An explicit path or the environment variable, when given, is the only place
// tried: a wrong setting is reported rather than silently replaced. A library
// that loads but has another ABI version stops the search with ErrABIMismatch.
//
// Building with the tag iox_noembed leaves the embedded copy out, for programs
// that ship their own library (about 1.15 MB less in the binary).
//
// iox runs on Linux only; on other systems this package does not compile, and
// the compiler's message says so.
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
	"golang.org/x/sys/unix"
)

const (
	// ABIVersion is the native ABI version this package was written for.
	ABIVersion = 8
	// EnvVar names the environment variable that points at the library file.
	EnvVar = "IOX_NATIVE_LIB"
	// LibName is the file name of the native library.
	LibName = "libiox_native.so"
	// BuildCommand is the one command that builds the library from the source tree.
	BuildCommand = "make native"
	// EmbedCommand is the command that refreshes the embedded copy from the sources.
	EmbedCommand = "make embed"
)

// Errors reported by Open; compare with errors.Is.
var (
	ErrNotFound      = errors.New("iox native library not found")
	ErrABIMismatch   = errors.New("iox native library has another ABI version")
	ErrMissingSymbol = errors.New("iox native library lacks a symbol")
)

// Source says which entry of the search order a library was loaded from.
type Source int

// The entries of the search order (see the package documentation).
const (
	FromOption        Source = iota + 1 // an explicit path
	FromEnv                             // the IOX_NATIVE_LIB environment variable
	FromCheckout                        // the build output of an iox checkout
	FromExecutableDir                   // beside the running executable
	FromEmbedded                        // the copy embedded in the program
	FromSystem                          // the dynamic linker's search path
)

func (s Source) String() string {
	switch s {
	case FromOption:
		return "option"
	case FromEnv:
		return "environment"
	case FromCheckout:
		return "checkout"
	case FromExecutableDir:
		return "executable folder"
	case FromEmbedded:
		return "embedded"
	case FromSystem:
		return "system"
	}
	return fmt.Sprintf("Source(%d)", int(s))
}

// Attempt records one place Open tried and why it failed.
type Attempt struct {
	Path string
	Err  string
}

// NotFoundError lists every path that was tried and says how to build the library.
type NotFoundError struct {
	Tried []Attempt
	hint  string
}

func (e *NotFoundError) Error() string {
	var b strings.Builder
	b.WriteString("iox: native library not found; tried:")
	for _, a := range e.Tried {
		fmt.Fprintf(&b, "\n  %s: %s", a.Path, a.Err)
	}
	b.WriteString("\n")
	b.WriteString(e.hint)
	return b.String()
}

func (e *NotFoundError) Is(target error) bool { return target == ErrNotFound }

// ABIMismatchError reports a library built for another ABI version.
type ABIMismatchError struct {
	Path      string
	Source    Source
	Got, Want uint32
}

func (e *ABIMismatchError) Error() string {
	if e.Source == FromEmbedded {
		return fmt.Sprintf("iox: the embedded native library has ABI version %d, this package needs %d; refresh it with `%s` in the iox source tree",
			e.Got, e.Want, EmbedCommand)
	}
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
	// Path is what was handed to dlopen: a file, a bare name the dynamic
	// linker resolved, or /proc/self/fd/N for the embedded copy in memory.
	Path string
	// Source is the entry of the search order the library came from.
	Source Source
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
	opened = map[string]*Library{} // by candidate
	order  []*Library
)

// Loaded returns the libraries this process has opened so far, in the order
// they were first opened; a program can report with it which copy it uses.
func Loaded() []*Library {
	mu.Lock()
	defer mu.Unlock()
	return append([]*Library(nil), order...)
}

// candidate is one entry of the search order: a path (or a bare name for the
// dynamic linker, or a description of the embedded copy) and where it comes from.
type candidate struct {
	path   string
	source Source
}

// Candidates returns, in order, the places Open would try for the given
// explicit path. The embedded copy, when the program carries one, appears as
// "embedded" and the name of its compressed file.
func Candidates(explicit string) []string {
	var out []string
	for _, c := range candidates(explicit) {
		out = append(out, c.path)
	}
	return out
}

func candidates(explicit string) []candidate {
	if explicit != "" {
		return []candidate{{explicit, FromOption}}
	}
	if env := os.Getenv(EnvVar); env != "" {
		return []candidate{{env, FromEnv}}
	}
	var out []candidate
	if root := sourceRoot(); root != "" {
		out = append(out, candidate{filepath.Join(root, "internal", "native", "target", "release", LibName), FromCheckout})
	}
	if exe, err := os.Executable(); err == nil {
		out = append(out, candidate{filepath.Join(filepath.Dir(exe), LibName), FromExecutableDir})
	}
	if c, ok := embeddedCandidate(); ok {
		out = append(out, c)
	}
	return append(out, candidate{LibName, FromSystem}) // bare name: the dynamic linker's search path
}

// sourceRoot is the root of the iox source tree this package was compiled
// from, or "" when the build recorded no absolute path (-trimpath).
func sourceRoot() string {
	if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(file) {
		return filepath.Dir(filepath.Dir(file))
	}
	return ""
}

// Open loads the library from the first candidate that works (see Candidates) and
// checks its ABI version. Loaded libraries are cached by candidate.
func Open(explicit string) (*Library, error) {
	return openFirst(candidates(explicit))
}

func openFirst(cands []candidate) (*Library, error) {
	mu.Lock()
	defer mu.Unlock()
	nf := &NotFoundError{}
	for _, c := range cands {
		if lib, ok := opened[c.path]; ok {
			return lib, nil
		}
		var lib *Library
		if c.source == FromEmbedded {
			path, h, err := openEmbedded()
			if err != nil {
				nf.Tried = append(nf.Tried, Attempt{c.path, err.Error()})
				continue
			}
			lib = &Library{Path: path, Source: c.source, handle: h}
		} else {
			if strings.ContainsRune(c.path, '/') {
				if _, err := os.Stat(c.path); err != nil {
					nf.Tried = append(nf.Tried, Attempt{c.path, "no such file"})
					continue
				}
			}
			h, err := purego.Dlopen(c.path, purego.RTLD_NOW|purego.RTLD_LOCAL)
			if err != nil {
				nf.Tried = append(nf.Tried, Attempt{c.path, err.Error()})
				continue
			}
			lib = &Library{Path: c.path, Source: c.source, handle: h}
		}
		if err := lib.checkABI(); err != nil {
			return nil, err
		}
		opened[c.path] = lib
		order = append(order, lib)
		return lib, nil
	}
	_, carried := embeddedCandidate()
	nf.hint = buildHint(sourceRoot(), runtime.GOOS+"/"+runtime.GOARCH, carried)
	return nil, nf
}

func (l *Library) checkABI() error {
	if _, err := l.Symbol("iox_abi_version"); err != nil {
		return err
	}
	var version func() uint32
	purego.RegisterLibFunc(&version, l.handle, "iox_abi_version")
	if got := version(); got != ABIVersion {
		return &ABIMismatchError{Path: l.Path, Source: l.Source, Got: got, Want: ABIVersion}
	}
	return nil
}

// embeddedPlatform is the platform for which iox embeds a native library.
const embeddedPlatform = "linux/amd64"

// buildHint says why the program carries no library, if it carries none
// (carried), and how to build one on this machine (platform), given the root
// of the iox sources this package was compiled from ("" when unknown): `make
// native` in a checkout one can write to, which the search then finds by
// itself; for a read-only copy such as Go's module cache, the cargo command
// that builds from it into the user's cache folder, and the variable to set.
func buildHint(root, platform string, carried bool) string {
	var b strings.Builder
	if !carried {
		if platform == embeddedPlatform {
			b.WriteString("this program was built with the tag iox_noembed, which leaves out the embedded native library\n")
		} else {
			fmt.Fprintf(&b, "iox embeds a native library for %s only, and this is %s\n", embeddedPlatform, platform)
		}
	}
	native := filepath.Join(root, "internal", "native")
	switch {
	case root == "":
		fmt.Fprintf(&b, "build it with `%s` in a checkout of github.com/iox-go/iox (Rust's cargo is needed) and set %s to its internal/native/target/release/%s",
			BuildCommand, EnvVar, LibName)
	case unix.Access(native, unix.W_OK) == nil:
		fmt.Fprintf(&b, "build it with `%s` in %s (Rust's cargo is needed), or set %s to its path", BuildCommand, root, EnvVar)
	default:
		target := "$HOME/.cache/iox/target"
		if base, err := os.UserCacheDir(); err == nil {
			target = filepath.Join(base, "iox", "target")
		}
		fmt.Fprintf(&b, "build it with `cargo build --release --locked --manifest-path %s --target-dir %s` (Rust's cargo is needed) and set %s=%s",
			filepath.Join(native, "Cargo.toml"), target, EnvVar, filepath.Join(target, "release", LibName))
	}
	return b.String()
}
