package iox

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/iox-go/iox/internal/ffi"
	"github.com/iox-go/iox/loader"
)

// LogLevel selects how much the native library logs to stderr.
type LogLevel int

// Log levels of the native library.
const (
	LogTrace LogLevel = iota
	LogDebug
	LogInfo
	LogWarn
	LogError
	LogFatal
)

type nodeConfig struct {
	name, prefix, root, library string
	logLevel                    LogLevel
	shared                      bool
}

// NodeOption configures NewNode.
type NodeOption func(*nodeConfig)

// WithNodeName names the node (ASCII, at most 128 bytes); names need not be unique.
func WithNodeName(name string) NodeOption { return func(c *nodeConfig) { c.name = name } }

// WithIsolation gives the node its own iceoryx2 namespace: every shared-memory
// object gets prefix, and file-based resources live under rootDir (an absolute
// directory). Only nodes with the same prefix and rootDir see each other's services.
// Keep both short: a listener's socket path must fit in 108 bytes.
func WithIsolation(prefix, rootDir string) NodeOption {
	return func(c *nodeConfig) { c.prefix, c.root = prefix, rootDir }
}

// WithSharedNamespace lets processes of other users create nodes in the
// namespace: iceoryx2 makes the namespace's node-counter segment writable by
// everyone, which NewNode otherwise restricts to the owner (services and ports
// are private to their owner either way).
func WithSharedNamespace() NodeOption { return func(c *nodeConfig) { c.shared = true } }

// WithLogLevel sets the native library's log level (process-wide; default LogError).
func WithLogLevel(l LogLevel) NodeOption { return func(c *nodeConfig) { c.logLevel = l } }

// WithLibrary loads the native library from path instead of searching for it.
func WithLibrary(path string) NodeOption { return func(c *nodeConfig) { c.library = path } }

var libs sync.Map // path → *ffi.Lib

// openLib loads and binds the native library once per path.
func openLib(path string) (*ffi.Lib, error) {
	l, err := loader.Open(path)
	if err != nil {
		return nil, err
	}
	if v, ok := libs.Load(l.Path); ok {
		return v.(*ffi.Lib), nil
	}
	fl, err := ffi.Bind(l)
	if err != nil {
		return nil, err
	}
	v, _ := libs.LoadOrStore(l.Path, fl)
	return v.(*ffi.Lib), nil
}

// IceoryxVersion returns the iceoryx2 release the native library was built on;
// peers in other languages must use the same release.
func IceoryxVersion() (string, error) {
	lib, err := openLib("")
	if err != nil {
		return "", err
	}
	return lib.IceoryxVersion(), nil
}

// ref guards a native handle: operations hold it shared, Close holds it exclusively,
// so a handle is never freed while a call on it is in flight.
type ref struct {
	mu sync.RWMutex
	h  ffi.Handle
}

func (r *ref) acquire() (ffi.Handle, bool) {
	r.mu.RLock()
	if r.h == 0 {
		r.mu.RUnlock()
		return 0, false
	}
	return r.h, true
}

func (r *ref) release() { r.mu.RUnlock() }

// close frees the handle once; later calls return ErrClosed.
func (r *ref) close(drop func(ffi.Handle)) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.h == 0 {
		return ErrClosed
	}
	drop(r.h)
	r.h = 0
	return nil
}

func closedError(op, name string) error { return &Error{Op: op, Name: name, Kind: ErrClosed} }

// Node is a process's participant in iceoryx2: it opens services and owns the
// resources iceoryx2 uses to tell whether this process is alive. One per process
// is typical. A Node is safe for use by multiple goroutines.
//
// Services and ports opened through a node stay usable after the node is closed;
// close them on their own.
type Node struct {
	lib    *ffi.Lib
	ref    ref
	name   string
	prefix string
	root   string
}

