package main

// The tests run the command as it runs for its users: the test binary
// re-executes itself with the command line, and TestMain hands it to main.
// The services and nodes it looks at are real ones, made by the test process
// (and a child it kills) in an isolated namespace of each test.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/iox-go/iox"
	"github.com/iox-go/iox/internal/wait"
)

const (
	runEnv   = "IOX_CLI_TEST_RUN"   // "1": be the command
	childEnv = "IOX_CLI_TEST_CHILD" // "node": be a process with a node, to be killed
)

func TestMain(m *testing.M) {
	if os.Getenv(runEnv) == "1" {
		main()
	}
	if os.Getenv(childEnv) == "node" {
		os.Exit(childNode())
	}
	code := m.Run()
	os.Remove("/tmp/ioxc") // the parent of every namespace root; fails while one is left
	if code == 0 {
		if left := leftovers(runPrefix()); len(left) > 0 {
			fmt.Fprintln(os.Stderr, "shared memory left behind:", left)
			code = 1
		}
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// childNode creates a node named after its pid in the namespace of its
// environment, says so, and waits until its standard input ends.
func childNode() int {
	node, err := iox.NewNode(iox.WithIsolation(os.Getenv("IOX_CLI_PREFIX"), os.Getenv("IOX_CLI_ROOT")),
		iox.WithNodeName(fmt.Sprintf("child-%d", os.Getpid())))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer node.Close()
	fmt.Println("ready")
	buf := make([]byte, 1)
	os.Stdin.Read(buf)
	return 0
}

func runPrefix() string { return fmt.Sprintf("c%d", os.Getpid()) }

func leftovers(prefix string) []string {
	entries, _ := os.ReadDir("/dev/shm")
	var out []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) {
			out = append(out, e.Name())
		}
	}
	return out
}

var nsCounter atomic.Int64

// isolated is the isolated iceoryx2 namespace of one test.
type isolated struct{ prefix, root string }

// newNamespace makes a namespace that is removed when the test ends; the test
// fails when services or nodes of it were left behind.
func newNamespace(t *testing.T) isolated {
	k := nsCounter.Add(1)
	ns := isolated{prefix: fmt.Sprintf("%s_%d_", runPrefix(), k), root: fmt.Sprintf("/tmp/ioxc/%d-%d/", os.Getpid(), k)}
	t.Cleanup(func() {
		var left []string
		for _, f := range leftovers(ns.prefix) {
			if !strings.HasSuffix(f, ".global_mgmt") { // iceoryx2 keeps the node counter on purpose
				left = append(left, f)
			}
		}
		require.NoError(t, iox.RemoveIsolation(ns.prefix, ns.root))
		if len(left) > 0 && !t.Failed() {
			t.Errorf("left in /dev/shm: %v", left)
		}
	})
	return ns
}

func (ns isolated) node(t *testing.T) *iox.Node {
	t.Helper()
	n, err := iox.NewNode(iox.WithIsolation(ns.prefix, ns.root), iox.WithNodeName("cli-test"))
	require.NoError(t, err)
	t.Cleanup(func() { n.Close() })
	return n
}

// process is the command running in a process of its own.
type process struct {
	t              *testing.T
	cmd            *exec.Cmd
	stdout, stderr bytes.Buffer
	done           chan struct{}
}

// start starts "iox args..." in ns (the isolation flags follow the command
// name; a nil ns starts it without them) with stdin as its standard input.
func start(t *testing.T, ns *isolated, stdin string, args ...string) *process {
	t.Helper()
	if ns != nil && len(args) > 0 {
		args = append([]string{args[0], "-prefix", ns.prefix, "-root", ns.root}, args[1:]...)
	}
	c := &process{t: t, cmd: exec.Command(os.Args[0], args...), done: make(chan struct{})}
	// Under -race a process waits a second at exit for late reports; the
	// command's exits need no such wait.
	c.cmd.Env = append(os.Environ(), runEnv+"=1", "GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	c.cmd.Stdin = strings.NewReader(stdin)
	c.cmd.Stdout, c.cmd.Stderr = &c.stdout, &c.stderr
	require.NoError(t, c.cmd.Start())
	go func() {
		c.cmd.Wait()
		close(c.done)
	}()
	t.Cleanup(func() {
		select {
		case <-c.done:
		default:
			c.cmd.Process.Kill()
			<-c.done
		}
	})
	return c
}

// wait waits for the command to exit (killing it after 20 s) and returns what
// it wrote and its exit status.
func (c *process) wait() (stdout, stderr string, code int) {
	c.t.Helper()
	select {
	case <-c.done:
	case <-time.After(20 * time.Second):
		c.cmd.Process.Kill()
		<-c.done
		c.t.Fatalf("%v did not exit; stderr: %s", c.cmd.Args[1:], c.stderr.String())
	}
	return c.stdout.String(), c.stderr.String(), c.cmd.ProcessState.ExitCode()
}

// runIox runs "iox args..." in ns to its end.
func runIox(t *testing.T, ns *isolated, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	return start(t, ns, stdin, args...).wait()
}

// ok runs "iox args..." in ns, checks that it succeeded without a word on
// stderr, and returns its output.
func ok(t *testing.T, ns *isolated, args ...string) string {
	t.Helper()
	out, errOut, code := runIox(t, ns, "", args...)
	require.Equal(t, 0, code, "iox %v: %s", args, errOut)
	require.Empty(t, errOut)
	return out
}

// eventually waits until cond holds (wait.Eventually).
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	wait.Eventually(t, what, cond)
}

