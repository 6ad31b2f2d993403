// Command iox looks inside iceoryx2: it lists the services and nodes of a
// namespace, removes what crashed processes left behind, prints or sends the
// messages and events of a service, and reads and writes blackboards.
//
//	iox services            every service: pattern, types, settings, ports
//	iox nodes               every node: pid, name, alive or dead
//	iox clean               remove the resources of dead nodes
//	iox sub NAME            print a publish-subscribe service's messages
//	iox pub NAME            publish each line of standard input
//	iox listen NAME         print the event ids signalled on an event service
//	iox notify NAME ID      signal an event id
//	iox get NAME KEY        print the value of a blackboard entry
//	iox set NAME KEY VALUE  write the value of a blackboard entry
//	iox watch NAME KEY      print a blackboard entry's value and each change
//	iox bridge              relay services to and from other hosts over NATS
//
// Every command takes -prefix and -root to select an isolated namespace (see
// iox.WithIsolation); "iox COMMAND -h" shows its flags. The exit status is 0
// on success, 1 on failure and 2 on a usage error.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/iox-go/iox"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// Exit statuses.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

// env is what a command runs with. ctx ends on SIGINT or SIGTERM.
type env struct {
	ctx    context.Context
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
}

// command is one subcommand: its flags, its arguments and what it does.
type command struct {
	name    string
	args    []string // names of the positional arguments
	summary string
	about   string // the paragraph of its -h
	// flags declares the command's own flags on fs and returns the function
	// that runs it with the positional arguments.
	flags func(fs *flag.FlagSet, ns *namespace) func(e *env, args []string) error
}

var commands = []command{
	servicesCommand, nodesCommand, cleanCommand,
	subCommand, pubCommand, listenCommand, notifyCommand, bridgeCommand,
	getCommand, setCommand, watchCommand, // blackboard.go
}

const about = `iox looks inside iceoryx2: the services and nodes of a namespace, and the
messages and events that flow through them.`

func usage(w io.Writer) {
	fmt.Fprintf(w, "%s\n\nUsage:\n  iox COMMAND [flags] [arguments]\n\nCommands:\n", about)
	for _, c := range commands {
		fmt.Fprintf(w, "  %-16s %s\n", strings.Join(append([]string{c.name}, c.args...), " "), c.summary)
	}
	fmt.Fprint(w, `
Every command takes -prefix and -root to select an isolated namespace
(iox.WithIsolation). Run "iox COMMAND -h" for the flags of a command.
Exit status: 0 success, 1 failure, 2 usage error.
`)
}

// usageError is a command line that does not fit the command.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return &usageError{fmt.Sprintf(format, a...)} }

// run runs the command line args and returns the exit status.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return exitUsage
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		usage(stdout)
		return exitOK
	}
	for _, c := range commands {
		if c.name == args[0] {
			return c.run(&env{ctx: ctx, stdin: stdin, stdout: stdout, stderr: stderr}, args[1:])
		}
	}
	fmt.Fprintf(stderr, "iox: unknown command %q\n\n", args[0])
	usage(stderr)
	return exitUsage
}

