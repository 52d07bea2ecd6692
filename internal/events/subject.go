package events

import (
	"hash/fnv"
	"strconv"
	"strings"
)

// SubjectPrefix is the first token of every event subject. The work stream
// captures SubjectPrefix + ".>".
const SubjectPrefix = "zoho"

// DefaultPartitions is the number of ordering partitions. Every event of one
// record lands in the same partition, so a consumer that processes a
// partition in order keeps per-record order. The count is part of the NATS
// layout (stored on the work stream) and fixed for its life.
const DefaultPartitions = 16

// Subject returns the subject an envelope is stored under:
//
//	zoho.<source>.<connection>.<module>.<operation>.<partition>.<record>
//
// e.g. zoho.crm.notify.default.deals.update.7.5725767000000524157 (source
// "crm.notify" is two tokens; the module is lower-cased, see ModuleKey).
// Tokens are sanitized so no Zoho value can inject wildcards or extra tokens.
//
// The record token makes "the events of one record" a subject filter
// (RecordFilter): the work stream answers "is an older event of this record
// still unsettled?" with one lookup, and the history stream lists a
// record's events without a scan.
func Subject(e *Envelope, partitions int) string {
	// The source is ours ("crm.notify"): its dot deliberately makes two tokens.
	kind, sub, _ := strings.Cut(string(e.Source), ".")
	return strings.Join([]string{
		SubjectPrefix, Token(kind), Token(sub), Token(e.Connection), Token(ModuleKey(e.Module)), Token(e.Operation),
		strconv.Itoa(Partition(e, partitions)), Token(e.RecordID),
	}, ".")
}

// SubjectTokens is the number of tokens of an event subject.
const SubjectTokens = 8

// PartitionFilter is the subject filter of partition p.
func PartitionFilter(p int) string {
	return SubjectPrefix + ".*.*.*.*.*." + strconv.Itoa(p) + ".*"
}

// RecordFilter is the subject filter matching every event of e's record,
// whatever its source or operation.
func RecordFilter(e *Envelope) string {
	return SubjectPrefix + ".*.*." + Token(e.Connection) + "." + Token(ModuleKey(e.Module)) + ".*.*." + Token(e.RecordID)
}

// SourceRecordFilter is RecordFilter narrowed to one source: the events of
// one record (connection, module, id) that source delivered.
func SourceRecordFilter(source Source, conn, module, id string) string {
	kind, sub, _ := strings.Cut(string(source), ".")
	return SubjectPrefix + "." + Token(kind) + "." + Token(sub) + "." + Token(conn) + "." + Token(ModuleKey(module)) + ".*.*." + Token(id)
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
// with the same key must be handled in order. The module part is ModuleKey,
// so "deals" from a hook and "Deals" from a notification are one record.
func RecordKey(e *Envelope) string {
	return e.Connection + "/" + ModuleKey(e.Module) + "/" + e.RecordID
}

// ModuleKey is the case-folded module name used wherever a module
// identifies something (partition, lane, subject): Zoho treats module API
// names case-insensitively, and so do the rules, while hooks and
// -reconcile-modules may spell them differently from notifications.
func ModuleKey(module string) string {
	return strings.ToLower(module)
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
