package caddymodule

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/url"
	"os"
	"path"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/extedge/extedge/caddymodule/uicache"
	"github.com/extedge/extedge/internal/blobstore"
	"github.com/extedge/extedge/internal/bundle"
	"github.com/extedge/extedge/internal/bundle/verified"
	"github.com/extedge/extedge/internal/manifest"
	"github.com/extedge/extedge/internal/registryapi"
	"github.com/extedge/extedge/internal/signing"
)

// defaultCSP is the Content-Security-Policy of /ext-ui HTML (§8.3),
// before htmlPolicy adds defaultSandbox. {gateway_origin} is replaced per
// request.
const defaultCSP = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; " +
	"img-src 'self' data:; font-src 'self'; connect-src 'self' {gateway_origin}; object-src 'none'; " +
	"base-uri 'self'; form-action 'self'; frame-ancestors {frame_ancestors}"

// mimeTypes is the fixed MIME table of /ext-ui; unknown extensions are
// served as application/octet-stream (with nosniff, never rendered).
var mimeTypes = map[string]string{
	".html":        "text/html; charset=utf-8",
	".htm":         "text/html; charset=utf-8",
	".js":          "text/javascript; charset=utf-8",
	".mjs":         "text/javascript; charset=utf-8",
	".css":         "text/css; charset=utf-8",
	".json":        "application/json; charset=utf-8",
	".map":         "application/json; charset=utf-8",
	".txt":         "text/plain; charset=utf-8",
	".svg":         "image/svg+xml; charset=utf-8",
	".xml":         "application/xml; charset=utf-8",
	".png":         "image/png",
	".jpg":         "image/jpeg",
	".jpeg":        "image/jpeg",
	".gif":         "image/gif",
	".webp":        "image/webp",
	".avif":        "image/avif",
	".ico":         "image/x-icon",
	".woff":        "font/woff",
	".woff2":       "font/woff2",
	".ttf":         "font/ttf",
	".otf":         "font/otf",
	".wasm":        "application/wasm",
	".webmanifest": "application/manifest+json; charset=utf-8",
}

// serveUI serves /ext-ui/{extension}/{content_hash}/{path...} (§8.3).
func (h *Handler) serveUI(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	code := h.serveUIFile(w, r)
	observeRequest(routeUI, code, start)
}

func (h *Handler) serveUIFile(w http.ResponseWriter, r *http.Request) string {
	rid := ""
	fail := func(ge *gatewayError) string {
		if rid == "" {
			rid = requestID(r)
		}
		writeError(w, rid, ge)
		return ge.code
	}
	notFound := func() string { return fail(newError(codeNotFound, "not found")) }

	if !h.onUIHost(r) {
		return notFound()
	}
	ext, hash, rel, ok := parseUIPath(r.URL.EscapedPath()[len(prefixUI):])
	if !ok {
		return notFound()
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		ge := newError(codeMethodNotAllowed, "method not allowed")
		ge.allow = "GET, HEAD"
		return fail(ge)
	}
	st, ge := h.uiStatus(r, hash, ext)
	if ge != nil {
		return fail(ge)
	}
	if !st.Usable() {
		return notFound()
	}
	tree, err := h.uiTree(r.Context(), hash)
	if err != nil {
		rid = requestID(r)
		h.logger.Warn("preparing ui bundle", zap.String("request_id", rid), zap.String("content_hash", hash), zap.Error(err))
		return fail(uiBundleError(err))
	}
	if rel == "" {
		rel = tree.Entry
	}
	f, ok := tree.Files[rel]
	if !ok {
		// SPA fallback: extension-less paths are client-side routes.
		if path.Ext(rel) != "" || tree.Entry == "" {
			return notFound()
		}
		rel = tree.Entry
		if f, ok = tree.Files[rel]; !ok {
			return notFound()
		}
	}
	fh, err := os.Open(f.Path)
	if err != nil {
		// The tree was damaged on disk: drop it and rebuild it once, in
		// place (§8.3: a corrupt or missing cache entry is rebuilt).
		h.state.ui.Invalidate(hash)
		h.logger.Warn("ui cache file missing, rebuilding", zap.String("content_hash", hash), zap.Error(err))
		if tree, err = h.uiTree(r.Context(), hash); err == nil {
			if f, ok = tree.Files[rel]; !ok {
				err = errors.New("file missing from the rebuilt tree")
			} else {
				fh, err = os.Open(f.Path)
			}
		}
		if err != nil {
			h.logger.Warn("rebuilding ui bundle", zap.String("content_hash", hash), zap.Error(err))
			return fail(uiBundleError(err))
		}
	}
	defer fh.Close()
	ctype := mimeTypes[strings.ToLower(path.Ext(rel))]
	if ctype == "" {
		ctype = "application/octet-stream"
	}
	hdr := w.Header()
	hdr["Content-Type"] = []string{ctype}
	hdr["X-Content-Type-Options"] = []string{"nosniff"}
	hdr["Cache-Control"] = []string{"public, max-age=31536000, immutable"}
	hdr["Etag"] = []string{f.ETag}
	hdr["Referrer-Policy"] = []string{"no-referrer"}
	// The extension's iframe is sandboxed without allow-same-origin, so its
	// documents have an opaque origin and every module script, font or
	// fetch of its own assets is a cross-origin CORS request. These assets
	// are public, immutable and credential-free (the hash is in the URL),
	// so `*` exposes nothing; without it `<script type="module">` never runs.
	hdr["Access-Control-Allow-Origin"] = []string{"*"}
	hdr["Cross-Origin-Resource-Policy"] = []string{"cross-origin"}
	html := ""
	if strings.HasPrefix(ctype, "text/html") {
		html = strings.ReplaceAll(h.csp, "{gateway_origin}", h.gatewayOrigin(r))
	}
	hdr["Content-Security-Policy"] = []string{uiPolicy(ctype, html)}
	http.ServeContent(w, r, "", time.Time{}, fh)
	return "ok"
}

