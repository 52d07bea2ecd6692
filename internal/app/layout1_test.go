package app

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/zohook/zohook/internal/events"
	"github.com/zohook/zohook/internal/events/eventstest"
	"github.com/zohook/zohook/internal/testutil"
	"github.com/zohook/zohook/internal/worker"
)

// makeLayout1 builds what zohook's first layout left in NATS: the events
// stream ZOHOOK_EVENTS on zoho.> with a durable consumer per partition, the
// journal with a key per step, and a dead letter.
func makeLayout1(t *testing.T, js jetstream.JetStream, events1 int, consumers bool) (deadID string) {
	t.Helper()
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: events.Layout1Stream, Subjects: []string{"zoho.>"},
		Retention: jetstream.LimitsPolicy, MaxAge: 30 * 24 * time.Hour}); err != nil {
		t.Fatal(err)
	}
	for p := range 2 {
		if !consumers {
			break
		}
		if _, err := js.CreateConsumer(ctx, events.Layout1Stream, jetstream.ConsumerConfig{Durable: fmt.Sprintf("workers-p%d", p),
			FilterSubject: fmt.Sprintf("zoho.*.*.*.*.*.%d", p), AckPolicy: jetstream.AckExplicitPolicy}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range events1 {
		env := events.Envelope{Version: 1, ID: fmt.Sprintf("old%d", i), Source: events.SourceCRMNotify, Connection: "default",
			Module: "Deals", Operation: "update", RecordID: fmt.Sprint(100 + i), ReceivedAt: time.Now().UTC()}
		b, _ := json.Marshal(env)
		if _, err := js.Publish(ctx, fmt.Sprintf("zoho.crm.notify.default.Deals.update.%d", i%2), b); err != nil {
			t.Fatal(err)
		}
	}
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: worker.DefaultJournalBucket, TTL: 90 * 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	deadID = "deadbeef01"
	put := func(step, state, action string, output map[string]any) {
		b, _ := json.Marshal(map[string]any{"state": state, "action": action, "output": output, "attempts": 1, "at": time.Now().UTC()})
		if _, err := kv.Put(ctx, "ev."+deadID+".b64_"+base64.RawURLEncoding.EncodeToString([]byte(step)), b); err != nil {
			t.Fatal(err)
		}
	}
	put("_load/record", "done", "crm.get_record", map[string]any{"record": map[string]any{"Stage": "Closed Won"}})
	put("Invoice won deals/create", "done", "books.create_record", map[string]any{"invoice": map[string]any{"invoice_id": "9"}})
	put("Invoice won deals/note", "started", "crm.update_record", nil)
	if _, err := js.CreateStream(ctx, worker.DLQSpec(worker.DLQConfig{})); err != nil {
		t.Fatal(err)
	}
	dl := worker.DeadLetter{Event: &events.Envelope{Version: 1, ID: deadID, Source: events.SourceCRMNotify, Connection: "default",
		Module: "Deals", Operation: "update", RecordID: "555", ReceivedAt: time.Now().UTC()},
		Rule: "Invoice won deals", Step: "note", Error: "in doubt", Permanent: true, DeadAt: time.Now().UTC()}
	b, _ := json.Marshal(dl)
	if _, err := js.Publish(ctx, "zohook.dlq."+deadID, b); err != nil {
		t.Fatal(err)
	}
	return deadID
}

// Upgrading from the first layout: nothing starts beside it (NATS would
// refuse the overlapping subjects, with an error nobody could act on);
// `worker setup -apply -retire-layout1` stops it taking events, waits for
// its workers, carries the journal of its dead letters over and creates
// this layout; the old events stay where they were.
func TestUpgradeFromLayout1(t *testing.T) {
	env := eventstest.Start(t)
	ctx := context.Background()
	var names []string
	for n := range env.JS.StreamNames(ctx).Name() {
		names = append(names, n)
	}
	for _, n := range names {
		if err := env.JS.DeleteStream(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	deadID := makeLayout1(t, env.JS, 3, true)

	if _, err := EnsureLayout(ctx, env.JS, custom.Stream(), custom.Consumer(), events.CreateMissing); !errors.Is(err, events.ErrLayout1) {
		t.Fatalf("a layout made beside layout 1: %v", err)
	}
	getenv := func(k string) string {
		if k == "ZOHOOK_NATS_URL" {
			return env.Embedded.ClientURL()
		}
		return ""
	}
	// The status command says what to do rather than "no layout".
	var sout, serr bytes.Buffer
	if code, _ := WorkerSubcommand(ctx, "status", nil, &sout, &serr, getenv); code == ExitOK || !strings.Contains(serr.String(), "-retire-layout1") {
		t.Fatalf("status on layout 1: exit %d\n%s%s", code, sout.String(), serr.String())
	}
	run := func(args ...string) (int, string, string) {
		var out, errb testutil.SyncBuffer
		code, _ := WorkerSubcommand(ctx, "setup", append([]string{"-partitions", "4"}, args...), &out, &errb, getenv)
		return code, out.String(), errb.String()
	}
	if code, _, _ := run("-retire-layout1"); code != ExitUsage {
		t.Fatalf("-retire-layout1 without -apply: exit %d", code)
	}

	// The old workers are not running: the command stops the old stream
	// taking events, waits, and gives up without creating anything.
	code, out, errs := run("-apply", "-retire-layout1", "-drain-timeout", "1s")
	if code != ExitFailure || !strings.Contains(errs, "3 events of ZOHOOK_EVENTS are not handled yet") {
		t.Fatalf("undrained: exit %d\n%s%s", code, out, errs)
	}
	old, err := env.JS.Stream(ctx, events.Layout1Stream)
	if err != nil {
		t.Fatal(err)
	}
	info, _ := old.Info(ctx)
	if !slices.Equal(info.Config.Subjects, []string{events.Layout1RetiredSubject}) || info.State.Msgs != 3 {
		t.Fatalf("old stream after retiring: subjects %v, %d messages", info.Config.Subjects, info.State.Msgs)
	}
	if _, err := env.JS.Stream(ctx, custom.Stream().Name); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Fatalf("the work stream was created before layout 1 was drained: %v", err)
	}
	// A layout-1 receiver can no longer store an event (its callback gets
	// an error answer, not a 2xx).
	pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	if _, err := env.JS.Publish(pctx, "zoho.crm.notify.default.Deals.update.0", []byte("{}")); err == nil {
		t.Fatal("the retired stream still stores events")
	}
	cancel()

	// The old workers finish their events.
	for p := range 2 {
		c, err := env.JS.Consumer(ctx, events.Layout1Stream, fmt.Sprintf("workers-p%d", p))
		if err != nil {
			t.Fatal(err)
		}
		batch, err := c.FetchNoWait(10)
		if err != nil {
			t.Fatal(err)
		}
		for m := range batch.Messages() {
			if err := m.DoubleAck(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	code, out, errs = run("-apply", "-retire-layout1", "-drain-timeout", "5s")
	if code != ExitOK || !strings.Contains(out, "ZOHOOK_EVENTS is drained") || !strings.Contains(out, "steps of 1 dead letters carried over") {
		t.Fatalf("drained: exit %d\n%s%s", code, out, errs)
	}
	if _, err := env.JS.Stream(ctx, custom.Stream().Name); err != nil {
		t.Fatalf("no work stream after the upgrade: %v", err)
	}
	if info, _ := old.Info(ctx); info.State.Msgs != 3 {
		t.Fatalf("the old stream lost events: %d", info.State.Msgs)
	}
	// The dead letter's journal: done steps stay done, the in-doubt one
	// stays in doubt, the record snapshot is the one its steps used.
	j, err := worker.OpenJournal(ctx, env.JS, worker.JournalConfig{})
	if err != nil {
		t.Fatal(err)
	}
	e, err := j.Load(ctx, deadID)
	if err != nil {
		t.Fatal(err)
	}
	if s, _ := e.Step(ctx, "Invoice won deals/create"); s == nil || s.State != worker.StepDone || s.Output["invoice"] == nil {
		t.Fatalf("done step: %+v", s)
	}
	if s, _ := e.Step(ctx, "Invoice won deals/note"); s == nil || s.State != worker.StepStarted {
		t.Fatalf("in-doubt step: %+v", s)
	}
	if rec, ok := e.Record(); !ok || rec["Stage"] != "Closed Won" {
		t.Fatalf("record snapshot: %v %v", rec, ok)
	}
	// Run again: nothing left to do, nothing changed; with -json, stdout
	// is the JSON result alone.
	code, out, errs = run("-apply", "-retire-layout1", "-json")
	var outs []events.Outcome
	if code != ExitOK || !strings.Contains(errs, "steps of 0 dead letters") || json.Unmarshal([]byte(out), &outs) != nil {
		t.Fatalf("second run: exit %d\n%s%s", code, out, errs)
	}
}

// emptyNATS deletes every stream eventstest made: NATS as layout 1 left it.
func emptyNATS(t *testing.T, js jetstream.JetStream) {
	t.Helper()
	ctx := context.Background()
	var names []string
	for n := range js.StreamNames(ctx).Name() {
		names = append(names, n)
	}
	for _, n := range names {
		if err := js.DeleteStream(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
}

// A layout-1 install whose workers never ran (no consumers): every stored
// event is unhandled. A layout-1 worker started during the drain takes the
// subjects back (that layout set its stream up at every start): the
// command retires it again and waits for what was stored meanwhile.
func TestUpgradeFromLayout1WaitsForEveryEvent(t *testing.T) {
	env := eventstest.Start(t)
	ctx := context.Background()
	emptyNATS(t, env.JS)
	makeLayout1(t, env.JS, 2, false)
	getenv := func(k string) string {
		if k == "ZOHOOK_NATS_URL" {
			return env.Embedded.ClientURL()
		}
		return ""
	}
	var out, errb testutil.SyncBuffer
	code, _ := WorkerSubcommand(ctx, "setup", []string{"-apply", "-retire-layout1", "-drain-timeout", "1s"}, &out, &errb, getenv)
	if code != ExitFailure || !strings.Contains(errb.String(), "2 events of ZOHOOK_EVENTS are not handled yet") {
		t.Fatalf("no layout-1 consumers: exit %d\n%s%s", code, out.String(), errb.String())
	}

	done := make(chan int, 1)
	var out2 testutil.SyncBuffer
	go func() {
		var e testutil.SyncBuffer
		code, _ := WorkerSubcommand(ctx, "setup", []string{"-apply", "-retire-layout1", "-drain-timeout", "20s"}, &out2, &e, getenv)
		done <- code
	}()
	for !strings.Contains(out2.String(), "waiting for the layout-1 workers") {
		select {
		case code := <-done:
			t.Fatalf("the command ended (exit %d) before waiting\n%s", code, out2.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	// A layout-1 worker starts: it sets its stream up (subjects zoho.>) and
	// creates its consumers; a layout-1 receiver stores one more event.
	old, err := env.JS.Stream(ctx, events.Layout1Stream)
	if err != nil {
		t.Fatal(err)
	}
	cfg := old.CachedInfo().Config
	cfg.Subjects = []string{"zoho.>"}
	if _, err := env.JS.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	c, err := env.JS.CreateConsumer(ctx, events.Layout1Stream, jetstream.ConsumerConfig{Durable: "workers-p0", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatal(err)
	}
	pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	_, perr := env.JS.Publish(pctx, "zoho.crm.notify.default.Deals.update.0", []byte(`{"v":1,"id":"late"}`))
	cancel()
	// It handles every event it finds, until the command is done.
	handled := 0
	for {
		select {
		case code := <-done:
			if code != ExitOK || !strings.Contains(out2.String(), "retired again") {
				t.Fatalf("exit %d\n%s", code, out2.String())
			}
			want := 2
			if perr == nil {
				want = 3 // stored before the command retired the stream again
			}
			if handled != want {
				t.Fatalf("the command finished after %d of %d events were handled\n%s", handled, want, out2.String())
			}
			return
		default:
		}
		batch, err := c.FetchNoWait(10)
		if err != nil {
			t.Fatal(err)
		}
		for m := range batch.Messages() {
			handled++
			_ = m.DoubleAck(ctx)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
