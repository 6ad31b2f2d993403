package iox

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
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
	shared, keepDead, isolated  bool
}

// NodeOption configures NewNode.
type NodeOption func(*nodeConfig)

// WithNodeName names the node (ASCII, at most 128 bytes); names need not be unique.
func WithNodeName(name string) NodeOption { return func(c *nodeConfig) { c.name = name } }

// WithIsolation gives the node its own iceoryx2 namespace: every shared-memory
// object gets prefix, and file-based resources live under rootDir (an absolute
// directory; NewNode refuses a relative path or a file with
// ErrInvalidArgument, and iceoryx2
// creates a folder that is not there). NewNode refuses a root where no file
// can be made, naming it: ErrPermission where this user may not write,
// ErrInvalidArgument on a file system without files of its own such as /proc.
// NewNode refuses an empty prefix with ErrInvalidArgument: the node's shared
// memory would be the default namespace's. Only nodes with the same prefix and
// rootDir see each other's services.
// Keep both short: a listener's socket path must fit in 108 bytes.
func WithIsolation(prefix, rootDir string) NodeOption {
	return func(c *nodeConfig) { c.prefix, c.root, c.isolated = prefix, rootDir, true }
}

// WithSharedNamespace lets processes of other users create nodes in the
// namespace: iceoryx2 makes the namespace's node-counter segment writable by
// everyone, which NewNode otherwise restricts to the owner (services and ports
// are private to their owner either way).
func WithSharedNamespace() NodeOption { return func(c *nodeConfig) { c.shared = true } }

// WithoutAutoCleanup makes a node that leaves the resources of crashed
// processes in place: iceoryx2 otherwise removes them whenever a node is
// created or closed and whenever a service is opened. Tools that look at a
// namespace use it, so that Nodes still shows dead nodes and CleanupDeadNodes
// reports how many it removed.
func WithoutAutoCleanup() NodeOption { return func(c *nodeConfig) { c.keepDead = true } }

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

