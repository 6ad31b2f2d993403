// Command newuser is the program of a new user of iox: it imports the module,
// opens a pair, starts a copy of itself as the other end, and plays ping-pong
// through shared memory. Each process says where its native library came from.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/iox-go/iox"
	"github.com/iox-go/iox/loader"
)

const rounds = 1000

func main() {
	var err error
	if os.Getenv("NEWUSER_ROLE") == "pong" {
		err = pong()
	} else {
		err = ping()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "newuser:", err)
		os.Exit(1)
	}
}

func open(ctx context.Context, role string) (*iox.Node, *iox.Pair[[]byte], error) {
	node, err := iox.NewNode(iox.WithNodeName(role),
		iox.WithIsolation(os.Getenv("NEWUSER_PREFIX"), os.Getenv("NEWUSER_ROOT")))
	if err != nil {
		return nil, nil, err
	}
	for _, lib := range loader.Loaded() {
		fmt.Printf("%s loaded %s %s\n", role, lib.Source, lib.Path)
	}
	pair, err := iox.OpenPair(ctx, node, "newuser")
	if err != nil {
		node.Close()
		return nil, nil, err
	}
	return node, pair, nil
}

func ping() error {
	// the namespace's files, once both processes are done with it
	defer iox.RemoveIsolation(os.Getenv("NEWUSER_PREFIX"), os.Getenv("NEWUSER_ROOT"))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	node, pair, err := open(ctx, "ping")
	if err != nil {
		return err
	}
	defer node.Close()
	peer := exec.CommandContext(ctx, os.Args[0])
	peer.Env = append(os.Environ(), "NEWUSER_ROLE=pong")
	peer.Stdout, peer.Stderr = os.Stdout, os.Stderr
	if err := peer.Start(); err != nil {
		return err
	}
	for i := range rounds {
		if err := pair.Send(ctx, fmt.Appendf(nil, "ping %d", i)); err != nil {
			return err
		}
		reply, err := pair.Recv(ctx)
		if err != nil {
			return err
		}
		if want := fmt.Sprintf("pong %d", i); string(reply) != want {
			return fmt.Errorf("got %q, want %q", reply, want)
		}
	}
	fmt.Println("round trips:", rounds)
	if err := pair.Close(); err != nil {
		return err
	}
	return peer.Wait()
}

func pong() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	node, pair, err := open(ctx, "pong")
	if err != nil {
		return err
	}
	defer node.Close()
	for {
		msg, err := pair.Recv(ctx)
		if errors.Is(err, iox.ErrPeerClosed) {
			return pair.Close()
		}
		if err != nil {
			return err
		}
		if err := pair.Send(ctx, []byte(strings.Replace(string(msg), "ping", "pong", 1))); err != nil {
			return err
		}
	}
}
