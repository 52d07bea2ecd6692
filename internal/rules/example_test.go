package rules_test

import (
	"context"
	"fmt"

	"github.com/zohook/zohook/internal/rules"
)

func Example() {
	set, err := rules.Parse("rules.yaml", []byte(`version: 1
rules:
  - name: deal-won
    on: {source: crm.notify, module: Deals, operation: update, changed: [Stage]}
    record: {fields: [Stage, Amount]}
    when: record.Stage == "Closed Won"
    steps:
      - id: note
        action: crm.update_record
        with: {module: Deals, id: "${event.record_id}", data: {Description: "won ${record.Amount}"}}
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	ev := &rules.Event{Source: "crm.notify", Module: "Deals", Operation: "update", RecordID: "42", ChangedFields: []string{"Stage"}}
	matched := set.Match(ev)
	load, fields := set.RecordNeeds(matched)
	fmt.Println(len(matched), load, fields)

	// The worker loads the record, then runs each matched rule through its
	// executor; DryRun only records the calls.
	record := map[string]any{"Stage": "Closed Won", "Amount": 1200.5}
	dry := &rules.DryRun{}
	for _, r := range matched {
		if _, err := r.Run(context.Background(), rules.Input{Event: ev, Record: record}, dry); err != nil {
			fmt.Println(err)
		}
	}
	for _, c := range dry.Calls() {
		fmt.Println(c.Key, c.Action, c.Inputs["id"], c.Inputs["data"])
	}
	// Output:
	// 1 true [Amount Stage]
	// deal-won/note crm.update_record 42 map[Description:won 1200.5]
}
