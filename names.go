package iox

import "strings"

// iox's channels and adapters use services of their own besides the one named
// by the user (see pair.go, pubsub.go, client.go, pipeline.go). DescribeName tells them
// apart, so that a listing can show them for what they are.

// Roles of the services iox derives from a channel's name, as DescribeName
// gives them.
const (
	RolePair0 = "pair0" // NAME.iox-pair0: the messages and events of a pair's first end
	RolePair1 = "pair1" // NAME.iox-pair1: those of its second end
	RoleSpace = "space" // NAME.iox-space: a lossless channel's signals from subscribers to publishers
	RoleAck   = "ack"   // NAME.iox-ack.<tag>: confirmations of one closing lossless publisher
	RoleReq   = "req"   // NAME.iox-req: wake-ups of a request/response adapter's servers
	RoleResp  = "resp"  // NAME.iox-resp.<client id>: wake-ups of one request/response client
	RolePush  = "push"  // NAME.iox-push: a pipeline's hellos, byes and wake-ups, from its pullers to its pushers
	RolePull  = "pull"  // NAME.iox-pull.<puller id>: the messages and wake-ups of one puller of a pipeline
)

// headerTypeName is the type name the native library gives iox's message
// header (wire.go) in the services that carry it: pairs and lossless channels.
const headerTypeName = "iox::Header"

// DescribeName reports whether the service name is one iox derives from a
// channel's name: then base is the channel's name and role one of the Role
// constants. For any other name base is name and role is "".
func DescribeName(name string) (base, role string) {
	for _, r := range []struct{ suffix, role string }{
		{pairSuffix(0), RolePair0},
		{pairSuffix(1), RolePair1},
		{spaceSuffix, RoleSpace},
		{rpcReqSuffix, RoleReq},
		{pushSuffix, RolePush},
	} {
		if b, ok := strings.CutSuffix(name, r.suffix); ok && b != "" {
			return b, r.role
		}
	}
	for _, r := range []struct {
		suffix, role string
		digits       int
	}{
		{ackSuffix, RoleAck, 16},
		{rpcRespSuffix, RoleResp, rpcIDLen},
		{pullSuffix, RolePull, pullIDLen},
	} {
		i := strings.LastIndex(name, r.suffix)
		if i > 0 && isLowerHex(name[i+len(r.suffix):], r.digits) {
			return name[:i], r.role
		}
	}
	return name, ""
}

// isLowerHex reports whether s is n lower-case hexadecimal digits, as %x
// writes them.
func isLowerHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !('0' <= s[i] && s[i] <= '9' || 'a' <= s[i] && s[i] <= 'f') {
			return false
		}
	}
	return true
}

// Lossless reports whether the service carries iox's lossless protocol: its
// messages have iox's header and a full subscriber holds publishers back (a
// lossless channel's service, or a pair's). A lossless channel is read and
// written through OpenSub and OpenPub without Lossy; any other
// publish-subscribe service with Lossy.
func (s PubSubSettings) Lossless() bool {
	return !s.SafeOverflow && s.UserHeader.Name == headerTypeName && s.UserHeader.Size == headerSize
}
