// Command natsnode runs one nats-server cluster node with JetStream, the
// same server code zohook embeds, as a process of its own: the end-to-end
// tests start three and SIGKILL one, which an in-process server cannot
// simulate (its Shutdown closes connections and hands leadership over
// cleanly).
package main

import (
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

func main() {
	name := flag.String("name", "n1", "server name")
	port := flag.Int("port", 4222, "client port")
	clusterPort := flag.Int("cluster-port", 6222, "route port")
	routes := flag.String("routes", "", "comma-separated nats-route:// URLs of every node")
	store := flag.String("store", "", "JetStream store directory")
	flag.Parse()
	opts := &server.Options{
		ServerName: *name,
		Host:       "127.0.0.1",
		Port:       *port,
		JetStream:  true,
		StoreDir:   *store,
		Cluster:    server.ClusterOpts{Name: "zohook-e2e", Host: "127.0.0.1", Port: *clusterPort},
		Routes:     server.RoutesFromStr(*routes),
		NoSigs:     false,
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
