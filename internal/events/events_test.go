package events_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/zohook/zohook/internal/events"
	"github.com/zohook/zohook/internal/events/eventstest"
)

func sample(id, record string) *events.Envelope {
	return &events.Envelope{
		ID: id, Source: events.SourceCRMNotify, Connection: "default", Module: "Deals",
		Operation: events.OpUpdate, RecordID: record, ReceivedAt: time.Now().UTC(),
	}
}

func TestSubjectScheme(t *testing.T) {
	e := sample("x", "5725767000000524157")
	got := events.Subject(e, 16)
	if !strings.HasPrefix(got, "zoho.crm.notify.default.deals.update.") || !strings.HasSuffix(got, ".5725767000000524157") {
		t.Fatalf("subject %q", got)
	}
	// Hostile values cannot add tokens or wildcards.
	e.Module, e.Connection, e.RecordID = "De.als>*", "a b", "1.>"
	got = events.Subject(e, 16)
	if strings.Count(got, ".") != events.SubjectTokens-1 || strings.ContainsAny(got, "*> ") {
		t.Fatalf("unsanitized subject %q", got)
	}
	// One record, one partition, whatever the operation or the module's case.
	a, b := sample("1", "42"), sample("2", "42")
	b.Operation, b.Module = events.OpDelete, "deals"
	if events.Partition(a, 16) != events.Partition(b, 16) || events.RecordKey(a) != events.RecordKey(b) {
		t.Fatal("same record must map to one partition and one record key")
	}
	if events.RecordFilter(a) != events.RecordFilter(b) {
		t.Fatalf("record filters differ: %s %s", events.RecordFilter(a), events.RecordFilter(b))
	}
	// A source's filter matches that source's events of the record only.
	f := events.SourceRecordFilter(events.SourceCRMNotify, "default", "DEALS", "42")
	if !subjectMatches(f, events.Subject(a, 16)) || !subjectMatches(f, events.Subject(b, 16)) {
		t.Fatalf("%s does not match %s and %s", f, events.Subject(a, 16), events.Subject(b, 16))
	}
	for _, other := range []func(*events.Envelope){
		func(e *events.Envelope) { e.Source = events.SourceCRMWorkflow },
		func(e *events.Envelope) { e.RecordID = "421" },
		func(e *events.Envelope) { e.Connection = "eu" },
		func(e *events.Envelope) { e.Module = "Leads" },
	} {
		e := sample("3", "42")
		other(e)
		if subjectMatches(f, events.Subject(e, 16)) {
			t.Fatalf("%s matches %s", f, events.Subject(e, 16))
		}
	}
}

// subjectMatches is NATS's subject matching for filters without ">".
func subjectMatches(filter, subject string) bool {
	ft, st := strings.Split(filter, "."), strings.Split(subject, ".")
	if len(ft) != len(st) {
		return false
	}
	for i := range ft {
		if ft[i] != "*" && ft[i] != st[i] {
			return false
		}
	}
	return true
}

func TestDeriveIDDeterministic(t *testing.T) {
	if events.DeriveID("a", "bc") == events.DeriveID("ab", "c") {
		t.Fatal("parts must be length-prefixed")
	}
	if a, b := events.DeriveID("x", "y"), events.DeriveID("x", "y"); a != b {
		t.Fatal("not deterministic")
	}
}

func TestNormalizeOperation(t *testing.T) {
	for in, want := range map[string]string{"insert": "create", "edit": "update", "DELETE": "delete", "paid": "paid"} {
		if got := events.NormalizeOperation(in); got != want {
			t.Errorf("%s → %s, want %s", in, got, want)
		}
	}
}

func TestPublishDeduplicatesAndSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	env := eventstest.StartIn(t, dir)
	pub := events.NewPublisher(env.JS, env.Stream)
	ctx := context.Background()

	res, err := pub.Publish(ctx, []*events.Envelope{sample("id-1", "1"), sample("id-2", "2")})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Duplicate || res[1].Duplicate {
		t.Fatalf("first publish marked duplicate: %+v", res)
	}
	res, err = pub.Publish(ctx, []*events.Envelope{sample("id-1", "1")})
	if err != nil {
		t.Fatal(err)
	}
	if !res[0].Duplicate {
		t.Fatal("second publish of the same id must be a duplicate")
	}
	if n := env.Messages(t); n != 2 {
		t.Fatalf("stream has %d messages, want 2", n)
	}

	// Restart the server on the same directory: nothing is lost.
	env.Stop()
	env2 := eventstest.StartIn(t, dir)
	got := env2.Envelopes(t)
	ids := map[string]bool{}
	for _, g := range got {
		ids[g.ID] = true
	}
	if len(got) != 2 || !ids["id-1"] || !ids["id-2"] {
		t.Fatalf("after restart: %d envelopes %v", len(got), ids)
	}
	if got[0].Version != events.EnvelopeVersion {
		t.Fatalf("version %d", got[0].Version)
	}
}

func TestPublishUnavailable(t *testing.T) {
	env := eventstest.Start(t)
	pub := events.NewPublisher(env.JS, env.Stream, events.WithPublishTimeout(300*time.Millisecond))
	env.Embedded.Shutdown()
	env.Embedded = nil
	_, err := pub.Publish(context.Background(), []*events.Envelope{sample("id-1", "1")})
	if !errors.Is(err, events.ErrUnavailable) {
		t.Fatalf("want ErrUnavailable, got %v", err)
	}
}

func TestPublishRejectsInvalid(t *testing.T) {
	env := eventstest.Start(t)
	pub := events.NewPublisher(env.JS, env.Stream)
	_, err := pub.Publish(context.Background(), []*events.Envelope{{ID: "x"}})
	if !errors.Is(err, events.ErrInvalidEnvelope) {
		t.Fatalf("want ErrInvalidEnvelope, got %v", err)
	}
}

func TestPartitionConsumersAndHistory(t *testing.T) {
	env := eventstest.Start(t)
	ctx := context.Background()
	cons, err := events.PartitionConsumers(ctx, env.JS, env.Stream, events.ConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if len(cons) != env.Stream.Partitions {
		t.Fatalf("%d consumers", len(cons))
	}
	pub := events.NewPublisher(env.JS, env.Stream)
	e := sample("id-9", "777")
	if _, err := pub.Publish(ctx, []*events.Envelope{e}); err != nil {
		t.Fatal(err)
	}
	p := events.Partition(e, env.Stream.Partitions)
	for i, c := range cons {
		want := uint64(0)
		if i == p {
			want = 1
		}
		// A consumer learns of a stored message a moment after the
		// publisher's ack: wait for it rather than read it once.
		var pending uint64
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			info, err := c.Info(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if pending = info.NumPending; pending == want || time.Now().After(deadline) {
				break
			}
		}
		if pending != want {
			t.Fatalf("partition %d pending %d, want %d", i, pending, want)
		}
	}
	// The message reaches a pull from the workers' priority group.
	msgs, err := cons[p].Fetch(1, jetstream.FetchMaxWait(2*time.Second), jetstream.FetchPriorityGroup(events.PriorityGroup))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for m := range msgs.Messages() {
		n++
		if m.Headers().Get(jetstream.MsgIDHeader) != "id-9" {
			t.Fatalf("headers %v", m.Headers())
		}
		if err := m.Ack(); err != nil {
			t.Fatal(err)
		}
	}
	if n != 1 {
		t.Fatalf("fetched %d messages (err %v)", n, msgs.Error())
	}
	// Acknowledged: gone from the work stream, kept in the history.
	waitFor(t, func() bool { return historyMessages(t, env) == 1 })
	waitFor(t, func() bool { return env.Messages(t) == 0 })
}

func historyMessages(t *testing.T, env *eventstest.Env) uint64 {
	t.Helper()
	s, err := env.JS.Stream(context.Background(), env.Stream.HistoryName)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestEmbeddedSyncAlways(t *testing.T) {
	for _, want := range []bool{true, false} {
		emb, err := events.StartEmbedded(events.EmbeddedConfig{DataDir: t.TempDir(), SyncAlways: want})
		if err != nil {
			t.Fatal(err)
		}
		got := emb.SyncAlways()
		emb.Shutdown()
		if got != want {
			t.Fatalf("SyncAlways %v: server applied %v", want, got)
		}
	}
}
