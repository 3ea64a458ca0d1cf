package registryapi

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"go.uber.org/zap"
	"golang.org/x/sync/singleflight"

	"github.com/extedge/extedge/internal/manifest"
)

// Errors of Cache.Resolve and Cache.BundleStatus.
var (
	// ErrNotInstalled: no enabled install of that extension for the tenant.
	ErrNotInstalled = errors.New("not installed")
	// ErrUnavailable: the registry cannot be asked and nothing usable is
	// cached (SPEC §7.5: fail closed).
	ErrUnavailable = errors.New("registry unavailable")
)

// Defaults of CacheConfig: the one place where the gateway's and the
// runner's registry caches get their numbers. The gateway overrides TTL
// and MaxStale with its `cache_ttl` and `max_stale` options, runnerd with
// --registry-cache-ttl and --registry-max-stale.
const (
	DefaultCacheTTL            = 30 * time.Second
	DefaultCacheNegativeTTL    = 5 * time.Second
	DefaultCacheMaxStale       = 5 * time.Minute
	DefaultCacheMaxEntries     = 50_000
	DefaultCacheMaxUnknown     = 10_000
	DefaultCacheRequestTimeout = 5 * time.Second
)

// CacheConfig configures a Cache. Zero values take the Default* constants.
type CacheConfig struct {
	// Client returns the registry client; called until it succeeds, so a
	// token file may appear after start. Required.
	Client func() (*Client, error)
	// TTL is how long an answer is used without asking the registry
	// again. The change feed invalidates sooner; the TTL only bounds how
	// long a missed event can go unnoticed. Default: `30s`.
	TTL time.Duration
	// NegativeTTL is the TTL of "not installed" and "not a published
	// version" answers, short so that a new install shows up quickly even
	// without its event. Default: `5s`.
	NegativeTTL time.Duration
	// MaxStale bounds how old (since the registry last confirmed it) an
	// answer may be and still serve while the registry is unreachable;
	// after it, lookups fail with ErrUnavailable. It counts from the last
	// confirmation, not from the end of the TTL. Default: `5m`.
	MaxStale time.Duration
	// MaxEntries bounds each of the two tables (installs, bundle
	// statuses); the least recently used entries go first.
	// Default: 50000.
	MaxEntries int
	// MaxUnknown bounds the table of "not a published version" bundle
	// statuses, kept apart from the known ones so that lookups of made-up
	// hashes (anyone can send them to /ext-ui) never evict a real
	// version's status. Default: 10000.
	MaxUnknown int
	// RequestTimeout bounds one registry call. Default: `5s`.
	RequestTimeout time.Duration
	// OnRevoked, when set, is called from the change-feed goroutine with
	// the content hash (never empty, not validated) of each revoked
	// version, after the cache already refuses it. The runner evicts the
	// bundle's files there.
	OnRevoked func(contentHash string)
	// Now is the clock. Default: time.Now.
	Now func() time.Time
	// Logger may be nil.
	Logger *zap.Logger
}

// ResolvedInstall is a resolved install with its compiled endpoint router.
type ResolvedInstall struct {
	*Resolved
	Router *manifest.Router
}

// Cache holds registry answers for the gateway and the runners (SPEC
// §7.5): resolved installs per (tenant, extension) and bundle status per
// (content hash, extension), each table an LRU of at most MaxEntries.
//
// Both users get the change feed the same way: the Cache follows
// GET /v1/changes itself from its first lookup until Close, so an event
// invalidates an entry within about a second and a revoked hash is
// refused without asking again. The TTL only bounds how long a missed
// event goes unnoticed; after a feed break every entry revalidates.
// While the registry is unreachable, entries keep serving up to MaxStale
// and then fail closed (ErrUnavailable); an entry the feed invalidated
// never serves stale. Concurrent lookups of one key share one registry
// call, which a caller's context does not cancel: a caller whose context
// ends stops waiting, the others still get the answer.
//
// A Cache is safe for concurrent use and does no I/O until first used.
type Cache struct {
	cfg    CacheConfig
	logger *zap.Logger

	clientMu sync.Mutex
	client   *Client

	installs *lru.Cache[string, *installEntry]
	statuses *lru.Cache[string, *statusEntry] // published versions (revoked or not)
	unknown  *lru.Cache[string, *statusEntry] // not a published version of that extension
	sf       singleflight.Group
	// gen counts feed invalidations, so that an answer fetched while one
	// happened is not trusted for a whole TTL.
	gen atomic.Int64

	feedOnce sync.Once
	ctx      context.Context
	cancel   context.CancelFunc
	feedWG   sync.WaitGroup

	hits, misses, staleHits, failures, calls atomic.Int64
	feedEvents, feedReconnects               atomic.Int64
}

