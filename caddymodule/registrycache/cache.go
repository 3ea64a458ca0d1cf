// Package registrycache is the gateway's cache of registry answers (SPEC
// §7.5): resolved installs per (tenant, extension) and bundle status per
// (content hash, extension). Entries expire after a TTL and are
// revalidated with ETags; the registry's change feed invalidates them
// within about a second; while the registry is unreachable, entries keep
// serving up to a staleness bound and then fail closed.
package registrycache

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
	"github.com/extedge/extedge/internal/registryapi"
)

// Errors of Resolve and BundleStatus.
var (
	// ErrNotInstalled: no enabled install of that extension for the tenant.
	ErrNotInstalled = errors.New("not installed")
	// ErrUnavailable: the registry cannot be asked and nothing usable is cached.
	ErrUnavailable = errors.New("registry unavailable")
)

// Config configures a Cache.
type Config struct {
	// Client returns the registry client; called until it succeeds, so a
	// token file may appear after start. Required.
	Client func() (*registryapi.Client, error)
	// TTL is how long an answer is used without asking the registry
	// again. Default 30s.
	TTL time.Duration
	// NegativeTTL is the TTL of "not installed" answers. Default 5s.
	NegativeTTL time.Duration
	// MaxStale bounds how old (since the registry last confirmed it) an
	// entry may be when the registry is unreachable. Default 5m.
	MaxStale time.Duration
	// MaxEntries bounds each of the two caches. Default 50000.
	MaxEntries int
	// RequestTimeout bounds one registry call. Default 5s.
	RequestTimeout time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logger may be nil.
	Logger *zap.Logger
}

// Install is a resolved install with its compiled endpoint router.
type Install struct {
	*registryapi.Resolved
	Router *manifest.Router
}

// Cache is safe for concurrent use. It does no I/O until first used.
type Cache struct {
	cfg    Config
	logger *zap.Logger

	clientMu sync.Mutex
	client   *registryapi.Client

	installs *lru.Cache[string, *installEntry]
	statuses *lru.Cache[string, *statusEntry]
	sf       singleflight.Group

	feedOnce sync.Once
	ctx      context.Context
	cancel   context.CancelFunc
	feedWG   sync.WaitGroup

	hits, misses, staleHits, failures atomic.Int64
	feedEvents, feedReconnects        atomic.Int64
}

type entryState struct {
	validated time.Time   // when the registry last confirmed this answer
	stale     atomic.Bool // revalidate before next use (TTL or feed reconnect)
	invalid   atomic.Bool // changed per the feed: never serve without asking
}

type installEntry struct {
	entryState
	install *Install // nil: not installed
	etag    string
}

type statusEntry struct {
	entryState
	status *registryapi.BundleStatus
}

