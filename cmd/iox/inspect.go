package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/iox-go/iox"
)

// The commands that look at a namespace use a node that leaves dead nodes'
// resources alone (iox.WithoutAutoCleanup): looking changes nothing, and
// clean reports what it removed.

var servicesCommand = command{
	name:    "services",
	summary: "list the services: pattern, types, settings, ports",
	about: `List every service of the namespace: its messaging pattern, payload type and
user header, the settings in force and the ports in use. Services that iox
makes for its own channels are marked with the channel they belong to.`,
	flags: func(fs *flag.FlagSet, ns *namespace) func(*env, []string) error {
		asJSON := fs.Bool("json", false, "print a JSON array")
		return func(e *env, _ []string) error {
			node, err := ns.node(iox.WithoutAutoCleanup())
			if err != nil {
				return err
			}
			defer node.Close()
			list, err := node.Services()
			if err != nil {
				return err
			}
			if *asJSON {
				out := make([]serviceJSON, len(list))
				for i, s := range list {
					out[i] = describeService(s)
				}
				return writeJSON(e.stdout, out)
			}
			var b bytes.Buffer
			for i, s := range list {
				if i > 0 {
					b.WriteByte('\n')
				}
				writeService(&b, describeService(s))
			}
			_, err = e.stdout.Write(b.Bytes())
			return err
		}
	},
}

var nodesCommand = command{
	name:    "nodes",
	summary: "list the nodes: pid, name, alive or dead",
	about: `List every node of the namespace (but this command's own): the process that
made it, whether it is alive or dead (its process ended without removing it;
see iox clean), its name and executable.`,
	flags: func(fs *flag.FlagSet, ns *namespace) func(*env, []string) error {
		asJSON := fs.Bool("json", false, "print a JSON array")
		return func(e *env, _ []string) error {
			node, err := ns.node(iox.WithoutAutoCleanup())
			if err != nil {
				return err
			}
			defer node.Close()
			self, err := node.ID()
			if err != nil {
				return err
			}
			list, err := node.Nodes()
			if err != nil {
				return err
			}
			out := []nodeJSON{}
			for _, n := range list {
				if n.ID != self {
					out = append(out, nodeJSON{ID: n.ID.String(), PID: n.PID, State: stateOf(n), Running: n.Running,
						Name: n.Name, Executable: n.Executable})
				}
			}
			if *asJSON {
				return writeJSON(e.stdout, out)
			}
			tw := tabwriter.NewWriter(e.stdout, 0, 8, 2, ' ', 0)
			fmt.Fprintln(tw, "PID\tSTATE\tNAME\tEXECUTABLE\tID")
			for _, n := range out {
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", n.PID, n.State, orDash(n.Name), orDash(n.Executable), n.ID)
			}
			return tw.Flush()
		}
	},
}

var cleanCommand = command{
	name:    "clean",
	summary: "remove what dead nodes left behind",
	about: `Remove the resources of the namespace's dead nodes (nodes whose process ended
without removing them) and report how many nodes were cleaned up.`,
	flags: func(fs *flag.FlagSet, ns *namespace) func(*env, []string) error {
		asJSON := fs.Bool("json", false, `print {"cleaned": N}`)
		return func(e *env, _ []string) error {
			node, err := ns.node(iox.WithoutAutoCleanup())
			if err != nil {
				return err
			}
			defer node.Close()
			n, err := node.CleanupDeadNodes()
			if err != nil {
				return err
			}
			if *asJSON {
				return writeJSON(e.stdout, struct {
					Cleaned int `json:"cleaned"`
				}{n})
			}
			noun := "nodes"
			if n == 1 {
				noun = "node"
			}
			_, err = fmt.Fprintf(e.stdout, "cleaned up %d dead %s\n", n, noun)
			return err
		}
	},
}

