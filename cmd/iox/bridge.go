package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/iox-go/iox/bridge"
)

// bridge relays services of the namespace to and from other hosts over NATS
// (package bridge): it joins a NATS server or cluster (-nats) or runs one
// (-listen), and prints a line when it relays and one per service it starts
// or stops relaying, so that scripts can wait for it.

var bridgeCommand = command{
	name:    "bridge",
	summary: "relay services to and from other hosts over NATS",
	about: `Relay the services matching -export to other hosts, and mirror here the
services other hosts export matching -import, over NATS: -nats joins servers
(URL[,URL...]), -listen runs one here with JetStream (the other hosts then use
-nats with its address). Patterns are globs over service names ("sensors/*",
"**" for every name). Lossy publish-subscribe services cross over NATS core,
iox lossless channels over JetStream, events as events, calls as NATS
requests, pairs as two lossless directions (the bridge holds the end facing
the program on its host). -listen binds loopback unless given another address, which then
requires -token or -nkey-users (and takes -tls-cert/-tls-key). The token is
best given as -token-file or in $IOX_BRIDGE_TOKEN, which keep it out of the
process list.

It prints "relaying" once it relays, then "start"/"stop" lines per service
and "error" lines, or JSON lines with -json; SIGINT and SIGTERM end it.`,
	flags: func(fs *flag.FlagSet, ns *namespace) func(*env, []string) error {
		var exports, imports, nkeyUsers, routes listFlag
		fs.Var(&exports, "export", "export services matching `PATTERN` (repeatable)")
		fs.Var(&imports, "import", "import services matching `PATTERN` (repeatable)")
		urls := fs.String("nats", "", "join the NATS servers at `URL[,URL...]`")
		listen := fs.String("listen", "", "run a NATS server with JetStream at `HOST:PORT` (loopback unless an address is given)")
		store := fs.String("store", "", "JetStream's folder for -listen (default: a folder in the user cache named after the port)")
		name := fs.String("name", "", "the bridge's name, kept across restarts (default: iox-bridge-HOSTNAME)")
		subject := fs.String("subject", "iox", "the root of the bridge's NATS subjects")
		token := fs.String("token", "", "the token clients present (with -listen) or this client presents (visible in the process list: prefer -token-file or $"+tokenEnv+")")
		tokenFile := fs.String("token-file", "", "read -token from the first line of `FILE`")
		fs.Var(&nkeyUsers, "nkey-users", "with -listen: the public NKey of a user allowed in (repeatable)")
		nkeySeed := fs.String("nkey", "", "connect with the NKey seed in `FILE`")
		creds := fs.String("creds", "", "connect with the NATS credentials `FILE`")
		tlsCert := fs.String("tls-cert", "", "TLS certificate `FILE`: the server's with -listen, the client's otherwise")
		tlsKey := fs.String("tls-key", "", "TLS key `FILE` of -tls-cert")
		tlsCA := fs.String("tls-ca", "", "CA certificates `FILE` to verify the server with")
		cluster := fs.String("cluster", "", "with -listen: this server's cluster address `HOST:PORT` (beyond loopback it needs -token, which the cluster's servers present to each other)")
		fs.Var(&routes, "route", "with -listen: the cluster `URL` of another server (repeatable)")
		maxMsg := fs.Int("max-message", 0, "the largest message relayed (default iox's MaxMessageSize default)")
		asJSON := fs.Bool("json", false, "print JSON lines")
		return func(e *env, _ []string) error {
			if (*urls == "") == (*listen == "") {
				return usagef("give -nats or -listen (one of them)")
			}
			if len(exports) == 0 && len(imports) == 0 {
				return usagef("nothing crosses without -export or -import")
			}
			if *listen == "" && (len(nkeyUsers) > 0 || *cluster != "" || len(routes) > 0) {
				return usagef("-nkey-users, -cluster and -route go with -listen")
			}
			if *tlsKey != "" && *tlsCert == "" {
				return usagef("-tls-key goes with -tls-cert")
			}
			if *listen != "" && *tlsCA != "" {
				return usagef("-tls-ca goes with -nats (with -listen the bridge trusts its server's -tls-cert)")
			}
			if *maxMsg < 0 {
				return usagef("-max-message must be a size in bytes (0: the default)")
			}
			if err := resolveToken(token, *tokenFile); err != nil {
				return err
			}
			var out sync.Mutex
			say := func(s bridge.Status, extra map[string]string) {
				out.Lock()
				defer out.Unlock()
				if *asJSON {
					v := map[string]string{"event": s.Event}
					for k, x := range map[string]string{"dir": s.Dir, "kind": s.Kind, "service": s.Service} {
						if x != "" {
							v[k] = x
						}
					}
					if s.Err != nil {
						v["error"] = s.Err.Error()
					}
					for k, x := range extra {
						v[k] = x
					}
					json.NewEncoder(e.stdout).Encode(v)
					return
				}
				line := s.String()
				for _, k := range []string{"url"} {
					if extra[k] != "" {
						line += " " + extra[k]
					}
				}
				fmt.Fprintln(e.stdout, line)
			}
			var opts []nats.Option
			var srv *server.Server
			url := *urls
			if *listen != "" {
				c := bridge.ListenConfig{Addr: *listen, StoreDir: *store, Token: *token, NKeys: nkeyUsers,
					ClusterAddr: *cluster, Routes: routes, ClusterName: "iox"}
				if c.StoreDir == "" {
					dir, err := os.UserCacheDir()
					if err != nil {
						dir = os.TempDir()
					}
					c.StoreDir = filepath.Join(dir, "iox", "nats-"+strings.NewReplacer(":", "_", "[", "", "]", "").Replace(*listen))
				}
				var own *x509.CertPool // with TLS, the bridge trusts its own server's certificate
				if *tlsCert != "" {
					cert, err := tls.LoadX509KeyPair(*tlsCert, *tlsKey)
					if err != nil {
						return fmt.Errorf("-tls-cert: %w", err)
					}
					c.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
					leaf, err := x509.ParseCertificate(cert.Certificate[0])
					if err != nil {
						return fmt.Errorf("-tls-cert: %w", err)
					}
					own = x509.NewCertPool()
					own.AddCert(leaf)
				}
				if len(nkeyUsers) > 0 && *nkeySeed == "" {
					return usagef("-nkey-users: the bridge itself connects with -nkey SEEDFILE")
				}
				s, err := bridge.Listen(c)
				if err != nil {
					return err
				}
				srv = s
				defer func() { srv.Shutdown(); srv.WaitForShutdown() }()
				url = srv.ClientURL()
				if own != nil { // over the network: in-process connections do not speak TLS
					url = strings.Replace(url, "nats://", "tls://", 1)
					opts = append(opts, nats.Secure(&tls.Config{RootCAs: own, MinVersion: tls.VersionTLS12}))
				} else {
					opts = append(opts, nats.InProcessServer(srv))
				}
			} else {
				if *tlsCert != "" {
					opts = append(opts, nats.ClientCert(*tlsCert, *tlsKey))
				}
				if *tlsCA != "" {
					opts = append(opts, nats.RootCAs(*tlsCA))
				}
			}
			if *token != "" {
				opts = append(opts, nats.Token(*token))
			}
			if *creds != "" {
				opts = append(opts, nats.UserCredentials(*creds))
			}
			if *nkeySeed != "" {
				o, err := nats.NkeyOptionFromSeed(*nkeySeed)
				if err != nil {
					return fmt.Errorf("-nkey: %w", err)
				}
				opts = append(opts, o)
			}
			opts = append(opts, nats.Name("iox bridge"), nats.MaxReconnects(-1), nats.ReconnectWait(bridge.ReconnectWait),
				nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
					say(bridge.Status{Event: "disconnected", Err: err}, nil)
				}),
				nats.ReconnectHandler(func(nc *nats.Conn) {
					say(bridge.Status{Event: "reconnected"}, map[string]string{"url": nc.ConnectedUrlRedacted()})
				}))
			nc, err := nats.Connect(url, opts...)
			if err != nil {
				return fmt.Errorf("connect to %s: %w", url, err)
			}
			defer nc.Close()
			node, err := ns.node()
			if err != nil {
				return err
			}
			defer node.Close()
			b, err := bridge.New(e.ctx, bridge.Config{Node: node, Conn: nc, Export: exports, Import: imports,
				Name: *name, Subject: *subject, MaxMessageSize: *maxMsg,
				OnStatus: func(s bridge.Status) {
					extra := map[string]string(nil)
					if s.Event == "relaying" {
						extra = map[string]string{"url": url}
					}
					say(s, extra)
				}})
			if err != nil {
				return err
			}
			<-e.ctx.Done()
			err = b.Close()
			nc.Drain()
			if err != nil {
				say(bridge.Status{Event: "closed", Err: err}, nil)
			}
			return nil
		}
	},
}

// listFlag is a flag that may be given several times; commas also separate
// values of -route.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error {
	*l = append(*l, s)
	return nil
}

// tokenEnv is the environment variable that gives the bridge's token when
// neither -token nor -token-file does.
const tokenEnv = "IOX_BRIDGE_TOKEN"

// resolveToken sets *token from -token-file or $IOX_BRIDGE_TOKEN when -token
// is not given: a token on the command line is visible to every user of the
// machine in the process list. More than one of -token and -token-file is a
// usage error, and so is an empty or unreadable file.
func resolveToken(token *string, file string) error {
	switch {
	case file != "" && *token != "":
		return usagef("give -token or -token-file, not both")
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return usagef("-token-file: %v", err)
		}
		line, _, _ := strings.Cut(string(b), "\n")
		if *token = strings.TrimSpace(line); *token == "" {
			return usagef("-token-file %q: the first line is empty", file)
		}
	case *token == "":
		*token = os.Getenv(tokenEnv)
	}
	return nil
}
