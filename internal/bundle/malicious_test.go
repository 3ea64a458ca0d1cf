package bundle

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// maliciousCases maps every file of testdata/malicious (written by
// `go run ./internal/bundle/testdata/gen`) to the rule it must violate under
// DefaultLimits; "" means the archive is valid.
var maliciousCases = []struct {
	file, rule, why string
}{
	{"symlink", RuleEntryType, "symlink entry is rejected"},
	{"hardlink", RuleEntryType, "hard link entry is rejected"},
	{"char_device", RuleEntryType, "character device entry is rejected"},
	{"block_device", RuleEntryType, "block device entry is rejected"},
	{"fifo", RuleEntryType, "fifo entry is rejected"},
	{"gnu_sparse", RuleEntryType, "gnu sparse entry is rejected"},
	{"pax_sparse", RuleEntryType, "pax sparse file is rejected"},
	{"global_pax_header", RuleEntryType, "global pax header is rejected"},
	{"absolute_path", RuleNameInvalid, "absolute name is rejected"},
	{"dotdot_traversal", RuleNameInvalid, "../ traversal is rejected"},
	{"inner_dotdot", RuleNameInvalid, "a/../../b is rejected"},
	{"dot_segment", RuleNameInvalid, "./a is rejected"},
	{"empty_segment", RuleNameInvalid, "a//b is rejected"},
	{"backslash", RuleNameInvalid, `..\evil is rejected`},
	{"nul_in_pax_path", RuleCorrupt, "NUL in a pax path is a malformed header"},
	{"control_char", RuleNameInvalid, "control character in name is rejected"},
	{"escape_char", RuleNameInvalid, "terminal escape in name is rejected"},
	{"invalid_utf8", RuleNameInvalid, "invalid utf-8 name is rejected"},
	{"overlong_slash", RuleNameInvalid, "overlong utf-8 slash is rejected"},
	{"overlong_dot", RuleNameInvalid, "overlong utf-8 dots are rejected"},
	{"bidi_override", RuleNameInvalid, "bidi override in name is rejected"},
	{"percent_encoded", "", "percent-encoded dots are a literal name"},
	{"long_name_257", RuleNameInvalid, "257-byte name is rejected"},
	{"duplicate_file", RuleNameDuplicate, "duplicate file name is rejected"},
	{"file_and_dir", RuleNameDuplicate, "file and directory with the same name are rejected"},
	{"file_as_parent", RuleNameDuplicate, "file used as a parent directory is rejected"},
	{"dir_then_file", RuleNameDuplicate, "directory then file with the same name are rejected"},
	{"hidden_git", RuleNameHidden, ".git/config is rejected"},
	{"hidden_env", RuleNameHidden, "ui/.env is rejected"},
	{"bomb_zeros", RuleUncompressedTooLarge, "2 GiB of zeros stops at the uncompressed limit"},
	{"bomb_pax_chain", RuleUncompressedTooLarge, "endless pax headers stop at the stream budget"},
	{"file_too_large", RuleFileTooLarge, "file over MaxFile is rejected"},
	{"too_many_entries", RuleTooManyEntries, "more than MaxEntries entries are rejected"},
	{"no_manifest", RuleManifestMissing, "bundle without manifest.json is rejected"},
	{"manifest_in_subdir", RuleManifestMissing, "manifest.json below the root does not count"},
	{"manifest_is_dir", RuleManifestMissing, "manifest.json directory does not count"},
	{"corrupt_tar_checksum", RuleCorrupt, "bad tar header checksum is corrupt"},
	{"trailing_zeros", RuleCorrupt, "256 MiB of padding after the end-of-archive marker is corrupt"},
	{"trailing_data", RuleCorrupt, "data after the end-of-archive marker is corrupt"},
	{"truncated_zstd", RuleCorrupt, "truncated zstd stream is corrupt"},
	{"not_zstd", RuleCorrupt, "non-zstd input is corrupt"},
	{"corrupt_zstd_block", RuleCorrupt, "damaged zstd block is corrupt"},
}

func readMalicious(t testing.TB, file string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "malicious", file+".tar.zst"))
	if err != nil {
		t.Fatalf("reading corpus (regenerate with go run ./internal/bundle/testdata/gen): %v", err)
	}
	return b
}

func TestMaliciousCorpusIsComplete(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "malicious", "*.tar.zst"))
	if err != nil {
		t.Fatal(err)
	}
	known := map[string]bool{}
	for _, c := range maliciousCases {
		known[c.file] = true
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".tar.zst")
		if !known[name] {
			t.Errorf("corpus file %s has no expected rule in maliciousCases", name)
		}
	}
	if len(files) != len(maliciousCases) {
		t.Errorf("corpus has %d files, table has %d cases", len(files), len(maliciousCases))
	}
}

