package main

import (
	"encoding/json"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/extedge/extedge/internal/testenv"
)

// TestVersion: `extctl version` and `extctl --version` print one line with
// the version, commit and Go version; --json the fields as an object.
func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"--version"}} {
		out := mustRun(t, args...)
		if !strings.HasPrefix(out, "extctl ") || !strings.Contains(out, "commit ") || !strings.Contains(out, runtime.Version()) || strings.Count(out, "\n") != 1 {
			t.Fatalf("extctl %v printed %q, want one line with version, commit and %s", args, out, runtime.Version())
		}
	}
	v := decodeJSON[map[string]any](t, mustRun(t, "version", "--json"))
	if v["go_version"] != runtime.Version() || v["version"] == nil || v["commit"] == nil || v["modified"] == nil {
		t.Fatalf("version --json = %v", v)
	}
}

// TestVersionFromLdflags: a release build sets the version and commit with
// -ldflags -X, and the binary reports them.
func TestVersionFromLdflags(t *testing.T) {
	if testing.Short() {
		t.Skip("builds extctl")
	}
	root, err := testenv.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "extctl")
	const pkg = "github.com/extedge/extedge/internal/buildinfo"
	build := exec.Command("go", "build", "-o", bin, "-ldflags", "-X "+pkg+".Version=v9.8.7 -X "+pkg+".Commit=c0ffee", "./extctl")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "--version").Output()
	if want := "extctl v9.8.7 (commit c0ffee; " + runtime.Version() + ")\n"; err != nil || string(out) != want {
		t.Fatalf("--version = %q (%v), want %q", out, err, want)
	}
	var v map[string]any
	out, _ = exec.Command(bin, "version", "--json").Output()
	if json.Unmarshal(out, &v) != nil || v["version"] != "v9.8.7" || v["commit"] != "c0ffee" {
		t.Fatalf("version --json = %s", out)
	}
}
