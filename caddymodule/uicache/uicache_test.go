package uicache

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/extedge/extedge/internal/bundle"
	"github.com/extedge/extedge/internal/bundle/verified"
	"github.com/extedge/extedge/internal/manifest"
)

// trustA and trustB stand for the fingerprints of two trust bundles.
const (
	trustA = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	trustB = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
)

// fakeBuild writes a manifest and n bytes into ui/f.txt under dest and
// seals them as verified by trustA, as verified.Fetch would.
func fakeBuild(n int, calls *atomic.Int64) Builder { return fakeBuildUnder(trustA, n, calls) }

func fakeBuildUnder(trust string, n int, calls *atomic.Int64) Builder {
	return func(ctx context.Context, hash, dest string) (*verified.Bundle, error) {
		calls.Add(1)
		files := map[string][]byte{
			"manifest.json": []byte(`{"name":"com.acme.test","publisher":"Acme Inc.","version":"1.0.0","runtime":"wasm@1",` +
				`"ui":{"type":"iframe","entry":"ui/f.txt"}}`),
			"ui/f.txt": []byte(strings.Repeat("x", n)),
		}
		b := &verified.Bundle{Hash: hash, Trust: trust}
		for _, name := range []string{"manifest.json", "ui/f.txt"} {
			p := filepath.Join(dest, filepath.FromSlash(name))
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return nil, err
			}
			if err := os.WriteFile(p, files[name], 0o644); err != nil {
				return nil, err
			}
			sum := sha256.Sum256(files[name])
			b.Files = append(b.Files, bundle.Entry{Name: name, Size: int64(len(files[name])), SHA256: hex.EncodeToString(sum[:])})
		}
		m, err := manifest.Parse(files["manifest.json"], manifest.Options{})
		if err != nil {
			return nil, err
		}
		b.Manifest = m
		return b, verified.Seal(dest, b)
	}
}

func hashN(i int) string { return fmt.Sprintf("sha256:%064x", i) }

func TestEvictsLeastRecentlyUsedByBytes(t *testing.T) {
	c := New(Config{Dir: t.TempDir(), MaxBytes: 250})
	var calls atomic.Int64
	ctx := context.Background()
	for i := 1; i <= 2; i++ {
		if _, err := c.Get(ctx, hashN(i), trustA, fakeBuild(100, &calls)); err != nil {
			t.Fatal(err)
		}
	}
	c.Get(ctx, hashN(1), trustA, fakeBuild(100, &calls)) // 1 is now more recent than 2
	c.Get(ctx, hashN(3), trustA, fakeBuild(100, &calls)) // 300 > 250: evict 2
	st := c.Stats()
	if st.Trees != 2 || st.Bytes != 200 || st.Evictions != 1 {
		t.Fatalf("stats %+v", st)
	}
	if _, err := os.Stat(filepath.Join(c.dir, strings.TrimPrefix(hashN(2), "sha256:"))); !os.IsNotExist(err) {
		t.Fatal("evicted tree still on disk")
	}
	before := calls.Load()
	c.Get(ctx, hashN(1), trustA, fakeBuild(100, &calls))
	if calls.Load() != before {
		t.Fatal("recently used tree was evicted")
	}
}

func TestTreeRecordsFilesAndETags(t *testing.T) {
	c := New(Config{Dir: t.TempDir(), MaxBytes: 1 << 20})
	var calls atomic.Int64
	tr, err := c.Get(context.Background(), hashN(1), trustA, fakeBuild(10, &calls))
	if err != nil {
		t.Fatal(err)
	}
	f := tr.Files["f.txt"]
	sum := sha256.Sum256([]byte(strings.Repeat("x", 10)))
	if f == nil || f.ETag != `"sha256-`+hex.EncodeToString(sum[:])+`"` || tr.Entry != "f.txt" {
		t.Fatalf("tree %+v file %+v", tr, f)
	}
	if _, ok := tr.Files["manifest.json"]; ok {
		t.Fatal("non-ui file in the tree")
	}
}

func TestConcurrentMissesBuildOnce(t *testing.T) {
	c := New(Config{Dir: t.TempDir(), MaxBytes: 1 << 20})
	var calls atomic.Int64
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); c.Get(context.Background(), hashN(7), trustA, fakeBuild(10, &calls)) }()
	}
	wg.Wait()
	if calls.Load() != 1 {
		t.Fatalf("%d builds for 20 concurrent misses", calls.Load())
	}
}

