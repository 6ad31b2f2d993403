package bridge_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/nats-io/nats.go"

	"github.com/iox-go/iox"
	"github.com/iox-go/iox/bridge"
)

// Two namespaces stand for two hosts: a bridge on each, a NATS server between
// them. The publisher on "host A" and the subscriber on "host B" are ordinary
// iox channels; host B's bridge says when the service reaches it.
func Example() {
	ctx := context.Background()
	store, _ := os.MkdirTemp("", "iox-example")
	defer os.RemoveAll(store)
	srv, err := bridge.Listen(bridge.ListenConfig{Addr: "127.0.0.1:0", StoreDir: store})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer func() { srv.Shutdown(); srv.WaitForShutdown() }()

	hosts := []string{"exa_", "exb_"}
	nodes := make([]*iox.Node, 2)
	for i, prefix := range hosts {
		root := "/tmp/iox-example-" + strings.TrimSuffix(prefix, "_") + "/"
		defer iox.RemoveIsolation(prefix, root)
		if nodes[i], err = iox.NewNode(iox.WithIsolation(prefix, root)); err != nil {
			fmt.Println(err)
			return
		}
		defer nodes[i].Close()
	}
	connect := func() *nats.Conn {
		nc, err := nats.Connect(srv.ClientURL())
		if err != nil {
			panic(err)
		}
		return nc
	}
	ncA, ncB := connect(), connect()
	defer ncA.Close()
	defer ncB.Close()
	imported := make(chan struct{})
	a, _ := bridge.New(ctx, bridge.Config{Node: nodes[0], Conn: ncA, Name: "a", Export: []string{"sensors/*"}})
	defer a.Close()
	b, _ := bridge.New(ctx, bridge.Config{Node: nodes[1], Conn: ncB, Name: "b", Import: []string{"sensors/*"},
		OnStatus: func(s bridge.Status) {
			if s.Event == "start" {
				fmt.Println(s)
				close(imported)
			}
		}})
	defer b.Close()

	sub, _ := iox.OpenSub(ctx, nodes[1], "sensors/imu") // on host B
	defer sub.Close()
	pub, _ := iox.OpenPub(ctx, nodes[0], "sensors/imu") // on host A
	<-imported
	pub.Send(ctx, []byte("x=1 y=2"))
	m, _ := sub.Recv(ctx)
	fmt.Printf("host B received %q\n", m)
	pub.Close()
	// Output:
	// start import lossless "sensors/imu"
	// host B received "x=1 y=2"
}

// A pair across hosts: each bridge holds the end that faces its host's
// program, so the programs on "host A" and "host B" talk as two local ends do.
func Example_pair() {
	ctx := context.Background()
	store, _ := os.MkdirTemp("", "iox-example")
	defer os.RemoveAll(store)
	srv, err := bridge.Listen(bridge.ListenConfig{Addr: "127.0.0.1:0", StoreDir: store})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer func() { srv.Shutdown(); srv.WaitForShutdown() }()

	hosts := []string{"expa_", "expb_"}
	nodes := make([]*iox.Node, 2)
	for i, prefix := range hosts {
		root := "/tmp/iox-example-" + strings.TrimSuffix(prefix, "_") + "/"
		defer iox.RemoveIsolation(prefix, root)
		if nodes[i], err = iox.NewNode(iox.WithIsolation(prefix, root)); err != nil {
			fmt.Println(err)
			return
		}
		defer nodes[i].Close()
	}
	connect := func() *nats.Conn {
		nc, err := nats.Connect(srv.ClientURL())
		if err != nil {
			panic(err)
		}
		return nc
	}
	ncA, ncB := connect(), connect()
	defer ncA.Close()
	defer ncB.Close()
	imported := make(chan struct{})
	a, _ := bridge.New(ctx, bridge.Config{Node: nodes[0], Conn: ncA, Name: "pa", Export: []string{"chat"}})
	defer a.Close()
	b, _ := bridge.New(ctx, bridge.Config{Node: nodes[1], Conn: ncB, Name: "pb", Import: []string{"chat"},
		OnStatus: func(s bridge.Status) {
			if s.Event == "start" {
				fmt.Println(s)
				close(imported)
			}
		}})
	defer b.Close()

	endA, _ := iox.OpenPair(ctx, nodes[0], "chat") // on host A
	<-imported
	endB, _ := iox.OpenPair(ctx, nodes[1], "chat") // on host B
	defer endB.Close()
	endA.Send(ctx, []byte("ping"))
	m, _ := endB.Recv(ctx)
	fmt.Printf("host B received %q\n", m)
	endB.Send(ctx, []byte("pong"))
	m, _ = endA.Recv(ctx)
	fmt.Printf("host A received %q\n", m)
	endA.Close() // B reads what A sent, then a clean end
	_, err = endB.Recv(ctx)
	fmt.Println(errors.Is(err, iox.ErrPeerClosed))
	// Output:
	// start import pair "chat"
	// host B received "ping"
	// host A received "pong"
	// true
}
