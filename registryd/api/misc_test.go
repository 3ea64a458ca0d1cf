package api_test

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/extedge/extedge/internal/registryapi"
)

func TestRoutingAndAuth(t *testing.T) {
	e := newEnv(t, envOptions{})
	cases := []struct {
		name, method, path, auth string
		status                   int
		code                     string
	}{
		{"an unknown path is not_found", "GET", "/v1/nope", "Bearer " + e.admin, 404, "not_found"},
		{"a wrong method is method_not_allowed", "DELETE", "/v1/extensions", "Bearer " + e.admin, 405, "method_not_allowed"},
		{"a non-bearer scheme is unauthorized", "GET", "/v1/extensions", "Basic " + e.admin, 401, "unauthorized"},
		{"an empty bearer is unauthorized", "GET", "/v1/extensions", "Bearer ", 401, "unauthorized"},
		{"a huge token is unauthorized", "GET", "/v1/extensions", "Bearer " + strings.Repeat("x", 5000), 401, "unauthorized"},
		{"an invalid tenant id is invalid_request", "GET", "/v1/tenants/bad%20tenant/installs", "Bearer " + e.admin, 400, "invalid_request"},
		{"health needs no token", "GET", "/healthz", "", 200, ""},
		{"readiness needs no token", "GET", "/readyz", "", 200, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			hdr := map[string]string{}
			if c.auth != "" {
				hdr["Authorization"] = c.auth
			}
			r := e.do(c.method, c.path, "", nil, hdr)
			expect(t, r, c.status, c.code)
			if c.status == 405 && r.header.Get("Allow") == "" {
				t.Fatal("405 without Allow")
			}
		})
	}
}

func TestBundleStatus(t *testing.T) {
	e := newEnv(t, envOptions{})
	b := e.mustPublish("com.acme.crm", "1.0.0")
	hexPart := strings.TrimPrefix(b.hash, "sha256:")
	t.Run("a published hash is usable, also with %3A", func(t *testing.T) {
		var st registryapi.BundleStatus
		r := e.do("GET", "/v1/bundles/sha256%3A"+hexPart+"/status?extension=com.acme.crm", e.service, nil, nil)
		expect(t, r, 200, "")
		r.decode(t, &st)
		if !st.Usable() || st.Version != "1.0.0" || st.UI == nil || st.UI.Entry != "ui/index.html" {
			t.Fatalf("%+v", st)
		}
	})
	t.Run("the hash under another extension is not published", func(t *testing.T) {
		var st registryapi.BundleStatus
		r := e.do("GET", "/v1/bundles/"+b.hash+"/status?extension=com.acme.other", e.service, nil, nil)
		expect(t, r, 200, "")
		r.decode(t, &st)
		if st.Published || st.Usable() {
			t.Fatalf("%+v", st)
		}
	})
	t.Run("a malformed hash is invalid_request", func(t *testing.T) {
		expect(t, e.do("GET", "/v1/bundles/sha256:ABC/status?extension=com.acme.crm", e.service, nil, nil), 400, "invalid_request")
		expect(t, e.do("GET", "/v1/bundles/"+strings.ToUpper(b.hash)+"/status?extension=com.acme.crm", e.service, nil, nil), 400, "invalid_request")
	})
	t.Run("a missing extension parameter is invalid_request", func(t *testing.T) {
		expect(t, e.do("GET", "/v1/bundles/"+b.hash+"/status", e.service, nil, nil), 400, "invalid_request")
	})
}

