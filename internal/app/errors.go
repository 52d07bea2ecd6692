package app

// UsageError is a mistake in how a program was invoked (flags, arguments,
// flag combinations): its main exits with code 2.
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }
