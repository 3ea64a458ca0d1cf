// Package caddymodule is the extedge gateway, a Caddy HTTP handler module
// (`http.handlers.extedge`, Caddyfile directive `extedge`). It serves
// extension API calls under /api/ext/ by sending them to runnerd processes,
// the iframe UI of installed bundles under /ext-ui/, the JS SDK under
// /ext-sdk/v1/, and a per-tenant debug stream; other requests pass to the
// next handler (typically reverse_proxy to the PSA app). See SPEC §8.
package caddymodule

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/extedge/extedge/caddymodule/auth"
	"github.com/extedge/extedge/caddymodule/ratelimit"
	"github.com/extedge/extedge/internal/bundle"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// Handler is the extedge gateway. Its routes are fixed by the spec:
//
//   - `/api/ext/{extension}/{path...}` — extension API calls (§8.2)
//   - `/ext-ui/{extension}/{content_hash}/{path...}` — iframe UI assets (§8.3)
//   - `/ext-sdk/v1/{iframe,host}.js` — the JS SDK (§8.4), and `/ext-sdk/v1/{ui.js,ui.css,react.js}` — the UI kit (§19)
//   - `/api/ext-debug/stream?extension={name}` — debug stream (§8.4)
//
// Any other request is passed to the next handler.
//
// Provision dials nothing, so `caddy validate` works on a machine without
// the services; it does read the files the configuration names (token,
// key, trust bundle and CA files) and fails naming a missing or unparsable
// one, so a misconfiguration fails at validate, not at the first request
// (SPEC §12). State that must
// survive a config reload — rate-limit buckets, registry caches and their
// change feed, runner health and connection pools, the UI cache index —
// lives in package-level usage pools keyed by the configuration that
// defines it, so a reload with the same settings picks up the same state
// and drops nothing.
type Handler struct {
	// Registry is registryd's service API, used to resolve installs and
	// check bundle status. Required.
	Registry *RegistryConfig `json:"registry,omitempty"`

	// Runners are the runnerd processes that execute handlers. Required.
	Runners *RunnersConfig `json:"runners,omitempty"`

	// Auth configures how callers are authenticated. Required.
	Auth *AuthConfig `json:"auth,omitempty"`

	// BundleStore is the blob store URL bundles are fetched from for UI
	// assets: `file:///dir` or `s3://bucket?endpoint=…`. Required for /ext-ui.
	BundleStore string `json:"bundle_store,omitempty"`

	// TrustBundle is a PEM file of trusted publisher keys; UI assets are
	// served only from bundles whose signature verifies against it. UI
	// trees cached on disk are bound to its fingerprint: those verified by
	// another trust bundle are rebuilt. Required for /ext-ui.
	TrustBundle string `json:"trust_bundle,omitempty"`

	// UICache is where extracted UI trees are kept.
	UICache *UICacheConfig `json:"ui_cache,omitempty"`

	// Timeout bounds one extension call; the runner gets the smaller of
	// this and the endpoint's timeout_ms, and the gateway gives up 500ms
	// after it. Default: `5s`.
	Timeout caddy.Duration `json:"timeout,omitempty"`

	// MaxRequestBody is the largest request body accepted, in bytes.
	// Default: 10 MiB.
	MaxRequestBody int64 `json:"max_request_body,omitempty"`

	// MaxResponseBody is the largest guest response body passed to the
	// client, in bytes; larger ones become 502 response_too_large.
	// Default: 10 MiB.
	MaxResponseBody int64 `json:"max_response_body,omitempty"`

	// RateLimit configures per-tenant and per-extension request limits.
	// Default: no limits.
	RateLimit *RateLimitConfig `json:"rate_limit,omitempty"`

	// CORSOrigins are the origins allowed to call /api/ext from a browser.
	// The literal `null` allows sandboxed iframes (opaque origin).
	// Credentials are never allowed. Default: none.
	CORSOrigins []string `json:"cors_origins,omitempty"`

	// FrameAncestors are the origins allowed to frame /ext-ui pages
	// (CSP frame-ancestors). Default: `'self'`.
	FrameAncestors []string `json:"frame_ancestors,omitempty"`

	// ContentSecurityPolicy replaces the default CSP of /ext-ui HTML. The
	// placeholders {frame_ancestors} and {gateway_origin} are substituted.
	// A policy without a `sandbox` directive gets `sandbox allow-scripts
	// allow-forms allow-popups allow-downloads`; one may narrow it, and
	// `allow-same-origin` is refused at start. Non-HTML files get fixed
	// sandbox policies (SPEC §8.3).
	ContentSecurityPolicy string `json:"content_security_policy,omitempty"`

	// GatewayOrigin is added to the CSP connect-src of /ext-ui HTML. Default:
	// the scheme and host of the request.
	GatewayOrigin string `json:"gateway_origin,omitempty"`

	// UIHost, when set, serves /ext-ui only on this host name (compared
	// without the port, unless UIHost has one); on other hosts /ext-ui is
	// 404. Use a dedicated, cookieless name (`ext-ui.psa.example.com`),
	// never the PSA's own: extension files then cannot even be fetched
	// from the PSA's origin (SPEC §16). Set GatewayOrigin to the API origin
	// so the UI's CSP lets it call /api/ext there. Default: any host.
	UIHost string `json:"ui_host,omitempty"`

	// UIRateLimit limits, per client IP (Caddy's client_ip, which honours
	// trusted_proxies), the /ext-ui requests that need a registry lookup
	// (an extension and hash not in the cache); over it they get 429
	// rate_limited. Cached versions are never limited, so a page's many
	// asset requests cost nothing against it. In memory, bounded by
	// rate_limit's max_keys. Default: no limit.
	UIRateLimit *RateSpec `json:"ui_rate_limit,omitempty"`

	// UIMaxLookups bounds the registry lookups /ext-ui makes at once; a
	// request that cannot get a slot within a second is 429 rate_limited,
	// so made-up hashes never queue up in front of real assets or reach
	// 5xx. Answers, including "no such version", are cached (unknown ones
	// for 5s, in a table of their own). Default: 16.
	UIMaxLookups int `json:"ui_max_lookups,omitempty"`

	// TenantConcurrency caps one tenant's calls in flight at once across
	// all runners of this gateway process (SPEC §17). A call over it waits
	// in the tenant's queue (TenantQueue, TenantQueueWait); one that finds
	// the queue full or waits in vain is refused as if every runner were
	// busy: 503 runners_busy with Retry-After. A runner's concurrency_limited answer is tried on the
	// next runner only while the tenant, counting the call itself, is under
	// the cap (runnerpool.Pool.Execute). Handlers that list the same
	// runners share one count, with the cap of the last one provisioned.
	// Default: 2 × the number of runners.
	TenantConcurrency int `json:"tenant_concurrency,omitempty"`

	// TenantQueue is how many of one tenant's calls over its
	// TenantConcurrency may wait, first in first out, for one of that
	// tenant's slots. They wait behind the tenant's own calls only: other
	// tenants' calls never queue behind them. Waiting rather than refusing
	// at once is what keeps a client that floods in a closed loop from
	// turning every instant 503 into its next request, at the cost of the
	// gateway holding those connections. The wait counts against the
	// call's timeout. A negative value (`off` in the Caddyfile) refuses
	// calls over the cap at once. Default: equal to TenantConcurrency.
	TenantQueue int `json:"tenant_queue,omitempty"`

	// TenantQueueWait is the longest a call waits in its tenant's queue
	// before it is refused with 503 runners_busy. Default: `1s`.
	TenantQueueWait caddy.Duration `json:"tenant_queue_wait,omitempty"`

	// TenantCostBytes weighs calls in TenantConcurrency by what they cost
	// the gateway: a call holds 1 + m/TenantCostBytes units of its
	// tenant's cap, m being its install's recent mean response size
	// (runnerpool.callCosts). With the defaults, a tenant whose calls
	// answer 4 MiB runs one at a time instead of four: copying bodies is
	// CPU this process spends at normal priority, and four such streams
	// took most of a 2-core node from the other tenants. Negative (`off`
	// in the Caddyfile): every call weighs 1. Default: 1 MiB.
	TenantCostBytes int64 `json:"tenant_cost_bytes,omitempty"`

	// BreakerFailures is how many consecutive failed calls open an
	// install's circuit breaker (SPEC §17). A failure is a call that timed
	// out or trapped: the runner's codes timeout, trap, memory_limit and
	// fuel_exhausted, or the gateway's own 504 timeout when the runner did
	// not answer in time. Any guest answer (whatever its status, 5xx
	// included: the guest chose it and returned), handler_error and
	// response_too_large reset the count; other outcomes (refusals, runner
	// or transport failures, the client going away) neither count nor
	// reset. While open, calls of the install answer 503
	// extension_unhealthy with Retry-After. A negative value disables the
	// breaker. Default: 20.
	BreakerFailures int `json:"breaker_failures,omitempty"`

	// BreakerCooldown is how long an open breaker refuses calls. Then one
	// probe call is let through (others still get extension_unhealthy
	// while it runs): a good one closes the breaker, a failed one opens it
	// for another cooldown. Breaker state is per gateway process and
	// survives config reloads. Default: `10s`.
	BreakerCooldown caddy.Duration `json:"breaker_cooldown,omitempty"`

	// RefusalDelay holds a tenant-caused refusal — 429 rate_limited or
	// quota_exceeded, 503 extension_unhealthy or runners_busy — this long
	// (never longer than its Retry-After) before it is answered, so a
	// client that floods in a closed loop ignoring Retry-After gets one
	// refusal per connection per delay instead of thousands a second
	// (Handler.pace). Negative (`off` in the Caddyfile): answer at once.
	// Default: `1s`.
	RefusalDelay caddy.Duration `json:"refusal_delay,omitempty"`

	// RefusalMaxParked bounds the refusals held by RefusalDelay at once in
	// this handler; past it refusals are answered at once. Default: 1024.
	RefusalMaxParked int `json:"refusal_max_parked,omitempty"`

	state  *sharedState
	parked chan struct{} // RefusalMaxParked places for pace
	auth   auth.Authenticator
	logger *zap.Logger
	cors   map[string]bool
	csp    string

	uiSource  *uiSourceLoader
	uiLookups chan struct{} // UIMaxLookups slots
	// bundleLimits bound the UI bundles fetched (SPEC §2.1 defaults);
	// now is the clock their certificates are checked against. Both are
	// set in Provision so tests can replace them.
	bundleLimits bundle.Limits
	now          func() time.Time
}

