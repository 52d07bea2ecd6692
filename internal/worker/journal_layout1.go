package worker

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
)

// layout1LoadKey is where zohook's first layout journaled the record it
// loaded for an event's rules (as the output of a pseudo step).
const layout1LoadKey = "_load/record"

// ImportLayout1 carries an event's steps from the journal format of
// zohook's first NATS layout (a key per step: "ev.<event>.<step>") into
// this version's entry ("ev.<event>"), so that a dead letter of that
// layout, replayed now, does not repeat the steps it had done, and sees the
// record snapshot its done steps used. It writes only when the event has no
// entry yet and the old keys hold something; it reports whether it wrote.
// The old keys are left to expire.
func (j *Journal) ImportLayout1(ctx context.Context, eventID, module string) (bool, error) {
	key := entryKey(eventID)
	if _, err := j.kv.Get(ctx, key); err == nil {
		return false, nil
	} else if !errors.Is(err, jetstream.ErrKeyNotFound) {
		return false, fmt.Errorf("journal get %s: %w", key, err)
	}
	lister, err := j.kv.ListKeysFiltered(ctx, key+".*")
	if err != nil {
		return false, fmt.Errorf("journal: layout-1 keys of %s: %w", eventID, err)
	}
	var keys []string
	for k := range lister.Keys() {
		keys = append(keys, k)
	}
	_ = lister.Stop() // the lister stopped itself after the last key
	e := &Entry{j: j, id: eventID, nonce: newNonce(), rec: EventRecord{Version: 1}}
	for _, k := range keys {
		step := strings.TrimPrefix(k, key+".")
		if b64, ok := strings.CutPrefix(step, "b64_"); ok {
			raw, err := base64.RawURLEncoding.DecodeString(b64)
			if err != nil {
				return false, fmt.Errorf("journal: layout-1 key %s: %w", k, err)
			}
			step = string(raw)
		}
		kve, err := j.kv.Get(ctx, k)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue // expired meanwhile
		}
		if err != nil {
			return false, fmt.Errorf("journal get %s: %w", k, err)
		}
		var s StepRecord // layout 1 stored state, action, output, attempts, at
		if err := json.Unmarshal(kve.Value(), &s); err != nil {
			return false, fmt.Errorf("journal: layout-1 entry %s: %w", k, err)
		}
		if step == layout1LoadKey {
			if s.State == StepDone {
				e.SetRecord(layout1Record(s.Output, module))
			}
			continue
		}
		if e.rec.Steps == nil {
			e.rec.Steps = map[string]*StepRecord{}
		}
		e.rec.Steps[step] = &s
	}
	if len(e.rec.Steps) == 0 && !e.rec.HasRecord {
		return false, nil
	}
	if err := e.write(ctx); err != nil {
		if errors.Is(err, ErrClaimed) {
			return false, nil // written meanwhile: that entry is newer
		}
		return false, err
	}
	return true, nil
}

// layout1Record is the record inside a layout-1 load output, as that
// layout's engine read it: CRM {"record": ...}, Books {"<entity>": ...}.
func layout1Record(out map[string]any, module string) map[string]any {
	if rec, ok := out["record"].(map[string]any); ok {
		return rec
	}
	if rec, ok := out[module].(map[string]any); ok {
		return rec
	}
	return out
}
