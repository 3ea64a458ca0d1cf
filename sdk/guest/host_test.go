//go:build !wasip1

package guest

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

// recorder is a test host that answers each import with a canned reply and
// records the calls it saw.
type recorder struct {
	mu      sync.Mutex
	calls   []string // "name request"
	replies map[string]string
	status  uint32
}

func (rec *recorder) host(name string, req []byte) ([]byte, uint32) {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	rec.calls = append(rec.calls, name+" "+string(req))
	if r, ok := rec.replies[name]; ok {
		return []byte(r), rec.status
	}
	return nil, rec.status
}

func jsonEqual(t *testing.T, got, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal([]byte(got), &g); err != nil {
		t.Fatalf("request %q is not JSON: %v", got, err)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Fatalf("request\n got %s\nwant %s", got, want)
	}
}

func TestHostCallsSendSpecShapes(t *testing.T) {
	exp := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name       string
		importName string
		reply      string
		call       func() (any, error)
		wantReq    string
		want       any
	}{
		{"fetch sends url method headers body_b64 timeout_ms", "http.fetch",
			`{"status":201,"headers":{"x":"y"},"body_b64":"b2s="}`,
			func() (any, error) {
				r, err := Fetch(FetchRequest{URL: "https://api.vendor.com/a", Method: "POST",
					Headers: map[string]string{"content-type": "text/plain"}, Body: []byte("hi"), TimeoutMS: 1500})
				return r, err
			},
			`{"url":"https://api.vendor.com/a","method":"POST","headers":{"content-type":"text/plain"},"body_b64":"aGk=","timeout_ms":1500}`,
			&FetchResponse{Status: 201, Headers: map[string]string{"x": "y"}, Body: []byte("ok")}},
		{"fetch omits unset optional fields", "http.fetch", `{"status":204,"headers":{},"body_b64":null}`,
			func() (any, error) { r, err := Fetch(FetchRequest{URL: "https://a.example"}); return r.Status, err },
			`{"url":"https://a.example"}`, 204},
		{"kv get sends namespace and key", "storage.get",
			`{"item":{"namespace":"ns","key":"k","value":{"a":1},"revision":3,"expires_at":"2026-01-02T03:04:05Z"}}`,
			func() (any, error) { return KV.Get("ns", "k") },
			`{"namespace":"ns","key":"k"}`,
			Item{Namespace: "ns", Key: "k", Value: json.RawMessage(`{"a":1}`), Revision: 3, ExpiresAt: &exp}},
		{"kv put sends value if_revision ttl_seconds", "storage.put",
			`{"item":{"namespace":"ns","key":"k","revision":5}}`,
			func() (any, error) {
				return KV.Put("ns", "k", map[string]int{"a": 1}, IfRevision(4), TTL(90*time.Second+1))
			},
			`{"namespace":"ns","key":"k","value":{"a":1},"if_revision":4,"ttl_seconds":91}`, int64(5)},
		{"kv put with if_revision 0 sends it", "storage.put", `{"item":{"namespace":"ns","key":"k","revision":1}}`,
			func() (any, error) { return KV.Put("ns", "k", json.RawMessage(`"v"`), IfRevision(0)) },
			`{"namespace":"ns","key":"k","value":"v","if_revision":0}`, int64(1)},
		{"kv delete sends if_revision", "storage.delete", `{"deleted":true}`,
			func() (any, error) { return KV.Delete("ns", "k", 7) },
			`{"namespace":"ns","key":"k","if_revision":7}`, true},
		{"kv delete without revision", "storage.delete", `{"deleted":false}`,
			func() (any, error) { return KV.Delete("ns", "k") },
			`{"namespace":"ns","key":"k"}`, false},
		{"kv list sends prefix cursor limit", "storage.list",
			`{"items":[{"namespace":"ns","key":"a1","value":1,"revision":1}],"next_cursor":"c2"}`,
			func() (any, error) {
				items, next, err := KV.List("ns", "a", "c1", 50)
				return fmt.Sprintf("%d %s %s %s", len(items), items[0].Key, items[0].Value, next), err
			},
			`{"namespace":"ns","prefix":"a","cursor":"c1","limit":50}`, "1 a1 1 c2"},
		{"secret sends key", "secrets.get", `{"value":"s3cr3t"}`,
			func() (any, error) { return Secret("api_key") },
			`{"key":"api_key"}`, "s3cr3t"},
		{"metric sends name value kind labels", "metrics.emit", `{}`,
			func() (any, error) { return nil, Metric("synced", 2.5, Counter, map[string]string{"src": "vendor"}) },
			`{"name":"synced","value":2.5,"kind":"counter","labels":{"src":"vendor"}}`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{replies: map[string]string{tt.importName: tt.reply}}
			defer SetTestHost(rec.host)()
			before := mem.live()
			got, err := tt.call()
			if err != nil {
				t.Fatal(err)
			}
			if len(rec.calls) != 1 {
				t.Fatalf("calls %q", rec.calls)
			}
			name, req, _ := strings.Cut(rec.calls[0], " ")
			if name != tt.importName {
				t.Fatalf("import %q, want %q", name, tt.importName)
			}
			jsonEqual(t, req, tt.wantReq)
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("result %#v, want %#v", got, tt.want)
			}
			if mem.live() != before {
				t.Fatalf("reply buffer not freed: %d live, want %d", mem.live(), before)
			}
		})
	}
}

