// Package uicache keeps the extracted `ui/**` trees of verified bundles on
// disk for the gateway's /ext-ui route (SPEC §8.3). A tree is built once
// per content hash (single flight), by a Builder that fetches, verifies,
// extracts and seals it into a fresh directory (verified.Fetch); the cache
// records every file's size and SHA-256 (the strong ETag) and evicts whole
// trees least recently used first when their total size exceeds the bound.
// Trees are bound to the fingerprint of the trust bundle that verified
// them: a tree is served only for that trust bundle (the cache outlives
// config reloads, which may bring another), and a restarted gateway reuses
// a tree on disk only if its seal names the current trust bundle and every
// file still has its sealed SHA-256 (verified.Open); anything else is
// rebuilt, never served.
package uicache

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sync/singleflight"

	"github.com/extedge/extedge/internal/bundle"
	"github.com/extedge/extedge/internal/bundle/verified"
)

// Config configures a Cache.
type Config struct {
	// Dir holds the trees; created on first build.
	Dir string
	// MaxBytes bounds the total size of all trees.
	MaxBytes int64
	// Logger may be nil.
	Logger *zap.Logger
}

// Builder fetches and verifies the bundle of hash and extracts and seals
// at least its manifest.json and ui/** under dest, which must not exist
// (verified.Fetch semantics).
type Builder func(ctx context.Context, hash, dest string) (*verified.Bundle, error)

// File is one servable file of a tree.
type File struct {
	// Path is the file's absolute path on disk.
	Path string
	Size int64
	// ETag is the strong ETag `"sha256-<hex>"`.
	ETag string
}

// Tree is the UI of one content hash. Files maps paths relative to ui/
// (e.g. "index.html", "assets/app.js").
type Tree struct {
	Hash string
	// Trust is the fingerprint of the trust bundle that verified it.
	Trust string
	Dir   string
	Files map[string]*File
	// Entry is ui.entry relative to ui/ ("" if the manifest has none).
	Entry string
	Bytes int64

	elem *list.Element
}

// Cache is safe for concurrent use; it touches the disk only when asked
// for a tree.
type Cache struct {
	dir    string
	logger *zap.Logger
	max    atomic.Int64

	mu    sync.Mutex
	trees map[string]*Tree
	lru   *list.List // front = most recently used; values are *Tree
	bytes int64

	sf                   singleflight.Group
	hits, misses, builds atomic.Int64
	evictions, failures  atomic.Int64
}

// New returns a cache; it does no I/O.
func New(cfg Config) *Cache {
	c := &Cache{dir: cfg.Dir, logger: cfg.Logger, trees: make(map[string]*Tree), lru: list.New()}
	if c.logger == nil {
		c.logger = zap.NewNop()
	}
	c.max.Store(cfg.MaxBytes)
	return c
}

// SetMaxBytes changes the size bound; it applies at the next insertion.
func (c *Cache) SetMaxBytes(n int64) {
	if n > 0 {
		c.max.Store(n)
	}
}

// Destruct implements caddy.Destructor; trees stay on disk for reuse.
func (c *Cache) Destruct() error { return nil }

// Stats are the cache's counters.
type Stats struct {
	Trees    int   `json:"trees"`
	Bytes    int64 `json:"bytes"`
	MaxBytes int64 `json:"max_bytes"`
	Hits     int64 `json:"hits"`
	Misses   int64 `json:"misses"`
	// HitRate is Hits / (Hits + Misses), 0 before any lookup.
	HitRate   float64 `json:"hit_rate"`
	Builds    int64   `json:"builds"`
	Evictions int64   `json:"evictions"`
	Failures  int64   `json:"failures"`
}

// Stats reports sizes and counters.
func (c *Cache) Stats() Stats {
	c.mu.Lock()
	n, b := len(c.trees), c.bytes
	c.mu.Unlock()
	st := Stats{Trees: n, Bytes: b, MaxBytes: c.max.Load(), Hits: c.hits.Load(), Misses: c.misses.Load(),
		Builds: c.builds.Load(), Evictions: c.evictions.Load(), Failures: c.failures.Load()}
	if n := st.Hits + st.Misses; n > 0 {
		st.HitRate = float64(st.Hits) / float64(n)
	}
	return st
}

