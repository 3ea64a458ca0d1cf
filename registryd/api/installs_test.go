package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/extedge/extedge/internal/egress"
	"github.com/extedge/extedge/internal/registryapi"
)

func TestInstallsAndResolve(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.mustPublish("com.acme.crm", "1.0.0", "http.fetch", "storage.kv")
	v2 := e.mustPublish("com.acme.crm", "2.0.0", "http.fetch", "storage.kv", "secrets.get")
	ctx := context.Background()
	path := "/v1/tenants/tenant-a/installs/com.acme.crm"

	t.Run("granting an undeclared capability is capability_not_declared", func(t *testing.T) {
		r := e.do("PUT", path, e.tenantA, map[string]any{"version": "1.0.0", "granted_caps": []string{"secrets.get"}}, nil)
		expect(t, r, 400, "capability_not_declared")
		if r.details()["capability"] != "secrets.get" {
			t.Fatalf("details = %v", r.details())
		}
	})
	t.Run("an unknown capability is invalid_request", func(t *testing.T) {
		expect(t, e.do("PUT", path, e.tenantA, map[string]any{"version": "1.0.0", "granted_caps": []string{"fs.write"}}, nil), 400, "invalid_request")
	})
	t.Run("installing an unknown extension is not_found", func(t *testing.T) {
		expect(t, e.do("PUT", "/v1/tenants/tenant-a/installs/com.acme.nope", e.tenantA, map[string]any{}, nil), 404, "not_found")
	})
	t.Run("installing an unknown version is not_found", func(t *testing.T) {
		expect(t, e.do("PUT", path, e.tenantA, map[string]any{"version": "9.0.0"}, nil), 404, "not_found")
	})
	t.Run("resolve before install is not_installed", func(t *testing.T) {
		expect(t, e.do("GET", "/v1/resolve/tenant-a/com.acme.crm", e.service, nil, nil), 404, "not_installed")
	})

	var inst registryapi.Install
	t.Run("install with cap: prefixed grants", func(t *testing.T) {
		r := e.do("PUT", path, e.tenantA, map[string]any{"version": "1.0.0", "granted_caps": []string{"cap:http.fetch"},
			"config": map[string]any{"region": "emea"}, "egress_allowlist": []string{"api.vendor.com"}}, nil)
		expect(t, r, 200, "")
		r.decode(t, &inst)
		if inst.Status != "enabled" || !slices.Equal(inst.GrantedCaps, []string{"http.fetch"}) || inst.Version.Version != "1.0.0" {
			t.Fatalf("install = %+v", inst)
		}
		want := []string{"context.read", "http.fetch", "log.emit", "metrics.emit"}
		if !slices.Equal(inst.Capabilities, want) {
			t.Fatalf("effective caps %v, want %v", inst.Capabilities, want)
		}
	})

	var etag string
	t.Run("resolve returns the install with an ETag, and 304 for it", func(t *testing.T) {
		c := e.client(e.service)
		res, tag, nm, err := c.Resolve(ctx, "tenant-a", "com.acme.crm", "")
		if err != nil || nm {
			t.Fatal(err, nm)
		}
		if res.InstallID != inst.ID || res.ContentHash == "" || res.Status != "enabled" || len(res.Endpoints) != 2 ||
			res.UI == nil || res.UI.Entry != "ui/index.html" || res.SecretEnvelope != nil ||
			!slices.Equal(res.EgressAllowlist, []string{"api.vendor.com"}) || string(res.Config) != `{"region": "emea"}` && string(res.Config) != `{"region":"emea"}` {
			t.Fatalf("resolved = %+v config=%s", res, res.Config)
		}
		if tag == "" {
			t.Fatal("no ETag")
		}
		_, _, nm, err = c.Resolve(ctx, "tenant-a", "com.acme.crm", tag)
		if err != nil || !nm {
			t.Fatalf("If-None-Match: notModified=%v err=%v", nm, err)
		}
		etag = tag
	})
	t.Run("an upgrade keeps new capabilities ungranted and changes the ETag", func(t *testing.T) {
		r := e.do("PUT", path, e.tenantA, map[string]any{"version": "2.0.0"}, nil)
		expect(t, r, 200, "")
		var up registryapi.Install
		r.decode(t, &up)
		if slices.Contains(up.Capabilities, "secrets.get") || !slices.Contains(up.DeclaredCaps, "secrets.get") {
			t.Fatalf("upgrade granted a new capability: %+v", up)
		}
		res, tag, _, err := e.client(e.service).Resolve(ctx, "tenant-a", "com.acme.crm", etag)
		if err != nil || res == nil || tag == etag || res.ContentHash != v2.hash {
			t.Fatalf("after upgrade: %+v %s %v", res, tag, err)
		}
	})
	t.Run("secrets are write-only and reach runners only sealed", func(t *testing.T) {
		expect(t, e.do("PUT", path, e.tenantA, map[string]any{"granted_caps": []string{"http.fetch", "secrets.get"}}, nil), 200, "")
		r := e.do("PUT", path+"/secrets", e.tenantA, map[string]string{"API_KEY": "s3cr3t-value"}, nil)
		expect(t, r, 200, "")
		if json.Valid(r.body) && contains(r.body, "s3cr3t-value") {
			t.Fatal("secret value echoed")
		}
		var in registryapi.Install
		r.decode(t, &in)
		if !slices.Equal(in.SecretKeys, []string{"API_KEY"}) {
			t.Fatalf("secret keys = %v", in.SecretKeys)
		}
		g := e.do("GET", path, e.tenantA, nil, nil)
		if contains(g.body, "s3cr3t-value") {
			t.Fatal("GET install shows a secret value")
		}
		res, _, _, err := e.client(e.service).Resolve(ctx, "tenant-a", "com.acme.crm", "")
		if err != nil || res.SecretEnvelope == nil {
			t.Fatalf("no envelope: %v", err)
		}
		got, err := e.keys.OpenEnvelope(*res.SecretEnvelope, "tenant-a", res.InstallID, time.Now())
		if err != nil || got["API_KEY"] != "s3cr3t-value" {
			t.Fatalf("envelope opens to %v, %v", got, err)
		}
		if _, err := e.keys.OpenEnvelope(*res.SecretEnvelope, "tenant-b", res.InstallID, time.Now()); err == nil {
			t.Fatal("envelope opened for another tenant")
		}
		if _, err := e.keys.OpenEnvelope(*res.SecretEnvelope, "tenant-a", res.InstallID, time.Now().Add(11*time.Minute)); err == nil {
			t.Fatal("envelope opened after expiry")
		}
		var stored string
		_ = pgx.BeginFunc(ctx, e.db.Pool, func(tx pgx.Tx) error {
			tx.Exec(ctx, "SELECT set_config('extedge.tenant', 'tenant-a', true)")
			return tx.QueryRow(ctx, "SELECT sealed FROM tenant_extension_secret WHERE tenant_id = 'tenant-a'").Scan(&stored)
		})
		if stored == "" || contains([]byte(stored), "s3cr3t") {
			t.Fatalf("stored secret is not sealed: %q", stored)
		}
	})
	t.Run("resolve's ETag is stable while nothing changes", func(t *testing.T) {
		a := e.do("GET", "/v1/resolve/tenant-a/com.acme.crm", e.service, nil, nil)
		b := e.do("GET", "/v1/resolve/tenant-a/com.acme.crm", e.service, nil, nil)
		if a.header.Get("ETag") == "" || a.header.Get("ETag") != b.header.Get("ETag") {
			t.Fatalf("ETags %q %q", a.header.Get("ETag"), b.header.Get("ETag"))
		}
	})
	t.Run("disable makes resolve not_installed, enable restores it", func(t *testing.T) {
		expect(t, e.do("POST", path+"/disable", e.tenantA, nil, nil), 200, "")
		expect(t, e.do("GET", "/v1/resolve/tenant-a/com.acme.crm", e.service, nil, nil), 404, "not_installed")
		expect(t, e.do("POST", path+"/enable", e.tenantA, nil, nil), 200, "")
		expect(t, e.do("GET", "/v1/resolve/tenant-a/com.acme.crm", e.service, nil, nil), 200, "")
	})
	t.Run("list installs", func(t *testing.T) {
		list, err := e.client(e.tenantA).ListInstalls(ctx, "tenant-a")
		if err != nil || len(list) != 1 {
			t.Fatalf("%v %v", list, err)
		}
		list, err = e.client(e.tenantB).ListInstalls(ctx, "tenant-b")
		if err != nil || len(list) != 0 {
			t.Fatalf("tenant-b sees %v %v", list, err)
		}
	})
	t.Run("event subscriptions follow the installed version", func(t *testing.T) {
		var n int
		_ = pgx.BeginFunc(ctx, e.db.Pool, func(tx pgx.Tx) error {
			tx.Exec(ctx, "SELECT set_config('extedge.tenant', 'tenant-a', true)")
			return tx.QueryRow(ctx, "SELECT count(*) FROM extension_event_subscription WHERE tenant_id = 'tenant-a' AND event = 'ticket.created'").Scan(&n)
		})
		if n != 1 {
			t.Fatalf("%d subscriptions", n)
		}
	})
	t.Run("uninstall removes it", func(t *testing.T) {
		expect(t, e.do("DELETE", path, e.tenantA, nil, nil), 204, "")
		expect(t, e.do("GET", path, e.tenantA, nil, nil), 404, "not_installed")
		expect(t, e.do("DELETE", path, e.tenantA, nil, nil), 404, "not_installed")
	})
}

