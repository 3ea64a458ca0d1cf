package caddymodule

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/extedge/extedge/internal/blobstore"
	"github.com/extedge/extedge/internal/bundle"
	"github.com/extedge/extedge/internal/registryapi"
	"github.com/extedge/extedge/internal/signing"
)

// uiFixture is a signed bundle published into a file:// blob store, with
// a trust bundle that trusts its key.
type uiFixture struct {
	hash, storeURL, trustFile string
	files                     map[string]string
}

var uiFiles = map[string]string{
	"manifest.json":       `{"name":"com.acme.agreements","publisher":"Acme Inc.","version":"1.0.0","runtime":"wasm@1","ui":{"type":"iframe","entry":"ui/index.html"}}`,
	"ui/index.html":       "<!doctype html><title>agreements</title>",
	"ui/app.js":           "console.log('app')",
	"ui/styles/main.css":  "body{margin:0}",
	"ui/data.bin":         strings.Repeat("\x00\x01", 600),
	"dist/handlers.wasm":  "\x00asm\x01\x00\x00\x00",
	"ui/img/logo.svg":     "<svg xmlns='http://www.w3.org/2000/svg'/>",
	"ui/deep/a/b/c.json":  `{"ok":true}`,
	"ui/unknown.ext-type": "zzz",
}

