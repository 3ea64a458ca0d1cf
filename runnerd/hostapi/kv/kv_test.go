package kv

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/extedge/extedge/internal/execapi"
	"github.com/extedge/extedge/internal/registryapi"
	"github.com/extedge/extedge/runnerd/hostapi"
)

// fakeRegistry implements the registryapi storage contract
// (POST /v1/internal/storage) in memory. registryd is written in parallel;
// real registryd integration comes later, in the runnerd end-to-end tests.
// The runner side under test here is the real client and capability.
type fakeRegistry struct {
	mu    sync.Mutex
	recs  map[string]registryapi.StorageItem // tenant|install|ns|key
	seen  []registryapi.StorageRequest
	token string
}

func (f *fakeRegistry) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	fail := func(status int, code, msg string) {
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": code, "message": msg}})
	}
	if r.URL.Path != "/v1/internal/storage" || r.Header.Get("Authorization") != "Bearer "+f.token {
		fail(401, "unauthorized", "no")
		return
	}
	var req registryapi.StorageRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		fail(400, "validation_failed", "bad json")
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seen = append(f.seen, req)
	scope := req.TenantID + "|" + req.InstallID + "|" + req.Namespace + "|"
	cur, exists := f.recs[scope+req.Key]
	var resp registryapi.StorageResponse
	switch req.Op {
	case "get":
		if !exists {
			fail(404, "not_found", "no such key")
			return
		}
		resp.Item = &cur
	case "put":
		if req.IfRevision != nil && (!exists || cur.Revision != *req.IfRevision) {
			fail(409, "revision_mismatch", "revision differs")
			return
		}
		it := registryapi.StorageItem{Namespace: req.Namespace, Key: req.Key, Value: req.Value, Revision: cur.Revision + 1}
		f.recs[scope+req.Key] = it
		resp.Item = &it
	case "delete":
		delete(f.recs, scope+req.Key)
		resp.Deleted = exists
	case "list":
		var keys []string
		for k := range f.recs {
			if strings.HasPrefix(k, scope+req.Prefix) {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		for _, k := range keys {
			resp.Items = append(resp.Items, f.recs[k])
		}
	}
	json.NewEncoder(w).Encode(resp)
}

func call(t *testing.T, set *hostapi.Set, name, tenant, install, req string) (int32, map[string]any) {
	t.Helper()
	inv := hostapi.NewInvocation(context.Background(), &execapi.Request{
		Context:      execapi.Context{TenantID: tenant, InstallID: install},
		Capabilities: []string{"storage.kv"},
	}, hostapi.Budgets{})
	for _, b := range set.Imports() {
		if b.Name == name {
			out, st := set.CallJSON(inv, &b, []byte(req))
			var m map[string]any
			if err := json.Unmarshal(out, &m); err != nil {
				t.Fatal(err)
			}
			return st, m
		}
	}
	t.Fatalf("no import %s", name)
	return 0, nil
}

func code(m map[string]any) string {
	e, _ := m["error"].(map[string]any)
	c, _ := e["code"].(string)
	return c
}

func TestStorageThroughTheRegistryContract(t *testing.T) {
	reg := &fakeRegistry{recs: map[string]registryapi.StorageItem{}, token: "svc"}
	srv := httptest.NewServer(reg)
	defer srv.Close()
	set, err := hostapi.NewSet(New(registryapi.New(srv.URL, "svc", nil)))
	if err != nil {
		t.Fatal(err)
	}
	st, m := call(t, set, "storage.put", "t1", "i1", `{"namespace":"agreements","key":"a1","value":{"n":1}}`)
	if st != 0 || m["item"].(map[string]any)["revision"].(float64) != 1 {
		t.Fatalf("put: %d %v", st, m)
	}
	st, m = call(t, set, "storage.get", "t1", "i1", `{"namespace":"agreements","key":"a1"}`)
	if st != 0 || m["item"].(map[string]any)["value"].(map[string]any)["n"].(float64) != 1 {
		t.Fatalf("get: %d %v", st, m)
	}
	if st, m = call(t, set, "storage.put", "t1", "i1", `{"namespace":"agreements","key":"a1","value":2,"if_revision":7}`); code(m) != registryapi.CodeRevisionMismatch {
		t.Fatalf("stale put: %d %v", st, m)
	}
	if _, m = call(t, set, "storage.list", "t1", "i1", `{"namespace":"agreements"}`); len(m["items"].([]any)) != 1 {
		t.Fatalf("list: %v", m)
	}
	t.Run("another tenant does not see the record", func(t *testing.T) {
		if _, m := call(t, set, "storage.get", "t2", "i1", `{"namespace":"agreements","key":"a1"}`); code(m) != registryapi.CodeNotFound {
			t.Fatalf("cross-tenant get: %v", m)
		}
	})
	t.Run("guest cannot name a tenant", func(t *testing.T) {
		if _, m := call(t, set, "storage.get", "t2", "i1", `{"namespace":"agreements","key":"a1","tenant_id":"t1"}`); code(m) != hostapi.CodeInvalidRequest {
			t.Fatalf("tenant in request: %v", m)
		}
		for _, r := range reg.seen {
			if r.TenantID == "t1" && r.InstallID != "i1" {
				t.Fatalf("registry saw a foreign scope: %+v", r)
			}
		}
	})
	if st, m = call(t, set, "storage.delete", "t1", "i1", `{"namespace":"agreements","key":"a1"}`); st != 0 || m["deleted"] != true {
		t.Fatalf("delete: %d %v", st, m)
	}
}

func TestStorageValidation(t *testing.T) {
	set, _ := hostapi.NewSet(New(nil))
	long := strings.Repeat("k", 257)
	for _, tt := range []struct{ name, op, req, code string }{
		{"key over 256 bytes is refused", "storage.get", `{"namespace":"n","key":"` + long + `"}`, registryapi.CodeValidationFailed},
		{"missing namespace is refused", "storage.get", `{"key":"k"}`, registryapi.CodeValidationFailed},
		{"value over 256 KiB is refused", "storage.put", `{"namespace":"n","key":"k","value":"` + strings.Repeat("v", 256<<10) + `"}`, registryapi.CodeValidationFailed},
		{"ttl under 60 s is refused", "storage.put", `{"namespace":"n","key":"k","value":1,"ttl_seconds":5}`, registryapi.CodeValidationFailed},
		{"list limit over 100 is refused", "storage.list", `{"namespace":"n","limit":101}`, registryapi.CodeValidationFailed},
		{"no registry is storage_unavailable", "storage.get", `{"namespace":"n","key":"k"}`, CodeUnavailable},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, m := call(t, set, tt.op, "t", "i", tt.req); code(m) != tt.code {
				t.Fatalf("got %v, want %s", m, tt.code)
			}
		})
	}
}