// RegistryConfig points at registryd.
type RegistryConfig struct {
	// URL is registryd's base URL, e.g. `http://127.0.0.1:7070`.
	URL string `json:"url,omitempty"`
	// TokenFile holds the service token (whole file, whitespace trimmed).
	TokenFile string `json:"token_file,omitempty"`
	// CAFile is a PEM file of the CA certificates that sign an https://
	// registry's certificate, trusted instead of the system roots.
	// Default: the system roots.
	CAFile string `json:"ca_file,omitempty"`
	// CacheTTL is how long a resolved install or bundle status is used
	// before it is revalidated. The change feed invalidates sooner.
	// Default: `30s` (registryapi.DefaultCacheTTL, shared with runnerd).
	CacheTTL caddy.Duration `json:"cache_ttl,omitempty"`
	// MaxStale is how long, since the registry last confirmed them,
	// cached answers keep serving while the registry is unreachable; after
	// it, calls fail with 503 registry_unavailable. Default: `5m`
	// (registryapi.DefaultCacheMaxStale, shared with runnerd).
	MaxStale caddy.Duration `json:"max_stale,omitempty"`
}

// RunnersConfig lists the runnerd processes.
type RunnersConfig struct {
	// Addresses: `unix//abs/path.sock`, `unix:///abs/path.sock`,
	// `tcp://host:port` or `host:port`.
	Addresses []string `json:"addresses,omitempty"`
	// TokenFile holds the runner token (whole file, whitespace trimmed).
	TokenFile string `json:"token_file,omitempty"`
	// CAFile, when set, makes the gateway talk HTTPS to its TCP runners
	// (runnerd --tls-cert/--tls-key), trusting the PEM CA certificates in
	// it. Unix sockets stay plain. Default: plain HTTP.
	CAFile string `json:"ca_file,omitempty"`
	// HealthInterval is the period of active /readyz probes. Default: `5s`.
	HealthInterval caddy.Duration `json:"health_interval,omitempty"`
	// FailDuration is how long a runner that refused a connection stays
	// out of rotation. Default: `5s`.
	FailDuration caddy.Duration `json:"fail_duration,omitempty"`
}

