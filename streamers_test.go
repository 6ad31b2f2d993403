package iox_test

// Child processes that stream sequence numbers on a pair or a publish-subscribe
// channel and check what arrives; the crash, exit and backpressure tests use them.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/iox-go/iox"
)

func init() {
	children["rel-pair"] = childRelPair
	children["rel-sub"] = childRelSub
	children["rel-pub"] = childRelPub
}

// flood sends sequence numbers on p and checks the ones that arrive, until the
// pair ends; it returns how many arrived in order. progress sees the count.
func flood(ctx context.Context, p *iox.Pair[[]byte], progress func(uint64)) (uint64, error) {
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		for i := uint64(0); p.Send(ctx, seqMsg(i)) == nil; i++ {
		}
	}()
	var next uint64
	var bad error
	for m := range p.In() {
		if bad == nil && (len(m) != 8 || binary.LittleEndian.Uint64(m) != next) {
			bad = fmt.Errorf("message %d: got %x (lost, duplicated or reordered)", next, m)
		}
		next++
		progress(next)
	}
	<-sent
	return next, bad
}

// childRelPair opens one end of the pair IOX_SERVICE. In mode "flood" it streams
// both ways until the peer crashes, reports "ended KIND N", opens the pair again
// ("reopened"), then streams IOX_COUNT messages both ways ("resumed"), which is
// all the mode "resume" does.
func childRelPair() error {
	node, err := nsFromEnv().childNode()
	if err != nil {
		return err
	}
	defer node.Close()
	ctx := context.Background()
	name := os.Getenv("IOX_SERVICE")
	opts := []iox.Option{iox.BufferSize(8), iox.WithPeerTimeout(envDur("IOX_PEER_TIMEOUT", time.Second))}
	p, err := iox.OpenPair(ctx, node, name, opts...)
	if err != nil {
		return err
	}
	fmt.Println("ready")
	if os.Getenv("IOX_MODE") == "flood" {
		got, ferr := flood(ctx, p, func(k uint64) {
			if k == 100 {
				fmt.Println("flowing")
			}
		})
		reason := p.Err()
		fmt.Printf("ended %s %d\n", kindOf(reason), got)
		p.Close()
		if ferr != nil {
			return ferr
		}
		if !errors.Is(reason, iox.ErrPeerCrashed) {
			return fmt.Errorf("pair ended with %v, want ErrPeerCrashed", reason)
		}
		if p, err = iox.OpenPair(ctx, node, name, opts...); err != nil {
			return err
		}
		fmt.Println("reopened")
	}
	defer p.Close()
	dl, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := streamBoth(dl, p, uint64(envInt("IOX_COUNT"))); err != nil {
		return err
	}
	fmt.Println("resumed")
	if _, err := nextLine(parentLines(), "done", 30*time.Second); err != nil {
		return err
	}
	return p.Close()
}

// childRelSub subscribes to IOX_SERVICE and checks that sequence numbers arrive
// consecutively (from 0 with IOX_FROM_ZERO). With IOX_SAY_IDLE it says "idle"
// once a look found nothing. It says "flowing" after 100; told "expect L", it
// says "got COUNT first F" once L arrived, then waits for "done".
func childRelSub() error {
	node, err := nsFromEnv().childNode()
	if err != nil {
		return err
	}
	defer node.Close()
	ctx := context.Background()
	s, err := iox.OpenSub(ctx, node, os.Getenv("IOX_SERVICE"), iox.BufferSize(16),
		iox.WithPeerTimeout(envDur("IOX_PEER_TIMEOUT", time.Second)))
	if err != nil {
		return err
	}
	defer s.Close()
	fmt.Println("ready")
	lines := parentLines()
	last := int64(-1)
	expect := make(chan int64, 1)
	go func() {
		v, err := nextLine(lines, "expect", time.Minute)
		if err != nil {
			expect <- -2
			return
		}
		n, _ := strconv.ParseInt(v, 10, 64)
		expect <- n
	}()
	var count, first int64 = 0, -1
	want := int64(-1) // not known yet
	lastMsg := time.Now()
	idle := envDur("IOX_IDLE", 30*time.Second)
	sayIdle := os.Getenv("IOX_SAY_IDLE") != ""
	for want < 0 || last < want {
		if want < 0 {
			select {
			case want = <-expect:
				if want == -2 {
					return errors.New("no expect line")
				}
				continue
			default:
			}
		}
		rctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		m, err := s.Recv(rctx)
		cancel()
		if errors.Is(err, context.DeadlineExceeded) {
			if sayIdle {
				fmt.Println("idle")
				sayIdle = false
			}
			if time.Since(lastMsg) > idle {
				return fmt.Errorf("nothing received for %v after %d", idle, last)
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("receive after %d: %w", last, err)
		}
		lastMsg = time.Now()
		seq := int64(binary.LittleEndian.Uint64(m))
		switch {
		case first < 0 && os.Getenv("IOX_FROM_ZERO") != "" && seq != 0:
			return fmt.Errorf("first message is %d, want 0", seq)
		case first >= 0 && seq != last+1:
			return fmt.Errorf("got %d after %d (lost, duplicated or reordered)", seq, last)
		}
		if first < 0 {
			first = seq
		}
		last = seq
		count++
		if count == 100 {
			fmt.Println("flowing")
		}
	}
	fmt.Printf("got %d first %d\n", count, first)
	if _, err := nextLine(lines, "done", time.Minute); err != nil {
		return err
	}
	return s.Close()
}

// relPubMsg is generation gen's message seq.
func relPubMsg(gen, seq uint64) []byte {
	m := make([]byte, 16)
	binary.LittleEndian.PutUint64(m, gen)
	binary.LittleEndian.PutUint64(m[8:], seq)
	return m
}

// childRelPub publishes generation IOX_GEN's sequence numbers on IOX_SERVICE once
// a subscriber is there: IOX_COUNT of them, then it closes and says "sent N";
// with IOX_COUNT=0 until it is killed.
func childRelPub() error {
	node, err := nsFromEnv().childNode()
	if err != nil {
		return err
	}
	defer node.Close()
	ctx := context.Background()
	p, err := iox.OpenPub(ctx, node, os.Getenv("IOX_SERVICE"), iox.BufferSize(16), iox.WithLinger(20*time.Second),
		iox.WithPeerTimeout(envDur("IOX_PEER_TIMEOUT", time.Second)))
	if err != nil {
		return err
	}
	defer p.Close()
	if !waitUntil(20*time.Second, func() bool { return p.Subscribers() > 0 }) {
		return errors.New("no subscriber")
	}
	fmt.Println("ready")
	gen, n := uint64(envInt("IOX_GEN")), uint64(envInt("IOX_COUNT"))
	for i := uint64(0); n == 0 || i < n; i++ {
		if err := p.Send(ctx, relPubMsg(gen, i)); err != nil {
			return err
		}
	}
	if err := p.Close(); err != nil {
		return err
	}
	fmt.Println("sent", n)
	_, err = nextLine(parentLines(), "done", time.Minute)
	return err
}
