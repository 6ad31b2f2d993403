// Package embedded carries the iox native library inside Go programs, so that
// `go get github.com/iox-go/iox` is all a user of a supported platform needs:
// no Rust toolchain, no separate file to install.
//
// For each platform that has one (linux/amd64 today), the library is stored
// stripped and gzip-compressed beside a generated manifest that records what it
// is: the hash of the Rust sources it was built from (see SourceHash), the
// toolchain, its ABI version and its sizes. `make embed` rebuilds both, and a
// test fails while the sources have moved on since the last `make embed`.
//
// The build tag iox_noembed leaves the library out (about 1.15 MB less in every
// binary that imports iox), for programs that ship their own copy and point
// the loader at it (see package loader).
package embedded

import (
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
)

// Manifest describes an embedded library. The generated file beside the
// compressed library records it; `make embed` writes both.
type Manifest struct {
	// Platform is GOOS/GOARCH of the library.
	Platform string
	// File is the name of the compressed library in this package's folder.
	File string
	// SourceSHA256 is SourceHash of the sources the library was built from, and
	// SourceFiles the files it covered (relative to internal/native).
	SourceSHA256 string
	SourceFiles  []string
	// LibrarySHA256 is the SHA-256 (hex) of the uncompressed library; it names
	// the library's file when the loader has to put one in the cache folder.
	LibrarySHA256 string
	// ABIVersion is what the library's iox_abi_version returns.
	ABIVersion uint32
	// Rustc and Cargo are the toolchain's `--version` lines.
	Rustc, Cargo string
	// Size and CompressedSize are the library's sizes in bytes, uncompressed
	// and as stored.
	Size, CompressedSize int64
	// The library is compressed in pieces of ChunkSize bytes (the last one
	// shorter), each a gzip member of its own, so that they can be
	// decompressed in parallel; Chunks holds their compressed sizes. The file
	// as a whole is an ordinary (multi-member) gzip file.
	ChunkSize int64
	Chunks    []int64
}

// Library returns the manifest of the library this build carries; ok is false
// when it carries none (another platform, or the iox_noembed build tag).
func Library() (m Manifest, ok bool) {
	if compressed == "" {
		return Manifest{}, false
	}
	return manifest, true
}

// ErrCorrupt reports embedded data that does not match its manifest.
var ErrCorrupt = errors.New("embedded native library does not match its manifest")

// ErrNone reports that this build carries no library.
var ErrNone = errors.New("no embedded native library in this build")

// Extract decompresses the embedded library into w, its chunks in parallel,
// each at its offset: w then holds the library at offsets 0 to Size. Each
// chunk must decompress to exactly its length and pass gzip's CRC-32 check;
// the SHA-256 of the whole is left to callers that need it. On an error w may
// hold part of the library.
func Extract(w io.WriterAt) error {
	if compressed == "" {
		return ErrNone
	}
	var sum int64
	for _, n := range manifest.Chunks {
		sum += n
	}
	if sum != int64(len(compressed)) || sum != manifest.CompressedSize || manifest.ChunkSize <= 0 ||
		int64(len(manifest.Chunks)) != (manifest.Size+manifest.ChunkSize-1)/manifest.ChunkSize {
		return fmt.Errorf("%w: the chunks do not add up", ErrCorrupt)
	}
	errs := make([]error, len(manifest.Chunks))
	var wg sync.WaitGroup
	var in, out int64
	for i, n := range manifest.Chunks {
		chunk, off, size := compressed[in:in+n], out, min(manifest.ChunkSize, manifest.Size-out)
		wg.Go(func() { errs[i] = extractChunk(w, chunk, off, size) })
		in += n
		out += size
	}
	wg.Wait()
	return errors.Join(errs...)
}

// extractChunk decompresses one gzip member into w at off; it must hold exactly size bytes.
func extractChunk(w io.WriterAt, chunk string, off, size int64) error {
	zr, err := gzip.NewReader(strings.NewReader(chunk))
	if err != nil {
		return fmt.Errorf("%w: chunk at %d: %v", ErrCorrupt, off, err)
	}
	zr.Multistream(false)
	// One byte more than the chunk may hold, to notice one that is too long.
	n, err := io.Copy(io.NewOffsetWriter(w, off), io.LimitReader(zr, size+1))
	if err == nil {
		err = zr.Close() // reads the trailer: CRC-32 and length
	}
	if err == nil && n != size {
		err = fmt.Errorf("%d bytes, not %d", n, size)
	}
	if err != nil {
		return fmt.Errorf("%w: chunk at %d: %v", ErrCorrupt, off, err)
	}
	return nil
}
