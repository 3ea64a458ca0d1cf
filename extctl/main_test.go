package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// run executes extctl in-process and returns exit code, stdout, stderr.
func run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	c := &cli{stdout: &out, stderr: &errb, stdin: strings.NewReader("")}
	code := c.main(args)
	return code, out.String(), errb.String()
}

func mustRun(t *testing.T, args ...string) string {
	t.Helper()
	code, out, errOut := run(t, args...)
	if code != 0 {
		t.Fatalf("extctl %v: exit %d: %s", args, code, errOut)
	}
	return out
}

// copyTree copies src to dst, creating files in the given order and
// stamping them with mtime, so packing can be checked for independence
// from both.
func copyTree(t *testing.T, src, dst string, reverse bool, mtime time.Time) {
	t.Helper()
	var files []string
	filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			files = append(files, p)
		}
		return err
	})
	if reverse {
		for i, j := 0, len(files)-1; i < j; i, j = i+1, j-1 {
			files[i], files[j] = files[j], files[i]
		}
	}
	for _, p := range files {
		rel, _ := filepath.Rel(src, p)
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		target := filepath.Join(dst, rel)
		os.MkdirAll(filepath.Dir(target), 0o755)
		mode := os.FileMode(0o644)
		if reverse {
			mode = 0o600
		}
		if err := os.WriteFile(target, b, mode); err != nil {
			t.Fatal(err)
		}
		os.Chtimes(target, mtime, mtime)
	}
}

func TestPackIsReproducible(t *testing.T) {
	tmp := t.TempDir()
	a, b := filepath.Join(tmp, "a"), filepath.Join(tmp, "b")
	copyTree(t, "testdata/ext", a, false, time.Unix(1000, 0))
	copyTree(t, "testdata/ext", b, true, time.Unix(2_000_000_000, 0))
	ha := strings.TrimSpace(mustRun(t, "pack", a, "-o", filepath.Join(tmp, "a.tar.zst")))
	hb := strings.TrimSpace(mustRun(t, "pack", "-o", filepath.Join(tmp, "b.tar.zst"), b))
	ba, _ := os.ReadFile(filepath.Join(tmp, "a.tar.zst"))
	bb, _ := os.ReadFile(filepath.Join(tmp, "b.tar.zst"))
	if ha != hb || !bytes.Equal(ba, bb) {
		t.Fatalf("packing copies gave different bundles: %s vs %s", ha, hb)
	}
	if !strings.HasPrefix(ha, "sha256:") || len(ha) != 71 {
		t.Fatalf("pack printed %q, want a content hash", ha)
	}
}

func TestPackRejectsInvalidManifest(t *testing.T) {
	dir := t.TempDir()
	copyTree(t, "testdata/ext", dir, false, time.Now())
	os.WriteFile(filepath.Join(dir, "manifest.json"), []byte(`{"name":"Bad Name","publisher":"x","version":"1","runtime":"wasm@1","bogus":1}`), 0o644)
	out := filepath.Join(t.TempDir(), "x.tar.zst")
	code, _, errOut := run(t, "pack", dir, "-o", out)
	if code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	if strings.Count(strings.TrimSpace(errOut), "\n") != 0 || !strings.HasPrefix(errOut, "extctl: invalid manifest") {
		t.Fatalf("want one line starting with 'extctl: invalid manifest', got %q", errOut)
	}
	for _, want := range []string{"$.name", "$.version", "bogus"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("error does not mention %s: %s", want, errOut)
		}
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Fatal("a failed pack left an output file behind")
	}
}

