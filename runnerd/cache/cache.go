// Package cache turns a content hash into compiled handler modules (SPEC
// §6.3, §6.4). A bundle is fetched from the blob store once, its hash and
// signature are verified against the trust bundle and the manifest's
// publisher, and its dist/ tree is extracted and sealed under the cache
// directory (verified.Fetch). A restarted runner reuses a bundle on disk
// only if its seal names the current trust bundle and every file still
// has its sealed SHA-256 (verified.Open, SPEC §8.3); otherwise the bundle
// and its compiled modules are deleted and fetched and verified again.
// When a registry is configured, every call first asks whether the hash is
// a published, non-revoked version of the extension, through the shared
// registryapi.Cache (SPEC §7.5), which also follows the change feed: a
// revoked version is refused and its files evicted within about a second. Modules are
// compiled on first use, kept in an in-memory LRU, and serialized to disk
// under the engine fingerprint so that a fresh runner deserializes instead
// of recompiling; each serialized module has a SHA-256 beside it that is
// checked before it is loaded. Concurrent cold requests share one
// fetch/verify and one compile per key (single flight, no global lock).
//
// Disk layout under Config.Dir:
//
//	bundles/<hex>/            verified bundle: manifest.json, dist/**, .seal.json
//	compiled/<fingerprint>/<hex>/<sha256 of module path>.cwasm{,.sha256}
//	staging/                  extractions and downloads in progress
package cache

import (
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

	lru "github.com/hashicorp/golang-lru/v2"
	"go.uber.org/zap"
	"golang.org/x/sync/singleflight"

	"github.com/extedge/extedge/internal/blobstore"
	"github.com/extedge/extedge/internal/bundle"
	"github.com/extedge/extedge/internal/bundle/verified"
	"github.com/extedge/extedge/internal/execapi"
	"github.com/extedge/extedge/internal/registryapi"
	"github.com/extedge/extedge/internal/signing"
	"github.com/extedge/extedge/runnerd/engine"
)

// Config configures the cache.
type Config struct {
	// Dir is the cache root. Required.
	Dir string
	// MaxBytes bounds the disk cache (LRU by bytes): extracted bundles and
	// their serialized modules, evicted together. Default: 2 GiB.
	MaxBytes int64
	// Store is the blob store bundles come from. Required.
	Store blobstore.Store
	// Trust verifies signatures. Required: runnerd never runs unsigned code.
	// Bundles on disk sealed under another trust bundle are fetched and
	// verified again.
	Trust *signing.TrustBundle
	// Registry, when set, configures the registryapi.Cache that is asked
	// whether a hash is published and not revoked before it runs (its TTL,
	// MaxStale and size defaults are registryapi's). New sets its
	// OnRevoked to evict the version here, and its Now and Logger from
	// this Config when unset. Without it, only the signature counts.
	Registry *registryapi.CacheConfig
	// Engine compiles modules.
	Engine *engine.Engine
	// MaxModules and MaxModuleBytes bound the in-memory compiled modules.
	// Defaults: 256 modules, 1 GiB.
	MaxModules     int
	MaxModuleBytes int64
	// TrustPrecompiled lets publisher-supplied precompiled/ artefacts load
	// (§6.4). Default: off — they are native code from outside the runner.
	TrustPrecompiled bool
	// Limits bound bundle extraction (§2.1 defaults).
	Limits bundle.Limits
	// Now is the clock for certificate validity and registry answers.
	// Default: time.Now.
	Now func() time.Time
	// Logger logs cache events. Default: no-op.
	Logger *zap.Logger
}

// Counters count cache work, for tests and metrics.
type Counters struct {
	Fetches        int64 // bundle downloads from the blob store
	Verifications  int64 // successful hash+signature verifications
	BundleDiskHits int64 // verified bundles found on disk
	Compiles       int64 // modules compiled from wasm
	DiskHits       int64 // modules deserialized from the disk cache
	MemoryHits     int64 // modules served from the in-memory LRU
}

