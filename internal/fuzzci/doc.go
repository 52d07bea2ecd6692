// Package fuzzci runs every fuzz target of the repository (each `func
// FuzzX(f *testing.F)` in a _test.go file) for a few thousand inputs with Go's
// coverage-guided fuzzing engine, as part of the ordinary `go test ./...`.
//
// Why a package of its own: `go test -fuzz` takes one target of one package
// per invocation, and the README promises a single test command, which CI
// runs. Living apart from the slow end-to-end package, the short fuzz runs
// overlap with it instead of adding to it. Longer runs are for people:
//
//	go test -run '^$' -fuzz '^FuzzCRMNotify$' -fuzztime 5m ./internal/receiver
//
// ZOHOOK_FUZZTIME sets the budget per target, a count like 2000x (the
// default) or a duration like 30s; `go test -short` skips the runs. The
// default is a count because a duration can make Go 1.26's coordinator fail
// at its own deadline (golang/go#75804).
package fuzzci
