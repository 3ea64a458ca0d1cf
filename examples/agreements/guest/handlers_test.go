//go:build !wasip1

// Native tests only: guest.SetTestHost does not exist in wasip1 builds.

package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	gosync "sync"
	"testing"
	"time"

	"github.com/extedge/extedge/internal/devstack/psa"
	"github.com/extedge/extedge/sdk/guest"
)

const testAPIKey = "vendor-key-123"

// fakeHost plays the runner for native tests: an in-memory KV with
// revisions and cursor listing, secrets, and http.fetch performed for real
// against allowed test servers. Every import call is counted.
type fakeHost struct {
	mu      gosync.Mutex
	kv      map[string]fakeRecord // namespace + "\x00" + key
	secrets map[string]string
	allowed map[string]bool // hosts http.fetch may reach; others are egress_denied
	// fetchErr, when set, is the host error code every fetch fails with.
	fetchErr string
	// putErr, when set, is the host error code every storage.put fails with.
	putErr  string
	denied  map[string]bool // imports answering capability_denied
	calls   map[string]int
	fetches []fetchCall
	logs    []string
}

type fakeRecord struct {
	value    json.RawMessage
	revision int64
}

type fetchCall struct {
	URL     string            `json:"url"`
	Method  string            `json:"method"`
	Headers map[string]string `json:"headers"`
	Timeout int               `json:"timeout_ms"`
}

func newFakeHost(t *testing.T) *fakeHost {
	h := &fakeHost{kv: map[string]fakeRecord{}, secrets: map[string]string{}, allowed: map[string]bool{},
		denied: map[string]bool{}, calls: map[string]int{}}
	t.Cleanup(guest.SetTestHost(h.serve))
	return h
}

func hostErr(code, msg string) ([]byte, uint32) {
	b, _ := json.Marshal(guest.ErrorBody{Error: guest.ErrorDetail{Code: code, Message: msg}})
	return b, 1
}

func (h *fakeHost) serve(name string, req []byte) ([]byte, uint32) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.calls[name]++
	if strings.HasPrefix(name, "log_") {
		h.logs = append(h.logs, name+": "+string(req))
		return nil, 0
	}
	if h.denied[name] {
		return hostErr(guest.CodeCapabilityDenied, name+" is not granted")
	}
	switch name {
	case "secrets.get":
		var r struct{ Key string }
		json.Unmarshal(req, &r)
		v, ok := h.secrets[r.Key]
		if !ok {
			return hostErr(guest.CodeNotFound, "no secret "+r.Key)
		}
		b, _ := json.Marshal(map[string]string{"value": v})
		return b, 0
	case "http.fetch":
		return h.fetch(req)
	case "storage.get", "storage.put", "storage.delete", "storage.list":
		return h.storage(strings.TrimPrefix(name, "storage."), req)
	case "metrics.emit":
		return []byte(`{}`), 0
	}
	return hostErr(guest.CodeCapabilityDenied, "unknown import "+name)
}

