package main

import (
	"encoding/json"
	"runtime"
	"strings"
	"testing"
)

// TestVersion: `registryd version` and `--version` print one line with the
// version, commit and Go version; --json the same fields as an object.
func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"--version"}} {
		out, errOut, code := runCLI(t, args...)
		if code != 0 || errOut != "" {
			t.Fatalf("registryd %v: exit %d, stderr %q", args, code, errOut)
		}
		if !strings.HasPrefix(out, "registryd ") || !strings.Contains(out, "commit ") || !strings.Contains(out, runtime.Version()) || strings.Count(out, "\n") != 1 {
			t.Fatalf("registryd %v printed %q, want one line with version, commit and %s", args, out, runtime.Version())
		}
	}
	out, _, code := runCLI(t, "version", "--json")
	var v map[string]any
	if err := json.Unmarshal([]byte(out), &v); code != 0 || err != nil || v["go_version"] != runtime.Version() || v["commit"] == nil || v["version"] == nil {
		t.Fatalf("registryd version --json: exit %d, %q (%v)", code, out, err)
	}
	if _, _, code := runCLI(t, "version", "extra"); code == 0 {
		t.Fatal("registryd version extra: exit 0, want a usage error")
	}
}
