package api_test

import (
	"context"
	"testing"
	"time"

	"github.com/extedge/extedge/internal/registryapi"
)

// follow streams /v1/changes from lastID into a channel until ctx ends.
func follow(ctx context.Context, c *registryapi.Client, lastID int64) <-chan registryapi.Change {
	ch := make(chan registryapi.Change, 100)
	go func() {
		_, _ = c.Changes(ctx, lastID, func(ev registryapi.Change) { ch <- ev })
	}()
	return ch
}

// waitFor returns the first event matching ok within timeout.
func waitFor(t *testing.T, ch <-chan registryapi.Change, timeout time.Duration, ok func(registryapi.Change) bool) registryapi.Change {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case ev := <-ch:
			if ok(ev) {
				return ev
			}
		case <-deadline:
			t.Fatalf("no matching change event within %v", timeout)
		}
	}
}

func TestRevokePropagates(t *testing.T) {
	e := newEnv(t, envOptions{})
	b := e.mustPublish("com.acme.crm", "1.0.0")
	e.install("tenant-a", "com.acme.crm", "1.0.0")
	expect(t, e.do("GET", "/v1/resolve/tenant-a/com.acme.crm", e.service, nil, nil), 200, "")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	from, _ := e.db.LatestChangeID(ctx)
	ch := follow(ctx, e.client(e.service), from)
	// The stream is live once it delivers events; give it one to prove it.
	expect(t, e.do("POST", "/v1/tenants/tenant-a/installs/com.acme.crm/enable", e.tenantA, nil, nil), 200, "")
	waitFor(t, ch, 5*time.Second, func(c registryapi.Change) bool { return c.Type == registryapi.ChangeInstall })

	start := time.Now()
	r := e.do("POST", "/v1/extensions/com.acme.crm/versions/1.0.0/revoke", e.admin, map[string]string{"reason": "key leaked"}, nil)
	expect(t, r, 200, "")
	ev := waitFor(t, ch, time.Second, func(c registryapi.Change) bool { return c.Type == registryapi.ChangeRevoked })
	if ev.ContentHash != b.hash || ev.Extension != "com.acme.crm" {
		t.Fatalf("event %+v", ev)
	}
	t.Logf("version_revoked delivered %v after the revoke returned", time.Since(start))

	expect(t, e.do("GET", "/v1/resolve/tenant-a/com.acme.crm", e.service, nil, nil), 404, "not_installed")
	st, err := e.client(e.service).BundleStatus(ctx, b.hash, "com.acme.crm")
	if err != nil || !st.Published || !st.Revoked || st.Usable() {
		t.Fatalf("bundle status %+v %v", st, err)
	}
	t.Run("installing a revoked version is version_revoked", func(t *testing.T) {
		expect(t, e.do("PUT", "/v1/tenants/tenant-b/installs/com.acme.crm", e.tenantB, map[string]any{"version": "1.0.0"}, nil), 409, "version_revoked")
	})
	t.Run("revoke is idempotent", func(t *testing.T) {
		expect(t, e.do("POST", "/v1/extensions/com.acme.crm/versions/1.0.0/revoke", e.admin, map[string]string{"reason": "again"}, nil), 200, "")
	})
	t.Run("revoke of an unknown version is not_found", func(t *testing.T) {
		expect(t, e.do("POST", "/v1/extensions/com.acme.crm/versions/3.0.0/revoke", e.admin, map[string]string{}, nil), 404, "not_found")
	})
	t.Run("revoke needs a platform admin", func(t *testing.T) {
		expect(t, e.do("POST", "/v1/extensions/com.acme.crm/versions/1.0.0/revoke", e.tenantA, map[string]string{}, nil), 403, "forbidden")
	})
}

func TestChangeFeedResumes(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.mustPublish("com.acme.crm", "1.0.0")
	e.install("tenant-a", "com.acme.crm", "1.0.0")
	ctx, cancel := context.WithCancel(context.Background())
	from, _ := e.db.LatestChangeID(ctx)
	ch := follow(ctx, e.client(e.service), from)
	expect(t, e.do("POST", "/v1/extensions/com.acme.crm/deprecate", e.admin, map[string]string{"reason": "old"}, nil), 200, "")
	first := waitFor(t, ch, 5*time.Second, func(c registryapi.Change) bool { return c.Type == registryapi.ChangeDeprecated })
	cancel() // disconnect

	// Changes while disconnected.
	expect(t, e.do("POST", "/v1/tenants/tenant-a/installs/com.acme.crm/disable", e.tenantA, nil, nil), 200, "")
	expect(t, e.do("POST", "/v1/tenants/tenant-a/installs/com.acme.crm/enable", e.tenantA, nil, nil), 200, "")

	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	ch2 := follow(ctx2, e.client(e.service), first.ID)
	a := waitFor(t, ch2, 5*time.Second, func(registryapi.Change) bool { return true })
	b := waitFor(t, ch2, 5*time.Second, func(registryapi.Change) bool { return true })
	if a.ID != first.ID+1 || b.ID != first.ID+2 || a.Type != registryapi.ChangeInstall || a.TenantID != "tenant-a" {
		t.Fatalf("resumed with %+v %+v after %d", a, b, first.ID)
	}
	t.Run("a bad Last-Event-ID is invalid_request", func(t *testing.T) {
		expect(t, e.do("GET", "/v1/changes", e.service, nil, map[string]string{"Last-Event-ID": "x"}), 400, "invalid_request")
	})
}
