package iox_test

// The request/response defaults: what they serve, what they cost, and what a
// refusal says.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/iox-go/iox"
)

func init() {
	children["rpc-barrier"] = childRPCBarrier
}

// childRPCBarrier serves IOX_SERVICE with IOX_RPC_BARRIER workers, each of
// which holds its request until that many requests are held at once: every
// call is answered only once IOX_RPC_BARRIER calls are in flight together.
// IOX_RPC_ACTIVE, when set, is the MaxActiveRequests the server asks for.
func childRPCBarrier() error {
	node, err := nsFromEnv().childNode()
	if err != nil {
		return err
	}
	defer node.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var opts []iox.Option
	if n := envInt("IOX_RPC_ACTIVE"); n > 0 {
		opts = append(opts, iox.MaxActiveRequests(n))
	}
	srv, err := iox.OpenServer(ctx, node, os.Getenv("IOX_SERVICE"), iox.Raw{}, iox.Raw{}, opts...)
	if err != nil {
		return err
	}
	defer srv.Close()
	n := envInt("IOX_RPC_BARRIER")
	var mu sync.Mutex
	held := 0
	all := make(chan struct{})
	go func() {
		parentSays()
		cancel()
	}()
	fmt.Println("ready")
	err = srv.Serve(ctx, n, func(ctx context.Context, req []byte) ([]byte, error) {
		mu.Lock()
		if held++; held == n {
			close(all)
		}
		mu.Unlock()
		select {
		case <-all:
			return req, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	})
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// callTogether makes calls calls on each client at once and checks the answers.
func callTogether(t *testing.T, clients []*iox.Caller[[]byte, []byte], calls int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for i, cl := range clients {
		for j := range calls {
			wg.Add(1)
			go func() {
				defer wg.Done()
				req := fmt.Sprint(i, "-", j)
				v, err := cl.Call(ctx, []byte(req))
				if assert.NoError(t, err, "call %s", req) {
					assert.Equal(t, req, string(v))
				}
			}()
		}
	}
	wg.Wait()
}

// shmBytes is the shared memory the namespace's files hold (what /dev/shm
// has allocated for them, not their apparent size).
func shmBytes(t *testing.T, ns namespace) int64 {
	t.Helper()
	var n int64
	for _, f := range leftovers(ns.prefix) {
		var st syscall.Stat_t
		if err := syscall.Stat(filepath.Join("/dev/shm", f), &st); err == nil {
			n += st.Blocks * 512
		}
	}
	return n
}

// With the default settings, a few clients have 64 calls in flight together
// (four clients of 16, the default MaxActiveRequests) in tens of MiB of
// shared memory. (The old defaults needed about 200 MiB for this.)
func TestRPCDefaultsServe64CallsInTensOfMiB(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	c := spawn(t, ns, "rpc-barrier", "IOX_SERVICE=defaults", "IOX_RPC_BARRIER=64")
	c.expect("ready")
	defer c.wait()
	var clients []*iox.Caller[[]byte, []byte]
	for range 4 {
		cl, err := iox.OpenClient(context.Background(), node, "defaults", iox.Raw{}, iox.Raw{})
		require.NoError(t, err)
		defer cl.Close()
		clients = append(clients, cl)
	}
	callTogether(t, clients, 16)
	used := shmBytes(t, ns)
	t.Logf("64 calls in flight from 4 clients: %.1f MiB of shared memory", float64(used)/(1<<20))
	assert.Less(t, used, int64(64<<20), "shared memory of a server and four clients with the default settings")
}

// A server asking for MaxActiveRequests(64) with the default client and
// server counts is not refused (it used to be, with an estimate of 12 GiB),
// and one client then has 64 calls in flight.
func TestRPCMaxActiveRequests64WithDefaultCounts(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	c := spawn(t, ns, "rpc-barrier", "IOX_SERVICE=wide", "IOX_RPC_BARRIER=64", "IOX_RPC_ACTIVE=64")
	c.expect("ready")
	defer c.wait()
	cl, err := iox.OpenClient(context.Background(), node, "wide", iox.Raw{}, iox.Raw{})
	require.NoError(t, err)
	defer cl.Close()
	callTogether(t, []*iox.Caller[[]byte, []byte]{cl}, 64)
	used := shmBytes(t, ns)
	t.Logf("64 calls in flight from 1 client: %.1f MiB of shared memory", float64(used)/(1<<20))
	assert.Less(t, used, int64(192<<20), "shared memory of a server and a client with MaxActiveRequests(64)")
}

// A client that asks for more requests in flight than the service was created
// with is refused with an error that names the setting, the service's value
// and what to do.
func TestRPCClientAskingForMoreSlotsIsTold(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	c := spawn(t, ns, "rpc-barrier", "IOX_SERVICE=narrow", "IOX_RPC_BARRIER=1")
	c.expect("ready")
	defer c.wait()
	_, err := iox.OpenClient(context.Background(), node, "narrow", iox.Raw{}, iox.Raw{}, iox.MaxActiveRequests(64))
	require.ErrorIs(t, err, iox.ErrIncompatible)
	for _, want := range []string{"MaxActiveRequests(64)", "16", "created"} {
		assert.Contains(t, err.Error(), want)
	}
	// What the service has is accepted.
	cl, err := iox.OpenClient(context.Background(), node, "narrow", iox.Raw{}, iox.Raw{}, iox.MaxActiveRequests(16))
	require.NoError(t, err)
	require.NoError(t, cl.Close())
}

// A request/response service that does not fit the machine is refused with
// the rule of what its memory grows with.
func TestRPCOutOfMemoryNamesTheRule(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	_, err := iox.OpenServer(context.Background(), node, "huge", iox.Raw{}, iox.Raw{},
		iox.MaxActiveRequests(4096), iox.MaxClients(64))
	require.ErrorIs(t, err, iox.ErrOutOfMemory)
	for _, want := range []string{"MaxClients × MaxServers × MaxActiveRequests² × (ResponseBufferSize + 4)", "lower MaxActiveRequests"} {
		assert.Contains(t, err.Error(), want)
	}
}