// New returns a cache; it does no I/O.
func New(cfg Config) *Cache {
	if cfg.TTL <= 0 {
		cfg.TTL = 30 * time.Second
	}
	if cfg.NegativeTTL <= 0 {
		cfg.NegativeTTL = 5 * time.Second
	}
	if cfg.MaxStale <= 0 {
		cfg.MaxStale = 5 * time.Minute
	}
	if cfg.MaxEntries <= 0 {
		cfg.MaxEntries = 50_000
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = 5 * time.Second
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
	c.ctx, c.cancel = context.WithCancel(context.Background())
	return c
}

// Stats are counters for the admin API.
type Stats struct {
	Installs       int   `json:"installs"`
	BundleStatuses int   `json:"bundle_statuses"`
	Hits           int64 `json:"hits"`
	Misses         int64 `json:"misses"`
	// HitRate is Hits / (Hits + Misses), 0 before any lookup.
	HitRate        float64 `json:"hit_rate"`
	StaleHits      int64   `json:"stale_hits"`
	Failures       int64   `json:"failures"`
	FeedEvents     int64   `json:"feed_events"`
	FeedReconnects int64   `json:"feed_reconnects"`
}

// Stats reports sizes and counters.
func (c *Cache) Stats() Stats {
	st := Stats{Installs: c.installs.Len(), BundleStatuses: c.statuses.Len(),
		Hits: c.hits.Load(), Misses: c.misses.Load(), StaleHits: c.staleHits.Load(),
		Failures: c.failures.Load(), FeedEvents: c.feedEvents.Load(), FeedReconnects: c.feedReconnects.Load()}
	if n := st.Hits + st.Misses; n > 0 {
		st.HitRate = float64(st.Hits) / float64(n)
	}
	return st
}

// Close stops the change feed.
func (c *Cache) Close() error {
	c.cancel()
	c.feedWG.Wait()
	return nil
}

// Destruct implements caddy.Destructor for usage pools.
func (c *Cache) Destruct() error { return c.Close() }

func (c *Cache) getClient() (*registryapi.Client, error) {
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

func installKey(tenant, ext string) string { return tenant + "\x00" + ext }

// Resolve returns the install of ext for tenant.
func (c *Cache) Resolve(ctx context.Context, tenant, ext string) (*Install, error) {
	c.feedOnce.Do(c.startFeed)
	key := installKey(tenant, ext)
	now := c.cfg.Now()
	e, ok := c.installs.Get(key)
	if ok {
		ttl := c.cfg.TTL
		if e.install == nil {
			ttl = c.cfg.NegativeTTL
		}
		if e.fresh(now, ttl) {
			c.hits.Add(1)
			return e.result()
		}
	}
	c.misses.Add(1)
	v, err, _ := c.sf.Do(key, func() (any, error) { return c.refreshInstall(tenant, ext, key) })
	if err != nil {
		return nil, err
	}
	return v.(*installEntry).result()
}

func (e *installEntry) result() (*Install, error) {
	if e.install == nil {
		return nil, ErrNotInstalled
	}
	return e.install, nil
}

func (c *Cache) refreshInstall(tenant, ext, key string) (*installEntry, error) {
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
	res, newETag, notModified, err := client.Resolve(ctx, tenant, ext, etag)
	now := c.cfg.Now()
	switch {
	case err == nil && notModified && prev != nil:
		e := &installEntry{install: prev.install, etag: prev.etag}
		e.validated = now
		c.installs.Add(key, e)
		return e, nil
	case err == nil && res != nil:
		if res.Status != "" && res.Status != "enabled" {
			return c.storeNotInstalled(key, now), nil
		}
		router, rerr := manifest.NewRouter(res.Endpoints)
		if rerr != nil {
			// A published manifest always compiles; refuse rather than guess.
			c.logger.Error("registry returned endpoints that do not compile",
				zap.String("extension", ext), zap.Error(rerr))
			return c.installUnavailable(prev, rerr)
		}
		e := &installEntry{install: &Install{Resolved: res, Router: router}, etag: newETag}
		e.validated = now
		c.installs.Add(key, e)
		return e, nil
	case isNotFound(err):
		return c.storeNotInstalled(key, now), nil
	case err == nil:
		err = errors.New("empty resolve reply")
	}
	return c.installUnavailable(prev, err)
}

func (c *Cache) storeNotInstalled(key string, now time.Time) *installEntry {
	e := &installEntry{}
	e.validated = now
	c.installs.Add(key, e)
	return e
}

func (c *Cache) installUnavailable(prev *installEntry, err error) (*installEntry, error) {
	c.failures.Add(1)
	now := c.cfg.Now()
	if prev != nil && prev.usableStale(now, c.cfg.MaxStale) {
		c.staleHits.Add(1)
		if ce := c.logger.Check(zap.WarnLevel, "registry unreachable, serving cached install"); ce != nil {
			ce.Write(zap.Error(err), zap.Duration("age", now.Sub(prev.validated)))
		}
		return prev, nil
	}
	c.logger.Warn("registry unreachable and no usable cached install", zap.Error(err))
	return nil, ErrUnavailable
}

func isNotFound(err error) bool {
	var ae *registryapi.APIError
	return errors.As(err, &ae) && (ae.Status == http.StatusNotFound || ae.Code == "not_installed")
}

// BundleStatus reports whether hash is a published, non-revoked version of
// ext.
func (c *Cache) BundleStatus(ctx context.Context, hash, ext string) (*registryapi.BundleStatus, error) {
	c.feedOnce.Do(c.startFeed)
	key := hash + "\x00" + ext
	now := c.cfg.Now()
	if e, ok := c.statuses.Get(key); ok && e.fresh(now, c.cfg.TTL) {
		c.hits.Add(1)
		return e.status, nil
	}
	c.misses.Add(1)
	v, err, _ := c.sf.Do("s\x00"+key, func() (any, error) { return c.refreshStatus(hash, ext, key) })
	if err != nil {
		return nil, err
	}
	return v.(*statusEntry).status, nil
}

func (c *Cache) refreshStatus(hash, ext, key string) (*statusEntry, error) {
	prev, _ := c.statuses.Peek(key)
	client, err := c.getClient()
	if err == nil {
		ctx, cancel := context.WithTimeout(c.ctx, c.cfg.RequestTimeout)
		defer cancel()
		var st *registryapi.BundleStatus
		st, err = client.BundleStatus(ctx, hash, ext)
		if isNotFound(err) {
			st, err = &registryapi.BundleStatus{ContentHash: hash, Extension: ext}, nil
		}
		if err == nil {
			e := &statusEntry{status: st}
			e.validated = c.cfg.Now()
			c.statuses.Add(key, e)
			return e, nil
		}
	}
	c.failures.Add(1)
	if prev != nil && prev.usableStale(c.cfg.Now(), c.cfg.MaxStale) {
		c.staleHits.Add(1)
		return prev, nil
	}
	c.logger.Warn("registry unreachable and no usable cached bundle status", zap.Error(err))
	return nil, ErrUnavailable
}

// startFeed follows the registry's change feed until Close.
func (c *Cache) startFeed() {
	c.feedWG.Add(1)
	go func() {
		defer c.feedWG.Done()
		var client *registryapi.Client
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
			// Events may have been missed: revalidate everything, but keep
			// serving it if the registry stays down (staleness bound).
			c.MarkAllStale()
		})
	}()
}

