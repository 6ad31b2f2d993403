package iox_test

// Versions: a peer of another iceoryx2 release is refused with
// ErrVersionMismatch, in both directions. (A native library of another ABI
// version is refused by the loader; see TestWrongABIVersion in errors_test.go.)

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/iox-go/iox"
)

// oldPython returns a Python whose iceoryx2 package is an older release:
// $IOX_PYTHON_OLD, or the virtual environment `make pyenv-old` creates.
func oldPython(t *testing.T) string { return venvPython(t, "IOX_PYTHON_OLD", ".venv-old", "pyenv-old") }

func oldPeerScript() string { return sourcePath("internal", "pypeer", "oldpeer.py") }

func TestOlderIceoryx2PeerIsRefused(t *testing.T) {
	py := oldPython(t)
	mine, err := iox.IceoryxVersion()
	require.NoError(t, err)
	ns := newNamespace(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	// The older peer creates a [u8] service; iox must refuse it, not misread it.
	cmd, stdin, sc := startPython(t, exec.CommandContext(ctx, py, oldPeerScript(), "create", "old-made", ns.prefix, ns.root))
	require.True(t, sc.Scan(), "old peer exited early")
	theirs := strings.TrimPrefix(sc.Text(), "version ")
	require.NotEqual(t, mine, theirs, "the old peer must use another iceoryx2 release")
	require.True(t, sc.Scan(), "old peer exited early")
	require.Equal(t, "ready", sc.Text())

	node := ns.node(t)
	for _, tc := range []struct {
		what string
		open func() error
	}{
		{"open-only", func() error { _, err := node.PublishSubscribe("old-made", iox.OpenOnly()); return err }},
		{"open-or-create", func() error { _, err := node.PublishSubscribe("old-made"); return err }},
		{"subscriber channel", func() error { _, err := iox.OpenSub(ctx, node, "old-made", iox.Lossy()); return err }},
		{"publisher channel", func() error { _, err := iox.OpenPub(ctx, node, "old-made", iox.Lossy()); return err }},
	} {
		err := tc.open()
		t.Logf("iox %s opening a service of iceoryx2 %s: %v", mine, theirs, err)
		requireTyped(t, err, tc.what)
		assert.ErrorIs(t, err, iox.ErrVersionMismatch, "%s: refused as a version mismatch, not as %s", tc.what, kindOf(err))
		assert.Contains(t, err.Error(), "before 0.10", "%s: the error says which release made the service", tc.what)
	}
	_, err = node.PubSubSettings("old-made")
	assert.ErrorIs(t, err, iox.ErrVersionMismatch, "its settings cannot be read either, and the error says why")
	stdin.Close()
	require.NoError(t, waitTimeout(cmd, 20*time.Second))

	// iox creates a service; the older peer must fail to open it.
	svc, err := node.PublishSubscribe("go-made")
	require.NoError(t, err)
	defer svc.Close()
	p, err := svc.Publisher()
	require.NoError(t, err)
	defer p.Close()
	out, err := exec.CommandContext(ctx, py, oldPeerScript(), "open", "go-made", ns.prefix, ns.root).CombinedOutput()
	t.Logf("iceoryx2 %s opening a service of iox (iceoryx2 %s): %v\n%s", theirs, mine, err, out)
	var exit *exec.ExitError
	require.ErrorAs(t, err, &exit, "the older peer must fail")
	assert.Equal(t, 3, exit.ExitCode(), "refused by iceoryx2, not a crash")
	assert.Contains(t, string(out), "refused:")

	// The namespace still works for iox after meeting the older release.
	a, err := iox.OpenPair(ctx, node, "after-old")
	require.NoError(t, err)
	defer a.Close()
	b, err := iox.OpenPair(ctx, node, "after-old")
	require.NoError(t, err)
	defer b.Close()
	require.NoError(t, a.Send(ctx, []byte("ok")))
	m, err := b.Recv(ctx)
	require.NoError(t, err)
	assert.Equal(t, "ok", string(m))
}
