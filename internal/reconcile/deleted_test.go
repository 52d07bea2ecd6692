package reconcile

import (
	"context"
	"net/http"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/zohook/zohook/internal/events"
)

// deletes returns the delete events the job stored, by record id.
func (e *env) deletes(t *testing.T) map[string]*events.Envelope {
	t.Helper()
	out := map[string]*events.Envelope{}
	for _, ev := range e.stored(t) {
		if ev.Operation == events.OpDelete && ev.ChannelID == ChannelID {
			if _, dup := out[ev.RecordID]; dup {
				t.Fatalf("deletion of %s stored twice", ev.RecordID)
			}
			out[ev.RecordID] = ev
		}
	}
	return out
}

func TestDeletionsNoNotificationDeliveredArePublishedOnce(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Sub-second clock: deleted_time is truncated to the second, server_time is not.
	base := e.clk.Now().Add(700 * time.Millisecond)
	e.clk.Set(base)
	ids := map[string]string{}
	for _, n := range []string{"lost", "notified", "skewed", "older-mark", "recent"} {
		ids[n] = e.fake.CRMInsert("Leads", map[string]any{"Last_Name": n})
	}
	// Deleted in the UI, notification lost.
	e.fake.CRMDelete("Leads", ids["lost"])
	// Deleted through the API and notified: the receiver stored the notification.
	e.clk.Set(base.Add(time.Second))
	if _, _, err := e.crm.DeleteRecords(ctx, "Leads", []string{ids["notified"]}, nil); err != nil {
		t.Fatal(err)
	}
	e.notify(t, ctx, events.SourceCRMNotify, "default", "Leads", events.OpDelete, ids["notified"], e.clk.Now())
	// Notified, but the notification's clock is 1.5 s behind the CRM's: within the tolerance.
	e.clk.Set(base.Add(2 * time.Second))
	e.fake.CRMDelete("Leads", ids["skewed"])
	e.notify(t, ctx, events.SourceCRMNotify, "default", "Leads", events.OpDelete, ids["skewed"], e.clk.Now().Truncate(time.Second).Add(-1500*time.Millisecond))
	// An update was notified 10 s earlier; the deletion was not.
	e.clk.Set(base.Add(3 * time.Second))
	e.notify(t, ctx, events.SourceCRMNotify, "default", "Leads", events.OpUpdate, ids["older-mark"], e.clk.Now().Add(-10*time.Second))
	e.fake.CRMDelete("Leads", ids["older-mark"])
	// Deleted 30 s before the run: left to the notifications for now.
	now := base.Add(10 * time.Minute)
	e.clk.Set(now.Add(-30 * time.Second))
	e.fake.CRMDelete("Leads", ids["recent"])
	e.clk.Set(now)

	j := e.job(t, Config{Modules: []string{"Leads"}})
	st, err := j.RunOnce(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Deletions != 2 || st.AlreadySeen != 2 || st.Scanned != 4 || st.Published != 0 || st.Duplicates != 0 {
		t.Fatalf("first run %+v", st)
	}
	got := e.deletes(t)
	if len(got) != 2 || got[ids["lost"]] == nil || got[ids["older-mark"]] == nil {
		t.Fatalf("deletions published %v", slices.Collect(func(yield func(string) bool) {
			for id := range got {
				yield(id)
			}
		}))
	}
	ev := got[ids["lost"]]
	dt := base.Truncate(time.Second)
	if ev.Source != events.SourceCRMNotify || ev.ChannelID != ChannelID || ev.Module != "Leads" || ev.Connection != "" ||
		ev.Values["deleted_time"] != dt.Format(crmLayout) || ev.Values["type"] != "recycle" || ev.Values["display_name"] != "lost" ||
		ev.ServerTime != dt.UnixMilli() ||
		ev.ID != events.DeriveID(string(events.SourceReconcile), "", "Leads", ids["lost"], "deleted", dt.UTC().Format(time.RFC3339)) {
		t.Fatalf("event %+v", ev)
	}

	// A second run publishes nothing.
	before := e.js.Messages(t)
	if st, err := j.RunOnce(ctx); err != nil || st.Deletions != 0 || st.Duplicates != 0 || st.AlreadySeen != 4 {
		t.Fatalf("second run %+v %v", st, err)
	}
	if e.js.Messages(t) != before {
		t.Fatal("second run stored events")
	}

	// Once old enough, the recent deletion is published.
	e.clk.Set(now.Add(5 * time.Minute))
	if st, err := j.RunOnce(ctx); err != nil || st.Deletions != 1 {
		t.Fatalf("third run %+v %v", st, err)
	}
	if got := e.deletes(t); len(got) != 3 || got[ids["recent"]] == nil {
		t.Fatalf("recent deletion not published: %d", len(got))
	}

	// Emptying the recycle bin lists every deletion again as "permanent"
	// with the purge time: neither the notified nor the published ones are
	// published again.
	if n := e.fake.CRMEmptyRecycleBin("Leads"); n != 5 {
		t.Fatalf("purged %d", n)
	}
	e.clk.Set(now.Add(10 * time.Minute))
	before = e.js.Messages(t)
	if st, err := j.RunOnce(ctx); err != nil || st.Deletions != 0 || st.AlreadySeen != 5 {
		t.Fatalf("after purge %+v %v", st, err)
	}
	if e.js.Messages(t) != before {
		t.Fatal("purge republished deletions")
	}

}

func TestDeletionsSameIDsAcrossJobs(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	base := e.clk.Now()
	for i := range 20 {
		e.clk.Set(base.Add(time.Duration(i) * time.Second))
		e.fake.CRMDelete("Contacts", e.fake.CRMInsert("Contacts", map[string]any{"Last_Name": "c" + strconv.Itoa(i)}))
	}
	e.clk.Set(base.Add(time.Hour))
	st1, err := e.job(t, Config{Modules: []string{"Contacts"}}).RunOnce(ctx)
	if err != nil {
		t.Fatal(err)
	}
	seen2, err := OpenSeen(ctx, e.js.JS, SeenConfig{Bucket: "other_seen"})
	if err != nil {
		t.Fatal(err)
	}
	j2, err := NewJob(ctx, e.js.JS, e.crm, e.pub, seen2, Config{Modules: []string{"Contacts"}, StateBucket: "other_state", Clock: e.clk.Now, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	st2, err := j2.RunOnce(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st1.Deletions != 20 || st2.Deletions != 0 || st2.Duplicates != 20 || e.js.Messages(t) != 20 {
		t.Fatalf("first %+v second %+v, %d stored", st1, st2, e.js.Messages(t))
	}
}

func TestDeletionsAcrossPagesAndMetrics(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	base := e.clk.Now()
	const n = 450
	want := make([]string, n)
	for i := range n {
		e.clk.Set(base.Add(time.Duration(i) * time.Second))
		want[i] = e.fake.CRMInsert("Deals", map[string]any{"Deal_Name": "d" + strconv.Itoa(i), "Stage": "Qualification"})
		e.fake.CRMDelete("Deals", want[i])
	}
	e.clk.Set(base.Add(n*time.Second + 5*time.Minute))
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	e.fake.ResetCalls()
	j := e.job(t, Config{Modules: []string{"Deals"}, Metrics: m})
	st, err := j.RunOnce(ctx)
	if err != nil || st.Deletions != n || st.Scanned != n || st.AlreadySeen != 0 {
		t.Fatalf("%+v %v", st, err)
	}
	got := e.deletes(t)
	for _, id := range want {
		if got[id] == nil {
			t.Fatalf("deletion of %s not published", id)
		}
	}
	var pages []string
	for _, c := range e.fake.CallsTo(http.MethodGet, "/crm/v8/Deals/deleted") {
		pages = append(pages, c.Query.Get("page"))
		if c.Header.Get("If-Modified-Since") == "" {
			t.Fatalf("deleted list without If-Modified-Since: %v", c.Header)
		}
	}
	if !slices.Equal(pages, []string{"1", "2", "3"}) {
		t.Fatalf("pages %v", pages)
	}

	// The purge of every published deletion is recognised.
	e.fake.CRMEmptyRecycleBin("Deals")
	e.clk.Set(e.clk.Now().Add(5 * time.Minute))
	if st, err := j.RunOnce(ctx); err != nil || st.Deletions != 0 || st.AlreadySeen != n {
		t.Fatalf("after purge %+v %v", st, err)
	}

	if v := counter(t, reg, "zohook_reconcile_published_total", "kind", "deletion"); v != n {
		t.Fatalf("published{kind=deletion} = %v", v)
	}
	if v := counter(t, reg, "zohook_reconcile_already_seen_total", "module", "Deals"); v != n {
		t.Fatalf("already_seen{module=Deals} = %v", v)
	}
}

// counter sums the series of a counter whose label has the value.
func counter(t *testing.T, reg *prometheus.Registry, name, label, value string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					sum += m.GetCounter().GetValue()
				}
			}
		}
	}
	return sum
}