// run parses the command's flags and arguments and runs it.
func (c command) run(e *env, args []string) int {
	fs := flag.NewFlagSet("iox "+c.name, flag.ContinueOnError)
	var out bytes.Buffer // what the flag package says: usage goes to stdout on -h only
	fs.SetOutput(&out)
	var ns namespace
	fs.StringVar(&ns.prefix, "prefix", "", "shared-memory prefix of an isolated namespace")
	fs.StringVar(&ns.root, "root", "", "root folder of an isolated namespace (absolute)")
	do := c.flags(fs, &ns)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: iox %s [flags]%s\n\n%s\n\nFlags:\n", c.name, argList(c.args), c.about)
		fs.PrintDefaults()
	}
	pos, err := parse(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		e.stdout.Write(out.Bytes())
		return exitOK
	}
	if err == nil && len(pos) != len(c.args) {
		if len(pos) < len(c.args) {
			err = usagef("iox %s: missing %s", c.name, strings.Join(c.args[len(pos):], " "))
		} else {
			err = usagef("iox %s: unexpected argument %q", c.name, pos[len(c.args)])
		}
		fmt.Fprintf(&out, "%v\n", err)
		fs.Usage()
	}
	if err != nil {
		e.stderr.Write(out.Bytes())
		return exitUsage
	}
	if ns.root != "" && !filepath.IsAbs(ns.root) {
		fmt.Fprintf(e.stderr, "iox %s: -root %q: the root folder must be an absolute path\n", c.name, ns.root)
		return exitUsage
	}
	if ns.root != "" && ns.prefix == "" {
		fmt.Fprintf(e.stderr, "iox %s: -root %q needs -prefix: an isolated namespace's shared memory needs a prefix of its own\n", c.name, ns.root)
		return exitUsage
	}
	if err := do(e, pos); err != nil {
		var u *usageError
		if errors.As(err, &u) {
			fmt.Fprintf(e.stderr, "iox %s: %v\n", c.name, err)
			return exitUsage
		}
		fmt.Fprintf(e.stderr, "iox %s: %v\n", c.name, err)
		return exitFailure
	}
	return exitOK
}

func argList(args []string) string {
	if len(args) == 0 {
		return ""
	}
	return " " + strings.Join(args, " ")
}

// parse parses flags that may come before, between or after the positional
// arguments ("iox sub NAME -n 3" as well as "iox sub -n 3 NAME"); after "--"
// everything is positional. A negative number where a flag would be is a
// positional argument ("iox notify bell -1"), since no flag is named by a
// number; as a flag's value ("-n -1") it stays that flag's.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		k := negativeAt(fs, args)
		if err := fs.Parse(args[:k]); err != nil {
			return nil, err
		}
		parsed := fs.Args()
		rest := append(slices.Clip(parsed), args[k:]...)
		if len(rest) == 0 {
			return pos, nil
		}
		if k > len(parsed) && args[k-len(parsed)-1] == "--" {
			return append(pos, rest...), nil
		}
		pos, args = append(pos, rest[0]), rest[1:]
	}
}

// negativeAt is the index of the first argument that is a negative number in
// a flag's place (not after "--", not the value of the flag before it), or
// len(args).
func negativeAt(fs *flag.FlagSet, args []string) int {
	for i, a := range args {
		if a == "--" {
			return len(args)
		}
		if _, err := strconv.ParseFloat(a, 64); err != nil || !strings.HasPrefix(a, "-") {
			continue
		}
		if i > 0 && takesValue(fs, args[i-1]) {
			continue
		}
		return i
	}
	return len(args)
}

// takesValue reports whether arg is a flag (-name or --name, without
// "=value") that takes the next argument as its value.
func takesValue(fs *flag.FlagSet, arg string) bool {
	name, ok := strings.CutPrefix(arg, "-")
	if !ok || strings.Contains(name, "=") {
		return false
	}
	f := fs.Lookup(strings.TrimPrefix(name, "-"))
	if f == nil {
		return false
	}
	b, isBool := f.Value.(interface{ IsBoolFlag() bool })
	return !isBool || !b.IsBoolFlag()
}

// namespace is the iceoryx2 namespace a command works in.
type namespace struct{ prefix, root string }

// node creates the command's node in the namespace.
func (ns namespace) node(opts ...iox.NodeOption) (*iox.Node, error) {
	opts = append([]iox.NodeOption{iox.WithNodeName("iox")}, opts...)
	if ns.prefix != "" || ns.root != "" {
		root := ns.root
		if root != "" && !strings.HasSuffix(root, "/") {
			root += "/"
		}
		opts = append(opts, iox.WithIsolation(ns.prefix, root))
	}
	return iox.NewNode(opts...)
}

// notFound turns a missing service into a message that says where iox looked.
func (ns namespace) notFound(err error, kind, name string) error {
	if !errors.Is(err, iox.ErrServiceNotFound) {
		return err
	}
	where := "the default namespace"
	if ns.prefix != "" || ns.root != "" {
		where = fmt.Sprintf("namespace -prefix %q -root %q", ns.prefix, ns.root)
	}
	return fmt.Errorf("no %s service %q in %s (see iox services)", kind, name, where)
}
