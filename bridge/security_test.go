package bridge_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"net"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/iox-go/iox"
	"github.com/iox-go/iox/bridge"
)

func TestListenRefusesAnOpenAddressWithoutAuthentication(t *testing.T) {
	_, err := bridge.Listen(bridge.ListenConfig{Addr: "0.0.0.0:0", StoreDir: t.TempDir()})
	require.ErrorIs(t, err, iox.ErrInvalidArgument)
	require.Contains(t, err.Error(), "needs authentication")
	// Loopback needs nothing; a token is enforced once given.
	s := natsServer(t, bridge.ListenConfig{Token: "s3cret"})
	_, err = nats.Connect(s.ClientURL(), nats.MaxReconnects(0))
	require.Error(t, err, "a client without the token")
	nc := connect(t, s.ClientURL(), nats.Token("s3cret"))
	require.True(t, nc.IsConnected())
}

// New refuses a nil context, node or connection with ErrInvalidArgument
// naming it, and panics on none of them.
func TestNewRefusesNilArguments(t *testing.T) {
	var noCtx context.Context
	for _, c := range []struct {
		ctx  context.Context
		says string
	}{{noCtx, "ctx is nil"}, {context.Background(), "Config.Node and Config.Conn are required"}} {
		b, err := bridge.New(c.ctx, bridge.Config{})
		require.Nil(t, b)
		var e *iox.Error
		require.ErrorAs(t, err, &e)
		require.ErrorIs(t, err, iox.ErrInvalidArgument)
		require.Contains(t, e.Detail, c.says)
	}
}

func TestAPayloadTypeMismatchIsRefusedAsLocally(t *testing.T) {
	th := newTwoHosts(t, []string{"typed"}, []string{"typed"}, nil)
	ctx := ctxT(t)
	u32 := iox.PayloadType{Name: "u32", Size: 4, Align: 4}
	// B already has "typed" carrying u32 slices; A publishes bytes.
	subB, err := iox.OpenSubOf[[]byte](ctx, th.b, "typed", typedCodec{u32}, iox.Lossy())
	require.NoError(t, err)
	defer subB.Close()
	pub, err := iox.OpenPub(ctx, th.a, "typed", iox.Lossy())
	require.NoError(t, err)
	defer pub.Close()
	defer func() {
		if t.Failed() {
			t.Logf("A: %v\nB: %v", th.logA.all, th.logB.all)
		}
	}()
	eventually(t, "the refusal on B", func() bool { return len(th.logB.errors()) > 0 })
	require.ErrorIs(t, th.logB.errors()[0], iox.ErrIncompatibleType)
	require.Empty(t, th.bb.Routes())
}

type typedCodec struct{ pt iox.PayloadType }

func (c typedCodec) PayloadType() iox.PayloadType              { return c.pt }
func (typedCodec) Append(dst []byte, v []byte) ([]byte, error) { return append(dst, v...), nil }
func (typedCodec) Decode(b []byte) ([]byte, error)             { return append([]byte(nil), b...), nil }

func TestTwoClusteredServersOnePerHost(t *testing.T) {
	p1, p2 := freePort(t), freePort(t)
	route := func(p int) []string { return []string{fmt.Sprintf("nats://127.0.0.1:%d", p)} }
	s1 := natsServer(t, bridge.ListenConfig{ServerName: "one", ClusterName: "iox", ClusterAddr: fmt.Sprintf("127.0.0.1:%d", p1), Routes: route(p2)})
	s2 := natsServer(t, bridge.ListenConfig{ServerName: "two", ClusterName: "iox", ClusterAddr: fmt.Sprintf("127.0.0.1:%d", p2), Routes: route(p1)})
	eventually(t, "the cluster", func() bool { return s1.NumRoutes() > 0 && s2.NumRoutes() > 0 })
	js, err := jetstream.New(connect(t, s2.ClientURL()))
	require.NoError(t, err)
	eventually(t, "JetStream of the cluster", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := js.AccountInfo(ctx)
		return err == nil
	})
	na, nb := newHost(t).node(t), newHost(t).node(t)
	_, logA := startBridge(t, na, connect(t, s1.ClientURL()), bridge.Config{Export: []string{"c/*"}})
	_, logB := startBridge(t, nb, connect(t, s2.ClientURL()), bridge.Config{Import: []string{"c/*"}})
	ctx := ctxT(t)
	serve(t, na, "c/echo", 2, echo)
	sub, err := iox.OpenSub(ctx, nb, "c/feed")
	require.NoError(t, err)
	defer sub.Close()
	pub, err := iox.OpenPub(ctx, na, "c/feed")
	require.NoError(t, err)
	eventually(t, "the imports", func() bool {
		return logB.has("start", "import", "c/feed") && logB.has("start", "import", "c/echo")
	})
	cl, err := iox.OpenClient(ctx, nb, "c/echo", iox.Raw{}, iox.Raw{})
	require.NoError(t, err)
	defer cl.Close()
	resp, err := cl.Call(ctx, []byte("across the cluster"))
	require.NoError(t, err)
	require.Equal(t, "across the cluster", string(resp))
	for i := range 100 {
		require.NoError(t, pub.Send(ctx, seqMsg(i, 64)))
	}
	for i := range 100 {
		m, err := sub.Recv(ctx)
		require.NoError(t, err)
		require.Equal(t, seqMsg(i, 64), m)
	}
	require.NoError(t, pub.Close())
	require.Empty(t, logA.errors())
	require.Empty(t, logB.errors())
}

