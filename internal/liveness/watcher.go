//go:build linux

// Package liveness detects that a peer process has exited, event-driven and
// without timers, so that thousands of idle channels cost no CPU.
//
// A Watcher opens a pidfd (pidfd_open, Linux 5.3+) for every watched process
// and registers it in one private epoll instance. That epoll descriptor is
// itself handed to the Go runtime's network poller: it becomes readable when
// any of its pidfds is, and a pidfd becomes readable when its process exits.
// One goroutine per Watcher waits there, parked in the runtime like a network
// read, with no timer and no periodic wake-up; it exists only while something
// is watched.
//
// A pid alone does not identify a process, since pids are reused. Every watch
// therefore carries an identity guard, created: a CLOCK_MONOTONIC time at which
// the caller knew the peer existed. A process under the same pid that started
// later is a stranger, which means the peer is gone (see Alive).
package liveness

import (
	"math"
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Watcher waits for processes to exit in the Go runtime's network poller.
// One Watcher is meant to be shared by all channels of a process: it costs one
// epoll descriptor, one pidfd per watched process (shared by all watches of
// that process) and one goroutine while at least one watch is pending.
// The zero value is not usable; call New.
type Watcher struct {
	wg sync.WaitGroup // goroutines that may still call fn or touch the descriptors

	mu      sync.Mutex
	closed  bool
	running bool             // a goroutine serves the epoll and has not yet decided to exit
	epfd    int              // the epoll instance holding every pidfd, owned by file
	file    *os.File         // epfd, registered with the runtime poller; nil until the first Watch
	conn    syscall.RawConn  // file's raw access; set once with file
	byFD    map[int32]*entry // every pidfd registered in epfd
	byPid   map[int]*entry   // per pid, the entry that new watches of that pid may join
	events  [64]unix.EpollEvent
}

// entry is one pidfd in the epoll and the watches waiting on it.
type entry struct {
	pid     int
	fd      int
	watches map[*watch]struct{}
}

// watch is one call of Watch.
type watch struct {
	fn   func()
	e    *entry // the entry it waits on; nil once it fired or was cancelled, or if it fires promptly
	done bool   // fn has been started or never will be
}

// aLongTimeAgo is a read deadline in the past: setting it wakes the goroutine
// parked in the poller at once, without arming a timer.
var aLongTimeAgo = time.Unix(1, 0)

// New returns a Watcher. It opens no descriptor and starts no goroutine until
// the first Watch.
func New() *Watcher {
	return &Watcher{epfd: -1}
}

// Watch calls fn once when the process pid exits. fn runs on the watcher's
// goroutine and must not block (nor call Close); it may call Watch and cancel.
//
// created is the identity guard: the CLOCK_MONOTONIC time, in nanoseconds, at
// which the caller knew the process already existed (for example when the peer
// created a shared object). If the process now running under pid started after
// created (plus a slack of 3 clock ticks, the resolution of the start time in
// /proc/<pid>/stat), the pid has been reused: the original process is gone and
// fn is called promptly. So it is when no process exists under pid (or pid is
// not positive, or its /proc/<pid>/stat cannot be read). A prompt call runs on
// a new short-lived goroutine, not on the caller's, so that fn cannot re-enter
// the caller's locks; it may run before Watch returns.
//
// The exit is seen as soon as the process terminates, before its parent reaps
// it: a zombie counts as exited.
//
// ok is false when event-driven watching is impossible here: pidfd_open fails
// with anything but ESRCH (ENOSYS before Linux 5.3, EPERM under a seccomp
// filter, EMFILE, ...), or the watcher is closed. fn is then never called and
// the caller should fall back to polling Alive.
//
// cancel stops the watch. It is idempotent, and safe after fn ran and
// concurrently with fn. Once cancel returns, fn has either started already or
// will never be called; cancel does not wait for a running fn.
func (w *Watcher) Watch(pid int, created int64, fn func()) (cancel func(), ok bool) {
	if fn == nil {
		fn = func() {}
	}
	if pid <= 0 || pid > math.MaxInt32 {
		return w.soon(fn)
	}
	// Open the pidfd before checking the guard: the pidfd pins the process
	// that holds pid now, and a stat read afterwards that shows a start no
	// later than created can only be of that same process (any later holder
	// of the pid started after the pidfd was opened, hence after created).
	fd, err := unix.PidfdOpen(pid, 0)
	if err == unix.ESRCH {
		return w.soon(fn)
	}
	if err != nil {
		return nop, false
	}
	// Any failure to read the stat (normally ENOENT: the process was reaped
	// meanwhile) counts as gone, as in Alive.
	if start, _, err := readStat(pid); err != nil || !startedBy(start, created) {
		unix.Close(fd)
		return w.soon(fn)
	}

	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed || w.openLocked() != nil {
		unix.Close(fd)
		return nop, false
	}
	e := w.byPid[pid]
	if e != nil && !exited(e.fd) {
		// e's process is still running, so it held pid all along, and the
		// pidfd opened above refers to it too: share e's pidfd.
		unix.Close(fd)
	} else {
		// No entry, or its process exited (and perhaps pid has been reused
		// since): register this pidfd as a new entry. A dead old entry stays
		// in the epoll until the goroutine fires it.
		ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(fd)}
		if err := unix.EpollCtl(w.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
			unix.Close(fd)
			return nop, false
		}
		e = &entry{pid: pid, fd: fd, watches: make(map[*watch]struct{})}
		w.byFD[int32(fd)] = e
		w.byPid[pid] = e
	}
	wt := &watch{fn: fn, e: e}
	e.watches[wt] = struct{}{}
	if !w.running {
		w.startLocked()
	}
	return func() { w.cancel(wt) }, true
}

