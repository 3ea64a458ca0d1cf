package bundle

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
)

type testEntry struct {
	name string
	body string
	dir  bool
}

// buildBundle writes entries with archive/tar and compresses them.
func buildBundle(t testing.TB, entries ...testEntry) []byte {
	t.Helper()
	var raw bytes.Buffer
	tw := tar.NewWriter(&raw)
	for _, e := range entries {
		hdr := &tar.Header{Name: e.name, Mode: 0o644, Typeflag: tar.TypeReg, Size: int64(len(e.body))}
		if e.dir {
			hdr.Typeflag, hdr.Size = tar.TypeDir, 0
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(tw, e.body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	enc, _ := zstd.NewWriter(nil)
	return enc.EncodeAll(raw.Bytes(), nil)
}

var manifestEntry = testEntry{name: "manifest.json", body: `{"name":"t"}`}

func TestWalkLimits(t *testing.T) {
	many := []testEntry{manifestEntry}
	for i := range 20 {
		many = append(many, testEntry{name: fmt.Sprintf("ui/f%02d", i), body: "x"})
	}
	big := buildBundle(t, manifestEntry, testEntry{name: "dist/a.wasm", body: strings.Repeat("a", 3000)},
		testEntry{name: "dist/b.wasm", body: strings.Repeat("b", 3000)})
	random := make([]byte, 64<<10)
	rand.NewChaCha8([32]byte{1}).Read(random)
	for _, c := range []struct {
		why  string
		data []byte
		lim  Limits
		rule string
	}{
		{"bundle within all limits is accepted", big, Limits{MaxFile: 3000, MaxUncompressed: 6000 + len64(manifestEntry.body), MaxEntries: 3}, ""},
		{"compressed stream over MaxCompressed is rejected", big, Limits{MaxCompressed: int64(len(big)) - 1}, RuleCompressedTooLarge},
		{"compressed stream of exactly MaxCompressed is accepted", big, Limits{MaxCompressed: int64(len(big))}, ""},
		{"incompressible stream over MaxCompressed is rejected",
			buildBundle(t, manifestEntry, testEntry{name: "dist/r.bin", body: string(random)}), Limits{MaxCompressed: 32 << 10}, RuleCompressedTooLarge},
		{"file over MaxFile is rejected", big, Limits{MaxFile: 2999}, RuleFileTooLarge},
		{"files over MaxUncompressed are rejected", big, Limits{MaxUncompressed: 5000}, RuleUncompressedTooLarge},
		{"entries over MaxEntries are rejected", buildBundle(t, many...), Limits{MaxEntries: 20}, RuleTooManyEntries},
		{"directories count as entries", buildBundle(t, manifestEntry, testEntry{name: "ui/", dir: true}, testEntry{name: "ui/a", body: "x"}),
			Limits{MaxEntries: 2}, RuleTooManyEntries},
		{"empty input is corrupt", nil, Limits{}, RuleCorrupt},
		{"zstd of garbage is corrupt", func() []byte {
			enc, _ := zstd.NewWriter(nil)
			return enc.EncodeAll(bytes.Repeat([]byte("not a tar header "), 100), nil)
		}(), Limits{}, RuleCorrupt},
	} {
		t.Run(c.why, func(t *testing.T) {
			_, err := Walk(bytes.NewReader(c.data), c.lim, nil)
			if got := RuleOf(err); got != c.rule {
				t.Fatalf("rule = %q, want %q (err: %v)", got, c.rule, err)
			}
		})
	}
}

func len64(s string) int64 { return int64(len(s)) }

func TestWalkDirectoriesAreValidatedNotPassed(t *testing.T) {
	data := buildBundle(t, manifestEntry, testEntry{name: "ui/", dir: true}, testEntry{name: "ui/a.js", body: "1"},
		testEntry{name: "ui/sub/", dir: true})
	var seen []string
	entries, err := Walk(bytes.NewReader(data), DefaultLimits(), func(e Entry, body io.Reader) error {
		seen = append(seen, e.Name)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(seen, ",") != "manifest.json,ui/a.js" || len(entries) != 2 {
		t.Errorf("fn saw %v, entries %v", seen, entries)
	}
	for _, c := range []struct {
		why     string
		entries []testEntry
	}{
		{"hidden directory is rejected", []testEntry{manifestEntry, {name: ".git/", dir: true}}},
		{"traversing directory is rejected", []testEntry{manifestEntry, {name: "../x/", dir: true}}},
		{"duplicate directory is rejected", []testEntry{manifestEntry, {name: "ui/", dir: true}, {name: "ui/", dir: true}}},
	} {
		t.Run(c.why, func(t *testing.T) {
			_, err := Walk(bytes.NewReader(buildBundle(t, c.entries...)), DefaultLimits(), nil)
			if RuleOf(err) == "" {
				t.Fatalf("accepted: %v", err)
			}
		})
	}
}

func TestWalkAcceptsBlockingFactorPadding(t *testing.T) {
	var raw bytes.Buffer
	tw := tar.NewWriter(&raw)
	tw.WriteHeader(&tar.Header{Name: "manifest.json", Mode: 0o644, Size: 2})
	tw.Write([]byte("{}"))
	tw.Close()
	raw.Write(make([]byte, 10240-raw.Len()%10240)) // GNU tar's default 20-block records
	enc, _ := zstd.NewWriter(nil)
	if _, err := Index(bytes.NewReader(enc.EncodeAll(raw.Bytes(), nil)), DefaultLimits()); err != nil {
		t.Fatalf("padded archive rejected: %v", err)
	}
}

// failingReader yields some bytes, then a transport error.
type failingReader struct {
	data []byte
	err  error
}

func (f *failingReader) Read(p []byte) (int, error) {
	if len(f.data) == 0 {
		return 0, f.err
	}
	n := copy(p, f.data)
	f.data = f.data[n:]
	return n, nil
}

func TestWalkReaderErrorIsNotARule(t *testing.T) {
	data := buildBundle(t, manifestEntry, testEntry{name: "ui/a", body: strings.Repeat("x", 1000)})
	netErr := errors.New("connection reset by peer")
	_, err := Walk(&failingReader{data: data[:len(data)/2], err: netErr}, DefaultLimits(), nil)
	if !errors.Is(err, netErr) || RuleOf(err) != "" {
		t.Fatalf("err = %v (rule %q), want the reader's error and no rule", err, RuleOf(err))
	}
}

func TestWalkCallbackError(t *testing.T) {
	data := buildBundle(t, manifestEntry, testEntry{name: "ui/a", body: "abc"})
	boom := errors.New("boom")
	_, err := Walk(bytes.NewReader(data), DefaultLimits(), func(e Entry, body io.Reader) error {
		if e.Name == "ui/a" {
			return boom
		}
		return nil
	})
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want the callback's error", err)
	}
}

func TestWalkBodyIsLimitedToEntry(t *testing.T) {
	data := buildBundle(t, manifestEntry, testEntry{name: "ui/a", body: "abc"}, testEntry{name: "ui/b", body: "defgh"})
	got := map[string]string{}
	entries, err := Walk(bytes.NewReader(data), DefaultLimits(), func(e Entry, body io.Reader) error {
		b, err := io.ReadAll(body)
		got[e.Name] = string(b)
		if e.SHA256 != "" {
			t.Errorf("callback entry already has a hash")
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if got["ui/a"] != "abc" || got["ui/b"] != "defgh" {
		t.Errorf("bodies %v", got)
	}
	if entries[1].SHA256 != "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" {
		t.Errorf("sha256 of ui/a = %s", entries[1].SHA256)
	}
}

func TestWalkStop(t *testing.T) {
	// The second entry is a symlink: StopWalk before it means it is never read.
	data := readMalicious(t, "symlink")
	entries, err := Walk(bytes.NewReader(data), DefaultLimits(), func(e Entry, body io.Reader) error {
		return StopWalk
	})
	if err != nil || len(entries) != 1 || entries[0].Name != "manifest.json" || entries[0].SHA256 == "" {
		t.Fatalf("entries %v, err %v", entries, err)
	}
}

func TestReadEntryEnforcesRulesOnTheWay(t *testing.T) {
	_, err := ReadEntry(bytes.NewReader(readMalicious(t, "symlink")), "ui/missing", DefaultLimits())
	if RuleOf(err) != RuleEntryType {
		t.Fatalf("err = %v, want entry_type", err)
	}
	got, err := ReadEntry(bytes.NewReader(readMalicious(t, "symlink")), "manifest.json", DefaultLimits())
	if err != nil || !strings.Contains(string(got), `"mallory"`) {
		t.Fatalf("ReadEntry before the bad entry = %q, %v", got, err)
	}
}

func TestExtractFailureMidwayLeavesNothing(t *testing.T) {
	// Two files are written before the third trips MaxFile.
	data := buildBundle(t, manifestEntry, testEntry{name: "ui/a.js", body: "aaaa"}, testEntry{name: "ui/sub/b.js", body: "bbbb"},
		testEntry{name: "ui/c.js", body: strings.Repeat("c", 100)})
	parent := t.TempDir()
	dest := filepath.Join(parent, "dest")
	var written []string
	_, err := Extract(bytes.NewReader(data), dest, Limits{MaxFile: 50}, func(name string) bool {
		written = append(written, name)
		return true
	})
	if RuleOf(err) != RuleFileTooLarge {
		t.Fatalf("err = %v, want file_too_large", err)
	}
	if len(written) != 3 {
		t.Fatalf("expected 3 files to be written before the failure, got %v", written)
	}
	if paths := listTree(t, parent); len(paths) != 0 {
		t.Errorf("failed extraction left %v", paths)
	}
}

func TestExtractUnderMissingParentLeavesNothing(t *testing.T) {
	data := buildBundle(t, manifestEntry, testEntry{name: "ui/a.js", body: "a"})
	parent := t.TempDir()
	dest := filepath.Join(parent, "missing-parent", "dest")
	if _, err := Extract(bytes.NewReader(data), dest, DefaultLimits(), nil); err == nil {
		t.Fatal("extracting under a missing parent succeeded")
	}
	if paths := listTree(t, parent); len(paths) != 0 {
		t.Errorf("failed extraction left %v", paths)
	}
}

func TestExtractRefusesExistingDest(t *testing.T) {
	data := buildBundle(t, manifestEntry)
	parent := t.TempDir()
	dest := filepath.Join(parent, "dest")
	if err := os.Mkdir(dest, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := Extract(bytes.NewReader(data), dest, DefaultLimits(), nil); !errors.Is(err, os.ErrExist) {
		t.Fatalf("err = %v, want ErrExist", err)
	}
	if err := os.Symlink("/tmp", filepath.Join(parent, "link")); err != nil {
		t.Fatal(err)
	}
	if _, err := Extract(bytes.NewReader(data), filepath.Join(parent, "link"), DefaultLimits(), nil); !errors.Is(err, os.ErrExist) {
		t.Fatalf("dangling or not, a symlink at dest must count as existing: %v", err)
	}
}

func TestExtractKeep(t *testing.T) {
	data := buildBundle(t, manifestEntry, testEntry{name: "ui/a.js", body: "a"}, testEntry{name: "dist/h.wasm", body: "w"})
	parent := t.TempDir()
	dest := filepath.Join(parent, "dest")
	entries, err := Extract(bytes.NewReader(data), dest, DefaultLimits(), func(name string) bool {
		return strings.HasPrefix(name, "ui/")
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(listTree(t, parent), ","); got != "dest,dest/ui,dest/ui/a.js" {
		t.Errorf("tree %s", got)
	}
	if len(entries) != 3 {
		t.Errorf("entries %v, want all three with hashes", entries)
	}
	for _, e := range entries {
		if len(e.SHA256) != 64 {
			t.Errorf("entry %+v has no hash", e)
		}
	}
}