func TestListenOffersTLS(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "iox test"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	s := natsServer(t, bridge.ListenConfig{Token: "t", TLS: &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}, MinVersion: tls.VersionTLS12}})
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	nc := connect(t, s.ClientURL(), nats.Token("t"), nats.Secure(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}))
	require.True(t, nc.TLSRequired())
	_, err = nats.Connect(s.ClientURL(), nats.Token("t"), nats.MaxReconnects(0)) // no CA: the server is not trusted
	require.Error(t, err)
}

// bridgePermissions are the subjects the README says a bridge's NATS user
// needs (with the default Subject "iox"): its own, the replies of requests,
// and JetStream's API and acknowledgements.
func bridgePermissions() *server.Permissions {
	return &server.Permissions{
		Publish:   &server.SubjectPermission{Allow: []string{"iox.>", "_INBOX.>", "$JS.API.>", "$JS.ACK.>"}},
		Subscribe: &server.SubjectPermission{Allow: []string{"iox.>", "_INBOX.>"}},
	}
}

// Two bridges whose users may use only the subjects the README lists relay
// a call, a lossless channel and a lossy one; a user of the same server
// without those permissions cannot put a frame on a bridge's subject (the
// server refuses it), so the subscriber gets exactly what the publisher sent,
// and each message is acknowledged.
func TestBridgesNeedOnlyTheirDocumentedPermissions(t *testing.T) {
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoSigs: true, NoLog: true,
		Users: []*server.User{
			{Username: "bridge-a", Password: "a", Permissions: bridgePermissions()},
			{Username: "bridge-b", Password: "b", Permissions: bridgePermissions()},
			{Username: "app", Password: "p", Permissions: &server.Permissions{
				Publish: &server.SubjectPermission{Allow: []string{"app.>"}}, Subscribe: &server.SubjectPermission{Allow: []string{"app.>"}}}},
		}})
	require.NoError(t, err)
	go s.Start()
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	require.True(t, s.ReadyForConnections(10*time.Second))
	na, nb := newHost(t).node(t), newHost(t).node(t)
	_, logA := startBridge(t, na, connect(t, s.ClientURL(), nats.UserInfo("bridge-a", "a")), bridge.Config{Export: []string{"p/*"}})
	_, logB := startBridge(t, nb, connect(t, s.ClientURL(), nats.UserInfo("bridge-b", "b")), bridge.Config{Import: []string{"p/*"}})
	defer func() {
		if t.Failed() {
			t.Logf("A: %v\nB: %v", logA.all, logB.all)
		}
	}()
	ctx := ctxT(t)
	serve(t, na, "p/echo", 2, echo)
	sub, err := iox.OpenSub(ctx, nb, "p/feed")
	require.NoError(t, err)
	defer sub.Close()
	pub, err := iox.OpenPub(ctx, na, "p/feed")
	require.NoError(t, err)
	lossySub, err := iox.OpenSub(ctx, nb, "p/lossy", iox.Lossy())
	require.NoError(t, err)
	defer lossySub.Close()
	lossyPub, err := iox.OpenPub(ctx, na, "p/lossy", iox.Lossy())
	require.NoError(t, err)
	defer lossyPub.Close()
	eventually(t, "the imports", func() bool {
		return logB.has("start", "import", "p/feed") && logB.has("start", "import", "p/echo") && logB.has("start", "import", "p/lossy")
	})

	refused := make(chan error, 4)
	app := connect(t, s.ClientURL(), nats.UserInfo("app", "p"), nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		select {
		case refused <- err:
		default:
		}
	}))
	forged := nats.NewMsg(bridge.Subject("iox", "ll", "p/feed"))
	forged.Header.Set("Iox-Origin", "intruder")
	forged.Data = seqMsg(0, 64)
	require.NoError(t, app.PublishMsg(forged))
	require.NoError(t, app.Flush())
	select {
	case err := <-refused:
		require.ErrorIs(t, err, nats.ErrPermissionViolation)
	case <-ctx.Done():
		t.Fatal("the server did not refuse the forged frame")
	}

	cl, err := iox.OpenClient(ctx, nb, "p/echo", iox.Raw{}, iox.Raw{})
	require.NoError(t, err)
	defer cl.Close()
	resp, err := cl.Call(ctx, []byte("with its permissions only"))
	require.NoError(t, err)
	require.Equal(t, "with its permissions only", string(resp))
	for i := range 100 {
		require.NoError(t, pub.Send(ctx, seqMsg(i+1, 64)))
	}
	for i := range 100 {
		m, err := sub.Recv(ctx)
		require.NoError(t, err)
		require.Equal(t, seqMsg(i+1, 64), m, "message %d", i)
	}
	require.NoError(t, pub.Close())
	// Each message was acknowledged: the interest stream lets it go.
	js, err := jetstream.New(connect(t, s.ClientURL(), nats.UserInfo("bridge-a", "a")))
	require.NoError(t, err)
	eventually(t, "the stream to let every message go", func() bool {
		st, err := js.Stream(ctx, "IOX_LOSSLESS")
		return err == nil && st.CachedInfo().State.Msgs == 0
	})
	m := sendUntilOneCrosses(t, ctx, lossyPub, lossySub, func(int) []byte { return []byte("lossy") })
	require.Equal(t, "lossy", string(m))
	require.Empty(t, logA.errors())
	require.Empty(t, logB.errors())
}
