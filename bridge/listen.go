package bridge

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/iox-go/iox"
)

// An embedded NATS server, for "iox bridge -listen": the default for two or
// three hosts, where one host's bridge listens and the others connect to it.

// ListenConfig describes an embedded server.
type ListenConfig struct {
	// Addr is HOST:PORT; port 0 picks a free one. Default "127.0.0.1:4222".
	Addr string
	// StoreDir holds JetStream's files (lossless channels survive a restart
	// of the server when it is kept). Required.
	StoreDir string
	// Token, or NKeys (users' public keys), are what clients must present.
	// A non-loopback Addr without either is refused.
	Token string
	NKeys []string
	// TLS, when set, makes clients connect with TLS.
	TLS *tls.Config
	// Cluster: this server's cluster address (HOST:PORT) and name, and the
	// routes to the other servers of the cluster. With a Token the servers
	// authenticate each other with it; a cluster address beyond loopback
	// without a Token is refused.
	ClusterAddr string
	ClusterName string
	Routes      []string
	// MaxPayload is the largest NATS message (default 1 MiB, NATS's own).
	MaxPayload int32
	// ServerName names the server (default: chosen by NATS).
	ServerName string
}

// Listen starts an embedded NATS server with JetStream and waits until it
// takes connections. The caller shuts it down (Shutdown, WaitForShutdown).
func Listen(c ListenConfig) (*server.Server, error) {
	const op = "listen"
	if c.Addr == "" {
		c.Addr = "127.0.0.1:4222"
	}
	host, portStr, err := net.SplitHostPort(c.Addr)
	if err != nil {
		return nil, &iox.Error{Op: op, Name: c.Addr, Kind: iox.ErrInvalidArgument, Detail: err.Error()}
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 0 || port > 65535 {
		return nil, &iox.Error{Op: op, Name: c.Addr, Kind: iox.ErrInvalidArgument, Detail: "bad port"}
	}
	if host == "" {
		return nil, &iox.Error{Op: op, Name: c.Addr, Kind: iox.ErrInvalidArgument, Detail: "name the address to bind (127.0.0.1 for this host only)"}
	}
	if !isLoopback(host) && c.Token == "" && len(c.NKeys) == 0 {
		return nil, &iox.Error{Op: op, Name: c.Addr, Kind: iox.ErrInvalidArgument,
			Detail: "a server reachable from other hosts needs authentication: a token or NKeys (and TLS is advised)"}
	}
	if c.Token != "" && len(c.NKeys) > 0 {
		return nil, &iox.Error{Op: op, Name: c.Addr, Kind: iox.ErrInvalidArgument, Detail: "give a token or NKeys, not both"}
	}
	if c.StoreDir == "" {
		return nil, &iox.Error{Op: op, Name: c.Addr, Kind: iox.ErrInvalidArgument, Detail: "a JetStream store folder is required"}
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	o := &server.Options{
		ServerName: c.ServerName,
		Host:       host,
		Port:       port,
		JetStream:  true,
		StoreDir:   c.StoreDir,
		NoSigs:     true,
		NoLog:      true,
		MaxPayload: c.MaxPayload,
	}
	if c.Token != "" {
		o.Authorization = c.Token
	}
	for _, k := range c.NKeys {
		o.Nkeys = append(o.Nkeys, &server.NkeyUser{Nkey: k})
	}
	if c.TLS != nil {
		o.TLSConfig = c.TLS
		o.TLS = true
	}
	if c.ClusterAddr != "" {
		ch, cp, err := net.SplitHostPort(c.ClusterAddr)
		if err != nil {
			return nil, &iox.Error{Op: op, Name: c.ClusterAddr, Kind: iox.ErrInvalidArgument, Detail: err.Error()}
		}
		o.Cluster.Host = ch
		if o.Cluster.Port, err = strconv.Atoi(cp); err != nil {
			return nil, &iox.Error{Op: op, Name: c.ClusterAddr, Kind: iox.ErrInvalidArgument, Detail: "bad port"}
		}
		if o.Cluster.Port == 0 {
			o.Cluster.Port = server.RANDOM_PORT
		}
		// Routes are a way in as wide as clients: beyond loopback they need
		// the token, with which the servers of the cluster authenticate
		// each other (a route given without credentials presents it).
		if !isLoopback(ch) && c.Token == "" {
			return nil, &iox.Error{Op: op, Name: c.ClusterAddr, Kind: iox.ErrInvalidArgument,
				Detail: "a cluster address reachable from other hosts needs a token: the servers of the cluster authenticate each other with it"}
		}
		o.Cluster.Name = c.ClusterName
		o.Routes = server.RoutesFromStr(joinComma(c.Routes))
		if c.Token != "" {
			o.Cluster.Username, o.Cluster.Password = clusterUser, c.Token
			for _, u := range o.Routes {
				if u.User == nil {
					u.User = url.UserPassword(clusterUser, c.Token)
				}
			}
		}
	}
	s, err := server.NewServer(o)
	if err != nil {
		return nil, &iox.Error{Op: op, Name: c.Addr, Kind: iox.ErrInvalidArgument, Detail: err.Error()}
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		s.WaitForShutdown()
		return nil, &iox.Error{Op: op, Name: c.Addr, Kind: iox.ErrInvalidArgument, Detail: fmt.Sprintf("the server did not start within 10 s")}
	}
	return s, nil
}

// clusterUser is the user the servers of a cluster with a token present to
// each other.
const clusterUser = "iox"

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func joinComma(s []string) string {
	out := ""
	for i, x := range s {
		if i > 0 {
			out += ","
		}
		out += x
	}
	return out
}
