//go:build linux && amd64 && !iox_noembed

package loader

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/iox-go/iox/internal/embedded"
)

func manifest(t testing.TB) embedded.Manifest {
	m, ok := embedded.Library()
	require.True(t, ok, "this build carries an embedded library")
	return m
}

func TestEmbeddedLibraryHasThisABIVersion(t *testing.T) {
	assert.Equal(t, uint32(ABIVersion), manifest(t).ABIVersion,
		"the embedded library was built for another ABI version; run `%s`", EmbedCommand)
}

// With nothing before it, the search loads the embedded copy from memory and
// writes nothing to the cache folder.
func TestOpenFallsBackToTheEmbeddedCopy(t *testing.T) {
	cache := t.TempDir()
	t.Setenv("XDG_CACHE_HOME", cache)
	c, ok := embeddedCandidate()
	require.True(t, ok)
	absent := filepath.Join(t.TempDir(), LibName)
	lib, err := openFirst([]candidate{{absent, FromCheckout}, c, {"libiox_native_absent.so", FromSystem}})
	require.NoError(t, err)
	assert.Equal(t, FromEmbedded, lib.Source)
	assert.True(t, strings.HasPrefix(lib.Path, "/proc/self/fd/"), lib.Path)
	assert.Contains(t, Loaded(), lib)
	_, err = lib.Symbol("iox_publisher_send_copy")
	assert.NoError(t, err)
	left, err := os.ReadDir(cache)
	require.NoError(t, err)
	assert.Empty(t, left, "loading from memory leaves no file behind")

	again, err := openFirst([]candidate{c})
	require.NoError(t, err)
	assert.Same(t, lib, again, "the embedded copy is loaded once per process")
}

// Where memory files cannot be loaded (no memfd_create, no /proc), the cache
// folder serves; where neither works, the error gives both reasons.
func TestEmbeddedFallsBackToTheCacheFolder(t *testing.T) {
	noMemory := func() (string, uintptr, error) { return "", 0, errors.New("memfd_create: function not implemented") }
	dir := filepath.Join(t.TempDir(), "iox")
	path, h, err := openEmbeddedVia(noMemory, func() (string, error) { return dir, nil })
	require.NoError(t, err)
	assert.Equal(t, filepath.Join(dir, "libiox_native-"+manifest(t).LibrarySHA256+".so"), path)
	require.NoError(t, (&Library{Path: path, handle: h}).checkABI())

	noCache := func() (string, error) { return "", errors.New("neither $XDG_CACHE_HOME nor $HOME are defined") }
	_, _, err = openEmbeddedVia(noMemory, noCache)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "from memory: memfd_create: function not implemented")
	assert.Contains(t, err.Error(), "from the cache folder: neither $XDG_CACHE_HOME nor $HOME are defined")
}

func TestEmbeddedFromMemoryIsSealed(t *testing.T) {
	path, h, err := openFromMemory()
	require.NoError(t, err)
	lib := &Library{Path: path, Source: FromEmbedded, handle: h}
	require.NoError(t, lib.checkABI())

	target, err := os.Readlink(path)
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(target, "/memfd:"+LibName), target)
	var fd int
	_, err = fmt.Sscanf(path, "/proc/self/fd/%d", &fd)
	require.NoError(t, err)
	seals, err := unix.FcntlInt(uintptr(fd), unix.F_GET_SEALS, 0)
	require.NoError(t, err)
	want := unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE | unix.F_SEAL_SEAL
	assert.Equal(t, want, seals&want)
	_, err = unix.Pwrite(fd, []byte{0}, 0)
	assert.ErrorIs(t, err, unix.EPERM, "the sealed library cannot be changed")

	data, err := os.ReadFile(path)
	require.NoError(t, err)
	sum := sha256.Sum256(data)
	assert.Equal(t, manifest(t).LibrarySHA256, hex.EncodeToString(sum[:]))
}

func TestEmbeddedCacheFileIsPrivateAndContentAddressed(t *testing.T) {
	m := manifest(t)
	dir := filepath.Join(t.TempDir(), "cache", "iox")
	path, h, err := openFromCache(dir)
	require.NoError(t, err)
	require.NoError(t, (&Library{Path: path, handle: h}).checkABI())
	assert.Equal(t, filepath.Join(dir, "libiox_native-"+m.LibrarySHA256+".so"), path)
	requireMode(t, dir, os.ModeDir|0o700)
	requireMode(t, filepath.Dir(dir), os.ModeDir|0o700)
	requireMode(t, path, 0o500)
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Len(t, entries, 1, "no temporary file is left")

	// A second load uses the verified file as it is.
	before := inode(t, path)
	again, _, err := openFromCache(dir)
	require.NoError(t, err)
	assert.Equal(t, path, again)
	assert.Equal(t, before, inode(t, path))
}

func TestEmbeddedCacheFileIsReplacedUnlessItHoldsTheLibrary(t *testing.T) {
	m := manifest(t)
	dir := filepath.Join(t.TempDir(), "iox")
	require.NoError(t, os.Mkdir(dir, 0o700))
	path := filepath.Join(dir, "libiox_native-"+m.LibrarySHA256+".so")
	victim := filepath.Join(t.TempDir(), "victim")
	require.NoError(t, os.WriteFile(victim, []byte("someone else's file"), 0o600))
	good, err := os.ReadFile(func() string { p, _, err := openFromCache(t.TempDir()); require.NoError(t, err); return p }())
	require.NoError(t, err)
	sameSize := append([]byte(nil), good...)
	sameSize[len(sameSize)/2] ^= 0xff

	for name, plant := range map[string]func(){
		"other content": func() { require.NoError(t, os.WriteFile(path, []byte("not the library"), 0o500)) },
		"one byte off":  func() { require.NoError(t, os.WriteFile(path, sameSize, 0o500)) },
		"writable by others": func() {
			require.NoError(t, os.WriteFile(path, good, 0o500))
			require.NoError(t, os.Chmod(path, 0o722))
		},
		"symbolic link": func() { require.NoError(t, os.Symlink(victim, path)) },
		"folder":        func() { require.NoError(t, os.Mkdir(path, 0o700)) },
	} {
		t.Run(name, func(t *testing.T) {
			os.Remove(path)
			plant()
			got, _, err := openFromCache(dir)
			require.NoError(t, err)
			assert.Equal(t, path, got)
			data, err := os.ReadFile(path)
			require.NoError(t, err)
			assert.Equal(t, good, data)
			requireMode(t, path, 0o500)
			victimData, err := os.ReadFile(victim)
			require.NoError(t, err)
			assert.Equal(t, "someone else's file", string(victimData), "a link is replaced, never followed")
		})
	}
}

func TestEmbeddedCacheFolderMustBeThisUsers(t *testing.T) {
	// A folder with wider permissions is narrowed to the owner.
	loose := filepath.Join(t.TempDir(), "iox")
	require.NoError(t, os.Mkdir(loose, 0o700))
	require.NoError(t, os.Chmod(loose, 0o777))
	require.NoError(t, privateDir(loose))
	requireMode(t, loose, os.ModeDir|0o700)

	// A link or a file in its place is refused.
	link := filepath.Join(t.TempDir(), "iox")
	require.NoError(t, os.Symlink(t.TempDir(), link))
	assert.ErrorContains(t, privateDir(link), "not a folder")
	file := filepath.Join(t.TempDir(), "iox")
	require.NoError(t, os.WriteFile(file, nil, 0o600))
	assert.Error(t, privateDir(file))

	// So is another user's folder, left as it was.
	theirs := filepath.Join(t.TempDir(), "iox")
	require.NoError(t, os.Mkdir(theirs, 0o777))
	require.NoError(t, os.Chmod(theirs, 0o777))
	if os.Geteuid() == 0 {
		require.NoError(t, os.Chown(theirs, 65534, 65534))
	} else {
		theirs = "/" // root's
	}
	before, err := os.Stat(theirs)
	require.NoError(t, err)
	assert.ErrorContains(t, privateDir(theirs), "another user")
	after, err := os.Stat(theirs)
	require.NoError(t, err)
	assert.Equal(t, before.Mode(), after.Mode())
	_, _, err = openFromCache(theirs)
	assert.ErrorContains(t, err, "another user")
}

func requireMode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	fi, err := os.Lstat(path)
	require.NoError(t, err)
	require.Equal(t, want, fi.Mode(), path)
}

func inode(t *testing.T, path string) uint64 {
	fi, err := os.Stat(path)
	require.NoError(t, err)
	return fi.Sys().(*syscall.Stat_t).Ino
}
