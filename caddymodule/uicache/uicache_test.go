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
)

// fakeBuild writes n bytes into ui/f.txt under dest, as an extraction would.
func fakeBuild(n int, calls *atomic.Int64) Builder {
	return func(ctx context.Context, hash, dest string) ([]bundle.Entry, string, error) {
		calls.Add(1)
		if err := os.MkdirAll(filepath.Join(dest, "ui"), 0o755); err != nil {
			return nil, "", err
		}
		body := strings.Repeat("x", n)
		if err := os.WriteFile(filepath.Join(dest, "ui", "f.txt"), []byte(body), 0o644); err != nil {
			return nil, "", err
		}
		sum := sha256.Sum256([]byte(body))
		return []bundle.Entry{{Name: "ui/f.txt", Size: int64(n), SHA256: hex.EncodeToString(sum[:])}, {Name: "manifest.json", Size: 2}}, "ui/f.txt", nil
	}
}

func hashN(i int) string { return fmt.Sprintf("sha256:%064x", i) }

func TestEvictsLeastRecentlyUsedByBytes(t *testing.T) {
	c := New(Config{Dir: t.TempDir(), MaxBytes: 250})
	var calls atomic.Int64
	ctx := context.Background()
	for i := 1; i <= 2; i++ {
		if _, err := c.Get(ctx, hashN(i), fakeBuild(100, &calls)); err != nil {
			t.Fatal(err)
		}
	}
	c.Get(ctx, hashN(1), fakeBuild(100, &calls)) // 1 is now more recent than 2
	c.Get(ctx, hashN(3), fakeBuild(100, &calls)) // 300 > 250: evict 2
	st := c.Stats()
	if st.Trees != 2 || st.Bytes != 200 || st.Evictions != 1 {
		t.Fatalf("stats %+v", st)
	}
	if _, err := os.Stat(filepath.Join(c.dir, strings.TrimPrefix(hashN(2), "sha256:"))); !os.IsNotExist(err) {
		t.Fatal("evicted tree still on disk")
	}
	before := calls.Load()
	c.Get(ctx, hashN(1), fakeBuild(100, &calls))
	if calls.Load() != before {
		t.Fatal("recently used tree was evicted")
	}
}

func TestTreeRecordsFilesAndETags(t *testing.T) {
	c := New(Config{Dir: t.TempDir(), MaxBytes: 1 << 20})
	var calls atomic.Int64
	tr, err := c.Get(context.Background(), hashN(1), fakeBuild(10, &calls))
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
		go func() { defer wg.Done(); c.Get(context.Background(), hashN(7), fakeBuild(10, &calls)) }()
	}
	wg.Wait()
	if calls.Load() != 1 {
		t.Fatalf("%d builds for 20 concurrent misses", calls.Load())
	}
}

func TestRestartReusesAndRepairsTrees(t *testing.T) {
	dir := t.TempDir()
	var calls atomic.Int64
	New(Config{Dir: dir, MaxBytes: 1 << 20}).Get(context.Background(), hashN(1), fakeBuild(10, &calls))
	// A new process: the index on disk is reused without a build.
	c2 := New(Config{Dir: dir, MaxBytes: 1 << 20})
	if _, err := c2.Get(context.Background(), hashN(1), fakeBuild(10, &calls)); err != nil || calls.Load() != 1 {
		t.Fatalf("not reused: %v, %d builds", err, calls.Load())
	}
	// A damaged tree (file truncated) is rebuilt by the next process.
	os.WriteFile(filepath.Join(dir, strings.TrimPrefix(hashN(1), "sha256:"), "ui", "f.txt"), []byte("x"), 0o644)
	c3 := New(Config{Dir: dir, MaxBytes: 1 << 20})
	if _, err := c3.Get(context.Background(), hashN(1), fakeBuild(10, &calls)); err != nil || calls.Load() != 2 {
		t.Fatalf("damaged tree not rebuilt: %v, %d builds", err, calls.Load())
	}
}
