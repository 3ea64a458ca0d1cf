package caddymodule

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/golang-jwt/jwt/v5"

	"github.com/extedge/extedge/internal/execapi"
	"github.com/extedge/extedge/internal/registryapi"
)

// TestPipelineErrorCodes provokes every §8.2 gateway error code and
// asserts status, code and the extra headers each one carries.
func TestPipelineErrorCodes(t *testing.T) {
	type tc struct {
		name    string
		setup   func(h *Handler, g *gateway)
		prepare func(t *testing.T, g *gateway)
		req     func(t *testing.T, g *gateway) *http.Request
		status  int
		code    string
		header  [2]string // name, want (want "*" = present)
	}
	get := func(path string) func(t *testing.T, g *gateway) *http.Request {
		return func(t *testing.T, g *gateway) *http.Request { return g.req(t, "GET", path, "") }
	}
	withToken := func(path string, claims jwt.MapClaims) func(t *testing.T, g *gateway) *http.Request {
		return func(t *testing.T, g *gateway) *http.Request {
			r := httptest.NewRequest("GET", path, nil)
			r.Header.Set("Authorization", "Bearer "+token(t, claims))
			return r
		}
	}
	cases := []tc{
		{name: "invalid extension id is extension_not_found", req: get("/api/ext/Not_A_Name/agreements"), status: 404, code: "extension_not_found"},
		{name: "single-label extension id is extension_not_found", req: get("/api/ext/acme/agreements"), status: 404, code: "extension_not_found"},
		{name: "missing token is unauthenticated", req: func(t *testing.T, g *gateway) *http.Request {
			return httptest.NewRequest("GET", "/api/ext/"+testExt+"/agreements", nil)
		}, status: 401, code: "unauthenticated"},
		{name: "bad signature is unauthenticated", req: func(t *testing.T, g *gateway) *http.Request {
			r := httptest.NewRequest("GET", "/api/ext/"+testExt+"/agreements", nil)
			tok, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"tenant": testTenant, "iss": "psa", "aud": "extedge", "exp": time.Now().Add(time.Hour).Unix()}).SignedString([]byte("another-secret-0123456789"))
			r.Header.Set("Authorization", "Bearer "+tok)
			return r
		}, status: 401, code: "unauthenticated"},
		{name: "expired token is unauthenticated", req: withToken("/api/ext/"+testExt+"/agreements", jwt.MapClaims{"exp": time.Now().Add(-time.Hour).Unix()}), status: 401, code: "unauthenticated"},
		{name: "token without exp is unauthenticated", req: withToken("/api/ext/"+testExt+"/agreements", jwt.MapClaims{"exp": nil}), status: 401, code: "unauthenticated"},
		{name: "token not yet valid is unauthenticated", req: withToken("/api/ext/"+testExt+"/agreements", jwt.MapClaims{"nbf": time.Now().Add(time.Hour).Unix()}), status: 401, code: "unauthenticated"},
		{name: "wrong issuer is unauthenticated", req: withToken("/api/ext/"+testExt+"/agreements", jwt.MapClaims{"iss": "other"}), status: 401, code: "unauthenticated"},
		{name: "wrong audience is unauthenticated", req: withToken("/api/ext/"+testExt+"/agreements", jwt.MapClaims{"aud": "other"}), status: 401, code: "unauthenticated"},
		{name: "missing tenant claim is unauthenticated", req: withToken("/api/ext/"+testExt+"/agreements", jwt.MapClaims{"tenant": nil}), status: 401, code: "unauthenticated"},
		{name: "malformed tenant claim is unauthenticated", req: withToken("/api/ext/"+testExt+"/agreements", jwt.MapClaims{"tenant": "a/b"}), status: 401, code: "unauthenticated"},
		{name: "ext claim for another extension is forbidden", req: withToken("/api/ext/"+testExt+"/agreements", jwt.MapClaims{"ext": "com.other.ext"}), status: 403, code: "forbidden"},
		{name: "ext claim that is a number is forbidden", req: withToken("/api/ext/"+testExt+"/agreements", jwt.MapClaims{"ext": 42}), status: 403, code: "forbidden"},
		{name: "ext claim that is an object is forbidden", req: withToken("/api/ext/"+testExt+"/agreements", jwt.MapClaims{"ext": map[string]any{"name": testExt}}), status: 403, code: "forbidden"},
		{name: "ext claim that is empty is forbidden", req: withToken("/api/ext/"+testExt+"/agreements", jwt.MapClaims{"ext": ""}), status: 403, code: "forbidden"},
		{name: "ext claim that is an array without this extension is forbidden", req: withToken("/api/ext/"+testExt+"/agreements", jwt.MapClaims{"ext": []any{"com.other.ext"}}), status: 403, code: "forbidden"},
		{name: "ext claim that is an array with a non-string is forbidden", req: withToken("/api/ext/"+testExt+"/agreements", jwt.MapClaims{"ext": []any{testExt, 7}}), status: 403, code: "forbidden"},
		{name: "ext claim that is an empty array is forbidden", req: withToken("/api/ext/"+testExt+"/agreements", jwt.MapClaims{"ext": []any{}}), status: 403, code: "forbidden"},
		{name: "require_permissions without extension:read is forbidden",
			setup: func(h *Handler, g *gateway) { h.Auth.RequirePermissions = true },
			req:   withToken("/api/ext/"+testExt+"/agreements", jwt.MapClaims{"perms": []string{"extension:write"}}), status: 403, code: "forbidden"},
		{name: "require_permissions POST without extension:write is forbidden",
			setup: func(h *Handler, g *gateway) { h.Auth.RequirePermissions = true },
			req: func(t *testing.T, g *gateway) *http.Request {
				r := httptest.NewRequest("POST", "/api/ext/"+testExt+"/agreements/sync", strings.NewReader("{}"))
				r.Header.Set("Authorization", "Bearer "+token(t, jwt.MapClaims{"perms": "extension:read"}))
				return r
			}, status: 403, code: "forbidden"},
		{name: "tenant over its rate is rate_limited with Retry-After",
			setup: func(h *Handler, g *gateway) {
				h.RateLimit = &RateLimitConfig{PerTenant: &RateSpec{Requests: 1, Per: caddyMinute, Burst: 1}}
			},
			prepare: func(t *testing.T, g *gateway) { g.do(g.req(t, "GET", "/api/ext/"+testExt+"/agreements", "")) },
			req:     get("/api/ext/" + testExt + "/agreements"), status: 429, code: "rate_limited", header: [2]string{"Retry-After", "*"}},
		{name: "extension over its rate is rate_limited",
			setup: func(h *Handler, g *gateway) {
				h.RateLimit = &RateLimitConfig{PerExtension: &RateSpec{Requests: 1, Per: caddyMinute, Burst: 1}}
			},
			prepare: func(t *testing.T, g *gateway) { g.do(g.req(t, "GET", "/api/ext/"+testExt+"/agreements", "")) },
			req:     get("/api/ext/" + testExt + "/agreements"), status: 429, code: "rate_limited", header: [2]string{"Retry-After", "*"}},
		{name: "extension not installed for tenant is not_installed", req: get("/api/ext/com.acme.other/agreements"), status: 404, code: "not_installed"},
		{name: "disabled install is not_installed",
			prepare: func(t *testing.T, g *gateway) {
				inst := testInstall()
				inst.Status = "disabled"
				g.registry.setInstall(testTenant, testExt, inst)
			},
			req: get("/api/ext/" + testExt + "/agreements"), status: 404, code: "not_installed"},
		{name: "registry down with nothing cached is registry_unavailable",
			prepare: func(t *testing.T, g *gateway) { g.registry.down.Store(true) },
			req:     get("/api/ext/" + testExt + "/agreements"), status: 503, code: "registry_unavailable"},
		{name: "unknown path is endpoint_not_found", req: get("/api/ext/" + testExt + "/nothing/here"), status: 404, code: "endpoint_not_found"},
		{name: "path under another method is method_not_allowed with Allow",
			req: func(t *testing.T, g *gateway) *http.Request {
				return g.req(t, "DELETE", "/api/ext/"+testExt+"/agreements/42", "")
			},
			status: 405, code: "method_not_allowed", header: [2]string{"Allow", "GET, HEAD, PUT"}},
		{name: "install over its invocation quota is quota_exceeded",
			prepare: func(t *testing.T, g *gateway) {
				inst := testInstall()
				inst.Quotas = &registryapi.Quotas{InvocationsPerMinute: 1}
				g.registry.setInstall(testTenant, testExt, inst)
				g.do(g.req(t, "GET", "/api/ext/"+testExt+"/agreements", ""))
			},
			req: get("/api/ext/" + testExt + "/agreements"), status: 429, code: "quota_exceeded", header: [2]string{"Retry-After", "*"}},
		{name: "body over the limit by Content-Length is payload_too_large",
			setup: func(h *Handler, g *gateway) { h.MaxRequestBody = 16 },
			req: func(t *testing.T, g *gateway) *http.Request {
				return g.req(t, "POST", "/api/ext/"+testExt+"/agreements/sync", strings.Repeat("x", 17))
			}, status: 413, code: "payload_too_large"},
		{name: "chunked body over the limit is payload_too_large",
			setup: func(h *Handler, g *gateway) { h.MaxRequestBody = 16 },
			req: func(t *testing.T, g *gateway) *http.Request {
				r := g.req(t, "POST", "/api/ext/"+testExt+"/agreements/sync", "")
				r.Body = io.NopCloser(strings.NewReader(strings.Repeat("x", 1000)))
				r.ContentLength = -1
				return r
			}, status: 413, code: "payload_too_large"},
		{name: "runner timeout is 504 timeout",
			prepare: func(t *testing.T, g *gateway) { g.runner.setRespond(runnerFails(execapi.CodeTimeout)) },
			req:     get("/api/ext/" + testExt + "/agreements"), status: 504, code: "timeout"},
		{name: "runner that never answers is 504 timeout",
			setup: func(h *Handler, g *gateway) { h.Timeout = caddyMillis(100) },
			prepare: func(t *testing.T, g *gateway) {
				g.runner.setRespond(func(*execapi.Request) (int, any) { time.Sleep(900 * time.Millisecond); return 200, nil })
			},
			req: get("/api/ext/" + testExt + "/agreements"), status: 504, code: "timeout"},
		{name: "runner concurrency_limited is 503 runners_busy with Retry-After",
			prepare: func(t *testing.T, g *gateway) { g.runner.setRespond(runnerFails(execapi.CodeConcurrencyLimited)) },
			req:     get("/api/ext/" + testExt + "/agreements"), status: 503, code: "runners_busy", header: [2]string{"Retry-After", "*"}},
		{name: "runner payload_too_large is 413",
			prepare: func(t *testing.T, g *gateway) { g.runner.setRespond(runnerFails(execapi.CodePayloadTooLarge)) },
			req:     get("/api/ext/" + testExt + "/agreements"), status: 413, code: "payload_too_large"},
		{name: "runner trap is 502 trap",
			prepare: func(t *testing.T, g *gateway) { g.runner.setRespond(runnerFails(execapi.CodeTrap)) },
			req:     get("/api/ext/" + testExt + "/agreements"), status: 502, code: "trap"},
		{name: "runner handler_error is 502 handler_error",
			prepare: func(t *testing.T, g *gateway) { g.runner.setRespond(runnerFails(execapi.CodeHandlerError)) },
			req:     get("/api/ext/" + testExt + "/agreements"), status: 502, code: "handler_error"},
		{name: "runner internal is 502 internal",
			prepare: func(t *testing.T, g *gateway) { g.runner.setRespond(runnerFails(execapi.CodeInternal)) },
			req:     get("/api/ext/" + testExt + "/agreements"), status: 502, code: "internal"},
		{name: "guest body over max_response_body is 502 response_too_large",
			setup: func(h *Handler, g *gateway) { h.MaxResponseBody = 1024 },
			prepare: func(t *testing.T, g *gateway) {
				g.runner.setRespond(func(*execapi.Request) (int, any) {
					return 200, execapi.Response{Status: 200, Body: []byte(strings.Repeat("y", 1025))}
				})
			},
			req: get("/api/ext/" + testExt + "/agreements"), status: 502, code: "response_too_large"},
		{name: "no runner reachable is 503 runners_unavailable",
			prepare: func(t *testing.T, g *gateway) { g.runner.stop() },
			req:     get("/api/ext/" + testExt + "/agreements"), status: 503, code: "runners_unavailable", header: [2]string{"Retry-After", "*"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g := newGateway(t, c.setup)
			if c.prepare != nil {
				c.prepare(t, g)
			}
			w := g.do(c.req(t, g))
			if w.Code != c.status {
				t.Fatalf("status = %d, want %d; body %s", w.Code, c.status, w.Body.String())
			}
			if got := errorCode(t, w); got != c.code {
				t.Fatalf("code = %q, want %q", got, c.code)
			}
			if strings.Contains(w.Body.String(), "internal detail") {
				t.Errorf("runner message leaked to client: %s", w.Body.String())
			}
			if name := c.header[0]; name != "" {
				got := w.Header().Get(name)
				if got == "" || (c.header[1] != "*" && got != c.header[1]) {
					t.Errorf("%s = %q, want %q", name, got, c.header[1])
				}
			}
		})
	}
}