func publishUIBundle(t testing.TB, files map[string]string, publisher string, signWith string) *uiFixture {
	t.Helper()
	src := t.TempDir()
	for name, body := range files {
		p := filepath.Join(src, filepath.FromSlash(name))
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var buf bytes.Buffer
	hash, err := bundle.Pack(src, &buf)
	if err != nil {
		t.Fatal(err)
	}
	key, err := signing.GenerateKey(signing.AlgEd25519)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := signing.Sign(key, hash)
	if err != nil {
		t.Fatal(err)
	}
	storeDir := t.TempDir()
	store, err := blobstore.Open("file://" + storeDir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	store.Put(ctx, blobstore.BundleKey(hash), bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	if signWith != "none" {
		store.Put(ctx, blobstore.SignatureKey(hash), bytes.NewReader(sig.Marshal()), -1)
	}
	pub, err := signing.MarshalPublicKeyPEM(key.Public(), publisher)
	if err != nil {
		t.Fatal(err)
	}
	if signWith == "untrusted" {
		other, _ := signing.GenerateKey(signing.AlgEd25519)
		pub, _ = signing.MarshalPublicKeyPEM(other.Public(), publisher)
	}
	trust := writeFile(t, t.TempDir(), "trust.pem", string(pub))
	return &uiFixture{hash: hash, storeURL: "file://" + storeDir, trustFile: trust, files: files}
}

func newUIGateway(t *testing.T, fx *uiFixture, mutate func(h *Handler)) *gateway {
	g := newGateway(t, func(h *Handler, g *gateway) {
		h.BundleStore = fx.storeURL
		h.TrustBundle = fx.trustFile
		h.FrameAncestors = []string{"https://psa.example.com"}
		if mutate != nil {
			mutate(h)
		}
	})
	g.registry.mu.Lock()
	g.registry.statuses[fx.hash+"/"+testExt] = &registryapi.BundleStatus{ContentHash: fx.hash, Extension: testExt, Published: true}
	g.registry.mu.Unlock()
	return g
}

func uiURL(fx *uiFixture, rest string) string {
	return "/ext-ui/" + testExt + "/" + fx.hash + "/" + rest
}

func sha(s string) string { h := sha256.Sum256([]byte(s)); return hex.EncodeToString(h[:]) }

func TestUIServesAssets(t *testing.T) {
	fx := publishUIBundle(t, uiFiles, "Acme Inc.", "")
	g := newUIGateway(t, fx, nil)
	for _, c := range []struct {
		name, path, wantFile, ctype string
	}{
		{"empty path serves ui.entry", "", "ui/index.html", "text/html; charset=utf-8"},
		{"html file", "index.html", "ui/index.html", "text/html; charset=utf-8"},
		{"javascript", "app.js", "ui/app.js", "text/javascript; charset=utf-8"},
		{"css in a subdirectory", "styles/main.css", "ui/styles/main.css", "text/css; charset=utf-8"},
		{"svg", "img/logo.svg", "ui/img/logo.svg", "image/svg+xml; charset=utf-8"},
		{"deep json", "deep/a/b/c.json", "ui/deep/a/b/c.json", "application/json; charset=utf-8"},
		{"unknown extension is octet-stream", "unknown.ext-type", "ui/unknown.ext-type", "application/octet-stream"},
		{"extension-less client route falls back to the entry", "settings/profile", "ui/index.html", "text/html; charset=utf-8"},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := g.do(httptest.NewRequest("GET", uiURL(fx, c.path), nil))
			if w.Code != 200 || w.Body.String() != uiFiles[c.wantFile] {
				t.Fatalf("status %d body %q", w.Code, w.Body.String())
			}
			h := w.Header()
			want := map[string]string{
				"Content-Type": c.ctype, "X-Content-Type-Options": "nosniff",
				"Cache-Control": "public, max-age=31536000, immutable", "Referrer-Policy": "no-referrer",
				"Etag": `"sha256-` + sha(uiFiles[c.wantFile]) + `"`,
				// Module scripts of an opaque-origin (sandboxed) iframe are CORS requests.
				"Access-Control-Allow-Origin": "*",
			}
			for k, v := range want {
				if h.Get(k) != v {
					t.Errorf("%s = %q, want %q", k, h.Get(k), v)
				}
			}
			if h.Get("X-Frame-Options") != "" {
				t.Error("X-Frame-Options set on a page meant to be framed")
			}
			csp := h.Get("Content-Security-Policy")
			// Every file is a sandboxed (opaque-origin) document when opened
			// at the top level (SPEC §8.3, §16).
			switch {
			case strings.HasPrefix(c.ctype, "text/html"):
				if !strings.Contains(csp, "frame-ancestors https://psa.example.com") || !strings.Contains(csp, "object-src 'none'") ||
					!strings.Contains(csp, "sandbox allow-scripts") || strings.Contains(csp, "allow-same-origin") {
					t.Errorf("CSP = %q", csp)
				}
			case strings.HasPrefix(c.ctype, "image/svg+xml"):
				if csp != "default-src 'none'; style-src 'unsafe-inline'; img-src data:; sandbox" {
					t.Errorf("CSP on svg: %q", csp)
				}
			default:
				if csp != "default-src 'none'; sandbox" {
					t.Errorf("CSP on %s: %q", c.ctype, csp)
				}
			}
		})
	}
}

func TestUIConditionalRangeAndHead(t *testing.T) {
	fx := publishUIBundle(t, uiFiles, "Acme Inc.", "")
	g := newUIGateway(t, fx, nil)
	etag := `"sha256-` + sha(uiFiles["ui/app.js"]) + `"`

	r := httptest.NewRequest("GET", uiURL(fx, "app.js"), nil)
	r.Header.Set("If-None-Match", etag)
	if w := g.do(r); w.Code != 304 || w.Body.Len() != 0 {
		t.Fatalf("If-None-Match: %d %q", w.Code, w.Body.String())
	}
	r = httptest.NewRequest("GET", uiURL(fx, "data.bin"), nil)
	r.Header.Set("Range", "bytes=2-5")
	if w := g.do(r); w.Code != 206 || w.Body.String() != "\x00\x01\x00\x01" || w.Header().Get("Content-Range") != "bytes 2-5/1200" {
		t.Fatalf("Range: %d %q %q", w.Code, w.Body.String(), w.Header().Get("Content-Range"))
	}
	w := g.do(httptest.NewRequest("HEAD", uiURL(fx, "app.js"), nil))
	if w.Code != 200 || w.Body.Len() != 0 || w.Header().Get("Etag") != etag {
		t.Fatalf("HEAD: %d %q", w.Code, w.Body.String())
	}
	w = g.do(httptest.NewRequest("POST", uiURL(fx, "app.js"), nil))
	if w.Code != 405 || w.Header().Get("Allow") != "GET, HEAD" {
		t.Fatalf("POST: %d %v", w.Code, w.Header())
	}
}

func TestUIPathRules(t *testing.T) {
	fx := publishUIBundle(t, uiFiles, "Acme Inc.", "")
	g := newUIGateway(t, fx, nil)
	// Warm the cache so the 404s below come from the path rules.
	if w := g.do(httptest.NewRequest("GET", uiURL(fx, "index.html"), nil)); w.Code != 200 {
		t.Fatalf("warm-up %d", w.Code)
	}
	secret := filepath.Join(g.dir, "secret.txt")
	os.WriteFile(secret, []byte("SECRET"), 0o644)
	for _, c := range []struct{ name, rawPath string }{
		{"dot-dot segment", "../../../../../../etc/passwd"},
		{"dot-dot escaping ui", "../manifest.json"},
		{"dot-dot to dist", "../dist/handlers.wasm"},
		{"percent-encoded dot-dot", "%2e%2e/manifest.json"},
		{"percent-encoded upper-case dot-dot", "%2E%2E/%2E%2E/etc/passwd"},
		{"encoded slash", "..%2fmanifest.json"},
		{"encoded slash inside a name", "styles%2fmain.css"},
		{"backslash", "..\\manifest.json"},
		{"encoded backslash", "..%5cmanifest.json"},
		{"single dot segment", "./index.html"},
		{"hidden segment", ".env"},
		{"hidden directory", "styles/.cache/x.css"},
		{"empty segment", "styles//main.css"},
		{"NUL byte", "index.html%00.js"},
		{"control character", "index%0a.html"},
		{"invalid utf-8", "%ff%fe.js"},
		{"absolute path to a file outside", strings.TrimPrefix(secret, "/")},
		{"missing file with an extension", "missing.js"},
	} {
		t.Run(c.name, func(t *testing.T) {
			// url.Parse keeps dot segments, as Go's HTTP server does for a
			// request line (no ResolveReference here).
			r := httptest.NewRequest("GET", "/", nil)
			u, err := url.Parse("/ext-ui/" + testExt + "/" + fx.hash + "/" + c.rawPath)
			if err != nil {
				t.Fatalf("test URL: %v", err)
			}
			r.URL = u
			w := g.do(r)
			if w.Code != 404 || strings.Contains(w.Body.String(), "SECRET") || strings.Contains(w.Body.String(), "com.acme") && w.Header().Get("Content-Type") != "application/json" {
				t.Fatalf("%s: %d %q", c.rawPath, w.Code, w.Body.String())
			}
			if code := errorCode(t, w); code != "not_found" {
				t.Fatalf("code %q", code)
			}
		})
	}
}

func TestUIHashRules(t *testing.T) {
	fx := publishUIBundle(t, uiFiles, "Acme Inc.", "")
	g := newUIGateway(t, fx, nil)
	hex := strings.TrimPrefix(fx.hash, "sha256:")
	for _, c := range []struct {
		name, path string
		status     int
	}{
		{"percent-encoded colon is accepted", "/ext-ui/" + testExt + "/sha256%3A" + hex + "/app.js", 200},
		{"lower-case percent-encoded colon is accepted", "/ext-ui/" + testExt + "/sha256%3a" + hex + "/app.js", 200},
		{"upper-case hex is not a content hash", "/ext-ui/" + testExt + "/sha256:" + strings.ToUpper(hex) + "/app.js", 404},
		{"short hash", "/ext-ui/" + testExt + "/sha256:abc/app.js", 404},
		{"other algorithm", "/ext-ui/" + testExt + "/sha512:" + hex + "/app.js", 404},
		{"hash of another extension is not served", "/ext-ui/com.other.ext/" + fx.hash + "/app.js", 404},
		{"invalid extension name", "/ext-ui/Bad_Name/" + fx.hash + "/app.js", 404},
		{"unpublished hash", "/ext-ui/" + testExt + "/sha256:" + strings.Repeat("0", 64) + "/app.js", 404},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			r.URL, _ = url.Parse(c.path)
			if w := g.do(r); w.Code != c.status {
				t.Fatalf("status %d, want %d: %s", w.Code, c.status, w.Body.String())
			}
		})
	}
}