// AuthConfig selects and configures authentication.
type AuthConfig struct {
	// Mode is `jwt` or `trusted_header`.
	Mode string `json:"mode,omitempty"`
	// Header is the tenant header of trusted_header mode. Default:
	// `X-Alga-Tenant`.
	Header string `json:"header,omitempty"`
	// SecretHeader and SecretHeaderFile (trusted_header mode) make the
	// gateway accept the tenant header only from a request that also
	// carries SecretHeader with the file's content (whitespace trimmed, at
	// least 16 bytes), set by the trusted proxy, e.g. forward_auth's
	// `header_up`. Without them the mode trusts the header alone and logs
	// a warning at start. The file is read at provision.
	SecretHeader     string `json:"secret_header,omitempty"`
	SecretHeaderFile string `json:"secret_header_file,omitempty"`
	// KeyFile is a PEM public key (RS256, ES256 or EdDSA tokens).
	KeyFile string `json:"key_file,omitempty"`
	// SecretFile holds an HS256 secret.
	SecretFile string `json:"secret_file,omitempty"`
	// JWKSURL is fetched on first use and cached (refreshed every 5m and
	// on unknown key ids).
	JWKSURL string `json:"jwks_url,omitempty"`
	// Issuer, when set, must equal the token's `iss`.
	Issuer string `json:"issuer,omitempty"`
	// Audience, when set, must be in the token's `aud`.
	Audience string `json:"audience,omitempty"`
	// TenantClaim names the tenant claim. Default: `tenant`.
	TenantClaim string `json:"tenant_claim,omitempty"`
	// Cookie is read for the token when there is no Authorization header.
	// A call authenticated by the cookie with a method other than GET,
	// HEAD or OPTIONS must come from the gateway's own origin or one in
	// cors_origins (never `null`), by `Origin` or else
	// `Sec-Fetch-Site: same-origin`; otherwise it is 403 forbidden (CSRF).
	Cookie string `json:"cookie,omitempty"`
	// RequirePermissions makes GET/HEAD need `extension:read` and other
	// methods `extension:write` in the `perms` claim.
	RequirePermissions bool `json:"require_permissions,omitempty"`
}

