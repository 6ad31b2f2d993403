package main

// The bridge's NATS credentials: an NKey user of its own -listen server, and
// a credentials file (a user JWT and its seed) of an account on a server in
// operator mode. Each is tested with the right key, where messages cross, and
// with a wrong one, which the server refuses and the command reports.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"
	"github.com/stretchr/testify/require"

	"github.com/iox-go/iox"
)

// crossOne checks that messages published on a's "x/feed" reach a subscriber
// on b through the bridges pa (exporting) and pb (importing).
func crossOne(t *testing.T, a, b isolated, pa, pb *liveProcess) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sub, err := iox.OpenSub(ctx, b.node(t), "x/feed")
	require.NoError(t, err)
	defer sub.Close()
	pub, err := iox.OpenPub(ctx, a.node(t), "x/feed")
	require.NoError(t, err)
	pa.expect(t, `start export lossless "x/feed"`)
	pb.expect(t, `start import lossless "x/feed"`)
	for i := range 20 {
		require.NoError(t, pub.Send(ctx, []byte(fmt.Sprintf("m%d", i))))
	}
	for i := range 20 {
		m, err := sub.Recv(ctx)
		require.NoError(t, err)
		require.Equal(t, fmt.Sprintf("m%d", i), string(m))
	}
	require.NoError(t, pub.Close())
}

// userSeedFile writes a new NKey user's seed to a file and returns the file
// and the user's public key.
func userSeedFile(t *testing.T, dir, name string) (file, public string) {
	t.Helper()
	kp, err := nkeys.CreateUser()
	require.NoError(t, err)
	seed, err := kp.Seed()
	require.NoError(t, err)
	public, err = kp.PublicKey()
	require.NoError(t, err)
	file = filepath.Join(dir, name+".nk")
	require.NoError(t, os.WriteFile(file, seed, 0o600))
	return file, public
}

func TestBridgeCommandNKeyUsers(t *testing.T) {
	dir := t.TempDir()
	seedA, pubA := userSeedFile(t, dir, "a")
	seedB, pubB := userSeedFile(t, dir, "b")
	stranger, _ := userSeedFile(t, dir, "stranger")
	a, b := newNamespace(t), newNamespace(t)
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))

	// -nkey-users without the bridge's own key is a usage error.
	_, errOut, code := runIox(t, &a, "", "bridge", "-listen", addr, "-store", t.TempDir(), "-nkey-users", pubA, "-export", "x/*")
	require.Equal(t, 2, code)
	require.Contains(t, errOut, "-nkey SEEDFILE")

	pa := startLive(t, a, "bridge", "-listen", addr, "-store", t.TempDir(), "-nkey-users", pubA, "-nkey-users", pubB,
		"-nkey", seedA, "-export", "x/*", "-name", "a")
	pa.expect(t, "relaying")
	// A key the server does not list, and no key at all, are refused.
	_, errOut, code = runIox(t, &b, "", "bridge", "-nats", "nats://"+addr, "-nkey", stranger, "-import", "x/*")
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "Authorization Violation")
	_, errOut, code = runIox(t, &b, "", "bridge", "-nats", "nats://"+addr, "-import", "x/*")
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "Authorization Violation")
	// A file that holds no seed is reported as such.
	bad := filepath.Join(dir, "bad.nk")
	require.NoError(t, os.WriteFile(bad, []byte("not a seed\n"), 0o600))
	_, errOut, code = runIox(t, &b, "", "bridge", "-nats", "nats://"+addr, "-nkey", bad, "-import", "x/*")
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "-nkey")

	pb := startLive(t, b, "bridge", "-nats", "nats://"+addr, "-nkey", seedB, "-import", "x/*", "-name", "b")
	pb.expect(t, "relaying")
	crossOne(t, a, b, pa, pb)
	require.Equal(t, 0, pb.stop(t, syscall.SIGTERM))
	require.Equal(t, 0, pa.stop(t, syscall.SIGTERM))
}

