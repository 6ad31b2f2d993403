// Package bridge relays iox services between hosts over NATS.
//
// A Bridge takes part in its node's namespace as an ordinary participant: it
// subscribes to the services it exports, and on the other side publishes the
// services it imports, so programs keep their code. Nothing crosses unless a
// name matches an Export pattern on one side and an Import pattern on the
// other. How each pattern crosses:
//
//   - a lossy publish-subscribe service: NATS core (at most once, order kept
//     per sending bridge);
//   - a lossless iox channel: a JetStream stream with acknowledgements, bounded
//     in bytes (Config.StreamMaxBytes; a message the stream refuses is sent
//     again, with the same id, until it is stored), deduplicated by message
//     id, read by a durable consumer per importing bridge and service, so a
//     restart of the importing bridge or of the NATS server loses nothing;
//   - an event service: NATS core, each event id as an event;
//   - a request-response service: NATS request/reply with a queue group, so a
//     Call on one host is served by a server on another, streams included;
//   - a pair: each bridge holds the end facing its host's program, and the
//     two ends are joined over the lossless stream, one subject per
//     direction; order and exactly-once delivery are kept, a Close crosses
//     as a clean end behind the messages, and a Close is confirmed by the
//     bridge of its host, not by the other program (see pair.go).
//
// Loops: a bridge relays each name in one direction only. It exports a service
// only while the service has ports other than the bridge's own (a publisher, a
// notifier or a server it did not open), and never a name it imports; it
// imports only names it does not export, and ignores NATS messages whose
// Iox-Origin is its own. Two bridges that both export and import a pattern thus
// relay each service away from the host whose program uses it and never back.
//
// Trust: a bridge relays what arrives on its subjects from any client that
// may publish there, as a local program may publish on a local service. On a
// server that other clients share, give the bridges' users, and only them,
// these permissions (for the default Subject "iox"): publish on iox.>,
// _INBOX.>, $JS.API.> and $JS.ACK.>; subscribe to iox.> and _INBOX.>. That is
// all a bridge needs, and a user without them cannot put a frame on a
// bridge's subject: the server refuses it.
//
// Subjects, headers and framing are described in subject.go and frame.go.
package bridge

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/iox-go/iox"
)

// Config says what a Bridge relays and how.
type Config struct {
	// Node is the local namespace's node; the bridge opens its ports on it.
	Node *iox.Node
	// Conn is the NATS connection; the bridge does not close it. Connect
	// with MaxReconnects(-1) and a short ReconnectWait (the constant
	// ReconnectWait): the bridge resumes as soon as nats.go is connected
	// again.
	Conn *nats.Conn
	// Export and Import are glob patterns over service names (see match in
	// subject.go): services of the local namespace matching Export are
	// offered to other bridges, and services other bridges offer matching
	// Import are mirrored here.
	Export, Import []string
	// Name identifies the bridge across restarts: its durable JetStream
	// consumers are named after it, so two bridges connected at once may
	// not share it (New refuses the second). Default: "iox-bridge-" and the
	// host name.
	Name string
	// Subject is the root of every subject the bridge uses. Default "iox".
	Subject string
	// Scan is how often the local namespace is listed for services to export
	// (Node.Services). Default 100 ms; at least 1 ms.
	Scan time.Duration
	// Announce is how often exports are announced; an import ends when no
	// announcement came for three periods (the announcing bridge's, which
	// announcements carry, or this one's when longer) while connected (an
	// outage of the server does not count), and once its consumer has
	// nothing left for it (lossless channels and pairs). Default 1 s; at
	// least 10 ms.
	Announce time.Duration
	// MaxMessageSize is the largest message the bridge relays. Default
	// iox.DefaultMaxMessageSize.
	MaxMessageSize int
	// StreamMaxBytes bounds the JetStream stream of lossless channels.
	// Default 1 GiB; at least four of the server's largest messages. The
	// stream is shared by the bridges of one Subject: one that finds it
	// bounded to less makes it larger, one that finds it larger leaves it.
	StreamMaxBytes int64
	// ConsumerIdle is how long the server keeps an importing bridge's durable
	// consumer (and so the messages it has not taken) while the bridge is
	// away. Default 10 minutes; at least 10 s.
	ConsumerIdle time.Duration
	// OnStatus receives what the bridge does (see Status). It is called from
	// the bridge's goroutines, one at a time.
	OnStatus func(Status)
}

// Status is one thing a bridge reports. An import reports its "start" once
// the server has its subscriptions: what is published on its subjects from
// then on reaches it.
type Status struct {
	Event   string // "relaying", "start", "drain", "stop" or "error"
	Dir     string // "export" or "import" ("" for "relaying")
	Service string
	Kind    string // "lossy", "lossless", "event", "call" or "pair"
	Err     error  // for "error" and for a "stop" that had a cause
}