func (h *fakeHost) fetch(req []byte) ([]byte, uint32) {
	var r fetchCall
	if err := json.Unmarshal(req, &r); err != nil {
		return hostErr(guest.CodeValidationFailed, err.Error())
	}
	h.fetches = append(h.fetches, r)
	if h.fetchErr != "" {
		return hostErr(h.fetchErr, "injected")
	}
	u, err := url.Parse(r.URL)
	if err != nil || u.Host == "" {
		return hostErr(guest.CodeInvalidURL, "bad url")
	}
	if !h.allowed[u.Host] {
		return hostErr(guest.CodeEgressDenied, "host "+u.Host+" is not allowed")
	}
	method := r.Method
	if method == "" {
		method = "GET"
	}
	hr, _ := http.NewRequest(method, r.URL, nil)
	for k, v := range r.Headers {
		hr.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(hr)
	if err != nil {
		return hostErr(guest.CodeTransport, err.Error())
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	b, _ := json.Marshal(map[string]any{"status": resp.StatusCode,
		"headers": map[string]string{"content-type": resp.Header.Get("Content-Type")}, "body_b64": body})
	return b, 0
}

func (h *fakeHost) storage(op string, req []byte) ([]byte, uint32) {
	var r struct {
		Namespace  string          `json:"namespace"`
		Key        string          `json:"key"`
		Value      json.RawMessage `json:"value"`
		IfRevision *int64          `json:"if_revision"`
		Prefix     string          `json:"prefix"`
		Cursor     string          `json:"cursor"`
		Limit      int             `json:"limit"`
	}
	if err := json.Unmarshal(req, &r); err != nil || r.Namespace == "" {
		return hostErr(guest.CodeValidationFailed, "bad storage request")
	}
	if op != "list" && (r.Key == "" || len(r.Key) > 256) {
		return hostErr(guest.CodeValidationFailed, "bad key")
	}
	k := r.Namespace + "\x00" + r.Key
	cur, exists := h.kv[k]
	item := func(key string, rec fakeRecord) map[string]any {
		return map[string]any{"namespace": r.Namespace, "key": key, "value": rec.value, "revision": rec.revision}
	}
	reply := func(v any) ([]byte, uint32) {
		b, _ := json.Marshal(v)
		return b, 0
	}
	switch op {
	case "get":
		if !exists {
			return hostErr(guest.CodeNotFound, "no record")
		}
		return reply(map[string]any{"item": item(r.Key, cur)})
	case "put":
		if h.putErr != "" {
			return hostErr(h.putErr, "injected")
		}
		if r.IfRevision != nil && *r.IfRevision != cur.revision {
			return hostErr(guest.CodeRevisionMismatch, "revision is "+strconv.FormatInt(cur.revision, 10))
		}
		if len(r.Value) > 256<<10 || !json.Valid(r.Value) {
			return hostErr(guest.CodeValidationFailed, "bad value")
		}
		cur = fakeRecord{value: append(json.RawMessage(nil), r.Value...), revision: cur.revision + 1}
		h.kv[k] = cur
		return reply(map[string]any{"item": item(r.Key, cur)})
	case "delete":
		if !exists {
			return hostErr(guest.CodeNotFound, "no record")
		}
		delete(h.kv, k)
		return reply(map[string]any{"deleted": true})
	case "list":
		limit := r.Limit
		if limit <= 0 || limit > 100 {
			limit = 100
		}
		var keys []string
		for full := range h.kv {
			ns, key, _ := strings.Cut(full, "\x00")
			if ns == r.Namespace && strings.HasPrefix(key, r.Prefix) && key > r.Cursor {
				keys = append(keys, key)
			}
		}
		sort.Strings(keys)
		next := ""
		if len(keys) > limit {
			keys, next = keys[:limit], keys[limit-1]
		}
		items := []map[string]any{}
		for _, key := range keys {
			items = append(items, item(key, h.kv[r.Namespace+"\x00"+key]))
		}
		return reply(map[string]any{"items": items, "next_cursor": next})
	}
	return hostErr(guest.CodeValidationFailed, "unknown op")
}

// record returns the stored JSON of namespace "agreements", key, or nil.
func (h *fakeHost) record(key string) (json.RawMessage, int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	rec, ok := h.kv[namespace+"\x00"+key]
	if !ok {
		return nil, 0
	}
	return rec.value, rec.revision
}

func (h *fakeHost) recordCount() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.kv)
}

// vendor starts the demo's real vendor mock (internal/devstack/psa) and
// allows the fake host to reach it.
func (h *fakeHost) vendor(t *testing.T, handler http.Handler) string {
	if handler == nil {
		handler = psa.Handler(psa.Config{VendorAPIKey: testAPIKey})
	}
	srv := httptest.NewServer(handler)
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	h.mu.Lock()
	h.allowed[u.Host] = true
	h.mu.Unlock()
	return srv.URL
}

// call dispatches one request the way the runner would for the manifest
// endpoint (method, pattern, handler).
func call(t *testing.T, method, path, handler string, query, params map[string]string, config any) (guest.Response, map[string]any) {
	t.Helper()
	r := &guest.Request{
		Context:  guest.Context{RequestID: "r-1", TenantID: "t-1"},
		HTTP:     guest.HTTP{Method: method, Path: path, Query: query, Headers: map[string]string{}},
		Endpoint: guest.Endpoint{Method: method, Handler: handler, Params: params},
	}
	if config != nil {
		b, err := json.Marshal(config)
		if err != nil {
			t.Fatal(err)
		}
		r.Config = b
	}
	resp := guest.Serve(r)
	var body map[string]any
	if err := json.Unmarshal(resp.Body, &body); err != nil {
		t.Fatalf("%s %s: body is not a JSON object: %v: %q", method, path, err, resp.Body)
	}
	return resp, body
}

