// Command iox-demo runs two processes that talk through iox: it starts a copy of
// itself as a subscriber, publishes a few messages of growing size to it through
// shared memory, and prints what each side sent and received.
package main

import (
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"time"

	"github.com/iox-go/iox"
)

const service = "iox/demo"

var sizes = []int{0, 5, 64, 4096, 1 << 20}

func main() {
	prefix, root := os.Getenv("IOX_DEMO_PREFIX"), os.Getenv("IOX_DEMO_ROOT")
	var err error
	if os.Getenv("IOX_DEMO_ROLE") == "subscriber" {
		err = subscriber(prefix, root)
	} else {
		err = publisher()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "iox-demo:", err)
		os.Exit(1)
	}
}

func message(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i + n)
	}
	return b
}

func publisher() error {
	prefix := fmt.Sprintf("ioxdemo%d_", os.Getpid())
	root := fmt.Sprintf("/tmp/iox-demo-%d/", os.Getpid())
	defer iox.RemoveIsolation(prefix, root)

	node, err := iox.NewNode(iox.WithNodeName("demo-publisher"), iox.WithIsolation(prefix, root))
	if err != nil {
		return err
	}
	defer node.Close()
	svc, err := node.PublishSubscribe(service, iox.BufferSize(len(sizes)), iox.SafeOverflow(false))
	if err != nil {
		return err
	}
	defer svc.Close()
	pub, err := svc.Publisher()
	if err != nil {
		return err
	}
	defer pub.Close()

	child := exec.Command(os.Args[0])
	child.Env = append(os.Environ(), "IOX_DEMO_ROLE=subscriber", "IOX_DEMO_PREFIX="+prefix, "IOX_DEMO_ROOT="+root)
	child.Stdout, child.Stderr = os.Stdout, os.Stderr
	if err := child.Start(); err != nil {
		return err
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, subs, err := svc.Counts()
		if err != nil {
			return err
		}
		if subs > 0 {
			break
		}
		if time.Now().After(deadline) {
			child.Process.Kill()
			child.Wait()
			return fmt.Errorf("subscriber did not appear")
		}
		time.Sleep(time.Millisecond)
	}
	for _, n := range sizes {
		msg := message(n)
		if _, err := pub.Send(msg); err != nil {
			return err
		}
		fmt.Printf("publisher  (pid %d): sent     %8d bytes  sha256 %x\n", os.Getpid(), n, sha256.Sum256(msg))
	}
	return child.Wait() // keep the publisher until the subscriber has read everything
}

func subscriber(prefix, root string) error {
	node, err := iox.NewNode(iox.WithNodeName("demo-subscriber"), iox.WithIsolation(prefix, root))
	if err != nil {
		return err
	}
	defer node.Close()
	svc, err := node.PublishSubscribe(service, iox.OpenOnly())
	if err != nil {
		return err
	}
	defer svc.Close()
	sub, err := svc.Subscriber()
	if err != nil {
		return err
	}
	defer sub.Close()
	batch := iox.NewBatch(64<<10, 8)
	deadline := time.Now().Add(10 * time.Second)
	for got := 0; got < len(sizes); {
		k, err := sub.ReceiveBatch(batch)
		if err != nil {
			return err
		}
		for i := 0; i < k; i++ {
			m := batch.Message(i)
			fmt.Printf("subscriber (pid %d): received %8d bytes  sha256 %x\n", os.Getpid(), len(m), sha256.Sum256(m))
		}
		got += k
		if k == 0 {
			if time.Now().After(deadline) {
				return fmt.Errorf("received %d of %d messages", got, len(sizes))
			}
			time.Sleep(time.Millisecond)
		}
	}
	return nil
}