// RateLimitConfig configures request limits.
type RateLimitConfig struct {
	// PerTenant limits all calls of one tenant.
	PerTenant *RateSpec `json:"per_tenant,omitempty"`
	// PerExtension limits the calls of one tenant to one extension.
	PerExtension *RateSpec `json:"per_extension,omitempty"`
	// Redis, when set (`redis://host:port/db`), keeps the limits and the
	// install quotas' counters in Redis so they hold across gateway pods;
	// on Redis errors the gateway falls back to in-memory counters for
	// that call and logs it (at most every 10 s).
	Redis string `json:"redis,omitempty"`
	// MaxKeys bounds the in-memory limiter. Default: 100000.
	MaxKeys int `json:"max_keys,omitempty"`
}

// RateSpec is Requests per Per with a burst.
type RateSpec struct {
	Requests int            `json:"requests,omitempty"`
	Per      caddy.Duration `json:"per,omitempty"`
	// Burst defaults to Requests.
	Burst int `json:"burst,omitempty"`
}

func (r *RateSpec) rate() ratelimit.Rate {
	if r == nil {
		return ratelimit.Rate{}
	}
	b := r.Burst
	if b == 0 {
		b = r.Requests
	}
	return ratelimit.Rate{Events: r.Requests, Per: time.Duration(r.Per), Burst: b}
}