func errorCode(body map[string]any) string {
	e, _ := body["error"].(map[string]any)
	code, _ := e["code"].(string)
	return code
}

func listPageOf(t *testing.T, query map[string]string) (guest.Response, map[string]any) {
	t.Helper()
	return call(t, "GET", "/agreements", handlerList, query, nil, nil)
}

func syncNow(t *testing.T, cfg any) (guest.Response, map[string]any) {
	t.Helper()
	return call(t, "POST", "/agreements/sync", handlerSync, nil, nil, cfg)
}

// synced returns a fake host whose KV holds what one sync from the vendor
// mock (23 agreements) stored.
func synced(t *testing.T) *fakeHost {
	t.Helper()
	h := newFakeHost(t)
	h.secrets[secretAPIKey] = testAPIKey
	vendorURL := h.vendor(t, nil)
	resp, body := syncNow(t, map[string]string{"vendor_url": vendorURL})
	if resp.Status != 200 || body["synced"] != 23.0 {
		t.Fatalf("sync: %d %v", resp.Status, body)
	}
	return h
}

func ids(body map[string]any) []string {
	var out []string
	items, _ := body["items"].([]any)
	for _, it := range items {
		out = append(out, it.(map[string]any)["id"].(string))
	}
	return out
}

func agrIDs(from, to int) []string {
	var out []string
	for i := from; i <= to; i++ {
		out = append(out, fmt.Sprintf("AGR-%d", 1000+i))
	}
	return out
}

func TestListPaging(t *testing.T) {
	synced(t)
	tests := []struct {
		name     string
		query    map[string]string
		page     float64
		pageSize float64
		want     []string
	}{
		{"first page holds the first ids in order", map[string]string{"page": "1", "page_size": "10"}, 1, 10, agrIDs(1, 10)},
		{"last page holds the remainder", map[string]string{"page": "3", "page_size": "10"}, 3, 10, agrIDs(21, 23)},
		{"a page past the end is empty", map[string]string{"page": "4", "page_size": "10"}, 4, 10, nil},
		{"defaults are page 1 of 20", nil, 1, 20, agrIDs(1, 20)},
		{"empty values mean the defaults", map[string]string{"page": "", "page_size": ""}, 1, 20, agrIDs(1, 20)},
		{"page_size is capped at 100", map[string]string{"page_size": "5000"}, 1, 100, agrIDs(1, 23)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := listPageOf(t, tt.query)
			if resp.Status != 200 || resp.Headers["content-type"] != "application/json" {
				t.Fatalf("status %d headers %v: %v", resp.Status, resp.Headers, body)
			}
			if body["total"] != 23.0 || body["page"] != tt.page || body["page_size"] != tt.pageSize {
				t.Fatalf("total/page/page_size = %v/%v/%v", body["total"], body["page"], body["page_size"])
			}
			if got := ids(body); fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Fatalf("ids %v, want %v", got, tt.want)
			}
			if items, ok := body["items"].([]any); !ok || items == nil {
				t.Fatalf("items must be an array, got %v", body["items"])
			}
			if _, err := time.Parse(time.RFC3339, fmt.Sprint(body["synced_at"])); err != nil {
				t.Fatalf("synced_at %v: %v", body["synced_at"], err)
			}
		})
	}
}

// allAgreements are the synced agreements in id order, as list answers them.
func allAgreements(t *testing.T) []map[string]any {
	t.Helper()
	_, body := listPageOf(t, map[string]string{"page_size": "100"})
	var out []map[string]any
	for _, it := range body["items"].([]any) {
		out = append(out, it.(map[string]any))
	}
	if len(out) != 23 {
		t.Fatalf("%d agreements, want 23", len(out))
	}
	return out
}