func (s Status) String() string {
	switch {
	case s.Service == "":
		if s.Err != nil {
			return s.Event + ": " + s.Err.Error()
		}
		return s.Event
	case s.Event == "error":
		return fmt.Sprintf("error %s %s %q: %v", s.Dir, s.Kind, s.Service, s.Err)
	}
	str := fmt.Sprintf("%s %s %s %q", s.Event, s.Dir, s.Kind, s.Service)
	if s.Err != nil {
		str += ": " + s.Err.Error()
	}
	return str
}

// Kinds of relays, as Status names them.
const (
	KindLossy    = "lossy"
	KindLossless = "lossless"
	KindEvent    = "event"
	KindCall     = "call"
)

var subjectKinds = map[string]string{KindLossy: kindLossy, KindLossless: kindLossless, KindEvent: kindEvent, KindCall: kindRPC, KindPair: kindPair}

// announcement tells other bridges that a service is exported.
type announcement struct {
	Origin  string `json:"origin"`
	Bridge  string `json:"bridge"`
	Name    string `json:"name"`
	Kind    string `json:"kind"`
	Type    string `json:"type"`              // payload or request type
	Resp    string `json:"resp,omitempty"`    // response type of calls
	MaxMsg  int    `json:"max_msg,omitempty"` // the exporting bridge's MaxMessageSize
	Session string `json:"session,omitempty"` // pairs: the export's session (see pair.go)
	Attach  bool   `json:"attach,omitempty"`  // pairs: the importing bridge holds the session's other end
	Buffer  int    `json:"buffer,omitempty"`  // pairs: the services' BufferSize
	Every   int64  `json:"every,omitempty"`   // the announcing bridge's Announce, in ms
	Gone    bool   `json:"gone,omitempty"`
	Partial bool   `json:"-"`
}

// Bridge relays services between its node's namespace and NATS.
type Bridge struct {
	cfg    Config
	origin string
	fr     *framer
	js     jetstream.JetStream
	stream string
	link   *link

	streamMu sync.Mutex // one look at the stream's settings at a time (ensureStream)

	ctx    context.Context
	cancel context.CancelFunc
	loops  sync.WaitGroup

	statusMu sync.Mutex

	mu      sync.Mutex
	exports map[string]*route // by service name
	imports map[string]*route
	refused map[string]string // imports that failed to open: the types announced
	ending  map[string]*route // imports that expired and are still stopping
	annSub  *nats.Subscription
	discSub *nats.Subscription
	nameSub *nats.Subscription // answers bridges that would take the same Name
	closed  bool

	lastDown time.Time // when expire last found the connection down (run's goroutine only)
}

// route is one service relayed in one direction.
type route struct {
	dir, kind, name string
	ann             announcement
	own             iox.PortCounts           // the bridge's own ports on the service
	absent          int                      // scans in a row that found no other port
	seen            map[string]time.Time     // import: announcing origins and when
	every           map[string]time.Duration // import: the announcing origins' Announce
	attached        string                   // export of a pair: the importing bridge's origin (its first)
	attachedAt      time.Time                // and when it last said so
	attachedEvery   time.Duration            // and its Announce
	cancel          context.CancelFunc
	done            chan struct{}
	err             error
	// drained, on a pair's import, tells whether every frame in the stream
	// for this host was taken: an import ends only then (see expire).
	drained  func(context.Context) bool
	draining bool // the "drain" status was reported
}

// running tells whether the route's relay loop still runs.
func (r *route) running() bool {
	select {
	case <-r.done:
		return false
	default:
		return true
	}
}

