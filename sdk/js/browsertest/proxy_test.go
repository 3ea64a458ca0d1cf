package browsertest

import (
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
	"time"
)

// These subtests of TestSDKInBrowser cover SPEC §16 in the browser: the UI
// on its own origin (mountExtension's uiBase) and the apiproxy bridge.

// rawProxyResult is what app.js's "rawProxy" command returns: the host's
// apiproxy_response to an envelope posted past iframe.js.
type rawProxyResult struct {
	Answered bool `json:"answered"`
	Payload  struct {
		Status  int               `json:"status"`
		Headers map[string]string `json:"headers"`
		BodyB64 string            `json:"body_b64"`
		Error   string            `json:"error"`
		Message string            `json:"message"`
	} `json:"payload"`
}

func (s sdk) rawProxy(t *testing.T, id int, requestID string, payload map[string]any) rawProxyResult {
	t.Helper()
	var r rawProxyResult
	s.cmd(t, &r, id, "rawProxy", requestID, payload)
	if !r.Answered {
		t.Fatalf("apiproxy %s %v got no apiproxy_response within 5 s", requestID, payload)
	}
	return r
}

type listenerCounts struct{ Listeners, Timers int }

func (s sdk) counts(t *testing.T) listenerCounts {
	t.Helper()
	var c listenerCounts
	s.call(t, &c, "counts")
	return c
}

// mountConnected mounts with opts and waits until connect() resolved.
func (s sdk) mountConnected(t *testing.T, opts map[string]any) (int, connectResult) {
	t.Helper()
	var id int
	s.call(t, &id, "mount", opts)
	var r connectResult
	s.cmd(t, &r, id, "context")
	if !r.OK {
		t.Fatalf("mount %v: connect() rejected: %s", opts, r.Error)
	}
	return id, r
}

func testUIOnItsOwnOrigin(t *testing.T, s sdk, ui *fakeGateway) {
	id, r := s.mountConnected(t, map[string]any{"uiBase": ui.URL()})
	defer s.call(t, nil, "unmount", id)

	wantSrc := ui.URL() + "/ext-ui/" + testExtensionID + "/" + testContentHash + "/index.html"
	if st := s.state(t, id); st.Src != wantSrc {
		t.Errorf("src = %q, want %q (from uiBase)", st.Src, wantSrc)
	}
	var origin string
	s.cmd(t, &origin, id, "origin")
	if origin != "null" {
		t.Errorf("self.origin in the iframe = %q, want null (opaque)", origin)
	}
	if r.Ctx.GatewayBase != s.g.URL() {
		t.Errorf("bootstrap gateway_base = %q, want the API base %q, not the UI base", r.Ctx.GatewayBase, s.g.URL())
	}
	want := fmt.Sprintf("Bearer tok-%d-1", id)
	f := s.fetch(t, id, "/two-origins?x=1")
	if !f.OK || f.Status != 200 || f.Body.Auth != want ||
		f.Body.Path != "/api/ext/"+testExtensionID+"/two-origins" || f.Body.Query != "x=1" {
		t.Errorf("api.fetch from the UI origin = %+v, want 200 with %q at /api/ext/%s/two-origins?x=1", f, want, testExtensionID)
	}
	calls := s.g.Calls()
	if last := calls[len(calls)-1]; last.Origin != "null" || last.Auth != want {
		t.Errorf("API origin saw %+v, want a direct call from the sandbox (Origin null) with the token", last)
	}
	if n := len(ui.Calls()); n != 0 {
		t.Errorf("the UI origin got %d /api/ext calls, want 0", n)
	}
	// The host still accepts the frame's messages.
	s.navigateMarker(t, id, "/marker-two-origins")
}

