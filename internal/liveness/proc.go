//go:build linux

package liveness

import (
	"bytes"
	"errors"
	"math"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// The identity guard compares the start time of the process that now holds a
// pid with the time at which the caller knew its peer already existed. If the
// current holder started later, the pid was reused and the peer is gone.
//
// /proc/<pid>/stat reports the start time (field 22) in clock ticks since
// boot. A tick is 1/sysconf(_SC_CLK_TCK) seconds, the kernel's USER_HZ, which
// is 100 on every mainstream Linux architecture (x86, arm64, riscv, ppc, s390);
// we assume 100 rather than reading the auxiliary vector.
const (
	ticksPerSecond = 100
	tickNs         = int64(1e9 / ticksPerSecond)

	// slackNs absorbs the truncation of the start time to whole ticks and the
	// jitter between the kernel's and the caller's clock readings. The kernel
	// truncates, so the true start is at or after ticks*tickNs and a genuine
	// peer never looks younger; the slack is a margin of safety, and a pid
	// reuse within it goes unnoticed (pids cycle through pid_max first).
	slackNs = 3 * tickNs
)

// Alive reports whether a process runs under pid and started no later than
// created (plus a slack of a few clock ticks): the identity guard of Watch as a
// one-shot check, for callers that fall back to polling.
//
// created is a CLOCK_MONOTONIC time in nanoseconds at which the caller knew
// the process already existed. A zombie (exited but not yet reaped by its
// parent) does not run, so Alive reports false for it, matching Watch, which
// fires when the process exits rather than when it is reaped. A process whose
// /proc/<pid>/stat cannot be read (no /proc, hidepid) counts as not alive.
func Alive(pid int, created int64) bool {
	if pid <= 0 || pid > math.MaxInt32 {
		return false
	}
	start, state, err := readStat(pid)
	if err != nil || state == 'Z' || state == 'X' || state == 'x' {
		return false
	}
	return startedBy(start, created)
}

// startedBy reports whether a process whose /proc start time is start (clock
// ticks since boot) existed at the CLOCK_MONOTONIC time created.
//
// The kernel measures the start time on CLOCK_BOOTTIME, which runs on during
// suspend while CLOCK_MONOTONIC stops. Both read from boot, and their current
// difference (time spent suspended, plus the offsets of a time namespace) is
// added to created so that both sides are on the boot-time scale. A suspend
// between created and now only widens the guard, never makes a live peer look
// dead.
func startedBy(start int64, created int64) bool {
	var mono, boot unix.Timespec
	if unix.ClockGettime(unix.CLOCK_MONOTONIC, &mono) != nil ||
		unix.ClockGettime(unix.CLOCK_BOOTTIME, &boot) != nil {
		// Cannot happen on Linux; without clocks the guard is off.
		return true
	}
	limit := satAdd(satAdd(created, boot.Nano()-mono.Nano()), slackNs)
	// start*tickNs <= limit, without overflow; start is never negative.
	return limit >= 0 && start <= limit/tickNs
}

// satAdd adds a non-negative b to a, saturating instead of overflowing.
func satAdd(a, b int64) int64 {
	if b > 0 && a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

// readStat returns the start time (clock ticks since boot) and the state
// letter of pid from /proc/<pid>/stat.
func readStat(pid int) (start int64, state byte, err error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, err
	}
	return parseStat(b)
}

// errStat reports a /proc/<pid>/stat line that does not have the documented
// layout.
var errStat = errors.New("liveness: malformed /proc/<pid>/stat")

// parseStat extracts the state (field 3) and starttime (field 22) of a
// /proc/<pid>/stat line: "pid (comm) state ppid ... starttime ...". comm is
// the executable name, which may itself contain spaces and parentheses, so the
// fields are counted from the last ')'.
func parseStat(b []byte) (start int64, state byte, err error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, errStat
	}
	fields := bytes.Fields(b[i+1:])
	const first = 3 // the first field after ')' is field 3, the state
	const want = 22 // starttime
	if len(fields) <= want-first || len(fields[0]) != 1 {
		return 0, 0, errStat
	}
	start, err = strconv.ParseInt(string(fields[want-first]), 10, 64)
	if err != nil || start < 0 {
		return 0, 0, errStat
	}
	return start, fields[0][0], nil
}
