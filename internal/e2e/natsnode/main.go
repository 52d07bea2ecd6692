// Command natsnode runs one nats-server cluster node with JetStream, the
// same server code zohook embeds, as a process of its own: the end-to-end
// tests start three and SIGKILL one, which an in-process server cannot
// simulate (its Shutdown closes connections and hands leadership over
// cleanly).
//
// With -config it starts from a nats-server configuration file (the
// cluster tests use deploy/nats/n*.conf, the files deploy/compose.yaml
// runs), and the flags given explicitly override what a test must change:
// listen addresses and ports, the routes, the store directory. Everything
// else (users, permissions, JetStream, limits) comes from the file.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

func main() {
	config := flag.String("config", "", "nats-server configuration `file`; the flags below, when given, override it")
	name := flag.String("name", "n1", "server name")
	host := flag.String("host", "127.0.0.1", "client and route listen host")
	port := flag.Int("port", 4222, "client port")
	clusterPort := flag.Int("cluster-port", 6222, "route port")
	httpPort := flag.Int("http-port", 0, "monitoring port (0: none; -1: any free port)")
	routes := flag.String("routes", "", "comma-separated nats-route:// URLs of every node")
	store := flag.String("store", "", "JetStream store directory")
	flag.Parse()
	set := map[string]bool{}
	flag.Visit(func(f *flag.Flag) { set[f.Name] = true })

	opts, err := options(*config, set, *name, *host, *port, *clusterPort, *httpPort, *routes, *store)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	s, err := server.NewServer(opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	s.ConfigureLogger()
	go s.Start()
	if !s.ReadyForConnections(30 * time.Second) {
		fmt.Fprintln(os.Stderr, "not ready for connections")
		os.Exit(1)
	}
	fmt.Println("ready", s.ClientURL())
	s.WaitForShutdown()
}

// options builds the server options: from the file with the given flags
// applied over it, or (no file) from the flags alone, without auth.
func options(config string, set map[string]bool, name, host string, port, clusterPort, httpPort int, routes, store string) (*server.Options, error) {
	if config == "" {
		return &server.Options{
			ServerName: name,
			Host:       host,
			Port:       port,
			HTTPPort:   httpPort,
			JetStream:  true,
			StoreDir:   store,
			Cluster:    server.ClusterOpts{Name: "zohook-e2e", Host: host, Port: clusterPort},
			Routes:     server.RoutesFromStr(routes),
		}, nil
	}
	opts, err := server.ProcessConfigFile(config)
	if err != nil {
		return nil, fmt.Errorf("natsnode: %w", err)
	}
	if !opts.JetStream {
		return nil, errors.New("natsnode: " + config + " does not enable JetStream")
	}
	if set["name"] {
		opts.ServerName = name
	}
	if set["host"] {
		opts.Host, opts.Cluster.Host = host, host
		if opts.HTTPPort != 0 {
			opts.HTTPHost = host
		}
	}
	if set["port"] {
		opts.Port = port
	}
	if set["cluster-port"] {
		opts.Cluster.Port = clusterPort
	}
	if set["http-port"] {
		opts.HTTPPort = httpPort
	}
	if set["routes"] {
		opts.Routes = server.RoutesFromStr(routes)
	}
	if set["store"] {
		opts.StoreDir = store
	}
	// Signals as nats-server handles them (SIGTERM: shut down cleanly).
	opts.NoSigs = false
	return opts, nil
}
