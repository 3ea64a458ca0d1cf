//go:build !wasip1

package guest

import (
	"encoding/json"
	"errors"
	"fmt"
	"testing"
)

// specRequest is the request example of SPEC §5.1.
const specRequest = `{ "context": {"request_id":"r-1","tenant_id":"t-1","extension_id":"e-1","install_id":"i-1","version_id":"v-1","content_hash":"sha256:ab"},
  "http": {"method":"GET","path":"/agreements/42","query":{"page":"2","bad":"x"},"headers":{"accept":"application/json"},"body_b64":null},
  "endpoint": {"method":"GET","path":"/agreements/:id","handler":"dist/handlers/get","params":{"id":"42"}},
  "config": {"region":"emea"},
  "user": {"id":"u-17","email":"ann@example.com","name":"Ann","type":"internal"} }`

func TestRequestDecodesSpecExample(t *testing.T) {
	var r Request
	if err := json.Unmarshal([]byte(specRequest), &r); err != nil {
		t.Fatal(err)
	}
	want := Context{"r-1", "t-1", "e-1", "i-1", "v-1", "sha256:ab"}
	if r.Context != want {
		t.Fatalf("context %+v", r.Context)
	}
	var cfg struct{ Region string }
	if err := r.DecodeConfig(&cfg); err != nil || cfg.Region != "emea" {
		t.Fatalf("config %+v, %v", cfg, err)
	}
	tests := []struct {
		name      string
		got, want any
	}{
		{"Param reads endpoint params", r.Param("id"), "42"},
		{"Param of a missing name is empty", r.Param("nope"), ""},
		{"Query reads the query", r.Query("page"), "2"},
		{"QueryInt parses integers", r.QueryInt("page", 1), 2},
		{"QueryInt falls back on a non-integer", r.QueryInt("bad", 7), 7},
		{"QueryInt falls back on a missing key", r.QueryInt("limit", 25), 25},
		{"Header is case-insensitive", r.Header("Accept"), "application/json"},
		{"null body decodes to nil", r.HTTP.Body == nil, true},
		{"user is decoded", *r.User, User{ID: "u-17", Email: "ann@example.com", Name: "Ann", Type: "internal"}},
		{"handler is kept verbatim", r.Endpoint.Handler, "dist/handlers/get"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Fatalf("got %#v, want %#v", tt.got, tt.want)
			}
		})
	}
}

func TestRequestDecodeJSON(t *testing.T) {
	var v struct{ A int }
	r := &Request{}
	if err := r.DecodeJSON(&v); err == nil {
		t.Fatal("empty body decoded without error")
	}
	if err := json.Unmarshal([]byte(`{"http":{"body_b64":"eyJBIjozfQ=="}}`), r); err != nil {
		t.Fatal(err)
	}
	if err := r.DecodeJSON(&v); err != nil || v.A != 3 {
		t.Fatalf("decoded %+v, %v", v, err)
	}
	r.HTTP.Body = []byte("{")
	if err := r.DecodeJSON(&v); err == nil {
		t.Fatal("malformed body decoded without error")
	}
	if err := (&Request{}).DecodeConfig(&v); err != nil {
		t.Fatalf("missing config: %v", err)
	}
}

func TestResponseHelpers(t *testing.T) {
	tests := []struct {
		name     string
		resp     Response
		status   int
		ctype    string
		wantBody string
	}{
		{"JSON encodes the value", JSON(200, map[string]int{"n": 1}), 200, "application/json", `{"n":1}`},
		{"JSON of an unencodable value is a 500 internal", JSON(200, func() {}), 500, "application/json", ""},
		{"Text is plain text", Text(418, "tea"), 418, "text/plain; charset=utf-8", "tea"},
		{"Error has the error object shape", Error(409, "conflict", "taken"), 409, "application/json",
			`{"error":{"code":"conflict","message":"taken"}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.resp.Status != tt.status || tt.resp.Headers["content-type"] != tt.ctype {
				t.Fatalf("got %d %q", tt.resp.Status, tt.resp.Headers["content-type"])
			}
			if tt.wantBody != "" && string(tt.resp.Body) != tt.wantBody {
				t.Fatalf("body %s", tt.resp.Body)
			}
		})
	}
	r := Text(200, "x").WithHeader("x-a", "1")
	if r.Headers["x-a"] != "1" || r.Headers["content-type"] == "" {
		t.Fatalf("WithHeader: %v", r.Headers)
	}
}

func TestResponseWireShape(t *testing.T) {
	b, _ := json.Marshal(normalize(Response{Body: []byte("hi")}))
	if string(b) != `{"status":200,"body_b64":"aGk="}` {
		t.Fatalf("wire %s", b)
	}
}

func TestErrorFromMapsHostCodes(t *testing.T) {
	defer SetTestHost(func(string, []byte) ([]byte, uint32) { return nil, 0 })()
	tests := []struct {
		name   string
		err    error
		status int
		code   string
	}{
		{"not_found is 404", &HostError{Code: CodeNotFound}, 404, CodeNotFound},
		{"revision_mismatch is 409", &HostError{Code: CodeRevisionMismatch}, 409, CodeRevisionMismatch},
		{"quota_exceeded is 429", &HostError{Code: CodeQuotaExceeded}, 429, CodeQuotaExceeded},
		{"validation_failed is 400", &HostError{Code: CodeValidationFailed}, 400, CodeValidationFailed},
		{"capability_denied is 403", &HostError{Code: CodeCapabilityDenied}, 403, CodeCapabilityDenied},
		{"egress_denied is 502", &HostError{Code: CodeEgressDenied}, 502, CodeEgressDenied},
		{"invalid_url is 502", &HostError{Code: CodeInvalidURL}, 502, CodeInvalidURL},
		{"timeout is 504", &HostError{Code: CodeTimeout}, 504, CodeTimeout},
		{"transport is 502", &HostError{Code: CodeTransport}, 502, CodeTransport},
		{"too_large is 502", &HostError{Code: CodeTooLarge}, 502, CodeTooLarge},
		{"unknown host code is 500 with the code", &HostError{Code: "weird"}, 500, "weird"},
		{"wrapped host error keeps its code", fmt.Errorf("x: %w", &HostError{Code: CodeNotFound}), 404, CodeNotFound},
		{"plain error is a generic 500 internal", errors.New("db password is hunter2"), 500, CodeInternal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ErrorFrom(tt.err)
			var eb ErrorBody
			json.Unmarshal(r.Body, &eb)
			if r.Status != tt.status || eb.Error.Code != tt.code {
				t.Fatalf("got %d %q", r.Status, eb.Error.Code)
			}
			if tt.code == CodeInternal && eb.Error.Message != "internal error" {
				t.Fatalf("plain error leaked: %q", eb.Error.Message)
			}
		})
	}
}

func TestServeDispatchesRegisteredHandlers(t *testing.T) {
	r := Serve(&Request{Endpoint: Endpoint{Handler: "abi/zero"}})
	if r.Status != 200 || string(r.Body) != "x" {
		t.Fatalf("got %+v", r)
	}
}