func TestRestartReusesAndRepairsTrees(t *testing.T) {
	dir := t.TempDir()
	tree := filepath.Join(dir, strings.TrimPrefix(hashN(1), "sha256:"))
	ctx := context.Background()
	var calls atomic.Int64
	if _, err := New(Config{Dir: dir, MaxBytes: 1 << 20}).Get(ctx, hashN(1), trustA, fakeBuild(10, &calls)); err != nil {
		t.Fatal(err)
	}
	// restart is a new process over the same directory: the tree it gets
	// and whether it had to build it.
	restart := func(t *testing.T, trust string) (*Tree, bool) {
		t.Helper()
		before := calls.Load()
		tr, err := New(Config{Dir: dir, MaxBytes: 1 << 20}).Get(ctx, hashN(1), trust, fakeBuildUnder(trust, 10, &calls))
		if err != nil {
			t.Fatal(err)
		}
		return tr, calls.Load() != before
	}
	t.Run("a sealed tree is reused without a build", func(t *testing.T) {
		if tr, built := restart(t, trustA); built || tr.Trust != trustA || tr.Entry != "f.txt" || tr.Files["f.txt"] == nil {
			t.Fatalf("built = %v, tree %+v", built, tr)
		}
	})
	t.Run("a truncated file is rebuilt", func(t *testing.T) {
		os.WriteFile(filepath.Join(tree, "ui", "f.txt"), []byte("x"), 0o644)
		if _, built := restart(t, trustA); !built {
			t.Fatal("damaged tree reused")
		}
	})
	t.Run("a file changed with the same size is rebuilt, not served", func(t *testing.T) {
		p := filepath.Join(tree, "ui", "f.txt")
		os.WriteFile(p, []byte(strings.Repeat("y", 10)), 0o644)
		if _, built := restart(t, trustA); !built {
			t.Fatal("tampered tree reused")
		}
		if b, _ := os.ReadFile(p); string(b) != strings.Repeat("x", 10) {
			t.Fatalf("served file holds %q after the rebuild", b)
		}
	})
	t.Run("an added file is rebuilt", func(t *testing.T) {
		os.WriteFile(filepath.Join(tree, "ui", "evil.js"), []byte("alert(1)"), 0o644)
		if _, built := restart(t, trustA); !built {
			t.Fatal("tree with an added file reused")
		}
		if _, err := os.Stat(filepath.Join(tree, "ui", "evil.js")); !os.IsNotExist(err) {
			t.Fatal("added file survived the rebuild")
		}
	})
	t.Run("another trust bundle rebuilds", func(t *testing.T) {
		if tr, built := restart(t, trustB); !built || tr.Trust != trustB {
			t.Fatalf("tree verified by trust bundle A reused under B: built = %v, trust %s", built, tr.Trust)
		}
		// ...and the rebuilt tree is sealed under B.
		if _, built := restart(t, trustB); built {
			t.Fatal("tree sealed under B not reused under B")
		}
	})
}

func TestTreeIsBoundToTheTrustBundleInMemory(t *testing.T) {
	// The cache outlives config reloads, and a reload may bring another
	// trust bundle.
	c := New(Config{Dir: t.TempDir(), MaxBytes: 1 << 20})
	ctx := context.Background()
	var calls atomic.Int64
	if _, err := c.Get(ctx, hashN(1), trustA, fakeBuildUnder(trustA, 10, &calls)); err != nil {
		t.Fatal(err)
	}
	tr, err := c.Get(ctx, hashN(1), trustB, fakeBuildUnder(trustB, 10, &calls))
	if err != nil || calls.Load() != 2 || tr.Trust != trustB {
		t.Fatalf("get under another trust bundle: %v, %d builds, tree trust %s", err, calls.Load(), tr.Trust)
	}
	if st := c.Stats(); st.Trees != 1 || st.Bytes != 10 {
		t.Fatalf("stats %+v; the old tree is replaced, not kept beside", st)
	}
	t.Run("a builder verifying with another trust bundle is refused", func(t *testing.T) {
		if _, err := c.Get(ctx, hashN(2), trustA, fakeBuildUnder(trustB, 10, &calls)); err == nil {
			t.Fatal("tree built under B served for A")
		}
		if _, err := os.Stat(c.treeDir(hashN(2))); !os.IsNotExist(err) {
			t.Fatal("refused tree left on disk")
		}
	})
	t.Run("no trust fingerprint is refused", func(t *testing.T) {
		if _, err := c.Get(ctx, hashN(3), "", fakeBuildUnder("", 10, &calls)); err == nil {
			t.Fatal("tree served without a trust bundle")
		}
	})
}
