package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/extedge/extedge/internal/registryapi"
	"github.com/extedge/extedge/registryd/store"
)

func rev(n int64) *int64 { return &n }

func TestStorageKV(t *testing.T) {
	e := newEnv(t, envOptions{kvQuota: store.KVQuota{MaxRecords: 5, MaxBytes: 4096}})
	e.mustPublish("com.acme.crm", "1.0.0")
	in := e.install("tenant-a", "com.acme.crm", "1.0.0", "storage.kv")
	c := e.client(e.service)
	ctx := context.Background()
	base := registryapi.StorageRequest{TenantID: "tenant-a", InstallID: in.ID, Namespace: "agreements"}
	op := func(mod func(*registryapi.StorageRequest)) (*registryapi.StorageResponse, error) {
		r := base
		mod(&r)
		return c.Storage(ctx, r)
	}
	put := func(key, value string, ifRev *int64) (*registryapi.StorageResponse, error) {
		return op(func(r *registryapi.StorageRequest) {
			r.Op, r.Key, r.Value, r.IfRevision = "put", key, json.RawMessage(value), ifRev
		})
	}

	t.Run("revisions start at 1 and grow by one", func(t *testing.T) {
		for want := int64(1); want <= 3; want++ {
			res, err := put("a", fmt.Sprintf(`{"n":%d}`, want), nil)
			if err != nil || res.Item.Revision != want {
				t.Fatalf("put %d: %+v %v", want, res, err)
			}
		}
		res, err := op(func(r *registryapi.StorageRequest) { r.Op, r.Key = "get", "a" })
		if err != nil || res.Item.Revision != 3 || string(res.Item.Value) != `{"n":3}` {
			t.Fatalf("get: %+v %v", res, err)
		}
	})
	t.Run("if_revision mismatch is revision_mismatch", func(t *testing.T) {
		_, err := put("a", `1`, rev(2))
		if !registryapi.IsCode(err, "revision_mismatch") {
			t.Fatalf("err = %v", err)
		}
		if _, err := put("a", `1`, rev(3)); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("if_revision 0 creates only", func(t *testing.T) {
		if _, err := put("new", `1`, rev(0)); err != nil {
			t.Fatal(err)
		}
		if _, err := put("new", `2`, rev(0)); !registryapi.IsCode(err, "revision_mismatch") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("a missing key is not_found", func(t *testing.T) {
		_, err := op(func(r *registryapi.StorageRequest) { r.Op, r.Key = "get", "missing" })
		if !registryapi.IsCode(err, "not_found") {
			t.Fatalf("err = %v", err)
		}
		_, err = op(func(r *registryapi.StorageRequest) { r.Op, r.Key = "delete", "missing" })
		if !registryapi.IsCode(err, "not_found") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("delete honours if_revision", func(t *testing.T) {
		_, err := op(func(r *registryapi.StorageRequest) { r.Op, r.Key, r.IfRevision = "delete", "new", rev(7) })
		if !registryapi.IsCode(err, "revision_mismatch") {
			t.Fatalf("err = %v", err)
		}
		res, err := op(func(r *registryapi.StorageRequest) { r.Op, r.Key, r.IfRevision = "delete", "new", rev(1) })
		if err != nil || !res.Deleted {
			t.Fatalf("%+v %v", res, err)
		}
	})
	validation := []struct {
		name string
		mod  func(*registryapi.StorageRequest)
	}{
		{"a key over 256 bytes", func(r *registryapi.StorageRequest) {
			r.Op, r.Key, r.Value = "put", strings.Repeat("k", 257), json.RawMessage(`1`)
		}},
		{"an empty key", func(r *registryapi.StorageRequest) { r.Op, r.Value = "put", json.RawMessage(`1`) }},
		{"a value over 256 KiB", func(r *registryapi.StorageRequest) {
			r.Op, r.Key, r.Value = "put", "big", json.RawMessage(`"`+strings.Repeat("x", 256<<10)+`"`)
		}},
		{"a TTL under 60 s", func(r *registryapi.StorageRequest) {
			r.Op, r.Key, r.Value, r.TTLSeconds = "put", "t", json.RawMessage(`1`), 59
		}},
		{"a TTL over 30 days", func(r *registryapi.StorageRequest) {
			r.Op, r.Key, r.Value, r.TTLSeconds = "put", "t", json.RawMessage(`1`), 30*24*3600+1
		}},
		{"a list limit over 100", func(r *registryapi.StorageRequest) { r.Op, r.Limit = "list", 101 }},
		{"an unknown op", func(r *registryapi.StorageRequest) { r.Op = "increment" }},
		{"a bad cursor", func(r *registryapi.StorageRequest) { r.Op, r.Cursor = "list", "!!!" }},
		{"an empty namespace", func(r *registryapi.StorageRequest) { r.Op, r.Key, r.Namespace = "get", "a", "" }},
		{"a bad install id", func(r *registryapi.StorageRequest) { r.Op, r.Key, r.InstallID = "get", "a", "x" }},
		{"a bad tenant id", func(r *registryapi.StorageRequest) { r.Op, r.Key, r.TenantID = "get", "a", "*" }},
	}
	for _, v := range validation {
		t.Run(v.name+" is validation_failed", func(t *testing.T) {
			if _, err := op(v.mod); !registryapi.IsCode(err, "validation_failed") {
				t.Fatalf("err = %v", err)
			}
		})
	}
	t.Run("a put with a TTL reports its expiry", func(t *testing.T) {
		res, err := op(func(r *registryapi.StorageRequest) {
			r.Op, r.Key, r.Value, r.TTLSeconds = "put", "ttl", json.RawMessage(`1`), 60
		})
		if err != nil || res.Item.ExpiresAt == nil || time.Until(*res.Item.ExpiresAt) < 50*time.Second {
			t.Fatalf("%+v %v", res, err)
		}
	})
	t.Run("expired records are not found", func(t *testing.T) {
		expireKey(t, e, "tenant-a", "ttl")
		_, err := op(func(r *registryapi.StorageRequest) { r.Op, r.Key = "get", "ttl" })
		if !registryapi.IsCode(err, "not_found") {
			t.Fatalf("err = %v", err)
		}
		res, err := put("ttl", `2`, rev(0))
		if err != nil || res.Item.Revision != 1 {
			t.Fatalf("recreating an expired key: %+v %v", res, err)
		}
	})
	t.Run("record quota is quota_exceeded", func(t *testing.T) {
		// a, ttl exist; quota is 5 records.
		for _, k := range []string{"q1", "q2", "q3"} {
			if _, err := put(k, `1`, nil); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := put("q4", `1`, nil); !registryapi.IsCode(err, "quota_exceeded") {
			t.Fatalf("err = %v", err)
		}
		if _, err := put("q3", `2`, nil); err != nil {
			t.Fatalf("overwriting within quota: %v", err)
		}
	})
	t.Run("byte quota is quota_exceeded", func(t *testing.T) {
		if _, err := put("q3", `"`+strings.Repeat("x", 5000)+`"`, nil); !registryapi.IsCode(err, "quota_exceeded") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("list pages with a cursor", func(t *testing.T) {
		var keys []string
		cursor := ""
		for pages := 0; ; pages++ {
			res, err := op(func(r *registryapi.StorageRequest) { r.Op, r.Limit, r.Cursor, r.Prefix = "list", 2, cursor, "q" })
			if err != nil {
				t.Fatal(err)
			}
			for _, it := range res.Items {
				keys = append(keys, it.Key)
			}
			if res.NextCursor == "" {
				break
			}
			cursor = res.NextCursor
			if pages > 5 {
				t.Fatal("cursor does not advance")
			}
		}
		if fmt.Sprint(keys) != "[q1 q2 q3]" {
			t.Fatalf("keys %v", keys)
		}
	})
}

// expireKey moves a record's expiry into the past.
func expireKey(t *testing.T, e *env, tenant, key string) {
	t.Helper()
	ctx := context.Background()
	tx, err := e.db.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, "SELECT set_config('extedge.tenant', $1, true)", tenant); err != nil {
		t.Fatal(err)
	}
	tag, err := tx.Exec(ctx, "UPDATE extension_storage SET expires_at = now() - interval '1 second' WHERE tenant_id = $1 AND key = $2", tenant, key)
	if err != nil || tag.RowsAffected() != 1 {
		t.Fatalf("expiring: %v %v", tag, err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestConcurrentIfRevision: 50 concurrent puts with the same if_revision on
// one key give exactly one winner per revision.
func TestConcurrentIfRevision(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.mustPublish("com.acme.crm", "1.0.0")
	in := e.install("tenant-a", "com.acme.crm", "1.0.0", "storage.kv")
	c := e.client(e.service)
	ctx := context.Background()
	req := registryapi.StorageRequest{TenantID: "tenant-a", InstallID: in.ID, Op: "put", Namespace: "n", Key: "counter"}

	race := func(ifRev int64) (winners int, winningRev int64) {
		var wg sync.WaitGroup
		var mu sync.Mutex
		for i := range 50 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := req
				r.Value = json.RawMessage(fmt.Sprint(i))
				r.IfRevision = rev(ifRev)
				res, err := c.Storage(ctx, r)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					winners++
					winningRev = res.Item.Revision
				case !registryapi.IsCode(err, "revision_mismatch"):
					t.Errorf("put %d: %v", i, err)
				}
			}()
		}
		wg.Wait()
		return winners, winningRev
	}
	for _, ifRev := range []int64{0, 1, 2} {
		w, r := race(ifRev)
		if w != 1 || r != ifRev+1 {
			t.Fatalf("if_revision %d: %d winners (revision %d), want exactly 1 at %d", ifRev, w, r, ifRev+1)
		}
	}
}

func TestExecutionsAggregate(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := e.client(e.service)
	ctx := context.Background()
	minute := time.Now().UTC().Truncate(time.Minute)
	var recs []registryapi.ExecutionRecord
	for i := range 10 {
		outcome := "ok"
		if i%5 == 0 {
			outcome = "timeout"
		}
		recs = append(recs, registryapi.ExecutionRecord{
			RequestID: fmt.Sprint("r", i), TenantID: "tenant-a", ExtensionID: "com.acme.crm", InstallID: "i1",
			StartedAt: minute.Add(time.Duration(i) * time.Second), FinishedAt: minute.Add(time.Duration(i)*time.Second + 5*time.Millisecond),
			Outcome: outcome, HTTPStatus: 200, DurationMS: 5, CPUMS: 2, EgressBytes: 100,
		})
	}
	recs = append(recs, registryapi.ExecutionRecord{RequestID: "rb", TenantID: "tenant-b", ExtensionID: "com.acme.crm", InstallID: "i2",
		StartedAt: minute.Add(-time.Minute), Outcome: "ok", DurationMS: 1})
	if err := c.PostExecutions(ctx, recs[:6]); err != nil {
		t.Fatal(err)
	}
	if err := c.PostExecutions(ctx, recs[6:]); err != nil {
		t.Fatal(err)
	}
	usage, err := e.db.UsageFor(ctx, "tenant-a")
	if err != nil || len(usage) != 1 {
		t.Fatalf("usage %+v %v", usage, err)
	}
	u := usage[0]
	if u.Invocations != 10 || u.Errors != 2 || u.EgressBytes != 1000 || u.CPUMS != 20 || !u.WindowStart.Equal(minute) {
		t.Fatalf("usage %+v", u)
	}
	ub, _ := e.db.UsageFor(ctx, "tenant-b")
	if len(ub) != 1 || ub[0].Invocations != 1 {
		t.Fatalf("tenant-b usage %+v", ub)
	}
	t.Run("a resent batch is stored and counted once", func(t *testing.T) {
		if err := c.PostExecutions(ctx, recs[:6]); err != nil {
			t.Fatal(err)
		}
		usage, _ := e.db.UsageFor(ctx, "tenant-a")
		if usage[0].Invocations != 10 {
			t.Fatalf("resent records counted again: %+v", usage)
		}
	})
	t.Run("retention removes old records but keeps usage", func(t *testing.T) {
		n, err := e.db.PurgeExecutionLog(ctx, minute)
		if err != nil || n != 1 { // tenant-b's record started a minute earlier
			t.Fatalf("purged %d, %v", n, err)
		}
		ub, _ := e.db.UsageFor(ctx, "tenant-b")
		if len(ub) != 1 {
			t.Fatal("usage removed with the log")
		}
	})
	t.Run("a record without tenant is invalid_request and nothing is stored", func(t *testing.T) {
		bad := []registryapi.ExecutionRecord{recs[0], {RequestID: "x", ExtensionID: "e", InstallID: "i", StartedAt: minute, Outcome: "ok"}}
		if err := c.PostExecutions(ctx, bad); !registryapi.IsCode(err, "invalid_request") {
			t.Fatalf("err = %v", err)
		}
		usage, _ := e.db.UsageFor(ctx, "tenant-a")
		if usage[0].Invocations != 10 {
			t.Fatalf("partial batch counted: %+v", usage)
		}
	})
}

func TestKVJanitor(t *testing.T) {
	e := newEnv(t, envOptions{kvQuota: store.KVQuota{MaxRecords: 2}})
	e.mustPublish("com.acme.crm", "1.0.0")
	in := e.install("tenant-a", "com.acme.crm", "1.0.0", "storage.kv")
	c := e.client(e.service)
	ctx := context.Background()
	for _, k := range []string{"a", "b"} {
		if _, err := c.Storage(ctx, registryapi.StorageRequest{TenantID: "tenant-a", InstallID: in.ID, Op: "put", Namespace: "n", Key: k, Value: json.RawMessage(`1`), TTLSeconds: 60}); err != nil {
			t.Fatal(err)
		}
	}
	expireKey(t, e, "tenant-a", "a")
	n, err := e.db.PurgeExpiredKV(ctx)
	if err != nil || n != 1 {
		t.Fatalf("purged %d, %v", n, err)
	}
	// The usage row was decremented: one more record fits again.
	if _, err := c.Storage(ctx, registryapi.StorageRequest{TenantID: "tenant-a", InstallID: in.ID, Op: "put", Namespace: "n", Key: "c", Value: json.RawMessage(`1`)}); err != nil {
		t.Fatalf("after purge: %v", err)
	}
	if _, err := c.Storage(ctx, registryapi.StorageRequest{TenantID: "tenant-a", InstallID: in.ID, Op: "put", Namespace: "n", Key: "d", Value: json.RawMessage(`1`)}); !registryapi.IsCode(err, "quota_exceeded") {
		t.Fatalf("quota after purge: %v", err)
	}
}

func TestKVQuotaCountsExpiredUntilCleaned(t *testing.T) {
	e := newEnv(t, envOptions{kvQuota: store.KVQuota{MaxRecords: 1}})
	e.mustPublish("com.acme.crm", "1.0.0")
	in := e.install("tenant-a", "com.acme.crm", "1.0.0", "storage.kv")
	c := e.client(e.service)
	ctx := context.Background()
	if _, err := c.Storage(ctx, registryapi.StorageRequest{TenantID: "tenant-a", InstallID: in.ID, Op: "put", Namespace: "n", Key: "a", Value: json.RawMessage(`1`), TTLSeconds: 60}); err != nil {
		t.Fatal(err)
	}
	expireKey(t, e, "tenant-a", "a")
	// A put that would exceed the quota first removes this install's
	// expired records, then succeeds.
	if _, err := c.Storage(ctx, registryapi.StorageRequest{TenantID: "tenant-a", InstallID: in.ID, Op: "put", Namespace: "n", Key: "b", Value: json.RawMessage(`1`)}); err != nil {
		t.Fatalf("put with an expired record in the way: %v", err)
	}
}