// stateOf is a node's state as printed: for a node of another user, whose
// files this process may not read, whether its process runs.
func stateOf(n iox.NodeInfo) string {
	if n.State != iox.NodeInaccessible {
		return n.State.String()
	}
	if n.Running {
		return "inaccessible (running)"
	}
	return "inaccessible (gone)"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

type nodeJSON struct {
	ID         string `json:"id"`
	PID        int    `json:"pid"`
	State      string `json:"state"`
	Running    bool   `json:"running"`
	Name       string `json:"name"`
	Executable string `json:"executable"`
}

// typeJSON is a payload or header type.
type typeJSON struct {
	Name      string `json:"name"`
	Size      int    `json:"size"`
	Alignment int    `json:"alignment"`
	Slice     bool   `json:"slice"` // a dynamic slice of such elements rather than one value
}

func typeOf(t iox.PayloadType) *typeJSON {
	return &typeJSON{Name: t.Name, Size: t.Size, Alignment: t.Align, Slice: !t.Fixed}
}

func (t *typeJSON) String() string {
	if t.Name == "()" && t.Size == 0 {
		return "none"
	}
	if t.Slice {
		return fmt.Sprintf("[%s] (element size %d, alignment %d)", t.Name, t.Size, t.Alignment)
	}
	return fmt.Sprintf("%s (size %d, alignment %d)", t.Name, t.Size, t.Alignment)
}

// setting is one setting in force; settings keep their order in JSON.
type setting struct {
	key   string
	value any
}

type settings []setting

func (s settings) MarshalJSON() ([]byte, error) {
	if s == nil {
		return []byte("null"), nil
	}
	var b bytes.Buffer
	b.WriteByte('{')
	for i, kv := range s {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(kv.key)
		v, err := json.Marshal(kv.value)
		if err != nil {
			return nil, err
		}
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

func (s settings) String() string {
	parts := make([]string, len(s))
	for i, kv := range s {
		parts[i] = fmt.Sprintf("%s=%v", kv.key, kv.value)
	}
	return strings.Join(parts, " ")
}

// serviceJSON is one service as iox services prints it.
type serviceJSON struct {
	Name    string `json:"name"`
	Pattern string `json:"pattern"`
	// For a service iox makes for one of its channels: the channel's name and
	// the service's role there (iox.DescribeName).
	IoxChannel string `json:"iox_channel,omitempty"`
	IoxRole    string `json:"iox_role,omitempty"`
	Nodes      int    `json:"nodes"`
	// Ports in use by kind; null when they could not be counted.
	Ports          settings  `json:"ports"`
	Payload        *typeJSON `json:"payload,omitempty"`
	UserHeader     *typeJSON `json:"user_header,omitempty"`
	Request        *typeJSON `json:"request,omitempty"`
	RequestHeader  *typeJSON `json:"request_header,omitempty"`
	Response       *typeJSON `json:"response,omitempty"`
	ResponseHeader *typeJSON `json:"response_header,omitempty"`
	Key            *typeJSON `json:"key,omitempty"` // of a blackboard
	Settings       settings  `json:"settings"`
}

func describeService(s iox.ServiceInfo) serviceJSON {
	out := serviceJSON{Name: s.Name, Pattern: s.Pattern.String(), Nodes: s.Nodes, Settings: settings{}}
	if base, role := iox.DescribeName(s.Name); role != "" {
		out.IoxChannel, out.IoxRole = base, role
	}
	p := s.Ports
	switch {
	case s.PubSub != nil:
		c := s.PubSub
		out.Payload, out.UserHeader = typeOf(c.Payload), typeOf(c.UserHeader)
		out.Settings = settings{
			{"max_publishers", c.MaxPublishers}, {"max_subscribers", c.MaxSubscribers}, {"max_nodes", c.MaxNodes},
			{"buffer_size", c.BufferSize}, {"history", c.History}, {"max_borrowed", c.MaxBorrowed},
			{"safe_overflow", c.SafeOverflow},
		}
		out.Ports = settings{{"publishers", p.Publishers}, {"subscribers", p.Subscribers}}
	case s.Event != nil:
		c := s.Event
		out.Settings = settings{
			{"max_notifiers", c.MaxNotifiers}, {"max_listeners", c.MaxListeners}, {"max_nodes", c.MaxNodes},
			{"max_event_id", uint64(c.MaxEventID)},
		}
		for _, ev := range []struct {
			key string
			id  iox.OptionalEventID
		}{
			{"notifier_created_event", c.NotifierCreatedEvent},
			{"notifier_dropped_event", c.NotifierDroppedEvent},
			{"notifier_dead_event", c.NotifierDeadEvent},
		} {
			if ev.id.Set {
				out.Settings = append(out.Settings, setting{ev.key, uint64(ev.id.ID)})
			}
		}
		if c.Deadline > 0 {
			out.Settings = append(out.Settings, setting{"deadline", c.Deadline.String()})
		}
		out.Ports = settings{{"notifiers", p.Notifiers}, {"listeners", p.Listeners}}
	case s.RequestResponse != nil:
		c := s.RequestResponse
		out.Request, out.RequestHeader = typeOf(c.RequestType), typeOf(c.RequestHeader)
		out.Response, out.ResponseHeader = typeOf(c.ResponseType), typeOf(c.ResponseHeader)
		out.Settings = settings{
			{"max_clients", c.MaxClients}, {"max_servers", c.MaxServers}, {"max_nodes", c.MaxNodes},
			{"max_active_requests", c.MaxActiveRequests}, {"response_buffer_size", c.ResponseBufferSize},
			{"max_borrowed_responses", c.MaxBorrowedResponses}, {"max_loaned_requests", c.MaxLoanedRequests},
			{"fire_and_forget", c.FireAndForget}, {"safe_overflow_requests", c.SafeOverflowRequests},
			{"safe_overflow_responses", c.SafeOverflowResponses},
		}
		out.Ports = settings{{"clients", p.Clients}, {"servers", p.Servers}}
	case s.Blackboard != nil:
		c := s.Blackboard
		out.Key = typeOf(c.Key)
		out.Settings = settings{{"max_readers", c.MaxReaders}, {"max_nodes", c.MaxNodes}}
		out.Ports = settings{{"writers", p.Writers}, {"readers", p.Readers}}
	}
	if !s.PortsKnown {
		out.Ports = nil
	}
	return out
}

// writeService prints one service as a block: a heading line, then one
// indented line per aspect. Blank lines separate the blocks.
func writeService(w io.Writer, s serviceJSON) {
	fmt.Fprintf(w, "%s  %s", s.Name, s.Pattern)
	if s.IoxRole != "" {
		fmt.Fprintf(w, "  [iox %s of %s]", s.IoxRole, strconv.Quote(s.IoxChannel))
	}
	fmt.Fprintln(w)
	line := func(label string, v any) { fmt.Fprintf(w, "  %-16s %v\n", label+":", v) }
	for _, t := range []struct {
		label string
		t     *typeJSON
	}{
		{"payload", s.Payload}, {"user header", s.UserHeader},
		{"request", s.Request}, {"request header", s.RequestHeader},
		{"response", s.Response}, {"response header", s.ResponseHeader},
		{"key", s.Key},
	} {
		if t.t != nil {
			line(t.label, t.t)
		}
	}
	if len(s.Settings) > 0 {
		line("settings", s.Settings)
	}
	if s.Ports != nil {
		line("ports", s.Ports)
	} else {
		line("ports", "unknown")
	}
	line("nodes", s.Nodes)
}
