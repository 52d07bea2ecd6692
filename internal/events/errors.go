package events

import "errors"

// Sentinel errors; wrap-checked with errors.Is.
var (
	// ErrInvalidEnvelope: a stored message is not a valid envelope (poison).
	ErrInvalidEnvelope = errors.New("events: invalid envelope")
	// ErrUnsupportedVersion: a stored envelope is newer than this build
	// understands (a newer zohook wrote it): leave it for an upgraded worker.
	ErrUnsupportedVersion = errors.New("events: envelope version not supported")
	// ErrUnavailable: JetStream did not acknowledge in time; the caller should
	// answer 503 so Zoho retries.
	ErrUnavailable = errors.New("events: jetstream unavailable")
	// ErrTooLarge: the encoded event exceeds the NATS server's max_payload;
	// no retry can store it (the receiver answers 413).
	ErrTooLarge = errors.New("events: event larger than the NATS server's max_payload")
	// ErrFull: the work stream reached its size limit (events nobody has
	// handled yet fill it). Nothing is dropped; the caller answers 503 with
	// a long Retry-After so Zoho retries once workers caught up.
	ErrFull = errors.New("events: the work stream is full (unhandled events reached its max_bytes)")
)