func contains(b []byte, s string) bool { return len(s) > 0 && bytesIndex(b, s) >= 0 }

func bytesIndex(b []byte, s string) int {
	for i := 0; i+len(s) <= len(b); i++ {
		if string(b[i:i+len(s)]) == s {
			return i
		}
	}
	return -1
}

// TestInstallEgressAllowlist: registryd checks install allowlist entries
// with internal/egress, the parser runners use on every http.fetch, so an
// entry the runner would refuse is refused at PUT time, naming the entry.
func TestInstallEgressAllowlist(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.mustPublish("com.acme.crm", "1.0.0", "http.fetch")
	path := "/v1/tenants/tenant-a/installs/com.acme.crm"

	bad := []struct {
		name  string
		entry string
	}{
		{"a path is refused", "api.vendor.com/v1"},
		{"https:// is refused (only http:// may prefix a host)", "https://api.vendor.com"},
		{"a wildcard in the middle is refused", "api.*.vendor.com"},
		{"a bare wildcard is refused", "*"},
		{"a port out of range is refused", "api.vendor.com:70000"},
		{"an empty port is refused", "api.vendor.com:"},
		{"user info is refused", "user@api.vendor.com"},
		{"an empty entry is refused", " "},
		{"a label starting with a dash is refused", "-api.vendor.com"},
		{"unicode host names are refused (use punycode)", "bücher.example"},
		{"a zoned IPv6 address is refused", "[fe80::1%eth0]"},
	}
	for _, c := range bad {
		t.Run(c.name, func(t *testing.T) {
			r := e.do("PUT", path, e.tenantA, map[string]any{"version": "1.0.0",
				"egress_allowlist": []string{"ok.example.com", c.entry}}, nil)
			expect(t, r, 400, "validation_failed")
			d := r.details()
			if d["entry"] != c.entry || d["field"] != "egress_allowlist" || d["index"] != float64(1) {
				t.Fatalf("details = %v, want entry %q at egress_allowlist[1]", d, c.entry)
			}
			var eb registryapi.ErrorBody
			if err := json.Unmarshal(r.body, &eb); err != nil || !strings.Contains(eb.Error.Message, "egress_allowlist[1]") {
				t.Fatalf("message %q does not name the entry", eb.Error.Message)
			}
		})
	}
	t.Run("a refused PUT leaves no install behind", func(t *testing.T) {
		expect(t, e.do("GET", "/v1/resolve/tenant-a/com.acme.crm", e.service, nil, nil), 404, "not_installed")
	})

	t.Run("every entry form of SPEC §5.3 is accepted and resolves normalised", func(t *testing.T) {
		good := []string{"api.vendor.com", "*.vendor.com", "http://intranet.local:8080", "API.Example.COM.", "10.0.0.5", "[fd00::1]:8443", " padded.example.com "}
		r := e.do("PUT", path, e.tenantA, map[string]any{"version": "1.0.0", "egress_allowlist": good}, nil)
		expect(t, r, 200, "")
		var res registryapi.Resolved
		e.do("GET", "/v1/resolve/tenant-a/com.acme.crm", e.service, nil, nil).decode(t, &res)
		want := []string{"api.vendor.com", "*.vendor.com", "http://intranet.local:8080", "api.example.com.", "10.0.0.5", "[fd00::1]:8443", "padded.example.com"}
		if !slices.Equal(res.EgressAllowlist, want) {
			t.Fatalf("resolved allowlist %q, want %q", res.EgressAllowlist, want)
		}
		if _, err := egress.ParseList(res.EgressAllowlist); err != nil {
			t.Fatalf("the runner's parser refuses what registryd stored: %v", err)
		}
	})
}