func testTokenlessProxy(t *testing.T, s sdk, hostOrigin string) {
	id, r := s.mountConnected(t, map[string]any{"apiProxy": true})
	defer s.call(t, nil, "unmount", id)

	if r.Ctx.Session != nil {
		t.Errorf("bootstrap session = %+v, want null with apiProxy", *r.Ctx.Session)
	}
	var sess *sessionValue
	s.cmd(t, &sess, id, "session")
	if sess != nil {
		t.Errorf("getSession() in the iframe = %+v, want null", *sess)
	}
	want := fmt.Sprintf("Bearer tok-%d-1", id)

	before := len(s.g.Calls())
	f := s.fetch(t, id, "/agreements/a%2Fb?page=2", map[string]any{
		"method": "POST",
		"headers": map[string]string{
			"Content-Type":  "application/json",
			"X-Ext-Trace":   "t-1",
			"X-Ext-Status":  "201",
			"Authorization": "Bearer forged",
		},
		"body": `{"n":1}`,
	})
	if !f.OK || !f.IsResponse || f.Status != 201 {
		t.Fatalf("api.fetch through apiproxy = %+v, want a Response with status 201", f)
	}
	if f.Headers["x-ext-reply"] != "echo-POST" || f.Headers["content-type"] != "application/json" {
		t.Errorf("response headers = %v, want x-ext-reply echo-POST and content-type application/json", f.Headers)
	}
	wantEcho := apiEcho{
		Method:      "POST",
		Path:        "/api/ext/" + testExtensionID + "/agreements/a%2Fb",
		Query:       "page=2",
		Auth:        want,
		ContentType: "application/json",
		Trace:       "t-1",
		BodyHex:     hex.EncodeToString([]byte(`{"n":1}`)),
	}
	if f.Body != wantEcho {
		t.Errorf("gateway saw %+v\nwant %+v", f.Body, wantEcho)
	}
	calls := s.g.Calls()[before:]
	if len(calls) != 1 || calls[0].Origin != hostOrigin || calls[0].Cookie != "" {
		t.Errorf("gateway calls = %+v, want one from the host page's origin %s without cookies", calls, hostOrigin)
	}

	// Binary bodies survive base64 both ways; 204 becomes a null-body Response.
	f = s.fetch(t, id, "/bin", map[string]any{"method": "PUT", "bytes": []int{0, 255, 128, 10}})
	if !f.OK || f.Status != 200 || f.Body.Method != "PUT" || f.Body.BodyHex != "00ff800a" {
		t.Errorf("PUT of 4 bytes through apiproxy = %+v, want body 00ff800a", f)
	}
	f = s.fetch(t, id, "/empty", map[string]any{"headers": map[string]string{"X-Ext-Status": "204"}})
	if !f.OK || f.Status != 204 || f.Body != (apiEcho{}) {
		t.Errorf("204 through apiproxy = %+v, want status 204 and no body", f)
	}

	// Positive control for the cookie assertion above: with credentials the
	// same browser does send the PSA cookie to the gateway.
	var cookie string
	s.call(t, &cookie, "cookieControl")
	calls = s.g.Calls()
	if last := calls[len(calls)-1]; !strings.HasSuffix(last.Path, "/cookie-control") || last.Cookie != hostCookie || cookie != hostCookie {
		t.Errorf("control request with credentials: gateway saw %+v, document.cookie %q; want cookie %q", last, cookie, hostCookie)
	}
}

func testProxyRejects(t *testing.T, s sdk, withoutProxy int) {
	id, _ := s.mountConnected(t, map[string]any{"apiProxy": true})
	defer s.call(t, nil, "unmount", id)

	// Positive control: a valid raw request is performed.
	ok := s.rawProxy(t, id, "ok-1", map[string]any{"method": "get", "path": "/raw-ok", "headers": map[string]string{"Accept": "application/json", "X-Ext-Trace": "raw"}})
	if ok.Payload.Error != "" || ok.Payload.Status != 200 || ok.Payload.BodyB64 == "" {
		t.Fatalf("valid raw apiproxy = %+v, want status 200 with a body", ok.Payload)
	}
	before := len(s.g.Calls())

	for i, tt := range []struct {
		name    string
		payload map[string]any
		want    string
	}{
		{"dot-dot segment is rejected", map[string]any{"method": "GET", "path": "/agreements/../admin"}, "invalid_path"},
		{"leading dot-dot is rejected", map[string]any{"method": "GET", "path": "../admin"}, "invalid_path"},
		{"encoded dot-dot is rejected", map[string]any{"method": "GET", "path": "/agreements/%2e%2E/admin"}, "invalid_path"},
		{"encoded slash forming dot-dot is rejected", map[string]any{"method": "GET", "path": "/agreements/%2e%2e%2fadmin"}, "invalid_path"},
		{"scheme path is rejected", map[string]any{"method": "GET", "path": "https://evil.example/steal"}, "invalid_path"},
		{"scheme inside the path is rejected", map[string]any{"method": "GET", "path": "/https://evil.example/steal"}, "invalid_path"},
		{"protocol-relative path is rejected", map[string]any{"method": "GET", "path": "//evil.example/steal"}, "invalid_path"},
		{"backslash is rejected", map[string]any{"method": "GET", "path": `/a\b`}, "invalid_path"},
		{"missing path is rejected", map[string]any{"method": "GET"}, "invalid_path"},
		{"authorization header is forbidden", map[string]any{"path": "/x", "headers": map[string]string{"Authorization": "Bearer stolen"}}, "forbidden_header"},
		{"cookie header is forbidden", map[string]any{"path": "/x", "headers": map[string]string{"Cookie": "psa_session=x"}}, "forbidden_header"},
		{"unlisted header is forbidden", map[string]any{"path": "/x", "headers": map[string]string{"X-Forwarded-For": "10.0.0.1"}}, "forbidden_header"},
		{"header value with a line break is rejected", map[string]any{"path": "/x", "headers": map[string]string{"X-Ext-Trace": "a\r\nX-Evil: 1"}}, "invalid_request"},
		{"TRACE is not an allowed method", map[string]any{"method": "TRACE", "path": "/x"}, "invalid_method"},
		{"OPTIONS is not an allowed method", map[string]any{"method": "OPTIONS", "path": "/x"}, "invalid_method"},
		{"body over 1 MiB is rejected", map[string]any{"method": "POST", "path": "/x", "bigBody": 1<<20 + 1}, "body_too_large"},
		{"GET with a body is rejected", map[string]any{"method": "GET", "path": "/x", "body_b64": "eA=="}, "invalid_request"},
		{"body that is not base64 is rejected", map[string]any{"method": "POST", "path": "/x", "body_b64": "!!!"}, "invalid_request"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := s.rawProxy(t, id, fmt.Sprintf("rej-%d", i), tt.payload)
			if r.Payload.Error != tt.want || r.Payload.Status != 0 || r.Payload.Message == "" {
				t.Errorf("apiproxy %v answered %+v, want error %q with a message and no status", tt.payload, r.Payload, tt.want)
			}
		})
	}
	if after := len(s.g.Calls()); after != before {
		t.Errorf("the gateway got %d requests from refused apiproxy calls, want 0", after-before)
	}

	// A mount without apiProxy refuses every apiproxy request.
	r := s.rawProxy(t, withoutProxy, "dis-1", map[string]any{"method": "GET", "path": "/raw-ok"})
	if r.Payload.Error != "apiproxy_disabled" {
		t.Errorf("apiproxy to a mount without apiProxy = %+v, want apiproxy_disabled", r.Payload)
	}
	if after := len(s.g.Calls()); after != before {
		t.Errorf("the gateway got %d requests from a mount without apiProxy, want 0", after-before)
	}
}

