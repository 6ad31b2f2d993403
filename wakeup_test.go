package iox_test

// A sender that dies in the middle of waking its receiver: it put a message
// into the receiver's queue and claimed the receiver's mark ("I park"), and
// its process is killed before it notifies. The receiver, parked, must still
// get the message, because it watches its senders' processes and looks at its
// queue again when one dies.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/iox-go/iox"
)

func init() {
	children["wake-die"] = childWakeDie
	children["wake-sender"] = childWakeSender
}

// lastWords is what the dying sender sends.
const lastWords = "sent, claimed, never notified"

// childWakeDie opens the sending end IOX_KIND (pub, push or pair) of
// IOX_SERVICE, with the hook that kills this process right after its first
// claim of a parked receiver's mark. It says "open", then "ready" once it
// knows the receiver's wait word (before that it would notify every time and claim
// nothing), sends one message when the parent says "send", and dies in it.
func childWakeDie() error {
	iox.DieAfterClaim()
	node, err := nsFromEnv().childNode()
	if err != nil {
		return err
	}
	defer node.Close()
	ctx := context.Background()
	name := os.Getenv("IOX_SERVICE")
	var send func() error
	var ready func() bool
	switch kind := os.Getenv("IOX_KIND"); kind {
	case "pub":
		p, err := iox.OpenPub(ctx, node, name)
		if err != nil {
			return err
		}
		defer p.Close()
		p.Peers() // looks at subscribers that come (and opens their words) while it does not send
		ready = func() bool { return p.Words() > 0 }
		send = func() error { return p.Send(ctx, []byte(lastWords)) }
	case "push":
		p, err := iox.OpenPush(ctx, node, name)
		if err != nil {
			return err
		}
		defer p.Close()
		ready = func() bool { return p.Words() > 0 }
		send = func() error { return p.Send(ctx, []byte(lastWords)) }
	case "pair":
		p, err := iox.OpenPair(ctx, node, name)
		if err != nil {
			return err
		}
		defer p.Close()
		ready = func() bool { return p.HasPeerWord() }
		send = func() error { return p.Send(ctx, []byte(lastWords)) }
	default:
		return fmt.Errorf("unknown IOX_KIND %q", kind)
	}
	fmt.Println("open")
	if !waitUntil(20*time.Second, ready) {
		return errors.New("the receiver's wait word was never found")
	}
	fmt.Println("ready")
	if l := parentSays(); l != "send" {
		return fmt.Errorf("parent said %q, want send", l)
	}
	if err := send(); err != nil {
		return err
	}
	return errors.New("the send claimed no parked receiver's mark: still alive")
}

// parkedReceivers counts this process's goroutines that are blocked in a
// channel's hub wait under the receive call recv (named as a stack trace
// names it, "iox.(*Sub[...]).Recv").
func parkedReceivers(recv string) int {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		header, stack, _ := strings.Cut(g, "\n")
		if strings.Contains(stack, recv+"(") && strings.Contains(stack, "iox.(*hub).wait(") &&
			!strings.Contains(header, "[running") && !strings.Contains(header, "[runnable") && !strings.Contains(header, "[syscall") {
			n++
		}
	}
	return n
}

// The sender is a child process; the receiver (in this process) is there
// first, or, for a subscriber, comes after its publisher (then the publisher's
// notifier is older than the subscriber's listener, which hears of no hello:
// the subscriber finds the publisher when it opens).
func TestReceiverGetsMessageOfSenderKilledBeforeItNotified(t *testing.T) {
	for _, tc := range []struct {
		name, kind  string
		senderFirst bool
	}{{"pub", "pub", false}, {"pub first", "pub", true}, {"push", "push", false}, {"pair", "pair", false}} {
		t.Run(tc.name, func(t *testing.T) {
			ns := newNamespace(t)
			node := ns.node(t)
			const name = "wake-die"
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			var c *child
			if tc.senderFirst {
				c = spawn(t, ns, "wake-die", "IOX_SERVICE="+name, "IOX_KIND="+tc.kind)
				c.expect("open")
			}
			var recv func(context.Context) ([]byte, error)
			var parked func() bool
			var fn string
			switch tc.kind {
			case "pub":
				s, err := iox.OpenSub(ctx, node, name)
				require.NoError(t, err)
				defer s.Close()
				recv, parked, fn = s.Recv, s.Parked, "iox.(*Sub[...]).Recv"
			case "push":
				p, err := iox.OpenPull(ctx, node, name)
				require.NoError(t, err)
				defer p.Close()
				recv, parked, fn = p.Recv, p.Parked, "iox.(*Pull[...]).Recv"
			case "pair":
				p, err := iox.OpenPair(ctx, node, name)
				require.NoError(t, err)
				defer p.Close()
				recv, parked, fn = p.Recv, p.Parked, "iox.(*Pair[...]).Recv"
				defer func() {
					// after the message, the crash
					_, err := p.Recv(ctx)
					require.ErrorIs(t, err, iox.ErrPeerCrashed)
				}()
			}
			if !tc.senderFirst {
				c = spawn(t, ns, "wake-die", "IOX_SERVICE="+name, "IOX_KIND="+tc.kind)
				c.expect("open")
			}
			c.expect("ready")

			type result struct {
				msg []byte
				err error
			}
			got := make(chan result, 1)
			go func() {
				// several seconds: the receiver wakes within milliseconds
				// of the death, or never
				rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				defer cancel()
				m, err := recv(rctx)
				got <- result{m, err}
			}()
			// The receive call itself is parked in the poller, its mark set:
			// the send finds the mark and claims it.
			eventually(t, "the receiver to park", func() bool { return parked() && parkedReceivers(fn) == 1 })
			c.say("send")

			err := <-c.done
			c.done <- err
			var exit *exec.ExitError
			require.ErrorAs(t, err, &exit, "the child died in its claim")
			status, ok := exit.Sys().(syscall.WaitStatus)
			require.True(t, ok && status.Signaled() && status.Signal() == syscall.SIGKILL,
				"the child was killed right after its claim (it ended with %v)", err)

			r := <-got
			require.NoError(t, r.err, "the receiver was left parked with the dead sender's message in its queue")
			require.Equal(t, lastWords, string(r.msg))
			_, err = node.CleanupDeadNodes() // what the child left (a pusher's tallies are its own)
			require.NoError(t, err)
		})
	}
}