const caddyMinute = caddy.Duration(time.Minute)

func caddyMillis(n int) caddy.Duration { return caddy.Duration(time.Duration(n) * time.Millisecond) }

func TestPipelineSuccess(t *testing.T) {
	g := newGateway(t, nil)
	r := g.req(t, "GET", "/api/ext/"+testExt+"/agreements/42?page=2&page=3", "")
	w := g.do(r)
	if w.Code != 200 {
		t.Fatalf("status %d: %s", w.Code, w.Body.String())
	}
	env := g.runner.lastRequest()
	if env.Endpoint.Path != "/agreements/:id" || env.Endpoint.Params["id"] != "42" || env.Endpoint.Handler != "dist/handlers/get" {
		t.Errorf("endpoint = %+v", env.Endpoint)
	}
	if env.HTTP.Query["page"] != "2" {
		t.Errorf("query = %v, want first value", env.HTTP.Query)
	}
	if env.Context.TenantID != testTenant || env.Context.InstallID != "inst-1" || env.Context.ContentHash != testHash || env.Context.VersionID != "ver-1" {
		t.Errorf("context = %+v", env.Context)
	}
	if env.Limits.TimeoutMS != 2000 {
		t.Errorf("timeout_ms = %d, want the configured 2000", env.Limits.TimeoutMS)
	}
	if env.User == nil || env.User.ID != "u-17" || env.User.Email != "ann@example.com" || env.User.Type != "internal" {
		t.Errorf("user = %+v (install has user.read)", env.User)
	}
	if string(env.Config) != `{"region":"emea"}` {
		t.Errorf("config = %s", env.Config)
	}
	if w.Header().Get("X-Request-Id") != env.Context.RequestID || env.HTTP.Headers["x-request-id"] != env.Context.RequestID {
		t.Errorf("request id not propagated")
	}
}

