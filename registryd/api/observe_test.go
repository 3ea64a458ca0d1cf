package api_test

import (
	"encoding/json"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// TestLogsAndMetrics: debug-level logs of a full flow never contain tokens
// or secret values, and /metrics has per-route counters, publish outcomes
// and pool statistics.
func TestLogsAndMetrics(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	e := newEnv(t, envOptions{log: zap.New(core)})
	e.mustPublish("com.acme.crm", "1.0.0")
	e.install("tenant-a", "com.acme.crm", "1.0.0", "secrets.get", "storage.kv")
	const secret = "very-secret-value-123"
	expect(t, e.do("PUT", "/v1/tenants/tenant-a/installs/com.acme.crm/secrets", e.tenantA, map[string]string{"API_KEY": secret}, nil), 200, "")
	expect(t, e.do("PUT", "/v1/tenants/tenant-a/installs/com.acme.crm/secrets", e.tenantA, map[string]string{"bad key!": secret}, nil), 400, "invalid_request")
	expect(t, e.do("GET", "/v1/resolve/tenant-a/com.acme.crm", e.service, nil, nil), 200, "")
	expect(t, e.do("GET", "/v1/resolve/tenant-a/com.acme.crm", "ext_wrong", nil, nil), 401, "unauthorized")
	expect(t, e.do("POST", "/v1/bundles", e.admin, "junk", nil), 422, "signature_missing")

	if logs.Len() == 0 {
		t.Fatal("nothing logged")
	}
	for _, entry := range logs.All() {
		b, _ := json.Marshal(entry.ContextMap())
		line := entry.Message + " " + string(b)
		for _, tok := range []string{e.admin, e.service, e.tenantA, secret, "ext_wrong"} {
			if strings.Contains(line, tok) {
				t.Fatalf("log line leaks a token or secret: %s", line)
			}
		}
	}

	m := e.do("GET", "/metrics", "", nil, nil)
	expect(t, m, 200, "")
	for _, want := range []string{
		`extedge_registry_http_requests_total{code="200",route="GET /v1/resolve/{tenant}/{extension}"} 1`,
		`extedge_registry_http_requests_total{code="401",route="GET /v1/resolve/{tenant}/{extension}"} 1`,
		`extedge_registry_publish_total{outcome="created"} 1`,
		`extedge_registry_publish_total{outcome="signature_missing"} 1`,
		`extedge_registry_http_request_duration_seconds_bucket{route="POST /v1/bundles"`,
		`extedge_registry_db_pool_acquires_total`,
		`extedge_registry_secret_envelopes_sealed_total 1`,
	} {
		if !strings.Contains(string(m.body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if strings.Contains(string(m.body), "tenant-a") {
		t.Error("/metrics carries a tenant id")
	}
}
