package config

import (
	"flag"
	"strconv"
	"time"

	"github.com/zohook/zohook/internal/events"
)

// Action flags are one-off choices of a single command run (-all, -json,
// -since, -dry-run, -apply...): unlike configuration flags, they are never
// read from ZOHOOK_* variables, so a variable left in a shell cannot turn
// `dlq replay` into "replay everything". ApplyEnv skips them.
type actionValue interface{ isAction() }

type actionBool struct{ v *bool }

func (a actionBool) String() string {
	if a.v == nil {
		return "false"
	}
	return strconv.FormatBool(*a.v)
}
func (a actionBool) Set(s string) error {
	b, err := strconv.ParseBool(s)
	if err != nil {
		return err
	}
	*a.v = b
	return nil
}
func (a actionBool) IsBoolFlag() bool { return true }
func (actionBool) isAction()          {}

type actionString struct{ v *string }

func (a actionString) String() string {
	if a.v == nil {
		return ""
	}
	return *a.v
}
func (a actionString) Set(s string) error { *a.v = s; return nil }
func (actionString) isAction()            {}

type actionDuration struct{ v *time.Duration }

func (a actionDuration) String() string {
	if a.v == nil || *a.v == 0 {
		return "0"
	}
	return FormatDuration(*a.v)
}
func (a actionDuration) Set(s string) error {
	d, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*a.v = d
	return nil
}
func (actionDuration) isAction() {}

// ActionBool defines an action flag (see actionValue).
func ActionBool(fs *flag.FlagSet, name, usage string) *bool {
	v := new(bool)
	fs.Var(actionBool{v}, name, usage)
	return v
}

// ActionString defines an action flag (see actionValue).
func ActionString(fs *flag.FlagSet, name, usage string) *string {
	v := new(string)
	fs.Var(actionString{v}, name, usage)
	return v
}

// ActionDuration defines an action flag (see actionValue).
func ActionDuration(fs *flag.FlagSet, name, usage string) *time.Duration {
	v := new(time.Duration)
	fs.Var(actionDuration{v}, name, usage)
	return v
}

// IsAction reports whether f is an action flag.
func IsAction(f *flag.Flag) bool {
	_, ok := f.Value.(actionValue)
	return ok
}

// FormatDuration prints a duration the way people write it: 720h, 10m,
// 30s, 1h30m (not 10m0s).
func FormatDuration(d time.Duration) string { return events.FormatDuration(d) }
