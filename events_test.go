package iox_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/iox-go/iox"
)

func init() {
	children["events-ping"] = childEventsPing
}

// childEventsPing answers every id it receives with id+100, until id 0.
func childEventsPing() error {
	node, err := nsFromEnv().childNode()
	if err != nil {
		return err
	}
	defer node.Close()
	ev, err := iox.OpenEvents(context.Background(), node, os.Getenv("IOX_SERVICE"))
	if err != nil {
		return err
	}
	defer ev.Close()
	fmt.Println("ready")
	for id := range ev.In() {
		switch {
		case id == 0:
			return nil
		case id < 100:
			if _, err := ev.Notify(id + 100); err != nil {
				return err
			}
		}
	}
	return ev.Err()
}

func TestEventsAsChannelsAcrossProcesses(t *testing.T) {
	for _, spin := range []time.Duration{0, 50 * time.Microsecond} {
		t.Run(fmt.Sprintf("spin=%v", spin), func(t *testing.T) {
			ns := newNamespace(t)
			node := ns.node(t)
			ctx := context.Background()
			ev, err := iox.OpenEvents(ctx, node, "ping", iox.WithSpin(spin))
			require.NoError(t, err)
			defer ev.Close()
			c := spawn(t, ns, "events-ping", "IOX_SERVICE=ping")
			c.expect("ready")
			for id := iox.EventID(1); id <= 5; id++ {
				n, err := ev.Notify(id)
				require.NoError(t, err)
				require.Equal(t, 2, n, "both listeners reached")
			wait:
				for {
					select {
					case got := <-ev.In():
						if got < 100 { // our own notifications come back too, in any order with the answers
							continue
						}
						require.Equal(t, id+100, got)
						break wait
					case <-time.After(20 * time.Second):
						t.Fatalf("no answer to %d", id)
					}
				}
			}
			_, err = ev.Notify(0)
			require.NoError(t, err)
			c.wait()
		})
	}
}

func TestEventsShutdown(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx, cancel := context.WithCancel(context.Background())
	a, err := iox.OpenEvents(ctx, node, "shutdown")
	require.NoError(t, err)
	b, err := iox.OpenEvents(context.Background(), node, "shutdown")
	require.NoError(t, err)

	cancel()
	<-a.Done()
	assert.ErrorIs(t, a.Err(), context.Canceled)
	_, ok := <-a.In()
	assert.False(t, ok)
	_, err = a.Notify(1)
	assert.ErrorIs(t, err, context.Canceled)
	require.NoError(t, a.Close())
	assert.ErrorIs(t, a.Close(), iox.ErrClosed)

	require.NoError(t, b.Close())
	assert.ErrorIs(t, b.Err(), iox.ErrClosed)
	_, err = b.Notify(1)
	assert.ErrorIs(t, err, iox.ErrClosed)

	_, err = iox.OpenEvents(ctx, node, "late")
	assert.ErrorIs(t, err, context.Canceled)
	_, err = iox.OpenEvents(context.Background(), node, "")
	assert.ErrorIs(t, err, iox.ErrInvalidName)
}