func TestCrossTenant(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.mustPublish("com.acme.crm", "1.0.0")
	in := e.install("tenant-a", "com.acme.crm", "1.0.0", "storage.kv")
	pathA := "/v1/tenants/tenant-a/installs/com.acme.crm"

	cases := []struct {
		name, method, path string
		body               any
	}{
		{"read another tenant's install", "GET", pathA, nil},
		{"list another tenant's installs", "GET", "/v1/tenants/tenant-a/installs", nil},
		{"change another tenant's install", "PUT", pathA, map[string]any{}},
		{"disable another tenant's install", "POST", pathA + "/disable", nil},
		{"uninstall another tenant's install", "DELETE", pathA, nil},
		{"set another tenant's secrets", "PUT", pathA + "/secrets", map[string]string{"K": "v"}},
	}
	for _, c := range cases {
		t.Run("tenant admin may not "+c.name, func(t *testing.T) {
			expect(t, e.do(c.method, c.path, e.tenantB, c.body, nil), 403, "forbidden")
		})
	}
	t.Run("tenant admin may not call the service API", func(t *testing.T) {
		expect(t, e.do("GET", "/v1/resolve/tenant-a/com.acme.crm", e.tenantA, nil, nil), 403, "forbidden")
		expect(t, e.do("POST", "/v1/internal/storage", e.tenantA, map[string]any{}, nil), 403, "forbidden")
		expect(t, e.do("GET", "/v1/changes", e.tenantA, nil, nil), 403, "forbidden")
	})
	t.Run("service may not administer installs", func(t *testing.T) {
		expect(t, e.do("GET", pathA, e.service, nil, nil), 403, "forbidden")
	})
	t.Run("resolve of tenant-b does not see tenant-a's install", func(t *testing.T) {
		expect(t, e.do("GET", "/v1/resolve/tenant-b/com.acme.crm", e.service, nil, nil), 404, "not_installed")
	})
	t.Run("KV with another tenant's install id writes and reads nothing", func(t *testing.T) {
		put := map[string]any{"tenant_id": "tenant-a", "install_id": in.ID, "op": "put", "namespace": "n", "key": "k", "value": 1}
		expect(t, e.do("POST", "/v1/internal/storage", e.service, put, nil), 200, "")
		put["tenant_id"] = "tenant-b"
		expect(t, e.do("POST", "/v1/internal/storage", e.service, put, nil), 400, "validation_failed")
		get := map[string]any{"tenant_id": "tenant-b", "install_id": in.ID, "op": "get", "namespace": "n", "key": "k"}
		expect(t, e.do("POST", "/v1/internal/storage", e.service, get, nil), 404, "not_found")
	})
	t.Run("row-level security: a query without the tenant setting sees nothing", func(t *testing.T) {
		pool, err := pgxpool.New(context.Background(), e.pg.URL())
		if err != nil {
			t.Fatal(err)
		}
		defer pool.Close()
		for _, tbl := range []string{"tenant_extension_install", "extension_storage", "extension_event_subscription", "extension_storage_usage"} {
			var n int
			if err := pool.QueryRow(context.Background(), "SELECT count(*) FROM "+tbl).Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n != 0 {
				t.Fatalf("%s: %d rows visible without tenant setting", tbl, n)
			}
		}
		var n int
		err = pgx.BeginFunc(context.Background(), pool, func(tx pgx.Tx) error {
			tx.Exec(context.Background(), "SELECT set_config('extedge.tenant', 'tenant-b', true)")
			return tx.QueryRow(context.Background(), "SELECT count(*) FROM tenant_extension_install").Scan(&n)
		})
		if err != nil || n != 0 {
			t.Fatalf("tenant-b sees %d installs (%v)", n, err)
		}
		err = pgx.BeginFunc(context.Background(), pool, func(tx pgx.Tx) error {
			tx.Exec(context.Background(), "SELECT set_config('extedge.tenant', 'tenant-a', true)")
			return tx.QueryRow(context.Background(), "SELECT count(*) FROM tenant_extension_install").Scan(&n)
		})
		if err != nil || n != 1 {
			t.Fatalf("tenant-a sees %d installs (%v)", n, err)
		}
	})
}

