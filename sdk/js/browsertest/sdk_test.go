package browsertest

import (
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// frameState is T.state(id) in testdata/host.html.
type frameState struct {
	Navigations        []string    `json:"navigations"`
	Errors             []hostError `json:"errors"`
	Heights            []string    `json:"heights"`
	Height             string      `json:"height"`
	TokenCalls         int         `json:"tokenCalls"`
	TokensReturned     int         `json:"tokensReturned"`
	FromFrameTypes     []string    `json:"fromFrameTypes"`
	Sandbox            string      `json:"sandbox"`
	ReferrerPolicy     string      `json:"referrerpolicy"`
	Src                string      `json:"src"`
	Connected          bool        `json:"connected"`
	IframesInContainer int         `json:"iframesInContainer"`
}

// hostError is an Error passed to mountExtension's onError.
type hostError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// connectResult is what app.js's "context" command returns: the outcome of
// connect().
type connectResult struct {
	OK    bool   `json:"ok"`
	Error string `json:"error"`
	Ctx   struct {
		ExtensionID string                `json:"extension_id"`
		GatewayBase string                `json:"gateway_base"`
		Navigation  struct{ Path string } `json:"navigation"`
		ThemeTokens map[string]string     `json:"theme_tokens"`
		Session     *sessionValue         `json:"session"` // nil: the host keeps the token

	} `json:"ctx"`
}

type sessionValue struct {
	Token     string `json:"token"`
	ExpiresAt any    `json:"expires_at"`
}

// fetchResult is what app.js's "fetch" command returns for api.fetch.
type fetchResult struct {
	OK         bool              `json:"ok"`
	Error      string            `json:"error"`
	Code       string            `json:"code"` // the rejection's err.code
	IsResponse bool              `json:"isResponse"`
	Status     int               `json:"status"`
	Headers    map[string]string `json:"headers"`
	Body       apiEcho           `json:"body"`
}

type receivedMsg struct {
	FromParent bool   `json:"fromParent"`
	Type       string `json:"type"`
}

// envelope builds a protocol message.
func envelope(typ string, payload any) map[string]any {
	return map[string]any{"alga": true, "version": "1", "type": typ, "payload": payload}
}

// sdk wraps the host page with typed helpers for the tests.
type sdk struct {
	*browserPage
	g *fakeGateway
}

// openHostPage serves the host page from its own origin, starts Chromium
// and loads the host page, pointed at the fake gateway g.
func openHostPage(t *testing.T, g *fakeGateway) sdk {
	t.Helper()
	hs := newHostServer(t)
	g.hostOrigin = hs.URL
	p := startBrowser(t)
	q := url.Values{"gw": {g.URL()}, "ext": {testExtensionID}, "hash": {testContentHash}}
	p.navigate(t, hs.URL+"/host.html?"+q.Encode(), "window.T_READY === true")
	return sdk{browserPage: p, g: g}
}

func (s sdk) state(t *testing.T, id int) frameState {
	t.Helper()
	var st frameState
	s.call(t, &st, "state", id)
	return st
}

func (s sdk) cmd(t *testing.T, out any, id int, name string, args ...any) {
	t.Helper()
	s.call(t, out, "cmd", append([]any{id, name}, args...)...)
}

func (s sdk) fetch(t *testing.T, id int, path string, init ...any) fetchResult {
	t.Helper()
	var r fetchResult
	args := []any{path}
	args = append(args, init...)
	s.cmd(t, &r, id, "fetch", args...)
	return r
}

func (s sdk) cssVar(t *testing.T, id int, name string) string {
	t.Helper()
	var v string
	s.cmd(t, &v, id, "cssVar", name)
	return v
}

func (s sdk) session(t *testing.T, id int) sessionValue {
	t.Helper()
	var v sessionValue
	s.cmd(t, &v, id, "session")
	return v
}

// waitState polls T.state(id) until ok returns "", failing with its reason.
func (s sdk) waitState(t *testing.T, id int, timeout time.Duration, ok func(frameState) string) frameState {
	t.Helper()
	var st frameState
	waitUntil(t, timeout, func() string {
		st = s.state(t, id)
		return ok(st)
	})
	return st
}

// navigateMarker makes frame id ask the host to navigate to marker and waits
// until onNavigate saw it. Messages from one window arrive in order, so
// everything the frame (or the host page itself) posted before has been
// handled by then.
func (s sdk) navigateMarker(t *testing.T, id int, marker string) frameState {
	t.Helper()
	var r struct{ OK bool }
	s.cmd(t, &r, id, "navigate", marker)
	if !r.OK {
		t.Fatalf("navigate(%q) was rejected in the iframe", marker)
	}
	return s.waitState(t, id, 5*time.Second, func(st frameState) string {
		if !slices.Contains(st.Navigations, marker) {
			return fmt.Sprintf("onNavigate has not seen %s (saw %v)", marker, st.Navigations)
		}
		return ""
	})
}

func TestSDKInBrowser(t *testing.T) {
	began := time.Now()
	g := newFakeGateway(t)
	s := openHostPage(t, g)
	p := s.browserPage
	// ui plays the gateway's dedicated ui_host origin (SPEC §16): another
	// listener on 127.0.0.1, so another origin; its pages call g's API.
	ui := newFakeGateway(t)
	ui.hostOrigin = g.hostOrigin
	ui.apiOrigin = g.URL()
	t.Logf("browser and host page ready after %v", time.Since(began).Round(time.Millisecond))

	// The session mounts start first: their refreshes take a few seconds of
	// wall time, which the other subtests overlap.
	// sessTimer: 8 s tokens; the host refreshes 4 s before expiry on its own.
	// sessFallback: same, but the host's own refresh fails, so the iframe's
	// session_expiring (2 s before expiry) must trigger the next one.
	var sessTimer, sessFallback int
	p.call(t, &sessTimer, "mount", map[string]any{"ttls": []int{8, 3600}})
	p.call(t, &sessFallback, "mount", map[string]any{"ttls": []int{8, 3600}, "failOn": []int{2}})
	sessStarted := time.Now()

	theme := map[string]any{"primaryColor": "#112233", "Brand_Color": "red", "spacing": 4}
	var m int
	p.call(t, &m, "mount", map[string]any{"theme": theme, "epochSeconds": true})

	t.Run("iframe is sandboxed without allow-same-origin and has an opaque origin", func(t *testing.T) {
		st := s.state(t, m)
		if st.Sandbox != "allow-scripts" {
			t.Errorf("sandbox = %q, want allow-scripts", st.Sandbox)
		}
		if st.ReferrerPolicy != "no-referrer" {
			t.Errorf("referrerpolicy = %q, want no-referrer", st.ReferrerPolicy)
		}
		wantSrc := g.URL() + "/ext-ui/" + testExtensionID + "/" + testContentHash + "/index.html"
		if st.Src != wantSrc {
			t.Errorf("src = %q, want %q", st.Src, wantSrc)
		}
		var origin, parent string
		s.cmd(t, &origin, m, "origin")
		s.cmd(t, &parent, m, "touchParent")
		if origin != "null" {
			t.Errorf("self.origin in the iframe = %q, want null (opaque)", origin)
		}
		if !strings.HasPrefix(parent, "blocked: SecurityError") {
			t.Errorf("iframe reading parent.document: %q, want a SecurityError", parent)
		}
	})

	t.Run("connect resolves with the bootstrap context", func(t *testing.T) {
		var r connectResult
		s.cmd(t, &r, m, "context")
		if !r.OK {
			t.Fatalf("connect() rejected: %s", r.Error)
		}
		c := r.Ctx
		if c.ExtensionID != testExtensionID || c.GatewayBase != g.URL() || c.Navigation.Path != "/index.html" {
			t.Errorf("context = {extension_id %q, gateway_base %q, navigation.path %q}, want {%q, %q, /index.html}",
				c.ExtensionID, c.GatewayBase, c.Navigation.Path, testExtensionID, g.URL())
		}
		wantTheme := map[string]string{"primaryColor": "#112233", "Brand_Color": "red", "spacing": "4"}
		if fmt.Sprint(c.ThemeTokens) != fmt.Sprint(wantTheme) {
			t.Errorf("theme_tokens = %v, want %v", c.ThemeTokens, wantTheme)
		}
		if c.Session == nil {
			t.Fatalf("session = null, want the token (shareToken is the default without apiProxy)")
		}
		if want := fmt.Sprintf("tok-%d-1", m); c.Session.Token != want {
			t.Errorf("session.token = %q, want %q", c.Session.Token, want)
		}
		// getToken returned epoch seconds; the wire carries ISO 8601.
		exp, ok := c.Session.ExpiresAt.(string)
		if !ok {
			t.Fatalf("session.expires_at = %#v, want an ISO 8601 string", c.Session.ExpiresAt)
		}
		at, err := time.Parse(time.RFC3339, exp)
		if err != nil || time.Until(at) < 50*time.Minute || time.Until(at) > 61*time.Minute {
			t.Errorf("session.expires_at = %q (%v), want about an hour from now", exp, err)
		}
	})

	t.Run("api.fetch calls the gateway with the bearer token", func(t *testing.T) {
		r := s.fetch(t, m, "/agreements/a%2Fb?page=2")
		if !r.OK || r.Status != 200 {
			t.Fatalf("api.fetch = %+v, want status 200", r)
		}
		want := fmt.Sprintf("Bearer tok-%d-1", m)
		if r.Body.Auth != want || r.Body.Path != "/api/ext/"+testExtensionID+"/agreements/a%2Fb" || r.Body.Query != "page=2" {
			t.Errorf("gateway saw %+v, want auth %q, path /api/ext/%s/agreements/a%%2Fb, query page=2", r.Body, want, testExtensionID)
		}
		calls := g.Calls()
		if last := calls[len(calls)-1]; last.Origin != "null" {
			t.Errorf("Origin of the API call = %q, want null (the sandbox's opaque origin)", last.Origin)
		}
		// An Authorization header from the caller is replaced, never sent.
		r = s.fetch(t, m, "/agreements", map[string]any{"method": "POST", "headers": map[string]string{"Authorization": "Bearer forged", "Content-Type": "application/json"}, "body": "{}"})
		if !r.OK || r.Body.Auth != want {
			t.Errorf("api.fetch with a forged Authorization sent %q (%+v), want %q", r.Body.Auth, r, want)
		}
	})

	t.Run("api.fetch rejects unsafe paths without a request", func(t *testing.T) {
		before := len(g.Calls())
		for _, path := range []string{
			"../agreements",
			"/agreements/../admin",
			"/agreements/%2e%2e/admin",
			"/agreements/%2E%2e/admin",
			"/agreements/.%2e/admin",
			"/agreements/%2e%2e%2fadmin",
			"/./agreements",
			"https://evil.example/steal",
			"/https://evil.example/steal",
			"//evil.example/steal",
			"agreements",
			"",
			"/a//b",
			`/a\b`,
			"/a/%5c/b",
			"/a\nb",
		} {
			r := s.fetch(t, m, path)
			if r.OK || !strings.Contains(r.Error, "alga: api.fetch: path") {
				t.Errorf("api.fetch(%q) = %+v, want a rejection naming the path", path, r)
			}
		}
		if after := len(g.Calls()); after != before {
			t.Errorf("the gateway got %d requests from rejected paths, want 0", after-before)
		}
	})

	t.Run("an iframe loaded from the UI origin connects and calls the API origin directly", func(t *testing.T) {
		testUIOnItsOwnOrigin(t, s, ui)
	})
	t.Run("an iframe without a token calls the API through apiproxy", func(t *testing.T) {
		testTokenlessProxy(t, s, g.hostOrigin)
	})
	t.Run("apiproxy refuses unsafe requests without calling the gateway", func(t *testing.T) {
		testProxyRejects(t, s, m)
	})

	t.Run("theme tokens become CSS variables and follow setThemeTokens", func(t *testing.T) {
		for name, want := range map[string]string{
			"--alga-primary-color": "#112233",
			"--alga-brand-color":   "red",
			"--alga-spacing":       "4",
		} {
			if got := s.cssVar(t, m, name); got != want {
				t.Errorf("%s = %q, want %q", name, got, want)
			}
		}
		var changed bool
		p.call(t, &changed, "setTheme", m, theme)
		if changed {
			t.Errorf("setThemeTokens with the same tokens reported a change")
		}
		p.call(t, &changed, "setTheme", m, map[string]any{"primaryColor": "#445566"})
		if !changed {
			t.Errorf("setThemeTokens with new tokens reported no change")
		}
		waitUntil(t, 5*time.Second, func() string {
			if got := s.cssVar(t, m, "--alga-primary-color"); got != "#445566" {
				return "--alga-primary-color is still " + got
			}
			return ""
		})
		if got := s.cssVar(t, m, "--alga-brand-color"); got != "" {
			t.Errorf("--alga-brand-color = %q after the token was dropped, want it removed", got)
		}
		// onTheme saw the bootstrap and the one change; the unchanged set was
		// not re-sent (messages from the host arrive in order).
		var calls []map[string]string
		s.cmd(t, &calls, m, "themeCalls")
		if len(calls) != 2 || calls[1]["primaryColor"] != "#445566" {
			t.Errorf("onTheme calls = %v, want 2 (bootstrap, then the change)", calls)
		}
	})

	t.Run("resize requests are clamped to 100..4000 px", func(t *testing.T) {
		// The automatic first resize (20 px of content) must be in before the
		// explicit ones, or it could land after them.
		s.waitState(t, m, 5*time.Second, func(st frameState) string {
			if !slices.Contains(st.FromFrameTypes, "resize") {
				return "no automatic resize yet"
			}
			return ""
		})
		for _, tt := range []struct {
			request float64
			want    string
		}{
			{555, "555px"},
			{10, "100px"},
			{10000, "4000px"},
			{-50, "100px"},
			{1234.2, "1235px"},
		} {
			s.cmd(t, nil, m, "resize", tt.request)
			s.waitState(t, m, 5*time.Second, func(st frameState) string {
				if st.Height != tt.want {
					return fmt.Sprintf("resize(%v): height %s, want %s", tt.request, st.Height, tt.want)
				}
				return ""
			})
		}
		// A height that is not a number is ignored.
		s.cmd(t, nil, m, "rawPost", envelope("resize", map[string]any{"height": "700"}))
		st := s.navigateMarker(t, m, "/marker-resize")
		if slices.Contains(st.Heights, "700px") || st.Height != "1235px" {
			t.Errorf("height after a string height: %s (history %v), want it unchanged", st.Height, st.Heights)
		}
		for _, h := range st.Heights {
			px, err := strconv.ParseFloat(strings.TrimSuffix(h, "px"), 64)
			if err != nil || px < 100 || px > 4000 {
				t.Errorf("iframe height was %s at some point, outside 100..4000", h)
			}
		}
	})

	t.Run("automatic resize follows the document height", func(t *testing.T) {
		for _, tt := range []struct {
			content int
			want    string
		}{
			{1500, "1500px"},
			{6000, "4000px"},
			{30, "100px"},
		} {
			s.cmd(t, nil, m, "grow", tt.content)
			s.waitState(t, m, 5*time.Second, func(st frameState) string {
				if st.Height != tt.want {
					return fmt.Sprintf("content %d px: height %s, want %s", tt.content, st.Height, tt.want)
				}
				return ""
			})
		}
	})

	t.Run("navigate reaches onNavigate and unsafe paths are refused", func(t *testing.T) {
		s.navigateMarker(t, m, "/agreements/42?tab=lines")
		var r struct {
			OK    bool
			Error string
		}
		for _, path := range []string{"https://evil.example", "//evil.example", "agreements", `/a\b`} {
			s.cmd(t, &r, m, "navigate", path)
			if r.OK {
				t.Errorf("navigate(%q) in the iframe was accepted, want a TypeError", path)
			}
		}
		// The same paths posted raw are ignored by the host.
		for _, path := range []string{"https://evil.example", "//evil.example", "javascript:alert(1)"} {
			s.cmd(t, nil, m, "rawPost", envelope("navigate", map[string]any{"path": path}))
		}
		st := s.navigateMarker(t, m, "/marker-nav")
		if got := st.Navigations[len(st.Navigations)-2:]; !slices.Equal(got, []string{"/agreements/42?tab=lines", "/marker-nav"}) {
			t.Errorf("onNavigate got %v, want only the valid path and the marker", got)
		}
	})

	t.Run("invalid envelopes from the iframe are ignored", func(t *testing.T) {
		before := len(s.state(t, m).Navigations)
		for _, msg := range []any{
			map[string]any{"alga": true, "version": "2", "type": "navigate", "payload": map[string]any{"path": "/bad-version"}},
			map[string]any{"alga": "true", "version": "1", "type": "navigate", "payload": map[string]any{"path": "/bad-alga"}},
			map[string]any{"version": "1", "type": "navigate", "payload": map[string]any{"path": "/no-alga"}},
			map[string]any{"alga": true, "version": 1, "type": "navigate", "payload": map[string]any{"path": "/numeric-version"}},
			map[string]any{"alga": true, "version": "1", "type": "navigate", "payload": []any{"/array-payload"}},
			map[string]any{"alga": true, "version": "1", "type": "navigate", "request_id": strings.Repeat("x", 200), "payload": map[string]any{"path": "/long-request-id"}},
			map[string]any{"alga": true, "version": "1", "type": "Navigate", "payload": map[string]any{"path": "/wrong-case-type"}},
			`{"alga":true,"version":"1","type":"navigate","payload":{"path":"/json-string"}}`,
			[]any{"navigate", "/array"},
		} {
			s.cmd(t, nil, m, "rawPost", msg)
		}
		st := s.navigateMarker(t, m, "/marker-envelope")
		if got := st.Navigations[before:]; !slices.Equal(got, []string{"/marker-envelope"}) {
			t.Errorf("onNavigate got %v, want only the marker", got)
		}
	})

	t.Run("messages from other windows are ignored", func(t *testing.T) {
		before := s.state(t, m)
		// The host page posting to itself, with valid envelopes.
		p.call(t, nil, "selfPost", envelope("navigate", map[string]any{"path": "/from-host-page"}))
		p.call(t, nil, "selfPost", envelope("resize", map[string]any{"height": 3333}))
		p.call(t, nil, "selfPost", envelope("ready", map[string]any{}))
		st := s.navigateMarker(t, m, "/marker-self")
		if slices.Contains(st.Navigations, "/from-host-page") || slices.Contains(st.Heights, "3333px") {
			t.Errorf("the host page's own messages were handled: navigations %v, heights %v", st.Navigations, st.Heights)
		}

		// A second sandboxed frame of the same page that was not mounted.
		var rogue int
		p.call(t, &rogue, "rogue")
		s.cmd(t, nil, rogue, "rawPost", envelope("navigate", map[string]any{"path": "/from-rogue"}))
		s.cmd(t, nil, rogue, "rawPost", envelope("resize", map[string]any{"height": 2222}))
		s.cmd(t, nil, rogue, "rawPost", envelope("session_expiring", map[string]any{}))
		// The rogue's ready and these reached the host page (its own listener
		// saw them), so the SDK's listener ran for them too.
		s.waitState(t, rogue, 5*time.Second, func(st frameState) string {
			if len(st.FromFrameTypes) < 4 {
				return fmt.Sprintf("host page saw %v from the rogue frame", st.FromFrameTypes)
			}
			return ""
		})
		st = s.state(t, m)
		if slices.Contains(st.Navigations, "/from-rogue") || slices.Contains(st.Heights, "2222px") || st.TokenCalls != before.TokenCalls {
			t.Errorf("the mount handled the rogue frame's messages: navigations %v, heights %v, getToken calls %d→%d",
				st.Navigations, st.Heights, before.TokenCalls, st.TokenCalls)
		}
		// The rogue's ready got no bootstrap, so its connect() times out.
		var rc connectResult
		s.cmd(t, &rc, rogue, "context")
		if rc.OK || !strings.Contains(rc.Error, "no bootstrap") {
			t.Errorf("rogue connect() = %+v, want a timeout without a bootstrap", rc)
		}

		// The rogue frame posting to the mounted frame (its sibling).
		var idx int
		p.call(t, &idx, "frameIndex", m)
		s.cmd(t, nil, rogue, "postToFrame", idx, envelope("session", map[string]any{"token": "stolen", "expires_at": "2099-01-01T00:00:00Z"}))
		s.cmd(t, nil, rogue, "postToFrame", idx, envelope("theme_tokens", map[string]any{"theme_tokens": map[string]any{"primaryColor": "#ff0000"}}))
		waitUntil(t, 5*time.Second, func() string {
			var got []receivedMsg
			s.cmd(t, &got, m, "received")
			n := 0
			for _, r := range got {
				if !r.FromParent {
					n++
				}
			}
			if n < 2 {
				return fmt.Sprintf("mounted frame received %d messages from the sibling", n)
			}
			return ""
		})
		if tok := s.session(t, m).Token; tok != fmt.Sprintf("tok-%d-1", m) {
			t.Errorf("session token after a sibling's session message = %q", tok)
		}
		if got := s.cssVar(t, m, "--alga-primary-color"); got != "#445566" {
			t.Errorf("--alga-primary-color after a sibling's theme message = %q, want #445566", got)
		}

		var rogueGot []receivedMsg
		s.cmd(t, &rogueGot, rogue, "received")
		for _, r := range rogueGot {
			if r.FromParent {
				t.Errorf("the rogue frame received %s from the host page", r.Type)
			}
		}
	})

	t.Run("invalid envelopes from the host page are ignored by the iframe", func(t *testing.T) {
		for _, msg := range []any{
			map[string]any{"alga": true, "version": "2", "type": "theme_tokens", "payload": map[string]any{"theme_tokens": map[string]any{"primaryColor": "#ff0001"}}},
			map[string]any{"alga": 1, "version": "1", "type": "theme_tokens", "payload": map[string]any{"theme_tokens": map[string]any{"primaryColor": "#ff0002"}}},
			map[string]any{"version": "1", "type": "session", "payload": map[string]any{"token": "no-alga", "expires_at": "2099-01-01T00:00:00Z"}},
			envelope("session", map[string]any{"token": "", "expires_at": "2099-01-01T00:00:00Z"}),
			envelope("session", map[string]any{"token": "bad-expiry", "expires_at": "tomorrow"}),
			envelope("theme_tokens", map[string]any{"theme_tokens": []any{"#ff0003"}}),
			`{"alga":true,"version":"1","type":"session","payload":{"token":"json-string","expires_at":"2099-01-01T00:00:00Z"}}`,
		} {
			p.call(t, nil, "toFrame", m, msg)
		}
		// Marker: a valid theme change; host messages arrive in order.
		p.call(t, nil, "setTheme", m, map[string]any{"primaryColor": "#00ff00"})
		waitUntil(t, 5*time.Second, func() string {
			if got := s.cssVar(t, m, "--alga-primary-color"); got != "#00ff00" {
				return "--alga-primary-color is " + got
			}
			return ""
		})
		var calls []map[string]string
		s.cmd(t, &calls, m, "themeCalls")
		for _, c := range calls {
			if strings.HasPrefix(c["primaryColor"], "#ff000") {
				t.Errorf("onTheme got %v from an invalid envelope", c)
			}
		}
		if tok := s.session(t, m).Token; tok != fmt.Sprintf("tok-%d-1", m) {
			t.Errorf("session token = %q after invalid session messages", tok)
		}
	})

	t.Run("session_expiring for a fresh token does not call getToken", func(t *testing.T) {
		for range 5 {
			s.cmd(t, nil, m, "rawPost", envelope("session_expiring", map[string]any{}))
		}
		st := s.navigateMarker(t, m, "/marker-expiring")
		if st.TokenCalls != 1 {
			t.Errorf("getToken calls = %d after a burst of session_expiring on a 1 h token, want 1", st.TokenCalls)
		}
	})

	t.Run("the host refreshes the session before expiry and api.fetch uses the new token", func(t *testing.T) {
		want := fmt.Sprintf("tok-%d-2", sessTimer)
		waitUntil(t, 10*time.Second, func() string {
			if tok := s.session(t, sessTimer).Token; tok != want {
				return "iframe token is " + tok + ", want " + want
			}
			return ""
		})
		took := time.Since(sessStarted)
		if r := s.fetch(t, sessTimer, "/ping"); r.Body.Auth != "Bearer "+want {
			t.Errorf("api.fetch after the refresh sent %q, want Bearer %s", r.Body.Auth, want)
		}
		st := s.state(t, sessTimer)
		if slices.Contains(st.FromFrameTypes, "session_expiring") || len(st.Errors) != 0 || st.TokenCalls != 2 {
			t.Errorf("timer refresh: frame sent %v, errors %v, getToken calls %d; want no session_expiring, no errors, 2 calls",
				st.FromFrameTypes, st.Errors, st.TokenCalls)
		}
		t.Logf("refreshed %v after mount (8 s token, refresh due 4 s before expiry)", took.Round(time.Millisecond))
	})

	t.Run("session_expiring from the iframe refreshes when the host's refresh failed", func(t *testing.T) {
		want := fmt.Sprintf("tok-%d-3", sessFallback)
		waitUntil(t, 10*time.Second, func() string {
			if tok := s.session(t, sessFallback).Token; tok != want {
				return "iframe token is " + tok + ", want " + want
			}
			return ""
		})
		if r := s.fetch(t, sessFallback, "/ping"); r.Body.Auth != "Bearer "+want {
			t.Errorf("api.fetch after the refresh sent %q, want Bearer %s", r.Body.Auth, want)
		}
		st := s.state(t, sessFallback)
		if !slices.Contains(st.FromFrameTypes, "session_expiring") {
			t.Errorf("frame sent %v, want a session_expiring", st.FromFrameTypes)
		}
		if len(st.Errors) != 1 || st.Errors[0].Code != "token_failed" || !strings.Contains(st.Errors[0].Message, "token service down") {
			t.Errorf("onError got %+v, want one token_failed naming the cause", st.Errors)
		}
		if st.TokenCalls != 3 {
			t.Errorf("getToken calls = %d, want 3 (mount, failed refresh, refresh on session_expiring)", st.TokenCalls)
		}
	})

	t.Run("connect with hostOrigin accepts only that origin", func(t *testing.T) {
		for _, tt := range []struct {
			origin string
			wantOK bool
		}{
			{g.hostOrigin, true},
			{"http://127.0.0.1:1", false},
		} {
			var id int
			p.call(t, &id, "mount", map[string]any{"path": "index.html?timeout=500&hostOrigin=" + url.QueryEscape(tt.origin)})
			var r connectResult
			s.cmd(t, &r, id, "context")
			if r.OK != tt.wantOK {
				t.Errorf("connect({hostOrigin: %q}) from host %s: %+v, want ok=%v", tt.origin, g.hostOrigin, r, tt.wantOK)
			}
			p.call(t, nil, "unmount", id)
		}
	})

	t.Run("a frame that never sends ready is reported", func(t *testing.T) {
		var id int
		p.call(t, &id, "mount", map[string]any{"path": "static.html", "readyTimeoutMs": 300, "noHello": true})
		st := s.waitState(t, id, 5*time.Second, func(st frameState) string {
			if len(st.Errors) == 0 {
				return "no error yet"
			}
			return ""
		})
		if st.Errors[0].Code != "ready_timeout" {
			t.Errorf("onError got %+v, want ready_timeout", st.Errors)
		}
		p.call(t, nil, "unmount", id)
	})

	t.Run("unmount removes the iframe, the listener and every timer", func(t *testing.T) {
		p.call(t, nil, "unmountAll")
		type counts struct{ Listeners, Timers int }
		var c counts
		p.call(t, &c, "counts")
		if c != (counts{}) {
			t.Fatalf("after unmounting everything: %+v, want no listeners and no timers", c)
		}

		var id int
		p.call(t, &id, "mount", map[string]any{})
		var r connectResult
		s.cmd(t, &r, id, "context")
		if !r.OK {
			t.Fatalf("connect() rejected: %s", r.Error)
		}
		p.call(t, &c, "counts")
		if c != (counts{Listeners: 1, Timers: 1}) {
			t.Errorf("while mounted: %+v, want 1 listener and 1 refresh timer", c)
		}
		// Positive control: a synthetic event from the frame's window is
		// handled while mounted…
		p.call(t, nil, "synthetic", id, envelope("navigate", map[string]any{"path": "/synthetic-before"}))
		st := s.state(t, id)
		if !slices.Contains(st.Navigations, "/synthetic-before") {
			t.Fatalf("synthetic navigate before unmount was not handled: %v", st.Navigations)
		}

		p.call(t, &st, "unmount", id)
		if st.Connected || st.IframesInContainer != 0 {
			t.Errorf("after unmount: iframe connected %v, %d iframes in the container", st.Connected, st.IframesInContainer)
		}
		p.call(t, &c, "counts")
		if c != (counts{}) {
			t.Errorf("after unmount: %+v, want no listeners and no timers", c)
		}
		// …and nothing after.
		p.call(t, nil, "synthetic", id, envelope("navigate", map[string]any{"path": "/synthetic-after"}))
		var changed bool
		p.call(t, &changed, "setTheme", id, map[string]any{"x": "1"})
		st = s.state(t, id)
		if slices.Contains(st.Navigations, "/synthetic-after") || changed {
			t.Errorf("after unmount: navigations %v, setThemeTokens changed %v", st.Navigations, changed)
		}

		// A getToken that resolves after unmount schedules nothing.
		p.call(t, &id, "mount", map[string]any{"tokenDelayMs": 200, "noHello": true})
		p.call(t, nil, "unmount", id)
		s.waitState(t, id, 5*time.Second, func(st frameState) string {
			if st.TokensReturned != 1 {
				return "getToken has not returned yet"
			}
			return ""
		})
		p.call(t, &c, "counts")
		if c != (counts{}) {
			t.Errorf("after a late getToken: %+v, want no listeners and no timers", c)
		}
	})

	// These start from no mount at all (the subtest above unmounted
	// everything), so listener and timer counts are exact.
	t.Run("unmount aborts the host's apiproxy calls in flight", func(t *testing.T) {
		testProxyUnmount(t, s)
	})
	t.Run("apiproxy requests in flight are bounded in the iframe and in the host", func(t *testing.T) {
		testProxyInFlightBound(t, s)
	})
	t.Run("an apiproxy call the host does not answer in time is rejected in the iframe", func(t *testing.T) {
		testProxyIframeTimeout(t, s)
	})
	t.Run("the host aborts an apiproxy call after apiProxyTimeoutMs", func(t *testing.T) {
		testProxyHostTimeout(t, s)
	})

	t.Run("buildExtUiSrc validates extension id, content hash and path", func(t *testing.T) {
		base := g.URL()
		prefix := base + "/ext-ui/" + testExtensionID + "/" + testContentHash + "/"
		for _, tt := range []struct {
			name             string
			base, ext, hash  string
			path             string
			wantURL, wantErr string
		}{
			{"valid path", base, testExtensionID, testContentHash, "settings.html", prefix + "settings.html", ""},
			{"empty path serves the entry", base + "/", testExtensionID, testContentHash, "", prefix, ""},
			{"one leading slash is dropped", base, testExtensionID, testContentHash, "/agreements/42?tab=1#top", prefix + "agreements/42?tab=1#top", ""},
			{"uppercase hex is rejected", base, testExtensionID, "sha256:" + strings.Repeat("AB", 32), "", "", "content hash"},
			{"missing prefix is rejected", base, testExtensionID, strings.Repeat("ab", 32), "", "", "content hash"},
			{"short hash is rejected", base, testExtensionID, "sha256:" + strings.Repeat("a", 63), "", "", "content hash"},
			{"long hash is rejected", base, testExtensionID, "sha256:" + strings.Repeat("a", 65), "", "", "content hash"},
			{"other algorithm is rejected", base, testExtensionID, "sha512:" + strings.Repeat("ab", 32), "", "", "content hash"},
			{"percent-encoded colon is rejected", base, testExtensionID, "sha256%3A" + strings.Repeat("ab", 32), "", "", "content hash"},
			{"hash with a slash is rejected", base, testExtensionID, testContentHash + "/..", "", "", "content hash"},
			{"uppercase extension id is rejected", base, "Com.Acme.Test", testContentHash, "", "", "extension id"},
			{"single-label extension id is rejected", base, "acme", testContentHash, "", "", "extension id"},
			{"label ending in a dash is rejected", base, "com.acme-.test", testContentHash, "", "", "extension id"},
			{"extension id over 128 chars is rejected", base, "com." + strings.Repeat("a", 125), testContentHash, "", "", "extension id"},
			{"dot-dot path is rejected", base, testExtensionID, testContentHash, "../other/index.html", "", "UI path"},
			{"inner dot-dot path is rejected", base, testExtensionID, testContentHash, "a/../../b", "", "UI path"},
			{"encoded dot-dot path is rejected", base, testExtensionID, testContentHash, "a/%2e%2E/b", "", "UI path"},
			{"backslash path is rejected", base, testExtensionID, testContentHash, `a\..\b`, "", "UI path"},
			{"scheme path is rejected", base, testExtensionID, testContentHash, "https://evil.example/x", "", "UI path"},
			{"javascript scheme is rejected", base, testExtensionID, testContentHash, "javascript:alert(1)", "", "UI path"},
			{"protocol-relative path is rejected", base, testExtensionID, testContentHash, "//evil.example/x", "", "UI path"},
			{"hidden segment is rejected", base, testExtensionID, testContentHash, ".env", "", "UI path"},
			{"non-http base is rejected", "javascript:alert(1)", testExtensionID, testContentHash, "", "", "gateway base"},
			{"relative base is rejected", "/gw", testExtensionID, testContentHash, "", "", "gateway base"},
		} {
			t.Run(tt.name, func(t *testing.T) {
				var r struct {
					OK    bool
					URL   string
					Name  string
					Error string
				}
				p.call(t, &r, "build", tt.base, tt.ext, tt.hash, tt.path)
				if tt.wantErr == "" {
					if !r.OK || r.URL != tt.wantURL {
						t.Errorf("buildExtUiSrc = %+v, want %s", r, tt.wantURL)
					}
					return
				}
				if r.OK || r.Name != "TypeError" || !strings.Contains(r.Error, tt.wantErr) {
					t.Errorf("buildExtUiSrc = %+v, want a TypeError about the %s", r, tt.wantErr)
				}
			})
		}
	})

	t.Run("mountExtension with a bad hash throws and creates no iframe", func(t *testing.T) {
		var r struct {
			Threw   bool
			Name    string
			Error   string
			Iframes int
		}
		p.call(t, &r, "tryMount", map[string]any{"hash": "sha256:" + strings.Repeat("AB", 32)})
		if !r.Threw || r.Name != "TypeError" || !strings.Contains(r.Error, "content hash") || r.Iframes != 0 {
			t.Errorf("mountExtension with an uppercase hash: %+v, want a TypeError and no iframe", r)
		}
		p.call(t, &r, "tryMount", map[string]any{"path": "../x"})
		if !r.Threw || r.Iframes != 0 {
			t.Errorf("mountExtension with a ../ path: %+v, want a TypeError and no iframe", r)
		}
	})

	t.Run("mountExtension validates uiBase and the apiproxy options", func(t *testing.T) {
		for _, tt := range []struct {
			name    string
			opts    map[string]any
			wantErr string // "" = mounts
		}{
			{"a second origin as uiBase mounts", map[string]any{"uiBase": ui.URL()}, ""},
			{"apiProxy without a shared token mounts", map[string]any{"apiProxy": true}, ""},
			{"non-http uiBase is rejected", map[string]any{"uiBase": "javascript:alert(1)"}, "UI base"},
			{"relative uiBase is rejected", map[string]any{"uiBase": "/ui"}, "UI base"},
			{"no token and no proxy is rejected", map[string]any{"shareToken": false}, "shareToken false needs apiProxy"},
			{"non-boolean apiProxy is rejected", map[string]any{"apiProxy": "yes"}, "apiProxy and shareToken must be booleans"},
		} {
			t.Run(tt.name, func(t *testing.T) {
				var r struct {
					Threw   bool
					Name    string
					Error   string
					Iframes int
				}
				p.call(t, &r, "tryMount", tt.opts)
				if tt.wantErr == "" {
					if r.Threw || r.Iframes != 1 {
						t.Errorf("mountExtension(%v) = %+v, want one iframe", tt.opts, r)
					}
					return
				}
				if !r.Threw || r.Name != "TypeError" || !strings.Contains(r.Error, tt.wantErr) || r.Iframes != 0 {
					t.Errorf("mountExtension(%v) = %+v, want a TypeError about %q and no iframe", tt.opts, r, tt.wantErr)
				}
			})
		}
	})

	t.Logf("whole browser test took %v", time.Since(began).Round(time.Millisecond))
}
