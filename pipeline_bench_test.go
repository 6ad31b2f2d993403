package iox_test

// BenchmarkPipeline: work spread from this process over pullers in child
// processes, against a Unix-socket dispatcher that does the same job (each
// message to exactly one worker, whichever has room, lossless).

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"

	"github.com/iox-go/iox"
)

const pipeMsgSize = 64

func init() {
	children["bench-pipe-pull"] = childBenchPull
	children["bench-pipe-uds"] = childBenchUDSWorker
}

// BenchmarkPipeline reports the time per message from Send until a puller took
// it (the pusher's Close confirms that every message was taken), with 1 and 4
// pullers, each in its own process.
func BenchmarkPipeline(b *testing.B) {
	for _, workers := range []int{1, 4} {
		b.Run(fmt.Sprintf("pullers=%d/iox", workers), func(b *testing.B) { benchPipeIox(b, workers) })
		b.Run(fmt.Sprintf("pullers=%d/uds", workers), func(b *testing.B) { benchPipeUDS(b, workers) })
	}
}

var benchPipeRun int

func benchPipeIox(b *testing.B, workers int) {
	ns := newNamespace(b)
	node := ns.node(b)
	benchPipeRun++
	name := fmt.Sprintf("bench/pipe%d", benchPipeRun)
	ctx := context.Background()
	push, err := iox.OpenPush(ctx, node, name, iox.WithLinger(60e9))
	if err != nil {
		b.Fatal(err)
	}
	kids := make([]*child, workers)
	for i := range kids {
		kids[i] = spawn(b, ns, "bench-pipe-pull", "IOX_SERVICE="+name)
		kids[i].expect("ready")
	}
	if n := push.Pullers(); n != workers { // each child said ready after its hello
		b.Fatalf("the pusher knows %d pullers, want %d", n, workers)
	}
	msg := make([]byte, pipeMsgSize)
	b.SetBytes(pipeMsgSize)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		binary.LittleEndian.PutUint64(msg, uint64(i))
		if err := push.Send(ctx, msg); err != nil {
			b.Fatal(err)
		}
	}
	if err := push.Close(); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	total := 0
	for _, k := range kids {
		k.say("close")
		n, _ := strconv.Atoi(k.expectPrefix("count"))
		total += n
		k.wait()
	}
	if total != b.N {
		b.Fatalf("pullers took %d messages, %d were sent", total, b.N)
	}
}

// childBenchPull receives from the pipeline IOX_SERVICE until the parent says
// close, then says how many messages it took.
func childBenchPull() error {
	node, err := nsFromEnv().childNode()
	if err != nil {
		return err
	}
	defer node.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p, err := iox.OpenPull(ctx, node, os.Getenv("IOX_SERVICE"))
	if err != nil {
		return err
	}
	fmt.Println("ready")
	count := make(chan int, 1)
	go func() {
		n := 0
		for {
			m, err := p.Recv(ctx)
			if err != nil {
				count <- n
				return
			}
			p.Recycle(m)
			n++
		}
	}()
	parentSays()
	cancel()
	n := <-count
	p.Close()
	fmt.Println("count", n)
	return nil
}

// benchPipeUDS is the baseline: a dispatcher with one Unix stream socket per
// worker process. A goroutine per worker takes the next message from a shared
// Go channel and writes it to its socket, so a worker whose socket is full
// gets nothing more until it has read; after the last message the dispatcher
// half-closes each socket and the workers answer with how many they read.
func benchPipeUDS(b *testing.B, workers int) {
	ns := newNamespace(b)
	dir := b.TempDir()
	addr := filepath.Join(dir, "d.sock")
	ln, err := net.Listen("unix", addr)
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	conns := make([]*net.UnixConn, workers)
	kids := make([]*child, workers)
	for i := range kids {
		kids[i] = spawn(b, ns, "bench-pipe-uds", "IOX_BENCH_ADDR="+addr)
		c, err := ln.Accept()
		if err != nil {
			b.Fatal(err)
		}
		conns[i] = c.(*net.UnixConn)
		kids[i].expect("ready")
	}
	work := make(chan []byte, 64)
	free := make(chan []byte, 256)
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for m := range work {
				if _, err := c.Write(m); err != nil {
					errs <- err
					return
				}
				select {
				case free <- m:
				default:
				}
			}
			c.CloseWrite()
		}()
	}
	b.SetBytes(pipeMsgSize)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var m []byte
		select {
		case m = <-free:
		default:
			m = make([]byte, pipeMsgSize)
		}
		binary.LittleEndian.PutUint64(m, uint64(i))
		work <- m
	}
	close(work)
	wg.Wait()
	total := 0
	for _, c := range conns {
		var buf [8]byte
		if _, err := io.ReadFull(c, buf[:]); err != nil {
			b.Fatal(err)
		}
		total += int(binary.LittleEndian.Uint64(buf[:]))
	}
	b.StopTimer()
	select {
	case err := <-errs:
		b.Fatal(err)
	default:
	}
	for i, c := range conns {
		c.Close()
		kids[i].wait()
	}
	if total != b.N {
		b.Fatalf("workers read %d messages, %d were sent", total, b.N)
	}
}

// childBenchUDSWorker reads messages from the dispatcher until it half-closes,
// then answers with how many it read.
func childBenchUDSWorker() error {
	conn, err := net.Dial("unix", os.Getenv("IOX_BENCH_ADDR"))
	if err != nil {
		return err
	}
	defer conn.Close()
	fmt.Println("ready")
	r := bufio.NewReaderSize(conn, 64<<10)
	buf := make([]byte, pipeMsgSize)
	n := uint64(0)
	for {
		if _, err := io.ReadFull(r, buf); err != nil {
			if !errors.Is(err, io.EOF) {
				return err
			}
			break
		}
		n++
	}
	var out [8]byte
	binary.LittleEndian.PutUint64(out[:], n)
	_, err = conn.Write(out[:])
	return err
}