func TestWalkMaliciousCorpus(t *testing.T) {
	for _, c := range maliciousCases {
		t.Run(c.why, func(t *testing.T) {
			data := readMalicious(t, c.file)
			start := time.Now()
			w, _, err := walk(bytes.NewReader(data), DefaultLimits(), nil)
			if got := RuleOf(err); got != c.rule {
				t.Fatalf("%s: rule = %q, want %q (err: %v)", c.file, got, c.rule, err)
			}
			if w.out != nil && w.out.n > DefaultLimits().streamBudget()+1 {
				t.Errorf("decompressed %d bytes, more than the budget %d", w.out.n, DefaultLimits().streamBudget())
			}
			if c.rule != "" && !strings.Contains(err.Error(), c.rule) {
				t.Errorf("error %q does not name rule %s", err, c.rule)
			}
			t.Logf("%s: %v in %v", c.file, err, time.Since(start))
		})
	}
}

// TestExtractMaliciousCorpus extracts every corpus file into a fresh parent
// directory and checks that a rejected bundle leaves the parent empty and
// that an accepted one wrote only inside dest. The total limit is lowered to
// 32 MiB and the entry limit to 1000 (the corpus violates the same rules) so
// the bombs do not write 512 MiB or 10 000 files first.
func TestExtractMaliciousCorpus(t *testing.T) {
	lim := Limits{MaxUncompressed: 32 << 20, MaxEntries: 1000}
	for _, c := range maliciousCases {
		t.Run(c.why, func(t *testing.T) {
			data := readMalicious(t, c.file)
			parent := t.TempDir()
			dest := filepath.Join(parent, "dest")
			_, err := Extract(bytes.NewReader(data), dest, lim, nil)
			if got := RuleOf(err); got != c.rule {
				t.Fatalf("%s: rule = %q, want %q (err: %v)", c.file, got, c.rule, err)
			}
			paths := listTree(t, parent)
			for _, p := range paths {
				if p != "dest" && !strings.HasPrefix(p, "dest/") {
					t.Errorf("written outside dest: %s", p)
				}
			}
			if c.rule != "" && len(paths) != 0 {
				t.Errorf("failed extraction left %v", paths)
			}
		})
	}
}

func TestPercentEncodedNameStaysLiteral(t *testing.T) {
	parent := t.TempDir()
	dest := filepath.Join(parent, "dest")
	entries, err := Extract(bytes.NewReader(readMalicious(t, "percent_encoded")), dest, DefaultLimits(), nil)
	if err != nil {
		t.Fatal(err)
	}
	got := listTree(t, parent)
	want := []string{
		"dest", "dest/%2e%2e", "dest/%2e%2e/%2e%2e", "dest/%2e%2e/%2e%2e/extedge-evil",
		"dest/manifest.json", "dest/ui", "dest/ui/%2F..%2Fx",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("tree = %q, want %q", got, want)
	}
	if len(entries) != 3 {
		t.Errorf("entries = %v", entries)
	}
}

// TestCompressionBombStopsAtLimit checks that the decompressed bytes read
// never exceed the budget, with the default limits and with small ones (which
// must also be fast).
func TestCompressionBombStopsAtLimit(t *testing.T) {
	for _, c := range []struct {
		name string
		file string
		lim  Limits
	}{
		{"zeros bomb with 8 MiB limit", "bomb_zeros", Limits{MaxUncompressed: 8 << 20, MaxFile: 1 << 20, MaxEntries: 100}},
		{"zeros bomb with big MaxFile and 8 MiB total", "bomb_zeros", Limits{MaxUncompressed: 8 << 20, MaxFile: 1 << 30, MaxEntries: 100}},
		{"pax chain with default limits", "bomb_pax_chain", DefaultLimits()},
		{"pax chain with 8 MiB limit", "bomb_pax_chain", Limits{MaxUncompressed: 8 << 20, MaxEntries: 100}},
	} {
		t.Run(c.name, func(t *testing.T) {
			data := readMalicious(t, c.file)
			start := time.Now()
			w, _, err := walk(bytes.NewReader(data), c.lim, nil)
			elapsed := time.Since(start)
			rule := RuleOf(err)
			if rule != RuleUncompressedTooLarge && rule != RuleFileTooLarge {
				t.Fatalf("rule = %q, want a size rule (err: %v)", rule, err)
			}
			lim := c.lim.withDefaults()
			const slack = 1
			if w.out.n > lim.streamBudget()+slack {
				t.Errorf("decompressed %d bytes, budget %d", w.out.n, lim.streamBudget())
			}
			if w.in.n > int64(len(data)) {
				t.Errorf("compressed bytes read %d > input %d", w.in.n, len(data))
			}
			t.Logf("%s after %d decompressed bytes (budget %d, files limit %d), %d compressed bytes, %v",
				rule, w.out.n, lim.streamBudget(), lim.MaxUncompressed, w.in.n, elapsed)
			if lim.MaxUncompressed <= 8<<20 && elapsed > 5*time.Second {
				t.Errorf("took %v to stop at an 8 MiB limit", elapsed)
			}
		})
	}
}

// listTree returns the slash-separated paths under root, sorted.
func listTree(t testing.TB, root string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == root {
			return nil
		}
		rel, _ := filepath.Rel(root, p)
		out = append(out, filepath.ToSlash(rel))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}
