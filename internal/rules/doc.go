// Package rules is zohook's rules language: it loads rules.yaml, matches
// events to rules and runs each rule's steps through an Executor that the
// worker implements with the Zoho client. It knows nothing of NATS, HTTP or
// Zoho's wire formats.
//
// Map of the package:
//
//   - event.go:    Event (the input) and the expression environment types.
//   - load.go:     Load/Parse: YAML AST walk with goccy/go-yaml, every problem
//     collected with its line and column into *LoadError.
//   - actions.go:  the action table (names and inputs shared with
//     internal/zoho) and the literal checks done at load.
//   - expr.go:     expr-lang compilation (struct environment, node bound,
//     memory budget), helper functions, reference walking.
//   - template.go: `${...}` templates: exact templates keep their type,
//     interpolation yields strings; `$${` and `\${` escape.
//   - set.go:      Set, Rule, Step and load options.
//   - match.go:    the (source, module, operation) index, Match,
//     RecordNeeds, Explain, Rule.Condition.
//   - run.go:      Rule.Run, Executor, Call, Result, DryRun.
//   - watch.go:    Watcher: fsnotify hot reload with debounce, last good set
//     kept on error.
//   - defaults.go: WireDefaults, the loop-safe inputs added to every Zoho write.
//   - schema.go:   the JSON Schema of rules.yaml, generated from the loader's own tables.
//   - errors.go:   LoadError/Problem, StepError, ErrEvaluation.
//
// The language reference is docs/rules.md.
package rules
