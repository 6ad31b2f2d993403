package iox_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/iox-go/iox"
)

func init() { children["example-config-writer"] = exampleConfigWriter }

// A blackboard is a key-value store that processes share: one writer, many
// readers, entries fixed when it is created. Here this process creates it and
// watches an entry, and the other process writes it.
func ExampleBlackboard() {
	node, wait := peer("example-config-writer")
	defer wait()

	keys, _ := iox.Fixed[uint32]("u32") // the type names a Rust or Python peer uses
	f64, _ := iox.Fixed[float64]("f64")
	i32, _ := iox.Fixed[int32]("i32")
	bb, err := iox.OpenBlackboard(node, "example/config", keys, []iox.BlackboardEntry[uint32]{
		iox.Entry(uint32(1), f64, 0.5), // threshold
		iox.Entry(uint32(2), i32, 3),   // retries
	})
	if err != nil {
		panic(err)
	}
	defer bb.Close()
	r, err := bb.Reader()
	if err != nil {
		panic(err)
	}
	defer r.Close()
	threshold, err := iox.ReadEntry(r, uint32(1), f64)
	if err != nil {
		panic(err)
	}
	defer threshold.Close()

	first, err := threshold.Get()
	if err != nil {
		panic(err)
	}
	fmt.Println("threshold:", first.Value)

	// Watch wakes on the writer's notifications; a watcher that falls behind
	// gets the latest value.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	values, err := iox.WatchEntry(ctx, threshold)
	if err != nil {
		panic(err)
	}
	for v := range values {
		if v == 0.9 {
			fmt.Println("the other process set it to", v)
			break
		}
	}
	cancel()
	for range values { // the watch ends with its context
	}
	changed, _ := threshold.Changed(first)
	fmt.Println("changed since the first read:", changed)
	// Output:
	// threshold: 0.5
	// the other process set it to 0.9
	// changed since the first read: true
}

// exampleConfigWriter waits for the blackboard and a watcher of it, then
// writes the threshold twice: with Set, and in place with a Loan.
func exampleConfigWriter() error {
	node, err := nsFromEnv().childNode()
	if err != nil {
		return err
	}
	defer node.Close()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	deadline := time.After(20 * time.Second)
	await := func(what string, ready func() (bool, error)) error {
		for {
			ok, err := ready()
			if ok || err != nil {
				return err
			}
			select {
			case <-tick.C:
			case <-deadline:
				return errors.New("no " + what + " within 20 s")
			}
		}
	}
	keys, _ := iox.Fixed[uint32]("u32")
	f64, _ := iox.Fixed[float64]("f64")
	var bb *iox.Blackboard[uint32]
	if err := await("blackboard", func() (bool, error) {
		bb, err = iox.OpenExistingBlackboard(node, "example/config", keys)
		if errors.Is(err, iox.ErrServiceNotFound) {
			return false, nil
		}
		return err == nil, err
	}); err != nil {
		return err
	}
	defer bb.Close()
	w, err := bb.Writer()
	if err != nil {
		return err
	}
	defer w.Close()
	threshold, err := iox.WriteEntry(w, uint32(1), f64)
	if err != nil {
		return err
	}
	defer threshold.Close()
	events, err := node.Event("example/config", iox.OpenOnly()) // where watchers wait
	if err != nil {
		return err
	}
	defer events.Close()
	if err := await("watcher", func() (bool, error) {
		_, listeners, err := events.Counts()
		return listeners > 0, err
	}); err != nil {
		return err
	}
	if err := threshold.Set(0.75); err != nil {
		return err
	}
	loan, err := threshold.Loan()
	if err != nil {
		return err
	}
	*loan.Value() = 0.9
	return loan.Commit()
}
