package iox_test

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/iox-go/iox"
)

// python returns the interpreter that has the iceoryx2 package of the pinned
// version: $IOX_PYTHON, or the virtual environment `make pyenv` creates.
func python(t *testing.T) string { return venvPython(t, "IOX_PYTHON", ".venv", "pyenv") }

// pyPeer starts internal/pypeer/peer.py in role and waits until it says "ready".
func pyPeer(t *testing.T, ns namespace, args ...string) (*exec.Cmd, *bufio.Scanner) {
	t.Helper()
	script := sourcePath("internal", "pypeer", "peer.py")
	cmd, _, sc := startPython(t, exec.Command(python(t), append([]string{script, args[0], args[1], ns.prefix, ns.root}, args[2:]...)...))
	require.True(t, sc.Scan(), "python peer exited early")
	require.Equal(t, "ready", sc.Text())
	return cmd, sc
}

func TestPythonVersionMatchesNativeLibrary(t *testing.T) {
	out, err := exec.Command(python(t), "-c", "import importlib.metadata as m; print(m.version('iceoryx2'))").Output()
	require.NoError(t, err)
	v, err := iox.IceoryxVersion()
	require.NoError(t, err)
	assert.Equal(t, v, strings.TrimSpace(string(out)))
}

func TestPythonPublisherToGoSubscriber(t *testing.T) {
	sizes := []int{0, 1, 63, 4096, 1 << 20, 7}
	ns := newNamespace(t)
	node := ns.node(t)
	svc, err := node.PublishSubscribe("py-to-go", iox.BufferSize(16), iox.SafeOverflow(false))
	require.NoError(t, err)
	defer svc.Close()
	sub, err := svc.Subscriber()
	require.NoError(t, err)
	defer sub.Close()

	var list []string
	for _, n := range sizes {
		list = append(list, strconv.Itoa(n))
	}
	cmd, _ := pyPeer(t, ns, "pub", "py-to-go", strings.Join(list, ","))

	buf := make([]byte, 2<<20)
	var got []int
	eventually(t, "messages from Python", func() bool {
		n, ok, err := sub.TryReceive(buf)
		require.NoError(t, err)
		if ok {
			assert.Equal(t, pattern(n, 0), buf[:n], "message %d", len(got))
			got = append(got, n)
		}
		return len(got) == len(sizes)
	})
	assert.Equal(t, sizes, got)
	require.NoError(t, sub.Close())
	require.NoError(t, waitTimeout(cmd, 20*time.Second))
}

func TestGoPublisherToPythonSubscriber(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	svc, err := node.PublishSubscribe("go-to-py", iox.BufferSize(16), iox.SafeOverflow(false))
	require.NoError(t, err)
	defer svc.Close()
	pub, err := svc.Publisher()
	require.NoError(t, err)
	defer pub.Close()

	cmd, lines := pyPeer(t, ns, "sub", "go-to-py", strconv.Itoa(len(crossSizes)))
	for _, n := range crossSizes {
		k, err := pub.Send(pattern(n, 0))
		require.NoError(t, err)
		require.Equal(t, 1, k)
	}
	for i, n := range crossSizes {
		require.True(t, lines.Scan(), "python stopped after %d messages", i)
		sum := sha256.Sum256(pattern(n, 0))
		assert.Equal(t, fmt.Sprintf("%d %s", n, hex.EncodeToString(sum[:])), lines.Text(), "message %d", i)
	}
	require.NoError(t, waitTimeout(cmd, 20*time.Second))
}