// onUIHost reports whether r may be served /ext-ui: any host without
// ui_host, else only that one (SPEC §16).
func (h *Handler) onUIHost(r *http.Request) bool {
	if h.UIHost == "" {
		return true
	}
	host := r.Host
	if !strings.Contains(h.UIHost, ":") {
		if hn, _, err := net.SplitHostPort(host); err == nil {
			host = hn
		}
	}
	return strings.EqualFold(host, h.UIHost)
}

// uiLookupWait is how long an /ext-ui request waits for a lookup slot.
const uiLookupWait = time.Second

// uiStatus is the §8.3 registry check, made cheap to refuse: a cached
// answer (known or "no such version") costs no I/O; revalidating a known
// version goes straight to the registry; any other lookup first passes the
// client's ui_rate_limit and then waits at most uiLookupWait for one of the
// ui_max_lookups slots. Refusals are 429, never 5xx.
func (h *Handler) uiStatus(r *http.Request, hash, ext string) (*registryapi.BundleStatus, *gatewayError) {
	reg := h.state.registry
	if st, ok := reg.CachedBundleStatus(hash, ext); ok {
		return st, nil
	}
	if !reg.KnownBundleStatus(hash, ext) {
		if ge := h.admitUILookup(r); ge != nil {
			return nil, ge
		}
		defer func() { <-h.uiLookups }()
	}
	st, err := reg.BundleStatus(r.Context(), hash, ext)
	if err != nil {
		return nil, newError(codeRegistryUnavailable, "the extension registry is unavailable")
	}
	return st, nil
}

// admitUILookup lets a lookup of a version the cache does not know reach
// the registry: within the client's ui_rate_limit, and holding one of the
// ui_max_lookups slots (the caller releases it) within uiLookupWait.
func (h *Handler) admitUILookup(r *http.Request) *gatewayError {
	busy := newError(codeRateLimited, "too many lookups of uncached extension versions")
	busy.retryAfter = time.Second
	if spec := h.UIRateLimit; spec != nil {
		ip, _ := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string)
		if ip == "" { // outside a Caddy server (tests)
			ip, _, _ = net.SplitHostPort(r.RemoteAddr)
		}
		d, _ := h.state.limiter.memory.Allow(r.Context(), "ui:"+ip, spec.rate())
		if !d.Allowed {
			rateDecisions.WithLabelValues("ui", "deny", d.Backend).Inc()
			busy.retryAfter = max(d.RetryAfter, time.Second)
			return busy
		}
		rateDecisions.WithLabelValues("ui", "allow", d.Backend).Inc()
	}
	t := time.NewTimer(uiLookupWait)
	defer t.Stop()
	select {
	case h.uiLookups <- struct{}{}:
		return nil
	case <-t.C:
	case <-r.Context().Done():
	}
	return busy
}