type entryState struct {
	validated time.Time   // when the registry (or its feed) last confirmed this answer
	stale     atomic.Bool // revalidate before next use (TTL or feed reconnect)
	invalid   atomic.Bool // changed per the feed: never serve without asking
}

type installEntry struct {
	entryState
	install *ResolvedInstall // nil: not installed
	etag    string
}

type statusEntry struct {
	entryState
	status   *BundleStatus
	fromFeed bool // revoked by a feed event, not by a registry reply
}

// NewCache returns a cache; it does no I/O.
func NewCache(cfg CacheConfig) *Cache {
	if cfg.TTL <= 0 {
		cfg.TTL = DefaultCacheTTL
	}
	if cfg.NegativeTTL <= 0 {
		cfg.NegativeTTL = DefaultCacheNegativeTTL
	}
	if cfg.MaxStale <= 0 {
		cfg.MaxStale = DefaultCacheMaxStale
	}
	if cfg.MaxEntries <= 0 {
		cfg.MaxEntries = DefaultCacheMaxEntries
	}
	if cfg.MaxUnknown <= 0 {
		cfg.MaxUnknown = DefaultCacheMaxUnknown
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = DefaultCacheRequestTimeout
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	c := &Cache{cfg: cfg, logger: cfg.Logger}
	if c.logger == nil {
		c.logger = zap.NewNop()
	}
	c.installs, _ = lru.New[string, *installEntry](cfg.MaxEntries)
	c.statuses, _ = lru.New[string, *statusEntry](cfg.MaxEntries)
	c.unknown, _ = lru.New[string, *statusEntry](cfg.MaxUnknown)
	c.ctx, c.cancel = context.WithCancel(context.Background())
	return c
}

// CacheStats are a Cache's sizes and counters, for admin APIs and metrics.
type CacheStats struct {
	Installs       int `json:"installs"`
	BundleStatuses int `json:"bundle_statuses"`
	// UnknownStatuses counts cached "not a published version" answers.
	UnknownStatuses int   `json:"unknown_statuses"`
	Hits            int64 `json:"hits"`
	Misses          int64 `json:"misses"`
	// HitRate is Hits / (Hits + Misses), 0 before any lookup.
	HitRate   float64 `json:"hit_rate"`
	StaleHits int64   `json:"stale_hits"`
	Failures  int64   `json:"failures"`
	// RegistryCalls counts resolve and status requests sent to the
	// registry; concurrent misses of one key count once.
	RegistryCalls  int64 `json:"registry_calls"`
	FeedEvents     int64 `json:"feed_events"`
	FeedReconnects int64 `json:"feed_reconnects"`
}

// Stats reports sizes and counters.
func (c *Cache) Stats() CacheStats {
	st := CacheStats{Installs: c.installs.Len(), BundleStatuses: c.statuses.Len(), UnknownStatuses: c.unknown.Len(),
		Hits: c.hits.Load(), Misses: c.misses.Load(), StaleHits: c.staleHits.Load(),
		Failures: c.failures.Load(), RegistryCalls: c.calls.Load(),
		FeedEvents: c.feedEvents.Load(), FeedReconnects: c.feedReconnects.Load()}
	if n := st.Hits + st.Misses; n > 0 {
		st.HitRate = float64(st.Hits) / float64(n)
	}
	return st
}

// Close stops following the change feed.
func (c *Cache) Close() error {
	c.cancel()
	c.feedWG.Wait()
	return nil
}

// Destruct is Close, so that a Cache can live in a caddy.UsagePool.
func (c *Cache) Destruct() error { return c.Close() }

func (c *Cache) getClient() (*Client, error) {
	c.clientMu.Lock()
	defer c.clientMu.Unlock()
	if c.client != nil {
		return c.client, nil
	}
	cl, err := c.cfg.Client()
	if err != nil {
		return nil, err
	}
	c.client = cl
	return cl, nil
}

func (e *entryState) fresh(now time.Time, ttl time.Duration) bool {
	return !e.stale.Load() && !e.invalid.Load() && now.Sub(e.validated) < ttl
}

// usableStale reports whether e may be served while the registry is down.
func (e *entryState) usableStale(now time.Time, maxStale time.Duration) bool {
	return !e.invalid.Load() && now.Sub(e.validated) < maxStale
}

// confirmed stamps a new answer; one fetched while the feed invalidated
// something (gen moved) revalidates on next use.
func (c *Cache) confirmed(e *entryState, gen int64) {
	e.validated = c.cfg.Now()
	if c.gen.Load() != gen {
		e.stale.Store(true)
	}
}

func installKey(tenant, ext string) string { return tenant + "\x00" + ext }

func statusKey(hash, ext string) string { return hash + "\x00" + ext }

// Resolve returns the install of ext for tenant: ErrNotInstalled when it
// has none (or it is disabled), ErrUnavailable when the registry cannot
// say and nothing usable is cached, ctx's error when ctx ends first.
func (c *Cache) Resolve(ctx context.Context, tenant, ext string) (*ResolvedInstall, error) {
	c.feedOnce.Do(c.startFeed)
	key := installKey(tenant, ext)
	if e, ok := c.installs.Get(key); ok {
		ttl := c.cfg.TTL
		if e.install == nil {
			ttl = c.cfg.NegativeTTL
		}
		if e.fresh(c.cfg.Now(), ttl) {
			c.hits.Add(1)
			return e.result()
		}
	}
	c.misses.Add(1)
	v, err := c.share(ctx, "i\x00"+key, func() (any, error) { return c.refreshInstall(tenant, ext, key) })
	if err != nil {
		return nil, err
	}
	return v.(*installEntry).result()
}

// share runs refresh once for all concurrent callers of key. The refresh
// runs under the cache's own context and RequestTimeout, so that the first
// caller going away does not fail the others; a caller whose ctx ends
// returns ctx's error at once.
func (c *Cache) share(ctx context.Context, key string, refresh func() (any, error)) (any, error) {
	ch := c.sf.DoChan(key, refresh)
	select {
	case r := <-ch:
		return r.Val, r.Err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (e *installEntry) result() (*ResolvedInstall, error) {
	if e.install == nil {
		return nil, ErrNotInstalled
	}
	return e.install, nil
}

func (c *Cache) refreshInstall(tenant, ext, key string) (*installEntry, error) {
	gen := c.gen.Load()
	prev, _ := c.installs.Peek(key)
	client, err := c.getClient()
	if err != nil {
		return c.installUnavailable(prev, err)
	}
	ctx, cancel := context.WithTimeout(c.ctx, c.cfg.RequestTimeout)
	defer cancel()
	etag := ""
	if prev != nil && prev.install != nil && !prev.invalid.Load() {
		etag = prev.etag
	}
	c.calls.Add(1)
	res, newETag, notModified, err := client.Resolve(ctx, tenant, ext, etag)
	var e *installEntry
	switch {
	case err == nil && notModified && prev != nil:
		e = &installEntry{install: prev.install, etag: prev.etag}
	case err == nil && res != nil:
		if res.Status != "" && res.Status != "enabled" {
			e = &installEntry{}
			break
		}
		router, rerr := manifest.NewRouter(res.Endpoints)
		if rerr != nil {
			// A published manifest always compiles; refuse rather than guess.
			c.logger.Error("registry returned endpoints that do not compile",
				zap.String("extension", ext), zap.Error(rerr))
			return c.installUnavailable(prev, rerr)
		}
		e = &installEntry{install: &ResolvedInstall{Resolved: res, Router: router}, etag: newETag}
	case isNotFound(err):
		e = &installEntry{}
	case err == nil:
		return c.installUnavailable(prev, errors.New("empty resolve reply"))
	default:
		return c.installUnavailable(prev, err)
	}
	c.confirmed(&e.entryState, gen)
	c.installs.Add(key, e)
	return e, nil
}

func (c *Cache) installUnavailable(prev *installEntry, err error) (*installEntry, error) {
	var st *entryState
	if prev != nil {
		st = &prev.entryState
	}
	if c.servesStale(st, "install", err) {
		return prev, nil
	}
	return nil, ErrUnavailable
}

// servesStale counts a failed registry call and reports whether e (the
// entry the call was to refresh) may still answer.
func (c *Cache) servesStale(e *entryState, kind string, err error) bool {
	c.failures.Add(1)
	now := c.cfg.Now()
	if e != nil && e.usableStale(now, c.cfg.MaxStale) {
		c.staleHits.Add(1)
		if ce := c.logger.Check(zap.WarnLevel, "registry unreachable, serving cached answer"); ce != nil {
			ce.Write(zap.String("kind", kind), zap.Error(err), zap.Duration("age", now.Sub(e.validated)))
		}
		return true
	}
	c.logger.Warn("registry unreachable and no usable cached answer", zap.String("kind", kind), zap.Error(err))
	return false
}

func isNotFound(err error) bool {
	var ae *APIError
	return errors.As(err, &ae) && (ae.Status == http.StatusNotFound || ae.Code == "not_installed")
}

// BundleStatus reports whether hash is a published, non-revoked version of
// ext. An unknown hash is a status with Published false, not an error;
// the error is ErrUnavailable when the registry cannot say and nothing
// usable is cached, or ctx's error when ctx ends first. It has the
// signature of Client.BundleStatus.
func (c *Cache) BundleStatus(ctx context.Context, hash, ext string) (*BundleStatus, error) {
	c.feedOnce.Do(c.startFeed)
	key := statusKey(hash, ext)
	if st, ok := c.freshStatus(key); ok {
		return st, nil
	}
	c.misses.Add(1)
	v, err := c.share(ctx, "s\x00"+key, func() (any, error) { return c.refreshStatus(hash, ext, key) })
	if err != nil {
		return nil, err
	}
	return v.(*statusEntry).status, nil
}

// CachedBundleStatus returns a fresh cached status without any I/O, so
// that a caller can refuse or throttle lookups that would reach the
// registry (the gateway's /ext-ui, SPEC §8.3).
func (c *Cache) CachedBundleStatus(hash, ext string) (*BundleStatus, bool) {
	return c.freshStatus(statusKey(hash, ext))
}

// KnownBundleStatus reports whether the cache holds the status of a
// published version (revoked or not) for hash and ext, fresh or due for
// revalidation. Such a lookup is not of a made-up hash, so the gateway
// does not throttle it. No I/O.
func (c *Cache) KnownBundleStatus(hash, ext string) bool {
	return c.statuses.Contains(statusKey(hash, ext))
}

// freshStatus is a cache hit: an entry within its TTL (NegativeTTL for
// unknown versions) that nothing invalidated.
func (c *Cache) freshStatus(key string) (*BundleStatus, bool) {
	e, ok := c.statuses.Get(key)
	ttl := c.cfg.TTL
	if !ok {
		e, ok = c.unknown.Get(key)
		ttl = c.cfg.NegativeTTL
	}
	if !ok || !e.fresh(c.cfg.Now(), ttl) {
		return nil, false
	}
	c.hits.Add(1)
	return e.status, true
}

// peekStatus returns the cached entry of key from either table.
func (c *Cache) peekStatus(key string) (*statusEntry, bool) {
	if e, ok := c.statuses.Peek(key); ok {
		return e, true
	}
	return c.unknown.Peek(key)
}

func (c *Cache) refreshStatus(hash, ext, key string) (*statusEntry, error) {
	gen := c.gen.Load()
	prev, _ := c.peekStatus(key)
	client, err := c.getClient()
	if err == nil {
		ctx, cancel := context.WithTimeout(c.ctx, c.cfg.RequestTimeout)
		defer cancel()
		var st *BundleStatus
		c.calls.Add(1)
		st, err = client.BundleStatus(ctx, hash, ext)
		if isNotFound(err) {
			st, err = &BundleStatus{ContentHash: hash, Extension: ext}, nil
		}
		if err == nil {
			if cur, ok := c.peekStatus(key); ok && cur != prev && cur.fromFeed {
				// Revoked by the feed while we asked: the reply may predate it.
				return cur, nil
			}
			e := &statusEntry{status: st}
			c.confirmed(&e.entryState, gen)
			if st.Published {
				c.unknown.Remove(key)
				c.statuses.Add(key, e)
			} else {
				c.statuses.Remove(key)
				c.unknown.Add(key, e)
			}
			return e, nil
		}
	}
	var st *entryState
	if prev != nil {
		st = &prev.entryState
	}
	if c.servesStale(st, "bundle_status", err) {
		return prev, nil
	}
	return nil, ErrUnavailable
}

// startFeed follows the registry's change feed until Close.
func (c *Cache) startFeed() {
	c.feedWG.Add(1)
	go func() {
		defer c.feedWG.Done()
		var client *Client
		for client == nil {
			var err error
			if client, err = c.getClient(); err != nil {
				select {
				case <-c.ctx.Done():
					return
				case <-time.After(time.Second):
				}
			}
		}
		client.FollowChanges(c.ctx, c.apply, func(err error) {
			c.feedReconnects.Add(1)
			c.logger.Warn("change feed reconnecting", zap.Error(err))
			// Events may have been missed: revalidate everything, but keep
			// serving it if the registry stays down (staleness bound).
			c.MarkAllStale()
		})
	}()
}

// MarkAllStale makes every entry revalidate on next use; entries still
// serve within MaxStale if the registry is unreachable.
func (c *Cache) MarkAllStale() {
	c.gen.Add(1)
	for _, k := range c.installs.Keys() {
		if e, ok := c.installs.Peek(k); ok {
			e.stale.Store(true)
		}
	}
	for _, t := range []*lru.Cache[string, *statusEntry]{c.statuses, c.unknown} {
		for _, k := range t.Keys() {
			if e, ok := t.Peek(k); ok {
				e.stale.Store(true)
			}
		}
	}
}

// apply invalidates what a change event touches.
func (c *Cache) apply(ch Change) {
	c.feedEvents.Add(1)
	c.gen.Add(1)
	switch ch.Type {
	case ChangeInstall, ChangeDeprecated:
		for _, k := range c.installs.Keys() {
			tenant, ext, _ := strings.Cut(k, "\x00")
			if (ch.TenantID == "" || ch.TenantID == tenant) && (ch.Extension == "" || ch.Extension == ext) {
				if e, ok := c.installs.Peek(k); ok {
					e.invalid.Store(true)
				}
			}
		}
	case ChangeRevoked:
		c.applyRevoked(ch)
	default:
		// Unknown events: be safe and revalidate everything.
		c.MarkAllStale()
	}
}

// applyRevoked refuses a revoked hash at once: its statuses are answered
// from the event (no registry call; a revoked version stays revoked), and
// installs that run it must resolve again.
func (c *Cache) applyRevoked(ch Change) {
	for _, k := range c.installs.Keys() {
		e, ok := c.installs.Peek(k)
		if !ok {
			continue
		}
		_, ext, _ := strings.Cut(k, "\x00")
		if ch.ContentHash == "" && ch.Extension == ext ||
			e.install != nil && e.install.ContentHash == ch.ContentHash {
			e.invalid.Store(true)
		}
	}
	if ch.ContentHash == "" {
		for _, k := range c.statuses.Keys() {
			if _, ext, _ := strings.Cut(k, "\x00"); ext == ch.Extension {
				if e, ok := c.statuses.Peek(k); ok {
					e.invalid.Store(true)
				}
			}
		}
		return
	}
	now := c.cfg.Now()
	revoke := func(key string, st BundleStatus) {
		st.Revoked = true
		e := &statusEntry{status: &st, fromFeed: true}
		e.validated = now
		c.statuses.Add(key, e)
	}
	for _, k := range c.statuses.Keys() {
		if hash, _, _ := strings.Cut(k, "\x00"); hash == ch.ContentHash {
			if e, ok := c.statuses.Peek(k); ok {
				revoke(k, *e.status)
			}
		}
	}
	if ch.Extension != "" {
		key := statusKey(ch.ContentHash, ch.Extension)
		if _, ok := c.statuses.Peek(key); !ok {
			revoke(key, BundleStatus{ContentHash: ch.ContentHash, Extension: ch.Extension, Published: true})
		}
	}
	if c.cfg.OnRevoked != nil {
		c.cfg.OnRevoked(ch.ContentHash)
	}
}
