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

// registry is an httptest server speaking the registryapi contract.
type registry struct {
	*httptest.Server
	down      atomic.Bool
	installed atomic.Bool
	resolves  atomic.Int64
	notMod    atomic.Int64
	changes   chan Change
}

func newRegistry(t *testing.T) *registry {
	r := &registry{changes: make(chan Change, 8)}
	r.installed.Store(true)
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if r.down.Load() {
			w.WriteHeader(http.StatusBadGateway)
			return
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
					b, _ := json.Marshal(ch)
					fmt.Fprintf(w, "id: %d\ndata: %s\n\n", ch.ID, b)
					w.(http.Flusher).Flush()
				}
			}
		default:
			json.NewEncoder(w).Encode(BundleStatus{Published: true})
		}
	}))
	t.Cleanup(r.Close)
	return r
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
	r := newRegistry(t)
	c := newCache(t, r, &clock{t: time.Unix(1e9, 0)})
	var wg sync.WaitGroup
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); c.Resolve(context.Background(), "t", "com.a.b") }()
	}
	wg.Wait()
	if n := r.resolves.Load(); n > 2 {
		t.Fatalf("%d registry calls for 50 concurrent misses", n)
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
