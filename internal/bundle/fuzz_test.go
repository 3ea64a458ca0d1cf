package bundle

import (
	"bytes"
	"io"
	"path/filepath"
	"strings"
	"testing"
)

// fuzzLimits keep every fuzz input cheap: a mutated bomb stops at 4 MiB.
var fuzzLimits = Limits{MaxCompressed: 1 << 20, MaxUncompressed: 4 << 20, MaxFile: 1 << 20, MaxEntries: 200}

// FuzzWalk checks that arbitrary bytes never panic, that every failure is a
// rule violation, and that an accepted bundle satisfies the name rules.
// Seeds: testdata/fuzz/FuzzWalk (the small files of the malicious corpus).
func FuzzWalk(f *testing.F) {
	f.Add(buildBundle(f, manifestEntry, testEntry{name: "ui/", dir: true}, testEntry{name: "ui/index.html", body: "<p>"}))
	f.Fuzz(func(t *testing.T, data []byte) {
		entries, err := Walk(bytes.NewReader(data), fuzzLimits, func(e Entry, body io.Reader) error {
			_, err := io.Copy(io.Discard, body)
			return err
		})
		if err != nil {
			if RuleOf(err) == "" {
				t.Fatalf("failure is not a rule violation: %v", err)
			}
			return
		}
		seen := map[string]bool{}
		manifest := false
		for _, e := range entries {
			if err := CheckName(e.Name); err != nil {
				t.Fatalf("accepted bad name: %v", err)
			}
			if seen[e.Name] {
				t.Fatalf("accepted duplicate %q", e.Name)
			}
			seen[e.Name] = true
			manifest = manifest || e.Name == ManifestName
		}
		if !manifest {
			t.Fatal("accepted a bundle without manifest.json")
		}
	})
}

// FuzzExtract checks that extraction of arbitrary bytes writes nothing
// outside dest, and nothing at all when it fails.
func FuzzExtract(f *testing.F) {
	f.Add(buildBundle(f, manifestEntry, testEntry{name: "ui/index.html", body: "<p>"}))
	f.Fuzz(func(t *testing.T, data []byte) {
		parent := t.TempDir()
		dest := filepath.Join(parent, "dest")
		_, err := Extract(bytes.NewReader(data), dest, fuzzLimits, nil)
		paths := listTree(t, parent)
		for _, p := range paths {
			if p != "dest" && !strings.HasPrefix(p, "dest/") {
				t.Fatalf("wrote outside dest: %q", p)
			}
		}
		if err != nil && len(paths) != 0 {
			t.Fatalf("failed extraction (%v) left %q", err, paths)
		}
		if err != nil && RuleOf(err) == "" {
			t.Fatalf("failure is not a rule violation: %v", err)
		}
	})
}
