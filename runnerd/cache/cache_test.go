package cache

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/extedge/extedge/internal/blobstore"
	"github.com/extedge/extedge/internal/execapi"
	"github.com/extedge/extedge/internal/registryapi"
	"github.com/extedge/extedge/internal/signing"
	"github.com/extedge/extedge/internal/testenv"
	"github.com/extedge/extedge/runnerd/engine"
	"github.com/extedge/extedge/runnerd/hostapi"
	hostlog "github.com/extedge/extedge/runnerd/hostapi/log"
	"github.com/extedge/extedge/runnerd/runnertest/bundletest"
	"github.com/extedge/extedge/runnerd/runnertest/guests"
)

const ext = "com.acme.test"

func newEngine(t testing.TB) *engine.Engine {
	t.Helper()
	set, err := hostapi.NewSet(hostlog.Capability{})
	if err != nil {
		t.Fatal(err)
	}
	e, err := engine.New(engine.Config{}, set)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	return e
}

// countingStore counts and optionally slows Gets of a real local store, so
// tests can see how often the blob store is hit.
type countingStore struct {
	blobstore.Store
	gets  atomic.Int64
	delay time.Duration
}

func (s *countingStore) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	if strings.HasSuffix(key, "bundle.tar.zst") {
		s.gets.Add(1)
		time.Sleep(s.delay)
	}
	return s.Store.Get(ctx, key)
}

type env struct {
	store *countingStore
	pub   *bundletest.Publisher
	dir   string
}

func newEnv(t *testing.T) *env {
	return &env{store: &countingStore{Store: bundletest.LocalStore(t)}, pub: bundletest.NewPublisher(t, "Acme Inc."), dir: t.TempDir()}
}

func (e *env) cache(t *testing.T, eng *engine.Engine, mutate func(*Config)) *Cache {
	t.Helper()
	cfg := Config{Dir: e.dir, Store: e.store, Trust: e.pub.Trust, Engine: eng}
	if mutate != nil {
		mutate(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func okFiles(t *testing.T) map[string][]byte {
	return map[string][]byte{
		"manifest.json":          bundletest.Manifest(ext, "Acme Inc.", "dist/handlers/ok"),
		"dist/handlers/ok.wasm":  guests.MustWasm(t, "ok.wat", nil),
		"ui/index.html":          []byte("<html></html>"),
		"precompiled/native.bin": []byte("not native code"),
	}
}

func runModule(t *testing.T, eng *engine.Engine, m *engine.Module, export string) *execapi.Response {
	t.Helper()
	inv := hostapi.NewInvocation(context.Background(), &execapi.Request{}, hostapi.Budgets{})
	res, err := eng.Run(context.Background(), m, export, []byte(`{}`), engine.Limits{}, inv)
	if err != nil {
		t.Fatal(err)
	}
	return res.Response
}

func codeOf(err error) string {
	if ee, ok := err.(*execapi.Error); ok {
		return ee.Code
	}
	if err == nil {
		return ""
	}
	return "not an execapi error: " + err.Error()
}

func TestFetchVerifyCompileRun(t *testing.T) {
	e := newEnv(t)
	hash := e.pub.Publish(t, e.store, okFiles(t))
	eng := newEngine(t)
	c := e.cache(t, eng, nil)
	m, export, err := c.Module(context.Background(), hash, ext, "dist/handlers/ok")
	if err != nil {
		t.Fatal(err)
	}
	if r := runModule(t, eng, m, export); r.Status != 201 {
		t.Fatalf("response %+v", r)
	}
	if _, _, err := c.Module(context.Background(), hash, ext, "dist/handlers/ok"); err != nil {
		t.Fatal(err)
	}
	got := c.Counters()
	if got.Fetches != 1 || got.Verifications != 1 || got.Compiles != 1 || got.MemoryHits != 1 {
		t.Fatalf("counters %+v", got)
	}
	dir := c.bundleDir(hash)
	for _, p := range []string{"ui/index.html", "precompiled/native.bin"} {
		if _, err := os.Stat(filepath.Join(dir, p)); !os.IsNotExist(err) {
			t.Errorf("%s was extracted; only dist/ and the manifest belong in the runner cache", p)
		}
	}
	t.Run("unknown handler module is a bad handler", func(t *testing.T) {
		_, _, err := c.Module(context.Background(), hash, ext, "dist/handlers/missing")
		if codeOf(err) != execapi.CodeBadHandler {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("hash of another extension is refused", func(t *testing.T) {
		_, _, err := c.Module(context.Background(), hash, "com.other.ext", "dist/handlers/ok")
		if codeOf(err) != execapi.CodeIntegrityFailed {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestConcurrentColdRequestsShareOneFetchAndOneCompile(t *testing.T) {
	e := newEnv(t)
	e.store.delay = 100 * time.Millisecond // keep the first fetch in flight while the others arrive
	hash := e.pub.Publish(t, e.store, okFiles(t))
	c := e.cache(t, newEngine(t), nil)
	const n = 16
	var wg sync.WaitGroup
	errs := make(chan error, n)
	start := make(chan struct{})
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, _, err := c.Module(context.Background(), hash, ext, "dist/handlers/ok")
			errs <- err
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	got := c.Counters()
	if e.store.gets.Load() != 1 || got.Fetches != 1 || got.Compiles != 1 {
		t.Fatalf("%d concurrent cold requests: %d blob gets, counters %+v; want one fetch and one compile", n, e.store.gets.Load(), got)
	}
}

func TestCompiledModuleSurvivesRestart(t *testing.T) {
	e := newEnv(t)
	hash := e.pub.Publish(t, e.store, okFiles(t))
	first := e.cache(t, newEngine(t), nil)
	if _, _, err := first.Module(context.Background(), hash, ext, "dist/handlers/ok"); err != nil {
		t.Fatal(err)
	}
	// A fresh runner: new engine, new cache over the same directory.
	// Modules of another engine fingerprint are garbage to it.
	stale := filepath.Join(e.dir, "compiled", "0123456789abcdef", "x.cwasm")
	os.MkdirAll(filepath.Dir(stale), 0o750)
	os.WriteFile(stale, []byte("old engine"), 0o640)
	eng := newEngine(t)
	second := e.cache(t, eng, nil)
	start := time.Now()
	m, export, err := second.Module(context.Background(), hash, ext, "dist/handlers/ok")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("cold start from disk cache: %v", time.Since(start))
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Error("module of another engine fingerprint kept")
	}
	got := second.Counters()
	if got.Fetches != 0 || got.Compiles != 0 || got.DiskHits != 1 || got.BundleDiskHits != 1 {
		t.Fatalf("restart counters %+v; want a disk hit and no fetch or compile", got)
	}
	if r := runModule(t, eng, m, export); r.Status != 201 {
		t.Fatalf("deserialized module answered %+v", r)
	}
	t.Run("corrupt serialized module falls back to compiling", func(t *testing.T) {
		// Replace (never truncate in place: the running module maps the
		// file, and the cache itself only ever renames new files in).
		cpath := second.compiledPath(hash, "dist/handlers/ok.wasm")
		if err := os.WriteFile(cpath+".new", []byte("garbage"), 0o640); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(cpath+".new", cpath); err != nil {
			t.Fatal(err)
		}
		third := e.cache(t, newEngine(t), nil)
		if _, _, err := third.Module(context.Background(), hash, ext, "dist/handlers/ok"); err != nil {
			t.Fatal(err)
		}
		if got := third.Counters(); got.Compiles != 1 || got.DiskHits != 0 {
			t.Fatalf("counters %+v", got)
		}
	})
}

func TestIntegrityFailures(t *testing.T) {
	e := newEnv(t)
	files := okFiles(t)
	archive, hash := bundletest.Pack(t, files)
	good, _ := signing.Sign(e.pub.Key, hash)
	other := bundletest.NewPublisher(t, "Acme Inc.")
	otherSig, _ := signing.Sign(other.Key, hash)
	mismatch := bundletest.NewPublisher(t, "Evil Corp")
	mismatchSig, _ := signing.Sign(mismatch.Key, hash)

	tamperedArchive := append([]byte(nil), archive...)
	tamperedArchive[len(tamperedArchive)/2] ^= 0xff
	tests := []struct {
		name    string
		archive []byte
		sig     []byte
		trust   *signing.TrustBundle
		code    string
	}{
		{"tampered bundle fails the hash check", tamperedArchive, good.Marshal(), e.pub.Trust, execapi.CodeIntegrityFailed},
		{"missing signature is refused", archive, nil, e.pub.Trust, execapi.CodeIntegrityFailed},
		{"malformed signature is refused", archive, []byte(`{"v":1}`), e.pub.Trust, execapi.CodeIntegrityFailed},
		{"untrusted key is refused", archive, otherSig.Marshal(), e.pub.Trust, execapi.CodeIntegrityFailed},
		{"key bound to another publisher is refused", archive, mismatchSig.Marshal(), mismatch.Trust, execapi.CodeIntegrityFailed},
		{"bundle missing from the store is unavailable", nil, good.Marshal(), e.pub.Trust, execapi.CodeBundleUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := bundletest.LocalStore(t)
			bundletest.Put(t, store, hash, tt.archive, files["manifest.json"], tt.sig)
			dir := t.TempDir()
			c, err := New(Config{Dir: dir, Store: store, Trust: tt.trust, Engine: newEngine(t)})
			if err != nil {
				t.Fatal(err)
			}
			_, _, err = c.Module(context.Background(), hash, ext, "dist/handlers/ok")
			if codeOf(err) != tt.code {
				t.Fatalf("err = %v, want %s", err, tt.code)
			}
			ents, _ := os.ReadDir(filepath.Join(dir, "bundles"))
			staged, _ := os.ReadDir(filepath.Join(dir, "staging"))
			if len(ents)+len(staged) != 0 {
				t.Fatalf("failed verification left %d bundle and %d staging entries", len(ents), len(staged))
			}
		})
	}
}

// statusRegistry implements GET /v1/bundles/{hash}/status and the
// /v1/changes feed of the registryapi contract. It stands in for registryd
// in this unit test so that it can count calls, go down and break the
// feed; the real registryd is exercised by TestWithRealRegistryd
// (runnerd/registry_integration_test.go), revocation included.
type statusRegistry struct {
	mu        sync.Mutex
	revoked   map[string]bool
	down      bool
	calls     int // status requests
	feedConns int // change-feed connections so far

	changes   chan registryapi.Change
	breakFeed chan struct{} // a send ends the current feed connection
}

func newStatusRegistry() *statusRegistry {
	return &statusRegistry{revoked: map[string]bool{}, changes: make(chan registryapi.Change, 8), breakFeed: make(chan struct{})}
}

func (s *statusRegistry) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	if s.down {
		s.mu.Unlock()
		http.Error(w, "down", http.StatusBadGateway)
		return
	}
	if r.URL.Path == "/v1/changes" {
		s.feedConns++
		s.mu.Unlock()
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		for {
			select {
			case <-r.Context().Done():
				return
			case <-s.breakFeed:
				return
			case ch := <-s.changes:
				registryapi.WriteChange(w, ch)
				w.(http.Flusher).Flush()
			}
		}
	}
	defer s.mu.Unlock()
	s.calls++
	hash := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/v1/bundles/"), "/status")
	json.NewEncoder(w).Encode(registryapi.BundleStatus{ContentHash: hash, Extension: r.URL.Query().Get("extension"),
		Published: true, Revoked: s.revoked[hash]})
}

func (s *statusRegistry) set(f func(*statusRegistry)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(s)
}

func (s *statusRegistry) count() (calls, feedConns int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls, s.feedConns
}

func TestRevocation(t *testing.T) {
	e := newEnv(t)
	hash := e.pub.Publish(t, e.store, okFiles(t))
	reg := newStatusRegistry()
	srv := httptest.NewServer(reg)
	t.Cleanup(srv.Close) // after the caches' Close (cleanups run last first)
	now := time.Now()
	var clock atomic.Int64
	clock.Store(now.UnixNano())
	registry := func(ttl, maxStale time.Duration) *registryapi.CacheConfig {
		return &registryapi.CacheConfig{
			Client:   func() (*registryapi.Client, error) { return registryapi.New(srv.URL, "svc", nil), nil },
			TTL:      ttl,
			MaxStale: maxStale,
		}
	}
	c := e.cache(t, newEngine(t), func(cfg *Config) {
		// MaxStale counts from the last confirmation: TTL 1m + 1m stale.
		cfg.Registry = registry(time.Minute, 2*time.Minute)
		cfg.Now = func() time.Time { return time.Unix(0, clock.Load()) }
	})
	get := func() error {
		_, _, err := c.Module(context.Background(), hash, ext, "dist/handlers/ok")
		return err
	}
	if err := get(); err != nil {
		t.Fatal(err)
	}
	if err := get(); err != nil {
		t.Fatal(err)
	}
	if calls, _ := reg.count(); calls != 1 {
		t.Fatalf("status not cached: %d checks", calls)
	}
	t.Run("registry down within the staleness bound keeps serving", func(t *testing.T) {
		reg.set(func(s *statusRegistry) { s.down = true })
		clock.Add(int64(90 * time.Second))
		if err := get(); err != nil {
			t.Fatalf("stale status refused: %v", err)
		}
		clock.Add(int64(2 * time.Minute))
		if err := get(); codeOf(err) != execapi.CodeBundleUnavailable {
			t.Fatalf("past the staleness bound: %v, want bundle_unavailable", err)
		}
		reg.set(func(s *statusRegistry) { s.down = false })
	})
	t.Run("a change-feed break forces a recheck", func(t *testing.T) {
		if err := get(); err != nil { // fresh again
			t.Fatal(err)
		}
		before, conns := reg.count()
		if err := get(); err != nil {
			t.Fatal(err)
		}
		if calls, _ := reg.count(); calls != before {
			t.Fatal("fresh status asked again")
		}
		reg.breakFeed <- struct{}{}
		// A new connection means the break was seen (and entries marked).
		testenv.WaitFor(t, 10*time.Second, func() error {
			if _, n := reg.count(); n <= conns {
				return fmt.Errorf("feed not reconnected (%d connections)", n)
			}
			return nil
		})
		if err := get(); err != nil {
			t.Fatal(err)
		}
		if calls, _ := reg.count(); calls != before+1 {
			t.Fatal("status not rechecked after the feed broke")
		}
	})
	t.Run("revocation event evicts and refuses", func(t *testing.T) {
		reg.set(func(s *statusRegistry) { s.revoked[hash] = true })
		reg.changes <- registryapi.Change{ID: 1, Type: registryapi.ChangeRevoked, ContentHash: hash, Extension: ext}
		testenv.WaitFor(t, 5*time.Second, func() error {
			if _, err := os.Stat(c.bundleDir(hash)); !os.IsNotExist(err) {
				return errors.New("revoked bundle still on disk")
			}
			return nil
		})
		before, _ := reg.count()
		if err := get(); codeOf(err) != execapi.CodeIntegrityFailed || !strings.Contains(err.Error(), "revoked") {
			t.Fatalf("revoked hash: %v", err)
		}
		if calls, _ := reg.count(); calls != before {
			t.Fatal("registry asked about a hash the feed revoked")
		}
	})
	t.Run("revoked status from the registry is refused and evicted", func(t *testing.T) {
		e2 := &env{store: e.store, pub: e.pub, dir: t.TempDir()}
		warm := e2.cache(t, newEngine(t), nil)
		if err := warm.Warmup(context.Background(), hash); err != nil {
			t.Fatal(err)
		}
		c2 := e2.cache(t, newEngine(t), func(cfg *Config) { cfg.Registry = registry(0, 0) })
		if _, _, err := c2.Module(context.Background(), hash, ext, "dist/handlers/ok"); codeOf(err) != execapi.CodeIntegrityFailed {
			t.Fatalf("err = %v", err)
		}
		if _, err := os.Stat(c2.bundleDir(hash)); !os.IsNotExist(err) {
			t.Fatal("bundle revoked while the feed was away still on disk")
		}
	})
}

func TestEvictIgnoresWhatIsNotAHash(t *testing.T) {
	e := newEnv(t)
	hash := e.pub.Publish(t, e.store, okFiles(t))
	c := e.cache(t, newEngine(t), nil)
	if _, _, err := c.Module(context.Background(), hash, ext, "dist/handlers/ok"); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"", "sha256:", "../../", "sha256:../.."} {
		c.Evict(bad)
	}
	if _, err := os.Stat(c.compiledDir(hash)); err != nil {
		t.Fatalf("Evict of a non-hash removed compiled modules: %v", err)
	}
	if _, err := os.Stat(c.bundleDir(hash)); err != nil {
		t.Fatalf("Evict of a non-hash removed a bundle: %v", err)
	}
}

func TestEntryModuleDispatch(t *testing.T) {
	e := newEnv(t)
	files := map[string][]byte{
		"manifest.json":  []byte(`{"name":"` + ext + `","publisher":"Acme Inc.","version":"1.0.0","runtime":"wasm@1","entry":"dist/main.wasm#handler","api":{"endpoints":[{"method":"GET","path":"/a","handler":"dist/handlers/a"}]}}`),
		"dist/main.wasm": guests.MustWasm(t, "ok.wat", nil),
	}
	hash := e.pub.Publish(t, e.store, files)
	c := e.cache(t, newEngine(t), nil)
	_, export, err := c.Module(context.Background(), hash, ext, "dist/handlers/a")
	if err != nil || export != "handler" {
		t.Fatalf("entry dispatch: %v %q", err, export)
	}
}

func TestPrecompiledIgnoredUnlessTrusted(t *testing.T) {
	e := newEnv(t)
	files := map[string][]byte{
		"manifest.json": []byte(`{"name":"` + ext + `","publisher":"Acme Inc.","version":"1.0.0","runtime":"wasm@1","entry":"dist/main.wasm",` +
			`"precompiled":{"x86_64-linux-gnu":"precompiled/x86_64-linux-gnu/main.cwasm"},"api":{"endpoints":[{"method":"GET","path":"/a","handler":"dist/main"}]}}`),
		"dist/main.wasm": guests.MustWasm(t, "ok.wat", nil),
		"precompiled/x86_64-linux-gnu/main.cwasm": []byte("native code from outside"),
	}
	hash := e.pub.Publish(t, e.store, files)
	c := e.cache(t, newEngine(t), nil)
	if _, _, err := c.Module(context.Background(), hash, ext, "dist/main"); err != nil {
		t.Fatal(err)
	}
	if got := c.Counters(); got.Compiles != 1 {
		t.Fatalf("counters %+v", got)
	}
	if _, err := os.Stat(filepath.Join(c.bundleDir(hash), "precompiled")); !os.IsNotExist(err) {
		t.Fatal("precompiled/ extracted without --trust-precompiled")
	}
	// Trusted but unloadable: falls back to compiling.
	e2 := &env{store: e.store, pub: e.pub, dir: t.TempDir()}
	c2 := e2.cache(t, newEngine(t), func(cfg *Config) { cfg.TrustPrecompiled = true })
	if _, _, err := c2.Module(context.Background(), hash, ext, "dist/main"); err != nil {
		t.Fatal(err)
	}
	if got := c2.Counters(); got.Compiles != 1 {
		t.Fatalf("counters %+v", got)
	}
}

func TestDiskLRUByBytes(t *testing.T) {
	e := newEnv(t)
	var hashes []string
	for i := 0; i < 3; i++ {
		f := okFiles(t)
		f["dist/pad.bin"] = []byte(strings.Repeat(string(rune('a'+i)), 50_000))
		hashes = append(hashes, e.pub.Publish(t, e.store, f))
	}
	c := e.cache(t, newEngine(t), func(cfg *Config) { cfg.MaxBytes = 120_000 })
	for _, h := range hashes {
		if _, _, err := c.Module(context.Background(), h, ext, "dist/handlers/ok"); err != nil {
			t.Fatal(err)
		}
	}
	if c.DiskBytes() > 120_000 {
		t.Fatalf("disk cache holds %d bytes over its 120000 cap", c.DiskBytes())
	}
	if _, err := os.Stat(c.bundleDir(hashes[0])); !os.IsNotExist(err) {
		t.Fatal("least recently used bundle not evicted")
	}
	if _, err := os.Stat(c.compiledDir(hashes[0])); !os.IsNotExist(err) {
		t.Fatal("serialized modules of an evicted bundle left on disk")
	}
	if _, err := os.Stat(c.bundleDir(hashes[2])); err != nil {
		t.Fatal("newest bundle evicted")
	}
	// The evicted bundle is fetched again on demand.
	if _, _, err := c.Module(context.Background(), hashes[0], ext, "dist/handlers/ok"); err != nil {
		t.Fatal(err)
	}
}

func TestCallerStopsWaitingForASlowFetchAtItsDeadline(t *testing.T) {
	e := newEnv(t)
	hash := e.pub.Publish(t, e.store, okFiles(t))
	e.store.delay = 800 * time.Millisecond
	c := e.cache(t, newEngine(t), nil)

	patient := make(chan error, 1)
	go func() {
		_, _, err := c.Module(context.Background(), hash, ext, "dist/handlers/ok")
		patient <- err
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, _, err := c.Module(ctx, hash, ext, "dist/handlers/ok")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("short-deadline caller: err = %v, want context.DeadlineExceeded", err)
	}
	if waited := time.Since(start); waited > 600*time.Millisecond {
		t.Fatalf("short-deadline caller waited %v for a fetch that takes 800ms", waited)
	}
	// The shared fetch was not cancelled with it: the patient caller gets
	// the module, from one download.
	if err := <-patient; err != nil {
		t.Fatalf("patient caller: %v", err)
	}
	if n := e.store.gets.Load(); n != 1 {
		t.Fatalf("bundle downloaded %d times, want once", n)
	}
}

func TestBundleOnDiskIsBoundToTrustBundleAndFileHashes(t *testing.T) {
	// warm leaves a verified bundle and its compiled module in e.dir, the
	// way a runner that ran it before a restart does.
	warm := func(t *testing.T, e *env) string {
		t.Helper()
		hash := e.pub.Publish(t, e.store, okFiles(t))
		if err := e.cache(t, newEngine(t), nil).Warmup(context.Background(), hash); err != nil {
			t.Fatal(err)
		}
		return hash
	}
	t.Run("restart with a trust bundle that no longer trusts the key refuses the bundle", func(t *testing.T) {
		e := newEnv(t)
		hash := warm(t, e)
		other := bundletest.NewPublisher(t, "Acme Inc.")
		c := e.cache(t, newEngine(t), func(cfg *Config) { cfg.Trust = other.Trust })
		_, _, err := c.Module(context.Background(), hash, ext, "dist/handlers/ok")
		if codeOf(err) != execapi.CodeIntegrityFailed {
			t.Fatalf("bundle verified under another trust bundle: err = %v, want integrity_failed", err)
		}
		if got := c.Counters(); got.BundleDiskHits != 0 || got.Fetches != 1 {
			t.Fatalf("counters %+v; want a re-fetch and no disk hit", got)
		}
		if _, err := os.Stat(c.bundleDir(hash)); !os.IsNotExist(err) {
			t.Fatal("bundle that fails the new trust bundle left on disk")
		}
		if _, err := os.Stat(c.compiledDir(hash)); !os.IsNotExist(err) {
			t.Fatal("modules compiled from a bundle that fails the new trust bundle left on disk")
		}
	})
	t.Run("restart with another trust bundle that still trusts the key re-verifies", func(t *testing.T) {
		e := newEnv(t)
		hash := warm(t, e)
		other := bundletest.NewPublisher(t, "Other Ltd.")
		both, err := signing.ParseTrustBundle(append(append([]byte(nil), e.pub.TrustPEM...), other.TrustPEM...))
		if err != nil {
			t.Fatal(err)
		}
		c := e.cache(t, newEngine(t), func(cfg *Config) { cfg.Trust = both })
		if _, _, err := c.Module(context.Background(), hash, ext, "dist/handlers/ok"); err != nil {
			t.Fatal(err)
		}
		if got := c.Counters(); got.BundleDiskHits != 0 || got.Fetches != 1 || got.Verifications != 1 {
			t.Fatalf("counters %+v; want one re-fetch and verification", got)
		}
		// Sealed under the new trust bundle, it is reused by the next start.
		again := e.cache(t, newEngine(t), func(cfg *Config) { cfg.Trust = both })
		if _, _, err := again.Module(context.Background(), hash, ext, "dist/handlers/ok"); err != nil {
			t.Fatal(err)
		}
		if got := again.Counters(); got.BundleDiskHits != 1 || got.Fetches != 0 {
			t.Fatalf("counters %+v; want a disk hit", got)
		}
	})
	t.Run("a file changed in place with the same size is re-fetched, not served", func(t *testing.T) {
		e := newEnv(t)
		hash := warm(t, e)
		eng := newEngine(t)
		probe := e.cache(t, eng, nil)
		wasm := filepath.Join(probe.bundleDir(hash), "dist", "handlers", "ok.wasm")
		orig, err := os.ReadFile(wasm)
		if err != nil {
			t.Fatal(err)
		}
		tampered := append([]byte(nil), orig...)
		tampered[len(tampered)-1] ^= 0xff
		if err := os.WriteFile(wasm, tampered, 0o644); err != nil {
			t.Fatal(err)
		}
		c := e.cache(t, eng, nil)
		m, export, err := c.Module(context.Background(), hash, ext, "dist/handlers/ok")
		if err != nil {
			t.Fatal(err)
		}
		if got := c.Counters(); got.BundleDiskHits != 0 || got.Fetches != 1 || got.DiskHits != 0 || got.Compiles != 1 {
			t.Fatalf("counters %+v; want a re-fetch and a fresh compile", got)
		}
		if now, _ := os.ReadFile(wasm); string(now) != string(orig) {
			t.Fatal("tampered file still on disk")
		}
		if r := runModule(t, eng, m, export); r.Status != 201 {
			t.Fatalf("response %+v", r)
		}
	})
	t.Run("a module changed after its bundle was loaded is not compiled", func(t *testing.T) {
		e := newEnv(t)
		files := okFiles(t)
		files["manifest.json"] = bundletest.Manifest(ext, "Acme Inc.", "dist/handlers/ok", "dist/handlers/two")
		files["dist/handlers/two.wasm"] = files["dist/handlers/ok.wasm"]
		hash := e.pub.Publish(t, e.store, files)
		eng := newEngine(t)
		c := e.cache(t, eng, nil)
		if _, _, err := c.Module(context.Background(), hash, ext, "dist/handlers/ok"); err != nil {
			t.Fatal(err)
		}
		wasm := filepath.Join(c.bundleDir(hash), "dist", "handlers", "two.wasm")
		data, _ := os.ReadFile(wasm)
		data[len(data)-1] ^= 0xff
		if err := os.WriteFile(wasm, data, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, _, err := c.Module(context.Background(), hash, ext, "dist/handlers/two"); codeOf(err) != execapi.CodeBundleUnavailable {
			t.Fatalf("changed module: err = %v, want bundle_unavailable", err)
		}
		// The bundle was evicted: the next call fetches and verifies it again.
		m, export, err := c.Module(context.Background(), hash, ext, "dist/handlers/two")
		if err != nil {
			t.Fatal(err)
		}
		if got := c.Counters(); got.Fetches != 2 || got.Compiles != 2 {
			t.Fatalf("counters %+v; want a second fetch and the module compiled from it", got)
		}
		if r := runModule(t, eng, m, export); r.Status != 201 {
			t.Fatalf("response %+v", r)
		}
	})
	t.Run("a compiled module changed in place with the same size is recompiled, not loaded", func(t *testing.T) {
		e := newEnv(t)
		hash := warm(t, e)
		probe := e.cache(t, newEngine(t), nil)
		cpath := probe.compiledPath(hash, "dist/handlers/ok.wasm")
		data, err := os.ReadFile(cpath)
		if err != nil {
			t.Fatal(err)
		}
		// A byte in the middle: native code, not the header wasmtime checks.
		data[len(data)/2] ^= 0xff
		if err := os.WriteFile(cpath+".new", data, 0o640); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(cpath+".new", cpath); err != nil {
			t.Fatal(err)
		}
		eng := newEngine(t)
		c := e.cache(t, eng, nil)
		m, export, err := c.Module(context.Background(), hash, ext, "dist/handlers/ok")
		if err != nil {
			t.Fatal(err)
		}
		if got := c.Counters(); got.DiskHits != 0 || got.Compiles != 1 {
			t.Fatalf("counters %+v; want the changed module discarded and recompiled", got)
		}
		if r := runModule(t, eng, m, export); r.Status != 201 {
			t.Fatalf("response %+v", r)
		}
	})
}
