// Command iox-demo runs two processes that talk through an iox pair: it starts a
// copy of itself as the "pong" side, plays ping-pong with it through shared
// memory, and prints each exchange and the measured round trips.
package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"time"

	"github.com/iox-go/iox"
)

const pairName = "iox/demo/ping-pong"

func main() {
	var err error
	if os.Getenv("IOX_DEMO_ROLE") == "pong" {
		err = pong(os.Getenv("IOX_DEMO_PREFIX"), os.Getenv("IOX_DEMO_ROOT"))
	} else {
		err = ping()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "iox-demo:", err)
		os.Exit(1)
	}
}

func ping() error {
	prefix := fmt.Sprintf("ioxdemo%d_", os.Getpid())
	root := fmt.Sprintf("/tmp/iox-demo-%d/", os.Getpid())
	defer iox.RemoveIsolation(prefix, root)

	node, err := iox.NewNode(iox.WithNodeName("demo-ping"), iox.WithIsolation(prefix, root))
	if err != nil {
		return err
	}
	defer node.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pair, err := iox.OpenPair(ctx, node, pairName)
	if err != nil {
		return err
	}
	defer pair.Close()

	peer := exec.Command(os.Args[0])
	peer.Env = append(os.Environ(), "IOX_DEMO_ROLE=pong", "IOX_DEMO_PREFIX="+prefix, "IOX_DEMO_ROOT="+root)
	peer.Stdout, peer.Stderr = os.Stdout, os.Stderr
	if err := peer.Start(); err != nil {
		return err
	}
	defer peer.Wait()

	fmt.Printf("ping (pid %d) and pong (pid %d) share the pair %q\n", os.Getpid(), peer.Process.Pid, pairName)
	for _, size := range []int{0, 5, 64, 4096, 1 << 20} {
		msg := bytes.Repeat([]byte{'i'}, size)
		start := time.Now()
		if err := pair.Send(ctx, msg); err != nil {
			return err
		}
		reply, err := pair.Recv(ctx)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(reply)
		fmt.Printf("ping %8d bytes -> pong %8d bytes  sha256 %x…  %v\n",
			size, len(reply), sum[:6], time.Since(start).Round(time.Microsecond))
		if !bytes.Equal(reply, bytes.ToUpper(msg)) {
			return fmt.Errorf("pong answered %d bytes that are not the upper-cased ping", len(reply))
		}
	}

	const rounds = 20000
	msg := make([]byte, 64)
	rtt := make([]time.Duration, rounds)
	for i := range rtt {
		start := time.Now()
		if err := pair.Send(ctx, msg); err != nil {
			return err
		}
		if _, err := pair.Recv(ctx); err != nil {
			return err
		}
		rtt[i] = time.Since(start)
	}
	sort.Slice(rtt, func(i, j int) bool { return rtt[i] < rtt[j] })
	fmt.Printf("%d round trips of 64 bytes: median %v, p99 %v\n",
		rounds, rtt[rounds/2].Round(100*time.Nanosecond), rtt[rounds*99/100].Round(100*time.Nanosecond))
	return pair.Close() // pong sees a clean end and exits
}

func pong(prefix, root string) error {
	node, err := iox.NewNode(iox.WithNodeName("demo-pong"), iox.WithIsolation(prefix, root))
	if err != nil {
		return err
	}
	defer node.Close()
	pair, err := iox.OpenPair(context.Background(), node, pairName)
	if err != nil {
		return err
	}
	defer pair.Close()
	for msg := range pair.In() {
		pair.Out() <- bytes.ToUpper(msg)
	}
	fmt.Printf("pong: ping closed the pair (%v); bye\n", pair.Err())
	return nil
}