// UICacheConfig configures the UI asset cache.
type UICacheConfig struct {
	// Dir holds extracted UI trees. Default: `$XDG_CACHE_HOME/extedge/ui`
	// under Caddy's data directory.
	Dir string `json:"dir,omitempty"`
	// MaxSize is the total size of extracted trees in bytes, evicted LRU.
	// Default: 1 GiB.
	MaxSize int64 `json:"max_size,omitempty"`
}

// Defaults.
const (
	defaultTimeout      = 5 * time.Second
	defaultUIMaxLookups = 16
	defaultMaxBody      = 10 << 20
	defaultUICacheSize  = 1 << 30
	defaultBreakerFails = 20
	defaultBreakerCool  = 10 * time.Second
	// defaultTenantQueueWait bounds a queued call's wait for its tenant's slot.
	defaultTenantQueueWait = time.Second
	// defaultRefusalDelay and defaultRefusalMaxParked pace tenant-caused
	// refusals (Handler.pace).
	defaultRefusalDelay     = time.Second
	defaultRefusalMaxParked = 1024
	// deadlineGrace is how much longer than the guest's timeout a call
	// may take: queueing for a runner slot, fetching and compiling the
	// bundle count against it. The runner gets the call's deadline in the
	// envelope (runnerpool.Execute), so its own timeout error arrives
	// before the gateway gives up.
	deadlineGrace = 500 * time.Millisecond
)

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.extedge",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Provision fills defaults, reads the configured files (loadFiles) and
// attaches shared state. It has no side effects beyond the usage pools:
// no dialing, no writes.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	h.bundleLimits = bundle.DefaultLimits()
	h.now = time.Now
	if h.Timeout == 0 {
		h.Timeout = caddy.Duration(defaultTimeout)
	}
	if h.MaxRequestBody == 0 {
		h.MaxRequestBody = defaultMaxBody
	}
	if h.MaxResponseBody == 0 {
		h.MaxResponseBody = defaultMaxBody
	}
	if h.UICache == nil {
		h.UICache = new(UICacheConfig)
	}
	if h.UICache.Dir == "" {
		h.UICache.Dir = caddy.AppDataDir() + "/extedge/ui"
	}
	if h.UICache.MaxSize == 0 {
		h.UICache.MaxSize = defaultUICacheSize
	}
	if len(h.FrameAncestors) == 0 {
		h.FrameAncestors = []string{"'self'"}
	}
	if h.UIMaxLookups == 0 {
		h.UIMaxLookups = defaultUIMaxLookups
	}
	if h.BreakerFailures == 0 {
		h.BreakerFailures = defaultBreakerFails
	}
	if h.BreakerCooldown == 0 {
		h.BreakerCooldown = caddy.Duration(defaultBreakerCool)
	}
	if h.TenantQueueWait == 0 {
		h.TenantQueueWait = caddy.Duration(defaultTenantQueueWait)
	}
	if h.RefusalDelay == 0 {
		h.RefusalDelay = caddy.Duration(defaultRefusalDelay)
	}
	if h.RefusalMaxParked == 0 {
		h.RefusalMaxParked = defaultRefusalMaxParked
	}
	if h.RefusalDelay > 0 {
		h.parked = make(chan struct{}, h.RefusalMaxParked)
	}
	h.uiLookups = make(chan struct{}, h.UIMaxLookups)
	h.cors = make(map[string]bool, len(h.CORSOrigins))
	for _, o := range h.CORSOrigins {
		h.cors[o] = true
	}
	h.csp = h.ContentSecurityPolicy
	if h.csp == "" {
		h.csp = defaultCSP
	}
	h.csp = strings.ReplaceAll(h.csp, "{frame_ancestors}", strings.Join(h.FrameAncestors, " "))
	csp, err := htmlPolicy(h.csp)
	if err != nil {
		return err
	}
	h.csp = csp

	if err := h.Validate(); err != nil {
		return err
	}
	a, err := h.newAuthenticator()
	if err != nil {
		return err
	}
	h.auth = a
	files, err := h.loadFiles(a)
	if err != nil {
		return err
	}
	h.uiSource = &uiSourceLoader{src: files.ui}
	st, err := acquireState(h, files)
	if err != nil {
		return err
	}
	h.state = st
	registerMetrics(ctx.GetMetricsRegistry())
	return nil
}

