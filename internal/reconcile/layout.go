package reconcile

import (
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zohook/zohook/internal/events"
)

// SeenSpec is the seen bucket of the NATS layout (the same settings OpenSeen
// creates it with when it is missing).
func SeenSpec(replicas int) events.KVSpec {
	return events.KVSpec{KeyValueConfig: jetstream.KeyValueConfig{Bucket: DefaultSeenBucket, History: 1, Replicas: max(replicas, 1),
		Storage: jetstream.FileStorage, Description: "zohook: latest change seen per CRM record"}}
}

// StateSpec is the reconciliation cursors bucket of the NATS layout.
func StateSpec(replicas int) events.KVSpec {
	return events.KVSpec{KeyValueConfig: jetstream.KeyValueConfig{Bucket: DefaultStateBucket, History: 1, Replicas: max(replicas, 1),
		Storage: jetstream.FileStorage, Description: "zohook reconciliation cursors"}}
}