// childWakeSender opens the sending end IOX_KIND (pub or push) of
// IOX_SERVICE and says "open"; on "close" it closes it and says "closed",
// and it exits when the parent hangs up (or is killed before).
func childWakeSender() error {
	node, err := nsFromEnv().childNode()
	if err != nil {
		return err
	}
	defer node.Close()
	ctx := context.Background()
	name := os.Getenv("IOX_SERVICE")
	var end interface{ Close() error }
	switch kind := os.Getenv("IOX_KIND"); kind {
	case "pub":
		end, err = iox.OpenPub(ctx, node, name)
	case "push":
		end, err = iox.OpenPush(ctx, node, name)
	default:
		err = fmt.Errorf("unknown IOX_KIND %q", kind)
	}
	if err != nil {
		return err
	}
	fmt.Println("open")
	if l := parentSays(); l != "close" {
		end.Close()
		return fmt.Errorf("parent said %q, want close", l)
	}
	end.Close() // nothing was sent: nothing to confirm
	fmt.Println("closed")
	parentSays()
	return nil
}

// A receiving end watches the process of each sender node that is there,
// once, and forgets it when its sender closed, or when its process died and
// its ports were cleaned up (at the next listing of the senders). It learns
// of them while it waits, without looking on the way of a message.
func TestReceiverWatchesSendersThatComeAndGo(t *testing.T) {
	for _, kind := range []string{"pub", "push"} {
		t.Run(kind, func(t *testing.T) {
			ns := newNamespace(t)
			node := ns.node(t)
			const name = "wake-senders"
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			var recv func(context.Context) ([]byte, error)
			var senders func() (int, int)
			switch kind {
			case "pub":
				s, err := iox.OpenSub(ctx, node, name)
				require.NoError(t, err)
				defer s.Close()
				recv, senders = s.Recv, s.Senders
			case "push":
				p, err := iox.OpenPull(ctx, node, name)
				require.NoError(t, err)
				defer p.Close()
				recv, senders = p.Recv, p.Senders
			}
			// A receive call waits throughout (a puller has no other
			// goroutine that waits on its listener).
			rctx, stop := context.WithCancel(ctx)
			received := make(chan error, 1)
			go func() {
				_, err := recv(rctx)
				received <- err
			}()
			defer func() {
				stop()
				require.ErrorIs(t, <-received, context.Canceled, "nothing was sent")
			}()
			are := func(watched, dead int) func() bool {
				return func() bool {
					w, d := senders()
					return w == watched && d == dead
				}
			}
			require.True(t, are(0, 0)())

			a := spawn(t, ns, "wake-sender", "IOX_SERVICE="+name, "IOX_KIND="+kind)
			a.expect("open")
			eventually(t, "the first sender watched", are(1, 0))
			b := spawn(t, ns, "wake-sender", "IOX_SERVICE="+name, "IOX_KIND="+kind)
			b.expect("open")
			eventually(t, "both senders watched", are(2, 0))

			a.say("close")
			a.expect("closed")
			eventually(t, "the closed sender forgotten while its process lives on", are(1, 0))

			b.kill()
			eventually(t, "the killed sender's node known dead", are(0, 1))
			// The dead node's ports stay listed until somebody cleans up
			// after it; the next listing (here: a sender coming) forgets it.
			_, err := node.CleanupDeadNodes()
			require.NoError(t, err)
			c := spawn(t, ns, "wake-sender", "IOX_SERVICE="+name, "IOX_KIND="+kind)
			c.expect("open")
			eventually(t, "the dead sender forgotten once its ports were cleaned up", are(1, 0))
			c.say("close")
			c.expect("closed")
			eventually(t, "no sender watched", are(0, 0))
		})
	}
}
