package zoho_test

import (
	"net/http"
	"testing"

	"github.com/zohook/zohook/internal/zoho"
	"github.com/zohook/zohook/internal/zoho/zohotest"
)

// A DELETE retried after a 5xx and then refused proves nothing about the
// first attempt (a refused repeat is what a first attempt that landed
// looks like): the error must not read as "Zoho did nothing".
func TestRefusalAfterAnAmbiguousRetryMayHaveApplied(t *testing.T) {
	e := newEnv(t, nil)
	id := e.s.CRMInsert("Leads", map[string]any{"Last_Name": "Boyle", "Company": "Zylker"})
	e.s.Inject(zohotest.Fault{Method: http.MethodDelete, PathPrefix: "/crm/v8/Leads", Status: http.StatusServiceUnavailable, Times: 1})
	e.s.CRMDelete("Leads", id) // as if the first attempt had deleted it before its answer was lost
	_, _, err := e.c.CRM.DeleteRecords(ctxT(t), "Leads", []string{id}, nil)
	if err == nil {
		t.Fatal("deleting a deleted record succeeded")
	}
	if zoho.NotApplied(err) || !zoho.MaybeApplied(err) {
		t.Fatalf("NotApplied %v, MaybeApplied %v for %v; want false, true", zoho.NotApplied(err), zoho.MaybeApplied(err), err)
	}
}