// NewNode creates a node. It loads the native library on first use.
func NewNode(opts ...NodeOption) (*Node, error) {
	c := nodeConfig{logLevel: LogError}
	for _, o := range opts {
		o(&c)
	}
	lib, err := openLib(c.library)
	if err != nil {
		return nil, err
	}
	if c.logLevel < LogTrace || c.logLevel > LogFatal {
		return nil, &Error{Op: "new node", Name: c.name, Kind: ErrInvalidArgument, Detail: fmt.Sprintf("log level %d", c.logLevel)}
	}
	lib.SetLogLevel(int(c.logLevel))
	if err := checkName("node name", c.name, 128, true); err != nil {
		return nil, &Error{Op: "new node", Name: c.name, Kind: ErrInvalidName, Detail: err.Error()}
	}
	var eb ffi.ErrBuf
	h, st := lib.NodeCreate(c.name, c.prefix, c.root, &eb)
	if st != ffi.OK {
		e := statusError(lib, "new node", c.name, st, &eb).(*Error)
		if e.Kind == ErrInternal && !writableRoot(c.root) {
			e.Kind = ErrPermission
			e.Detail += "; the namespace's root folder is not writable by this user"
		}
		return nil, e
	}
	if !c.shared {
		restrictCounter(c.prefix, lib.IceoryxVersion())
	}
	n := &Node{lib: lib, name: c.name, prefix: c.prefix, root: c.root}
	n.ref.h = h
	return n, nil
}

// writableRoot reports whether this user may write the root folder, or the
// nearest existing folder above it where iceoryx2 would create it.
func writableRoot(root string) bool {
	if root == "" {
		root = "/tmp/iceoryx2/"
	}
	for dir := filepath.Clean(root); ; dir = filepath.Dir(dir) {
		if _, err := os.Stat(dir); err == nil {
			return syscall.Access(dir, 0x2|0x1) == nil // W_OK|X_OK
		}
		if dir == "/" {
			return true
		}
	}
}

// restrictCounter takes group and others' access away from the namespace's
// node-counter segment when this user owns it.
func restrictCounter(prefix, version string) {
	if prefix == "" {
		prefix = "iox2_"
	}
	suffix := "_node." + strings.ReplaceAll(version, ".", "_") + ".global_mgmt"
	entries, _ := os.ReadDir("/dev/shm")
	for _, d := range entries {
		name := d.Name()
		if !strings.HasPrefix(name, prefix) || !strings.HasSuffix(name, suffix) || len(name) != len(prefix)+40+len(suffix) {
			continue
		}
		path := filepath.Join("/dev/shm", name)
		info, err := os.Stat(path)
		if err != nil || info.Mode().Perm()&0o077 == 0 {
			continue
		}
		if st, ok := info.Sys().(*syscall.Stat_t); ok && int(st.Uid) == os.Geteuid() {
			os.Chmod(path, info.Mode().Perm()&0o700)
		}
	}
}

// Name returns the node's name.
func (n *Node) Name() string { return n.name }

// Close releases the node. A second Close returns ErrClosed.
func (n *Node) Close() error {
	if err := n.ref.close(n.lib.NodeDrop); err != nil {
		return closedError("close node", n.name)
	}
	return nil
}

// CleanupDeadNodes removes the shared-memory resources left by crashed processes
// (nodes of the same namespace whose process is gone) and returns how many were
// cleaned up. iceoryx2 also does this on its own when nodes and services open.
func (n *Node) CleanupDeadNodes() (int, error) {
	h, ok := n.ref.acquire()
	if !ok {
		return 0, closedError("cleanup dead nodes", n.name)
	}
	defer n.ref.release()
	cleaned, _, st := n.lib.NodeCleanupDead(h)
	if st != ffi.OK {
		return 0, statusError(n.lib, "cleanup dead nodes", n.name, st, nil)
	}
	return int(cleaned), nil
}

