package embedded

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSourceHashFollowsItsDefinition(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) {
		p := filepath.Join(dir, filepath.FromSlash(name))
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(content), 0o644))
	}
	write("Cargo.toml", "[package]\n")
	write("Cargo.lock", "# lock\n")
	write("src/lib.rs", "pub fn a() {}\n")
	write("src/bounds.rs", "")
	write("src/bin/floor.rs", "fn main() {}\n")
	write("src/notes.txt", "not a source\n")

	// The definition, spelled out: path, NUL, 8-byte big-endian length, content,
	// for each file in byte-wise order of its path.
	h := sha256.New()
	for _, f := range [][2]string{{"Cargo.lock", "# lock\n"}, {"Cargo.toml", "[package]\n"}, {"src/bounds.rs", ""}, {"src/lib.rs", "pub fn a() {}\n"}} {
		h.Write([]byte(f[0] + "\x00"))
		h.Write(binary.BigEndian.AppendUint64(nil, uint64(len(f[1]))))
		h.Write([]byte(f[1]))
	}
	want := hex.EncodeToString(h.Sum(nil))
	got, files, err := SourceHash(dir)
	require.NoError(t, err)
	assert.Equal(t, want, got)
	assert.Equal(t, []string{"Cargo.lock", "Cargo.toml", "src/bounds.rs", "src/lib.rs"}, files)

	// Programs in src/bin, other files, times and permissions do not count.
	write("src/bin/floor.rs", "fn main() { loop {} }\n")
	write("src/notes.txt", "changed\n")
	require.NoError(t, os.Chtimes(filepath.Join(dir, "src", "lib.rs"), time.Unix(1, 0), time.Unix(1, 0)))
	require.NoError(t, os.Chmod(filepath.Join(dir, "Cargo.toml"), 0o600))
	got, _, err = SourceHash(dir)
	require.NoError(t, err)
	assert.Equal(t, want, got)

	// Content moved from one file to the next, a new file, an edit, a rename: all count.
	seen := map[string]bool{want: true}
	for _, step := range []struct {
		name   string
		change func()
	}{
		{"content moved", func() { write("src/bounds.rs", "pub fn a() {}\n"); write("src/lib.rs", "") }},
		{"file added", func() { write("src/zz.rs", "") }},
		{"file edited", func() { write("Cargo.lock", "# lock 2\n") }},
		{"file renamed", func() {
			require.NoError(t, os.Rename(filepath.Join(dir, "src", "zz.rs"), filepath.Join(dir, "src", "yy.rs")))
		}},
	} {
		step.change()
		got, _, err := SourceHash(dir)
		require.NoError(t, err)
		assert.False(t, seen[got], "%s: the hash did not change", step.name)
		seen[got] = true
	}

	require.NoError(t, os.Remove(filepath.Join(dir, "Cargo.lock")))
	_, _, err = SourceHash(dir)
	assert.ErrorIs(t, err, os.ErrNotExist)
}