func TestHostErrorsCarryTheCode(t *testing.T) {
	codes := []string{CodeCapabilityDenied, CodeEgressDenied, CodeInvalidURL, CodeTimeout,
		CodeTransport, CodeTooLarge, CodeNotFound, CodeRevisionMismatch, CodeQuotaExceeded,
		CodeValidationFailed}
	calls := map[string]func() error{
		"http.fetch":     func() error { _, err := Fetch(FetchRequest{URL: "https://x"}); return err },
		"storage.get":    func() error { _, err := KV.Get("n", "k"); return err },
		"storage.put":    func() error { _, err := KV.Put("n", "k", 1); return err },
		"storage.delete": func() error { _, err := KV.Delete("n", "k"); return err },
		"storage.list":   func() error { _, _, err := KV.List("n", "", "", 0); return err },
		"secrets.get":    func() error { _, err := Secret("k"); return err },
		"metrics.emit":   func() error { return Metric("m", 1, Gauge, nil) },
	}
	for _, code := range codes {
		for imp, fn := range calls {
			t.Run(code+" from "+imp+" is a HostError", func(t *testing.T) {
				rec := &recorder{status: 1, replies: map[string]string{
					imp: `{"error":{"code":"` + code + `","message":"msg for ` + code + `"}}`}}
				defer SetTestHost(rec.host)()
				before := mem.live()
				err := fn()
				var he *HostError
				if !errors.As(err, &he) {
					t.Fatalf("error %v (%T) is not a *HostError", err, err)
				}
				if he.Code != code || he.Import != imp || he.Message != "msg for "+code {
					t.Fatalf("got %+v", he)
				}
				if !IsCode(fmt.Errorf("wrapped: %w", err), code) || IsCode(err, "other") {
					t.Fatal("IsCode does not match the code through wrapping")
				}
				if mem.live() != before {
					t.Fatal("error reply buffer not freed")
				}
			})
		}
	}
}

func TestHostMalformedReplies(t *testing.T) {
	tests := []struct {
		name   string
		reply  *string
		status uint32
		call   func() error
		code   string
	}{
		{"error status without an error object", ptrTo(`{"oops":1}`), 1, func() error { _, err := Secret("k"); return err }, CodeInvalidHostReply},
		{"error status without any reply", nil, 1, func() error { _, err := Secret("k"); return err }, CodeInvalidHostReply},
		{"success reply that is not JSON", ptrTo(`not json`), 0, func() error { _, err := Secret("k"); return err }, CodeInvalidHostReply},
		{"success without any reply", nil, 0, func() error { _, err := Secret("k"); return err }, CodeInvalidHostReply},
		{"get reply without item", ptrTo(`{}`), 0, func() error { _, err := KV.Get("n", "k"); return err }, CodeNotFound},
		{"put reply without item", ptrTo(`{}`), 0, func() error { _, err := KV.Put("n", "k", 1); return err }, CodeInvalidHostReply},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer SetTestHost(func(string, []byte) ([]byte, uint32) {
				if tt.reply == nil {
					return nil, tt.status
				}
				return []byte(*tt.reply), tt.status
			})()
			err := tt.call()
			if err == nil {
				t.Fatal("no error")
			}
			var he *HostError
			if !errors.As(err, &he) || he.Code != tt.code {
				t.Fatalf("error %v, want code %s", err, tt.code)
			}
		})
	}
}

func ptrTo(s string) *string { return &s }

func TestNoTestHostDeniesCapabilities(t *testing.T) {
	defer SetTestHost(nil)()
	if _, err := Secret("k"); !IsCode(err, CodeCapabilityDenied) {
		t.Fatalf("error %v, want capability_denied", err)
	}
}

func TestLogCallsReachTheHost(t *testing.T) {
	rec := &recorder{}
	defer SetTestHost(rec.host)()
	Log.Info("i")
	Log.Warn("w")
	Log.Error("e")
	Log.Infof("i%d", 1)
	Log.Warnf("w%d", 2)
	Log.Errorf("e%d", 3)
	Log.Info("") // empty messages are not sent
	want := []string{"log_info i", "log_warn w", "log_error e", "log_info i1", "log_warn w2", "log_error e3"}
	if !reflect.DeepEqual(rec.calls, want) {
		t.Fatalf("calls %q, want %q", rec.calls, want)
	}
}

func TestConcurrentHostCallsKeepRepliesApart(t *testing.T) {
	defer SetTestHost(func(name string, req []byte) ([]byte, uint32) {
		var r struct{ Key string }
		json.Unmarshal(req, &r)
		return []byte(`{"value":"v-` + r.Key + `"}`), 0
	})()
	before := mem.live()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 100; i++ {
				key := fmt.Sprintf("k%d-%d", g, i)
				v, err := Secret(key)
				if err != nil || v != "v-"+key {
					errs <- fmt.Errorf("Secret(%s) = %q, %v", key, v, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if mem.live() != before {
		t.Fatalf("live buffers %d, want %d", mem.live(), before)
	}
}

func TestDecodeHelpers(t *testing.T) {
	var v struct{ A int }
	if err := (Item{Value: json.RawMessage(`{"A":4}`)}).Decode(&v); err != nil || v.A != 4 {
		t.Fatalf("Item.Decode: %+v %v", v, err)
	}
	if err := (Item{Namespace: "n", Key: "k", Value: json.RawMessage(`[`)}).Decode(&v); err == nil || !strings.Contains(err.Error(), "n/k") {
		t.Fatalf("Item.Decode of bad JSON: %v", err)
	}
	if err := (&FetchResponse{Body: []byte(`{"A":5}`)}).DecodeJSON(&v); err != nil || v.A != 5 {
		t.Fatalf("FetchResponse.DecodeJSON: %+v %v", v, err)
	}
	if err := (&FetchResponse{Body: []byte(`<html>`)}).DecodeJSON(&v); err == nil {
		t.Fatal("FetchResponse.DecodeJSON of HTML succeeded")
	}
}
