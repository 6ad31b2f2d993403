package iox_test

// A lossy publish-subscribe channel NAME notifies its subscribers on the event
// service NAME, as iceoryx2's examples do, so other programs may use that event
// service too. A foreign user of it, with an event id of its own, must work
// undisturbed, and the channel must keep working beside it.

import (
	"context"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/iox-go/iox"
)

func init() {
	children["foreign-events"] = childForeignEvents
}

// childForeignEvents is a plain event user, written with the ports alone: it
// opens (or creates, with iceoryx2's defaults) the event service IOX_SERVICE, a
// listener and a notifier, and says "ready". At each "ping" it notifies
// IOX_EVENT_ID and says "pong" once its listener has seen it; at "done" it says
// "seen IDS", every id its listener saw.
func childForeignEvents() error {
	node, err := nsFromEnv().childNode()
	if err != nil {
		return err
	}
	defer node.Close()
	id := iox.EventID(envInt("IOX_EVENT_ID"))
	ev, err := node.Event(os.Getenv("IOX_SERVICE"))
	if err != nil {
		return err
	}
	defer ev.Close()
	lis, err := ev.Listener()
	if err != nil {
		return err
	}
	defer lis.Close()
	ntf, err := ev.Notifier()
	if err != nil {
		return err
	}
	defer ntf.Close()
	fmt.Println("ready")
	seen := map[iox.EventID]bool{}
	for {
		switch line := parentSays(); line {
		case "ping":
			if _, err := ntf.Notify(id); err != nil {
				return fmt.Errorf("notify %d (the service's largest id is %d): %w", id, ev.MaxEventID(), err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			for pinged := false; !pinged; {
				ids, err := lis.Wait(ctx)
				if err != nil {
					cancel()
					return fmt.Errorf("waiting for %d: %w", id, err)
				}
				for _, got := range ids {
					seen[got] = true
					pinged = pinged || got == id
				}
			}
			cancel()
			fmt.Println("pong")
		case "done":
			var ids []string
			for _, got := range slices.Sorted(maps.Keys(seen)) {
				ids = append(ids, strconv.Itoa(int(got)))
			}
			fmt.Println("seen", strings.Join(ids, " "))
			return nil
		default:
			return fmt.Errorf("parent said %q", line)
		}
	}
}

func TestLossyChannelSharesItsEventServiceWithAForeignUser(t *testing.T) {
	for _, first := range []string{"channel", "foreign"} {
		// iox uses ids 0 (data) and 6 (a lossless publisher waits) on this
		// service; a program written for iceoryx2's defaults may choose any
		// other id up to 255.
		for _, id := range []int{1, 42, 255} {
			t.Run(fmt.Sprintf("%s-first/id-%d", first, id), func(t *testing.T) {
				foreignUserAndLossyChannel(t, first == "foreign", id)
			})
		}
	}
}

// foreignUserAndLossyChannel runs a lossy channel and a foreign event user with
// event id id on the same event service; the foreign user comes first with
// foreignFirst. Message and ping alternate, so that either side's events are
// pending at the other's listener when it waits.
func foreignUserAndLossyChannel(t *testing.T, foreignFirst bool, id int) {
	const name, rounds = "shared-events", 50
	ns := newNamespace(t)
	node := ns.node(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var foreign *child
	startForeign := func() {
		foreign = spawn(t, ns, "foreign-events", "IOX_SERVICE="+name, fmt.Sprintf("IOX_EVENT_ID=%d", id))
		foreign.expect("ready")
	}
	if foreignFirst {
		startForeign()
	}
	drops := make(chan error, rounds)
	sub, err := iox.OpenSub(ctx, node, name, iox.Lossy(), iox.BufferSize(16), iox.OnDrop(func(err error) { drops <- err }))
	require.NoError(t, err)
	defer sub.Close()
	pub, err := iox.OpenPub(ctx, node, name, iox.Lossy(), iox.BufferSize(16))
	require.NoError(t, err)
	defer pub.Close()
	if !foreignFirst {
		startForeign()
	}
	waitSubscribers(t, pub, 1)

	for i := uint64(0); i < rounds; i++ {
		require.NoError(t, pub.Send(ctx, seqMsg(i)))
		m, err := sub.Recv(ctx)
		require.NoError(t, err, "message %d", i)
		require.Equal(t, seqMsg(i), m, "message %d", i)
		foreign.say("ping")
		if l := foreign.line(); l != "pong" {
			t.Fatalf("round %d: the foreign event user said %q, want pong", i, l)
		}
	}
	foreign.say("done")
	seen := strings.Fields(foreign.expectPrefix("seen"))
	require.Contains(t, seen, strconv.Itoa(id))
	for _, s := range seen {
		require.Contains(t, []string{"0", strconv.Itoa(id)}, s,
			"the foreign listener saw an id the channel has no business sending (iox's data events are id 0)")
	}
	foreign.wait()

	require.NoError(t, sub.Err())
	require.NoError(t, pub.Err())
	select {
	case err := <-drops:
		t.Fatalf("the subscriber dropped something: %v", err)
	default:
	}
	require.NoError(t, pub.Close())
	require.NoError(t, sub.Close())
}