// Close stops the watcher's goroutine, if any, waits for it to exit and closes
// the descriptors. Pending watches are dropped without calling fn, and no fn
// runs after Close returns. Close must not be called from fn. Later calls of
// Close do nothing; later calls of Watch report ok == false.
func (w *Watcher) Close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil
	}
	w.closed = true
	for _, e := range w.byFD {
		for wt := range e.watches {
			wt.done, wt.e, wt.fn = true, nil, nil
		}
		unix.Close(e.fd) // closing a pidfd also removes it from the epoll
	}
	w.byFD, w.byPid = nil, nil
	if w.running {
		w.file.SetReadDeadline(aLongTimeAgo)
	}
	f := w.file
	w.mu.Unlock()

	w.wg.Wait()
	if f == nil {
		return nil
	}
	return f.Close()
}

// nop is the cancel function of a watch that does not exist.
func nop() {}

// soon calls fn on a new goroutine, unless cancelled first or the watcher is
// closed: the answer for a process that is already gone.
func (w *Watcher) soon(fn func()) (cancel func(), ok bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nop, false
	}
	wt := &watch{fn: fn}
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		w.fire([]*watch{wt})
	}()
	return func() { w.cancel(wt) }, true
}

// cancel implements the cancel function returned by Watch.
func (w *Watcher) cancel(wt *watch) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if wt.done {
		return
	}
	wt.done, wt.fn = true, nil
	e := wt.e
	if e == nil {
		return
	}
	wt.e = nil
	delete(e.watches, wt)
	if len(e.watches) > 0 {
		return
	}
	w.removeLocked(e)
	if len(w.byFD) == 0 && w.running {
		// Nothing left to watch: wake the goroutine so that it exits.
		w.file.SetReadDeadline(aLongTimeAgo)
	}
}

