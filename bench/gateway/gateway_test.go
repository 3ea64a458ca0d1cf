// Package gateway benchmarks the extedge gateway against Caddy's own
// handlers in the same run (SPEC §13):
//
//   - /api/ext through extedge to a stub runner vs reverse_proxy to the same
//     stub process (target throughput ratio ≥ 0.9);
//   - an /ext-ui asset vs file_server serving the same file from the same
//     directory (target ≥ 0.9), and the 304 path of both;
//   - allocations per /api/ext request (BenchmarkAPIAllocs).
//
// The comparison runs a real Caddy built from ./cmd/caddy and the
// stubrunner process (the runnerd wire contract, answering a fixed 64-byte
// body; by default it drains the envelope without decoding it, set
// EXTEDGE_BENCH_STUB_DECODE=1 to make it decode), alternating the two sides
// for several rounds and reporting the median of each. It is gated because it takes about a minute:
//
//	EXTEDGE_BENCH=1 go test ./bench/gateway -run TestCompare -v
//	go test ./bench/gateway -run '^$' -bench APIAllocs -benchmem
package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/golang-jwt/jwt/v5"

	"github.com/extedge/extedge/caddymodule"
	"github.com/extedge/extedge/internal/blobstore"
	"github.com/extedge/extedge/internal/bundle"
	"github.com/extedge/extedge/internal/manifest"
	"github.com/extedge/extedge/internal/registryapi"
	"github.com/extedge/extedge/internal/signing"
	"github.com/extedge/extedge/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

const (
	ext         = "com.acme.bench"
	tenant      = "tenant-bench"
	runnerToken = "bench-runner-token-0123"
	svcToken    = "bench-service-token-0123"
	jwtSecret   = "bench-jwt-secret-0123456789"
)

// env is the shared fixture: stub runner, registry, signed UI bundle.
type env struct {
	dir, sock, hash, storeURL, trust string
	registry                         *httptest.Server
	token                            string
}

func setup(t testing.TB) *env {
	e := &env{dir: t.TempDir()}
	sd, err := os.MkdirTemp("", "bg")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sd) })
	e.sock = filepath.Join(sd, "r.sock")
	bin := testenv.Binary(t, "./caddymodule/internal/stubrunner")
	args := []string{"--listen", "unix://" + e.sock, "--token", runnerToken, "--body-size", "64"}
	if os.Getenv("EXTEDGE_BENCH_STUB_DECODE") == "" {
		// The stub shares the two cores with Caddy and the load generator:
		// decoding the envelope is runner work, so by default the stub only
		// drains it and the comparison charges the gateway alone.
		args = append(args, "--no-decode")
	}
	cmd := exec.Command(bin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	testenv.WaitFor(t, 10*time.Second, func() error {
		c, err := net.Dial("unix", e.sock)
		if err == nil {
			c.Close()
		}
		return err
	})

	// Signed bundle with a 16 KiB JS asset.
	src := filepath.Join(e.dir, "src")
	os.MkdirAll(filepath.Join(src, "ui"), 0o755)
	os.WriteFile(filepath.Join(src, "manifest.json"), []byte(`{"name":"`+ext+`","publisher":"Bench","version":"1.0.0","runtime":"wasm@1","ui":{"type":"iframe","entry":"ui/index.html"}}`), 0o644)
	os.WriteFile(filepath.Join(src, "ui", "index.html"), []byte("<!doctype html>"), 0o644)
	os.WriteFile(filepath.Join(src, "ui", "app.js"), bytes.Repeat([]byte("console.log(1);\n"), 1024), 0o644)
	var buf bytes.Buffer
	if e.hash, err = bundle.Pack(src, &buf); err != nil {
		t.Fatal(err)
	}
	key, _ := signing.GenerateKey(signing.AlgEd25519)
	sig, _ := signing.Sign(key, e.hash)
	storeDir := filepath.Join(e.dir, "store")
	os.MkdirAll(storeDir, 0o755)
	e.storeURL = "file://" + storeDir
	store, err := blobstore.Open(e.storeURL)
	if err != nil {
		t.Fatal(err)
	}
	store.Put(context.Background(), blobstore.BundleKey(e.hash), bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	store.Put(context.Background(), blobstore.SignatureKey(e.hash), bytes.NewReader(sig.Marshal()), -1)
	pub, _ := signing.MarshalPublicKeyPEM(key.Public(), "Bench")
	e.trust = filepath.Join(e.dir, "trust.pem")
	os.WriteFile(e.trust, pub, 0o644)

	resolved, _ := json.Marshal(registryapi.Resolved{InstallID: "i", TenantID: tenant, Extension: registryapi.Ref{ID: "e", Name: ext},
		Version: registryapi.VersionRef{ID: "v", Version: "1.0.0"}, ContentHash: e.hash, Status: "enabled",
		Endpoints: []manifest.Endpoint{{Method: "GET", Path: "/agreements", Handler: "h"}}, Capabilities: []string{}})
	status, _ := json.Marshal(registryapi.BundleStatus{ContentHash: e.hash, Extension: ext, Published: true})
	e.registry = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasPrefix(r.URL.Path, "/v1/resolve/"):
			w.Header().Set("ETag", `"1"`)
			w.Write(resolved)
		case strings.HasPrefix(r.URL.Path, "/v1/bundles/"):
			w.Write(status)
		case r.URL.Path == "/v1/changes":
			w.WriteHeader(200)
			<-r.Context().Done()
		}
	}))
	t.Cleanup(e.registry.Close)
	for name, v := range map[string]string{"svc.token": svcToken, "runner.token": runnerToken, "jwt.secret": jwtSecret} {
		os.WriteFile(filepath.Join(e.dir, name), []byte(v), 0o600)
	}
	e.token, _ = jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"tenant": tenant, "exp": time.Now().Add(24 * time.Hour).Unix()}).SignedString([]byte(jwtSecret))
	return e
}

