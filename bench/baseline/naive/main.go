// Command naive is the naive one-publish baseline of bench/compare.sh: what
// bench/baseline/echo does plus one synchronous JetStream publish of the
// body (with a Nats-Msg-Id from the record and server_time, so the stream's
// de-duplication works as hard as for zohook's events) to a file-storage
// stream on the same nats-server as the receiver, answering 200 after the
// stream's ack.
//
//	go run ./bench/baseline/naive -addr 127.0.0.1:8092 -nats-url nats://127.0.0.1:4333
package main

import (
	"context"
	"flag"
	"log"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zohook/zohook/bench/baseline/notify"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8092", "listen address")
	natsURL := flag.String("nats-url", nats.DefaultURL, "NATS server")
	stream := flag.String("stream", "BASELINE_NAIVE", "stream to publish to, created when missing (file storage, subjects naive.>)")
	flag.Parse()
	nc, err := nats.Connect(*natsURL)
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	_, err = js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: *stream, Subjects: []string{"naive.>"},
		Storage: jetstream.FileStorage, Duplicates: 10 * time.Minute})
	cancel()
	if err != nil {
		log.Fatal(err)
	}
	h := notify.Handler(notify.NewValidator(), func(c echo.Context, n *notify.Notification, body []byte) error {
		id := string(n.IDs[0])
		msg := &nats.Msg{Subject: "naive." + n.Module + "." + id, Data: body, Header: nats.Header{}}
		msg.Header.Set(jetstream.MsgIDHeader, n.Module+"/"+id+"/"+strconv.FormatInt(n.ServerTime, 10))
		_, err := js.PublishMsg(c.Request().Context(), msg)
		return err
	})
	log.Fatal(notify.Server(h).Start(*addr))
}
