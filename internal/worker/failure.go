package worker

import "fmt"

// Failure locates an error in a rule: which rule, step and action failed.
// The dead-letter record and the logs carry these fields.
type Failure struct {
	Rule, Step, Action string
	Err                error
}

func (f *Failure) Error() string {
	return fmt.Sprintf("rule %q step %q (%s): %v", f.Rule, f.Step, f.Action, f.Err)
}

func (f *Failure) Unwrap() error { return f.Err }
