package iox_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/iox-go/iox"
)

func init() {
	children["listing-node"] = childListingNode
}

// noHeader is the user header type of services without one.
var noHeader = iox.PayloadType{Name: "()", Size: 0, Align: 1, Fixed: true}

// childListingNode creates a node called after its pid, says so, and waits
// for the parent (which kills it).
func childListingNode() error {
	node, err := iox.NewNode(iox.WithIsolation(nsFromEnv().prefix, nsFromEnv().root),
		iox.WithNodeName(fmt.Sprintf("child-%d", os.Getpid())))
	if err != nil {
		return err
	}
	defer node.Close()
	fmt.Println("ready", os.Getpid())
	parentSays()
	return nil
}

func TestDescribeNameTellsIoxOwnServices(t *testing.T) {
	for _, c := range []struct{ name, base, role string }{
		{"cam.iox-pair0", "cam", iox.RolePair0},
		{"cam.iox-pair1", "cam", iox.RolePair1},
		{"a/b.iox-space", "a/b", iox.RoleSpace},
		{"ch.iox-ack.0123456789abcdef", "ch", iox.RoleAck},
		{"rpc.iox-req", "rpc", iox.RoleReq},
		{"rpc.iox-resp.000000000000000a0123456789abcdef", "rpc", iox.RoleResp},
		{"x.iox-ack.y.iox-ack.00000000000000ff", "x.iox-ack.y", iox.RoleAck},
		// names iox does not derive
		{"cam", "cam", ""},
		{".iox-pair0", ".iox-pair0", ""},
		{"cam.iox-pair2", "cam.iox-pair2", ""},
		{"ch.iox-ack.0123", "ch.iox-ack.0123", ""},
		{"ch.iox-ack.0123456789ABCDEF", "ch.iox-ack.0123456789ABCDEF", ""},
		{"rpc.iox-resp.xyz", "rpc.iox-resp.xyz", ""},
		{"cam.iox-space.more", "cam.iox-space.more", ""},
	} {
		base, role := iox.DescribeName(c.name)
		require.Equal(t, c.base, base, c.name)
		require.Equal(t, c.role, role, c.name)
	}
}

// services maps "name pattern" to the listed service.
func services(t *testing.T, node *iox.Node) map[string]iox.ServiceInfo {
	t.Helper()
	list, err := node.Services()
	require.NoError(t, err)
	out := map[string]iox.ServiceInfo{}
	for i, s := range list {
		if i > 0 {
			prev := list[i-1]
			require.True(t, prev.Name < s.Name || prev.Name == s.Name && prev.Pattern < s.Pattern, "sorted: %s before %s", prev.Name, s.Name)
		}
		out[s.Name+" "+s.Pattern.String()] = s
	}
	return out
}

func TestServicesListsEveryPatternWithItsSettingsAndPorts(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := context.Background()

	pair, err := iox.OpenPair(ctx, node, "pair")
	require.NoError(t, err)
	defer pair.Close()
	pub, err := iox.OpenPub(ctx, node, "lossless")
	require.NoError(t, err)
	defer pub.Close()
	sub, err := iox.OpenSub(ctx, node, "lossless")
	require.NoError(t, err)
	defer sub.Close()
	lossy, err := iox.OpenPub(ctx, node, "lossy", iox.Lossy(), iox.History(3))
	require.NoError(t, err)
	defer lossy.Close()
	ev, err := node.Event("bell", iox.MaxEventID(42), iox.MaxListeners(5))
	require.NoError(t, err)
	defer ev.Close()
	var ports []interface{ Close() error }
	for _, mk := range []func() (interface{ Close() error }, error){
		func() (interface{ Close() error }, error) { return ev.Notifier() },
		func() (interface{ Close() error }, error) { return ev.Listener() },
		func() (interface{ Close() error }, error) { return ev.Listener() },
	} {
		p, err := mk()
		require.NoError(t, err)
		ports = append(ports, p)
	}
	defer func() {
		for _, p := range ports {
			p.Close()
		}
	}()
	srv, err := iox.OpenServer(ctx, node, "rpc", iox.Raw{}, iox.Raw{})
	require.NoError(t, err)
	defer srv.Close()
	cli, err := iox.OpenClient(ctx, node, "rpc", iox.Raw{}, iox.Raw{})
	require.NoError(t, err)
	defer cli.Close()

	// A separate node looks, as a tool would.
	look := ns.node(t, iox.WithoutAutoCleanup())
	got := services(t, look)

	ll := got["lossless publish-subscribe"]
	require.NotNil(t, ll.PubSub)
	require.True(t, ll.PubSub.Lossless())
	require.Equal(t, iox.Bytes, ll.PubSub.Payload)
	require.Equal(t, "iox::Header", ll.PubSub.UserHeader.Name)
	require.True(t, ll.PortsKnown)
	require.Equal(t, iox.PortCounts{Publishers: 1, Subscribers: 1}, ll.Ports)
	require.Equal(t, 1, ll.Nodes)
	require.Nil(t, ll.Event)
	require.Nil(t, ll.RequestResponse)

	ly := got["lossy publish-subscribe"]
	require.NotNil(t, ly.PubSub)
	require.False(t, ly.PubSub.Lossless())
	require.True(t, ly.PubSub.SafeOverflow)
	require.Equal(t, 3, ly.PubSub.History)
	require.Equal(t, noHeader, ly.PubSub.UserHeader)
	require.Equal(t, iox.PortCounts{Publishers: 1}, ly.Ports)

	bell := got["bell event"]
	require.NotNil(t, bell.Event)
	require.Equal(t, iox.EventID(42), bell.Event.MaxEventID)
	require.Equal(t, 5, bell.Event.MaxListeners)
	require.Equal(t, iox.PortCounts{Notifiers: 1, Listeners: 2}, bell.Ports)
	require.True(t, bell.PortsKnown)

	rpc := got["rpc request-response"]
	require.NotNil(t, rpc.RequestResponse)
	require.Equal(t, iox.Bytes, rpc.RequestResponse.RequestType)
	require.Equal(t, iox.Bytes, rpc.RequestResponse.ResponseType)
	require.Equal(t, noHeader, rpc.RequestResponse.RequestHeader)
	require.Equal(t, noHeader, rpc.RequestResponse.ResponseHeader)
	require.Equal(t, iox.PortCounts{Clients: 1, Servers: 1}, rpc.Ports)

	// iox's own services, each told apart by its name.
	roles := map[string]string{}
	for _, s := range got {
		if base, role := iox.DescribeName(s.Name); role != "" {
			roles[base+" "+role] = s.Pattern.String()
		}
	}
	for _, want := range []string{"pair pair0", "pair pair1", "lossless space", "lossy space", "rpc req", "rpc resp"} {
		require.Contains(t, roles, want)
	}
	require.Equal(t, "publish-subscribe", got["pair.iox-pair0 publish-subscribe"].Pattern.String())
	require.True(t, got["pair.iox-pair0 publish-subscribe"].PubSub.Lossless())
	// The channels' data events carry the channel's own name.
	require.Contains(t, got, "lossless event")

	// The settings of one request-response service, without joining it.
	cfg, err := look.RequestResponseSettings("rpc")
	require.NoError(t, err)
	require.Equal(t, *rpc.RequestResponse, cfg)
	_, err = look.RequestResponseSettings("no-such")
	require.ErrorIs(t, err, iox.ErrServiceNotFound)

	// Once everything is closed, nothing is listed.
	for _, c := range []interface{ Close() error }{cli, srv, lossy, sub, pub, pair} {
		require.NoError(t, c.Close())
	}
	for _, p := range ports {
		require.NoError(t, p.Close())
	}
	ports = nil
	require.NoError(t, ev.Close())
	list, err := look.Services()
	require.NoError(t, err)
	require.Empty(t, list)
}