// New starts a bridge: it announces its exports and imports what others
// announce until ctx ends or Close. It returns once it relays, after its first
// look at the namespace; the "relaying" status is reported then.
func New(ctx context.Context, cfg Config) (*Bridge, error) {
	if ctx == nil {
		return nil, &iox.Error{Op: "new bridge", Kind: iox.ErrInvalidArgument, Detail: "ctx is nil"}
	}
	if cfg.Node == nil || cfg.Conn == nil {
		return nil, &iox.Error{Op: "new bridge", Kind: iox.ErrInvalidArgument, Detail: "Config.Node and Config.Conn are required"}
	}
	if err := checkPatterns("export", cfg.Export); err != nil {
		return nil, err
	}
	if err := checkPatterns("import", cfg.Import); err != nil {
		return nil, err
	}
	if cfg.Name == "" {
		h, _ := os.Hostname()
		cfg.Name = "iox-bridge-" + h
	}
	if cfg.Subject == "" {
		cfg.Subject = "iox"
	}
	if !literalSubject(cfg.Subject) {
		return nil, &iox.Error{Op: "new bridge", Name: cfg.Subject, Kind: iox.ErrInvalidArgument, Detail: "Config.Subject must be a literal NATS subject"}
	}
	if err := checkConfig(cfg); err != nil {
		return nil, err
	}
	if cfg.Scan == 0 {
		cfg.Scan = 100 * time.Millisecond
	}
	if cfg.Announce == 0 {
		cfg.Announce = time.Second
	}
	if cfg.MaxMessageSize == 0 {
		cfg.MaxMessageSize = iox.DefaultMaxMessageSize
	}
	if cfg.StreamMaxBytes == 0 {
		cfg.StreamMaxBytes = 1 << 30
	}
	if cfg.ConsumerIdle == 0 {
		cfg.ConsumerIdle = 10 * time.Minute
	}
	js, err := jetstream.New(cfg.Conn, jetstream.WithPublishAsyncMaxPending(1024), jetstream.WithPublishAsyncTimeout(2*time.Second))
	if err != nil {
		return nil, natsError("new bridge", "", err)
	}
	b := &Bridge{cfg: cfg, origin: nuid.Next(), js: js, stream: streamName(cfg.Subject),
		exports: map[string]*route{}, imports: map[string]*route{}, refused: map[string]string{}, ending: map[string]*route{}}
	b.fr = newFramer(b.origin, cfg.Conn.MaxPayload())
	// A Name is one bridge's: two bridges of one name would share their
	// durable consumers, each receiving part of what they import. A bridge
	// answers on its name's subject; one that is connected refuses the
	// second (one that died answers no more).
	nameSubject := cfg.Subject + "." + kindName + "." + EscapeName(cfg.Name)
	if m, err := cfg.Conn.Request(nameSubject, nil, nameCheck); err == nil {
		return nil, &iox.Error{Op: "new bridge", Name: cfg.Name, Kind: iox.ErrInvalidArgument,
			Detail: fmt.Sprintf("another bridge of this name (run %s) is connected: give each bridge a Name of its own (iox bridge -name)", m.Data)}
	}
	b.ctx, b.cancel = context.WithCancel(ctx)
	if b.nameSub, err = cfg.Conn.Subscribe(nameSubject, func(m *nats.Msg) { m.Respond([]byte(b.origin)) }); err != nil {
		b.cancel()
		return nil, natsError("new bridge", "", err)
	}
	if rival, err := b.nameRival(nameSubject); err != nil || rival != "" {
		b.nameSub.Unsubscribe()
		b.cancel()
		if err != nil {
			return nil, natsError("new bridge", "", err)
		}
		return nil, &iox.Error{Op: "new bridge", Name: cfg.Name, Kind: iox.ErrInvalidArgument,
			Detail: fmt.Sprintf("another bridge of this name (run %s) started at the same time: give each bridge a Name of its own (iox bridge -name)", rival)}
	}
	if b.annSub, err = cfg.Conn.Subscribe(cfg.Subject+"."+kindAnnounce+".>", b.onAnnounce); err != nil {
		b.nameSub.Unsubscribe()
		b.cancel()
		return nil, natsError("new bridge", "", err)
	}
	if b.discSub, err = cfg.Conn.Subscribe(cfg.Subject+"."+kindDiscover, func(*nats.Msg) { b.announceAll() }); err != nil {
		b.nameSub.Unsubscribe()
		b.annSub.Unsubscribe()
		b.cancel()
		return nil, natsError("new bridge", "", err)
	}
	b.link = newLink(cfg.Conn)
	if err := b.scan(); err != nil {
		b.Close()
		return nil, err
	}
	b.announceAll()
	if err := cfg.Conn.Publish(cfg.Subject+"."+kindDiscover, nil); err != nil {
		b.Close()
		return nil, natsError("new bridge", "", err)
	}
	if err := cfg.Conn.FlushTimeout(10 * time.Second); err != nil {
		b.Close()
		return nil, natsError("new bridge", "", err)
	}
	b.status(Status{Event: "relaying"})
	b.loops.Add(1)
	go b.run()
	return b, nil
}

// Bounds of Config's values (zero takes the default).
const (
	minScan         = time.Millisecond      // listing the namespace more often does nothing but that
	minAnnounce     = 10 * time.Millisecond // imports end after three periods without one
	minConsumerIdle = 10 * time.Second      // an import pulls with an expiry of 2 s
	minStreamFrames = 4                     // StreamMaxBytes holds at least this many frames of max_payload
)

