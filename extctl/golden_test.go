package main

import (
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files")

// TestInspectJSONGolden pins the --json output of `extctl inspect` (SPEC
// §15): packing is reproducible, so the whole document — hash, size,
// normalised manifest, sorted files with digests — is stable.
func TestInspectJSONGolden(t *testing.T) {
	bundlePath := filepath.Join(t.TempDir(), "b.tar.zst")
	mustRun(t, "pack", "testdata/ext", "-o", bundlePath)
	got := mustRun(t, "inspect", bundlePath, "--json")
	golden := filepath.Join("testdata", "inspect.golden.json")
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if got != string(want) {
		t.Fatalf("inspect --json differs from %s:\n got: %s\nwant: %s", golden, got, want)
	}
}