// expectedOrder sorts agreements by field independently of the guest's
// code: by the field's string or number value, ties by id, reversed for
// desc.
func expectedOrder(all []map[string]any, field string, desc bool) []string {
	rows := append([]map[string]any(nil), all...)
	less := func(a, b map[string]any) int {
		switch va := a[field].(type) {
		case float64:
			vb := b[field].(float64)
			if va != vb {
				if va < vb {
					return -1
				}
				return 1
			}
		default:
			if c := strings.Compare(fmt.Sprint(va), fmt.Sprint(b[field])); c != 0 {
				return c
			}
		}
		return strings.Compare(a["id"].(string), b["id"].(string))
	}
	sort.SliceStable(rows, func(i, j int) bool { return less(rows[i], rows[j]) < 0 })
	var ids []string
	for _, r := range rows {
		ids = append(ids, r["id"].(string))
	}
	if desc {
		for i, j := 0, len(ids)-1; i < j; i, j = i+1, j-1 {
			ids[i], ids[j] = ids[j], ids[i]
		}
	}
	return ids
}

func TestListSortsByEveryColumn(t *testing.T) {
	h := synced(t)
	all := allAgreements(t)
	for _, column := range []string{"id", "client", "name", "status", "monthly_amount"} {
		for _, dir := range []string{"asc", "desc"} {
			t.Run(column+" "+dir+" orders every page", func(t *testing.T) {
				want := expectedOrder(all, column, dir == "desc")
				var got []string
				for page := 1; page <= 3; page++ {
					resp, body := listPageOf(t, map[string]string{"sort": column, "direction": dir, "page": strconv.Itoa(page), "page_size": "10"})
					if resp.Status != 200 || body["total"] != 23.0 || body["sort"] != column || body["direction"] != dir {
						t.Fatalf("page %d: %d %v", page, resp.Status, body)
					}
					got = append(got, ids(body)...)
				}
				if fmt.Sprint(got) != fmt.Sprint(want) {
					t.Fatalf("ids %v, want %v", got, want)
				}
			})
		}
	}
	t.Run("a sort costs no more reads than a page", func(t *testing.T) {
		h.mu.Lock()
		before := h.calls["storage.get"]
		h.mu.Unlock()
		listPageOf(t, map[string]string{"sort": "client", "direction": "desc", "page_size": "5"})
		h.mu.Lock()
		reads := h.calls["storage.get"] - before
		h.mu.Unlock()
		if reads != 6 {
			t.Fatalf("%d storage reads for a page of 5, want 6 (the index and the rows)", reads)
		}
	})
	t.Run("an index from before sorting still sorts", func(t *testing.T) {
		h.mu.Lock()
		key := namespace + "\x00" + metaKey
		var m map[string]any
		_ = json.Unmarshal(h.kv[key].value, &m)
		delete(m, "order")
		rec := h.kv[key]
		rec.value, _ = json.Marshal(m)
		h.kv[key] = rec
		h.mu.Unlock()
		_, body := listPageOf(t, map[string]string{"sort": "name", "page_size": "100"})
		if want := expectedOrder(all, "name", false); fmt.Sprint(ids(body)) != fmt.Sprint(want) {
			t.Fatalf("ids %v, want %v", ids(body), want)
		}
	})
}

func TestListRejectsBadSorting(t *testing.T) {
	newFakeHost(t)
	for _, tt := range []struct {
		query   map[string]string
		message string
	}{
		{map[string]string{"sort": "price"}, `sort must be one of id, client, name, status, monthly_amount, not "price"`},
		{map[string]string{"sort": "Client"}, `sort must be one of`},
		{map[string]string{"direction": "up"}, `direction must be asc or desc, not "up"`},
		{map[string]string{"direction": "DESC"}, `direction must be asc or desc`},
	} {
		t.Run(fmt.Sprint(tt.query), func(t *testing.T) {
			resp, body := listPageOf(t, tt.query)
			msg, _ := body["error"].(map[string]any)["message"].(string)
			if resp.Status != 400 || errorCode(body) != codeInvalidQuery || !strings.Contains(msg, tt.message) {
				t.Fatalf("status %d body %v, want 400 %s with %q", resp.Status, body, codeInvalidQuery, tt.message)
			}
		})
	}
}

func TestListItemHasTheUIFields(t *testing.T) {
	synced(t)
	_, body := listPageOf(t, map[string]string{"page_size": "1"})
	item := body["items"].([]any)[0].(map[string]any)
	want := map[string]any{"id": "AGR-1001", "client": "Contoso", "name": "Cloud Backup", "status": "active", "monthly_amount": 187.0}
	if fmt.Sprint(item) != fmt.Sprint(want) {
		t.Fatalf("item %v, want %v", item, want)
	}
}

