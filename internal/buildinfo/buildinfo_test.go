package buildinfo

import (
	"runtime"
	"runtime/debug"
	"testing"
)

func TestResolve(t *testing.T) {
	embedded := &debug.BuildInfo{
		GoVersion: "go1.99.1",
		Main:      debug.Module{Path: "github.com/extedge/extedge", Version: "v1.4.0"},
		Settings: []debug.BuildSetting{
			{Key: "vcs", Value: "git"},
			{Key: "vcs.revision", Value: "0123abcd"},
			{Key: "vcs.modified", Value: "true"},
		},
	}
	cases := []struct {
		name            string
		bi              *debug.BuildInfo
		version, commit string
		want            Info
	}{
		{"embedded module version and vcs revision", embedded, "", "",
			Info{Version: "v1.4.0", Commit: "0123abcd", Modified: true, GoVersion: "go1.99.1"}},
		{"ldflags override both", embedded, "v2.0.0", "feedf00d",
			Info{Version: "v2.0.0", Commit: "feedf00d", GoVersion: "go1.99.1"}},
		{"ldflags version alone keeps the embedded commit", embedded, "v2.0.0", "",
			Info{Version: "v2.0.0", Commit: "0123abcd", Modified: true, GoVersion: "go1.99.1"}},
		{"no build information", nil, "", "",
			Info{Version: "(devel)", Commit: "unknown", GoVersion: runtime.Version()}},
		{"a devel build without vcs stamping", &debug.BuildInfo{GoVersion: "go1.99.1", Main: debug.Module{Version: "(devel)"}}, "", "",
			Info{Version: "(devel)", Commit: "unknown", GoVersion: "go1.99.1"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := resolve(tc.bi, tc.version, tc.commit); got != tc.want {
				t.Fatalf("resolve = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestLine(t *testing.T) {
	i := Info{Version: "v1.4.0", Commit: "0123abcd", Modified: true, GoVersion: "go1.99.1"}
	if got, want := i.Line("extctl"), "extctl v1.4.0 (commit 0123abcd, modified; go1.99.1)"; got != want {
		t.Fatalf("Line = %q, want %q", got, want)
	}
}

func TestDepVersion(t *testing.T) {
	bi := &debug.BuildInfo{Deps: []*debug.Module{
		{Path: "github.com/bytecodealliance/wasmtime-go/v39", Version: "v39.0.1"},
		{Path: "example.com/replaced", Version: "v1.0.0", Replace: &debug.Module{Path: "example.com/fork", Version: "v1.0.1"}},
	}}
	for path, want := range map[string]string{
		"github.com/bytecodealliance/wasmtime-go/v39": "v39.0.1",
		"example.com/replaced":                        "v1.0.1",
		"example.com/absent":                          "",
	} {
		if got := depVersion(bi, path); got != want {
			t.Errorf("depVersion(%s) = %q, want %q", path, got, want)
		}
	}
}