// checkConfig refuses values that cannot work.
func checkConfig(cfg Config) error {
	bad := func(field string, v any, detail string) error {
		return &iox.Error{Op: "new bridge", Kind: iox.ErrInvalidArgument, Detail: fmt.Sprintf("Config.%s %v: %s", field, v, detail)}
	}
	switch {
	case cfg.Scan != 0 && cfg.Scan < minScan:
		return bad("Scan", cfg.Scan, fmt.Sprintf("at least %v (0: the default)", minScan))
	case cfg.Announce != 0 && cfg.Announce < minAnnounce:
		return bad("Announce", cfg.Announce, fmt.Sprintf("at least %v (0: the default)", minAnnounce))
	case cfg.ConsumerIdle != 0 && cfg.ConsumerIdle < minConsumerIdle:
		return bad("ConsumerIdle", cfg.ConsumerIdle, fmt.Sprintf("at least %v (0: the default)", minConsumerIdle))
	case cfg.MaxMessageSize < 0:
		return bad("MaxMessageSize", cfg.MaxMessageSize, "a size in bytes (0: the default)")
	case cfg.StreamMaxBytes != 0 && cfg.StreamMaxBytes < minStreamFrames*cfg.Conn.MaxPayload():
		return bad("StreamMaxBytes", cfg.StreamMaxBytes, fmt.Sprintf("at least %d frames of the server's max_payload, %d bytes (0: the default)",
			minStreamFrames, minStreamFrames*cfg.Conn.MaxPayload()))
	}
	return nil
}

// literalSubject reports whether s is a NATS subject without wildcards:
// tokens separated by dots, none empty, without whitespace or control bytes.
func literalSubject(s string) bool {
	for _, tok := range strings.Split(s, ".") {
		if tok == "" || strings.ContainsAny(tok, "*>") {
			return false
		}
		for i := 0; i < len(tok); i++ {
			if tok[i] <= ' ' || tok[i] == 0x7f {
				return false
			}
		}
	}
	return true
}

// nameCheck bounds how long New waits for a bridge of the same name to
// answer: a connected one answers at once, and when none subscribes the
// server says so at once; a subscription of a bridge that died unseen (its
// host gone) answers never, which costs this wait.
const nameCheck = 500 * time.Millisecond

// nameSettle is how long nameRival waits for other answers after its own.
const nameSettle = 50 * time.Millisecond

// nameRival asks once more on the name's subject, now that this bridge
// answers there itself, and returns the run of another bridge that answered
// too ("" when none did). Two bridges of one name that start at the same
// instant both pass the first check, before either answers; each then sees
// the other here, and both refuse to run, where without this look both
// would: whichever of them subscribed after the other's look sees it. (On a
// cluster, interest reaches the other servers a moment later, so two bridges
// on two servers may still slip through.)
func (b *Bridge) nameRival(subject string) (string, error) {
	nc := b.cfg.Conn
	if err := nc.FlushTimeout(nameCheck); err != nil { // the answering subscription is in place
		return "", err
	}
	inbox := nc.NewRespInbox()
	answers, err := nc.SubscribeSync(inbox)
	if err != nil {
		return "", err
	}
	defer answers.Unsubscribe()
	if err := nc.PublishRequest(subject, inbox, nil); err != nil {
		return "", err
	}
	until := time.Now().Add(nameCheck)
	for {
		m, err := answers.NextMsg(max(time.Until(until), time.Millisecond))
		if errors.Is(err, nats.ErrTimeout) {
			return "", nil
		}
		if err != nil {
			return "", err
		}
		if string(m.Data) != b.origin {
			return string(m.Data), nil
		}
		if settle := time.Now().Add(nameSettle); settle.Before(until) {
			until = settle
		}
	}
}

// drainCheck bounds how long expire asks the server whether a pair's import
// took everything.
const drainCheck = time.Second

// closeFlush bounds how long Close waits for the server to take what the
// bridge sent last.
const closeFlush = 2 * time.Second

// Origin is the bridge's run id, the Iox-Origin of what it sends.
func (b *Bridge) Origin() string { return b.origin }