func TestListRejectsBadPaging(t *testing.T) {
	newFakeHost(t)
	for _, q := range []map[string]string{
		{"page": "0"}, {"page": "-1"}, {"page": "abc"}, {"page": "1.5"},
		{"page_size": "0"}, {"page_size": "x"}, {"page": "99999999999999999999"},
	} {
		t.Run(fmt.Sprint(q), func(t *testing.T) {
			resp, body := listPageOf(t, q)
			if resp.Status != 400 || errorCode(body) != codeInvalidQuery {
				t.Fatalf("status %d body %v, want 400 %s", resp.Status, body, codeInvalidQuery)
			}
		})
	}
}

func TestListBeforeFirstSyncIsEmpty(t *testing.T) {
	newFakeHost(t)
	resp, body := listPageOf(t, nil)
	if resp.Status != 200 {
		t.Fatalf("status %d: %v", resp.Status, body)
	}
	if body["total"] != 0.0 || len(body["items"].([]any)) != 0 {
		t.Fatalf("body %v", body)
	}
	if v, ok := body["synced_at"]; !ok || v != nil {
		t.Fatalf("synced_at must be null before the first sync, got %v (present %v)", v, ok)
	}
}

func TestListHostErrorsKeepTheirCode(t *testing.T) {
	h := newFakeHost(t)
	h.denied["storage.get"] = true
	resp, body := listPageOf(t, nil)
	if resp.Status != 403 || errorCode(body) != guest.CodeCapabilityDenied {
		t.Fatalf("status %d body %v, want 403 capability_denied", resp.Status, body)
	}
}

func TestListSkipsRecordsMissingBehindTheIndex(t *testing.T) {
	h := synced(t)
	h.mu.Lock()
	delete(h.kv, namespace+"\x00"+agreementKey("AGR-1002"))
	h.mu.Unlock()
	_, body := listPageOf(t, map[string]string{"page_size": "3"})
	if got := ids(body); fmt.Sprint(got) != "[AGR-1001 AGR-1003]" || body["total"] != 23.0 {
		t.Fatalf("ids %v total %v", got, body["total"])
	}
	if len(h.logs) == 0 || !strings.Contains(h.logs[len(h.logs)-1], "AGR-1002") {
		t.Fatalf("missing record not logged: %q", h.logs)
	}
}

func TestGet(t *testing.T) {
	synced(t)
	tests := []struct {
		name   string
		id     string
		status int
		code   string
	}{
		{"a stored agreement is returned", "AGR-1007", 200, ""},
		{"an unknown id is 404 not_found", "AGR-9999", 404, codeNotFound},
		{"an empty id is 404 not_found", "", 404, codeNotFound},
		{"an overlong id is 404 not_found", strings.Repeat("x", 300), 404, codeNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := call(t, "GET", "/agreements/"+tt.id, handlerGet, nil, map[string]string{"id": tt.id}, nil)
			if resp.Status != tt.status || errorCode(body) != tt.code {
				t.Fatalf("status %d body %v, want %d %q", resp.Status, body, tt.status, tt.code)
			}
			if tt.status == 200 && (body["id"] != tt.id || body["status"] != "expired" || body["client"] != "Northwind") {
				t.Fatalf("agreement %v", body)
			}
		})
	}
}

func TestSyncWritesEveryAgreementAndTheIndex(t *testing.T) {
	h := synced(t)
	if n := h.recordCount(); n != 24 {
		t.Fatalf("%d records stored, want 23 agreements + meta", n)
	}
	raw, rev := h.record(metaKey)
	var m meta
	if err := json.Unmarshal(raw, &m); err != nil || rev != 1 {
		t.Fatalf("meta %s rev %d: %v", raw, rev, err)
	}
	if fmt.Sprint(m.IDs) != fmt.Sprint(agrIDs(1, 23)) || !sort.StringsAreSorted(m.IDs) {
		t.Fatalf("meta ids %v", m.IDs)
	}
	raw, _ = h.record(agreementKey("AGR-1014"))
	if string(raw) != `{"id":"AGR-1014","client":"Northwind","name":"M365 Support","status":"expired","monthly_amount":668}` {
		t.Fatalf("stored agreement %s", raw)
	}
	f := h.fetches[0]
	if !strings.HasSuffix(f.URL, "/vendor/agreements") || f.Headers["X-Api-Key"] != testAPIKey || f.Timeout != 10000 {
		t.Fatalf("fetch %+v", f)
	}
	for _, l := range h.logs {
		if strings.Contains(l, testAPIKey) {
			t.Fatalf("the API key leaked into the log: %q", l)
		}
	}
}