func TestHelpExitsZeroWithUsage(t *testing.T) {
	for _, args := range [][]string{{"-h"}, {"help"}, {"--help"}} {
		out, errOut, code := runIox(t, nil, "", args...)
		require.Equal(t, 0, code)
		require.Empty(t, errOut)
		require.Contains(t, out, "Usage:\n  iox COMMAND [flags] [arguments]")
		for _, c := range []string{"services", "nodes", "clean", "sub NAME", "pub NAME", "listen NAME", "notify NAME ID"} {
			require.Contains(t, out, "\n  "+c+" ")
		}
	}
	for _, c := range []string{"services", "nodes", "clean", "sub", "pub", "listen", "notify"} {
		out, errOut, code := runIox(t, nil, "", c, "-h")
		require.Equal(t, 0, code, c)
		require.Empty(t, errOut, c)
		require.True(t, strings.HasPrefix(out, "Usage: iox "+c+" [flags]"), out)
		require.Contains(t, out, "-prefix string")
		require.Contains(t, out, "-root string")
	}
}

func TestUsageErrorsExitTwo(t *testing.T) {
	for _, c := range []struct {
		args []string
		says string
	}{
		{nil, "Usage:"},
		{[]string{"bogus"}, `unknown command "bogus"`},
		{[]string{"services", "-bogus"}, "flag provided but not defined: -bogus"},
		{[]string{"nodes", "extra"}, `unexpected argument "extra"`},
		{[]string{"sub"}, "missing NAME"},
		{[]string{"sub", "-format", "octal", "x"}, `-format "octal": use text, hex or len`},
		{[]string{"sub", "-n", "-1", "x"}, "must not be negative"},
		{[]string{"listen", "-n", "x", "y"}, `invalid value "x" for flag -n`},
		{[]string{"pub", "-linger", "-1s", "x"}, "must not be negative"},
		{[]string{"notify", "bell"}, "missing ID"},
		{[]string{"notify", "bell", "seven"}, `event id "seven" is not a number`},
		{[]string{"notify", "bell", "-1"}, "event id -1 is negative"},
		{[]string{"notify", "-prefix", "x", "bell", "-1"}, "event id -1 is negative"},
		{[]string{"notify", "bell", "-1", "extra"}, `unexpected argument "extra"`},
		{[]string{"sub", "x", "-n", "-1"}, "must not be negative"},
		{[]string{"services", "-root", "relative/dir"}, `-root "relative/dir": the root folder must be an absolute path`},
		{[]string{"services", "-root", "/tmp/iox-no-prefix"}, `-root "/tmp/iox-no-prefix" needs -prefix`},
	} {
		out, errOut, code := runIox(t, nil, "", c.args...)
		require.Equal(t, 2, code, "%v", c.args)
		require.Empty(t, out, "%v", c.args)
		require.Contains(t, errOut, c.says, "%v", c.args)
	}
}

