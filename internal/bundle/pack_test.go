package bundle

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
)

// sampleFiles is a small bundle tree; the unicode and very long names force
// the PAX path record.
var sampleFiles = map[string]string{
	"manifest.json":     `{"schema":2,"name":"sample","version":"1.0.0","publisher":"acme"}`,
	"dist/handler.wasm": "\x00asm\x01\x00\x00\x00",
	"ui/index.html":     "<!doctype html><p>hi</p>",
	"ui/a-b.js":         "console.log(1)",
	"ui/a/b.js":         "console.log(2)",
	"ui/ünïcødé.txt":    "utf-8 name",
	"ui/" + strings.Repeat("x", 120) + "/" + strings.Repeat("y", 120): "long name",
	"ui/empty.txt": "",
}

// writeTree creates files in the given order with the given file mode and
// modification time.
func writeTree(t testing.TB, root string, files map[string]string, order []string, mode os.FileMode, mtime time.Time) {
	t.Helper()
	for _, name := range order {
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(files[name]), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
}

func sortedNames(files map[string]string, reverse bool) []string {
	var names []string
	for n := range files {
		names = append(names, n)
	}
	for i := range names {
		for j := i + 1; j < len(names); j++ {
			if (names[j] < names[i]) != reverse {
				names[i], names[j] = names[j], names[i]
			}
		}
	}
	return names
}

func packBytes(t testing.TB, dir string) ([]byte, string) {
	t.Helper()
	var buf bytes.Buffer
	hash, err := Pack(dir, &buf)
	if err != nil {
		t.Fatalf("Pack: %v", err)
	}
	return buf.Bytes(), hash
}

func TestPackIsReproducible(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	writeTree(t, a, sampleFiles, sortedNames(sampleFiles, false), 0o600, time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC))
	writeTree(t, b, sampleFiles, sortedNames(sampleFiles, true), 0o755, time.Now())
	if err := os.Chmod(filepath.Join(b, "ui"), 0o777); err != nil {
		t.Fatal(err)
	}
	ba, ha := packBytes(t, a)
	bb, hb := packBytes(t, b)
	if !bytes.Equal(ba, bb) || ha != hb {
		t.Fatalf("two packs of the same tree differ: %s vs %s", ha, hb)
	}
	if h, _, _ := HashReader(bytes.NewReader(ba)); h != ha {
		t.Errorf("Pack returned %s, bytes hash to %s", ha, h)
	}
	if !ValidHash(ha) {
		t.Errorf("invalid hash %q", ha)
	}
}

// TestPackGoldenHash pins the canonical bytes: if it fails, the encoder (or
// the klauspost/compress version) changed and every content hash with it.
func TestPackGoldenHash(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, sampleFiles, sortedNames(sampleFiles, false), 0o644, time.Now())
	_, h := packBytes(t, dir)
	const golden = "sha256:5dc268eba38715e0745f2e2f8ce81b1582a7c3cae681c57f34c3130310742b93"
	if h != golden {
		t.Errorf("canonical hash of the sample tree = %s, want %s", h, golden)
	}
}

func TestPackCanonicalHeaders(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, sampleFiles, sortedNames(sampleFiles, true), 0o755, time.Now())
	data, _ := packBytes(t, dir)
	dec, err := zstd.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	tr := tar.NewReader(dec)
	var names []string
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, hdr.Name)
		if hdr.Typeflag != tar.TypeReg || hdr.Mode != 0o644 || hdr.Uid != 0 || hdr.Gid != 0 ||
			hdr.Uname != "" || hdr.Gname != "" || hdr.ModTime.Unix() != 0 || len(hdr.Xattrs) != 0 {
			t.Errorf("non-canonical header %+v", hdr)
		}
		wantFormat := tar.FormatUSTAR
		if !fitsUSTAR(hdr.Name) {
			wantFormat = tar.FormatPAX
			if len(hdr.PAXRecords) != 1 || hdr.PAXRecords["path"] != hdr.Name {
				t.Errorf("%s: PAX records %v, want only path", hdr.Name, hdr.PAXRecords)
			}
		}
		if hdr.Format != wantFormat {
			t.Errorf("%s: format %v, want %v", hdr.Name, hdr.Format, wantFormat)
		}
		body, _ := io.ReadAll(tr)
		if string(body) != sampleFiles[hdr.Name] {
			t.Errorf("%s: body %q", hdr.Name, body)
		}
	}
	want := sortedNames(sampleFiles, false)
	if strings.Join(names, "\n") != strings.Join(want, "\n") {
		t.Errorf("entry order %q, want bytewise %q", names, want)
	}
}