func TestEnvelopeCarriesInstanceReuse(t *testing.T) {
	t.Run("an install that did not opt in sends none", func(t *testing.T) {
		g := newGateway(t, nil)
		if w := g.do(g.req(t, "GET", "/api/ext/"+testExt+"/agreements/42", "")); w.Code != 200 {
			t.Fatalf("status %d: %s", w.Code, w.Body.String())
		}
		if env := g.runner.lastRequest(); env.InstanceReuse != nil {
			t.Fatalf("instance_reuse = %+v", env.InstanceReuse)
		}
	})
	t.Run("an install that opted in sends its bounds", func(t *testing.T) {
		g := newGateway(t, nil)
		inst := testInstall()
		inst.InstanceReuse = &registryapi.InstanceReuse{Enabled: true, MaxCalls: 7, MaxAgeMS: 9000}
		g.registry.setInstall(testTenant, testExt, inst)
		if w := g.do(g.req(t, "GET", "/api/ext/"+testExt+"/agreements/42", "")); w.Code != 200 {
			t.Fatalf("status %d: %s", w.Code, w.Body.String())
		}
		env := g.runner.lastRequest()
		if env.InstanceReuse == nil || *env.InstanceReuse != (execapi.InstanceReuse{MaxCalls: 7, MaxAgeMS: 9000}) {
			t.Fatalf("instance_reuse = %+v, want {7, 9000}", env.InstanceReuse)
		}
	})
}

