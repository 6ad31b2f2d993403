package main

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/iox-go/iox"
)

// liveProcess is a command whose output lines the test reads as they come.
type liveProcess struct {
	cmd    *exec.Cmd
	lines  chan string
	stderr strings.Builder
	done   chan struct{}
}

func startLive(t *testing.T, ns isolated, args ...string) *liveProcess {
	t.Helper()
	args = append([]string{args[0], "-prefix", ns.prefix, "-root", ns.root}, args[1:]...)
	p := &liveProcess{cmd: exec.Command(os.Args[0], args...), lines: make(chan string, 1024), done: make(chan struct{})}
	p.cmd.Env = append(os.Environ(), runEnv+"=1", "GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	p.cmd.Stderr = &p.stderr
	out, err := p.cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, p.cmd.Start())
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
		io.Copy(io.Discard, out)
		p.cmd.Wait()
		close(p.lines)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// expect waits for a line that contains want and returns it.
func (p *liveProcess) expect(t *testing.T, want string) string {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case l, ok := <-p.lines:
			if !ok {
				t.Fatalf("%v ended before printing %q; stderr: %s", p.cmd.Args[1:], want, p.stderr.String())
			}
			if strings.Contains(l, want) {
				return l
			}
		case <-timeout:
			t.Fatalf("%v did not print %q", p.cmd.Args[1:], want)
		}
	}
}

// stop sends sig and waits for the exit status.
func (p *liveProcess) stop(t *testing.T, sig os.Signal) int {
	t.Helper()
	require.NoError(t, p.cmd.Process.Signal(sig))
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		t.Fatalf("%v did not end on %v", p.cmd.Args[1:], sig)
	}
	return p.cmd.ProcessState.ExitCode()
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func TestBridgeCommandConnectsTwoHosts(t *testing.T) {
	a, b := newNamespace(t), newNamespace(t)
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	pa := startLive(t, a, "bridge", "-listen", addr, "-store", t.TempDir(), "-export", "orders", "-export", "calc/*", "-name", "a")
	line := pa.expect(t, "relaying")
	require.Contains(t, line, addr)
	pb := startLive(t, b, "bridge", "-nats", "nats://"+addr, "-import", "**", "-json", "-name", "b")
	var st map[string]string
	require.NoError(t, json.Unmarshal([]byte(pb.expect(t, `"relaying"`)), &st))
	require.Equal(t, "relaying", st["event"])

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	nb := b.node(t)
	sub, err := iox.OpenSub(ctx, nb, "orders")
	require.NoError(t, err)
	na := a.node(t)
	pub, err := iox.OpenPub(ctx, na, "orders")
	require.NoError(t, err)
	pa.expect(t, `start export lossless "orders"`)
	st = nil
	require.NoError(t, json.Unmarshal([]byte(pb.expect(t, `"orders"`)), &st))
	require.Equal(t, map[string]string{"event": "start", "dir": "import", "kind": "lossless", "service": "orders"}, st)
	for i := range 200 {
		require.NoError(t, pub.Send(ctx, []byte(fmt.Sprintf("order %d", i))))
	}
	for i := range 200 {
		m, err := sub.Recv(ctx)
		require.NoError(t, err)
		require.Equal(t, fmt.Sprintf("order %d", i), string(m))
	}
	require.NoError(t, pub.Close())
	require.NoError(t, sub.Close())
	// The publisher is gone: the export stops, and says so.
	pa.expect(t, `stop export lossless "orders"`)

	require.Equal(t, 0, pb.stop(t, syscall.SIGINT))
	require.Equal(t, 0, pa.stop(t, syscall.SIGTERM), pa.stderr.String())
}

func TestBridgeCommandRefusesAnOpenListenerWithoutAuth(t *testing.T) {
	ns := newNamespace(t)
	_, errOut, code := runIox(t, &ns, "", "bridge", "-listen", "0.0.0.0:0", "-store", t.TempDir(), "-export", "x")
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "needs authentication")
	_, errOut, code = runIox(t, &ns, "", "bridge", "-export", "x")
	require.Equal(t, 2, code)
	require.Contains(t, errOut, "-nats or -listen")
	_, errOut, code = runIox(t, &ns, "", "bridge", "-nats", "nats://127.0.0.1:1")
	require.Equal(t, 2, code)
	require.Contains(t, errOut, "-export or -import")
}

func TestBridgeCommandListensWithTokenAndTLS(t *testing.T) {
	dir := t.TempDir()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "iox test"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	kb, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	certFile, keyFile := dir+"/cert.pem", dir+"/key.pem"
	require.NoError(t, os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
	require.NoError(t, os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600))
	a, b := newNamespace(t), newNamespace(t)
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	pa := startLive(t, a, "bridge", "-listen", addr, "-store", t.TempDir(), "-token", "s3cret",
		"-tls-cert", certFile, "-tls-key", keyFile, "-export", "x/*", "-name", "a")
	pa.expect(t, "relaying")
	// A client without the token is refused; with the token and the CA it relays.
	_, errOut, code := runIox(t, &b, "", "bridge", "-nats", "tls://"+addr, "-tls-ca", certFile, "-import", "x/*")
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "connect")
	pb := startLive(t, b, "bridge", "-nats", "tls://"+addr, "-token", "s3cret", "-tls-ca", certFile, "-import", "x/*", "-name", "b")
	pb.expect(t, "relaying")
	require.Equal(t, 0, pb.stop(t, syscall.SIGTERM))
	require.Equal(t, 0, pa.stop(t, syscall.SIGTERM))
}
