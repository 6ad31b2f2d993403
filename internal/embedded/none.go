//go:build !(linux && amd64) || iox_noembed

package embedded

// This build carries no library: none is made for this platform, or the
// iox_noembed build tag left it out.
var (
	compressed string
	manifest   Manifest
)