// fakeClock is a settable clock for the server.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// TestResolveETagAndEnvelopeEpochs: the ETag does not change with every
// call (the envelope is re-sealed only for bodies), but for installs with
// secrets it changes every half envelope lifetime, so a revalidating cache
// never keeps an envelope that is about to expire.
func TestResolveETagAndEnvelopeEpochs(t *testing.T) {
	clock := &fakeClock{t: time.Date(2030, 1, 1, 0, 0, 1, 0, time.UTC)}
	e := newEnv(t, envOptions{now: clock.now})
	e.mustPublish("com.acme.crm", "1.0.0")
	e.mustPublish("com.acme.plain", "1.0.0")
	e.install("tenant-a", "com.acme.crm", "1.0.0", "secrets.get")
	e.install("tenant-a", "com.acme.plain", "1.0.0")
	expect(t, e.do("PUT", "/v1/tenants/tenant-a/installs/com.acme.crm/secrets", e.tenantA, map[string]string{"K": "v"}, nil), 200, "")
	etag := func(name string) (string, *registryapi.Resolved) {
		r := e.do("GET", "/v1/resolve/tenant-a/"+name, e.service, nil, nil)
		expect(t, r, 200, "")
		var res registryapi.Resolved
		r.decode(t, &res)
		return r.header.Get("ETag"), &res
	}
	s1, res := etag("com.acme.crm")
	p1, _ := etag("com.acme.plain")
	got, err := e.keys.OpenEnvelope(*res.SecretEnvelope, "tenant-a", res.InstallID, clock.now().Add(9*time.Minute))
	if err != nil || got["K"] != "v" {
		t.Fatalf("envelope should live ~10 min from the start of its epoch: %v", err)
	}
	r := e.do("GET", "/v1/resolve/tenant-a/com.acme.crm", e.service, nil, map[string]string{"If-None-Match": s1})
	expect(t, r, 304, "")

	clock.add(2 * time.Minute)
	if s, _ := etag("com.acme.crm"); s != s1 {
		t.Fatal("ETag changed within one epoch")
	}
	clock.add(4 * time.Minute) // past the 5-minute epoch
	s2, res2 := etag("com.acme.crm")
	if s2 == s1 {
		t.Fatal("ETag of an install with secrets did not change with the envelope epoch")
	}
	if _, err := e.keys.OpenEnvelope(*res2.SecretEnvelope, "tenant-a", res2.InstallID, clock.now().Add(4*time.Minute)); err != nil {
		t.Fatalf("new envelope: %v", err)
	}
	if p2, _ := etag("com.acme.plain"); p2 != p1 {
		t.Fatal("ETag of an install without secrets changed with time")
	}
}

func TestInstallDefaultsToLatestUsableVersion(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.mustPublish("com.acme.crm", "1.0.0")
	e.mustPublish("com.acme.crm", "1.1.0")
	expect(t, e.do("POST", "/v1/extensions/com.acme.crm/versions/1.1.0/revoke", e.admin, map[string]string{"reason": "bad"}, nil), 200, "")
	r := e.do("PUT", "/v1/tenants/tenant-a/installs/com.acme.crm", e.tenantA, map[string]any{}, nil)
	expect(t, r, 200, "")
	var in registryapi.Install
	r.decode(t, &in)
	if in.Version.Version != "1.0.0" {
		t.Fatalf("installed %s, want the latest non-revoked 1.0.0", in.Version.Version)
	}
	t.Run("config must be an object", func(t *testing.T) {
		expect(t, e.do("PUT", "/v1/tenants/tenant-a/installs/com.acme.crm", e.tenantA, map[string]any{"config": []int{1}}, nil), 400, "invalid_request")
	})
	t.Run("an egress entry with a path is validation_failed", func(t *testing.T) {
		expect(t, e.do("PUT", "/v1/tenants/tenant-a/installs/com.acme.crm", e.tenantA, map[string]any{"egress_allowlist": []string{"x.com/path"}}, nil), 400, "validation_failed")
	})
	t.Run("negative quotas are invalid_request", func(t *testing.T) {
		expect(t, e.do("PUT", "/v1/tenants/tenant-a/installs/com.acme.crm", e.tenantA, map[string]any{"quotas": map[string]int{"invocations_per_minute": -1}}, nil), 400, "invalid_request")
	})
	resolvedIPM := func(t *testing.T) int {
		var res registryapi.Resolved
		e.do("GET", "/v1/resolve/tenant-a/com.acme.crm", e.service, nil, nil).decode(t, &res)
		if res.Quotas == nil {
			return 0
		}
		return res.Quotas.InvocationsPerMinute
	}
	t.Run("quotas set by a platform admin reach resolve", func(t *testing.T) {
		expect(t, e.do("PUT", "/v1/tenants/tenant-a/installs/com.acme.crm", e.admin, map[string]any{"quotas": map[string]int{"invocations_per_minute": 60}}, nil), 200, "")
		if got := resolvedIPM(t); got != 60 {
			t.Fatalf("invocations_per_minute = %d, want 60", got)
		}
	})
	t.Run("a tenant admin cannot lift or change quotas, but may send them back unchanged", func(t *testing.T) {
		for _, q := range []map[string]int{{}, {"invocations_per_minute": 6000}, {"invocations_per_minute": 60, "concurrent_calls": 100}} {
			expect(t, e.do("PUT", "/v1/tenants/tenant-a/installs/com.acme.crm", e.tenantA, map[string]any{"quotas": q}, nil), 403, "forbidden")
		}
		if got := resolvedIPM(t); got != 60 {
			t.Fatalf("after refused PUTs invocations_per_minute = %d, want 60 (unchanged)", got)
		}
		expect(t, e.do("PUT", "/v1/tenants/tenant-a/installs/com.acme.crm", e.tenantA, map[string]any{"quotas": map[string]int{"invocations_per_minute": 60}, "config": map[string]int{"a": 1}}, nil), 200, "")
		expect(t, e.do("PUT", "/v1/tenants/tenant-a/installs/com.acme.crm", e.tenantA, map[string]any{"config": map[string]int{"a": 2}}, nil), 200, "")
		if got := resolvedIPM(t); got != 60 {
			t.Fatalf("invocations_per_minute = %d, want 60", got)
		}
	})
	t.Run("an empty secrets body is invalid_request", func(t *testing.T) {
		expect(t, e.do("PUT", "/v1/tenants/tenant-a/installs/com.acme.crm/secrets", e.tenantA, map[string]string{}, nil), 400, "invalid_request")
	})
}

