package iox_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"time"

	"github.com/iox-go/iox"
)

// The examples run two processes: this one, and a copy of the test binary that
// plays the other side (see peer below). Both isolate their iceoryx2 files with
// the same prefix and root folder.

func init() {
	children["example-echo"] = exampleEchoPeer
	children["example-publisher"] = examplePublisherPeer
	children["example-events"] = exampleEventsPeer
	children["example-server"] = exampleServerPeer
	children["example-worker"] = exampleWorkerPeer
	children["example-second-pusher"] = exampleSecondPusherPeer
}

// peer starts this binary again in role and returns the node of a private
// namespace shared with it, and a function that waits for the peer and cleans up.
func peer(role string) (*iox.Node, func()) {
	prefix := fmt.Sprintf("ex%d_", os.Getpid())
	root := fmt.Sprintf("/tmp/iox-example-%d/", os.Getpid())
	node, err := iox.NewNode(iox.WithIsolation(prefix, root))
	if err != nil {
		panic(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "IOX_CHILD="+role, "IOX_TEST_PREFIX="+prefix, "IOX_TEST_ROOT="+root)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		panic(err)
	}
	return node, func() {
		cmd.Wait()
		node.Close()
		iox.RemoveIsolation(prefix, root)
	}
}

// A pair is a bidirectional channel between two processes: here the other process
// answers each message in upper case.
func ExamplePair() {
	node, wait := peer("example-echo")
	defer wait()

	ctx := context.Background()
	pair, err := iox.OpenPair(ctx, node, "example/echo")
	if err != nil {
		panic(err)
	}
	for _, word := range []string{"zero", "copy"} {
		if err := pair.Send(ctx, []byte(word)); err != nil { // waits for the peer if it is not there yet
			panic(err)
		}
		reply, err := pair.Recv(ctx)
		if err != nil {
			panic(err)
		}
		fmt.Printf("%s -> %s\n", word, reply)
	}
	pair.Out() <- []byte("channels") // the same as Go channels
	fmt.Printf("channels -> %s\n", <-pair.In())
	// Close confirms that the peer took every message, and the peer sees a
	// clean end.
	fmt.Println("close:", pair.Close())
	// Output:
	// zero -> ZERO
	// copy -> COPY
	// channels -> CHANNELS
	// close: <nil>
}

func exampleEchoPeer() error {
	node, err := nsFromEnv().childNode()
	if err != nil {
		return err
	}
	defer node.Close()
	pair, err := iox.OpenPair(context.Background(), node, "example/echo")
	if err != nil {
		return err
	}
	defer pair.Close()
	for msg := range pair.In() { // ends when the other side closes
		pair.Out() <- bytes.ToUpper(msg)
	}
	return nil
}

// A subscriber receives, in order, everything a publisher in another process
// publishes after the subscriber joined; select combines it with a timeout.
func ExampleOpenSub() {
	node, wait := peer("example-publisher")
	defer wait()

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	sub, err := iox.OpenSub(ctx, node, "example/prices")
	if err != nil {
		panic(err)
	}
	defer sub.Close()
	for i := 0; i < 3; i++ {
		select {
		case msg := <-sub.In():
			fmt.Println(string(msg))
		case <-ctx.Done():
			fmt.Println("timed out")
			return
		}
	}
	// Output:
	// price 1
	// price 2
	// price 3
}

func examplePublisherPeer() error {
	node, err := nsFromEnv().childNode()
	if err != nil {
		return err
	}
	defer node.Close()
	ctx := context.Background()
	pub, err := iox.OpenPub(ctx, node, "example/prices")
	if err != nil {
		return err
	}
	defer pub.Close() // waits until the subscriber has taken everything
	if !waitUntil(20*time.Second, func() bool { return pub.Subscribers() > 0 }) {
		return errors.New("no subscriber")
	}
	for i := 1; i <= 3; i++ {
		if err := pub.Send(ctx, []byte(fmt.Sprintf("price %d", i))); err != nil {
			return err
		}
	}
	return nil
}