func TestPackRejects(t *testing.T) {
	for _, c := range []struct {
		why   string
		setup func(t *testing.T, dir string)
		rule  string
	}{
		{"hidden file is an error", func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, ".env"), []byte("x"), 0o644)
		}, RuleNameHidden},
		{"hidden directory is an error", func(t *testing.T, dir string) {
			os.MkdirAll(filepath.Join(dir, ".git"), 0o755)
		}, RuleNameHidden},
		{"symlink is an error", func(t *testing.T, dir string) {
			if err := os.Symlink("/etc/passwd", filepath.Join(dir, "ui", "passwd")); err != nil {
				t.Fatal(err)
			}
		}, RuleEntryType},
		{"fifo is an error", func(t *testing.T, dir string) {
			if err := mkfifo(filepath.Join(dir, "ui", "pipe")); err != nil {
				t.Skipf("mkfifo unavailable: %v", err)
			}
		}, RuleEntryType},
		{"backslash name is an error", func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, `a\b`), []byte("x"), 0o644)
		}, RuleNameInvalid},
		{"missing manifest is an error", func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, "manifest.json"))
		}, RuleManifestMissing},
	} {
		t.Run(c.why, func(t *testing.T) {
			dir := t.TempDir()
			writeTree(t, dir, sampleFiles, sortedNames(sampleFiles, false), 0o644, time.Now())
			c.setup(t, dir)
			_, err := Pack(dir, io.Discard)
			if got := RuleOf(err); got != c.rule {
				t.Fatalf("rule = %q, want %q (err: %v)", got, c.rule, err)
			}
		})
	}
}

func TestPackRoundTrip(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, sampleFiles, sortedNames(sampleFiles, false), 0o644, time.Now())
	data, _ := packBytes(t, dir)

	entries, err := Index(bytes.NewReader(data), DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != len(sampleFiles) {
		t.Fatalf("Index: %d entries, want %d", len(entries), len(sampleFiles))
	}
	for _, e := range entries {
		h, _, _ := HashReader(strings.NewReader(sampleFiles[e.Name]))
		if HashPrefix+e.SHA256 != h || e.Size != int64(len(sampleFiles[e.Name])) {
			t.Errorf("entry %+v does not match the file", e)
		}
	}

	got, err := ReadEntry(bytes.NewReader(data), "ui/index.html", DefaultLimits())
	if err != nil || string(got) != sampleFiles["ui/index.html"] {
		t.Errorf("ReadEntry = %q, %v", got, err)
	}
	if _, err := ReadEntry(bytes.NewReader(data), "ui/missing.html", DefaultLimits()); !errorsIsNotExist(err) {
		t.Errorf("ReadEntry of a missing file: %v, want fs.ErrNotExist", err)
	}
	if _, err := ReadEntry(bytes.NewReader(data), "../manifest.json", DefaultLimits()); RuleOf(err) != RuleNameInvalid {
		t.Errorf("ReadEntry of an invalid name: %v", err)
	}

	parent := t.TempDir()
	dest := filepath.Join(parent, "out")
	xentries, err := Extract(bytes.NewReader(data), dest, DefaultLimits(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(xentries) != len(entries) {
		t.Errorf("Extract returned %d entries", len(xentries))
	}
	for name, body := range sampleFiles {
		p := filepath.Join(dest, filepath.FromSlash(name))
		b, err := os.ReadFile(p)
		if err != nil || string(b) != body {
			t.Errorf("%s: %q, %v", name, b, err)
		}
		fi, _ := os.Stat(p)
		if fi.Mode().Perm() != 0o644 {
			t.Errorf("%s: mode %v, want 0644", name, fi.Mode())
		}
		di, _ := os.Stat(filepath.Dir(p))
		if di.Mode().Perm() != 0o755 {
			t.Errorf("%s: dir mode %v, want 0755", filepath.Dir(name), di.Mode())
		}
	}
	if paths := listTree(t, parent); len(paths) == 0 || paths[0] != "out" {
		t.Errorf("parent holds %v", paths)
	}
}

func errorsIsNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }
