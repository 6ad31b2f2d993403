//go:build !iox_noembed

package embedded

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The embedded library must come from the native sources as they are now.
// The test fails after any change to them until `make embed` has rebuilt it.
func TestEmbeddedLibraryIsFresh(t *testing.T) {
	m, ok := Library()
	require.True(t, ok)
	got, files, err := SourceHash(filepath.Join("..", "native"))
	require.NoError(t, err)
	if got != m.SourceSHA256 {
		var added, removed []string
		for _, f := range files {
			if !slices.Contains(m.SourceFiles, f) {
				added = append(added, f)
			}
		}
		for _, f := range m.SourceFiles {
			if !slices.Contains(files, f) {
				removed = append(removed, f)
			}
		}
		t.Fatalf("the embedded native library is stale: it was built from sources with hash %s, "+
			"internal/native now hashes to %s (files added: %v, removed: %v, the rest may have changed).\n"+
			"Run `make embed` to rebuild it, and commit the result.", m.SourceSHA256, got, added, removed)
	}
}

func TestEmbeddedLibraryMatchesItsManifest(t *testing.T) {
	m, ok := Library()
	require.True(t, ok)
	assert.Equal(t, "linux/amd64", m.Platform)
	assert.LessOrEqual(t, m.CompressedSize, int64(2_000_000), "the compressed library is over its 2 MB budget")
	stored, err := os.ReadFile(m.File)
	require.NoError(t, err)
	assert.Equal(t, int64(len(stored)), m.CompressedSize)
	assert.NotEmpty(t, m.Rustc)
	assert.NotEmpty(t, m.Cargo)

	lib := extracted(t)
	assert.Len(t, lib, int(m.Size))
	sum := sha256.Sum256(lib)
	assert.Equal(t, m.LibrarySHA256, hex.EncodeToString(sum[:]))
	assert.Equal(t, "\x7fELF", string(lib[:4]))
}

func TestExtractRefusesDataThatDoesNotMatch(t *testing.T) {
	good, goodManifest := compressed, manifest
	t.Cleanup(func() { compressed, manifest = good, goodManifest })
	flip := func(i int) string {
		b := []byte(good)
		b[i] ^= 0xff
		return string(b)
	}
	for name, spoil := range map[string]func(){
		"a flipped byte in the first chunk": func() { compressed = flip(int(manifest.Chunks[0]) / 2) },
		"a flipped byte in a CRC":           func() { compressed = flip(int(manifest.Chunks[0]) - 6) },
		"a chunk too short":                 func() { manifest.ChunkSize++ },
		"a chunk too long":                  func() { manifest.ChunkSize--; manifest.Size -= int64(len(manifest.Chunks)) },
		"chunks that do not add up":         func() { manifest.Chunks = manifest.Chunks[1:] },
		"data cut short": func() {
			compressed = good[:len(good)-1]
			manifest.CompressedSize--
			manifest.Chunks = slices.Clone(goodManifest.Chunks)
			manifest.Chunks[len(manifest.Chunks)-1]--
		},
	} {
		t.Run(name, func(t *testing.T) {
			compressed, manifest = good, goodManifest
			manifest.Chunks = slices.Clone(goodManifest.Chunks)
			spoil()
			err := Extract(make(buffer, goodManifest.Size+int64(len(goodManifest.Chunks))))
			assert.ErrorIs(t, err, ErrCorrupt)
		})
	}
	compressed, manifest = good, goodManifest
	assert.NoError(t, Extract(make(buffer, goodManifest.Size)))
}

func extracted(t *testing.T) []byte {
	m, _ := Library()
	b := make(buffer, m.Size)
	require.NoError(t, Extract(b))
	return b
}

// buffer is a fixed-size io.WriterAt in memory.
type buffer []byte

func (b buffer) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(p)) > int64(len(b)) {
		return 0, os.ErrInvalid
	}
	return copy(b[off:], p), nil
}
