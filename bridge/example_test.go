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

// hosts is what both examples set up: two namespaces that stand for two
// hosts, a NATS server between them, and a bridge on each. Host A's bridge
// exports what matches export; host B's imports it and reports each service
// it starts relaying on imported.
type hosts struct {
	a, b     *iox.Node
	imported chan struct{}
	closers  []func()
}

func newHosts(ctx context.Context, name, export string) (*hosts, error) {
	h := &hosts{imported: make(chan struct{})}
	store, err := os.MkdirTemp("", "iox-example")
	if err != nil {
		return nil, err
	}
	h.closers = append(h.closers, func() { os.RemoveAll(store) })
	srv, err := bridge.Listen(bridge.ListenConfig{Addr: "127.0.0.1:0", StoreDir: store})
	if err != nil {
		h.close()
		return nil, err
	}
	h.closers = append(h.closers, func() { srv.Shutdown(); srv.WaitForShutdown() })
	for _, host := range []struct {
		node   **iox.Node
		prefix string
		cfg    bridge.Config
	}{
		{&h.a, name + "a_", bridge.Config{Name: name + "a", Export: []string{export}}},
		{&h.b, name + "b_", bridge.Config{Name: name + "b", Import: []string{export}, OnStatus: func(s bridge.Status) {
			if s.Event == "start" {
				fmt.Println(s)
				close(h.imported)
			}
		}}},
	} {
		root := "/tmp/iox-example-" + strings.TrimSuffix(host.prefix, "_") + "/"
		h.closers = append(h.closers, func() { iox.RemoveIsolation(host.prefix, root) })
		node, err := iox.NewNode(iox.WithIsolation(host.prefix, root))
		if err != nil {
			h.close()
			return nil, err
		}
		*host.node = node
		h.closers = append(h.closers, func() { node.Close() })
		nc, err := nats.Connect(srv.ClientURL())
		if err != nil {
			h.close()
			return nil, err
		}
		h.closers = append(h.closers, nc.Close)
		host.cfg.Node, host.cfg.Conn = node, nc
		br, err := bridge.New(ctx, host.cfg)
		if err != nil {
			h.close()
			return nil, err
		}
		h.closers = append(h.closers, func() { br.Close() })
	}
	return h, nil
}

// close ends everything newHosts started, last first.
func (h *hosts) close() {
	for i := len(h.closers) - 1; i >= 0; i-- {
		h.closers[i]()
	}
}

// Two namespaces stand for two hosts: a bridge on each, a NATS server between
// them. The publisher on "host A" and the subscriber on "host B" are ordinary
// iox channels; host B's bridge says when the service reaches it.
func Example() {
	ctx := context.Background()
	h, err := newHosts(ctx, "ex", "sensors/*")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer h.close()

	sub, _ := iox.OpenSub(ctx, h.b, "sensors/imu") // on host B
	defer sub.Close()
	pub, _ := iox.OpenPub(ctx, h.a, "sensors/imu") // on host A
	<-h.imported
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
	h, err := newHosts(ctx, "exp", "chat")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer h.close()

	endA, _ := iox.OpenPair(ctx, h.a, "chat") // on host A
	<-h.imported
	endB, _ := iox.OpenPair(ctx, h.b, "chat") // on host B
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
