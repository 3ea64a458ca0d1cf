package registryapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/extedge/extedge/internal/manifest"
	"github.com/extedge/extedge/internal/testenv"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time          { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// registry is an httptest server speaking the registryapi contract; it
// stands in for registryd in these unit tests of the Cache so that they
// can count calls, hold replies and break the feed. The real registryd is
// behind the gateway's and runnerd's integration tests
// (caddymodule/e2e/registryd_test.go, runnerd/registry_integration_test.go).
type registry struct {
	*httptest.Server
	down      atomic.Bool
	installed atomic.Bool
	published atomic.Bool
	resolves  atomic.Int64
	statuses  atomic.Int64
	notMod    atomic.Int64
	changes   chan Change
	// unknownPrefix, when set before the first request, makes hashes
	// with that prefix "not a published version".
	unknownPrefix string
	// hold, when set, blocks resolve and status replies until closed.
	hold atomic.Pointer[chan struct{}]
}

func newRegistry(t *testing.T) *registry {
	r := &registry{changes: make(chan Change, 8)}
	r.installed.Store(true)
	r.published.Store(true)
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if r.down.Load() {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		if h := r.hold.Load(); h != nil && req.URL.Path != "/v1/changes" {
			<-*h
		}
		switch {
		case strings.HasPrefix(req.URL.Path, "/v1/resolve/"):
			r.resolves.Add(1)
			if !r.installed.Load() {
				w.WriteHeader(404)
				fmt.Fprint(w, `{"error":{"code":"not_installed","message":"x"}}`)
				return
			}
			if req.Header.Get("If-None-Match") == `"v1"` {
				r.notMod.Add(1)
				w.WriteHeader(http.StatusNotModified)
				return
			}
			w.Header().Set("ETag", `"v1"`)
			json.NewEncoder(w).Encode(Resolved{InstallID: "i1", Status: "enabled", ContentHash: "sha256:aa",
				Endpoints: []manifest.Endpoint{{Method: "GET", Path: "/x", Handler: "h"}}})
		case req.URL.Path == "/v1/changes":
			w.WriteHeader(200)
			w.(http.Flusher).Flush()
			for {
				select {
				case <-req.Context().Done():
					return
				case ch := <-r.changes:
					WriteChange(w, ch)
					w.(http.Flusher).Flush()
				}
			}
		default:
			r.statuses.Add(1)
			hash := strings.TrimSuffix(strings.TrimPrefix(req.URL.Path, "/v1/bundles/"), "/status")
			unknown := r.unknownPrefix != "" && strings.HasPrefix(hash, r.unknownPrefix)
			json.NewEncoder(w).Encode(BundleStatus{ContentHash: hash, Extension: req.URL.Query().Get("extension"),
				Published: r.published.Load() && !unknown})
		}
	}))
	t.Cleanup(r.Close)
	return r
}

// holdReplies blocks resolve and status replies until release is called
// (at the latest when the test ends, so that the server can close).
func (r *registry) holdReplies(t *testing.T) (release func()) {
	ch := make(chan struct{})
	r.hold.Store(&ch)
	var once sync.Once
	release = func() { once.Do(func() { close(ch) }) }
	t.Cleanup(release)
	return release
}

func newCache(t *testing.T, r *registry, clk *clock) *Cache {
	c := NewCache(CacheConfig{
		Client:   func() (*Client, error) { return New(r.URL, "t", nil), nil },
		TTL:      10 * time.Second,
		MaxStale: time.Minute,
		Now:      clk.Now,
	})
	t.Cleanup(func() { c.Close() })
	return c
}