// loadedLib returns a native library already loaded, or loads the default one.
func loadedLib() (*ffi.Lib, error) {
	var lib *ffi.Lib
	libs.Range(func(_, v any) bool {
		lib = v.(*ffi.Lib)
		return false
	})
	if lib != nil {
		return lib, nil
	}
	return openLib("")
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
// close them on their own. So do the channels (Pair, Pub, Sub, Push, Pull,
// clients and servers), which open services of their own as they go: the
// node's resources are released once it is closed and the last of them is
// closed too. A closed node opens nothing more (ErrClosed), also for a
// blackboard's handles, whose change notifications it opens on first use.
type Node struct {
	lib   *ffi.Lib
	ref   ref
	name  string
	users *nodeUsers
}

// nodeUsers counts the channels that use a node after they opened. They use
// its inner Node, whose handle is released only once the node is closed and
// the last of them is done; the Node its program holds refuses everything
// once closed.
type nodeUsers struct {
	mu     sync.Mutex
	n      int
	closed bool
	inner  *Node
}

// keep lends a channel being opened the node until it closes the returned
// hold (the first thing it opened: its last to close). It fails with
// ErrClosed once the node is closed.
func (n *Node) keep(op, name string) (*Node, interface{ Close() error }, error) {
	u := n.users
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.closed {
		return nil, nil, closedError(op, name)
	}
	u.n++
	return u.inner, &nodeHold{u: u}, nil
}

// nodeHold is a channel's use of a node; Close ends it (once).
type nodeHold struct {
	u    *nodeUsers
	once sync.Once
}

func (h *nodeHold) Close() error {
	h.once.Do(func() {
		h.u.mu.Lock()
		h.u.n--
		last := h.u.closed && h.u.n == 0
		h.u.mu.Unlock()
		if last {
			h.u.inner.ref.close(h.u.inner.lib.NodeDrop)
		}
	})
	return nil
}

// NewNode creates a node. It loads the native library on first use.
func NewNode(opts ...NodeOption) (*Node, error) {
	c := nodeConfig{logLevel: LogError}
	for _, o := range opts {
		if o != nil { // as a nil Option, no option
			o(&c)
		}
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
	if c.isolated && c.prefix == "" {
		// iceoryx2 would take its default prefix: the default namespace's
		// shared memory under another root folder, isolated from nothing
		return nil, &Error{Op: "new node", Name: c.name, Kind: ErrInvalidArgument,
			Detail: "an isolated namespace needs a prefix for its shared memory"}
	}
	if c.root != "" && !filepath.IsAbs(c.root) {
		// iceoryx2 would make it relative to the working directory, and
		// RemoveIsolation could not remove it
		return nil, &Error{Op: "new node", Name: c.name, Kind: ErrInvalidArgument,
			Detail: fmt.Sprintf("isolation root %q is not an absolute path", c.root)}
	}
	if c.root != "" {
		// iceoryx2 reports a root it cannot make a folder of as an internal failure.
		if fi, err := os.Stat(c.root); errors.Is(err, syscall.ENOTDIR) || (err == nil && !fi.IsDir()) {
			return nil, &Error{Op: "new node", Name: c.name, Kind: ErrInvalidArgument,
				Detail: fmt.Sprintf("isolation root %q is not a directory", c.root)}
		}
	}
	var flags uint32
	if c.shared {
		flags |= ffi.NodeSharedNamespace
	}
	if c.keepDead {
		flags |= ffi.NodeNoAutoCleanup
	}
	var eb ffi.ErrBuf
	h, st := lib.NodeCreate(c.name, c.prefix, c.root, flags, &eb)
	if st != ffi.OK {
		err := statusError(lib, "new node", c.name, st, &eb)
		if e := err.(*Error); c.root != "" && (e.Kind == ErrInternal || e.Kind == ErrPermission) {
			if kind, why := rootUnusable(c.root); kind != nil {
				e.Kind, e.Detail = kind, fmt.Sprintf("isolation root %q: %s", c.root, why)
			}
		}
		return nil, err
	}
	n := &Node{lib: lib, name: c.name, users: &nodeUsers{inner: &Node{lib: lib, name: c.name}}}
	n.ref.h = h
	n.users.inner.ref.h = h
	n.users.inner.users = n.users
	return n, nil
}

// rootUnusable tells why iceoryx2 could not use root as a namespace's root
// folder, where it creates its files and the folder itself when it is not
// there: the nearest folder that exists, root or one above it, refuses a new
// file. iceoryx2 reports that as an internal failure. A folder on a file
// system without files of its own (/proc, /sys) is an invalid argument; one
// this user may not write to is a permission error. It returns a nil kind when
// a file can be made there, so the failure had another cause. The file it
// makes to find out is removed at once.
func rootUnusable(root string) (kind error, why string) {
	dir := filepath.Clean(root)
	for {
		fi, err := os.Stat(dir)
		if err == nil && !fi.IsDir() {
			return ErrInvalidArgument, fmt.Sprintf("%s is not a directory", dir)
		}
		if err == nil || dir == "/" || dir == "." {
			break
		}
		dir = filepath.Dir(dir)
	}
	f, err := os.CreateTemp(dir, ".iox-root-")
	if err == nil {
		name := f.Name()
		f.Close()
		os.Remove(name)
		return nil, ""
	}
	where := "in it"
	if dir != filepath.Clean(root) {
		where = fmt.Sprintf("in %s, where it would be made (it does not exist)", dir)
	}
	if errors.Is(err, fs.ErrPermission) || errors.Is(err, syscall.EROFS) {
		return ErrPermission, fmt.Sprintf("this user cannot make files %s: %v", where, errors.Unwrap(err))
	}
	return ErrInvalidArgument, fmt.Sprintf("no file can be made %s: %v", where, errors.Unwrap(err))
}

// Name returns the node's name.
func (n *Node) Name() string { return n.name }

// Close releases the node, once the channels opened through it are closed
// too. A second Close returns ErrClosed.
func (n *Node) Close() error {
	u := n.users
	u.mu.Lock()
	if u.closed || n == u.inner {
		u.mu.Unlock()
		return closedError("close node", n.name)
	}
	u.closed = true
	last := u.n == 0
	u.mu.Unlock()
	n.ref.close(func(ffi.Handle) {}) // the program's calls end here; the handle is the inner Node's
	if last {
		u.inner.ref.close(n.lib.NodeDrop)
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

// RemoveIsolation deletes every iceoryx2 resource of the namespace that
// WithIsolation selected with the same prefix and rootDir: its shared-memory
// objects and its root folder. iceoryx2 keeps a small node-counter segment per
// namespace on purpose; call this once no process uses the namespace any more.
// It uses a native library a node has loaded, or loads one from the usual places.
func RemoveIsolation(prefix, rootDir string) error {
	const op = "remove isolation"
	lib, err := loadedLib()
	if err != nil {
		return err
	}
	var eb ffi.ErrBuf
	if st := lib.RemoveIsolation(prefix, rootDir, &eb); st != ffi.OK {
		return statusError(lib, op, prefix, st, &eb)
	}
	return nil
}
