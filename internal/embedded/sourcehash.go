package embedded

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"os"
	"path/filepath"
	"slices"
)

// SourceFiles lists, relative to the native crate's folder nativeDir
// (internal/native) and with forward slashes, the files the native library is
// built from: Cargo.toml, Cargo.lock and src/*.rs (not src/bin, which holds
// programs of their own). The list is sorted byte-wise.
func SourceFiles(nativeDir string) ([]string, error) {
	rs, err := filepath.Glob(filepath.Join(nativeDir, "src", "*.rs"))
	if err != nil {
		return nil, err
	}
	files := []string{"Cargo.toml", "Cargo.lock"}
	for _, p := range rs {
		files = append(files, "src/"+filepath.Base(p))
	}
	slices.Sort(files)
	return files, nil
}

// SourceHash is the hex SHA-256 that identifies the native sources in
// nativeDir: for each file of SourceFiles in order, the hash takes in its
// relative path, one zero byte, its length as an 8-byte big-endian number and
// its content. A file added, removed, renamed or changed gives another hash;
// file times and permissions do not count.
func SourceHash(nativeDir string) (string, []string, error) {
	files, err := SourceFiles(nativeDir)
	if err != nil {
		return "", nil, err
	}
	h := sha256.New()
	for _, name := range files {
		data, err := os.ReadFile(filepath.Join(nativeDir, filepath.FromSlash(name)))
		if err != nil {
			return "", nil, err
		}
		h.Write([]byte(name))
		h.Write([]byte{0})
		h.Write(binary.BigEndian.AppendUint64(nil, uint64(len(data))))
		h.Write(data)
	}
	return hex.EncodeToString(h.Sum(nil)), files, nil
}
