// Package fleet coordinates the worker processes of one zohook deployment
// through NATS JetStream KeyValue buckets: one shared Zoho access token,
// client-side rate limits shared by every process, and leases for singleton
// jobs.
//
// Map of the package:
//
//   - token.go: TokenSource (a zoho.TokenSource): in-memory cache in front of
//     a KV copy of the access token; one refresher at a time across the
//     fleet (a Lease used as refresh lock); a failed refresh is published so
//     that nobody retries before a backoff (Zoho throttles refreshes to 10
//     per 10 minutes); RefreshError / ErrRefreshFailed.
//   - rate.go: RateLimiter (a zoho.Limiter), a token bucket in one KV key
//     updated by compare-and-set; ParseRate for "100/1m"-style settings.
//   - lease.go: Lease (Acquire, Hold, Release), ErrLeaseLost.
//   - kv.go: bucket creation, key validation, DefaultHolderID.
//
// KV layout (every bucket History 1; created on first use if missing, an
// existing bucket is used as configured):
//
//	zohook_tokens      (file storage)
//	  <conn>.token     {"access_token","api_domain","expiry","minted_by","minted_at",
//	                    "failure":{"by","at","retry_at","code","message","http_status"}}
//	                   failure is present after a failed refresh; nobody refreshes before retry_at.
//	  <conn>.lock      the refresh lock, a lease value (below)
//	zohook_ratelimits  (memory storage: losing it on a restart only refills the buckets)
//	  <name>           {"tokens": float, "at": unix ns, "granted": count}
//	zohook_leases      (file storage)
//	  <name>           {"holder","acquired_at","renewed_at","ttl_ms"}
//
// <conn> is the connection name (default "default"). Times are RFC 3339.
//
// Expiry without synchronised clocks: leases (and the refresh lock) do not
// use server-side per-key TTLs. NATS message TTLs have whole-second
// resolution (1 s minimum) and cannot be renewed through KV Update; instead
// ownership is the key's revision, the holder renews it by compare-and-set
// and gives up ttl after sending its last successful write, and a contender
// takes over only after seeing the same revision unchanged for ttl on its
// own monotonic clock. The rate limiter does compare wall clocks of
// different processes (the "at" of the last take); skew well below 1/rate
// is assumed (NTP), and a future "at" counts as now.
//
// Security: the access token is stored in NATS KV, which is what makes it
// shareable. Anyone who can read the zohook_tokens bucket can call Zoho as
// zohook until the token expires (one hour): protect the NATS account
// (credentials, TLS, no shared account with untrusted clients). The refresh
// token and client secret never leave the process; tokens are never logged
// and the types holding them redact themselves in String and LogValue.
package fleet