func TestMissingServiceExitsOne(t *testing.T) {
	ns := newNamespace(t)
	for _, c := range []struct {
		args []string
		says string
	}{
		{[]string{"sub", "nothere"}, `iox sub: no publish-subscribe service "nothere" in namespace -prefix "` + ns.prefix},
		{[]string{"pub", "nothere"}, `iox pub: no publish-subscribe service "nothere"`},
		{[]string{"listen", "nothere"}, `iox listen: no event service "nothere"`},
		{[]string{"notify", "nothere", "1"}, `iox notify: no event service "nothere"`},
	} {
		out, errOut, code := runIox(t, &ns, "line\n", c.args...)
		require.Equal(t, 1, code, "%v", c.args)
		require.Empty(t, out, "%v", c.args)
		require.Contains(t, errOut, c.says, "%v", c.args)
		require.Equal(t, 1, strings.Count(errOut, "\n"), "one line: %q", errOut)
	}
}

// closeAll closes what a test opened, last first.
type closeAll []interface{ Close() error }

func (c *closeAll) add(x interface{ Close() error }, err error) {
	if err != nil {
		panic(err)
	}
	*c = append(*c, x)
}

func (c closeAll) close() {
	for i := len(c) - 1; i >= 0; i-- {
		c[i].Close()
	}
}

func TestServicesShowsEveryKindAndMarksIoxOwn(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := context.Background()
	var open closeAll
	defer open.close()
	open.add(iox.OpenPair(ctx, node, "pair"))
	open.add(iox.OpenPub(ctx, node, "lossless"))
	open.add(iox.OpenSub(ctx, node, "lossless"))
	open.add(iox.OpenPub(ctx, node, "lossy", iox.Lossy(), iox.History(2)))
	bell, err := node.Event("bell", iox.MaxEventID(99))
	open.add(bell, err)
	open.add(bell.Notifier())
	open.add(bell.Listener())
	open.add(iox.OpenServer(ctx, node, "rpc", iox.Raw{}, iox.Raw{}))
	open.add(iox.OpenClient(ctx, node, "rpc", iox.Raw{}, iox.Raw{}))

	text := ok(t, &ns, "services")
	blocks := map[string]string{} // heading → block
	for _, b := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		if b != "" && !strings.HasPrefix(b, "  ") {
			blocks[b] = ""
		}
	}
	for _, heading := range []string{
		"lossless  publish-subscribe",
		"lossless  event",
		`lossless.iox-space  event  [iox space of "lossless"]`,
		"lossy  publish-subscribe",
		`lossy.iox-space  event  [iox space of "lossy"]`,
		`pair.iox-pair0  publish-subscribe  [iox pair0 of "pair"]`,
		`pair.iox-pair1  publish-subscribe  [iox pair1 of "pair"]`,
		"bell  event",
		"rpc  request-response",
		`rpc.iox-req  event  [iox req of "rpc"]`,
	} {
		require.Contains(t, blocks, heading, text)
	}
	require.Regexp(t, `rpc\.iox-resp\.[0-9a-f]{32}  event  \[iox resp of "rpc"\]`, text)
	block := func(heading string) string {
		i := strings.Index(text, heading+"\n")
		require.GreaterOrEqual(t, i, 0, heading)
		rest := text[i+len(heading)+1:]
		var lines []string
		for _, l := range strings.Split(rest, "\n") {
			if !strings.HasPrefix(l, "  ") {
				break
			}
			lines = append(lines, strings.TrimSpace(l))
		}
		return strings.Join(lines, "\n")
	}
	require.Equal(t, strings.Join([]string{
		"payload:         [u8] (element size 1, alignment 1)",
		"user header:     iox::Header (size 40, alignment 8)",
		"settings:        max_publishers=2 max_subscribers=8 max_nodes=20 buffer_size=64 history=0 max_borrowed=4 safe_overflow=false",
		"ports:           publishers=1 subscribers=1",
		"nodes:           1",
	}, "\n"), block("lossless  publish-subscribe"))
	require.Contains(t, block("lossy  publish-subscribe"), "user header:     none")
	require.Contains(t, block("lossy  publish-subscribe"), "history=2")
	require.Contains(t, block("lossy  publish-subscribe"), "safe_overflow=true")
	require.Contains(t, block("bell  event"), "settings:        max_notifiers=16 max_listeners=16 max_nodes=36 max_event_id=99")
	require.Contains(t, block("bell  event"), "ports:           notifiers=1 listeners=1")
	require.Contains(t, block("rpc  request-response"), "request:         [u8] (element size 1, alignment 1)")
	require.Contains(t, block("rpc  request-response"), "response header: none")
	require.Contains(t, block("rpc  request-response"), "ports:           clients=1 servers=1")

	var list []struct {
		Name       string          `json:"name"`
		Pattern    string          `json:"pattern"`
		IoxChannel string          `json:"iox_channel"`
		IoxRole    string          `json:"iox_role"`
		Nodes      int             `json:"nodes"`
		Ports      map[string]int  `json:"ports"`
		Payload    *typeJSON       `json:"payload"`
		UserHeader *typeJSON       `json:"user_header"`
		Request    *typeJSON       `json:"request"`
		Settings   json.RawMessage `json:"settings"`
	}
	require.NoError(t, json.Unmarshal([]byte(ok(t, &ns, "services", "-json")), &list))
	byKey := map[string]int{}
	for i, s := range list {
		byKey[s.Name+" "+s.Pattern] = i
	}
	require.Len(t, byKey, len(list), "every service once")
	ll := list[byKey["lossless publish-subscribe"]]
	require.Equal(t, &typeJSON{Name: "u8", Size: 1, Alignment: 1, Slice: true}, ll.Payload)
	require.Equal(t, &typeJSON{Name: "iox::Header", Size: 40, Alignment: 8}, ll.UserHeader)
	require.Equal(t, map[string]int{"publishers": 1, "subscribers": 1}, ll.Ports)
	require.Empty(t, ll.IoxRole)
	require.JSONEq(t, `{"max_publishers":2,"max_subscribers":8,"max_nodes":20,"buffer_size":64,"history":0,"max_borrowed":4,"safe_overflow":false}`,
		string(ll.Settings))
	space := list[byKey["lossless.iox-space event"]]
	require.Equal(t, "lossless", space.IoxChannel)
	require.Equal(t, "space", space.IoxRole)
	require.Nil(t, space.Payload)
	bellJSON := list[byKey["bell event"]]
	require.Equal(t, map[string]int{"notifiers": 1, "listeners": 1}, bellJSON.Ports)
	require.JSONEq(t, `{"max_notifiers":16,"max_listeners":16,"max_nodes":36,"max_event_id":99}`, string(bellJSON.Settings))
	rr := list[byKey["rpc request-response"]]
	require.Equal(t, &typeJSON{Name: "u8", Size: 1, Alignment: 1, Slice: true}, rr.Request)
	require.Equal(t, map[string]int{"clients": 1, "servers": 1}, rr.Ports)
	pair := list[byKey["pair.iox-pair1 publish-subscribe"]]
	require.Equal(t, "pair", pair.IoxChannel)
	require.Equal(t, "pair1", pair.IoxRole)
	roles := 0
	for _, s := range list {
		if s.IoxRole != "" {
			roles++
		}
	}
	require.Equal(t, 8, roles, "pair0 and pair1 (publish-subscribe and event), two spaces, req, resp")

	open.close()
	open = nil
	require.Equal(t, "[]\n", ok(t, &ns, "services", "-json"))
	require.Empty(t, ok(t, &ns, "services"))
}