// Cache is the runner's bundle and module cache. It implements
// server.ModuleSource.
type Cache struct {
	cfg Config
	log *zap.Logger

	bundleFlight singleflight.Group
	moduleFlight singleflight.Group

	// status answers "published and not revoked?"; nil without a registry.
	status *registryapi.Cache

	mu      sync.Mutex
	bundles map[string]*verifiedBundle // hash → loaded bundle
	disk    *lru.Cache[string, int64]  // hash → bytes on disk
	diskSum int64

	modules  *lru.Cache[string, *engine.Module]
	modBytes atomic.Int64

	fetches, verifications, bundleDiskHits, compiles, diskHits, memHits atomic.Int64
}

// verifiedBundle is a bundle on disk whose seal held when it was loaded.
type verifiedBundle struct {
	*verified.Bundle
	dir   string
	files map[string]bool // names of b.Files
}

func newVerifiedBundle(b *verified.Bundle, dir string) *verifiedBundle {
	vb := &verifiedBundle{Bundle: b, dir: dir, files: make(map[string]bool, len(b.Files))}
	for _, f := range b.Files {
		vb.files[f.Name] = true
	}
	return vb
}

// New prepares the cache directories and indexes what is already on disk.
func New(cfg Config) (*Cache, error) {
	if cfg.Dir == "" || cfg.Store == nil || cfg.Trust == nil || cfg.Engine == nil {
		return nil, errors.New("cache needs a directory, a blob store, a trust bundle and an engine")
	}
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = 2 << 30
	}
	if cfg.MaxModules <= 0 {
		cfg.MaxModules = 256
	}
	if cfg.MaxModuleBytes <= 0 {
		cfg.MaxModuleBytes = 1 << 30
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	c := &Cache{cfg: cfg, log: cfg.Logger, bundles: map[string]*verifiedBundle{}}
	for _, d := range []string{"bundles", "compiled", "staging"} {
		if err := os.MkdirAll(filepath.Join(cfg.Dir, d), 0o750); err != nil {
			return nil, fmt.Errorf("creating cache directory: %v", err)
		}
	}
	// Leftovers of a crash are garbage.
	if ents, err := os.ReadDir(filepath.Join(cfg.Dir, "staging")); err == nil {
		for _, e := range ents {
			os.RemoveAll(filepath.Join(cfg.Dir, "staging", e.Name()))
		}
	}
	var err error
	c.modules, err = lru.NewWithEvict(cfg.MaxModules, func(_ string, m *engine.Module) {
		// Not closed: a call may still run it; the GC frees it.
		c.modBytes.Add(-m.Size)
	})
	if err != nil {
		return nil, err
	}
	c.disk, err = lru.NewWithEvict(1<<20, func(hash string, size int64) {
		c.diskSum -= size
		c.removeBundleFiles(hash)
	})
	if err != nil {
		return nil, err
	}
	c.removeOtherFingerprints()
	c.indexDisk()
	if cfg.Registry != nil {
		rc := *cfg.Registry
		if rc.Now == nil {
			rc.Now = cfg.Now
		}
		if rc.Logger == nil {
			rc.Logger = cfg.Logger.Named("registry")
		}
		onRevoked := rc.OnRevoked
		rc.OnRevoked = func(hash string) {
			c.Evict(hash)
			c.log.Info("evicted revoked bundle", zap.String("content_hash", hash))
			if onRevoked != nil {
				onRevoked(hash)
			}
		}
		c.status = registryapi.NewCache(rc)
	}
	return c, nil
}

// Registry is the registryapi.Cache the bundle statuses come from, nil
// without a registry; others (the delivery worker resolving installs)
// share it and its one change feed.
func (c *Cache) Registry() *registryapi.Cache { return c.status }

// Close stops following the registry's change feed. The cache must not be
// used afterwards.
func (c *Cache) Close() error {
	if c.status != nil {
		return c.status.Close()
	}
	return nil
}