func TestUIRevokedHashIsNotServed(t *testing.T) {
	fx := publishUIBundle(t, uiFiles, "Acme Inc.", "")
	g := newUIGateway(t, fx, nil)
	g.registry.mu.Lock()
	g.registry.statuses[fx.hash+"/"+testExt].Revoked = true
	g.registry.mu.Unlock()
	if w := g.do(httptest.NewRequest("GET", uiURL(fx, "app.js"), nil)); w.Code != 404 {
		t.Fatalf("revoked: %d", w.Code)
	}
}

func TestUIVerificationFailures(t *testing.T) {
	for _, c := range []struct {
		name, publisher, sign string
	}{
		{"untrusted key", "Acme Inc.", "untrusted"},
		{"missing signature", "Acme Inc.", "none"},
		{"key bound to another publisher", "Other Corp", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			fx := publishUIBundle(t, uiFiles, c.publisher, c.sign)
			g := newUIGateway(t, fx, nil)
			w := g.do(httptest.NewRequest("GET", uiURL(fx, "app.js"), nil))
			if w.Code == 200 {
				t.Fatalf("served a bundle with %s", c.name)
			}
			if code := errorCode(t, w); code != "integrity_failed" && code != "bundle_unavailable" {
				t.Fatalf("code %q", code)
			}
		})
	}
}

