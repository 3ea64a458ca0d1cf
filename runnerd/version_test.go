package main

import (
	"encoding/json"
	"os/exec"
	"runtime"
	"strings"
	"testing"

	"github.com/extedge/extedge/internal/testenv"
)

// TestVersion: the built runnerd's `version` and `--version` print one
// line with its version, commit, Go and wasmtime-go versions, and --json
// the same as an object.
func TestVersion(t *testing.T) {
	bin := testenv.Binary(t, "./runnerd")
	for _, arg := range []string{"version", "--version"} {
		out, err := exec.Command(bin, arg).Output()
		line := string(out)
		if err != nil || !strings.HasPrefix(line, "runnerd ") || !strings.Contains(line, "commit ") ||
			!strings.Contains(line, runtime.Version()) || !strings.Contains(line, "wasmtime-go v39.") || strings.Count(line, "\n") != 1 {
			t.Fatalf("runnerd %s: %q, %v; want one line with version, commit, %s and wasmtime-go v39.x", arg, line, err, runtime.Version())
		}
	}
	out, err := exec.Command(bin, "version", "--json").Output()
	var v map[string]any
	_ = json.Unmarshal(out, &v)
	wasmtime, _ := v["wasmtime_go"].(string)
	if err != nil || v["go_version"] == nil || v["commit"] == nil || !strings.HasPrefix(wasmtime, "v39.") {
		t.Fatalf("runnerd version --json: %q, %v", out, err)
	}
	if err := exec.Command(bin, "version", "extra").Run(); err == nil {
		t.Fatal("runnerd version extra: exit 0, want a usage error")
	}
}