func (e *env) handlerJSON() *caddymodule.Handler {
	return &caddymodule.Handler{
		Registry:    &caddymodule.RegistryConfig{URL: e.registry.URL, TokenFile: filepath.Join(e.dir, "svc.token")},
		Runners:     &caddymodule.RunnersConfig{Addresses: []string{"unix/" + e.sock}, TokenFile: filepath.Join(e.dir, "runner.token")},
		Auth:        &caddymodule.AuthConfig{Mode: "jwt", SecretFile: filepath.Join(e.dir, "jwt.secret")},
		BundleStore: e.storeURL, TrustBundle: e.trust,
		UICache: &caddymodule.UICacheConfig{Dir: filepath.Join(e.dir, "ui")},
	}
}

// result of one load round.
type result struct {
	rps      float64
	p50, p99 time.Duration
	errors   int64
}

// run drives workers keep-alive clients at url for d.
func run(url string, hdr http.Header, workers int, d time.Duration) result {
	tr := &http.Transport{MaxIdleConnsPerHost: workers, MaxConnsPerHost: workers}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr}
	var n, errs atomic.Int64
	lat := make([][]time.Duration, workers)
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			for time.Now().Before(deadline) {
				req, _ := http.NewRequest("GET", url, nil)
				req.Header = hdr.Clone()
				t0 := time.Now()
				resp, err := hc.Do(req)
				if err != nil {
					errs.Add(1)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 && resp.StatusCode != 304 {
					errs.Add(1)
					continue
				}
				lat[i] = append(lat[i], time.Since(t0))
				n.Add(1)
			}
		}(i)
	}
	wg.Wait()
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	sort.Slice(all, func(a, b int) bool { return all[a] < all[b] })
	r := result{rps: float64(n.Load()) / d.Seconds(), errors: errs.Load()}
	if len(all) > 0 {
		r.p50, r.p99 = all[len(all)/2], all[len(all)*99/100]
	}
	return r
}

func median(rs []result) result {
	sort.Slice(rs, func(a, b int) bool { return rs[a].rps < rs[b].rps })
	return rs[len(rs)/2]
}