// Events carry bare event ids between processes, as a channel.
func ExampleOpenEvents() {
	node, wait := peer("example-events")
	defer wait()

	ctx := context.Background()
	ev, err := iox.OpenEvents(ctx, node, "example/doorbell")
	if err != nil {
		panic(err)
	}
	defer ev.Close()
	for id := range ev.In() {
		fmt.Println("rang", id)
		if id == 3 {
			break
		}
	}
	// Output:
	// rang 3
}

func exampleEventsPeer() error {
	node, err := nsFromEnv().childNode()
	if err != nil {
		return err
	}
	defer node.Close()
	svc, err := node.Event("example/doorbell")
	if err != nil {
		return err
	}
	defer svc.Close()
	n, err := svc.Notifier()
	if err != nil {
		return err
	}
	defer n.Close()
	if !waitUntil(20*time.Second, func() bool { // until the listener is there
		var reached int
		reached, err = n.Notify(3)
		return err != nil || reached > 0
	}) {
		return errors.New("no listener")
	}
	return err
}

// The ports are the layer below the channels: a publisher copies each message into
// shared memory in one call; a subscriber copies it out, or borrows it in place.
func ExamplePublisher() {
	node, err := iox.NewNode(iox.WithIsolation(fmt.Sprintf("exp%d_", os.Getpid()), fmt.Sprintf("/tmp/iox-example-p%d/", os.Getpid())))
	if err != nil {
		panic(err)
	}
	defer iox.RemoveIsolation(fmt.Sprintf("exp%d_", os.Getpid()), fmt.Sprintf("/tmp/iox-example-p%d/", os.Getpid()))
	defer node.Close()
	svc, err := node.PublishSubscribe("example/ports", iox.BufferSize(4))
	if err != nil {
		panic(err)
	}
	defer svc.Close()
	sub, _ := svc.Subscriber()
	defer sub.Close()
	pub, _ := svc.Publisher()
	defer pub.Close()

	pub.Send([]byte("copied"))
	loan, _ := pub.Loan(len("written in place"))
	copy(loan.Bytes(), "written in place")
	loan.Send()

	buf := make([]byte, 64)
	n, _, _ := sub.TryReceive(buf)
	fmt.Println(string(buf[:n]))
	sample, _, _ := sub.Borrow()
	fmt.Println(string(sample.Bytes()))
	sample.Release()
	// Output:
	// copied
	// written in place
}

// Request/response: the other process serves calls, here the length of each
// word, with handlers that run on up to four goroutines at once.
func ExampleOpenClient() {
	node, wait := peer("example-server")
	defer wait()

	ctx := context.Background()
	client, err := iox.OpenClient(ctx, node, "example/len", iox.Raw{}, iox.Raw{})
	if err != nil {
		panic(err)
	}
	for _, word := range []string{"zero", "copy", "calls"} {
		n, err := client.Call(ctx, []byte(word)) // waits for the server if it is not there yet
		if err != nil {
			panic(err)
		}
		fmt.Printf("%s -> %s\n", word, n)
	}
	bye, err := client.Call(ctx, []byte("quit"))
	fmt.Println(string(bye), err)
	fmt.Println("close:", client.Close())
	// Output:
	// zero -> 4
	// copy -> 4
	// calls -> 5
	// bye <nil>
	// close: <nil>
}

func exampleServerPeer() error {
	node, err := nsFromEnv().childNode()
	if err != nil {
		return err
	}
	defer node.Close()
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	server, err := iox.OpenServer(context.Background(), node, "example/len", iox.Raw{}, iox.Raw{})
	if err != nil {
		return err
	}
	defer server.Close()
	err = server.Serve(ctx, 4, func(_ context.Context, req []byte) ([]byte, error) {
		if string(req) == "quit" {
			stop() // Serve returns once this handler has answered
			return []byte("bye"), nil
		}
		return []byte(strconv.Itoa(len(req))), nil
	})
	if !errors.Is(err, context.Canceled) {
		return err
	}
	for server.Clients() > 0 { // the client may not have read "bye" yet
		time.Sleep(time.Millisecond)
	}
	return nil
}