// Validate checks the configuration.
func (h *Handler) Validate() error {
	if h.Registry == nil || h.Registry.URL == "" {
		return errors.New("extedge: registry URL is required")
	}
	if !strings.HasPrefix(h.Registry.URL, "http://") && !strings.HasPrefix(h.Registry.URL, "https://") {
		return fmt.Errorf("extedge: registry URL %q must be http:// or https://", h.Registry.URL)
	}
	if h.Runners == nil || len(h.Runners.Addresses) == 0 {
		return errors.New("extedge: at least one runner is required")
	}
	for _, a := range h.Runners.Addresses {
		if err := checkRunnerAddress(a); err != nil {
			return fmt.Errorf("extedge: %v", err)
		}
	}
	if err := h.validateClients(); err != nil {
		return err
	}
	if h.Auth == nil {
		return errors.New("extedge: auth is required")
	}
	switch h.Auth.Mode {
	case "jwt":
		n := 0
		for _, s := range []string{h.Auth.KeyFile, h.Auth.SecretFile, h.Auth.JWKSURL} {
			if s != "" {
				n++
			}
		}
		if n != 1 {
			return errors.New("extedge: auth jwt needs exactly one of key_file, secret_file, jwks_url")
		}
	case "trusted_header":
		if h.Auth.RequirePermissions {
			return errors.New("extedge: require_permissions needs auth jwt (trusted_header carries no permissions)")
		}
		if (h.Auth.SecretHeader == "") != (h.Auth.SecretHeaderFile == "") {
			return errors.New("extedge: auth trusted_header secret_header needs a header name and a file")
		}
	default:
		return fmt.Errorf("extedge: unknown auth mode %q (want jwt or trusted_header)", h.Auth.Mode)
	}
	if h.Timeout < 0 || h.MaxRequestBody < 0 || h.MaxResponseBody < 0 {
		return errors.New("extedge: timeout and body limits must not be negative")
	}
	if h.UIMaxLookups < 0 {
		return errors.New("extedge: ui_max_lookups must not be negative")
	}
	if h.TenantConcurrency < 0 {
		return errors.New("extedge: tenant_concurrency must not be negative")
	}
	if h.BreakerCooldown < 0 {
		return errors.New("extedge: breaker_cooldown must not be negative")
	}
	if h.TenantQueueWait < 0 {
		return errors.New("extedge: tenant_queue_wait must not be negative")
	}
	if h.RefusalMaxParked < 0 {
		return errors.New("extedge: refusal_max_parked must not be negative")
	}
	if r := h.UIRateLimit; r != nil && (r.Requests <= 0 || r.Per <= 0 || r.Burst < 0) {
		return errors.New("extedge: ui_rate_limit needs a positive rate")
	}
	if strings.ContainsAny(h.UIHost, "/ ") {
		return fmt.Errorf("extedge: ui_host %q must be a host name, optionally with a port", h.UIHost)
	}
	if rl := h.RateLimit; rl != nil {
		for name, r := range map[string]*RateSpec{"per_tenant": rl.PerTenant, "per_extension": rl.PerExtension} {
			if r != nil && (r.Requests <= 0 || r.Per <= 0 || r.Burst < 0) {
				return fmt.Errorf("extedge: rate_limit %s needs a positive rate", name)
			}
		}
		if rl.Redis != "" && !strings.HasPrefix(rl.Redis, "redis://") && !strings.HasPrefix(rl.Redis, "rediss://") {
			return fmt.Errorf("extedge: rate_limit redis %q must be a redis:// URL", rl.Redis)
		}
	}
	for _, o := range h.CORSOrigins {
		if o != "null" && !strings.HasPrefix(o, "https://") && !strings.HasPrefix(o, "http://") {
			return fmt.Errorf("extedge: cors origin %q must be an http(s) origin or null", o)
		}
		if o == "*" {
			return errors.New("extedge: cors origin * is not allowed")
		}
	}
	return nil
}

