//go:build !linux

// Package loader loads the iox native library; iox runs on Linux only.
//
// iox waits for peer processes with pidfds and epoll, reads /proc, loads its
// native library through memfd_create and /proc/self/fd, and embeds that
// library for linux/amd64. On other systems the build stops here, with the
// reason in the compiler's message (see "Platforms" in the README).
package loader

const _ = iox_runs_on_Linux_only__see_Platforms_in_the_iox_README