func TestLiteralSegmentBeatsParam(t *testing.T) {
	g := newGateway(t, nil)
	w := g.do(g.req(t, "POST", "/api/ext/"+testExt+"/agreements/sync", `{"a":1}`))
	if w.Code != 200 {
		t.Fatalf("status %d: %s", w.Code, w.Body.String())
	}
	env := g.runner.lastRequest()
	if env.Endpoint.Path != "/agreements/sync" || env.Endpoint.Handler != "dist/handlers/sync" {
		t.Fatalf("matched %+v, want the literal /agreements/sync", env.Endpoint)
	}
	if env.Limits.TimeoutMS != 1500 {
		t.Errorf("timeout_ms = %d, want the endpoint's smaller 1500", env.Limits.TimeoutMS)
	}
	if string(env.HTTP.Body) != `{"a":1}` {
		t.Errorf("body = %q", env.HTTP.Body)
	}
}

func TestUserOmittedWithoutUserRead(t *testing.T) {
	g := newGateway(t, nil)
	inst := testInstall()
	inst.Capabilities = []string{"storage.kv"}
	g.registry.setInstall(testTenant, testExt, inst)
	g.do(g.req(t, "GET", "/api/ext/"+testExt+"/agreements", ""))
	if u := g.runner.lastRequest().User; u != nil {
		t.Fatalf("user = %+v, want none without user.read", u)
	}
}