func TestNodesShowDeadNodesUntilCleanup(t *testing.T) {
	ns := newNamespace(t)
	self := ns.node(t, iox.WithNodeName("parent"))
	selfID, err := self.ID()
	require.NoError(t, err)

	c := spawn(t, ns, "listing-node")
	pid, err := strconv.Atoi(c.expectPrefix("ready"))
	require.NoError(t, err)
	c.kill()

	look := ns.node(t, iox.WithoutAutoCleanup())
	lookID, err := look.ID()
	require.NoError(t, err)
	nodes, err := look.Nodes()
	require.NoError(t, err)
	require.Len(t, nodes, 3)
	byID := map[iox.UniqueID]iox.NodeInfo{}
	for _, n := range nodes {
		byID[n.ID] = n
	}
	me := byID[selfID]
	require.Equal(t, iox.NodeInfo{ID: selfID, Name: "parent", Executable: me.Executable, PID: os.Getpid(), State: iox.NodeAlive, Running: true}, me)
	require.NotEmpty(t, me.Executable)
	require.Equal(t, iox.NodeAlive, byID[lookID].State)
	var dead []iox.NodeInfo
	for _, n := range nodes {
		if n.State == iox.NodeDead {
			dead = append(dead, n)
		}
	}
	require.Len(t, dead, 1)
	require.Equal(t, pid, dead[0].PID)
	require.Equal(t, fmt.Sprintf("child-%d", pid), dead[0].Name)
	require.False(t, dead[0].Running)
	require.Equal(t, "dead", dead[0].State.String())

	cleaned, err := look.CleanupDeadNodes()
	require.NoError(t, err)
	require.Equal(t, 1, cleaned)
	nodes, err = look.Nodes()
	require.NoError(t, err)
	require.Len(t, nodes, 2)
	for _, n := range nodes {
		require.Equal(t, iox.NodeAlive, n.State)
	}

	// Without WithoutAutoCleanup, a new node removes the dead ones itself.
	c = spawn(t, ns, "listing-node")
	c.expectPrefix("ready")
	c.kill()
	auto := ns.node(t)
	nodes, err = auto.Nodes()
	require.NoError(t, err)
	require.Len(t, nodes, 3)
	for _, n := range nodes {
		require.Equal(t, iox.NodeAlive, n.State)
	}
	cleaned, err = look.CleanupDeadNodes()
	require.NoError(t, err)
	require.Zero(t, cleaned)
}

func TestListingAClosedNodeIsErrClosed(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	require.NoError(t, node.Close())
	_, err := node.Services()
	require.ErrorIs(t, err, iox.ErrClosed)
	_, err = node.Nodes()
	require.ErrorIs(t, err, iox.ErrClosed)
	_, err = node.ID()
	require.ErrorIs(t, err, iox.ErrClosed)
	_, err = node.RequestResponseSettings("x")
	require.ErrorIs(t, err, iox.ErrClosed)
}

func TestPatternAndNodeStateNames(t *testing.T) {
	require.Equal(t, "event", iox.PatternEvent.String())
	require.Equal(t, "request-response", iox.PatternRequestResponse.String())
	require.Equal(t, "blackboard", iox.PatternBlackboard.String())
	require.Equal(t, "Pattern(9)", iox.Pattern(9).String())
	require.Equal(t, "inaccessible", iox.NodeInaccessible.String())
	require.Equal(t, "undefined", iox.NodeUndefined.String())
	require.Equal(t, "NodeState(7)", iox.NodeState(7).String())
}
