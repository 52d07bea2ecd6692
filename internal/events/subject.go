package events

import (
	"hash/fnv"
	"strconv"
	"strings"
)

// SubjectPrefix is the first token of every event subject. The stream
// captures SubjectPrefix + ".>".
const SubjectPrefix = "zoho"

// DefaultPartitions is the number of ordering partitions. Every event of one
// record lands in the same partition, so a consumer that processes a
// partition in order keeps per-record order. Changing it on a live stream
// only affects the ordering of events of the same record published around the
// change.
const DefaultPartitions = 16

// Subject returns the subject an envelope is stored under:
//
//	zoho.<source>.<connection>.<module>.<operation>.<partition>
//
// e.g. zoho.crm.notify.default.Deals.update.7 (source "crm.notify" is two
// tokens). Tokens are sanitized so no Zoho value can inject wildcards or extra
// tokens.
func Subject(e *Envelope, partitions int) string {
	// The source is ours ("crm.notify"): its dot deliberately makes two tokens.
	kind, sub, _ := strings.Cut(string(e.Source), ".")
	return strings.Join([]string{
		SubjectPrefix, Token(kind), Token(sub), Token(e.Connection), Token(e.Module), Token(e.Operation),
		strconv.Itoa(Partition(e, partitions)),
	}, ".")
}

// Partition returns the ordering partition of the envelope's record.
func Partition(e *Envelope, partitions int) int {
	if partitions <= 1 {
		return 0
	}
	h := fnv.New32a()
	h.Write([]byte(RecordKey(e)))
	return int(h.Sum32() % uint32(partitions))
}

// RecordKey identifies the record an event is about, across sources: events
// with the same key must be handled in order.
func RecordKey(e *Envelope) string {
	return e.Connection + "/" + e.Module + "/" + e.RecordID
}

// Token makes s safe as one subject token: characters outside
// [A-Za-z0-9_-] become '_', and an empty token becomes "_".
func Token(s string) string {
	if s == "" {
		return "_"
	}
	clean := true
	for i := 0; i < len(s); i++ {
		if !tokenByte(s[i]) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	b := []byte(s)
	for i := range b {
		if !tokenByte(b[i]) {
			b[i] = '_'
		}
	}
	return string(b)
}

func tokenByte(c byte) bool {
	return c == '_' || c == '-' || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
}