// openLocked creates the epoll instance and hands it to the runtime poller,
// once per Watcher.
func (w *Watcher) openLocked() error {
	if w.file != nil {
		return nil
	}
	fd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return err
	}
	// os.NewFile registers a non-blocking descriptor with the poller.
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return err
	}
	f := os.NewFile(uintptr(fd), "liveness-epoll")
	// Only a descriptor that the poller accepted has deadlines. Without the
	// poller, waiting would mean blocking in a syscall: refuse instead.
	if err := f.SetReadDeadline(time.Time{}); err != nil {
		f.Close()
		return err
	}
	conn, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return err
	}
	w.epfd, w.file, w.conn = fd, f, conn
	w.byFD = make(map[int32]*entry)
	w.byPid = make(map[int]*entry)
	return nil
}

// startLocked starts the goroutine that serves the epoll.
func (w *Watcher) startLocked() {
	w.running = true
	// Clear a wake-up left by a previous goroutine's stop request.
	w.file.SetReadDeadline(time.Time{})
	w.wg.Add(1)
	go w.run()
}

// run waits in the runtime poller until the epoll has ready pidfds, fires
// their watches and repeats, until no watch is left or the watcher is closed.
// Exiting is decided under the mutex, together with running = false, so that
// a concurrent Watch either is seen here or starts a new goroutine.
func (w *Watcher) run() {
	defer w.wg.Done()
	for {
		var fire []*watch
		err := w.conn.Read(func(uintptr) bool {
			var stop bool
			fire, stop = w.drain()
			// false: nothing ready, the poller waits for the next edge.
			return stop || len(fire) > 0
		})
		w.fire(fire)

		w.mu.Lock()
		if w.closed || len(w.byFD) == 0 {
			w.running = false
			w.mu.Unlock()
			return
		}
		if err != nil {
			// Woken to stop (deadline), but a new Watch came first: go on.
			// Read fails only with that deadline; the watcher's own
			// descriptors are closed only after this goroutine exits.
			w.file.SetReadDeadline(time.Time{})
		}
		w.mu.Unlock()
	}
}

// drain collects, with non-blocking epoll_wait calls, every pidfd that is
// ready, removes it and returns its watches. stop reports that nothing is left
// to watch. The runtime registers the epoll descriptor edge-triggered, so the
// ready list is emptied completely before waiting again.
func (w *Watcher) drain() (fire []*watch, stop bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil, true
	}
	for {
		n, err := unix.EpollWait(w.epfd, w.events[:], 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			break
		}
		for _, ev := range w.events[:n] {
			// Every pidfd in the epoll is in byFD: both change together,
			// under the mutex, as does this epoll_wait.
			e := w.byFD[ev.Fd]
			if e == nil {
				continue
			}
			for wt := range e.watches {
				wt.e = nil
				fire = append(fire, wt)
			}
			w.removeLocked(e)
		}
		if n < len(w.events) {
			break
		}
	}
	return fire, len(w.byFD) == 0
}

// fire calls the fn of each watch that was neither cancelled nor dropped by
// Close in the meantime, without holding the mutex, so that fn may call Watch
// or cancel.
func (w *Watcher) fire(list []*watch) {
	for _, wt := range list {
		w.mu.Lock()
		fn := wt.fn
		run := !wt.done && !w.closed
		wt.done, wt.fn = true, nil // the cancel func must not keep fn alive
		w.mu.Unlock()
		if run {
			fn()
		}
	}
}

// removeLocked takes an entry out of the epoll and closes its pidfd.
func (w *Watcher) removeLocked(e *entry) {
	delete(w.byFD, int32(e.fd))
	if w.byPid[e.pid] == e {
		delete(w.byPid, e.pid)
	}
	unix.EpollCtl(w.epfd, unix.EPOLL_CTL_DEL, e.fd, nil)
	unix.Close(e.fd)
}

// exited reports whether the process of a pidfd has exited (its pidfd is
// readable), without blocking. An error counts as exited: the caller then
// merely opens a pidfd of its own.
func exited(pidfd int) bool {
	p := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
	n, err := unix.Poll(p, 0)
	return err != nil || n > 0
}
