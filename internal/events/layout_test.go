package events_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zohook/zohook/internal/events"
	"github.com/zohook/zohook/internal/events/eventstest"
)

// The owner's settings survive every other process: a lookup or a
// create-missing pass with other flags changes nothing and reports each
// difference; growing needs ApplyGrow; shrinking needs ApplyShrink.
func TestEnsureNeverShrinksUnasked(t *testing.T) {
	env := eventstest.Start(t)
	ctx := context.Background()
	stored := env.Stream // as eventstest created it
	other := stored
	other.WorkMaxBytes = 2 << 20
	other.HistoryMaxAge = time.Hour
	other.HistoryMaxBytes = 64 << 20
	for _, mode := range []events.EnsureMode{events.LookupOnly, events.CreateMissing} {
		outs, err := events.EnsureEventStreams(ctx, env.JS, other, events.ConsumerConfig{AckWait: time.Minute}, mode)
		if err != nil {
			t.Fatal(err)
		}
		var diffs []events.Difference
		for _, o := range outs {
			if o.Created || o.Changed || o.Missing {
				t.Fatalf("mode %d: %+v", mode, o)
			}
			diffs = append(diffs, o.Diffs...)
		}
		want := map[string]bool{"stream ZOHOOK_WORK max_bytes": true, "stream ZOHOOK_HISTORY max_age": true, "stream ZOHOOK_HISTORY max_bytes": true}
		for p := range stored.Partitions {
			want[fmt.Sprintf("consumer ZOHOOK_WORK/workers-p%d ack_wait", p)] = true
		}
		for _, d := range diffs {
			k := d.Object + " " + d.Setting
			if !want[k] {
				t.Fatalf("unexpected difference %s", d)
			}
			delete(want, k)
			if d.Setting == "max_bytes" || d.Setting == "max_age" {
				if !d.Shrinks {
					t.Fatalf("%s should be a shrink", d)
				}
			}
		}
		if len(want) > 0 {
			t.Fatalf("differences not reported: %v", want)
		}
		got, err := events.ReadLayout(ctx, env.JS, events.StreamConfig{})
		if err != nil {
			t.Fatal(err)
		}
		if got != stored {
			t.Fatalf("layout changed:\n got %+v\nwant %+v", got, stored)
		}
	}
	// ApplyGrow applies the longer ack wait but refuses the shrinks.
	outs, err := events.EnsureEventStreams(ctx, env.JS, other, events.ConsumerConfig{AckWait: time.Minute}, events.ApplyGrow)
	if err != nil {
		t.Fatal(err)
	}
	refused := 0
	for _, o := range outs {
		refused += len(o.Refused)
	}
	if refused != 3 {
		t.Fatalf("refused %d differences, want 3 (the shrinks): %+v", refused, outs)
	}
	c, err := env.JS.Consumer(ctx, stored.Name, "workers-p0")
	if err != nil {
		t.Fatal(err)
	}
	if c.CachedInfo().Config.AckWait != time.Minute {
		t.Fatalf("ack wait %s after ApplyGrow", c.CachedInfo().Config.AckWait)
	}
	if got, _ := events.ReadLayout(ctx, env.JS, events.StreamConfig{}); got != stored {
		t.Fatalf("ApplyGrow shrank the layout: %+v", got)
	}
	// ApplyShrink does what the operator asked.
	if _, err := events.EnsureEventStreams(ctx, env.JS, other, events.ConsumerConfig{AckWait: time.Minute}, events.ApplyShrink); err != nil {
		t.Fatal(err)
	}
	got, err := events.ReadLayout(ctx, env.JS, events.StreamConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if got.WorkMaxBytes != other.WorkMaxBytes || got.HistoryMaxAge != other.HistoryMaxAge || got.HistoryMaxBytes != other.HistoryMaxBytes {
		t.Fatalf("ApplyShrink: %+v", got)
	}
	// The partition count never changes in place.
	other.Partitions = stored.Partitions * 2
	outs, err = events.EnsureEventStreams(ctx, env.JS, other, events.ConsumerConfig{}, events.ApplyShrink)
	if err != nil {
		t.Fatal(err)
	}
	if o := outs[0]; len(o.Refused) != 1 || o.Refused[0].Setting != "metadata "+events.MetaPartitions || !o.Refused[0].Immutable {
		t.Fatalf("partitions change: %+v", o)
	}
}

func TestReadLayoutWithoutStreams(t *testing.T) {
	emb, err := events.StartEmbedded(events.EmbeddedConfig{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer emb.Shutdown()
	nc, err := emb.Connect()
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	if _, err := events.ReadLayout(context.Background(), js, events.StreamConfig{}); !errors.Is(err, events.ErrNoLayout) {
		t.Fatalf("want ErrNoLayout, got %v", err)
	}
}

// A full work stream refuses new events at once (ErrFull), keeping every
// event it accepted; the history is not what fills it.
func TestWorkStreamFullRefusesNewEvents(t *testing.T) {
	env := eventstest.Start(t)
	ctx := context.Background()
	s := env.Stream
	s.WorkMaxBytes = 1 << 20
	if _, err := events.EnsureStream(ctx, env.JS, s.WorkSpec(), events.ApplyShrink); err != nil {
		t.Fatal(err)
	}
	pub := events.NewPublisher(env.JS, env.Stream, events.WithPublishTimeout(5*time.Second))
	big := bytes.Repeat([]byte("a"), 64<<10)
	accepted := 0
	var err error
	for i := range 100 {
		e := sample(fmt.Sprint("full-", i), fmt.Sprint(i))
		e.Raw = []byte(`"` + string(big) + `"`)
		start := time.Now()
		_, err = pub.Publish(ctx, []*events.Envelope{e})
		if err != nil {
			if time.Since(start) > time.Second {
				t.Errorf("a full stream took %s to refuse: it must not be retried", time.Since(start))
			}
			break
		}
		accepted++
	}
	if !errors.Is(err, events.ErrFull) {
		t.Fatalf("after %d events: want ErrFull, got %v", accepted, err)
	}
	if got := env.Messages(t); got != uint64(accepted) {
		t.Fatalf("work stream holds %d events, accepted %d", got, accepted)
	}
}

// The embedded server with Auth refuses anonymous clients and wrong keys;
// each role gets exactly its permissions.
func TestEmbeddedAuth(t *testing.T) {
	dir := t.TempDir()
	emb, err := events.StartEmbedded(events.EmbeddedConfig{DataDir: dir, Listen: "127.0.0.1:0", Auth: true})
	if err != nil {
		t.Fatal(err)
	}
	defer emb.Shutdown()
	if _, err := nats.Connect(emb.ClientURL(), nats.MaxReconnects(0)); err == nil {
		t.Fatal("anonymous connection accepted")
	}
	// A seed the server does not know.
	stranger := t.TempDir()
	if _, err := events.StartEmbedded(events.EmbeddedConfig{DataDir: stranger, Auth: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := connectAs(emb, events.EmbeddedSeedFile(stranger, events.RoleAdmin)); err == nil {
		t.Fatal("unknown key accepted")
	}
	ctx := context.Background()
	admin, err := emb.Connect()
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	ajs, _ := jetstream.New(admin)
	scfg := events.StreamConfig{Partitions: 2}.WithDefaults()
	if _, err := events.EnsureEventStreams(ctx, ajs, scfg, events.ConsumerConfig{}, events.CreateMissing); err != nil {
		t.Fatal(err)
	}
	tokens, err := ajs.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "zohook_tokens"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tokens.Put(ctx, "default.token", []byte("secret-access-token")); err != nil {
		t.Fatal(err)
	}

	worker, err := connectAs(emb, events.EmbeddedSeedFile(dir, events.RoleWorker))
	if err != nil {
		t.Fatalf("worker refused: %v", err)
	}
	defer worker.Close()
	wjs, _ := jetstream.New(worker)
	wkv, err := wjs.KeyValue(ctx, "zohook_tokens")
	if err != nil {
		t.Fatal(err)
	}
	if e, err := wkv.Get(ctx, "default.token"); err != nil || string(e.Value()) != "secret-access-token" {
		t.Fatalf("worker cannot read the token: %v", err)
	}
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := wjs.DeleteStream(cctx, scfg.Name); err == nil {
		t.Fatal("a worker deleted the work stream")
	}
	cctx2, cancel2 := context.WithTimeout(ctx, 2*time.Second)
	defer cancel2()
	if _, err := wjs.UpdateStream(cctx2, scfg.WorkSpec()); err == nil {
		t.Fatal("a worker updated the work stream")
	}

	recv, err := connectAs(emb, events.EmbeddedSeedFile(dir, events.RoleReceiver))
	if err != nil {
		t.Fatalf("receiver refused: %v", err)
	}
	defer recv.Close()
	rjs, _ := jetstream.New(recv)
	pub := events.NewPublisher(rjs, scfg)
	if _, err := pub.Publish(ctx, []*events.Envelope{sample("r-1", "1")}); err != nil {
		t.Fatalf("receiver cannot publish an event: %v", err)
	}
	cctx3, cancel3 := context.WithTimeout(ctx, 2*time.Second)
	defer cancel3()
	rkv, err := rjs.KeyValue(cctx3, "zohook_tokens")
	if err == nil {
		cctx4, cancel4 := context.WithTimeout(ctx, 2*time.Second)
		defer cancel4()
		if e, err := rkv.Get(cctx4, "default.token"); err == nil {
			t.Fatalf("receiver read the access token: %q", e.Value())
		}
		// Nor can it forge one.
		cctx5, cancel5 := context.WithTimeout(ctx, 2*time.Second)
		defer cancel5()
		if _, err := rkv.Put(cctx5, "default.token", []byte("forged")); err == nil {
			t.Fatal("receiver wrote the access token")
		}
	}
	if e, _ := tokens.Get(ctx, "default.token"); string(e.Value()) != "secret-access-token" {
		t.Fatalf("token changed to %q", e.Value())
	}
}

func connectAs(emb *events.Embedded, seedFile string) (*nats.Conn, error) {
	o, err := nats.NkeyOptionFromSeed(seedFile)
	if err != nil {
		return nil, err
	}
	return nats.Connect(emb.ClientURL(), o, nats.MaxReconnects(0))
}
