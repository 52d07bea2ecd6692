// Package e2e holds end-to-end tests that run zohook's real binaries as
// subprocesses (built once per test run) against an embedded NATS server and
// the fake Zoho over HTTP: crashes, restarts, several worker processes.
package e2e