func TestUITamperedBundleIsRefused(t *testing.T) {
	fx := publishUIBundle(t, uiFiles, "Acme Inc.", "")
	// Overwrite the stored bundle with other bytes under the same key.
	p := filepath.Join(strings.TrimPrefix(fx.storeURL, "file://"), filepath.FromSlash(blobstore.BundleKey(fx.hash)))
	os.Chmod(p, 0o644)
	b, _ := os.ReadFile(p)
	b[len(b)/2] ^= 0xff
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	g := newUIGateway(t, fx, nil)
	w := g.do(httptest.NewRequest("GET", uiURL(fx, "app.js"), nil))
	if w.Code != 502 || errorCode(t, w) != "integrity_failed" {
		t.Fatalf("tampered: %d %s", w.Code, w.Body.String())
	}
}

func TestUICorruptCacheEntryIsRebuilt(t *testing.T) {
	fx := publishUIBundle(t, uiFiles, "Acme Inc.", "")
	g := newUIGateway(t, fx, nil)
	if w := g.do(httptest.NewRequest("GET", uiURL(fx, "app.js"), nil)); w.Code != 200 {
		t.Fatal(w.Code)
	}
	tree := filepath.Join(g.h.UICache.Dir, strings.TrimPrefix(fx.hash, "sha256:"))
	if err := os.RemoveAll(tree); err != nil {
		t.Fatal(err)
	}
	w := g.do(httptest.NewRequest("GET", uiURL(fx, "app.js"), nil))
	if w.Code == 200 {
		return // rebuilt in place
	}
	if w.Code != 503 {
		t.Fatalf("first request after damage: %d", w.Code)
	}
	if w := g.do(httptest.NewRequest("GET", uiURL(fx, "app.js"), nil)); w.Code != 200 || w.Body.String() != uiFiles["ui/app.js"] {
		t.Fatalf("not rebuilt: %d %q", w.Code, w.Body.String())
	}
}

func TestUITreesAreBoundToTheTrustBundle(t *testing.T) {
	fx := publishUIBundle(t, uiFiles, "Acme Inc.", "")
	first := newUIGateway(t, fx, nil)
	if w := first.do(httptest.NewRequest("GET", uiURL(fx, "app.js"), nil)); w.Code != 200 {
		t.Fatal(w.Code)
	}
	// A reload (or restart) over the same cache directory with a trust
	// bundle that does not trust the publisher's key: the tree verified by
	// the first one is not served.
	other, _ := signing.GenerateKey(signing.AlgEd25519)
	pub, err := signing.MarshalPublicKeyPEM(other.Public(), "Acme Inc.")
	if err != nil {
		t.Fatal(err)
	}
	otherTrust := writeFile(t, t.TempDir(), "trust.pem", string(pub))
	second := newUIGateway(t, fx, func(h *Handler) {
		h.TrustBundle = otherTrust
		h.UICache.Dir = first.h.UICache.Dir
	})
	w := second.do(httptest.NewRequest("GET", uiURL(fx, "app.js"), nil))
	if w.Code != 502 || errorCode(t, w) != "integrity_failed" {
		t.Fatalf("tree verified by another trust bundle: %d %s", w.Code, w.Body.String())
	}
}

func TestUIRegistryUnavailable(t *testing.T) {
	fx := publishUIBundle(t, uiFiles, "Acme Inc.", "")
	g := newUIGateway(t, fx, nil)
	g.registry.down.Store(true)
	w := g.do(httptest.NewRequest("GET", uiURL(fx, "app.js"), nil))
	if w.Code != http.StatusServiceUnavailable || errorCode(t, w) != "registry_unavailable" {
		t.Fatalf("%d %s", w.Code, w.Body.String())
	}
}