func TestCookieToken(t *testing.T) {
	g := newGateway(t, nil)
	r := httptest.NewRequest("GET", "/api/ext/"+testExt+"/agreements", nil)
	r.AddCookie(&http.Cookie{Name: "psa_session", Value: token(t, nil)})
	if w := g.do(r); w.Code != 200 {
		t.Fatalf("cookie auth: status %d %s", w.Code, w.Body.String())
	}
	if _, ok := g.runner.lastRequest().HTTP.Headers["cookie"]; ok {
		t.Fatal("cookie forwarded to guest")
	}
}

// TestCookieWritesNeedAnAllowedOrigin is the CSRF check (SPEC §8.2 step
// 2): the browser attaches the session cookie to any site's request, so a
// cookie-authenticated write must prove where it comes from.
func TestCookieWritesNeedAnAllowedOrigin(t *testing.T) {
	g := newGateway(t, func(h *Handler, g *gateway) { h.CORSOrigins = []string{"https://psa.example.com", "null"} })
	for _, c := range []struct {
		name, method string
		headers      map[string]string
		bearer       bool
		want         int
	}{
		{"cookie POST from another site", "POST", map[string]string{"Origin": "https://evil.example"}, false, 403},
		{"cookie POST from an opaque origin", "POST", map[string]string{"Origin": "null"}, false, 403},
		{"cookie POST without Origin or Sec-Fetch-Site", "POST", nil, false, 403},
		{"cookie POST cross-site by Sec-Fetch-Site", "POST", map[string]string{"Sec-Fetch-Site": "cross-site"}, false, 403},
		{"cookie DELETE from another site", "DELETE", map[string]string{"Origin": "https://evil.example"}, false, 403},
		{"cookie POST from the gateway's own origin", "POST", map[string]string{"Origin": "http://example.com"}, false, 200},
		{"cookie POST from a cors origin", "POST", map[string]string{"Origin": "https://psa.example.com"}, false, 200},
		{"cookie POST same-origin by Sec-Fetch-Site", "POST", map[string]string{"Sec-Fetch-Site": "same-origin"}, false, 200},
		{"cookie GET from another site", "GET", map[string]string{"Origin": "https://evil.example"}, false, 200},
		{"bearer POST from another site", "POST", map[string]string{"Origin": "https://evil.example"}, true, 200},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := map[string]string{"GET": "/agreements", "POST": "/agreements/sync", "DELETE": "/agreements/7"}[c.method]
			r := httptest.NewRequest(c.method, "/api/ext/"+testExt+path, strings.NewReader("{}"))
			if c.bearer {
				r.Header.Set("Authorization", "Bearer "+token(t, nil))
			} else {
				r.AddCookie(&http.Cookie{Name: "psa_session", Value: token(t, nil)})
			}
			for k, v := range c.headers {
				r.Header.Set(k, v)
			}
			w := g.do(r)
			if w.Code != c.want {
				t.Fatalf("status %d, want %d: %s", w.Code, c.want, w.Body.String())
			}
			if c.want == 403 && errorCode(t, w) != "forbidden" {
				t.Fatalf("code %q, want forbidden", errorCode(t, w))
			}
		})
	}
}