// versionCheck turns a refusal that iceoryx2 reports as a corrupted service into
// ErrVersionMismatch when the service's static configuration was written by
// another iceoryx2 release (releases before 0.10 record no version at all).
func (n *Node) versionCheck(err error, name string) error {
	var e *Error
	if !errors.As(err, &e) || e.Kind != ErrInternal || !strings.Contains(e.Detail, "CorruptedState") {
		return err
	}
	root, prefix := n.root, n.prefix
	if root == "" {
		root = "/tmp/iceoryx2/"
	}
	if prefix == "" {
		prefix = "iox2_"
	}
	entries, _ := os.ReadDir(filepath.Join(root, "services"))
	for _, d := range entries {
		if !strings.HasPrefix(d.Name(), prefix) || !strings.HasSuffix(d.Name(), ".service") {
			continue
		}
		b, rerr := os.ReadFile(filepath.Join(root, "services", d.Name()))
		if rerr != nil || len(b) > 1<<20 {
			continue
		}
		v, named := staticVersion(string(b), name)
		mine := n.lib.IceoryxVersion()
		if !named || v == mine {
			continue
		}
		detail := fmt.Sprintf("the service was created by iceoryx2 %s, this library uses %s", v, mine)
		if v == "" {
			detail = fmt.Sprintf("the service was created by an iceoryx2 release before 0.10, which records no version; this library uses %s", mine)
		}
		return &Error{Op: e.Op, Name: e.Name, Kind: ErrVersionMismatch, Detail: detail}
	}
	return err
}

// staticVersion reads a service's static configuration (TOML): whether it names
// the service, and the iceoryx2 version it records ("" when none).
func staticVersion(toml, name string) (version string, named bool) {
	var ver [3]string
	section := ""
	for _, line := range strings.Split(toml, "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "[") {
			section = strings.Trim(line, "[]")
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		switch {
		case section == "" && k == "service_name":
			s, err := strconv.Unquote(v)
			if len(v) >= 2 && v[0] == '\'' && v[len(v)-1] == '\'' {
				s, err = v[1:len(v)-1], nil
			}
			named = err == nil && s == name
		case section == "iceoryx2_version" && k == "major":
			ver[0] = v
		case section == "iceoryx2_version" && k == "minor":
			ver[1] = v
		case section == "iceoryx2_version" && k == "patch":
			ver[2] = v
		}
	}
	if ver[0] != "" {
		version = strings.Join(ver[:], ".")
	}
	return version, named
}

// checkName applies iceoryx2's naming rules: ASCII bytes 1..127, at most max bytes,
// and (for service names) not empty and not starting with "iox2://".
func checkName(what, s string, max int, emptyOK bool) error {
	if s == "" && !emptyOK {
		return fmt.Errorf("%s is empty", what)
	}
	if len(s) > max {
		return fmt.Errorf("%s has %d bytes, at most %d allowed", what, len(s), max)
	}
	for i := 0; i < len(s); i++ {
		if s[i] == 0 || s[i] > 127 {
			return fmt.Errorf("%s has a non-ASCII or NUL byte at %d", what, i)
		}
	}
	if !emptyOK && len(s) >= 7 && s[:7] == "iox2://" {
		return fmt.Errorf("%s must not start with iox2://", what)
	}
	return nil
}

// ValidServiceName reports whether name is a valid service name: 1 to 255 ASCII
// bytes (no NUL), not starting with "iox2://".
func ValidServiceName(name string) error {
	if err := checkName("service name", name, 255, false); err != nil {
		return &Error{Op: "check name", Name: name, Kind: ErrInvalidName, Detail: err.Error()}
	}
	return nil
}

// RemoveIsolation deletes every iceoryx2 file of the namespace that WithIsolation
// selected with the same prefix and rootDir: shared-memory objects in /dev/shm and
// the root folder. iceoryx2 keeps a small node-counter segment per namespace on
// purpose; call this once no process uses the namespace any more.
func RemoveIsolation(prefix, rootDir string) error {
	if prefix == "" || strings.ContainsRune(prefix, '/') || !filepath.IsAbs(rootDir) || filepath.Clean(rootDir) == "/" {
		return &Error{Op: "remove isolation", Name: prefix, Kind: ErrInvalidArgument, Detail: "needs a prefix and an absolute root folder"}
	}
	entries, err := os.ReadDir("/dev/shm")
	if err != nil {
		return &Error{Op: "remove isolation", Name: prefix, Kind: ErrInternal, Detail: err.Error()}
	}
	var first error
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) {
			if err := os.Remove(filepath.Join("/dev/shm", e.Name())); err != nil && first == nil {
				first = err
			}
		}
	}
	if err := os.RemoveAll(rootDir); err != nil && first == nil {
		first = err
	}
	if first != nil {
		return &Error{Op: "remove isolation", Name: prefix, Kind: ErrInternal, Detail: first.Error()}
	}
	return nil
}
