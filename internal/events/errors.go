package events

import "errors"

// Sentinel errors; wrap-checked with errors.Is.
var (
	// ErrInvalidEnvelope: a stored message is not a valid envelope (poison).
	ErrInvalidEnvelope = errors.New("events: invalid envelope")
	// ErrUnavailable: JetStream did not acknowledge in time; the caller should
	// answer 503 so Zoho retries.
	ErrUnavailable = errors.New("events: jetstream unavailable")
	// ErrTooLarge: the encoded event exceeds the NATS server's max_payload;
	// no retry can store it (the receiver answers 413).
	ErrTooLarge = errors.New("events: event larger than the NATS server's max_payload")
)