func TestRequestHeaderPolicy(t *testing.T) {
	g := newGateway(t, nil)
	r := g.req(t, "PUT", "/api/ext/"+testExt+"/agreements/7", `{}`)
	r.Header.Set("Cookie", "psa_session=abc")
	r.Header.Set("Connection", "keep-alive")
	r.Header.Set("Te", "trailers")
	r.Header.Set("Upgrade", "websocket")
	r.Header.Set("Proxy-Authorization", "Basic x")
	r.Header.Set("X-Forwarded-For", "10.0.0.1")
	r.Header.Set("X-Alga-Tenant", "tenant-evil")
	r.Header.Set("Accept", "application/json")
	r.Header.Set("Accept-Language", "de")
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("User-Agent", "ua")
	r.Header.Set("If-None-Match", `"v1"`)
	r.Header.Set("X-Ext-Trace", "t1")
	r.Header.Set("X-Request-Id", "client-req.42")
	r.Header.Set("X-Idempotency-Key", "k1")
	w := g.do(r)
	if w.Code != 200 {
		t.Fatalf("status %d %s", w.Code, w.Body.String())
	}
	got := g.runner.lastRequest().HTTP.Headers
	for _, never := range []string{"authorization", "cookie", "connection", "te", "upgrade", "proxy-authorization", "x-forwarded-for"} {
		if _, ok := got[never]; ok {
			t.Errorf("guest saw %s", never)
		}
	}
	want := map[string]string{
		"accept": "application/json", "accept-language": "de", "content-type": "application/json",
		"user-agent": "ua", "if-none-match": `"v1"`, "x-ext-trace": "t1",
		"x-request-id": "client-req.42", "x-alga-tenant": testTenant, "x-alga-extension": testExt,
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("guest header %s = %q, want %q", k, got[k], v)
		}
	}
	if k := got["x-idempotency-key"]; k == "" || k == "k1" || len(k) != 64 {
		t.Errorf("x-idempotency-key = %q, want the client key namespaced (sha256 hex)", k)
	}
	if w.Header().Get("X-Request-Id") != "client-req.42" {
		t.Errorf("client request id not echoed")
	}
}

func TestIdempotencyKeysAreNamespacedByTenant(t *testing.T) {
	g := newGateway(t, nil)
	g.registry.setInstall("tenant-b", testExt, testInstall())
	keyFor := func(tenant string) string {
		r := httptest.NewRequest("POST", "/api/ext/"+testExt+"/agreements/sync", strings.NewReader("{}"))
		r.Header.Set("Authorization", "Bearer "+token(t, jwt.MapClaims{"tenant": tenant}))
		r.Header.Set("X-Idempotency-Key", "same")
		if w := g.do(r); w.Code != 200 {
			t.Fatalf("status %d %s", w.Code, w.Body.String())
		}
		return g.runner.lastRequest().HTTP.Headers["x-idempotency-key"]
	}
	a1, a2, b := keyFor(testTenant), keyFor(testTenant), keyFor("tenant-b")
	if a1 != a2 || a1 == b {
		t.Fatalf("keys: tenant a %q/%q, tenant b %q; want stable per tenant and distinct across tenants", a1, a2, b)
	}
	// Without a client key, one is generated per request.
	r := g.req(t, "POST", "/api/ext/"+testExt+"/agreements/sync", "{}")
	g.do(r)
	if k := g.runner.lastRequest().HTTP.Headers["x-idempotency-key"]; k == "" {
		t.Fatal("no generated idempotency key")
	}
	g.do(g.req(t, "GET", "/api/ext/"+testExt+"/agreements", ""))
	if k, ok := g.runner.lastRequest().HTTP.Headers["x-idempotency-key"]; ok {
		t.Fatalf("GET got an idempotency key %q", k)
	}
}

func TestInsaneRequestIDIsReplaced(t *testing.T) {
	g := newGateway(t, nil)
	for _, bad := range []string{strings.Repeat("a", 129), "has space", "semi;colon", "new\nline"} {
		r := g.req(t, "GET", "/api/ext/"+testExt+"/agreements", "")
		r.Header["X-Request-Id"] = []string{bad}
		w := g.do(r)
		if got := w.Header().Get("X-Request-Id"); got == bad || got == "" {
			t.Errorf("request id %q kept (got %q)", bad, got)
		}
	}
}