// uiBundleError is the answer when a UI tree cannot be prepared: a bundle
// that fails verification is integrity_failed, anything else (blob store
// unreachable, extraction failed) bundle_unavailable; both 502 (errorTable).
func uiBundleError(err error) *gatewayError {
	if errors.Is(err, verified.ErrIntegrity) {
		return newError(codeIntegrityFailed, "")
	}
	return newError(codeBundleUnavailable, "")
}

func (h *Handler) gatewayOrigin(r *http.Request) string {
	if h.GatewayOrigin != "" {
		return h.GatewayOrigin
	}
	scheme := "https"
	if r.TLS == nil {
		scheme = "http"
	}
	host := r.Host
	if host == "" || strings.ContainsAny(host, " ;,'\"") {
		return ""
	}
	return scheme + "://" + host
}

// parseUIPath splits "{ext}/{hash}/{path...}" (escaped) and applies the
// §8.3 path rules: a valid extension name, a content hash (":" may arrive
// as %3A), and a clean relative path whose decoded segments are not empty,
// ".", ".." or hidden and contain no "/", "\", NUL or control characters.
// rel is "" for the entry.
func parseUIPath(escaped string) (ext, hash, rel string, ok bool) {
	ext, rest, ok := strings.Cut(escaped, "/")
	if !ok || !manifest.ValidName(ext) {
		return "", "", "", false
	}
	hashSeg, rawPath, _ := strings.Cut(rest, "/")
	hash, err := bundle.ParseHash(hashSeg)
	if err != nil {
		return "", "", "", false
	}
	if rawPath == "" {
		return ext, hash, "", true
	}
	segs := strings.Split(rawPath, "/")
	for i, s := range segs {
		d, err := url.PathUnescape(s)
		if err != nil || !cleanSegment(d) {
			return "", "", "", false
		}
		segs[i] = d
	}
	return ext, hash, strings.Join(segs, "/"), true
}

func cleanSegment(s string) bool {
	if s == "" || s[0] == '.' || len(s) > 255 || !utf8.ValidString(s) {
		return false
	}
	for _, c := range s {
		if c < 0x20 || c == 0x7f || c == '/' || c == '\\' || (c >= 0x80 && c < 0xa0) {
			return false
		}
	}
	return true
}

// uiSourceLoader holds the handler's lazily opened uiSource.
type uiSourceLoader struct {
	mu  sync.Mutex
	src *uiSource
}

// uiSource is the blob store and trust bundle, opened at Provision
// (loadFiles).
type uiSource struct {
	at    time.Time
	store blobstore.Store
	trust *signing.TrustBundle
	err   error
}

// uiTree returns the UI tree of hash from the cache, bound to the trust
// bundle of this config: a tree verified by another one is rebuilt.
func (h *Handler) uiTree(ctx context.Context, hash string) (*uicache.Tree, error) {
	src := h.uiSrc()
	if src.err != nil {
		return nil, src.err
	}
	return h.state.ui.Get(ctx, hash, src.trust.Fingerprint(), h.buildUITree(src))
}

// buildUITree fetches and verifies bundles with the one verified-bundle
// pipeline (internal/bundle/verified), which extracts and seals their
// ui/** under dest, under the §2.1 limits, src's trust bundle and the
// handler's clock.
func (h *Handler) buildUITree(src *uiSource) uicache.Builder {
	return func(ctx context.Context, hash, dest string) (*verified.Bundle, error) {
		return verified.Fetch(ctx, src.store, src.trust, hash, dest, verified.Options{
			Limits: h.bundleLimits,
			Keep:   func(name string) bool { return strings.HasPrefix(name, "ui/") },
			Now:    h.now,
		})
	}
}

// uiSrc returns the blob store and trust bundle Provision opened
// (loadFiles). Without them it tries here — a handler without
// bundle_store and trust_bundle gets the error that /ext-ui needs both —
// retrying a failure at most once per second.
func (h *Handler) uiSrc() *uiSource {
	l := h.uiSource
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.src != nil && (l.src.err == nil || time.Since(l.src.at) < time.Second) {
		return l.src
	}
	src := &uiSource{at: time.Now()}
	l.src = src
	if h.BundleStore == "" || h.TrustBundle == "" {
		src.err = errors.New("bundle_store and trust_bundle are required to serve /ext-ui")
		return src
	}
	if src.store, src.err = blobstore.Open(h.BundleStore); src.err != nil {
		return src
	}
	src.trust, src.err = signing.LoadTrustBundle(h.TrustBundle)
	return src
}