// removeOtherFingerprints deletes modules compiled by other engine
// versions or settings: this runner can never load them.
func (c *Cache) removeOtherFingerprints() {
	root := filepath.Join(c.cfg.Dir, "compiled")
	ents, err := os.ReadDir(root)
	if err != nil {
		return
	}
	for _, e := range ents {
		if e.Name() != c.cfg.Engine.Fingerprint() {
			os.RemoveAll(filepath.Join(root, e.Name()))
		}
	}
}

func (c *Cache) compiledDir(hash string) string {
	return filepath.Join(c.cfg.Dir, "compiled", c.cfg.Engine.Fingerprint(), strings.TrimPrefix(hash, bundle.HashPrefix))
}

// indexDisk accounts for the bundles left by an earlier run. Bundles not
// sealed under this trust bundle are deleted with their modules; the files
// of the others are checked when they are first used (loadBundle).
func (c *Cache) indexDisk() {
	ents, err := os.ReadDir(filepath.Join(c.cfg.Dir, "bundles"))
	if err != nil {
		return
	}
	for _, e := range ents {
		hash := bundle.HashPrefix + e.Name()
		if !bundle.ValidHash(hash) {
			continue
		}
		if !verified.SealedUnder(c.bundleDir(hash), hash, c.cfg.Trust.Fingerprint()) {
			c.removeBundleFiles(hash)
			continue
		}
		c.mu.Lock()
		c.addDiskLocked(hash, dirSize(c.bundleDir(hash))+dirSize(c.compiledDir(hash)))
		c.mu.Unlock()
	}
}

// Counters returns a snapshot of the work counters.
func (c *Cache) Counters() Counters {
	return Counters{
		Fetches: c.fetches.Load(), Verifications: c.verifications.Load(), BundleDiskHits: c.bundleDiskHits.Load(),
		Compiles: c.compiles.Load(), DiskHits: c.diskHits.Load(), MemoryHits: c.memHits.Load(),
	}
}

// Ready reports whether the cache directory is writable.
func (c *Cache) Ready() error {
	f, err := os.CreateTemp(filepath.Join(c.cfg.Dir, "staging"), "ready-*")
	if err != nil {
		return fmt.Errorf("cache directory not writable: %v", err)
	}
	name := f.Name()
	f.Close()
	return os.Remove(name)
}

func (c *Cache) bundleDir(hash string) string {
	return filepath.Join(c.cfg.Dir, "bundles", strings.TrimPrefix(hash, bundle.HashPrefix))
}

func unavailable(format string, args ...any) *execapi.Error {
	return &execapi.Error{Code: execapi.CodeBundleUnavailable, Message: fmt.Sprintf(format, args...)}
}

func integrity(format string, args ...any) *execapi.Error {
	return &execapi.Error{Code: execapi.CodeIntegrityFailed, Message: fmt.Sprintf(format, args...)}
}

// Module implements server.ModuleSource: the compiled module and export
// that serve handler in the bundle hash of extension.
func (c *Cache) Module(ctx context.Context, hash, extension, handler string) (*engine.Module, string, error) {
	if err := c.checkStatus(ctx, hash, extension); err != nil {
		return nil, "", err
	}
	b, err := c.bundle(ctx, hash)
	if err != nil {
		return nil, "", err
	}
	if extension != "" && b.Manifest.Name != extension {
		return nil, "", integrity("bundle %s is not a version of %s", hash, extension)
	}
	ref, err := b.Manifest.HandlerTarget(handler, func(p string) bool { return b.files[p] })
	if err != nil {
		return nil, "", &execapi.Error{Code: execapi.CodeBadHandler, Message: err.Error()}
	}
	m, err := c.module(ctx, b, ref.Module)
	if err != nil {
		return nil, "", err
	}
	return m, ref.Export, nil
}