func TestResponseHeaderPolicy(t *testing.T) {
	g := newGateway(t, nil)
	g.runner.setRespond(func(*execapi.Request) (int, any) {
		return 200, execapi.Response{Status: 201, Headers: map[string]string{
			"content-type": "text/plain", "set-cookie": "s=1", "connection": "close",
			"transfer-encoding": "chunked", "cache-control": "public, max-age=60, s-maxage=600",
			"etag": `"e1"`, "last-modified": "Mon, 01 Jan 2024 00:00:00 GMT", "content-language": "en",
			"content-disposition": "attachment", "x-ext-custom": "c", "x-powered-by": "guest",
			"access-control-allow-origin": "*", "strict-transport-security": "max-age=1",
		}, Body: []byte("hi")}
	})
	w := g.do(g.req(t, "GET", "/api/ext/"+testExt+"/agreements", ""))
	if w.Code != 201 || w.Body.String() != "hi" {
		t.Fatalf("got %d %q", w.Code, w.Body.String())
	}
	h := w.Header()
	for _, never := range []string{"Set-Cookie", "Connection", "Transfer-Encoding", "X-Powered-By", "Access-Control-Allow-Origin", "Strict-Transport-Security"} {
		if v := h.Get(never); v != "" {
			t.Errorf("client saw %s: %s", never, v)
		}
	}
	if cc := h.Get("Cache-Control"); cc != "max-age=60" {
		t.Errorf("cache-control = %q, want only the safe directives", cc)
	}
	for k, v := range map[string]string{"Content-Type": "text/plain", "Etag": `"e1"`, "Content-Language": "en",
		"Content-Disposition": "attachment", "X-Ext-Custom": "c", "Last-Modified": "Mon, 01 Jan 2024 00:00:00 GMT"} {
		if h.Get(k) != v {
			t.Errorf("%s = %q, want %q", k, h.Get(k), v)
		}
	}
	if h.Get("X-Request-Id") == "" {
		t.Error("no x-request-id")
	}
}

func TestFilterCacheControl(t *testing.T) {
	for _, c := range []struct{ name, in, want string }{
		{"safe directives pass", "private, max-age=30, must-revalidate", "private, max-age=30, must-revalidate"},
		{"public is dropped", "public, max-age=30", "max-age=30"},
		{"s-maxage and immutable are dropped", "s-maxage=10, immutable", ""},
		{"no-store passes", "no-store", "no-store"},
		{"max-age without a number is dropped", "max-age=abc", ""},
		{"case is normalised", "No-Cache", "no-cache"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := filterCacheControl(c.in); got != c.want {
				t.Fatalf("filterCacheControl(%q) = %q, want %q", c.in, got, c.want)
			}
		})
	}
}

func TestGetBodyIsDropped(t *testing.T) {
	g := newGateway(t, nil)
	r := g.req(t, "GET", "/api/ext/"+testExt+"/agreements", "should not arrive")
	if w := g.do(r); w.Code != 200 {
		t.Fatalf("status %d", w.Code)
	}
	if b := g.runner.lastRequest().HTTP.Body; b != nil {
		t.Fatalf("guest got GET body %q", b)
	}
}

func TestHeadIsMatchedAsGetWithoutBody(t *testing.T) {
	g := newGateway(t, nil)
	w := g.do(g.req(t, "HEAD", "/api/ext/"+testExt+"/agreements", ""))
	if w.Code != 200 || w.Body.Len() != 0 {
		t.Fatalf("HEAD: %d %q", w.Code, w.Body.String())
	}
	if g.runner.lastRequest().Endpoint.Path != "/agreements" {
		t.Fatal("HEAD not matched as GET")
	}
}

func TestCORS(t *testing.T) {
	g := newGateway(t, func(h *Handler, g *gateway) { h.CORSOrigins = []string{"https://psa.example.com", "null"} })
	for _, c := range []struct {
		name, origin string
		allowed      bool
	}{
		{"listed origin is allowed", "https://psa.example.com", true},
		{"opaque null origin is allowed", "null", true},
		{"other origin gets no CORS headers", "https://evil.example", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := httptest.NewRequest("OPTIONS", "/api/ext/"+testExt+"/agreements", nil)
			r.Header.Set("Origin", c.origin)
			r.Header.Set("Access-Control-Request-Method", "POST")
			r.Header.Set("Access-Control-Request-Headers", "authorization, content-type, x-ext-foo")
			w := g.do(r)
			if w.Code != 204 {
				t.Fatalf("preflight status %d", w.Code)
			}
			got := w.Header().Get("Access-Control-Allow-Origin")
			if c.allowed != (got == c.origin) {
				t.Fatalf("allow-origin = %q", got)
			}
			if c.allowed && !strings.Contains(w.Header().Get("Access-Control-Allow-Headers"), "x-ext-foo") {
				t.Errorf("allow-headers = %q", w.Header().Get("Access-Control-Allow-Headers"))
			}
			if w.Header().Get("Access-Control-Allow-Credentials") != "" {
				t.Fatal("credentials allowed")
			}
			// The actual call carries the same origin decision.
			r = g.req(t, "GET", "/api/ext/"+testExt+"/agreements", "")
			r.Header.Set("Origin", c.origin)
			w = g.do(r)
			if (w.Header().Get("Access-Control-Allow-Origin") == c.origin) != c.allowed || w.Header().Get("Access-Control-Allow-Credentials") != "" {
				t.Fatalf("actual request CORS headers: %v", w.Header())
			}
		})
	}
}