// Close stops relaying: it stops every route (each closes its ports, which
// waits as the iox channels' Close does) and announces that its exports are
// gone. It returns the first error a route ended with, or nil.
func (b *Bridge) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return &iox.Error{Op: "close bridge", Kind: iox.ErrClosed}
	}
	b.closed = true
	b.mu.Unlock()
	b.cancel()
	b.loops.Wait()
	b.annSub.Unsubscribe()
	if b.discSub != nil {
		b.discSub.Unsubscribe()
	}
	var first error
	b.mu.Lock()
	routes := make([]*route, 0, len(b.exports)+len(b.imports))
	exported := make([]*route, 0, len(b.exports))
	for _, r := range b.exports {
		routes = append(routes, r)
		exported = append(exported, r)
	}
	for _, r := range b.imports {
		routes = append(routes, r)
	}
	b.exports, b.imports = map[string]*route{}, map[string]*route{}
	b.mu.Unlock()
	for _, r := range routes {
		if err := b.stop(r, nil); err != nil && first == nil {
			first = err
		}
	}
	for _, r := range exported { // what they relayed went first: the importing bridges end their imports now
		b.announce(announcement{Origin: b.origin, Bridge: b.cfg.Name, Name: r.name, Kind: r.kind, Gone: true})
	}
	b.nameSub.Unsubscribe() // the name is free once every route ended
	b.link.close()
	if b.cfg.Conn.IsConnected() { // the "gone" announcements leave; a server that is away does not hold Close
		b.cfg.Conn.FlushTimeout(closeFlush)
	}
	return first
}

// run looks at the namespace every Scan and announces every Announce.
func (b *Bridge) run() {
	defer b.loops.Done()
	scan := time.NewTicker(b.cfg.Scan)
	defer scan.Stop()
	ann := time.NewTicker(b.cfg.Announce)
	defer ann.Stop()
	// Imports end by the announcements' pace, not by Scan's: a bridge
	// that only imports may scan seldom.
	exp := time.NewTicker(min(b.cfg.Scan, b.cfg.Announce))
	defer exp.Stop()
	for {
		select {
		case <-b.ctx.Done():
			return
		case <-scan.C:
			if err := b.scan(); err != nil && b.ctx.Err() == nil {
				b.status(Status{Event: "error", Err: err})
			}
		case <-exp.C:
			b.expire()
		case <-ann.C:
			b.announceAll()
		}
	}
}

func (b *Bridge) status(s Status) {
	if b.cfg.OnStatus == nil {
		return
	}
	b.statusMu.Lock()
	defer b.statusMu.Unlock()
	b.cfg.OnStatus(s)
}

// scan starts exporting the services that match and have ports other than
// the bridge's, and stops those that lost them.
func (b *Bridge) scan() error {
	if len(b.cfg.Export) == 0 {
		return nil
	}
	list, err := b.cfg.Node.Services()
	if err != nil {
		return err
	}
	pubsubs := map[string]bool{}
	for _, s := range list {
		if s.Pattern == iox.PatternPublishSubscribe {
			pubsubs[s.Name] = true
		}
	}
	wanted := map[string]announcement{}
	ends := pairEnds(list)
	b.mu.Lock()
	for base, e := range ends {
		if !match(b.cfg.Export, base) {
			continue
		}
		if _, imported := b.imports[base]; imported {
			continue
		}
		a := announcement{Origin: b.origin, Bridge: b.cfg.Name, Name: base, MaxMsg: b.cfg.MaxMessageSize, Kind: KindPair, Type: e.typ}
		if r := b.exports[base]; r != nil {
			if r.kind != KindPair || e.ends <= r.own.Publishers {
				continue // the program's end is gone (only the bridge's is left)
			}
			a.Session, a.Buffer = r.ann.Session, r.ann.Buffer
		} else if e.ends == 0 {
			continue
		}
		wanted[base] = a
	}
	for _, s := range list {
		if base, role := iox.DescribeName(s.Name); role != "" || base != s.Name || !match(b.cfg.Export, s.Name) {
			continue
		}
		if _, imported := b.imports[s.Name]; imported {
			continue
		}
		if _, pair := wanted[s.Name]; pair {
			continue
		}
		var own iox.PortCounts
		if r := b.exports[s.Name]; r != nil {
			own = r.own
		}
		a := announcement{Origin: b.origin, Bridge: b.cfg.Name, Name: s.Name, MaxMsg: b.cfg.MaxMessageSize}
		switch {
		case s.Pattern == iox.PatternPublishSubscribe && s.PubSub != nil && s.Ports.Publishers > own.Publishers:
			a.Kind, a.Type = KindLossy, TypeString(s.PubSub.Payload)
			if s.PubSub.Lossless() {
				a.Kind = KindLossless
			} else if s.PubSub.UserHeader.Size != 0 {
				continue // a user header the bridge cannot carry
			}
		case s.Pattern == iox.PatternEvent && s.Event != nil && !pubsubs[s.Name] && s.Ports.Notifiers > own.Notifiers:
			a.Kind, a.Type = KindEvent, "event"
		case s.Pattern == iox.PatternRequestResponse && s.RequestResponse != nil && s.Ports.Servers > own.Servers &&
			s.RequestResponse.RequestHeader.Size == 0 && s.RequestResponse.ResponseHeader.Size == 0:
			a.Kind, a.Type, a.Resp = KindCall, TypeString(s.RequestResponse.RequestType), TypeString(s.RequestResponse.ResponseType)
		default:
			continue
		}
		wanted[s.Name] = a
	}
	var start []announcement
	var stop []*route
	for name, r := range b.exports {
		if a, ok := wanted[name]; ok && a.Kind == r.kind && a.Type == r.ann.Type && a.Resp == r.ann.Resp {
			r.absent = 0
			continue
		}
		if r.kind == KindPair && wanted[name].Kind == "" && r.running() {
			continue // a pair's relay ends by itself once the program's bye went out (see pair.go)
		}
		if r.absent++; r.absent >= 2 || wanted[name].Kind != "" {
			delete(b.exports, name)
			stop = append(stop, r)
		}
	}
	for name, a := range wanted {
		if _, ok := b.exports[name]; !ok {
			if a.Kind == KindPair {
				a.Session = newSession()
			}
			start = append(start, a)
		}
	}
	b.mu.Unlock()
	for _, r := range stop {
		b.stop(r, nil)
		b.announce(announcement{Origin: b.origin, Bridge: b.cfg.Name, Name: r.name, Kind: r.kind, Gone: true})
	}
	for _, a := range start {
		if b.ctx.Err() != nil {
			return nil
		}
		b.startExport(a)
	}
	return nil
}