// A pipeline's services are shown with the pipeline they belong to and their
// role: the pusher's (counts and wake-ups) and each puller's.
func TestServicesShowsPipelines(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := context.Background()
	var open closeAll
	defer open.close()
	pull, err := iox.OpenPull(ctx, node, "jobs")
	open.add(pull, err)
	open.add(iox.OpenPush(ctx, node, "jobs"))

	text := ok(t, &ns, "services")
	for _, heading := range []string{
		`jobs.iox-push  publish-subscribe  [iox push of "jobs"]`,
		`jobs.iox-push  event  [iox push of "jobs"]`,
	} {
		require.Contains(t, text, heading+"\n")
	}
	var list []struct {
		Name       string `json:"name"`
		Pattern    string `json:"pattern"`
		IoxChannel string `json:"iox_channel"`
		IoxRole    string `json:"iox_role"`
	}
	require.NoError(t, json.Unmarshal([]byte(ok(t, &ns, "services", "-json")), &list))
	roles := map[string]int{}
	for _, s := range list {
		require.Equal(t, "jobs", s.IoxChannel, s.Name)
		roles[s.IoxRole+" "+s.Pattern]++
		if s.IoxRole == iox.RolePull {
			require.Regexp(t, `^jobs\.iox-pull\.[0-9a-f]{16}$`, s.Name)
			require.Regexp(t, `(?m)^`+regexp.QuoteMeta(s.Name)+` +`+s.Pattern+` +\[iox pull of "jobs"\]$`, text)
		}
	}
	require.Equal(t, map[string]int{"push publish-subscribe": 1, "push event": 1, "pull publish-subscribe": 1, "pull event": 1}, roles)

	open.close()
	open = nil
	require.Empty(t, ok(t, &ns, "services"), "closing both ends removes every service")
}

