package iox_test

// Permissions: another user can neither read nor write a namespace's shared
// memory and files, nor reach its services.

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/iox-go/iox"
	"github.com/iox-go/iox/loader"
)

func init() {
	children["rel-intruder"] = childIntruder
}

// modeSummary counts the modes of files.
func modeSummary(modes map[string]fs.FileMode) map[string]int {
	out := map[string]int{}
	for _, m := range modes {
		out[m.String()]++
	}
	return out
}

// childIntruder runs as an unprivileged user against a namespace that root's
// processes use, and reports what it could do. A control run in a namespace of
// its own shows that it can use iox at all.
func childIntruder() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Control: its own namespace works.
	ctlPrefix, ctlRoot := os.Getenv("IOX_CONTROL_PREFIX"), os.Getenv("IOX_CONTROL_ROOT")
	ctl, err := iox.NewNode(iox.WithIsolation(ctlPrefix, ctlRoot))
	if err != nil {
		return fmt.Errorf("control node: %w", err)
	}
	a, err := iox.OpenPair(ctx, ctl, "control")
	if err != nil {
		return fmt.Errorf("control pair: %w", err)
	}
	b, err := iox.OpenPair(ctx, ctl, "control")
	if err != nil {
		return fmt.Errorf("control pair: %w", err)
	}
	if err := a.Send(ctx, []byte("hi")); err != nil {
		return err
	}
	if m, err := b.Recv(ctx); err != nil || string(m) != "hi" {
		return fmt.Errorf("control pair: %q %v", m, err)
	}
	a.Close()
	b.Close()
	ctl.Close()
	iox.RemoveIsolation(ctlPrefix, ctlRoot)
	fmt.Println("control ok")

	ns := nsFromEnv()
	// 1. A node in root's namespace.
	node, err := iox.NewNode(iox.WithIsolation(ns.prefix, ns.root))
	fmt.Printf("node %s %v\n", kindOf(err), err)
	if err == nil {
		svc, err := node.PublishSubscribe("guarded", iox.OpenOnly())
		fmt.Printf("open-service %s %v\n", kindOf(err), err)
		if err == nil {
			pub, err := svc.Publisher()
			fmt.Printf("publisher %s %v\n", kindOf(err), err)
			if err == nil {
				_, err = pub.Send([]byte("intruder"))
				fmt.Printf("send %s %v\n", kindOf(err), err)
				pub.Close()
			}
			svc.Close()
		}
		node.Close()
	}
	// 2. The namespace's shared memory, opened directly.
	var writable, readable, total int
	entries, _ := os.ReadDir("/dev/shm")
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), ns.prefix) {
			continue
		}
		total++
		if f, err := os.OpenFile(filepath.Join("/dev/shm", e.Name()), os.O_RDWR, 0); err == nil {
			writable++
			f.Close()
		}
		if f, err := os.Open(filepath.Join("/dev/shm", e.Name())); err == nil {
			readable++
			f.Close()
		}
	}
	fmt.Printf("shm total %d writable %d readable %d\n", total, writable, readable)
	// 3. The root folder, written directly.
	f, err := os.OpenFile(filepath.Join(ns.root, "services", "intruder"), os.O_CREATE|os.O_WRONLY, 0o666)
	if err == nil {
		f.Close()
	}
	fmt.Printf("root-write %v\n", err == nil)
	// 4. The same prefix with a root folder of its own: it cannot see root's
	// services, and creating one of the same name collides with root's objects.
	own, err := iox.NewNode(iox.WithIsolation(ns.prefix, os.Getenv("IOX_OWN_ROOT")))
	fmt.Printf("own-root-node %s %v\n", kindOf(err), err)
	if err == nil {
		_, err = own.PublishSubscribe("guarded", iox.OpenOnly())
		fmt.Printf("own-root-open %s\n", kindOf(err))
		svc, err := own.PublishSubscribe("guarded")
		fmt.Printf("own-root-create %s %v\n", kindOf(err), err)
		if err == nil {
			pub, err := svc.Publisher()
			fmt.Printf("own-root-publisher %s %v\n", kindOf(err), err)
			if err == nil {
				_, err = pub.Send([]byte("intruder"))
				fmt.Printf("own-root-send %s %v\n", kindOf(err), err)
				pub.Close()
			}
			svc.Close()
		}
		own.Close()
	}
	fmt.Println("done")
	return nil
}