// startExport opens the local side of an export and announces it.
func (b *Bridge) startExport(a announcement) {
	ctx, cancel := context.WithCancel(b.ctx)
	r := &route{dir: "export", kind: a.Kind, name: a.Name, ann: a, cancel: cancel, done: make(chan struct{})}
	var run func() error
	var err error
	switch a.Kind {
	case KindLossy, KindLossless:
		run, err = b.exportPubSub(ctx, r)
	case KindEvent:
		run, err = b.exportEvents(ctx, r)
	case KindCall:
		run, err = b.exportCalls(ctx, r)
	case KindPair:
		a.Buffer = b.pairBuffer(a.Name)
		r.ann = a
		run, err = b.exportPair(ctx, r)
	}
	if err != nil {
		if ctx.Err() == nil { // not the bridge closing while it started
			b.status(Status{Event: "error", Dir: "export", Service: a.Name, Kind: a.Kind, Err: err})
		}
		cancel()
		return
	}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		cancel()
		go func() { defer close(r.done); r.err = run() }()
		<-r.done
		return
	}
	b.exports[a.Name] = r
	b.mu.Unlock()
	go func() { defer close(r.done); r.err = run() }()
	b.status(Status{Event: "start", Dir: "export", Service: a.Name, Kind: a.Kind})
	b.announce(a)
}

// stop ends a route and waits until its ports are closed.
func (b *Bridge) stop(r *route, cause error) error {
	r.cancel()
	<-r.done
	err := cause
	if err == nil && r.err != nil && !errors.Is(r.err, context.Canceled) {
		err = r.err
	}
	b.status(Status{Event: "stop", Dir: r.dir, Service: r.name, Kind: r.kind, Err: err})
	return err
}

func (b *Bridge) announceAll() {
	b.mu.Lock()
	anns := make([]announcement, 0, len(b.exports))
	for _, r := range b.exports {
		anns = append(anns, r.ann)
	}
	b.mu.Unlock()
	for _, a := range anns {
		b.announce(a)
	}
}

func (b *Bridge) announce(a announcement) {
	a.Every = b.cfg.Announce.Milliseconds()
	data, _ := json.Marshal(a)
	b.cfg.Conn.Publish(b.cfg.Subject+"."+kindAnnounce+"."+EscapeName(a.Name), data)
}

