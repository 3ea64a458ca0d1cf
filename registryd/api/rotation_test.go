package api_test

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/extedge/extedge/internal/secretbox"
	"github.com/extedge/extedge/registryd/api"
)

// TestServingDuringKeyRotation: a server whose key file lists the new key
// first and the old one after it resolves secrets stored under either key,
// sealing envelopes under the new key; after `secrets-key rotate`
// (ResealSecrets) a server with the new key alone serves them all.
func TestServingDuringKeyRotation(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := context.Background()
	e.mustPublish("com.acme.crm", "1.0.0")
	e.install("tenant-a", "com.acme.crm", "1.0.0", "secrets.get")
	path := "/v1/tenants/tenant-a/installs/com.acme.crm"
	expect(t, e.do("PUT", path+"/secrets", e.admin, map[string]string{"OLD": "sealed-under-old"}, nil), 200, "")

	newKeys, err := secretbox.ParseKey(secretbox.GenerateKey())
	if err != nil {
		t.Fatal(err)
	}
	serverWith := func(keys *secretbox.Keys) *httptest.Server {
		s := httptest.NewServer(api.New(api.Config{DB: e.db, Keys: keys}).Handler())
		t.Cleanup(s.Close)
		return s
	}
	resolveWith := func(srv *httptest.Server, want map[string]string) {
		t.Helper()
		e2 := *e
		e2.http = srv
		res, _, _, err := e2.client(e.service).Resolve(ctx, "tenant-a", "com.acme.crm", "")
		if err != nil || res.SecretEnvelope == nil {
			t.Fatalf("resolve: %+v, %v", res, err)
		}
		got, err := newKeys.OpenEnvelope(*res.SecretEnvelope, "tenant-a", res.InstallID, time.Now())
		if err != nil {
			t.Fatalf("the new key alone must open the envelope: %v", err)
		}
		for k, v := range want {
			if got[k] != v {
				t.Fatalf("envelope has %s=%q, want %q", k, got[k], v)
			}
		}
	}

	rotating := secretbox.Combine(newKeys, e.keys)
	during := serverWith(rotating)
	e2 := *e
	e2.http = during
	expect(t, e2.do("PUT", path+"/secrets", e.admin, map[string]string{"NEW": "sealed-under-new"}, nil), 200, "")
	resolveWith(during, map[string]string{"OLD": "sealed-under-old", "NEW": "sealed-under-new"})

	stats, err := e.db.ResealSecrets(ctx, 1, rotating.ResealAtRest)
	if err != nil || stats.Examined != 2 || stats.Resealed != 1 {
		t.Fatalf("reseal: %+v, %v; want 2 examined, 1 re-sealed (NEW was already under the new key)", stats, err)
	}
	resolveWith(serverWith(newKeys), map[string]string{"OLD": "sealed-under-old", "NEW": "sealed-under-new"})
}
