package events

import "errors"

// Sentinel errors; wrap-checked with errors.Is.
var (
	// ErrInvalidEnvelope: a stored message is not a valid envelope (poison).
	ErrInvalidEnvelope = errors.New("events: invalid envelope")
	// ErrUnavailable: JetStream did not acknowledge in time; the caller should
	// answer 503 so Zoho retries.
	ErrUnavailable = errors.New("events: jetstream unavailable")
)
