package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// helpGoldens maps each golden file under testdata/help to the arguments
// whose stdout it pins: every command's --help, every group's --help and
// the overview (extctl.golden). Regenerate with go test -run TestHelpGolden -update.
func helpGoldens() map[string][]string {
	m := map[string][]string{"extctl.golden": {"--help"}}
	for _, cmd := range commands {
		m[strings.ReplaceAll(cmd.name, " ", "_")+".golden"] = append(strings.Fields(cmd.name), "--help")
	}
	for _, g := range groups() {
		m[g+".golden"] = []string{g, "--help"}
	}
	return m
}

func TestHelpGolden(t *testing.T) {
	dir := filepath.Join("testdata", "help")
	if *update {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for file, args := range helpGoldens() {
		t.Run(file, func(t *testing.T) {
			code, got, errOut := run(t, args...)
			if code != 0 || errOut != "" {
				t.Fatalf("extctl %v: exit %d, stderr %q", args, code, errOut)
			}
			path := filepath.Join(dir, file)
			if *update {
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (a new command needs a golden file: run go test -run TestHelpGolden -update)", err)
			}
			if got != string(want) {
				t.Fatalf("extctl %s differs from %s (run with -update if the change is intended):\n--- got\n%s--- want\n%s", strings.Join(args, " "), path, got, want)
			}
		})
	}
}

// TestHelpGoldenSetMatchesCommandTable: every command of the table has a
// golden file and every golden file belongs to a command, so neither a new
// command without one nor a stale file for a removed command goes unseen.
func TestHelpGoldenSetMatchesCommandTable(t *testing.T) {
	want := helpGoldens()
	for _, cmd := range commands {
		if _, ok := want[strings.ReplaceAll(cmd.name, " ", "_")+".golden"]; !ok {
			t.Errorf("command %q has no golden file", cmd.name)
		}
	}
	files, err := filepath.Glob(filepath.Join("testdata", "help", "*.golden"))
	if err != nil {
		t.Fatal(err)
	}
	var have []string
	for _, f := range files {
		have = append(have, filepath.Base(f))
	}
	for file := range want {
		if !slices.Contains(have, file) {
			t.Errorf("testdata/help/%s is missing (run go test -run TestHelpGolden -update)", file)
		}
	}
	for _, file := range have {
		if _, ok := want[file]; !ok {
			t.Errorf("testdata/help/%s belongs to no command of the table; delete it", file)
		}
	}
}
