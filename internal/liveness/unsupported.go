//go:build !linux

// Package liveness detects that a peer process has exited; it needs Linux
// (pidfd_open, epoll, /proc). On other systems the build stops here, with the
// reason in the compiler's message (see "Platforms" in the README).
package liveness

const _ = iox_runs_on_Linux_only__see_Platforms_in_the_iox_README