func TestNodesShowsDeadAndCleanRemovesIt(t *testing.T) {
	ns := newNamespace(t)
	ns.node(t)
	child := exec.Command(os.Args[0])
	child.Env = append(os.Environ(), childEnv+"=node", "IOX_CLI_PREFIX="+ns.prefix, "IOX_CLI_ROOT="+ns.root)
	child.Stderr = os.Stderr
	stdin, err := child.StdinPipe()
	require.NoError(t, err)
	defer stdin.Close()
	stdout, err := child.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, child.Start())
	line, err := bufio.NewReader(stdout).ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "ready\n", line)
	require.NoError(t, child.Process.Signal(syscall.SIGKILL))
	child.Wait()

	type node struct {
		ID         string `json:"id"`
		PID        int    `json:"pid"`
		State      string `json:"state"`
		Running    bool   `json:"running"`
		Name       string `json:"name"`
		Executable string `json:"executable"`
	}
	nodes := func() map[int]node {
		var list []node
		require.NoError(t, json.Unmarshal([]byte(ok(t, &ns, "nodes", "-json")), &list))
		out := map[int]node{}
		for _, n := range list {
			require.NotEqual(t, "iox", n.Name, "the command's own node is not listed")
			out[n.PID] = n
		}
		require.Len(t, out, len(list))
		return out
	}
	got := nodes()
	require.Len(t, got, 2)
	me := got[os.Getpid()]
	require.Equal(t, "alive", me.State)
	require.True(t, me.Running)
	require.Equal(t, "cli-test", me.Name)
	require.Len(t, me.ID, 32)
	dead := got[child.Process.Pid]
	require.Equal(t, node{ID: dead.ID, PID: child.Process.Pid, State: "dead", Running: false,
		Name: fmt.Sprintf("child-%d", child.Process.Pid), Executable: me.Executable}, dead)

	text := ok(t, &ns, "nodes")
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	require.Len(t, lines, 3)
	require.Regexp(t, `^PID +STATE +NAME +EXECUTABLE +ID$`, lines[0])
	require.Regexp(t, fmt.Sprintf(`(?m)^%d +alive +cli-test +`, os.Getpid()), text)
	require.Regexp(t, fmt.Sprintf(`(?m)^%d +dead +child-%d +\S+ +%s$`, child.Process.Pid, child.Process.Pid, dead.ID), text)

	require.Equal(t, "{\n  \"cleaned\": 1\n}\n", ok(t, &ns, "clean", "-json"))
	got = nodes()
	require.Len(t, got, 1)
	require.Contains(t, got, os.Getpid())
	require.Equal(t, "cleaned up 0 dead nodes\n", ok(t, &ns, "clean"))
}

func TestSubPrintsMessages(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx := context.Background()

	// A lossless channel: the command joins as a lossless subscriber.
	pub, err := iox.OpenPub(ctx, node, "ch")
	require.NoError(t, err)
	defer pub.Close()
	sub := start(t, &ns, "", "sub", "-n", "3", "ch")
	eventually(t, "the command to subscribe", func() bool { return pub.Subscribers() == 1 })
	for _, m := range []string{"one", "two", "three", "four"} {
		require.NoError(t, pub.Send(ctx, []byte(m)))
	}
	out, errOut, code := sub.wait()
	require.Equal(t, 0, code, errOut)
	require.Empty(t, errOut)
	require.Equal(t, "one\ntwo\nthree\n", out)
	eventually(t, "the command's subscriber to leave", func() bool { return pub.Subscribers() == 0 })

	// A lossy service, as programs in other languages make them.
	lossy, err := iox.OpenPub(ctx, node, "plain", iox.Lossy())
	require.NoError(t, err)
	defer lossy.Close()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"sub", "-format", "hex", "-json", "-n", "2", "plain"}, "{\"hex\":\"0001ff\",\"len\":3}\n{\"hex\":\"6869\",\"len\":2}\n"},
		{[]string{"sub", "plain", "-format", "len", "-n", "2"}, "3\n2\n"},
		{[]string{"sub", "-json", "-n", "2", "plain"}, "{\"len\":3,\"text\":\"\\u0000\\u0001\\ufffd\"}\n{\"len\":2,\"text\":\"hi\"}\n"},
	} {
		sub := start(t, &ns, "", c.args...)
		eventually(t, "the command to subscribe", func() bool { return lossy.Subscribers() == 1 })
		require.NoError(t, lossy.Send(ctx, []byte{0, 1, 0xff}))
		require.NoError(t, lossy.Send(ctx, []byte("hi")))
		out, errOut, code := sub.wait()
		require.Equal(t, 0, code, errOut)
		require.Equal(t, c.want, out, "%v", c.args)
		eventually(t, "the command's subscriber to leave", func() bool { return lossy.Subscribers() == 0 })
	}
}