// operatorServer runs a nats-server in operator mode: it trusts an operator
// whose account (with JetStream) the returned credentials file's user belongs
// to. Its system account is another account of the operator.
func operatorServer(t *testing.T) (url, creds string, other func(t *testing.T) string) {
	t.Helper()
	operator, err := nkeys.CreateOperator()
	require.NoError(t, err)
	opPub, err := operator.PublicKey()
	require.NoError(t, err)
	oc := jwt.NewOperatorClaims(opPub)
	oc.Name = "iox-test"
	opJWT, err := oc.Encode(operator)
	require.NoError(t, err)
	claims, err := jwt.DecodeOperatorClaims(opJWT)
	require.NoError(t, err)

	resolver := &server.MemAccResolver{}
	account := func(name string, js bool) nkeys.KeyPair {
		kp, err := nkeys.CreateAccount()
		require.NoError(t, err)
		pub, err := kp.PublicKey()
		require.NoError(t, err)
		ac := jwt.NewAccountClaims(pub)
		ac.Name = name
		if js {
			ac.Limits.JetStreamLimits = jwt.JetStreamLimits{MemoryStorage: -1, DiskStorage: -1, Streams: -1, Consumer: -1}
		}
		aj, err := ac.Encode(operator)
		require.NoError(t, err)
		require.NoError(t, resolver.Store(pub, aj))
		return kp
	}
	sys := account("SYS", false)
	app := account("APP", true)
	sysPub, err := sys.PublicKey()
	require.NoError(t, err)

	dir := t.TempDir()
	credsOf := func(acc nkeys.KeyPair, name string) string {
		user, err := nkeys.CreateUser()
		require.NoError(t, err)
		userPub, err := user.PublicKey()
		require.NoError(t, err)
		uc := jwt.NewUserClaims(userPub)
		uc.Name = name
		uj, err := uc.Encode(acc)
		require.NoError(t, err)
		seed, err := user.Seed()
		require.NoError(t, err)
		text, err := jwt.FormatUserConfig(uj, seed)
		require.NoError(t, err)
		file := filepath.Join(dir, name+".creds")
		require.NoError(t, os.WriteFile(file, text, 0o600))
		return file
	}
	opts := &server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, JetStream: true, StoreDir: t.TempDir(),
		NoSigs: true, NoLog: true, TrustedOperators: []*jwt.OperatorClaims{claims}, AccountResolver: resolver, SystemAccount: sysPub}
	s, err := server.NewServer(opts)
	require.NoError(t, err)
	go s.Start()
	require.True(t, s.ReadyForConnections(10*time.Second))
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	// A user of an account the operator never signed.
	other = func(t *testing.T) string {
		acc, err := nkeys.CreateAccount()
		require.NoError(t, err)
		return credsOf(acc, "stranger")
	}
	return s.ClientURL(), credsOf(app, "bridge"), other
}

func TestBridgeCommandCredentialsFile(t *testing.T) {
	url, creds, other := operatorServer(t)
	a, b := newNamespace(t), newNamespace(t)
	// Credentials of an account the server does not know are refused.
	_, errOut, code := runIox(t, &b, "", "bridge", "-nats", url, "-creds", other(t), "-import", "x/*")
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "Authorization Violation")
	// A missing file is named.
	_, errOut, code = runIox(t, &b, "", "bridge", "-nats", url, "-creds", filepath.Join(t.TempDir(), "none.creds"), "-import", "x/*")
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "none.creds")

	pa := startLive(t, a, "bridge", "-nats", url, "-creds", creds, "-export", "x/*", "-name", "a")
	pa.expect(t, "relaying")
	pb := startLive(t, b, "bridge", "-nats", url, "-creds", creds, "-import", "x/*", "-name", "b")
	pb.expect(t, "relaying")
	crossOne(t, a, b, pa, pb)
	require.Equal(t, 0, pb.stop(t, syscall.SIGTERM))
	require.Equal(t, 0, pa.stop(t, syscall.SIGTERM))
}

// The token from -token-file or $IOX_BRIDGE_TOKEN: messages cross, and the
// token is in neither bridge's command line (/proc/PID/cmdline), which every
// user of the machine can read; a wrong token from the environment is refused,
// and -token with -token-file, an empty file or a missing one are usage
// errors.
func TestBridgeCommandTokenOutOfTheProcessList(t *testing.T) {
	const secret = "t0ken-not-in-ps"
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	require.NoError(t, os.WriteFile(tokenFile, []byte(secret+"\n"), 0o600))
	empty := filepath.Join(dir, "empty")
	require.NoError(t, os.WriteFile(empty, []byte("\n"), 0o600))
	a, b := newNamespace(t), newNamespace(t)
	addr := fmt.Sprintf("0.0.0.0:%d", freePort(t)) // beyond loopback: refused without a token

	for _, c := range []struct {
		args []string
		says string
	}{
		{[]string{"-token", secret, "-token-file", tokenFile}, "not both"},
		{[]string{"-token-file", empty}, "the first line is empty"},
		{[]string{"-token-file", filepath.Join(dir, "missing")}, "-token-file"},
	} {
		args := append([]string{"bridge", "-listen", addr, "-store", t.TempDir(), "-export", "x/*"}, c.args...)
		_, errOut, code := runIox(t, &a, "", args...)
		require.Equal(t, 2, code, "%v", c.args)
		require.Contains(t, errOut, c.says, "%v", c.args)
	}

	pa := startLive(t, a, "bridge", "-listen", addr, "-store", t.TempDir(), "-token-file", tokenFile, "-export", "x/*", "-name", "a")
	pa.expect(t, "relaying")
	url := "nats://" + strings.Replace(addr, "0.0.0.0", "127.0.0.1", 1)
	t.Setenv("IOX_BRIDGE_TOKEN", "wrong")
	_, errOut, code := runIox(t, &b, "", "bridge", "-nats", url, "-import", "x/*")
	require.Equal(t, 1, code, "a wrong token is refused")
	require.Contains(t, errOut, "Authorization Violation")
	t.Setenv("IOX_BRIDGE_TOKEN", secret)
	pb := startLive(t, b, "bridge", "-nats", url, "-import", "x/*", "-name", "b")
	pb.expect(t, "relaying")
	for _, p := range []*liveProcess{pa, pb} {
		cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", p.cmd.Process.Pid))
		require.NoError(t, err)
		require.NotContains(t, string(cmdline), secret)
	}
	crossOne(t, a, b, pa, pb)
	require.Equal(t, 0, pb.stop(t, syscall.SIGTERM))
	require.Equal(t, 0, pa.stop(t, syscall.SIGTERM))
}
