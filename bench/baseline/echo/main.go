// Command echo is the echo-only baseline of bench/compare.sh: read the CRM
// notification, unmarshal, validate (validator/v10, as zohook's receiver),
// answer 200. No NATS: the ceiling of the HTTP + JSON part alone.
//
//	go run ./bench/baseline/echo -addr 127.0.0.1:8091
package main

import (
	"flag"
	"log"

	"github.com/zohook/zohook/bench/baseline/notify"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8091", "listen address")
	flag.Parse()
	e := notify.Server(notify.Handler(notify.NewValidator(), nil))
	log.Fatal(e.Start(*addr))
}
