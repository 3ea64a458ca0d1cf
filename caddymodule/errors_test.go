package caddymodule

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/extedge/extedge/internal/blobstore"
	"github.com/extedge/extedge/internal/execapi"
)

// specStatus is every gateway code with the status SPEC gives it (§8.2,
// §8.3, §8.4, and §6.2 for the runner codes the gateway also answers).
// Codes SPEC does not name are marked; their statuses are this package's.
var specStatus = map[string]int{
	"extension_not_found":  404, // §8.2 step 1
	"unauthenticated":      401, // step 2
	"forbidden":            403, // step 2
	"rate_limited":         429, // step 3
	"not_installed":        404, // step 4
	"registry_unavailable": 503, // step 4, §8.3
	"endpoint_not_found":   404, // step 5
	"method_not_allowed":   405, // step 5
	"quota_exceeded":       429, // step 6
	"payload_too_large":    413, // step 7
	"timeout":              504, // step 10
	"runners_busy":         503, // step 10
	"extension_unhealthy":  503, // §17 circuit breaker
	"response_too_large":   502, // step 10
	"bundle_unavailable":   502, // §6.2, passed through by step 10; also /ext-ui
	"integrity_failed":     502, // §6.2, passed through by step 10; also /ext-ui
	"debug_unavailable":    503, // §8.4
	"not_found":            404, // §8.3, §8.4 (no code named)
	"runners_unavailable":  503, // not in SPEC: no runner reachable, retryable
	"bad_gateway":          502, // not in SPEC: a runner reply that is no reply
	"bad_request":          400, // not in SPEC: unreadable client body
	"client_closed":        499, // not in SPEC: recorded only, never read
	"internal":             500, // not in SPEC for the gateway itself
}

func TestErrorTableMatchesSpec(t *testing.T) {
	for code, want := range specStatus {
		t.Run(code, func(t *testing.T) {
			e, ok := errorTable[code]
			if !ok {
				t.Fatalf("%s is not in errorTable", code)
			}
			if e.status != want {
				t.Fatalf("%s is %d, SPEC says %d", code, e.status, want)
			}
			if e.message == "" {
				t.Fatalf("%s has no default message", code)
			}
			ge := newError(code, "")
			if ge.code != code || ge.status != want || ge.message != e.message {
				t.Fatalf("newError(%s) = %+v", code, ge)
			}
		})
	}
	for code := range errorTable {
		if _, ok := specStatus[code]; !ok {
			t.Errorf("%s is in errorTable but not in this test's SPEC list", code)
		}
	}
}

func TestNewError(t *testing.T) {
	cases := []struct {
		name                  string
		code, message         string
		wantCode, wantMessage string
		wantStatus            int
	}{
		{"a call-site message overrides the table's", codeForbidden, "the token lacks extension:read", codeForbidden, "the token lacks extension:read", 403},
		{"an empty message takes the table's", codeNotInstalled, "", codeNotInstalled, "the extension is not installed for this tenant", 404},
		{"a code missing from the table is internal, never its own spelling", "no_such_code", "", codeInternal, "internal error", 500},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ge := newError(c.code, c.message)
			if ge.code != c.wantCode || ge.status != c.wantStatus || ge.message != c.wantMessage {
				t.Fatalf("newError(%q, %q) = %+v", c.code, c.message, ge)
			}
		})
	}
}

func TestRunnerErrorFollowsSpec(t *testing.T) {
	cases := []struct {
		name       string
		runnerCode string
		wantCode   string
		wantStatus int
	}{
		{"timeout is 504 timeout", execapi.CodeTimeout, codeTimeout, 504},
		{"concurrency_limited is 503 runners_busy", execapi.CodeConcurrencyLimited, codeRunnersBusy, 503},
		{"payload_too_large is 413", execapi.CodePayloadTooLarge, codePayloadTooLarge, 413},
		{"bundle_unavailable is 502 bundle_unavailable", execapi.CodeBundleUnavailable, codeBundleUnavailable, 502},
		{"integrity_failed is 502 integrity_failed", execapi.CodeIntegrityFailed, codeIntegrityFailed, 502},
		{"trap keeps its code at 502", execapi.CodeTrap, execapi.CodeTrap, 502},
		{"the runner's internal is 502 (upstream failed), not the gateway's 500", execapi.CodeInternal, execapi.CodeInternal, 502},
		{"the runner's bad_request is 502, not 400", execapi.CodeBadRequest, execapi.CodeBadRequest, 502},
		{"the runner's unauthorized is 502, not 401", execapi.CodeUnauthorized, execapi.CodeUnauthorized, 502},
		{"an empty code is bad_gateway", "", codeBadGateway, 502},
		{"an unknown code is passed through at 502", "something_new", "something_new", 502},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ge := runnerError(&execapi.Error{Code: c.runnerCode, Message: "internal detail /var/lib/x"})
			if ge.code != c.wantCode || ge.status != c.wantStatus {
				t.Fatalf("runnerError(%q) = %s %d, want %s %d", c.runnerCode, ge.code, ge.status, c.wantCode, c.wantStatus)
			}
			if ge.message == "" || strings.Contains(ge.message, "/var/lib") {
				t.Fatalf("message %q: want a fixed client-safe message", ge.message)
			}
		})
	}
	if ge := runnerError(&execapi.Error{Code: execapi.CodeConcurrencyLimited}); ge.retryAfter <= 0 {
		t.Fatal("runners_busy without Retry-After")
	}
}

// The SPEC decision of errorTable: bundle_unavailable is 502 on /ext-ui as
// on /api/ext.
func TestUIBundleUnavailableIs502(t *testing.T) {
	fx := publishUIBundle(t, uiFiles, "Acme Inc.", "")
	// The bundle is published but gone from the blob store.
	p := filepath.Join(strings.TrimPrefix(fx.storeURL, "file://"), filepath.FromSlash(blobstore.BundleKey(fx.hash)))
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	g := newUIGateway(t, fx, nil)
	w := g.do(httptest.NewRequest("GET", uiURL(fx, "app.js"), nil))
	if w.Code != http.StatusBadGateway || errorCode(t, w) != codeBundleUnavailable {
		t.Fatalf("missing bundle: %d %s", w.Code, w.Body.String())
	}
}

func TestAdminStatusRefusesOtherMethods(t *testing.T) {
	h := AdminStatus{}.Routes()[0].Handler
	err := h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("POST", "/extedge/status", nil))
	var ae caddy.APIError
	if !errors.As(err, &ae) || ae.HTTPStatus != http.StatusMethodNotAllowed || !strings.Contains(ae.Err.Error(), codeMethodNotAllowed) {
		t.Fatalf("POST /extedge/status: %v", err)
	}
}
