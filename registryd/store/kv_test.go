package store

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/extedge/extedge/internal/registryapi"
	"github.com/extedge/extedge/internal/testenv"
	"github.com/extedge/extedge/migrations"
)

// TestKVRowLevelSecurityOnOneRoundTripPaths: the KV paths that send the
// tenant setting together with their statements (a batch for get and list,
// the setting inside BEGIN for writes) are still bound by row-level
// security, not only by their tenant predicates: a statement with no tenant
// predicate sees only the scoped tenant's rows, sees none without a scope,
// and the setting does not outlive the operation on the pooled connection.
func TestKVRowLevelSecurityOnOneRoundTripPaths(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pg := testenv.Postgres(t)
	cfg, err := pgxpool.ParseConfig(pg.URL())
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 1 // every step below runs on the same server session
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	db := &DB{Pool: pool, tokens: newTokenCache(), now: time.Now}
	defer db.Close()
	if _, err := migrations.Apply(ctx, db.Pool); err != nil {
		t.Fatal(err)
	}
	var bypass bool
	if err := pool.QueryRow(ctx, "SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user").Scan(&bypass); err != nil || bypass {
		t.Fatalf("the test role must be bound by RLS: bypass=%v err=%v", bypass, err)
	}
	installA := seedInstall(t, db, "tenant-a")
	installB := seedInstall(t, db, "tenant-b")
	val := json.RawMessage(`{"secret":"b"}`)
	for _, r := range []registryapi.StorageRequest{
		{TenantID: "tenant-a", InstallID: installA, Namespace: "ns", Key: "a-only"},
		{TenantID: "tenant-b", InstallID: installB, Namespace: "ns", Key: "b-only"},
	} {
		r.Op, r.Value = registryapi.StoragePut, val
		if _, err := db.Storage(ctx, r, KVQuota{}); err != nil {
			t.Fatalf("put %s: %v", r.Key, err)
		}
	}

	// Statements without a tenant predicate, scoped the way each KV path
	// scopes its own.
	const visible = `SELECT coalesce(string_agg(tenant_id || '/' || key, ',' ORDER BY key), '') FROM extension_storage`
	batchRead := func(tenant string) string {
		b := &pgx.Batch{}
		queueTenant(b, tenant)
		b.Queue(visible)
		br := db.Pool.SendBatch(ctx, b)
		defer br.Close()
		if _, err := br.Exec(); err != nil {
			t.Fatal(err)
		}
		var got string
		if err := br.QueryRow().Scan(&got); err != nil {
			t.Fatal(err)
		}
		return got
	}
	txRead := func(tenant string) string {
		var got string
		if err := db.inTenant(ctx, tenant, func(tx pgx.Tx) error { return tx.QueryRow(ctx, visible).Scan(&got) }); err != nil {
			t.Fatal(err)
		}
		return got
	}
	unscoped := func() string {
		var got string
		if err := db.Pool.QueryRow(ctx, visible).Scan(&got); err != nil {
			t.Fatal(err)
		}
		return got
	}
	if _, ok := beginInTenant("tenant-a"); !ok {
		t.Fatal("a valid tenant id should take the BEGIN-with-setting path")
	}
	for _, c := range []struct {
		name string
		read func() string
		want string
	}{
		{"batch scoped to tenant-a sees only tenant-a", func() string { return batchRead("tenant-a") }, "tenant-a/a-only"},
		{"batch scoped to tenant-b sees only tenant-b", func() string { return batchRead("tenant-b") }, "tenant-b/b-only"},
		{"no scope after a batch sees nothing", unscoped, ""},
		{"transaction scoped in BEGIN to tenant-a sees only tenant-a", func() string { return txRead("tenant-a") }, "tenant-a/a-only"},
		{"no scope after that transaction sees nothing", unscoped, ""},
		{"platform scope sees both", func() string { return txRead(platformScope) }, "tenant-a/a-only,tenant-b/b-only"},
	} {
		if got := c.read(); got != c.want {
			t.Errorf("%s: got %q, want %q", c.name, got, c.want)
		}
	}
	var leftover string
	if err := db.Pool.QueryRow(ctx, `SELECT coalesce(current_setting('extedge.tenant', true), '')`).Scan(&leftover); err != nil || leftover != "" {
		t.Errorf("tenant setting outlived its operation on the pooled connection: %q, %v", leftover, err)
	}

	// Through Storage itself: tenant-a naming tenant-b's install and key
	// gets nothing, and cannot write into it.
	get := registryapi.StorageRequest{Op: registryapi.StorageGet, TenantID: "tenant-a", InstallID: installB, Namespace: "ns", Key: "b-only"}
	if _, err := db.Storage(ctx, get, KVQuota{}); !isCode(err, CodeNotFound) {
		t.Errorf("tenant-a get of tenant-b's key: %v, want not_found", err)
	}
	list := registryapi.StorageRequest{Op: registryapi.StorageList, TenantID: "tenant-a", InstallID: installB, Namespace: "ns"}
	if resp, err := db.Storage(ctx, list, KVQuota{}); err != nil || len(resp.Items) != 0 {
		t.Errorf("tenant-a list of tenant-b's install: %+v, %v, want no items", resp, err)
	}
	put := registryapi.StorageRequest{Op: registryapi.StoragePut, TenantID: "tenant-a", InstallID: installB, Namespace: "ns", Key: "b-only", Value: val}
	if _, err := db.Storage(ctx, put, KVQuota{}); !isCode(err, CodeValidationFailed) {
		t.Errorf("tenant-a put into tenant-b's install: %v, want validation_failed", err)
	}
	if got := txRead(platformScope); got != "tenant-a/a-only,tenant-b/b-only" {
		t.Errorf("rows after the refused calls: %q", got)
	}
}

// seedInstall creates a catalog entry and an install of it for tenant and
// returns the install id.
func seedInstall(t *testing.T, db *DB, tenant string) string {
	t.Helper()
	ctx := context.Background()
	name := "com.acme.rls-" + strings.ToLower(tenant)
	hash := "sha256:" + strings.Repeat(string("ab"[len(tenant)%2]), 64)
	var id string
	err := db.inTenant(ctx, tenant, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO extension_bundle (content_hash, storage_url, size, runtime) VALUES ($1, 'file:///x', 1, 'wasm@1') ON CONFLICT DO NOTHING`, hash); err != nil {
			return err
		}
		return tx.QueryRow(ctx, `WITH r AS (INSERT INTO extension_registry (name, publisher) VALUES ($1, 'Acme Inc.') RETURNING id),
			v AS (INSERT INTO extension_version (registry_id, semver, content_hash, manifest, runtime) SELECT id, '1.0.0', $2, '{}', 'wasm@1' FROM r RETURNING id, registry_id)
			INSERT INTO tenant_extension_install (tenant_id, registry_id, version_id) SELECT $3, registry_id, id FROM v RETURNING id::text`,
			name, hash, tenant).Scan(&id)
	})
	if err != nil {
		t.Fatalf("seeding %s: %v", tenant, err)
	}
	return id
}
