package iox

import (
	"fmt"
	"sort"

	"github.com/iox-go/iox/internal/ffi"
	"github.com/iox-go/iox/internal/liveness"
)

// A namespace (see WithIsolation) holds services and nodes; Services and
// Nodes list them as iceoryx2 records them, whoever made them: programs in
// other languages, iox's own channels, crashed processes.

// Pattern is a service's messaging pattern.
type Pattern int

// Messaging patterns of iceoryx2.
const (
	PatternPublishSubscribe Pattern = ffi.PatternPublishSubscribe
	PatternEvent            Pattern = ffi.PatternEvent
	PatternRequestResponse  Pattern = ffi.PatternRequestResponse
	PatternBlackboard       Pattern = ffi.PatternBlackboard
)

func (p Pattern) String() string {
	switch p {
	case PatternPublishSubscribe:
		return "publish-subscribe"
	case PatternEvent:
		return "event"
	case PatternRequestResponse:
		return "request-response"
	case PatternBlackboard:
		return "blackboard"
	}
	return fmt.Sprintf("Pattern(%d)", int(p))
}

// PortCounts are the ports a service has now, by kind; only the kinds of the
// service's pattern are counted. Ports of crashed processes count until dead
// nodes are cleaned up.
type PortCounts struct {
	Publishers, Subscribers int
	Notifiers, Listeners    int
	Clients, Servers        int
	Writers, Readers        int // of a blackboard
}

// ServiceInfo describes one service of a namespace.
type ServiceInfo struct {
	Name    string
	Pattern Pattern
	// Nodes is how many nodes hold the service, those of crashed processes
	// not yet cleaned up included.
	Nodes int
	// Ports counts the ports in use. PortsKnown is false when the service
	// could not be opened to count them (it is being removed, or it admits no
	// further node).
	Ports      PortCounts
	PortsKnown bool
	// The settings in force, as the service's creator stored them: the one
	// of the service's pattern is set.
	PubSub          *PubSubSettings
	Event           *EventSettings
	RequestResponse *RequestResponseConfig
	Blackboard      *BlackboardSettings
}

// NodeState says whether a node's process is still there, as iceoryx2 sees it.
type NodeState int

// States of a node.
const (
	// NodeAlive: its process runs.
	NodeAlive NodeState = ffi.NodeAlive
	// NodeDead: its process died without removing the node; CleanupDeadNodes
	// removes what it left.
	NodeDead NodeState = ffi.NodeDead
	// NodeInaccessible: this process may not read the node's files (a node of
	// another user); NodeInfo.Running still tells whether its process runs.
	NodeInaccessible NodeState = ffi.NodeInaccessible
	// NodeUndefined: the node's files are incomplete (being created or removed).
	NodeUndefined NodeState = ffi.NodeUndefined
)

func (s NodeState) String() string {
	switch s {
	case NodeAlive:
		return "alive"
	case NodeDead:
		return "dead"
	case NodeInaccessible:
		return "inaccessible"
	case NodeUndefined:
		return "undefined"
	}
	return fmt.Sprintf("NodeState(%d)", int(s))
}

// NodeInfo describes one node of a namespace.
type NodeInfo struct {
	ID         UniqueID
	Name       string // "" for an unnamed node, or when its details cannot be read
	Executable string // file name of its process's executable, when known
	PID        int    // the process that created it (0 when its id does not say)
	State      NodeState
	// Running reports whether the node's process runs, as the operating
	// system sees it (its pid, guarded against reuse by its start time). It
	// also answers for nodes whose State is NodeInaccessible.
	Running bool
}

// ID returns the node's unique id, as NodeInfo.ID and PortInfo.Node give it.
func (n *Node) ID() (UniqueID, error) {
	h, ok := n.ref.acquire()
	if !ok {
		return UniqueID{}, closedError("node id", n.name)
	}
	defer n.ref.release()
	lo, hi, st := n.lib.NodeID(h)
	if st != ffi.OK {
		return UniqueID{}, statusError(n.lib, "node id", n.name, st, nil)
	}
	return UniqueID{Lo: lo, Hi: hi}, nil
}

// listingStart is the buffer a listing tries first; a longer listing says how
// much it needs.
const listingStart = 16 << 10

// listing runs the native listing fn into a buffer large enough for it.
func (n *Node) listing(op string, nh ffi.Handle, fn func(ffi.Handle, []byte, *ffi.ErrBuf) (int, int, ffi.Status)) ([]byte, int, error) {
	buf := make([]byte, listingStart)
	for {
		var eb ffi.ErrBuf
		needed, count, st := fn(nh, buf, &eb)
		if st == ffi.OK {
			return buf[:needed], count, nil
		}
		if st != ffi.EBufferTooSmall || needed <= len(buf) {
			return nil, 0, statusError(n.lib, op, n.name, st, &eb)
		}
		// The namespace may grow before the next call: leave some room.
		buf = make([]byte, needed+needed/4)
	}
}

// Services lists every service of the node's namespace, sorted by name and
// pattern, with the settings in force and the ports in use. Services made by
// another iceoryx2 release, and services still being created, are left out.
//
// Counting a service's ports opens it briefly from this node (no port is
// created); as every opening does, that removes the resources dead nodes left
// in the service unless the node was made WithoutAutoCleanup.
func (n *Node) Services() ([]ServiceInfo, error) {
	const op = "list services"
	nh, ok := n.ref.acquire()
	if !ok {
		return nil, closedError(op, n.name)
	}
	defer n.ref.release()
	buf, count, err := n.listing(op, nh, n.lib.ServiceList)
	if err != nil {
		return nil, err
	}
	recs, err := ffi.ParseServices(buf, count)
	if err != nil {
		return nil, &Error{Op: op, Name: n.name, Kind: ErrInternal, Detail: err.Error()}
	}
	out := make([]ServiceInfo, 0, len(recs))
	for _, r := range recs {
		s := ServiceInfo{Name: r.Name, Pattern: Pattern(r.Pattern), Nodes: int(r.Nodes), PortsKnown: r.PortsKnown}
		var eb ffi.ErrBuf
		st := ffi.OK
		switch s.Pattern {
		case PatternPublishSubscribe:
			var c ffi.PubSubConfig
			if c, st = n.lib.PubSubDescribe(nh, r.Name, &eb); st == ffi.OK {
				v := pubsubSettings(&c)
				s.PubSub = &v
			}
			s.Ports.Publishers, s.Ports.Subscribers = int(r.Ports[0]), int(r.Ports[1])
		case PatternEvent:
			var c ffi.EventConfig
			if c, st = n.lib.EventDescribe(nh, r.Name, &eb); st == ffi.OK {
				v := eventSettings(&c)
				s.Event = &v
			}
			s.Ports.Notifiers, s.Ports.Listeners = int(r.Ports[0]), int(r.Ports[1])
		case PatternRequestResponse:
			var d ffi.ReqResDescription
			if d, st = n.lib.ReqResDescribe(nh, r.Name, &eb); st == ffi.OK {
				v := reqResSettings(&d)
				s.RequestResponse = &v
			}
			s.Ports.Clients, s.Ports.Servers = int(r.Ports[0]), int(r.Ports[1])
		case PatternBlackboard:
			var d ffi.BBDescription
			if d, st = n.lib.BlackboardDescribe(nh, r.Name, &eb); st == ffi.OK {
				v := blackboardSettings(&d)
				s.Blackboard = &v
			}
			s.Ports.Writers, s.Ports.Readers = int(r.Ports[0]), int(r.Ports[1])
		}
		if st == ffi.ENotFound {
			continue // removed since it was listed
		}
		if st != ffi.OK {
			return nil, statusError(n.lib, op, r.Name, st, &eb)
		}
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Name != out[j].Name {
			return out[i].Name < out[j].Name
		}
		return out[i].Pattern < out[j].Pattern
	})
	return out, nil
}

// Nodes lists every node of the node's namespace, this one included, sorted
// by process id and node id. Listing changes nothing: the nodes of crashed
// processes stay (NodeDead) until CleanupDeadNodes, or an automatic cleanup,
// removes them.
func (n *Node) Nodes() ([]NodeInfo, error) {
	const op = "list nodes"
	nh, ok := n.ref.acquire()
	if !ok {
		return nil, closedError(op, n.name)
	}
	defer n.ref.release()
	buf, count, err := n.listing(op, nh, n.lib.NodeList)
	if err != nil {
		return nil, err
	}
	recs, err := ffi.ParseNodes(buf, count)
	if err != nil {
		return nil, &Error{Op: op, Name: n.name, Kind: ErrInternal, Detail: err.Error()}
	}
	out := make([]NodeInfo, len(recs))
	for i, r := range recs {
		info := NodeInfo{ID: UniqueID{Lo: r.IDLo, Hi: r.IDHi}, Name: r.Name, Executable: r.Executable, State: NodeState(r.State)}
		if pid, created, st := n.lib.NodeIDDetails(r.IDLo, r.IDHi); st == ffi.OK {
			info.PID = pid
			info.Running = liveness.Alive(pid, created)
		}
		out[i] = info
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.PID != b.PID {
			return a.PID < b.PID
		}
		if a.ID.Hi != b.ID.Hi {
			return a.ID.Hi < b.ID.Hi
		}
		return a.ID.Lo < b.ID.Lo
	})
	return out, nil
}

// RequestResponseSettings returns the settings and types of the existing
// request-response service name without joining it (errors as for
// PubSubSettings).
func (n *Node) RequestResponseSettings(name string) (RequestResponseConfig, error) {
	const op = "request-response settings"
	nh, err := n.acquireNode(op, name)
	if err != nil {
		return RequestResponseConfig{}, err
	}
	defer n.ref.release()
	var eb ffi.ErrBuf
	d, st := n.lib.ReqResDescribe(nh, name, &eb)
	if st != ffi.OK {
		return RequestResponseConfig{}, statusError(n.lib, op, name, st, &eb)
	}
	return reqResSettings(&d), nil
}

func typeOf(t *ffi.TypeInfo) PayloadType {
	return PayloadType{Name: t.Name(), Size: int(t.Size), Align: int(t.Alignment), Fixed: t.Variant != 0}
}

func reqResSettings(d *ffi.ReqResDescription) RequestResponseConfig {
	c := d.Config
	return RequestResponseConfig{
		MaxClients: int(c.MaxClients), MaxServers: int(c.MaxServers), MaxNodes: int(c.MaxNodes),
		MaxActiveRequests: int(c.MaxActiveRequests), ResponseBufferSize: int(c.ResponseBuffer),
		MaxBorrowedResponses: int(c.MaxBorrowedResponses), MaxLoanedRequests: int(c.MaxLoanedRequests),
		FireAndForget: c.FireAndForget != 0, SafeOverflowRequests: c.SafeOverflowRequests != 0,
		SafeOverflowResponses: c.SafeOverflowResponses != 0,
		RequestType:           typeOf(&d.Request), ResponseType: typeOf(&d.Response),
		RequestHeader: typeOf(&d.RequestHeader), ResponseHeader: typeOf(&d.ResponseHeader),
	}
}