func TestResolveCaching(t *testing.T) {
	ctx := context.Background()
	r := newRegistry(t)
	clk := &clock{t: time.Unix(1e9, 0)}
	c := newCache(t, r, clk)

	t.Run("first resolve asks the registry and compiles the router", func(t *testing.T) {
		inst, err := c.Resolve(ctx, "t1", "com.a.b")
		if err != nil || inst.InstallID != "i1" || inst.Router == nil {
			t.Fatalf("got %+v, %v", inst, err)
		}
	})
	t.Run("within the TTL the cache answers", func(t *testing.T) {
		before := r.resolves.Load()
		clk.Advance(9 * time.Second)
		if _, err := c.Resolve(ctx, "t1", "com.a.b"); err != nil {
			t.Fatal(err)
		}
		if r.resolves.Load() != before {
			t.Fatal("registry asked within TTL")
		}
	})
	t.Run("after the TTL it revalidates with the ETag", func(t *testing.T) {
		clk.Advance(2 * time.Second)
		if _, err := c.Resolve(ctx, "t1", "com.a.b"); err != nil {
			t.Fatal(err)
		}
		if r.notMod.Load() != 1 {
			t.Fatalf("304 revalidations = %d, want 1", r.notMod.Load())
		}
	})
	t.Run("registry down: cached entry keeps serving within the staleness bound", func(t *testing.T) {
		r.down.Store(true)
		clk.Advance(30 * time.Second)
		if _, err := c.Resolve(ctx, "t1", "com.a.b"); err != nil {
			t.Fatalf("stale entry not served: %v", err)
		}
	})
	t.Run("registry down beyond the staleness bound fails closed", func(t *testing.T) {
		clk.Advance(31 * time.Second)
		if _, err := c.Resolve(ctx, "t1", "com.a.b"); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("err = %v, want ErrUnavailable", err)
		}
	})
	t.Run("registry down and nothing cached is unavailable", func(t *testing.T) {
		if _, err := c.Resolve(ctx, "t2", "com.a.b"); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("not installed is cached briefly", func(t *testing.T) {
		r.down.Store(false)
		r.installed.Store(false)
		if _, err := c.Resolve(ctx, "t3", "com.a.b"); !errors.Is(err, ErrNotInstalled) {
			t.Fatalf("err = %v", err)
		}
		r.installed.Store(true)
		if _, err := c.Resolve(ctx, "t3", "com.a.b"); !errors.Is(err, ErrNotInstalled) {
			t.Fatal("negative answer not cached")
		}
		clk.Advance(6 * time.Second)
		if _, err := c.Resolve(ctx, "t3", "com.a.b"); err != nil {
			t.Fatalf("negative answer outlived its TTL: %v", err)
		}
	})
}

func TestConcurrentMissesShareOneRegistryCall(t *testing.T) {
	const n = 50
	for _, tc := range []struct {
		name   string
		lookup func(*Cache) error
		calls  func(*registry) int64
	}{
		{"concurrent resolves of one install share one registry call",
			func(c *Cache) error { _, err := c.Resolve(context.Background(), "t", "com.a.b"); return err },
			func(r *registry) int64 { return r.resolves.Load() }},
		{"concurrent status lookups of one hash share one registry call",
			func(c *Cache) error {
				_, err := c.BundleStatus(context.Background(), "sha256:aa", "com.a.b")
				return err
			},
			func(r *registry) int64 { return r.statuses.Load() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRegistry(t)
			c := newCache(t, r, &clock{t: time.Unix(1e9, 0)})
			// Hold the registry's reply until every lookup has missed, so
			// that all of them wait on the one call in flight.
			release := r.holdReplies(t)
			errs := make(chan error, n)
			for i := 0; i < n; i++ {
				go func() { errs <- tc.lookup(c) }()
			}
			testenv.WaitFor(t, 5*time.Second, func() error {
				if m := c.Stats().Misses; m < n {
					return fmt.Errorf("%d of %d lookups missed so far", m, n)
				}
				return nil
			})
			release()
			for i := 0; i < n; i++ {
				if err := <-errs; err != nil {
					t.Fatal(err)
				}
			}
			if got := tc.calls(r); got != 1 {
				t.Fatalf("%d registry calls for %d concurrent misses, want 1", got, n)
			}
			if got := c.Stats().RegistryCalls; got != 1 {
				t.Fatalf("Stats().RegistryCalls = %d, want 1", got)
			}
		})
	}
}

func TestCallerContextEndsItsWaitOnly(t *testing.T) {
	r := newRegistry(t)
	c := newCache(t, r, &clock{t: time.Unix(1e9, 0)})
	release := r.holdReplies(t)
	patient := make(chan error, 1)
	go func() { _, err := c.Resolve(context.Background(), "t1", "com.a.b"); patient <- err }()
	testenv.WaitFor(t, 5*time.Second, func() error {
		if c.Stats().RegistryCalls == 0 {
			return errors.New("resolve not in flight yet")
		}
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := c.Resolve(ctx, "t1", "com.a.b"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("impatient caller: err = %v, want its deadline", err)
	}
	release()
	if err := <-patient; err != nil {
		t.Fatalf("the shared call failed with another caller's deadline: %v", err)
	}
	if n := r.resolves.Load(); n != 1 {
		t.Fatalf("%d registry calls, want 1", n)
	}
}

func TestLRUBoundsEachTable(t *testing.T) {
	ctx := context.Background()
	r := newRegistry(t)
	c := NewCache(CacheConfig{
		Client:     func() (*Client, error) { return New(r.URL, "t", nil), nil },
		MaxEntries: 3,
		Now:        (&clock{t: time.Unix(1e9, 0)}).Now,
	})
	t.Cleanup(func() { c.Close() })
	for i := 0; i < 5; i++ {
		if _, err := c.Resolve(ctx, fmt.Sprintf("t%d", i), "com.a.b"); err != nil {
			t.Fatal(err)
		}
		if _, err := c.BundleStatus(ctx, fmt.Sprintf("sha256:%02d", i), "com.a.b"); err != nil {
			t.Fatal(err)
		}
	}
	if st := c.Stats(); st.Installs != 3 || st.BundleStatuses != 3 {
		t.Fatalf("tables hold %d installs and %d statuses, want 3 each", st.Installs, st.BundleStatuses)
	}
	t.Run("the most recent entries stay", func(t *testing.T) {
		before := r.resolves.Load()
		if _, err := c.Resolve(ctx, "t4", "com.a.b"); err != nil || r.resolves.Load() != before {
			t.Fatalf("recent install asked again: %v", err)
		}
	})
	t.Run("the least recently used entry was evicted and is asked again", func(t *testing.T) {
		before := r.statuses.Load()
		if _, err := c.BundleStatus(ctx, "sha256:00", "com.a.b"); err != nil || r.statuses.Load() != before+1 {
			t.Fatalf("evicted status not asked again: %v", err)
		}
	})
}

// TestUnknownHashesNeverEvictKnownStatuses: made-up hashes (anyone can
// send them to /ext-ui) fill a table of their own, so a real version's
// status stays cached and CachedBundleStatus answers it without I/O.
func TestUnknownHashesNeverEvictKnownStatuses(t *testing.T) {
	ctx := context.Background()
	r := newRegistry(t)
	r.unknownPrefix = "sha256:ff"
	c := NewCache(CacheConfig{
		Client:     func() (*Client, error) { return New(r.URL, "t", nil), nil },
		MaxEntries: 4, MaxUnknown: 8,
		Now: (&clock{t: time.Unix(1e9, 0)}).Now,
	})
	t.Cleanup(func() { c.Close() })
	if _, ok := c.CachedBundleStatus("sha256:aa", "com.a.b"); ok {
		t.Fatal("CachedBundleStatus answered before any lookup")
	}
	if st, err := c.BundleStatus(ctx, "sha256:aa", "com.a.b"); err != nil || !st.Usable() {
		t.Fatalf("known hash: %+v, %v", st, err)
	}
	for i := 0; i < 100; i++ {
		if st, err := c.BundleStatus(ctx, fmt.Sprintf("sha256:ff%04d", i), "com.a.b"); err != nil || st.Published {
			t.Fatalf("unknown hash %d: %+v, %v", i, st, err)
		}
	}
	st := c.Stats()
	if st.BundleStatuses != 1 || st.UnknownStatuses != 8 {
		t.Fatalf("tables hold %d known and %d unknown statuses, want 1 and 8", st.BundleStatuses, st.UnknownStatuses)
	}
	before := r.statuses.Load()
	got, ok := c.CachedBundleStatus("sha256:aa", "com.a.b")
	if !ok || !got.Usable() || r.statuses.Load() != before {
		t.Fatalf("known status after 100 unknown lookups: %+v, %v (registry asked %d times)", got, ok, r.statuses.Load()-before)
	}
	if _, ok := c.CachedBundleStatus("sha256:ff0099", "com.a.b"); !ok {
		t.Fatal("the newest unknown answer is not cached")
	}
}

func TestBundleStatusCaching(t *testing.T) {
	ctx := context.Background()
	r := newRegistry(t)
	clk := &clock{t: time.Unix(1e9, 0)}
	c := newCache(t, r, clk)
	lookup := func() (*BundleStatus, error) { return c.BundleStatus(ctx, "sha256:aa", "com.a.b") }

	t.Run("within the TTL the cache answers", func(t *testing.T) {
		if st, err := lookup(); err != nil || !st.Usable() {
			t.Fatalf("got %+v, %v", st, err)
		}
		clk.Advance(9 * time.Second)
		if _, err := lookup(); err != nil || r.statuses.Load() != 1 {
			t.Fatalf("registry asked within TTL: %d calls, %v", r.statuses.Load(), err)
		}
	})
	t.Run("after the TTL it asks again", func(t *testing.T) {
		clk.Advance(2 * time.Second)
		if _, err := lookup(); err != nil || r.statuses.Load() != 2 {
			t.Fatalf("%d calls, %v", r.statuses.Load(), err)
		}
	})
	t.Run("registry down: the answer keeps serving within max-stale", func(t *testing.T) {
		r.down.Store(true)
		clk.Advance(59 * time.Second)
		if st, err := lookup(); err != nil || !st.Usable() {
			t.Fatalf("stale status not served: %+v, %v", st, err)
		}
	})
	t.Run("registry down past max-stale fails closed", func(t *testing.T) {
		clk.Advance(2 * time.Second)
		if _, err := lookup(); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("err = %v, want ErrUnavailable", err)
		}
		r.down.Store(false)
	})
	t.Run("not a published version is cached for the negative TTL only", func(t *testing.T) {
		r.published.Store(false)
		if st, err := c.BundleStatus(ctx, "sha256:bb", "com.a.b"); err != nil || st.Published {
			t.Fatalf("got %+v, %v", st, err)
		}
		r.published.Store(true)
		clk.Advance(4 * time.Second)
		if st, _ := c.BundleStatus(ctx, "sha256:bb", "com.a.b"); st.Published {
			t.Fatal("negative answer not cached")
		}
		clk.Advance(2 * time.Second)
		if st, err := c.BundleStatus(ctx, "sha256:bb", "com.a.b"); err != nil || !st.Published {
			t.Fatalf("negative answer outlived its TTL: %+v, %v", st, err)
		}
	})
}

func TestRevokedEventRefusesWithoutAsking(t *testing.T) {
	ctx := context.Background()
	r := newRegistry(t)
	revoked := make(chan string, 1)
	c := NewCache(CacheConfig{
		Client:    func() (*Client, error) { return New(r.URL, "t", nil), nil },
		Now:       (&clock{t: time.Unix(1e9, 0)}).Now,
		OnRevoked: func(hash string) { revoked <- hash },
	})
	t.Cleanup(func() { c.Close() })
	if st, err := c.BundleStatus(ctx, "sha256:aa", "com.a.b"); err != nil || !st.Usable() {
		t.Fatalf("got %+v, %v", st, err)
	}
	testenv.WaitFor(t, 5*time.Second, func() error {
		select {
		case r.changes <- Change{ID: 7, Type: ChangeRevoked, Extension: "com.a.b", ContentHash: "sha256:aa"}:
		default:
		}
		if c.Stats().FeedEvents == 0 {
			return errors.New("event not applied yet")
		}
		return nil
	})
	if h := <-revoked; h != "sha256:aa" {
		t.Fatalf("OnRevoked(%q)", h)
	}
	// Still "published" per the registry, and the registry is down: the
	// event alone decides.
	r.down.Store(true)
	calls := r.statuses.Load()
	if st, err := c.BundleStatus(ctx, "sha256:aa", "com.a.b"); err != nil || !st.Revoked || st.Usable() {
		t.Fatalf("revoked hash: %+v, %v", st, err)
	}
	if r.statuses.Load() != calls {
		t.Fatal("registry asked about a hash the feed revoked")
	}
}

func TestChangeFeedInvalidates(t *testing.T) {
	ctx := context.Background()
	r := newRegistry(t)
	clk := &clock{t: time.Unix(1e9, 0)}
	c := newCache(t, r, clk)
	if _, err := c.Resolve(ctx, "t1", "com.a.b"); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 5*time.Second, func() error {
		// the feed goroutine connects asynchronously; send until applied
		select {
		case r.changes <- Change{ID: 1, Type: ChangeInstall, TenantID: "t1", Extension: "com.a.b"}:
		default:
		}
		if c.Stats().FeedEvents == 0 {
			return errors.New("event not applied yet")
		}
		return nil
	})
	r.installed.Store(false)
	// Well within the TTL, but invalidated: the next resolve asks again.
	if _, err := c.Resolve(ctx, "t1", "com.a.b"); !errors.Is(err, ErrNotInstalled) {
		t.Fatalf("err = %v, want the fresh not-installed answer", err)
	}
}

func TestInvalidatedEntryIsNotServedStale(t *testing.T) {
	ctx := context.Background()
	r := newRegistry(t)
	c := newCache(t, r, &clock{t: time.Unix(1e9, 0)})
	c.Resolve(ctx, "t1", "com.a.b")
	c.apply(Change{Type: ChangeRevoked, ContentHash: "sha256:aa"})
	r.down.Store(true)
	if _, err := c.Resolve(ctx, "t1", "com.a.b"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("revoked entry served while registry down: %v", err)
	}
}

func TestReconnectMarksStaleButServable(t *testing.T) {
	ctx := context.Background()
	r := newRegistry(t)
	c := newCache(t, r, &clock{t: time.Unix(1e9, 0)})
	c.Resolve(ctx, "t1", "com.a.b")
	c.MarkAllStale()
	r.down.Store(true)
	if _, err := c.Resolve(ctx, "t1", "com.a.b"); err != nil {
		t.Fatalf("stale (not invalidated) entry not served while down: %v", err)
	}
}
