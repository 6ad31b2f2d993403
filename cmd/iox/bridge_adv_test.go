package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/iox-go/iox"
)

// TestAdvBridgeCommandRefusesAbsurdFlags: flags that would be ignored, or a
// setting that cannot work, end the command at once with a usage error
// (exit 2) or an error (exit 1) that names the flag; none relays.
func TestAdvBridgeCommandRefusesAbsurdFlags(t *testing.T) {
	dir := t.TempDir()
	junk := filepath.Join(dir, "junk.pem")
	require.NoError(t, os.WriteFile(junk, []byte("not a certificate"), 0o600))
	missing := filepath.Join(dir, "missing.pem")
	store := t.TempDir()
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		// TLS flags that would be ignored: the server would run without TLS.
		{[]string{"-listen", "127.0.0.1:0", "-store", store, "-tls-key", junk, "-export", "x"}, 2, "-tls-key"},
		{[]string{"-nats", "nats://127.0.0.1:1", "-tls-key", junk, "-import", "x"}, 2, "-tls-key"},
		{[]string{"-listen", "127.0.0.1:0", "-store", store, "-tls-ca", junk, "-export", "x"}, 2, "-tls-ca"},
		{[]string{"-listen", "127.0.0.1:0", "-store", store, "-max-message", "-1", "-export", "x"}, 2, "-max-message"},
		// Probes: refused already.
		{[]string{"-listen", "[::]:0", "-store", store, "-export", "x"}, 1, "needs authentication"},
		{[]string{"-listen", ":0", "-store", store, "-export", "x"}, 1, "name the address"},
		{[]string{"-listen", "127.0.0.1:0", "-store", store, "-tls-cert", missing, "-tls-key", missing, "-export", "x"}, 1, "-tls-cert"},
		{[]string{"-listen", "127.0.0.1:0", "-store", store, "-tls-cert", junk, "-tls-key", junk, "-export", "x"}, 1, "-tls-cert"},
		{[]string{"-listen", "127.0.0.1:0", "-store", store, "-subject", "a..b", "-export", "x"}, 1, "invalid argument"},
		{[]string{"-listen", "127.0.0.1:0", "-store", store, "-export", "["}, 1, "not a glob pattern"},
		{[]string{"-listen", "127.0.0.1:0", "-store", store, "-import", ""}, 1, "not a glob pattern"},
	} {
		ns := newNamespace(t)
		p := startLive(t, ns, append([]string{"bridge"}, c.args...)...)
		relayed := make(chan struct{})
		go func() {
			for l := range p.lines {
				if strings.HasPrefix(l, "relaying") {
					close(relayed)
				}
			}
		}()
		select {
		case <-p.done:
		case <-relayed:
			p.cmd.Process.Kill()
			<-p.done
			t.Fatalf("iox bridge %v relays", c.args)
		case <-time.After(20 * time.Second):
			t.Fatalf("iox bridge %v neither ended nor relayed", c.args)
		}
		require.Equal(t, c.code, p.cmd.ProcessState.ExitCode(), "iox bridge %v: %s", c.args, p.stderr.String())
		require.Contains(t, p.stderr.String(), c.want, "iox bridge %v", c.args)
	}
}

// TestAdvBridgeCommandRefusesASecondBridgeOfTheSameName: two commands on one
// host with the default -name (iox-bridge-HOSTNAME) would share their
// durable consumers; the second ends with exit status 1 and says why.
func TestAdvBridgeCommandRefusesASecondBridgeOfTheSameName(t *testing.T) {
	a, b := newNamespace(t), newNamespace(t)
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	pa := startLive(t, a, "bridge", "-listen", addr, "-store", t.TempDir(), "-export", "x/*")
	pa.expect(t, "relaying")
	_, errOut, code := runIox(t, &b, "", "bridge", "-nats", "nats://"+addr, "-import", "x/*")
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "-name")
	pb := startLive(t, b, "bridge", "-nats", "nats://"+addr, "-import", "x/*", "-name", "other")
	pb.expect(t, "relaying")
	require.Equal(t, 0, pb.stop(t, syscall.SIGTERM))
	require.Equal(t, 0, pa.stop(t, syscall.SIGTERM))
}

// TestAdvBridgeCommandSIGTERMLosesNothingItTook: SIGTERM of the exporting
// command while what the program flushed waits in the bridge: it exits 0
// after relaying it, and with the command back every message crosses once,
// in order.
func TestAdvBridgeCommandSIGTERMLosesNothingItTook(t *testing.T) {
	a, b := newNamespace(t), newNamespace(t)
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	pb := startLive(t, b, "bridge", "-listen", addr, "-store", t.TempDir(), "-import", "feed", "-name", "b")
	pb.expect(t, "relaying")
	pa := startLive(t, a, "bridge", "-nats", "nats://"+addr, "-export", "feed", "-name", "a")
	pa.expect(t, "relaying")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sub, err := iox.OpenSub(ctx, b.node(t), "feed")
	require.NoError(t, err)
	defer sub.Close()
	pub, err := iox.OpenPub(ctx, a.node(t), "feed")
	require.NoError(t, err)
	pa.expect(t, `start export lossless "feed"`)
	pb.expect(t, `start import lossless "feed"`)
	const n = 4000
	for i := range n {
		require.NoError(t, pub.Send(ctx, []byte(fmt.Sprintf("message %d", i))))
	}
	require.NoError(t, pub.Flush(ctx))
	require.Equal(t, 0, pa.stop(t, syscall.SIGTERM), pa.stderr.String())
	pa = startLive(t, a, "bridge", "-nats", "nats://"+addr, "-export", "feed", "-name", "a")
	pa.expect(t, "relaying")
	for i := range n {
		m, err := sub.Recv(ctx)
		require.NoError(t, err, "message %d", i)
		require.Equal(t, fmt.Sprintf("message %d", i), string(m))
	}
	require.NoError(t, pub.Close())
	require.Equal(t, 0, pa.stop(t, syscall.SIGTERM), pa.stderr.String())
	require.Equal(t, 0, pb.stop(t, syscall.SIGTERM), pb.stderr.String())
}