func testProxyUnmount(t *testing.T, s sdk) {
	if c := s.counts(t); c != (listenerCounts{}) {
		t.Fatalf("before mounting: %+v, want nothing", c)
	}
	id, _ := s.mountConnected(t, map[string]any{"apiProxy": true})
	started, canceled := s.g.slowStarted.Load(), s.g.slowCanceled.Load()
	s.cmd(t, nil, id, "fetchStart", "slow-1", "/slow")
	waitUntil(t, 5*time.Second, func() string {
		if s.g.slowStarted.Load() == started {
			return "the gateway has not seen the slow call"
		}
		return ""
	})
	if c := s.counts(t); c != (listenerCounts{Listeners: 1, Timers: 2}) {
		t.Errorf("with one apiproxy call in flight: %+v, want 1 listener and 2 timers (refresh, call timeout)", c)
	}
	s.call(t, nil, "unmount", id)
	if c := s.counts(t); c != (listenerCounts{}) {
		t.Errorf("after unmount: %+v, want no listeners and no timers", c)
	}
	waitUntil(t, 5*time.Second, func() string {
		if s.g.slowCanceled.Load() == canceled {
			return "the gateway call is still open after unmount"
		}
		return ""
	})
}

func testProxyInFlightBound(t *testing.T, s sdk) {
	id, _ := s.mountConnected(t, map[string]any{"apiProxy": true})
	defer s.call(t, nil, "unmount", id)
	for i := range 16 {
		s.cmd(t, nil, id, "fetchStart", fmt.Sprintf("slow-%d", i), "/slow")
	}
	f := s.fetch(t, id, "/seventeenth")
	if f.OK || f.Code != "too_many_requests" {
		t.Errorf("17th api.fetch with 16 in flight = %+v, want too_many_requests from the iframe", f)
	}
	// Past iframe.js, the host applies the same bound.
	r := s.rawProxy(t, id, "raw-17", map[string]any{"method": "GET", "path": "/seventeenth"})
	if r.Payload.Error != "too_many_requests" {
		t.Errorf("17th raw apiproxy with 16 in flight = %+v, want too_many_requests from the host", r.Payload)
	}
	for _, c := range s.g.Calls() {
		if strings.HasSuffix(c.Path, "/seventeenth") {
			t.Errorf("the gateway got the 17th call: %+v", c)
		}
	}
}

func testProxyIframeTimeout(t *testing.T, s sdk) {
	id, _ := s.mountConnected(t, map[string]any{"apiProxy": true, "path": "index.html?proxyTimeout=300"})
	defer s.call(t, nil, "unmount", id)
	began := time.Now()
	f := s.fetch(t, id, "/slow")
	if f.OK || f.Code != "timeout" || !strings.Contains(f.Error, "no apiproxy answer from the host within 300 ms") {
		t.Errorf("api.fetch of a slow call with a 300 ms iframe timeout = %+v, want the iframe's timeout", f)
	}
	if d := time.Since(began); d > 4*time.Second {
		t.Errorf("the iframe's timeout took %v, want about 300 ms", d)
	}
}

func testProxyHostTimeout(t *testing.T, s sdk) {
	id, _ := s.mountConnected(t, map[string]any{"apiProxy": true, "apiProxyTimeoutMs": 300})
	defer s.call(t, nil, "unmount", id)
	canceled := s.g.slowCanceled.Load()
	f := s.fetch(t, id, "/slow")
	if f.OK || f.Code != "timeout" || !strings.Contains(f.Error, "no response within 300 ms") {
		t.Errorf("api.fetch of a slow call with a 300 ms host timeout = %+v, want the host's timeout", f)
	}
	waitUntil(t, 5*time.Second, func() string {
		if s.g.slowCanceled.Load() == canceled {
			return "the host did not abort the gateway call after its timeout"
		}
		return ""
	})
}