func TestSubEndsCleanlyOnInterrupt(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	pub, err := iox.OpenPub(context.Background(), node, "ch")
	require.NoError(t, err)
	defer pub.Close()
	sub := start(t, &ns, "", "sub", "ch")
	eventually(t, "the command to subscribe", func() bool { return pub.Subscribers() == 1 })
	require.NoError(t, sub.cmd.Process.Signal(os.Interrupt))
	out, errOut, code := sub.wait()
	require.Equal(t, 0, code, errOut)
	require.Empty(t, out)
	require.Empty(t, errOut)
	eventually(t, "the command's subscriber to leave", func() bool { return pub.Subscribers() == 0 })
}

func TestPubSendsEachLine(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, c := range []struct {
		opts []iox.Option
		args []string
	}{
		// A lossless channel: the command ends once the subscriber confirmed
		// everything, which a loaded machine may take long for.
		{nil, []string{"pub", "-linger", "20s"}},
		// A lossy one: the command stays a while for the subscriber to look.
		{[]iox.Option{iox.Lossy()}, []string{"pub"}},
	} {
		name := "in" + strconv.Itoa(len(c.opts))
		sub, err := iox.OpenSub(ctx, node, name, c.opts...)
		require.NoError(t, err)
		pub := start(t, &ns, "alpha\nbeta\n\ngamma", append(c.args, name)...)
		var got []string
		for len(got) < 4 {
			m, err := sub.Recv(ctx)
			require.NoError(t, err, "%s: got %q", name, got)
			got = append(got, string(m))
		}
		out, errOut, code := pub.wait()
		require.Equal(t, 0, code, errOut)
		require.Empty(t, out)
		require.Empty(t, errOut)
		require.Equal(t, []string{"alpha", "beta", "", "gamma"}, got)
		require.NoError(t, sub.Close())
	}
}

func TestListenAndNotifyRoundTrip(t *testing.T) {
	ns := newNamespace(t)
	node := ns.node(t)
	bell, err := node.Event("bell", iox.MaxEventID(50))
	require.NoError(t, err)
	defer bell.Close()
	listeners := func() int {
		_, n, err := bell.Counts()
		require.NoError(t, err)
		return n
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"listen", "-json", "-n", "2", "bell"}, "{\"id\":7}\n{\"id\":9}\n"},
		{[]string{"listen", "bell", "-n", "2"}, "7\n9\n"},
	} {
		lis := start(t, &ns, "", c.args...)
		eventually(t, "the command to listen", func() bool { return listeners() == 1 })
		require.Empty(t, ok(t, &ns, "notify", "bell", "7"))
		require.Empty(t, ok(t, &ns, "notify", "bell", "9"))
		out, errOut, code := lis.wait()
		require.Equal(t, 0, code, errOut)
		require.Equal(t, c.want, out)
		eventually(t, "the command's listener to leave", func() bool { return listeners() == 0 })
	}

	// This process's own listener hears the command's notification.
	l, err := bell.Listener()
	require.NoError(t, err)
	defer l.Close()
	require.Empty(t, ok(t, &ns, "notify", "bell", "3"))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ids, err := l.Wait(ctx)
	require.NoError(t, err)
	require.Equal(t, []iox.EventID{3}, ids)

	out, errOut, code := runIox(t, &ns, "", "notify", "bell", "51")
	require.Equal(t, 1, code)
	require.Empty(t, out)
	require.Contains(t, errOut, `event id 51 is over the largest id of "bell", 50`)

	lis := start(t, &ns, "", "listen", "bell")
	eventually(t, "the command to listen", func() bool { return listeners() == 2 })
	require.NoError(t, lis.cmd.Process.Signal(os.Interrupt))
	out, errOut, code = lis.wait()
	require.Equal(t, 0, code, errOut)
	require.Empty(t, out)
}