func TestInstallQuotaCPUMsPerMinuteIsPlatformAdminOnly(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.mustPublish("com.acme.crm", "1.0.0")
	expect(t, e.do("PUT", "/v1/tenants/tenant-a/installs/com.acme.crm", e.tenantA, map[string]any{}, nil), 200, "")
	resolvedQuotas := func(t *testing.T) registryapi.Quotas {
		var res registryapi.Resolved
		e.do("GET", "/v1/resolve/tenant-a/com.acme.crm", e.service, nil, nil).decode(t, &res)
		if res.Quotas == nil {
			return registryapi.Quotas{}
		}
		return *res.Quotas
	}
	t.Run("cpu_ms_per_minute set by a platform admin reaches resolve", func(t *testing.T) {
		expect(t, e.do("PUT", "/v1/tenants/tenant-a/installs/com.acme.crm", e.admin, map[string]any{"quotas": map[string]int{"invocations_per_minute": 60, "cpu_ms_per_minute": 500}}, nil), 200, "")
		if got := resolvedQuotas(t); got != (registryapi.Quotas{InvocationsPerMinute: 60, CPUMsPerMinute: 500}) {
			t.Fatalf("resolved quotas = %+v", got)
		}
	})
	t.Run("a tenant admin changing cpu_ms_per_minute is forbidden", func(t *testing.T) {
		for _, q := range []map[string]int{
			{"invocations_per_minute": 60, "cpu_ms_per_minute": 5000}, // lifted
			{"invocations_per_minute": 60, "cpu_ms_per_minute": 100},  // lowered
			{"invocations_per_minute": 60},                            // dropped
		} {
			expect(t, e.do("PUT", "/v1/tenants/tenant-a/installs/com.acme.crm", e.tenantA, map[string]any{"quotas": q}, nil), 403, "forbidden")
		}
		if got := resolvedQuotas(t); got.CPUMsPerMinute != 500 {
			t.Fatalf("after refused PUTs cpu_ms_per_minute = %d, want 500 (unchanged)", got.CPUMsPerMinute)
		}
		expect(t, e.do("PUT", "/v1/tenants/tenant-a/installs/com.acme.crm", e.tenantA, map[string]any{"quotas": map[string]int{"invocations_per_minute": 60, "cpu_ms_per_minute": 500}}, nil), 200, "")
	})
	t.Run("quotas out of range are invalid_request", func(t *testing.T) {
		for _, q := range []map[string]int{{"cpu_ms_per_minute": -1}, {"cpu_ms_per_minute": 60_000_001}, {"concurrent_calls": 100_001}, {"invocations_per_minute": 10_000_001}} {
			expect(t, e.do("PUT", "/v1/tenants/tenant-a/installs/com.acme.crm", e.admin, map[string]any{"quotas": q}, nil), 400, "invalid_request")
		}
		if got := resolvedQuotas(t); got.CPUMsPerMinute != 500 {
			t.Fatalf("after invalid PUTs cpu_ms_per_minute = %d, want 500", got.CPUMsPerMinute)
		}
	})
}

func TestSecretsWithoutKeyFile(t *testing.T) {
	e := newEnv(t, envOptions{noSecretsKey: true})
	e.mustPublish("com.acme.crm", "1.0.0")
	e.install("tenant-a", "com.acme.crm", "1.0.0", "secrets.get")
	expect(t, e.do("PUT", "/v1/tenants/tenant-a/installs/com.acme.crm/secrets", e.tenantA, map[string]string{"K": "v"}, nil), 503, "secrets_unavailable")
}