// Get returns the tree of hash verified by the trust bundle of
// fingerprint trust (signing.TrustBundle.Fingerprint), building it with
// build, which must verify with that trust bundle, on a miss. A tree
// verified by another trust bundle is a miss: the cache outlives config
// reloads, which may change the trust bundle.
func (c *Cache) Get(ctx context.Context, hash, trust string, build Builder) (*Tree, error) {
	if !bundle.ValidHash(hash) {
		return nil, fmt.Errorf("invalid content hash")
	}
	if trust == "" {
		return nil, errors.New("ui cache: no trust bundle fingerprint")
	}
	c.mu.Lock()
	if t, ok := c.trees[hash]; ok && t.Trust == trust {
		c.lru.MoveToFront(t.elem)
		c.mu.Unlock()
		c.hits.Add(1)
		return t, nil
	}
	c.mu.Unlock()
	c.misses.Add(1)
	v, err, _ := c.sf.Do(hash, func() (any, error) {
		c.mu.Lock()
		t, ok := c.trees[hash]
		c.mu.Unlock()
		if ok && t.Trust == trust {
			return t, nil
		}
		// Detached from the caller: other waiters share this build.
		bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
		defer cancel()
		return c.load(bctx, hash, trust, build)
	})
	if err == nil && v.(*Tree).Trust != trust {
		// Joined a build for another trust bundle (two configs during a
		// reload): not ours to serve.
		err = errors.New("ui cache: tree is being built for another trust bundle")
	}
	if err != nil {
		c.failures.Add(1)
		return nil, err
	}
	return v.(*Tree), nil
}

// Invalidate drops hash from the cache and deletes its files, so the next
// Get rebuilds it (used when a file of the tree turned out to be missing).
func (c *Cache) Invalidate(hash string) {
	c.mu.Lock()
	t, ok := c.trees[hash]
	if ok {
		c.removeLocked(t)
	}
	c.mu.Unlock()
	if ok {
		c.removeFiles(t.Hash)
	}
}

func (c *Cache) treeDir(hash string) string {
	return filepath.Join(c.dir, strings.TrimPrefix(hash, bundle.HashPrefix))
}

// load reuses the sealed tree of hash on disk or builds it.
func (c *Cache) load(ctx context.Context, hash, trust string, build Builder) (*Tree, error) {
	if err := os.MkdirAll(c.dir, 0o755); err != nil {
		return nil, fmt.Errorf("ui cache: %v", err)
	}
	dir := c.treeDir(hash)
	b, err := verified.Open(dir, hash, trust)
	if err == nil {
		t := newTree(dir, b)
		c.insert(t)
		return t, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		c.logger.Info("ui tree on disk not reusable, rebuilding", zap.String("content_hash", hash), zap.Error(err))
	}
	c.removeFiles(hash)
	c.builds.Add(1)
	b, err = build(ctx, hash, dir)
	if err != nil {
		return nil, err
	}
	if b.Hash != hash || b.Trust != trust {
		c.removeFiles(hash)
		return nil, fmt.Errorf("ui cache: builder verified %s with trust bundle %s, want %s with %s", b.Hash, b.Trust, hash, trust)
	}
	t := newTree(dir, b)
	c.insert(t)
	return t, nil
}

// newTree is the servable view of the verified bundle b at dir: its ui/
// files and ui.entry.
func newTree(dir string, b *verified.Bundle) *Tree {
	t := &Tree{Hash: b.Hash, Trust: b.Trust, Dir: dir, Files: make(map[string]*File)}
	if b.Manifest != nil && b.Manifest.UI != nil {
		t.Entry = strings.TrimPrefix(b.Manifest.UI.Entry, "ui/")
	}
	for _, e := range b.Files {
		rel, ok := strings.CutPrefix(e.Name, "ui/")
		if !ok {
			continue
		}
		t.Files[rel] = &File{Path: filepath.Join(dir, filepath.FromSlash(e.Name)), Size: e.Size, ETag: `"sha256-` + e.SHA256 + `"`}
		t.Bytes += e.Size
	}
	return t
}

func (c *Cache) insert(t *Tree) {
	var evicted []*Tree
	c.mu.Lock()
	if old, ok := c.trees[t.Hash]; ok {
		c.removeLocked(old)
	}
	t.elem = c.lru.PushFront(t)
	c.trees[t.Hash] = t
	c.bytes += t.Bytes
	max := c.max.Load()
	for max > 0 && c.bytes > max && c.lru.Len() > 1 {
		victim := c.lru.Back().Value.(*Tree)
		c.removeLocked(victim)
		evicted = append(evicted, victim)
	}
	c.mu.Unlock()
	for _, v := range evicted {
		c.evictions.Add(1)
		c.removeFiles(v.Hash)
	}
}

func (c *Cache) removeLocked(t *Tree) {
	c.lru.Remove(t.elem)
	delete(c.trees, t.Hash)
	c.bytes -= t.Bytes
}

// removeFiles deletes a tree (its seal included). Open files being served
// keep working (POSIX unlink semantics).
func (c *Cache) removeFiles(hash string) {
	if err := os.RemoveAll(c.treeDir(hash)); err != nil {
		c.logger.Warn("removing ui tree", zap.String("content_hash", hash), zap.Error(err))
	}
}