func TestSDKFiles(t *testing.T) {
	g := newGateway(t, nil)
	for name, ctype := range map[string]string{
		"iframe.js": "text/javascript; charset=utf-8",
		"host.js":   "text/javascript; charset=utf-8",
		"ui.js":     "text/javascript; charset=utf-8",
		"react.js":  "text/javascript; charset=utf-8",
		"ui.css":    "text/css; charset=utf-8",
	} {
		w := g.do(httptest.NewRequest("GET", "/ext-sdk/v1/"+name, nil))
		if w.Code != 200 || w.Header().Get("Content-Type") != ctype || w.Header().Get("X-Content-Type-Options") != "nosniff" ||
			w.Header().Get("Cache-Control") != "public, max-age=31536000, immutable" || w.Header().Get("Etag") == "" || w.Body.Len() == 0 {
			t.Fatalf("%s: %d %v", name, w.Code, w.Header())
		}
		r := httptest.NewRequest("GET", "/ext-sdk/v1/"+name, nil)
		r.Header.Set("If-None-Match", w.Header().Get("Etag"))
		if w2 := g.do(r); w2.Code != 304 {
			t.Fatalf("%s revalidation: %d", name, w2.Code)
		}
	}
	if w := g.do(httptest.NewRequest("GET", "/ext-sdk/v1/other.js", nil)); w.Code != 404 {
		t.Fatalf("unknown sdk file: %d", w.Code)
	}
}