func TestInstallInstanceReuseIsPlatformAdminOnly(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.mustPublish("com.acme.crm", "1.0.0")
	const path = "/v1/tenants/tenant-a/installs/com.acme.crm"
	expect(t, e.do("PUT", path, e.tenantA, map[string]any{}, nil), 200, "")
	resolvedReuse := func(t *testing.T) *registryapi.InstanceReuse {
		var res registryapi.Resolved
		e.do("GET", "/v1/resolve/tenant-a/com.acme.crm", e.service, nil, nil).decode(t, &res)
		return res.InstanceReuse
	}
	t.Run("off by default: resolve carries no instance_reuse", func(t *testing.T) {
		if got := resolvedReuse(t); got != nil {
			t.Fatalf("instance_reuse = %+v, want none", got)
		}
	})
	t.Run("a tenant admin turning it on is forbidden, sending false back is not", func(t *testing.T) {
		for _, v := range []any{true, map[string]any{"enabled": true, "max_calls": 10}} {
			expect(t, e.do("PUT", path, e.tenantA, map[string]any{"instance_reuse": v}, nil), 403, "forbidden")
		}
		expect(t, e.do("PUT", path, e.tenantA, map[string]any{"instance_reuse": false}, nil), 200, "")
		expect(t, e.do("PUT", path, e.tenantA, map[string]any{"instance_reuse": map[string]any{"enabled": false, "max_calls": 5}}, nil), 200, "")
		if got := resolvedReuse(t); got != nil {
			t.Fatalf("instance_reuse = %+v after refused PUTs, want none", got)
		}
	})
	t.Run("true set by a platform admin reaches resolve", func(t *testing.T) {
		expect(t, e.do("PUT", path, e.admin, map[string]any{"instance_reuse": true}, nil), 200, "")
		if got := resolvedReuse(t); got == nil || *got != (registryapi.InstanceReuse{Enabled: true}) {
			t.Fatalf("instance_reuse = %+v, want {enabled:true}", got)
		}
	})
	t.Run("bounds set by a platform admin reach resolve and the install", func(t *testing.T) {
		r := e.do("PUT", path, e.admin, map[string]any{"instance_reuse": map[string]any{"enabled": true, "max_calls": 50, "max_age_ms": 10000}}, nil)
		expect(t, r, 200, "")
		var in registryapi.Install
		r.decode(t, &in)
		want := registryapi.InstanceReuse{Enabled: true, MaxCalls: 50, MaxAgeMS: 10000}
		if in.InstanceReuse == nil || *in.InstanceReuse != want {
			t.Fatalf("install instance_reuse = %+v, want %+v", in.InstanceReuse, want)
		}
		if got := resolvedReuse(t); got == nil || *got != want {
			t.Fatalf("resolved instance_reuse = %+v, want %+v", got, want)
		}
	})
	t.Run("a tenant admin changing or dropping it is forbidden, omitting or resending it is not", func(t *testing.T) {
		for _, v := range []any{false, true, map[string]any{"enabled": true, "max_calls": 51, "max_age_ms": 10000}} {
			expect(t, e.do("PUT", path, e.tenantA, map[string]any{"instance_reuse": v}, nil), 403, "forbidden")
		}
		expect(t, e.do("PUT", path, e.tenantA, map[string]any{"instance_reuse": map[string]any{"enabled": true, "max_calls": 50, "max_age_ms": 10000}}, nil), 200, "")
		expect(t, e.do("PUT", path, e.tenantA, map[string]any{"config": map[string]int{"a": 1}}, nil), 200, "")
		if got := resolvedReuse(t); got == nil || got.MaxCalls != 50 {
			t.Fatalf("instance_reuse = %+v, want max_calls 50 (unchanged)", got)
		}
	})
	t.Run("bounds out of range are invalid_request", func(t *testing.T) {
		for _, v := range []map[string]any{{"enabled": true, "max_calls": -1}, {"enabled": true, "max_age_ms": -1},
			{"enabled": true, "max_calls": 1_000_001}, {"enabled": true, "max_age_ms": 3_600_001}} {
			expect(t, e.do("PUT", path, e.admin, map[string]any{"instance_reuse": v}, nil), 400, "invalid_request")
		}
	})
	t.Run("a platform admin turns it off", func(t *testing.T) {
		expect(t, e.do("PUT", path, e.admin, map[string]any{"instance_reuse": false}, nil), 200, "")
		if got := resolvedReuse(t); got != nil {
			t.Fatalf("instance_reuse = %+v, want none", got)
		}
	})
}
