package iox_test

// The kernel's own byte paths between two processes, the baselines of the
// round-trip, throughput and fan-out benchmarks: a Unix stream socket (what
// most Go programs use), a Unix SOCK_SEQPACKET socket (message boundaries kept,
// no stream bookkeeping) and a pair of named pipes with a 1 MiB buffer (the
// cheapest path through the kernel for one-way bytes). Each benchmark reports
// iox against the Unix stream socket and against the best of the three at the
// same size (cmd/benchtable).

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// kernelPath names one of the kernel's byte paths; it is also the benchmark case
// name and the child's IOX_BENCH_KIND.
type kernelPath string

const (
	kernelUDS       kernelPath = "uds"       // Unix stream socket
	kernelSeqpacket kernelPath = "seqpacket" // Unix SOCK_SEQPACKET socket
	kernelPipe      kernelPath = "pipe"      // two named pipes, one per direction
)

// kernelPaths are the baselines, in the order the benchmarks run them.
var kernelPaths = []kernelPath{kernelUDS, kernelSeqpacket, kernelPipe}

// seqpacketRecord is the largest record written to a seqpacket socket: a
// record must fit the socket's send buffer whole (about 208 KiB by default), so
// larger messages go as several records, as a program using one would send them.
const seqpacketRecord = 64 << 10

// pipeBuffer is the buffer asked for each pipe (F_SETPIPE_SZ): 1 MiB, the most
// an unprivileged process may ask for by default, instead of 64 KiB.
const pipeBuffer = 1 << 20

// kernelConn is one end of a kernel path: it reads from one descriptor and
// writes to another (the same one for sockets).
type kernelConn struct {
	r      io.Reader
	w      io.Writer
	record int // > 0: largest write in one call (seqpacket)
	close  []io.Closer
}

func (k *kernelConn) Read(p []byte) (int, error) { return k.r.Read(p) }

// Write writes p whole, in records of at most k.record bytes when that is set.
func (k *kernelConn) Write(p []byte) (int, error) {
	if k.record == 0 {
		return k.w.Write(p)
	}
	n := 0
	for n < len(p) {
		m, err := k.w.Write(p[n:min(len(p), n+k.record)])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// Close closes both descriptors; the other end then reads end of stream.
func (k *kernelConn) Close() error {
	var errs []error
	for _, c := range k.close {
		errs = append(errs, c.Close())
	}
	return errors.Join(errs...)
}

// network is the net package's name of a socket path.
func (p kernelPath) network() string {
	if p == kernelSeqpacket {
		return "unixpacket"
	}
	return "unix"
}

func (p kernelPath) record() int {
	if p == kernelSeqpacket {
		return seqpacketRecord
	}
	return 0
}

// openKernel starts n children in role, each connected to this process by its
// own connection over path, and returns this side's ends once every child said
// "ready". The connections are closed when the benchmark ends, before the
// children are waited for.
func openKernel(b *testing.B, ns namespace, path kernelPath, role string, n int, env ...string) ([]*kernelConn, []*child) {
	b.Helper()
	conns := make([]*kernelConn, 0, n)
	children := make([]*child, 0, n)
	if path == kernelPipe {
		dir := b.TempDir()
		for i := range n {
			conn, c := openPipes(b, ns, filepath.Join(dir, strconv.Itoa(i)), role, env...)
			conns, children = append(conns, conn), append(children, c)
		}
		return conns, children
	}
	addr := udsAddr(ns, "kernel")
	ln, err := net.Listen(path.network(), addr)
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	for range n {
		c := spawn(b, ns, role, append([]string{"IOX_BENCH_KIND=" + string(path), "IOX_BENCH_ADDR=" + addr}, env...)...)
		ln.(*net.UnixListener).SetDeadline(time.Now().Add(20 * time.Second))
		sock, err := ln.Accept()
		if err != nil {
			b.Fatalf("accept: %v", err)
		}
		conn := &kernelConn{r: sock, w: sock, record: path.record(), close: []io.Closer{sock}}
		b.Cleanup(func() { conn.Close() })
		c.expect("ready")
		conns, children = append(conns, conn), append(children, c)
	}
	return conns, children
}

// openPipes makes the named pipes base+".down" (to the child) and base+".up"
// (from it), starts the child and returns this side's end. No open blocks: this
// side opens its ends first, the write end of ".down" for reading and writing
// (so that the child's read-only open finds a writer and its reads never see an
// end of stream before this side closes) and the read end of ".up" without
// waiting for a writer.
func openPipes(b *testing.B, ns namespace, base, role string, env ...string) (*kernelConn, *child) {
	b.Helper()
	for _, f := range []string{base + ".down", base + ".up"} {
		if err := unix.Mkfifo(f, 0o600); err != nil {
			b.Fatalf("mkfifo: %v", err)
		}
	}
	down, err := os.OpenFile(base+".down", os.O_RDWR, 0)
	if err != nil {
		b.Fatal(err)
	}
	up, err := os.OpenFile(base+".up", os.O_RDONLY|unix.O_NONBLOCK, 0)
	if err != nil {
		down.Close()
		b.Fatal(err)
	}
	conn := &kernelConn{r: up, w: down, close: []io.Closer{down, up}}
	b.Cleanup(func() { conn.Close() })
	for _, f := range []*os.File{down, up} {
		if err := growPipe(f); err != nil {
			b.Fatal(err)
		}
	}
	c := spawn(b, ns, role, append([]string{"IOX_BENCH_KIND=pipe", "IOX_BENCH_FIFO=" + base}, env...)...)
	c.expect("ready")
	return conn, c
}

// growPipe asks for a pipeBuffer-byte buffer on the pipe f.
func growPipe(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) { _, ferr = unix.FcntlInt(fd, unix.F_SETPIPE_SZ, pipeBuffer) }); err != nil {
		return err
	}
	if ferr != nil {
		return fmt.Errorf("F_SETPIPE_SZ %d: %w", pipeBuffer, ferr)
	}
	return nil
}

// dialKernel is the child's end of the path IOX_BENCH_KIND that openKernel
// made: a connection to IOX_BENCH_ADDR, or the named pipes IOX_BENCH_FIFO.
func dialKernel() (*kernelConn, error) {
	path := kernelPath(os.Getenv("IOX_BENCH_KIND"))
	switch path {
	case kernelUDS, kernelSeqpacket:
		sock, err := net.Dial(path.network(), os.Getenv("IOX_BENCH_ADDR"))
		if err != nil {
			return nil, err
		}
		return &kernelConn{r: sock, w: sock, record: path.record(), close: []io.Closer{sock}}, nil
	case kernelPipe:
		base := os.Getenv("IOX_BENCH_FIFO")
		down, err := os.OpenFile(base+".down", os.O_RDONLY, 0)
		if err != nil {
			return nil, err
		}
		up, err := os.OpenFile(base+".up", os.O_WRONLY, 0)
		if err != nil {
			down.Close()
			return nil, err
		}
		return &kernelConn{r: down, w: up, close: []io.Closer{down, up}}, nil
	}
	return nil, fmt.Errorf("unknown IOX_BENCH_KIND %q", path)
}