func TestHTMLPolicyKeepsASandbox(t *testing.T) {
	for _, c := range []struct{ in, want, err string }{
		{"default-src 'self'", "default-src 'self'; " + defaultSandbox, ""},
		{"default-src 'self';", "default-src 'self'; " + defaultSandbox, ""},
		{"default-src 'self'; sandbox allow-scripts", "default-src 'self'; sandbox allow-scripts", ""},
		{"default-src 'self'; SANDBOX allow-scripts Allow-Same-Origin", "", "allow-same-origin"},
	} {
		got, err := htmlPolicy(c.in)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("htmlPolicy(%q) err = %v, want one naming %s", c.in, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("htmlPolicy(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
}

// TestUIUnknownHashesAreCheapToRefuse (issue 10 finding 7): a made-up
// hash asked again costs no registry call (negative cache), and past the
// client's ui_rate_limit lookups are refused with 429 before they reach
// the registry, while a cached real asset is still served without one.
func TestUIUnknownHashesAreCheapToRefuse(t *testing.T) {
	fx := publishUIBundle(t, uiFiles, "Acme Inc.", "")
	g := newUIGateway(t, fx, func(h *Handler) {
		h.UIRateLimit = &RateSpec{Requests: 5, Per: caddy.Duration(time.Hour), Burst: 5}
	})
	get := func(path string) *httptest.ResponseRecorder {
		return g.do(httptest.NewRequest("GET", path, nil))
	}
	if w := get(uiURL(fx, "app.js")); w.Code != 200 {
		t.Fatalf("real asset: %d", w.Code)
	}
	unknown := func(i int) string {
		return fmt.Sprintf("/ext-ui/%s/sha256:%064x/app.js", testExt, 0xdead0000+i)
	}
	calls := g.registry.statusCalls.Load()
	for range 20 {
		if w := get(unknown(0)); w.Code != 404 {
			t.Fatalf("unknown hash: %d", w.Code)
		}
	}
	if n := g.registry.statusCalls.Load() - calls; n != 1 {
		t.Fatalf("one unknown hash asked 20 times cost %d registry calls, want 1", n)
	}
	codes := map[int]int{}
	for i := 1; i <= 30; i++ {
		w := get(unknown(i))
		codes[w.Code]++
		if w.Code == 429 && (errorCode(t, w) != "rate_limited" || w.Header().Get("Retry-After") == "") {
			t.Fatalf("refusal: code %q, Retry-After %q", errorCode(t, w), w.Header().Get("Retry-After"))
		}
	}
	if codes[404]+codes[429] != 30 || codes[429] == 0 {
		t.Fatalf("30 distinct unknown hashes got %v, want only 404s and 429s, some 429", codes)
	}
	if n := g.registry.statusCalls.Load() - calls; n > 5 {
		t.Fatalf("%d registry calls for unknown hashes, want at most the burst of 5", n)
	}
	calls = g.registry.statusCalls.Load()
	if w := get(uiURL(fx, "index.html")); w.Code != 200 || g.registry.statusCalls.Load() != calls {
		t.Fatalf("real asset during the flood: %d, %d registry calls", w.Code, g.registry.statusCalls.Load()-calls)
	}
}

// TestUILookupsAreBounded: with the registry slow, at most ui_max_lookups
// status lookups run at once; the others are refused with 429 after a
// short wait, and a cached real asset is served meanwhile.
func TestUILookupsAreBounded(t *testing.T) {
	fx := publishUIBundle(t, uiFiles, "Acme Inc.", "")
	g := newUIGateway(t, fx, func(h *Handler) { h.UIMaxLookups = 3 })
	if w := g.do(httptest.NewRequest("GET", uiURL(fx, "app.js"), nil)); w.Code != 200 {
		t.Fatalf("real asset: %d", w.Code)
	}
	hold := make(chan struct{})
	g.registry.holdStatus.Store(&hold)
	released := false
	release := func() {
		if !released {
			released = true
			close(hold)
		}
	}
	defer release()
	const n = 12
	results := make(chan int, n)
	for i := range n {
		go func() {
			path := fmt.Sprintf("/ext-ui/%s/sha256:%064x/app.js", testExt, 0xbeef0000+i)
			results <- g.do(httptest.NewRequest("GET", path, nil)).Code
		}()
	}
	codes := map[int]int{}
	for range n - 3 {
		codes[<-results]++
	}
	if codes[429] != n-3 {
		t.Fatalf("while 3 lookups hang: %v, want %d × 429", codes, n-3)
	}
	if w := g.do(httptest.NewRequest("GET", uiURL(fx, "index.html"), nil)); w.Code != 200 {
		t.Fatalf("cached real asset while lookups are full: %d", w.Code)
	}
	release()
	for range 3 {
		codes[<-results]++
	}
	if codes[404] != 3 {
		t.Fatalf("held lookups ended with %v, want 3 × 404", codes)
	}
	if m := g.registry.statusMaxBusy.Load(); m > 3 {
		t.Fatalf("%d status lookups at once, want at most 3", m)
	}
}

// TestUIHost: with ui_host, /ext-ui answers only on that host (SPEC §16).
func TestUIHost(t *testing.T) {
	fx := publishUIBundle(t, uiFiles, "Acme Inc.", "")
	g := newUIGateway(t, fx, func(h *Handler) { h.UIHost = "ext-ui.example.test" })
	for _, c := range []struct {
		host string
		want int
	}{
		{"example.com", 404},
		{"psa.example.test", 404},
		{"ext-ui.example.test.evil", 404},
		{"ext-ui.example.test", 200},
		{"EXT-UI.example.test:8443", 200},
	} {
		r := httptest.NewRequest("GET", uiURL(fx, "app.js"), nil)
		r.Host = c.host
		if w := g.do(r); w.Code != c.want {
			t.Errorf("Host %s: %d, want %d", c.host, w.Code, c.want)
		}
	}
}

// TestUIKnownVersionIsRevalidatedPastTheRateLimit: ui_rate_limit and the
// lookup slots are for versions the cache does not know; a real version
// whose cached status is due for revalidation is not refused with them.
func TestUIKnownVersionIsRevalidatedPastTheRateLimit(t *testing.T) {
	fx := publishUIBundle(t, uiFiles, "Acme Inc.", "")
	g := newUIGateway(t, fx, func(h *Handler) {
		h.Registry.CacheTTL = caddy.Duration(time.Millisecond)
		h.UIRateLimit = &RateSpec{Requests: 1, Per: caddy.Duration(time.Hour), Burst: 1}
	})
	if w := g.do(httptest.NewRequest("GET", uiURL(fx, "app.js"), nil)); w.Code != 200 {
		t.Fatalf("real asset: %d", w.Code)
	}
	unknown := fmt.Sprintf("/ext-ui/%s/sha256:%064x/app.js", testExt, 0xfeed)
	if w := g.do(httptest.NewRequest("GET", unknown, nil)); w.Code != 429 {
		t.Fatalf("unknown hash past the limit: %d, want 429", w.Code)
	}
	time.Sleep(5 * time.Millisecond) // past the 1ms TTL: the real status must be revalidated
	calls := g.registry.statusCalls.Load()
	if w := g.do(httptest.NewRequest("GET", uiURL(fx, "app.js"), nil)); w.Code != 200 {
		t.Fatalf("real asset after its status expired, client over its limit: %d, want 200", w.Code)
	}
	if g.registry.statusCalls.Load() == calls {
		t.Fatal("the expired status was not revalidated with the registry")
	}
}