func TestOtherPathsPassThrough(t *testing.T) {
	g := newGateway(t, nil)
	for _, p := range []string{"/", "/api/extension", "/api/ext", "/ext-uix/a"} {
		if w := g.do(httptest.NewRequest("GET", p, nil)); w.Code != http.StatusTeapot {
			t.Errorf("%s: status %d, want next handler", p, w.Code)
		}
	}
}

func TestErrorBodyShape(t *testing.T) {
	g := newGateway(t, nil)
	w := g.do(httptest.NewRequest("GET", "/api/ext/"+testExt+"/agreements", nil))
	var raw map[string]map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &raw); err != nil {
		t.Fatal(err)
	}
	if len(raw) != 1 || len(raw["error"]) != 3 {
		t.Fatalf("error body = %s, want exactly {error:{code,message,request_id}}", w.Body.String())
	}
}

func TestInformationalAndOutOfRangeGuestStatusesAreBadHandler(t *testing.T) {
	g := newGateway(t, nil)
	for _, status := range []int{101, 103, 199, 600, 999} {
		g.runner.setRespond(func(*execapi.Request) (int, any) {
			return 200, execapi.Response{Status: status, Headers: map[string]string{"upgrade": "h2c", "link": "</x>; rel=preload"}}
		})
		w := g.do(g.req(t, "GET", "/api/ext/"+testExt+"/agreements", ""))
		if w.Code != 502 || !strings.Contains(w.Body.String(), `"code":"bad_handler"`) {
			t.Fatalf("guest status %d: got %d %s, want 502 bad_handler", status, w.Code, w.Body.String())
		}
		if v := w.Header().Get("Link"); v != "" {
			t.Fatalf("guest status %d: guest header relayed: Link %q", status, v)
		}
	}
}

func TestEveryAPIResponseIsASandboxedDocument(t *testing.T) {
	g := newGateway(t, nil)
	g.runner.setRespond(func(*execapi.Request) (int, any) {
		return 200, execapi.Response{Status: 200, Headers: map[string]string{"content-type": "text/html",
			"content-security-policy": "script-src *"}, Body: []byte("<script>fetch('/session')</script>")}
	})
	guest := g.do(g.req(t, "GET", "/api/ext/"+testExt+"/agreements", ""))
	failed := g.do(httptest.NewRequest("GET", "/api/ext/"+testExt+"/agreements", nil)) // no token
	for name, w := range map[string]*httptest.ResponseRecorder{"guest html": guest, "gateway error": failed} {
		h := w.Header()
		if got := h.Values("Content-Security-Policy"); len(got) != 1 || got[0] != "sandbox; default-src 'none'; frame-ancestors 'none'" {
			t.Errorf("%s (%d): CSP %q, want only the gateway's sandbox policy", name, w.Code, got)
		}
		if h.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: no nosniff", name)
		}
	}
	if guest.Code != 200 || guest.Header().Get("Content-Type") != "text/html" {
		t.Fatalf("guest reply: %d %q", guest.Code, guest.Header().Get("Content-Type"))
	}
}

func TestExtClaimAsStringOrArrayIsAccepted(t *testing.T) {
	g := newGateway(t, nil)
	for _, ext := range []any{testExt, []any{"com.other.ext", testExt}} {
		r := httptest.NewRequest("GET", "/api/ext/"+testExt+"/agreements", nil)
		r.Header.Set("Authorization", "Bearer "+token(t, jwt.MapClaims{"ext": ext}))
		if w := g.do(r); w.Code != 200 {
			t.Fatalf("ext %v: got %d %s, want 200", ext, w.Code, w.Body.String())
		}
	}
}
