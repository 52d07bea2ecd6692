package console

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zohook/zohook/internal/events"
	"github.com/zohook/zohook/internal/worker"
)

// benchEvents is the history the benchmark lists.
const benchEvents = 100_000

// fillHistory publishes n events (four modules, 20,000 records, 30 days
// apart in received_at) and an outcome record for each: 1% dead-lettered,
// 5% skipped, the rest done.
func fillHistory(b *testing.B, f *fixture, n int) {
	b.Helper()
	ctx := context.Background()
	start := time.Now().Add(-30 * 24 * time.Hour)
	mods := []string{"Deals", "Leads", "Contacts", "Accounts"}
	for i := range n {
		e := &events.Envelope{ID: events.DeriveID("bench", strconv.Itoa(i)), Source: events.SourceCRMNotify, Connection: "default",
			Module: mods[i%4], Operation: events.OpUpdate, RecordID: strconv.Itoa(5725767000000000000 + i%20000), ChangedFields: []string{"Stage"},
			ChannelID: "1000000068001", ReceivedAt: start.Add(time.Duration(i) * 26 * time.Second),
			Raw: json.RawMessage(`{"server_time":1796101189171,"module":"` + mods[i%4] + `","ids":["` + strconv.Itoa(5725767000000000000+i%20000) +
				`"],"operation":"update","affected_fields":["Stage","Amount"],"channel_id":"1000000068001"}`)}
		data, err := events.Encode(e)
		if err != nil {
			b.Fatal(err)
		}
		m := &nats.Msg{Subject: events.Subject(e, f.env.Stream.Partitions), Data: data, Header: nats.Header{}}
		m.Header.Set(jetstream.MsgIDHeader, e.ID)
		if _, err := f.env.JS.PublishMsgAsync(m); err != nil {
			b.Fatal(err)
		}
		outcome, detail := worker.OutcomeAcked, "done"
		switch {
		case i%100 == 7:
			outcome, detail = worker.OutcomeDeadLettered, "failed"
		case i%20 == 3:
			detail = "condition_false"
		}
		r := worker.OutcomeRecord{EventID: e.ID, Seq: uint64(i + 1), Source: string(e.Source), Connection: e.Connection, Module: e.Module,
			Operation: e.Operation, RecordID: e.RecordID, ReceivedAt: e.ReceivedAt, Outcome: outcome, Detail: detail, Calls: 2,
			Delivery: 1, Duration: 40 * time.Millisecond, At: e.ReceivedAt.Add(time.Second), Worker: "bench"}
		rb, _ := json.Marshal(r)
		if _, err := f.env.JS.PublishAsync(worker.OutcomeSubject(&r), rb); err != nil {
			b.Fatal(err)
		}
		if i%1000 == 999 {
			<-f.env.JS.PublishAsyncComplete()
		}
	}
	<-f.env.JS.PublishAsyncComplete()
	hist, err := f.env.JS.Stream(ctx, f.env.Stream.HistoryName)
	if err != nil {
		b.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		info, err := hist.Info(ctx)
		if err == nil && info.State.Msgs >= uint64(n) {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("history holds %d of %d events", info.State.Msgs, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// BenchmarkListPages lists 20 pages (50 events each, newest first,
// following the cursor) of a 100,000-event history through the JSON API,
// beside what the same answer costs without an index (reading the stream).
//
//	go test -run '^$' -bench ListPages -benchtime 20x ./internal/console/
func BenchmarkListPages(b *testing.B) {
	f := newFixtureStopped(b)
	fillHistory(b, f, benchEvents)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	loadStart := time.Now()
	go f.c.Run(ctx)
	for !f.c.Index().Loaded() || f.c.Index().Stats().Events < benchEvents {
		time.Sleep(5 * time.Millisecond)
	}
	load := time.Since(loadStart)
	dead, cursor := 0, uint64(0)
	for {
		p := f.c.Index().List(Filter{Status: StatusDeadLettered}, cursor, 0, MaxPage)
		dead += len(p.Events)
		if cursor = p.Older; cursor == 0 {
			break
		}
	}
	if n := dead; n != benchEvents/100 {
		b.Fatalf("dead-lettered: %d; want %d (outcomes not joined?)", n, benchEvents/100)
	}
	b.Logf("index: %d events and their outcome records loaded in %s (memory: TestIndexMemoryPerEvent)", benchEvents, load.Round(time.Millisecond))

	pages := func(b *testing.B, query string) {
		var res ListResult
		next := ""
		for p := range 20 {
			url := "/console/api/events?limit=50" + query + next
			resp, body := f.do(b, "GET", url, f.bearer(), nil, nil)
			if resp.StatusCode != http.StatusOK {
				b.Fatalf("GET %s: %d %s", url, resp.StatusCode, body)
			}
			if err := json.Unmarshal([]byte(body), &res); err != nil {
				b.Fatal(err)
			}
			if len(res.Events) != 50 {
				b.Fatalf("page %d of %s: %d events", p, query, len(res.Events))
			}
			next = "&before=" + strconv.FormatUint(res.Older, 10)
		}
	}
	b.Run("index-20-pages", func(b *testing.B) {
		for b.Loop() {
			q := ListQuery{Limit: 50}
			for range 20 {
				res, err := f.c.ListEvents(context.Background(), q)
				if err != nil || len(res.Events) != 50 {
					b.Fatalf("%d events, %v", len(res.Events), err)
				}
				q.Before = res.Older
			}
		}
	})
	b.Run("index-20-pages-dead-lettered", func(b *testing.B) {
		for b.Loop() {
			q := ListQuery{Limit: 50, Filter: Filter{Status: StatusDeadLettered}}
			for range 20 {
				res, err := f.c.ListEvents(context.Background(), q)
				if err != nil || len(res.Events) != 50 {
					b.Fatalf("%d events, %v", len(res.Events), err)
				}
				q.Before = res.Older
			}
		}
	})
	b.Run("api-20-pages", func(b *testing.B) {
		for b.Loop() {
			pages(b, "")
		}
	})
	b.Run("api-20-pages-module-since", func(b *testing.B) {
		since := "&module=Leads&since=" + time.Now().Add(-20*24*time.Hour).UTC().Format(time.RFC3339)
		for b.Loop() {
			pages(b, since)
		}
	})
	b.Run("api-20-pages-dead-lettered", func(b *testing.B) {
		for b.Loop() {
			pages(b, "&status=dead_lettered") // 1%: the filter walks all 100,000 rows
		}
	})
	b.Run("api-record-lookup-index", func(b *testing.B) {
		for b.Loop() {
			var res ListResult
			resp, body := f.do(b, "GET", "/console/api/events?record=5725767000000000042", f.bearer(), nil, nil)
			if resp.StatusCode != 200 || json.Unmarshal([]byte(body), &res) != nil || len(res.Events) != 5 {
				b.Fatalf("record lookup: %d %.200s", resp.StatusCode, body)
			}
		}
	})
	b.Run("record-lookup-streams", func(b *testing.B) {
		for b.Loop() { // the path of an index that does not hold the whole history
			ix, err := f.c.recordIndex(context.Background(), Filter{RecordID: "5725767000000000042"})
			if err != nil || len(ix.List(Filter{}, 0, 0, 50).Events) != 5 {
				b.Fatalf("record lookup from the streams: %v", err)
			}
		}
	})
	// Baselines: without an index, 20 unfiltered pages are at least the
	// 1,000 newest history messages read and decoded (no outcome joined),
	// and a filtered page is a read of the whole stream.
	b.Run("baseline-stream-1000-newest", func(b *testing.B) {
		for b.Loop() {
			if n := scanHistory(b, f, benchEvents-999); n != 1000 {
				b.Fatalf("read %d", n)
			}
		}
	})
	b.Run("baseline-stream-full-scan", func(b *testing.B) {
		for b.Loop() {
			if n := scanHistory(b, f, 1); n != benchEvents {
				b.Fatalf("read %d", n)
			}
		}
	})
}

// scanHistory reads the history from sequence from to its end, decoding
// every envelope, and returns how many it read.
func scanHistory(b *testing.B, f *fixture, from uint64) int {
	n := 0
	err := readStream(context.Background(), f.env.JS, f.env.Stream.HistoryName, jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: from,
	}, benchEvents, func(m jetstream.Msg) {
		var e historyEnvelope
		if json.Unmarshal(m.Data(), &e) == nil {
			n++
		}
	})
	if err != nil {
		b.Fatal(err)
	}
	return n
}

// newFixtureStopped is newFixture without the index running yet (the
// benchmark times its load).
func newFixtureStopped(b *testing.B) *fixture {
	f := newFixture(b, 0)
	// newFixture started Run; the benchmark wants a fresh console whose
	// load it can time.
	c, err := New(f.c.cfg)
	if err != nil {
		b.Fatal(err)
	}
	f.c = c
	mux := http.NewServeMux()
	mux.Handle(Prefix, c)
	f.srv.Config.Handler = mux
	return f
}