func TestPermissions(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	svc, err := node.PublishSubscribe("guarded", iox.BufferSize(8))
	require.NoError(t, err)
	defer svc.Close()
	pub, err := svc.Publisher()
	require.NoError(t, err)
	defer pub.Close()
	sub, err := svc.Subscriber()
	require.NoError(t, err)
	defer sub.Close()
	ev, err := node.Event("guarded")
	require.NoError(t, err)
	defer ev.Close()
	lis, err := ev.Listener()
	require.NoError(t, err)
	defer lis.Close()
	a, err := iox.OpenPair(ctx, node, "guarded-pair")
	require.NoError(t, err)
	defer a.Close()
	b, err := iox.OpenPair(ctx, node, "guarded-pair")
	require.NoError(t, err)
	defer b.Close()
	_, err = pub.Send([]byte("from root"))
	require.NoError(t, err)

	shmModes := map[string]fs.FileMode{}
	for _, name := range leftovers(ns.prefix) {
		info, err := os.Stat(filepath.Join("/dev/shm", name))
		require.NoError(t, err)
		shmModes[name] = info.Mode()
		assert.Zero(t, info.Mode().Perm()&0o002, "%s is writable by others (%v)", name, info.Mode())
		assert.Zero(t, info.Mode().Perm()&0o020, "%s is writable by the group (%v)", name, info.Mode())
	}
	rootModes := map[string]fs.FileMode{}
	dirModes := map[string]fs.FileMode{}
	filepath.Walk(ns.root, func(p string, info os.FileInfo, err error) error {
		require.NoError(t, err)
		if info.IsDir() {
			dirModes[p] = info.Mode()
		} else {
			rootModes[p] = info.Mode()
		}
		assert.Zero(t, info.Mode().Perm()&0o002, "%s is writable by others (%v)", p, info.Mode())
		return nil
	})
	require.NotEmpty(t, shmModes)
	t.Logf("/dev/shm objects of one namespace (pub-sub, event, pair): %v", modeSummary(shmModes))
	t.Logf("files under the root folder: %v; folders: %v", modeSummary(rootModes), modeSummary(dirModes))

	if os.Geteuid() != 0 {
		t.Log("not root: the unprivileged peer part needs root to switch users")
		return
	}
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Skipf("no user nobody: %v", err)
	}
	uid, _ := strconv.Atoi(nobody.Uid)
	gid, _ := strconv.Atoi(nobody.Gid)
	// The unprivileged child cannot read the test binary or the native library
	// where the build put them: copy both to a folder it can read.
	dir, err := os.MkdirTemp("", "iox-perm-")
	require.NoError(t, err)
	defer os.RemoveAll(dir)
	require.NoError(t, os.Chmod(dir, 0o755))
	bin := filepath.Join(dir, "iox.test")
	copyFile(t, os.Args[0], bin, 0o755)
	lib, err := loader.Open("")
	require.NoError(t, err)
	so := filepath.Join(dir, filepath.Base(lib.Path))
	copyFile(t, lib.Path, so, 0o644)
	writable := func(name string) string {
		p := filepath.Join(dir, name) + "/"
		require.NoError(t, os.Mkdir(p, 0o777))
		require.NoError(t, os.Chmod(p, 0o777))
		return p
	}
	ctlPrefix := fmt.Sprintf("%s_%d_ctl_", runPrefix(), nsCounter.Add(1))
	env := append(ns.env(), "IOX_CHILD=rel-intruder", loader.EnvVar+"="+so, "HOME="+dir,
		"IOX_CONTROL_PREFIX="+ctlPrefix, "IOX_CONTROL_ROOT="+writable("ctl"), "IOX_OWN_ROOT="+writable("own"))
	cmd := exec.CommandContext(ctx, bin, "-test.run=^$")
	cmd.Env = env
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	out, err := cmd.CombinedOutput()
	text := string(out)
	t.Logf("unprivileged peer (uid %d):\n%s", uid, text)
	require.NoError(t, err)
	for _, name := range leftovers(ctlPrefix) { // the control namespace's counter segment
		os.Remove(filepath.Join("/dev/shm", name))
	}
	report := map[string]string{}
	for _, l := range strings.Split(text, "\n") {
		if f := strings.Fields(l); len(f) >= 2 {
			report[f[0]] = strings.Join(f[1:], " ")
		}
	}
	require.Contains(t, text, "control ok", "the unprivileged peer can use iox in its own namespace")
	require.Contains(t, text, "done")
	nodeKind := firstField(report["node"])
	if nodeKind == "nil" {
		// It got a node: then the service must still be closed to it.
		assert.NotEqual(t, "nil", firstField(report["open-service"]), "opened root's service")
		assert.NotContains(t, report, "send", "sent into root's service")
	} else {
		assert.Equal(t, "ErrPermission", nodeKind, "refused as a permission problem: %s", report["node"])
	}
	var total, w, r int
	_, err = fmt.Sscanf(report["shm"], "total %d writable %d readable %d", &total, &w, &r)
	require.NoError(t, err, report["shm"])
	assert.Positive(t, total)
	assert.Zero(t, w, "shared memory writable by another user")
	assert.Equal(t, "false", report["root-write"], "root folder writable by another user")
	// With the same prefix but a root folder of its own, a node of the other
	// user sees none of root's services (and what it sends does not reach
	// root's, see below); where the prefix's shared memory refuses it a node,
	// that is a permission problem and is reported as one.
	if ownKind := firstField(report["own-root-node"]); ownKind == "nil" {
		assert.Equal(t, "ErrServiceNotFound", report["own-root-open"], "saw root's service from a root folder of its own")
	} else {
		assert.Equal(t, "ErrPermission", ownKind, "refused as a permission problem: %s", report["own-root-node"])
	}

	// Root's service is untouched and still works.
	buf := make([]byte, 64)
	k, ok, err := sub.TryReceive(buf)
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, "from root", string(buf[:k]))
	_, ok, err = sub.TryReceive(buf)
	require.NoError(t, err)
	assert.False(t, ok, "nothing from the intruder")
	require.NoError(t, a.Send(ctx, []byte("still private")))
	m, err := b.Recv(ctx)
	require.NoError(t, err)
	assert.Equal(t, "still private", string(m))
}

func firstField(s string) string {
	if f := strings.Fields(s); len(f) > 0 {
		return f[0]
	}
	return ""
}

func copyFile(t *testing.T, from, to string, mode os.FileMode) {
	t.Helper()
	in, err := os.Open(from)
	require.NoError(t, err)
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	require.NoError(t, err)
	_, err = io.Copy(out, in)
	require.NoError(t, err)
	require.NoError(t, out.Close())
	require.NoError(t, os.Chmod(to, mode))
}
