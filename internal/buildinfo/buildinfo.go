// Package buildinfo says which build of an extedge binary is running: its
// version, VCS commit and Go version, for `extctl version` and
// `registryd version` (SPEC §12).
//
// The values come from the build information the Go tool embeds
// (runtime/debug.ReadBuildInfo: the main module's version, vcs.revision,
// vcs.modified). Release builds may override them with
//
//	go build -ldflags "-X github.com/extedge/extedge/internal/buildinfo.Version=v1.2.3 -X github.com/extedge/extedge/internal/buildinfo.Commit=abc123"
//
// which wins over the embedded values (a build from a source tarball has no
// VCS information to embed).
package buildinfo

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Version and Commit, when set with -ldflags -X, override the embedded
// build information.
var (
	Version string
	Commit  string
)

// Info describes one build.
type Info struct {
	Version   string `json:"version"`    // module version, or "(devel)"
	Commit    string `json:"commit"`     // VCS revision, or "unknown"
	Modified  bool   `json:"modified"`   // built from a tree with uncommitted changes
	GoVersion string `json:"go_version"` // e.g. "go1.26.8"
}

// Read returns the running binary's build information.
func Read() Info {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		bi = nil
	}
	return resolve(bi, Version, Commit)
}

// resolve combines embedded build information (nil when there is none)
// with the -ldflags overrides.
func resolve(bi *debug.BuildInfo, version, commit string) Info {
	info := Info{Version: "(devel)", Commit: "unknown", GoVersion: runtime.Version()}
	if bi != nil {
		if v := bi.Main.Version; v != "" {
			info.Version = v
		}
		if bi.GoVersion != "" {
			info.GoVersion = bi.GoVersion
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				if s.Value != "" {
					info.Commit = s.Value
				}
			case "vcs.modified":
				info.Modified = s.Value == "true"
			}
		}
	}
	if version != "" {
		info.Version = version
	}
	if commit != "" {
		info.Commit = commit
		info.Modified = false
	}
	return info
}

// DepVersion is the version of module path linked into the running
// binary ("unknown" without build information, "" when it is not a
// dependency), for the versions of libraries a binary is defined by
// (runnerd's wasmtime-go).
func DepVersion(path string) string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	return depVersion(bi, path)
}

func depVersion(bi *debug.BuildInfo, path string) string {
	for _, d := range bi.Deps {
		if d.Path == path {
			if d.Replace != nil && d.Replace.Version != "" {
				return d.Replace.Version
			}
			return d.Version
		}
	}
	return ""
}

// Line is the human form: "<program> <version> (commit <commit>[, modified]; <go version>)".
func (i Info) Line(program string) string {
	commit := i.Commit
	if i.Modified {
		commit += ", modified"
	}
	return fmt.Sprintf("%s %s (commit %s; %s)", program, i.Version, commit, i.GoVersion)
}