// TestCompare prints throughput ratios against Caddy's own handlers.
func TestCompare(t *testing.T) {
	if os.Getenv("EXTEDGE_BENCH") == "" {
		t.Skip("set EXTEDGE_BENCH=1 to run the gateway comparison (about a minute)")
	}
	e := setup(t)
	site := fmt.Sprintf(`	handle /proxy/* {
		reverse_proxy unix/%s
	}
	handle /static/* {
		uri strip_prefix /static
		file_server {
			root %s
		}
	}
	handle {
		extedge {
			registry %s {
				token_file %s
			}
			runners unix/%s {
				token_file %s
			}
			auth jwt {
				secret_file %s
			}
			bundle_store %s
			trust_bundle %s
			ui_cache %s
			# 16 workers of one tenant on one runner; the default (2 ×
			# runners) would shed most of them as runners_busy.
			tenant_concurrency 64
		}
	}`, e.sock, filepath.Join(e.dir, "ui", strings.TrimPrefix(e.hash, "sha256:"), "ui"),
		e.registry.URL, filepath.Join(e.dir, "svc.token"), e.sock, filepath.Join(e.dir, "runner.token"),
		filepath.Join(e.dir, "jwt.secret"), e.storeURL, e.trust, filepath.Join(e.dir, "ui"))
	c := testenv.Caddy(t, site)
	auth := http.Header{"Authorization": {"Bearer " + e.token}}
	apiURL := c.URL + "/api/ext/" + ext + "/agreements"
	uiURL := c.URL + "/ext-ui/" + ext + "/" + e.hash + "/app.js"
	// Warm up: resolve the install, build the UI tree.
	for _, u := range []string{apiURL, uiURL} {
		r := run(u, auth, 1, 200*time.Millisecond)
		if r.rps == 0 {
			t.Fatalf("warm-up of %s failed\n%s", u, c.Log())
		}
	}
	resp, err := http.Get(uiURL)
	if err != nil {
		t.Fatal(err)
	}
	etag := resp.Header.Get("Etag")
	resp.Body.Close()
	fresp, _ := http.Get(c.URL + "/static/app.js")
	fetag := fresp.Header.Get("Etag")
	fresp.Body.Close()

	const workers, rounds = 16, 5
	dur := 2 * time.Second
	cases := []struct {
		name      string
		a, b      string
		ha, hb    http.Header
		labelA, B string
	}{
		{"api", apiURL, c.URL + "/proxy/agreements", auth, nil, "extedge→stub runner", "reverse_proxy→stub"},
		{"ui asset", uiURL, c.URL + "/static/app.js", nil, nil, "/ext-ui asset", "file_server"},
		{"ui 304", uiURL, c.URL + "/static/app.js", http.Header{"If-None-Match": {etag}}, http.Header{"If-None-Match": {fetag}}, "/ext-ui 304", "file_server 304"},
	}
	for _, cs := range cases {
		var ra, rb []result
		for i := 0; i < rounds; i++ {
			ra = append(ra, run(cs.a, cs.ha, workers, dur))
			rb = append(rb, run(cs.b, cs.hb, workers, dur))
		}
		ma, mb := median(ra), median(rb)
		t.Logf("%-10s %-22s %8.0f rps p50 %-9v p99 %-9v errors %d", cs.name, cs.labelA, ma.rps, ma.p50, ma.p99, ma.errors)
		t.Logf("%-10s %-22s %8.0f rps p50 %-9v p99 %-9v errors %d", cs.name, cs.B, mb.rps, mb.p50, mb.p99, mb.errors)
		t.Logf("%-10s ratio %.3f (median of %d rounds × %v, %d workers)", cs.name, ma.rps/mb.rps, rounds, dur, workers)
	}
}

// BenchmarkAPIAllocs measures allocations per /api/ext request in the
// gateway process: the handler is called in-process, the stub runner is
// another process, so its allocations are not counted.
func BenchmarkAPIAllocs(b *testing.B) {
	e := setup(b)
	h := e.handlerJSON()
	raw, _ := json.Marshal(h)
	h = new(caddymodule.Handler)
	json.Unmarshal(raw, h)
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	if err := h.Provision(ctx); err != nil {
		b.Fatal(err)
	}
	defer h.Cleanup()
	next := caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error { return nil })
	req := httptest.NewRequest("GET", "/api/ext/"+ext+"/agreements", nil)
	req.Header.Set("Authorization", "Bearer "+e.token)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req, next)
	if w.Code != 200 {
		b.Fatalf("warm-up: %d %s", w.Code, w.Body.String())
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		w := &discardWriter{h: http.Header{}}
		h.ServeHTTP(w, req, next)
		if w.code != 200 {
			b.Fatalf("status %d", w.code)
		}
	}
}

type discardWriter struct {
	h    http.Header
	code int
}

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (d *discardWriter) WriteHeader(c int)           { d.code = c }
