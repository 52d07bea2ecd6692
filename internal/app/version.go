package app

import (
	"cmp"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
)

// VersionInfo is what `version` prints: where the binary came from.
type VersionInfo struct {
	Program string `json:"program"` // receiver or worker
	Module  string `json:"module"`  // github.com/zohook/zohook
	// Version is the module version the go command stamped: a tag
	// (v1.2.3), a pseudo-version for an untagged commit, or "(devel)".
	Version string `json:"version"`
	// Revision and Time are the VCS commit and its time; Modified is true
	// when the working tree had uncommitted changes. Empty when the binary
	// was built without VCS information (go run, -buildvcs=false, tests).
	Revision string `json:"revision,omitempty"`
	Time     string `json:"time,omitempty"`
	Modified bool   `json:"modified,omitempty"`
	Go       string `json:"go"` // the Go version that built it
}

// Set with -ldflags "-X github.com/zohook/zohook/internal/app.buildRevision=…
// -X …buildTime=…" where the go command cannot stamp the VCS information
// itself (a Docker build without .git in its context); the go command's
// own stamp wins when there is one.
var buildRevision, buildTime string

// BuildVersion reads the build information the go command embedded.
func BuildVersion(program string) VersionInfo {
	v := VersionInfo{Program: program, Module: "github.com/zohook/zohook", Version: "(unknown)", Go: runtime.Version(),
		Revision: buildRevision, Time: buildTime}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return v
	}
	v.Go = cmp.Or(bi.GoVersion, v.Go)
	if bi.Main.Path != "" {
		v.Module = bi.Main.Path
	}
	v.Version = cmp.Or(bi.Main.Version, v.Version)
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			v.Revision = s.Value
		case "vcs.time":
			v.Time = s.Value
		case "vcs.modified":
			v.Modified = s.Value == "true"
		}
	}
	return v
}

// printVersion writes the version block of `receiver version` and
// `worker version` (also -version).
func printVersion(w io.Writer, program string) {
	v := BuildVersion(program)
	fmt.Fprintf(w, "%s %s\n", v.Program, v.Version)
	fmt.Fprintf(w, "module:   %s\n", v.Module)
	rev := cmp.Or(v.Revision, "unknown (built without VCS information)")
	if v.Modified {
		rev += " (with uncommitted changes)"
	}
	fmt.Fprintf(w, "revision: %s\n", rev)
	if v.Time != "" {
		fmt.Fprintf(w, "time:     %s\n", v.Time)
	}
	fmt.Fprintf(w, "go:       %s\n", v.Go)
}