// onAnnounce starts an import for an announced export that matches, and
// notes announcements of imports already running.
func (b *Bridge) onAnnounce(m *nats.Msg) {
	var a announcement
	if err := json.Unmarshal(m.Data, &a); err != nil || a.Name == "" || a.Origin == b.origin {
		return
	}
	if a.Attach {
		b.onAttach(a)
		return
	}
	if !match(b.cfg.Import, a.Name) || subjectKinds[a.Kind] == "" {
		return
	}
	b.mu.Lock()
	if b.closed || b.ctx.Err() != nil {
		b.mu.Unlock()
		return
	}
	if _, exported := b.exports[a.Name]; exported {
		b.mu.Unlock()
		return
	}
	r := b.imports[a.Name]
	if r != nil {
		if a.Gone {
			delete(r.seen, a.Origin)
			delete(r.every, a.Origin)
		} else if r.kind == a.Kind && r.ann.Type == a.Type && r.ann.Resp == a.Resp && r.ann.Session == a.Session {
			r.seen[a.Origin] = time.Now()
			r.every[a.Origin] = a.period()
		}
		b.mu.Unlock()
		return
	}
	if a.Gone {
		b.mu.Unlock()
		return
	}
	ctx, cancel := context.WithCancel(b.ctx)
	r = &route{dir: "import", kind: a.Kind, name: a.Name, ann: a, cancel: cancel, done: make(chan struct{}),
		seen: map[string]time.Time{a.Origin: time.Now()}, every: map[string]time.Duration{a.Origin: a.period()}}
	if a.Kind == KindLossless {
		// Like a pair's, a lossless import ends only once its consumer has
		// nothing left: what its export put in the stream before it went
		// (or while this import waited for the last one's end) crosses.
		durable := durableName(b.cfg.Name, a.Name)
		r.drained = func(ctx context.Context) bool { return b.pairDrained(ctx, durable) }
	}
	b.imports[a.Name] = r
	prev := b.ending[a.Name]
	b.loops.Add(1) // under mu, so that Close (which sets closed under mu first) waits for it
	b.mu.Unlock()
	// Opening ports waits for nothing remote; it runs on its own goroutine so
	// the subscription's goroutine goes on. An import of the same name that
	// is still stopping ends first: both would read one durable consumer and
	// publish on one service (what the first had not acknowledged would come
	// again to the second, and the two would interleave).
	go func() {
		defer b.loops.Done()
		if prev != nil {
			<-prev.done
		}
		b.startImport(ctx, r)
	}()
}

func (b *Bridge) startImport(ctx context.Context, r *route) {
	var run func() error
	var err error
	switch r.kind {
	case KindLossy, KindLossless:
		run, err = b.importPubSub(ctx, r)
	case KindEvent:
		run, err = b.importEvents(ctx, r)
	case KindCall:
		run, err = b.importCalls(ctx, r)
	case KindPair:
		run, err = b.importPair(ctx, r)
	}
	if err != nil {
		stopped := ctx.Err() != nil // stopped while it started (expired, or the bridge closing)
		r.cancel()
		close(r.done)
		b.mu.Lock()
		if b.imports[r.name] == r {
			delete(b.imports, r.name)
		}
		b.mu.Unlock()
		if !stopped {
			b.mu.Lock()
			again := b.refused[r.name] == r.ann.Type+" "+r.ann.Resp
			b.refused[r.name] = r.ann.Type + " " + r.ann.Resp
			b.mu.Unlock()
			if !again { // tried again at each announcement, reported once
				b.status(Status{Event: "error", Dir: "import", Service: r.name, Kind: r.kind, Err: err})
			}
		}
		return
	}
	b.mu.Lock()
	delete(b.refused, r.name)
	b.mu.Unlock()
	go func() { defer close(r.done); r.err = run() }()
	// An import's start says it takes what comes: the server has its
	// subscriptions once the connection's buffer went through it (a
	// subscription is only written to the buffer, and what another
	// connection publishes meanwhile passes it by).
	fctx, cancel := context.WithTimeout(ctx, startFlush)
	b.cfg.Conn.FlushWithContext(fctx) // failing, the subscriptions go with the reconnection
	cancel()
	b.status(Status{Event: "start", Dir: "import", Service: r.name, Kind: r.kind})
}

// startFlush bounds how long an import waits for the server to have its
// subscriptions before it reports its start.
const startFlush = 2 * time.Second