// A pipeline hands each message to exactly one of its pullers, whichever has
// room. Here jobs go to a worker process, which pushes each job's square back
// on a second pipeline; Close on the pushing side confirms that every job was
// taken.
func ExamplePush() {
	node, wait := peer("example-worker")
	defer wait()

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	squares, err := iox.OpenPull(ctx, node, "example/squares")
	if err != nil {
		panic(err)
	}
	defer squares.Close()
	jobs, err := iox.OpenPush(ctx, node, "example/jobs")
	if err != nil {
		panic(err)
	}
	for i := 1; i <= 10; i++ { // the jobs wait in the pusher until a worker is there
		if err := jobs.Send(ctx, []byte{byte(i)}); err != nil {
			panic(err)
		}
	}
	sum := 0
	for i := 0; i < 10; i++ {
		sq, err := squares.Recv(ctx)
		if err != nil {
			panic(err)
		}
		sum += int(sq[0])
	}
	fmt.Println("sum of the squares:", sum)
	fmt.Println("every job taken:", jobs.Close() == nil)
	// Output:
	// sum of the squares: 385
	// every job taken: true
}

// exampleWorkerPeer takes ten jobs and pushes back their squares.
func exampleWorkerPeer() error {
	node, err := nsFromEnv().childNode()
	if err != nil {
		return err
	}
	defer node.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	jobs, err := iox.OpenPull(ctx, node, "example/jobs")
	if err != nil {
		return err
	}
	defer jobs.Close()
	squares, err := iox.OpenPush(ctx, node, "example/squares")
	if err != nil {
		return err
	}
	for i := 0; i < 10; i++ {
		job, err := jobs.Recv(ctx)
		if err != nil {
			return err
		}
		if err := squares.Send(ctx, []byte{job[0] * job[0]}); err != nil {
			return err
		}
	}
	return squares.Close() // nil once the other process took every square
}

// Several pushers may feed one pipeline. Here this process and another one
// each push five numbers; the puller gets all ten, each once, and each
// pusher's Close confirms that its numbers were taken.
func ExamplePush_severalPushers() {
	node, wait := peer("example-second-pusher")
	defer wait()

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	numbers, err := iox.OpenPull(ctx, node, "example/numbers")
	if err != nil {
		panic(err)
	}
	defer numbers.Close()
	push, err := iox.OpenPush(ctx, node, "example/numbers")
	if err != nil {
		panic(err)
	}
	for i := 1; i <= 5; i++ {
		if err := push.Send(ctx, []byte{byte(i)}); err != nil {
			panic(err)
		}
	}
	seen := map[byte]bool{}
	sum := 0
	for len(seen) < 10 {
		n, err := numbers.Recv(ctx)
		if err != nil {
			panic(err)
		}
		seen[n[0]] = true
		sum += int(n[0])
	}
	fmt.Println("ten numbers, sum:", sum)
	fmt.Println("every number taken:", push.Close() == nil)
	// Output:
	// ten numbers, sum: 55
	// every number taken: true
}

// exampleSecondPusherPeer pushes 6 to 10 into the pipeline of
// ExamplePush_severalPushers.
func exampleSecondPusherPeer() error {
	node, err := nsFromEnv().childNode()
	if err != nil {
		return err
	}
	defer node.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	push, err := iox.OpenPush(ctx, node, "example/numbers", iox.WithLinger(15*time.Second))
	if err != nil {
		return err
	}
	for i := 6; i <= 10; i++ { // they wait in this pusher until the puller is there
		if err := push.Send(ctx, []byte{byte(i)}); err != nil {
			return err
		}
	}
	return push.Close() // nil once the puller took all five
}
