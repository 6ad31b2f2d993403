//go:build linux

package loader

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"syscall"

	"github.com/ebitengine/purego"
	"golang.org/x/sys/unix"

	"github.com/iox-go/iox/internal/embedded"
)

// embeddedCandidate is the search-order entry of the library embedded in the
// program, if the program carries one.
func embeddedCandidate() (candidate, bool) {
	m, ok := embedded.Library()
	if !ok {
		return candidate{}, false
	}
	return candidate{"embedded " + m.File, FromEmbedded}, true
}

// openEmbedded loads the embedded library: from memory when the system allows
// it, otherwise from the user's cache folder. It returns the path handed to
// dlopen and the handle.
func openEmbedded() (string, uintptr, error) {
	return openEmbeddedVia(openFromMemory, cacheDir)
}

// openEmbeddedVia is openEmbedded with the ways to load from memory and to
// find the cache folder given.
func openEmbeddedVia(fromMemory func() (string, uintptr, error), cacheDir func() (string, error)) (string, uintptr, error) {
	path, h, memErr := fromMemory()
	if memErr == nil {
		return path, h, nil
	}
	dir, err := cacheDir()
	if err == nil {
		path, h, err = openFromCache(dir)
		if err == nil {
			return path, h, nil
		}
	}
	return "", 0, fmt.Errorf("from memory: %v; from the cache folder: %v", memErr, err)
}

var (
	memfdsMu sync.Mutex
	memfds   []*os.File
)

// openFromMemory writes the library into an anonymous memory file
// (memfd_create), seals it against any change, and dlopens it through
// /proc/self/fd. Nothing is left in the file system.
//
// The descriptor stays open for the life of the process: the dynamic linker
// knows the library by its path, and a later file given the same descriptor
// number must not be mistaken for it.
func openFromMemory() (string, uintptr, error) {
	fd, err := unix.MemfdCreate(LibName, unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return "", 0, fmt.Errorf("memfd_create: %w", err)
	}
	f := os.NewFile(uintptr(fd), "memfd:"+LibName)
	if err := extract(f); err != nil {
		f.Close()
		return "", 0, err
	}
	seals := unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE | unix.F_SEAL_SEAL
	if _, err := unix.FcntlInt(f.Fd(), unix.F_ADD_SEALS, seals); err != nil {
		f.Close()
		return "", 0, fmt.Errorf("sealing the memory file: %w", err)
	}
	path := fmt.Sprintf("/proc/self/fd/%d", f.Fd())
	h, err := purego.Dlopen(path, purego.RTLD_NOW|purego.RTLD_LOCAL)
	if err != nil {
		f.Close()
		return "", 0, err
	}
	memfdsMu.Lock()
	memfds = append(memfds, f) // kept, so that no finalizer closes it
	memfdsMu.Unlock()
	return path, h, nil
}

// extract writes the embedded library into the empty file f.
func extract(f *os.File) error {
	m, ok := embedded.Library()
	if !ok {
		return embedded.ErrNone
	}
	if err := f.Truncate(m.Size); err != nil {
		return err
	}
	return embedded.Extract(f)
}

// cacheDir is the folder of the library's cache file: iox in the user's cache
// folder ($XDG_CACHE_HOME, else ~/.cache).
func cacheDir() (string, error) {
	base, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(base, "iox"), nil
}

// openFromCache dlopens the embedded library from a file in dir named after
// its SHA-256. dir is made owner-only (0700) and must belong to this user; an
// existing file is used only when it is a regular file of this user that no
// one else may write and its content has the library's hash, otherwise it is
// replaced. The file is written under a temporary name, made read-only (0500)
// and renamed into place, so concurrent processes never see half a library.
func openFromCache(dir string) (string, uintptr, error) {
	m, ok := embedded.Library()
	if !ok {
		return "", 0, embedded.ErrNone
	}
	if err := privateDir(dir); err != nil {
		return "", 0, err
	}
	path := filepath.Join(dir, "libiox_native-"+m.LibrarySHA256+".so")
	if err := verifyCacheFile(path, m); err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			if err := os.Remove(path); err != nil {
				return "", 0, fmt.Errorf("replacing %s: %w", path, err)
			}
		}
		if err := writeCacheFile(dir, path); err != nil {
			return "", 0, err
		}
	}
	h, err := purego.Dlopen(path, purego.RTLD_NOW|purego.RTLD_LOCAL)
	if err != nil {
		return "", 0, err
	}
	return path, h, nil
}

// privateDir creates dir (and missing parents) owner-only, and checks that it
// is a real folder of this user; one with wider permissions is narrowed.
func privateDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	switch {
	case !fi.IsDir():
		return fmt.Errorf("%s is not a folder", dir)
	case !ok || int(st.Uid) != os.Geteuid():
		return fmt.Errorf("%s belongs to another user", dir)
	case fi.Mode().Perm()&0o077 != 0:
		return os.Chmod(dir, 0o700)
	}
	return nil
}

// verifyCacheFile checks that path is a regular file of this user, writable by
// no one else, holding exactly the library m describes.
func verifyCacheFile(path string, m embedded.Manifest) error {
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	switch {
	case !fi.Mode().IsRegular():
		return fmt.Errorf("%s is not a regular file", path)
	case !ok || int(st.Uid) != os.Geteuid():
		return fmt.Errorf("%s belongs to another user", path)
	case fi.Mode().Perm()&0o022 != 0:
		return fmt.Errorf("%s is writable by others", path)
	case fi.Size() != m.Size:
		return fmt.Errorf("%s has %d bytes, not %d", path, fi.Size(), m.Size)
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return err
	}
	if sum := hex.EncodeToString(h.Sum(nil)); sum != m.LibrarySHA256 {
		return fmt.Errorf("%s has SHA-256 %s, not %s", path, sum, m.LibrarySHA256)
	}
	return nil
}

// writeCacheFile writes the library to a temporary file in dir and renames it to path.
func writeCacheFile(dir, path string) (err error) {
	tmp, err := os.CreateTemp(dir, ".libiox_native-*.tmp") // 0600
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err = extract(tmp); err != nil {
		return err
	}
	if err = tmp.Chmod(0o500); err != nil {
		return err
	}
	if err = tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