// MarkAllStale makes every entry revalidate on next use.
func (c *Cache) MarkAllStale() {
	for _, k := range c.installs.Keys() {
		if e, ok := c.installs.Peek(k); ok {
			e.stale.Store(true)
		}
	}
	for _, k := range c.statuses.Keys() {
		if e, ok := c.statuses.Peek(k); ok {
			e.stale.Store(true)
		}
	}
}

// apply invalidates what a change event touches.
func (c *Cache) apply(ch registryapi.Change) {
	c.feedEvents.Add(1)
	switch ch.Type {
	case registryapi.ChangeInstall, registryapi.ChangeDeprecated:
		for _, k := range c.installs.Keys() {
			tenant, ext, _ := strings.Cut(k, "\x00")
			if (ch.TenantID == "" || ch.TenantID == tenant) && (ch.Extension == "" || ch.Extension == ext) {
				if e, ok := c.installs.Peek(k); ok {
					e.invalid.Store(true)
				}
			}
		}
	case registryapi.ChangeRevoked:
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
		for _, k := range c.statuses.Keys() {
			hash, ext, _ := strings.Cut(k, "\x00")
			if hash == ch.ContentHash || ch.ContentHash == "" && ch.Extension == ext {
				if e, ok := c.statuses.Peek(k); ok {
					e.invalid.Store(true)
				}
			}
		}
	default:
		// Unknown events: be safe and revalidate everything.
		c.MarkAllStale()
	}
}