func TestMalformedJSON(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.mustPublish("com.acme.crm", "1.0.0")
	cases := []struct{ method, path, token string }{
		{"PUT", "/v1/tenants/tenant-a/installs/com.acme.crm", ""},
		{"PUT", "/v1/tenants/tenant-a/installs/com.acme.crm/secrets", ""},
		{"POST", "/v1/extensions/com.acme.crm/deprecate", ""},
		{"POST", "/v1/extensions/com.acme.crm/versions/1.0.0/revoke", ""},
		{"POST", "/v1/internal/storage", "service"},
		{"POST", "/v1/internal/executions", "service"},
		{"POST", "/v1/events", "service"},
		{"POST", "/v1/internal/deliveries/lease", "service"},
		{"POST", "/v1/internal/deliveries/00000000-0000-4000-8000-000000000000/complete", "service"},
		{"POST", "/v1/internal/deliveries/00000000-0000-4000-8000-000000000000/fail", "service"},
	}
	bodies := map[string]string{
		"truncated object":  `{"version":`,
		"not JSON":          `hello`,
		"wrong type":        `{"version": 5}`,
		"trailing garbage":  `{} {}`,
		"unknown field":     `{"verison": "1.0.0"}`,
		"array not object":  `[1,2]`,
		"empty body":        ``,
		"invalid utf8 junk": "{\"a\xff\":1}",
	}
	for _, c := range cases {
		for name, body := range bodies {
			if name == "unknown field" && c.path == "/v1/tenants/tenant-a/installs/com.acme.crm/secrets" {
				continue // any key is a secret name there
			}
			t.Run(c.method+" "+c.path+" with "+name+" is invalid_request", func(t *testing.T) {
				tok := e.admin
				if c.token == "service" {
					tok = e.service
				}
				r := e.do(c.method, c.path, tok, body, map[string]string{"Content-Type": "application/json"})
				expect(t, r, http.StatusBadRequest, "invalid_request")
			})
		}
	}
}