func (h *Handler) newAuthenticator() (auth.Authenticator, error) {
	if h.Auth.Mode == "trusted_header" {
		hdr := h.Auth.Header
		if hdr == "" {
			hdr = "X-Alga-Tenant"
		}
		t := auth.TrustedHeader{Header: hdr, SecretHeader: h.Auth.SecretHeader}
		if t.SecretHeader == "" {
			h.logger.Warn("auth trusted_header without secret_header: any request that reaches this handler can choose its tenant; route every request through forward_auth or set secret_header",
				zap.String("header", hdr))
			return t, nil
		}
		secret, err := os.ReadFile(h.Auth.SecretHeaderFile)
		if err != nil {
			return nil, fmt.Errorf("extedge: auth trusted_header secret_header: %w", err)
		}
		t.Secret = bytes.TrimSpace(secret)
		if len(t.Secret) < 16 {
			return nil, fmt.Errorf("extedge: auth trusted_header secret_header: %s holds fewer than 16 bytes", h.Auth.SecretHeaderFile)
		}
		return t, nil
	}
	cfg := auth.JWTConfig{KeyFile: h.Auth.KeyFile, SecretFile: h.Auth.SecretFile,
		Issuer: h.Auth.Issuer, Audience: h.Auth.Audience, TenantClaim: h.Auth.TenantClaim, Cookie: h.Auth.Cookie}
	if h.Auth.JWKSURL != "" {
		cfg.JWKS = acquireJWKS(h.Auth.JWKSURL)
	}
	return auth.NewJWT(cfg)
}

// Cleanup releases this config's references to shared state.
func (h *Handler) Cleanup() error {
	if h.state != nil {
		h.state.release()
	}
	if h.Auth != nil && h.Auth.JWKSURL != "" {
		releaseJWKS(h.Auth.JWKSURL)
	}
	return nil
}

// Route prefixes.
const (
	prefixAPI  = "/api/ext/"
	prefixUI   = "/ext-ui/"
	prefixSDK  = "/ext-sdk/v1/"
	pathDebug  = "/api/ext-debug/stream"
	routeAPI   = "api"
	routeUI    = "ui"
	routeSDK   = "sdk"
	routeDebug = "debug"
	routeOther = "other"
)

// ServeHTTP implements caddyhttp.MiddlewareHandler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	p := r.URL.Path
	switch {
	case strings.HasPrefix(p, prefixAPI):
		h.serveAPI(w, r)
		return nil
	case strings.HasPrefix(p, prefixUI):
		h.serveUI(w, r)
		return nil
	case strings.HasPrefix(p, prefixSDK):
		h.serveSDK(w, r)
		return nil
	case p == pathDebug:
		h.serveDebug(w, r)
		return nil
	}
	return next.ServeHTTP(w, r)
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.Validator             = (*Handler)(nil)
	_ caddy.CleanerUpper          = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)