func TestSyncAgainBumpsRevisionsAndDropsVanishedAgreements(t *testing.T) {
	h := synced(t)
	// The vendor now has two agreements, one of them new.
	vendorURL := h.vendor(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"agreements":[{"id":"AGR-1001","client":"C","name":"N","status":"active","monthly_amount":1.5},
			{"id":"NEW-1","client":"D","name":"M","status":"active","monthly_amount":2}]}`)
	}))
	resp, body := syncNow(t, map[string]string{"vendor_url": vendorURL + "/"})
	if resp.Status != 200 || body["synced"] != 2.0 {
		t.Fatalf("second sync: %d %v", resp.Status, body)
	}
	if _, rev := h.record(agreementKey("AGR-1001")); rev != 2 {
		t.Fatalf("AGR-1001 revision %d, want 2", rev)
	}
	if n := h.recordCount(); n != 3 {
		t.Fatalf("%d records after the second sync, want 2 agreements + meta", n)
	}
	_, body = listPageOf(t, nil)
	if got := ids(body); fmt.Sprint(got) != "[AGR-1001 NEW-1]" || body["total"] != 2.0 {
		t.Fatalf("list after resync: %v", body)
	}
	resp, body = call(t, "GET", "/agreements/AGR-1002", handlerGet, nil, map[string]string{"id": "AGR-1002"}, nil)
	if resp.Status != 404 || errorCode(body) != codeNotFound {
		t.Fatalf("vanished agreement: %d %v", resp.Status, body)
	}
	if !strings.HasPrefix(h.fetches[1].URL, vendorURL+"/vendor/") {
		t.Fatalf("trailing slash of vendor_url not trimmed: %s", h.fetches[1].URL)
	}
}

func TestSyncErrors(t *testing.T) {
	vendorSays := func(status int, body string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(status)
			io.WriteString(w, body)
		})
	}
	tooMany := `{"agreements":[`
	for i := 0; i <= maxAgreements; i++ {
		if i > 0 {
			tooMany += ","
		}
		tooMany += fmt.Sprintf(`{"id":"A-%d"}`, i)
	}
	tooMany += `]}`

	tests := []struct {
		name   string
		setup  func(t *testing.T, h *fakeHost) any // returns the install config
		status int
		code   string
	}{
		{"no config is config_missing", func(t *testing.T, h *fakeHost) any { return nil }, 500, codeConfigMissing},
		{"empty vendor_url is config_missing", func(t *testing.T, h *fakeHost) any {
			return map[string]string{"vendor_url": " "}
		}, 500, codeConfigMissing},
		{"a non-URL vendor_url is config_invalid", func(t *testing.T, h *fakeHost) any {
			return map[string]string{"vendor_url": "vendor.example.com"}
		}, 500, codeConfigInvalid},
		{"an ftp vendor_url is config_invalid", func(t *testing.T, h *fakeHost) any {
			return map[string]string{"vendor_url": "ftp://vendor.example.com"}
		}, 500, codeConfigInvalid},
		{"a non-string vendor_url is config_invalid", func(t *testing.T, h *fakeHost) any {
			return map[string]int{"vendor_url": 7}
		}, 500, codeConfigInvalid},
		{"a missing secret is secret_missing", func(t *testing.T, h *fakeHost) any {
			delete(h.secrets, secretAPIKey)
			return map[string]string{"vendor_url": h.vendor(t, nil)}
		}, 500, codeSecretMissing},
		{"secrets.get not granted is capability_denied", func(t *testing.T, h *fakeHost) any {
			h.denied["secrets.get"] = true
			return map[string]string{"vendor_url": h.vendor(t, nil)}
		}, 403, guest.CodeCapabilityDenied},
		{"a wrong API key is the vendor's 401, vendor_error", func(t *testing.T, h *fakeHost) any {
			h.secrets[secretAPIKey] = "wrong"
			return map[string]string{"vendor_url": h.vendor(t, nil)}
		}, 502, codeVendorError},
		{"a vendor 500 is vendor_error", func(t *testing.T, h *fakeHost) any {
			return map[string]string{"vendor_url": h.vendor(t, vendorSays(500, `{"agreements":[]}`))}
		}, 502, codeVendorError},
		{"a non-JSON vendor answer is vendor_error", func(t *testing.T, h *fakeHost) any {
			return map[string]string{"vendor_url": h.vendor(t, vendorSays(200, `<html>`))}
		}, 502, codeVendorError},
		{"a vendor answer without agreements is vendor_error", func(t *testing.T, h *fakeHost) any {
			return map[string]string{"vendor_url": h.vendor(t, vendorSays(200, `{"items":[]}`))}
		}, 502, codeVendorError},
		{"an agreement without id is vendor_error", func(t *testing.T, h *fakeHost) any {
			return map[string]string{"vendor_url": h.vendor(t, vendorSays(200, `{"agreements":[{"client":"x"}]}`))}
		}, 502, codeVendorError},
		{"a duplicate id is vendor_error", func(t *testing.T, h *fakeHost) any {
			return map[string]string{"vendor_url": h.vendor(t, vendorSays(200, `{"agreements":[{"id":"a"},{"id":"a"}]}`))}
		}, 502, codeVendorError},
		{"more than maxAgreements is too_many_agreements", func(t *testing.T, h *fakeHost) any {
			return map[string]string{"vendor_url": h.vendor(t, vendorSays(200, tooMany))}
		}, 502, codeTooManyRecords},
		{"a host outside the allowlist is egress_denied", func(t *testing.T, h *fakeHost) any {
			return map[string]string{"vendor_url": "https://vendor.invalid"}
		}, 502, guest.CodeEgressDenied},
		{"a fetch timeout is timeout", func(t *testing.T, h *fakeHost) any {
			h.fetchErr = guest.CodeTimeout
			return map[string]string{"vendor_url": "https://vendor.invalid"}
		}, 504, guest.CodeTimeout},
		{"a full KV quota is quota_exceeded", func(t *testing.T, h *fakeHost) any {
			h.putErr = guest.CodeQuotaExceeded
			return map[string]string{"vendor_url": h.vendor(t, nil)}
		}, 429, guest.CodeQuotaExceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newFakeHost(t)
			h.secrets[secretAPIKey] = testAPIKey
			resp, body := syncNow(t, tt.setup(t, h))
			if resp.Status != tt.status || errorCode(body) != tt.code {
				t.Fatalf("status %d body %v, want %d %s", resp.Status, body, tt.status, tt.code)
			}
			if msg := body["error"].(map[string]any)["message"]; msg == "" || strings.Contains(fmt.Sprint(msg), testAPIKey) {
				t.Fatalf("message %q must explain without leaking the key", msg)
			}
			if raw, _ := h.record(metaKey); raw != nil {
				t.Fatalf("a failed sync wrote the index: %s", raw)
			}
		})
	}
}

// Every handler the manifest names must be registered in this module,
// since the runner dispatches to it by endpoint.handler.
func TestManifestHandlersAreRegistered(t *testing.T) {
	newFakeHost(t)
	raw, err := os.ReadFile("../manifest.json")
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		Entry string `json:"entry"`
		API   struct {
			Endpoints []struct{ Method, Path, Handler string } `json:"endpoints"`
		} `json:"api"`
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	if m.Entry != "dist/main.wasm" || len(m.API.Endpoints) != 3 {
		t.Fatalf("manifest entry %q endpoints %v", m.Entry, m.API.Endpoints)
	}
	for _, ep := range m.API.Endpoints {
		// A path no route would match: only the handler name can dispatch.
		resp := guest.Serve(&guest.Request{HTTP: guest.HTTP{Method: ep.Method, Path: "/unrouted"},
			Endpoint: guest.Endpoint{Method: ep.Method, Path: ep.Path, Handler: ep.Handler}})
		if strings.Contains(string(resp.Body), "no handler for") {
			t.Errorf("manifest handler %q is not registered", ep.Handler)
		}
	}
}
