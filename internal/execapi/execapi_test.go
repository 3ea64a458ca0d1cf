package execapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestRequestRoundTrip(t *testing.T) {
	env := "sealed"
	in := Request{
		Context:         Context{RequestID: "r1", TenantID: "t1", ExtensionID: "com.acme.x", InstallID: "i1", VersionID: "v1", ContentHash: "sha256:00"},
		HTTP:            HTTPRequest{Method: "POST", Path: "/a/1", Query: map[string]string{"page": "2"}, Headers: map[string]string{"accept": "application/json"}, Body: []byte{0, 1, 2, 0xff}},
		Endpoint:        Endpoint{Method: "POST", Path: "/a/:id", Handler: "dist/h", Params: map[string]string{"id": "1"}},
		Limits:          Limits{TimeoutMS: 1500, MemoryMB: 32, Fuel: 1e6},
		Config:          json.RawMessage(`{"region":"emea"}`),
		User:            &User{ID: "u", Email: "e@x", Name: "N", Type: "internal"},
		Capabilities:    []string{"http.fetch"},
		EgressAllowlist: []string{"api.vendor.com"},
		SecretEnvelope:  &env,
		InstanceReuse:   &InstanceReuse{MaxCalls: 10, MaxAgeMS: 5000},
	}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	var out Request
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(in, out) {
		t.Fatalf("round trip differs:\n in=%+v\nout=%+v", in, out)
	}
}

func TestRequestWireSpelling(t *testing.T) {
	b, _ := json.Marshal(Request{HTTP: HTTPRequest{Body: []byte("hi")}})
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	httpPart := m["http"].(map[string]any)
	if httpPart["body_b64"] != "aGk=" {
		t.Errorf("body_b64 = %v, want base64 of body", httpPart["body_b64"])
	}
	if _, ok := m["secret_envelope"]; !ok {
		t.Error("secret_envelope must always be present (null when absent)")
	}
	if _, ok := m["instance_reuse"]; ok {
		t.Error("instance_reuse must be absent when the install did not opt in")
	}
	b, _ = json.Marshal(Request{InstanceReuse: &InstanceReuse{MaxCalls: 3}})
	if !strings.Contains(string(b), `"instance_reuse":{"max_calls":3}`) {
		t.Errorf("instance_reuse spelled %s", b)
	}
}

func TestProvidersAliasAndCapPrefix(t *testing.T) {
	var r Request
	if err := json.Unmarshal([]byte(`{"providers":["cap:http.fetch","storage.kv"]}`), &r); err != nil {
		t.Fatal(err)
	}
	if want := []string{"http.fetch", "storage.kv"}; !reflect.DeepEqual(r.Capabilities, want) {
		t.Fatalf("capabilities = %v, want %v", r.Capabilities, want)
	}
	if err := json.Unmarshal([]byte(`{"capabilities":["cap:secrets.get"],"providers":["x"]}`), &r); err != nil {
		t.Fatal(err)
	}
	if want := []string{"secrets.get"}; !reflect.DeepEqual(r.Capabilities, want) {
		t.Fatalf("capabilities win over providers: got %v", r.Capabilities)
	}
}

func TestResponseNullBody(t *testing.T) {
	var r Response
	if err := json.Unmarshal([]byte(`{"status":204,"headers":{},"body_b64":null}`), &r); err != nil {
		t.Fatal(err)
	}
	if r.Status != 204 || r.Body != nil {
		t.Fatalf("got %+v", r)
	}
}

func TestErrorCodeStatuses(t *testing.T) {
	want := map[string]int{
		"bad_request": 400, "unauthorized": 401, "payload_too_large": 413,
		"concurrency_limited": 429, "bundle_unavailable": 502, "integrity_failed": 502,
		"bad_handler": 502, "handler_error": 502, "trap": 502, "memory_limit": 502,
		"fuel_exhausted": 502, "timeout": 504, "internal": 500, "something_else": 500,
	}
	for code, status := range want {
		if got := HTTPStatus(code); got != status {
			t.Errorf("HTTPStatus(%q) = %d, want %d", code, got, status)
		}
	}
	if len(Codes()) != len(want)-1 {
		t.Errorf("Codes() lists %d codes, want %d", len(Codes()), len(want)-1)
	}
	b, _ := json.Marshal(ErrorBody{Error: Error{Code: CodeTimeout, Message: "deadline", RequestID: "r"}})
	if string(b) != `{"error":{"code":"timeout","message":"deadline","request_id":"r"}}` {
		t.Errorf("error body = %s", b)
	}
}

func TestCapabilitiesNormalisedOnDecode(t *testing.T) {
	var r Request
	if err := json.Unmarshal([]byte(`{"capabilities":["cap:storage.kv","storage.kv","http.fetch"]}`), &r); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(r.Capabilities, ","); got != "storage.kv,http.fetch" {
		t.Fatalf("capabilities = %q, want storage.kv,http.fetch", got)
	}
	err := json.Unmarshal([]byte(`{"capabilities":["storage.kv","cap:rocket.launch"]}`), &r)
	var ce *CapabilityError
	if !errors.As(err, &ce) || ce.Capability != "cap:rocket.launch" {
		t.Fatalf("unknown capability: err = %v, want *CapabilityError naming it", err)
	}
}