// Warmup fetches, verifies and compiles every module of a bundle.
func (c *Cache) Warmup(ctx context.Context, hash string) error {
	b, err := c.bundle(ctx, hash)
	if err != nil {
		return err
	}
	if err := c.checkStatus(ctx, hash, b.Manifest.Name); err != nil {
		return err
	}
	for f := range b.files {
		if strings.HasPrefix(f, "dist/") && strings.HasSuffix(f, ".wasm") {
			if _, err := c.module(ctx, b, f); err != nil {
				return err
			}
		}
	}
	return nil
}

// Evict forgets everything about a hash: loaded bundle, compiled modules,
// disk copies. Used when a version is revoked. Anything but a valid
// content hash is ignored: it names a directory to delete.
func (c *Cache) Evict(hash string) {
	if !bundle.ValidHash(hash) {
		return
	}
	c.mu.Lock()
	delete(c.bundles, hash)
	c.disk.Remove(hash)
	c.mu.Unlock()
	for _, k := range c.modules.Keys() {
		if strings.HasPrefix(k, hash+"|") {
			c.modules.Remove(k)
		}
	}
	os.RemoveAll(c.compiledDir(hash))
}

// checkStatus refuses hashes the registry says are revoked or not
// versions of extension, and fails closed when it cannot say (§7.5).
// Without a registry only the signature counts.
func (c *Cache) checkStatus(ctx context.Context, hash, extension string) error {
	if c.status == nil {
		return nil
	}
	st, err := c.status.BundleStatus(ctx, hash, extension)
	switch {
	case err != nil:
		return unavailable("registry cannot confirm bundle status")
	case st.Revoked:
		// The feed may have been down when it was revoked: evict now.
		c.Evict(hash)
		return integrity("bundle %s is revoked", hash)
	case !st.Published:
		return integrity("bundle %s is not a published version of %s", hash, extension)
	}
	return nil
}

// bundle returns the verified, extracted bundle, fetching it at most once
// for concurrent callers; each waits only until its ctx ends.
func (c *Cache) bundle(ctx context.Context, hash string) (*verifiedBundle, error) {
	c.mu.Lock()
	b := c.bundles[hash]
	if b != nil {
		c.disk.Get(hash) // touch
	}
	c.mu.Unlock()
	if b != nil {
		return b, nil
	}
	return shared(ctx, &c.bundleFlight, hash, func() (*verifiedBundle, error) {
		c.mu.Lock()
		b := c.bundles[hash]
		c.mu.Unlock()
		if b != nil {
			return b, nil
		}
		// The fetch must not die with the first caller's request: other
		// callers share it, and each stops waiting at its own deadline.
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
		defer cancel()
		b, err := c.loadBundle(fctx, hash)
		if err != nil {
			return nil, err
		}
		c.mu.Lock()
		c.bundles[hash] = b
		c.mu.Unlock()
		return b, nil
	})
}

// loadBundle returns the bundle on disk if its seal holds for this trust
// bundle (every file re-hashed), else fetches and verifies it again. A
// bundle whose seal fails is deleted with its compiled modules first: they
// were made from files that can no longer be vouched for.
func (c *Cache) loadBundle(ctx context.Context, hash string) (*verifiedBundle, error) {
	dir := c.bundleDir(hash)
	b, err := verified.Open(dir, hash, c.cfg.Trust.Fingerprint())
	if err == nil {
		c.bundleDiskHits.Add(1)
		return newVerifiedBundle(b, dir), nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		c.log.Warn("bundle on disk fails its seal, fetching it again", zap.String("content_hash", hash), zap.Error(err))
	}
	c.mu.Lock()
	c.disk.Remove(hash) // deletes the files
	c.mu.Unlock()
	c.removeBundleFiles(hash)
	return c.fetchBundle(ctx, hash)
}

// removeBundleFiles deletes a bundle and its compiled modules from disk.
func (c *Cache) removeBundleFiles(hash string) {
	os.RemoveAll(c.bundleDir(hash))
	// Unlinking is safe for modules still mapped by running calls.
	os.RemoveAll(c.compiledDir(hash))
}