// expire stops imports no bridge announced for three periods (or whose
// export was announced gone); a pair's import first relays what waits in the
// stream for its host, checked each time for at most drainCheck.
// Announcements cannot come while the connection is down: an outage counts
// as announcements from every origin, so imports outlast a restart of the
// server of any length and end only 3 periods after the connection is back
// (if their exports did not come back with it).
func (b *Bridge) expire() {
	now := time.Now()
	if !b.cfg.Conn.IsConnected() {
		b.lastDown = now
		return
	}
	// Three periods of the announcing bridge (or of this one, when longer).
	limit := func(every time.Duration) time.Time { return now.Add(-3 * max(b.cfg.Announce, every)) }
	var stop []*route
	b.mu.Lock()
	for _, r := range b.imports {
		for o, t := range r.seen {
			if l := limit(r.every[o]); t.Before(l) && b.lastDown.Before(l) {
				delete(r.seen, o)
				delete(r.every, o)
			}
		}
		if len(r.seen) == 0 {
			stop = append(stop, r)
		}
	}
	var detach []*route
	for _, r := range b.exports {
		if l := limit(r.attachedEvery); r.kind == KindPair && r.attached != "" && r.attachedAt.Before(l) && b.lastDown.Before(l) {
			detach = append(detach, r)
		}
	}
	b.mu.Unlock()
	for _, r := range stop {
		if r.drained != nil && r.running() {
			ctx, cancel := context.WithTimeout(b.ctx, drainCheck)
			drained := r.drained(ctx)
			cancel()
			if !drained { // frames of the other host wait in the stream: they are relayed first
				b.mu.Lock()
				r.seen[r.ann.Origin] = time.Now()
				first := !r.draining
				r.draining = true
				b.mu.Unlock()
				if first {
					b.status(Status{Event: "drain", Dir: r.dir, Service: r.name, Kind: r.kind})
				}
				continue
			}
		}
		b.mu.Lock()
		gone := b.imports[r.name] == r && len(r.seen) == 0 // not announced again meanwhile
		if gone {
			delete(b.imports, r.name)
			b.ending[r.name] = r // an import of the name started meanwhile waits for this one's end
		}
		b.mu.Unlock()
		if gone {
			b.stop(r, nil)
			b.mu.Lock()
			if b.ending[r.name] == r {
				delete(b.ending, r.name)
			}
			b.mu.Unlock()
		}
	}
	for _, r := range detach {
		r.cancel() // the importing bridge is gone: the pair ends here too (see pair.go)
	}
}

// period is the announcing bridge's Announce (0 when it did not say), at
// most maxPeriod: an absurd one would keep a stale import for ever.
func (a announcement) period() time.Duration {
	return time.Duration(min(max(a.Every, 0), maxPeriod.Milliseconds())) * time.Millisecond
}

// maxPeriod bounds the Announce of another bridge that an import believes.
const maxPeriod = 24 * time.Hour

// own records the bridge's own ports on a route's service.
func (b *Bridge) setOwn(r *route, c iox.PortCounts) {
	b.mu.Lock()
	r.own = c
	b.mu.Unlock()
}

// report sends an error about one route to OnStatus.
func (b *Bridge) report(r *route, err error) {
	b.status(Status{Event: "error", Dir: r.dir, Service: r.name, Kind: r.kind, Err: err})
}

func natsError(op, name string, err error) error {
	if err == nil {
		return nil
	}
	kind := iox.ErrPeerGone
	switch {
	case errors.Is(err, nats.ErrMaxPayload):
		kind = iox.ErrMessageTooLarge
	case errors.Is(err, nats.ErrConnectionClosed):
		kind = iox.ErrClosed
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return &iox.Error{Op: op, Name: name, Kind: err, Detail: "nats"}
	}
	return &iox.Error{Op: op, Name: name, Kind: kind, Detail: "nats: " + err.Error()}
}

// streamName is the JetStream stream of the lossless channels under root:
// the root upper-cased, then "_LOSSLESS" ("iox": IOX_LOSSLESS). A root with
// other bytes than lower-case letters, digits and "-" (which would read alike
// once upper-cased and cut to a stream name: "site.a", "site_a", "SITE.A"),
// or a long one, also carries a hash of itself, so that every root has a
// stream of its own.
func streamName(root string) string {
	const streamRoom = 200
	var s strings.Builder
	plain := true
	for _, c := range []byte(root) {
		switch {
		case 'a' <= c && c <= 'z':
			s.WriteByte(c - 'a' + 'A')
		case '0' <= c && c <= '9' || c == '-':
			s.WriteByte(c)
		case 'A' <= c && c <= 'Z':
			s.WriteByte(c)
			plain = false
		default:
			s.WriteByte('_')
			plain = false
		}
	}
	name := s.String()
	if len(name) > streamRoom { // JetStream takes names of up to 255 bytes
		name, plain = name[:streamRoom], false
	}
	if !plain {
		sum := sha256.Sum256([]byte(root))
		name += "_" + hex.EncodeToString(sum[:6])
	}
	return name + "_LOSSLESS"
}

// Route is one service a bridge relays.
type Route struct {
	Dir     string // "export" or "import"
	Kind    string // KindLossy, KindLossless, KindEvent, KindCall or KindPair
	Service string
}

// Routes lists what the bridge relays now, sorted by direction and service.
func (b *Bridge) Routes() []Route {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]Route, 0, len(b.exports)+len(b.imports))
	for _, m := range []map[string]*route{b.exports, b.imports} {
		for _, r := range m {
			out = append(out, Route{Dir: r.dir, Kind: r.kind, Service: r.name})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Dir != out[j].Dir {
			return out[i].Dir < out[j].Dir
		}
		return out[i].Service < out[j].Service
	})
	return out
}