func TestGrantedAndGuestUser(t *testing.T) {
	r := &Request{Capabilities: []string{"storage.kv"}, User: &User{ID: "u1"}}
	for c, want := range map[string]bool{"storage.kv": true, "log.emit": true, "context.read": true, "secrets.get": false, CapUserRead: false} {
		if got := r.Granted(c); got != want {
			t.Errorf("Granted(%q) = %v, want %v", c, got, want)
		}
	}
	if r.Guest().User != nil {
		t.Fatal("guest sees the user without user.read")
	}
	r.Capabilities = append(r.Capabilities, "cap:user.read")
	if g := r.Guest(); g.User == nil || g.User.ID != "u1" {
		t.Fatalf("guest user = %+v with user.read, want u1", g.User)
	}
}

func TestDeadlineRoundTrip(t *testing.T) {
	var l Limits
	l.SetDeadline(context.Background(), 10*time.Millisecond)
	if l.DeadlineMS != 0 {
		t.Fatalf("no ctx deadline: DeadlineMS = %d, want 0", l.DeadlineMS)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	l.SetDeadline(ctx, 500*time.Millisecond)
	if l.DeadlineMS < 1000 || l.DeadlineMS > 1500 {
		t.Fatalf("DeadlineMS = %d, want about 1500", l.DeadlineMS)
	}
	rctx, rcancel := l.Deadline(context.Background())
	defer rcancel()
	dl, ok := rctx.Deadline()
	if !ok || time.Until(dl) > 1500*time.Millisecond {
		t.Fatalf("runner deadline = %v (set %v), want within 1.5s", time.Until(dl), ok)
	}
	past, pcancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer pcancel()
	l.SetDeadline(past, 0)
	if l.DeadlineMS != 1 {
		t.Fatalf("expired ctx: DeadlineMS = %d, want 1", l.DeadlineMS)
	}
}

// TestRawReplyRoundTrip: the framed reply carries status, headers (even
// ones with newlines, which JSON escapes) and a body of any bytes.
func TestRawReplyRoundTrip(t *testing.T) {
	in := &Response{Status: 201, Headers: map[string]string{"content-type": "text/plain", "x-ext-odd": "a\nb"}, Body: []byte("line 1\nline 2\n\x00\xff")}
	b, err := AppendRawReply(nil, in)
	if err != nil {
		t.Fatal(err)
	}
	b = append(b, in.Body...)
	out, err := ParseRawReply(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(out, in) {
		t.Fatalf("round trip: got %+v, want %+v", out, in)
	}
	if _, err := ParseRawReply([]byte(`{"status":200}`)); err == nil {
		t.Error("a reply without its metadata line parsed")
	}
	if _, err := ParseRawReply([]byte("not json\nbody")); err == nil {
		t.Error("bad metadata parsed")
	}
	if !AcceptsRawReply(ContentTypeRawReply+", application/json") || AcceptsRawReply("application/json") {
		t.Error("AcceptsRawReply")
	}
}

// TestCPUHeader: what SetCPU writes CPU reads back; anything else is 0.
func TestCPUHeader(t *testing.T) {
	h := http.Header{}
	SetCPU(h, 1234*time.Microsecond)
	if got := CPU(h); got != 1234*time.Microsecond {
		t.Fatalf("round trip: %v", got)
	}
	for _, v := range []string{"", "x", "-5", "1.5", "3600000001"} {
		if got := CPU(http.Header{HeaderCPU: {v}}); got != 0 {
			t.Errorf("CPU(%q) = %v, want 0", v, got)
		}
	}
	if got := CPU(http.Header{}); got != 0 {
		t.Errorf("no header: %v", got)
	}
}

// TestGuestJSONOfAnEvent: an event delivery hands the guest the event
// with null http and endpoint (SPEC §18); an API call has no event.
func TestGuestJSONOfAnEvent(t *testing.T) {
	r := &Request{Context: Context{RequestID: "r1"}, Endpoint: Endpoint{Handler: "dist/on"},
		Event: &Event{ID: "e1", Topic: "agreement.updated", OccurredAt: time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC), Payload: json.RawMessage(`{"id":"42"}`)}}
	b, err := r.GuestJSON()
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]json.RawMessage
	json.Unmarshal(b, &got)
	if string(got["http"]) != "null" || string(got["endpoint"]) != "null" {
		t.Fatalf("http/endpoint not null: %s", b)
	}
	if want := `{"id":"e1","topic":"agreement.updated","occurred_at":"2026-12-07T00:00:00Z","payload":{"id":"42"}}`; string(got["event"]) != want {
		t.Fatalf("event = %s, want %s", got["event"], want)
	}
	r.Event = nil
	b, _ = r.GuestJSON()
	if strings.Contains(string(b), `"event"`) {
		t.Fatalf("API call carries an event: %s", b)
	}
}
