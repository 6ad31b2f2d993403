package iox_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/iox-go/iox"
)

func init() {
	children["ns-hold"] = childHold
}

// childHold opens the event service IOX_SERVICE (with IOX_PORTS also a
// publish-subscribe service of that name with a publisher, a subscriber and a
// listener), says "ready", and at "exit" exits without closing anything; when
// standard input closes instead, it closes everything.
func childHold() error {
	node, err := nsFromEnv().childNode()
	if err != nil {
		return err
	}
	name := os.Getenv("IOX_SERVICE")
	ev, err := node.Event(name)
	if err != nil {
		return err
	}
	closers := []interface{ Close() error }{ev, node}
	if os.Getenv("IOX_PORTS") != "" {
		l, err := ev.Listener()
		if err != nil {
			return err
		}
		ps, err := node.PublishSubscribe(name)
		if err != nil {
			return err
		}
		p, err := ps.Publisher()
		if err != nil {
			return err
		}
		s, err := ps.Subscriber()
		if err != nil {
			return err
		}
		if _, err := p.Send([]byte("held")); err != nil {
			return err
		}
		closers = append([]interface{ Close() error }{l, s, p, ps}, closers...)
	}
	fmt.Println("ready")
	if parentSays() == "exit" {
		os.Exit(0)
	}
	for _, c := range closers {
		if err := c.Close(); err != nil {
			return err
		}
	}
	return nil
}

// counterMode returns the mode of the namespace's node-counter segment, the one
// object iceoryx2 keeps in shared memory for a namespace on purpose.
func counterMode(t *testing.T, ns namespace) fs.FileMode {
	t.Helper()
	var found []string
	for _, name := range leftovers(ns.prefix) {
		if strings.HasSuffix(name, ".global_mgmt") {
			found = append(found, name)
		}
	}
	require.Len(t, found, 1, "one node-counter segment per namespace")
	info, err := os.Stat(filepath.Join("/dev/shm", found[0]))
	require.NoError(t, err)
	return info.Mode().Perm()
}

func TestNodeKeepsTheNamespaceToItsOwner(t *testing.T) {
	ns := newNamespace(t)
	ns.node(t)
	assert.Zero(t, counterMode(t, ns)&0o077, "group and others lose access to the node counter")
	ns.node(t) // the owner still creates nodes in it

	shared := newNamespace(t)
	shared.node(t, iox.WithSharedNamespace())
	assert.Equal(t, fs.FileMode(0o066), counterMode(t, shared)&0o066, "a shared namespace stays writable by every user")
}

func TestRemoveIsolationRemovesWhatCrashedProcessesLeft(t *testing.T) {
	ns := newNamespace(t)
	c := spawn(t, ns, "ns-hold", "IOX_SERVICE=left", "IOX_PORTS=1")
	c.expect("ready")
	c.say("exit")
	c.wait()
	shm, root := nsFiles(ns)
	require.Positive(t, shm, "the process left shared memory behind")
	require.Positive(t, root, "the process left files under the root folder behind")

	require.NoError(t, iox.RemoveIsolation(ns.prefix, ns.root))
	assert.Empty(t, leftovers(ns.prefix), "every shared-memory object of the namespace is gone, the node counter too")
	_, err := os.Stat(ns.root)
	assert.ErrorIs(t, err, fs.ErrNotExist, "the root folder is gone")
	require.NoError(t, iox.RemoveIsolation(ns.prefix, ns.root), "removing an empty namespace is no error")

	for _, bad := range []struct{ prefix, root string }{
		{"", ns.root}, {"a/b", ns.root}, {ns.prefix, "relative/dir"}, {ns.prefix, "/"},
	} {
		err := iox.RemoveIsolation(bad.prefix, bad.root)
		assert.ErrorIs(t, err, iox.ErrInvalidArgument, "prefix %q, root %q", bad.prefix, bad.root)
	}
}

// unfinish puts every service's static configuration of the namespace back in
// the state of one its creator is still writing: iceoryx2 marks that state by
// the file's mode (owner read-write; a finished one is owner read-only). A
// process that dies while it creates a service leaves it so.
func unfinish(t *testing.T, ns namespace) {
	t.Helper()
	dir := filepath.Join(ns.root, "services")
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.NotEmpty(t, entries)
	for _, e := range entries {
		require.NoError(t, os.Chmod(filepath.Join(dir, e.Name()), 0o600))
	}
}

func TestAServiceLeftHalfMadeIsRemovedOnceNoLiveProcessHoldsIt(t *testing.T) {
	ns := newNamespace(t)
	c := spawn(t, ns, "ns-hold", "IOX_SERVICE=half-made")
	c.expect("ready")
	unfinish(t, ns)
	node := ns.node(t)

	_, err := node.Event("half-made")
	assert.ErrorIs(t, err, iox.ErrBusy, "a live process holds the service: it stays")

	c.say("exit")
	c.wait()
	ev, err := node.Event("half-made")
	require.NoError(t, err, "once its holder is gone, the half-made service is removed and made anew")
	n, err := ev.Notifier()
	require.NoError(t, err)
	l, err := ev.Listener()
	require.NoError(t, err)
	_, err = n.Notify(7)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ids, err := l.Wait(ctx)
	require.NoError(t, err)
	assert.Equal(t, []iox.EventID{7}, ids)
	for _, cl := range []interface{ Close() error }{l, n, ev, node} {
		require.NoError(t, cl.Close())
	}
	shm, root := sweepCrashLeftovers(t, ns)
	t.Logf("left behind by the process that died holding the half-made service: %v %v", shm, root)
}

// An isolation root that is a folder nobody can create files in (a kernel
// file system such as /proc or /sys, or one under it) is refused with a typed
// error naming the root, not reported as an internal failure, and nothing of
// the namespace is left in /dev/shm.
func TestNodeRootWhereNoFileCanBeMadeIsRefusedClearly(t *testing.T) {
	for _, root := range []string{"/proc/", "/proc/self/", "/proc/iox-below/", "/sys/", "/sys/iox-below/"} {
		prefix := fmt.Sprintf("%s_root%d_", runPrefix(), nsCounter.Add(1))
		t.Cleanup(func() {
			for _, f := range leftovers(prefix) {
				os.Remove(filepath.Join("/dev/shm", f))
			}
		})
		n, err := iox.NewNode(iox.WithIsolation(prefix, root))
		if err == nil {
			n.Close()
			t.Fatalf("root %s: NewNode succeeded", root)
		}
		var e *iox.Error
		require.ErrorAs(t, err, &e, "root %s", root)
		require.NotErrorIs(t, err, iox.ErrInternal, "root %s: %v", root, err)
		require.True(t, errors.Is(err, iox.ErrPermission) || errors.Is(err, iox.ErrInvalidArgument),
			"root %s: %v, want ErrPermission or ErrInvalidArgument", root, err)
		require.Contains(t, e.Detail, fmt.Sprintf("isolation root %q", root), "the error names the root")
		for _, f := range leftovers(prefix) {
			if !strings.HasSuffix(f, ".global_mgmt") { // the namespace's node counter, kept on purpose
				t.Errorf("root %s: %s left in /dev/shm", root, f)
			}
		}
	}
}