// fetchBundle fetches, verifies and seals a bundle with the one
// verified-bundle pipeline (internal/bundle/verified), keeping
// manifest.json, dist/ and (with TrustPrecompiled) precompiled/, and only
// then moves it into place.
func (c *Cache) fetchBundle(ctx context.Context, hash string) (*verifiedBundle, error) {
	c.fetches.Add(1)
	staging, err := os.MkdirTemp(filepath.Join(c.cfg.Dir, "staging"), "fetch-")
	if err != nil {
		return nil, c.localError("creating a staging directory", err)
	}
	defer os.RemoveAll(staging)

	extracted := filepath.Join(staging, "tree")
	keep := func(name string) bool {
		return strings.HasPrefix(name, "dist/") || (c.cfg.TrustPrecompiled && strings.HasPrefix(name, "precompiled/"))
	}
	b, err := verified.Fetch(ctx, c.cfg.Store, c.cfg.Trust, hash, extracted,
		verified.Options{Limits: c.cfg.Limits, Keep: keep, Now: c.cfg.Now})
	if err != nil {
		return nil, c.fetchError(hash, err)
	}
	c.verifications.Add(1)
	dir := c.bundleDir(hash)
	os.RemoveAll(dir)
	if err := os.Rename(extracted, dir); err != nil {
		return nil, c.localError("moving the bundle into place", err)
	}
	c.mu.Lock()
	c.addDiskLocked(hash, dirSize(dir))
	c.mu.Unlock()
	return newVerifiedBundle(b, dir), nil
}

// fetchError maps a verified.Fetch error to the runner's codes (SPEC
// §6.3): bundle_unavailable when the blob store has not got it or cannot
// be reached, integrity_failed when the bundle is at fault.
func (c *Cache) fetchError(hash string, err error) error {
	switch {
	case errors.Is(err, verified.ErrUnavailable):
		if errors.Is(err, blobstore.ErrNotFound) {
			return unavailable("bundle %s is not in the blob store", hash)
		}
		c.log.Warn("fetching bundle failed", zap.String("content_hash", hash), zap.Error(err))
		return unavailable("bundle could not be fetched")
	case errors.Is(err, verified.ErrIntegrity):
		if code := signing.CodeOf(err); code != "" {
			return integrity("signature check failed: %s", code)
		}
		if rule := bundle.RuleOf(err); rule != "" {
			return integrity("bundle breaks the archive rules: %s", rule)
		}
		return integrity("%v", err)
	}
	return c.localError("fetching bundle "+hash, err)
}

// localError is a failure of this runner's own disk: logged, and answered
// with a message that does not leak paths.
func (c *Cache) localError(what string, err error) error {
	c.log.Error("bundle cache: "+what, zap.Error(err))
	return &execapi.Error{Code: execapi.CodeInternal, Message: "cache directory not writable"}
}

// addDiskBytes adds bytes written for a bundle already on disk (its
// serialized modules) and evicts as needed.
func (c *Cache) addDiskBytes(hash string, n int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.disk.Peek(hash); ok {
		c.addDiskLocked(hash, old+n)
	}
}

// addDiskLocked records a bundle on disk and evicts the least recently
// used ones beyond MaxBytes (never the one just added).
func (c *Cache) addDiskLocked(hash string, size int64) {
	if old, ok := c.disk.Peek(hash); ok {
		c.diskSum -= old
	}
	c.disk.Add(hash, size)
	c.diskSum += size
	for c.diskSum > c.cfg.MaxBytes && c.disk.Len() > 1 {
		oldest, _, ok := c.disk.GetOldest()
		if !ok || oldest == hash {
			break
		}
		delete(c.bundles, oldest)
		c.disk.Remove(oldest)
	}
}

// DiskBytes is the size of the disk cache.
func (c *Cache) DiskBytes() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.diskSum
}

func dirSize(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}