func TestKeygenSignVerifyInspect(t *testing.T) {
	tmp := t.TempDir()
	keys := filepath.Join(tmp, "keys")
	keyID := strings.TrimSpace(mustRun(t, "keygen", "--out", keys, "--publisher", "Example Co"))
	if !strings.HasPrefix(keyID, "sha256:") {
		t.Fatalf("keygen printed %q, want a key id", keyID)
	}
	if fi, err := os.Stat(filepath.Join(keys, "publisher.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("publisher.key must be mode 0600: %v %v", fi.Mode(), err)
	}
	pub, _ := os.ReadFile(filepath.Join(keys, "publisher.pub"))
	if !bytes.Contains(pub, []byte("Publisher: Example Co")) || !bytes.Contains(pub, []byte("PUBLIC KEY")) {
		t.Fatalf("publisher.pub lacks the PUBLIC KEY block or Publisher header:\n%s", pub)
	}
	if code, _, _ := run(t, "keygen", "--out", keys); code == 0 {
		t.Fatal("keygen overwrote an existing private key without --force")
	}

	bundlePath := filepath.Join(tmp, "b.tar.zst")
	hash := strings.TrimSpace(mustRun(t, "pack", "testdata/ext", "-o", bundlePath))
	sigPath := filepath.Join(tmp, "SIGNATURE")
	mustRun(t, "sign", bundlePath, "--key", filepath.Join(keys, "publisher.key"), "-o", sigPath)

	var v map[string]any
	out := mustRun(t, "verify", bundlePath, "--signature", sigPath, "--trust-bundle", filepath.Join(keys, "publisher.pub"), "--json")
	if err := json.Unmarshal([]byte(out), &v); err != nil || v["ok"] != true || v["content_hash"] != hash || v["key_id"] != keyID {
		t.Fatalf("verify --json = %s (%v)", out, err)
	}

	// A key bound to another publisher must not verify this bundle.
	other := filepath.Join(tmp, "other")
	mustRun(t, "keygen", "--out", other, "--publisher", "Someone Else")
	mustRun(t, "sign", bundlePath, "--key", filepath.Join(other, "publisher.key"), "-o", sigPath)
	code, _, errOut := run(t, "verify", bundlePath, "--signature", sigPath, "--trust-bundle", filepath.Join(other, "publisher.pub"))
	if code != 1 || !strings.Contains(errOut, "publisher_mismatch") {
		t.Fatalf("publisher mismatch: exit %d, %q", code, errOut)
	}
	// An untrusted key.
	code, _, errOut = run(t, "verify", bundlePath, "--signature", sigPath, "--trust-bundle", filepath.Join(keys, "publisher.pub"))
	if code != 1 || !strings.Contains(errOut, "untrusted_key") {
		t.Fatalf("untrusted key: exit %d, %q", code, errOut)
	}

	out = mustRun(t, "inspect", bundlePath, "--json")
	var insp struct {
		ContentHash string          `json:"content_hash"`
		Size        int64           `json:"size"`
		Manifest    json.RawMessage `json:"manifest"`
		Files       []struct {
			Path   string `json:"path"`
			Size   int64  `json:"size"`
			SHA256 string `json:"sha256"`
		} `json:"files"`
	}
	if err := json.Unmarshal([]byte(out), &insp); err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(bundlePath)
	if insp.ContentHash != hash || insp.Size != fi.Size() || len(insp.Files) != 3 {
		t.Fatalf("inspect = %+v", insp)
	}
	if insp.Files[0].Path != "dist/main.wasm" || len(insp.Files[0].SHA256) != 64 {
		t.Fatalf("files must be sorted with sha256: %+v", insp.Files)
	}
	if !bytes.Contains(insp.Manifest, []byte(`"com.example.cli"`)) || !bytes.Contains(insp.Manifest, []byte(`"storage.kv"`)) {
		t.Fatalf("manifest missing or not normalised: %s", insp.Manifest)
	}
}

func TestUsageErrors(t *testing.T) {
	cases := []struct {
		name string
		args []string
		code int
	}{
		{"unknown command exits 2", []string{"frobnicate"}, 2},
		{"pack without -o exits 2", []string{"pack", "testdata/ext"}, 2},
		{"unknown flag exits 2", []string{"inspect", "--nope", "x"}, 2},
		{"missing bundle exits 1", []string{"inspect", "/nonexistent/b.tar.zst"}, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, _, errOut := run(t, c.args...)
			if code != c.code {
				t.Fatalf("exit %d, want %d (%s)", code, c.code, errOut)
			}
			if !strings.HasPrefix(errOut, "extctl: ") {
				t.Fatalf("stderr must start with 'extctl: ', got %q", errOut)
			}
		})
	}
}
