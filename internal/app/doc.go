// Package app wires zohook's parts into the two programs, so that
// cmd/receiver and cmd/worker stay thin (flags in, Run out) and the wiring is
// testable: NATS (embedded or a cluster), the receiver, the worker, and the
// all-in-one -dev mode.
package app
