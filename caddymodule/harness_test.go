package caddymodule

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/golang-jwt/jwt/v5"

	"github.com/extedge/extedge/internal/execapi"
	"github.com/extedge/extedge/internal/manifest"
	"github.com/extedge/extedge/internal/registryapi"
	"github.com/extedge/extedge/internal/testenv/stubrunner"
)

// The pipeline tests below run the real handler against a stub runner and
// a stub registry. The stub runner is the shared double of the execapi
// wire contract (internal/testenv/stubrunner, also run as a process by
// the integration tests and benchmarks) over a real Unix socket; the stub registry speaks registryapi over
// HTTP. Both are test doubles of the wire contracts only — the gateway
// code under test is the production code.

const (
	testRunnerToken  = "runner-token-0123456789"
	testServiceToken = "service-token-0123456789"
	testJWTSecret    = "jwt-secret-0123456789abcdef"
	testTenant       = "tenant-a"
	testExt          = "com.acme.agreements"
	testHash         = "sha256:1111111111111111111111111111111111111111111111111111111111111111"
)

// stubRunner serves the shared runner double (internal/testenv/stubrunner)
// on a Unix socket, answering echoGuest until told otherwise.
type stubRunner struct {
	*stubrunner.Runner
	Socket string
	srv    *http.Server
}

func newStubRunner(t testing.TB) *stubRunner {
	t.Helper()
	dir, err := os.MkdirTemp("", "eg")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	s := &stubRunner{Runner: stubrunner.New(testRunnerToken, execapi.Response{Status: 200}), Socket: filepath.Join(dir, "r.sock")}
	s.SetRespond(echoGuest)
	s.start(t)
	return s
}

func (s *stubRunner) start(t testing.TB) {
	t.Helper()
	_ = os.Remove(s.Socket)
	ln, err := net.Listen("unix", s.Socket)
	if err != nil {
		t.Fatal(err)
	}
	s.srv = &http.Server{Handler: s.Runner}
	go s.srv.Serve(ln)
	t.Cleanup(func() { s.srv.Close() })
}

// stop closes the listener and every connection.
func (s *stubRunner) stop() { s.srv.Close() }

func (s *stubRunner) Addr() string { return "unix/" + s.Socket }

func (s *stubRunner) setRespond(f func(req *execapi.Request) (int, any)) { s.SetRespond(f) }

func (s *stubRunner) lastRequest() *execapi.Request { return s.Last() }

// echoGuest answers 200 with the guest's view of the request as the body.
func echoGuest(req *execapi.Request) (int, any) {
	b, _ := json.Marshal(map[string]any{"endpoint": req.Endpoint, "path": req.HTTP.Path, "body": string(req.HTTP.Body)})
	return 200, execapi.Response{Status: 200, Headers: map[string]string{"content-type": "application/json"}, Body: b}
}

func runnerFails(code string) func(*execapi.Request) (int, any) {
	return func(req *execapi.Request) (int, any) {
		return execapi.HTTPStatus(code), execapi.ErrorBody{Error: execapi.Error{Code: code, Message: "internal detail", RequestID: req.Context.RequestID}}
	}
}

// stubRegistry speaks registryapi.
type stubRegistry struct {
	*httptest.Server
	mu       sync.Mutex
	installs map[string]*registryapi.Resolved // tenant/ext
	statuses map[string]*registryapi.BundleStatus
	down     atomic.Bool
	resolves atomic.Int64
	changes  chan registryapi.Change
	// statusCalls counts bundle-status requests; statusBusy and
	// statusMaxBusy are how many run at once and the most seen.
	statusCalls, statusBusy, statusMaxBusy atomic.Int64
	// holdStatus, when set, blocks bundle-status replies until closed.
	holdStatus atomic.Pointer[chan struct{}]
}

func newStubRegistry(t testing.TB) *stubRegistry {
	r := &stubRegistry{installs: map[string]*registryapi.Resolved{}, statuses: map[string]*registryapi.BundleStatus{},
		changes: make(chan registryapi.Change, 16)}
	r.Server = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.Server.Close)
	return r
}

func (s *stubRegistry) setInstall(tenant, ext string, res *registryapi.Resolved) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if res == nil {
		delete(s.installs, tenant+"/"+ext)
		return
	}
	s.installs[tenant+"/"+ext] = res
}

func (s *stubRegistry) serve(w http.ResponseWriter, r *http.Request) {
	if s.down.Load() {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	if r.Header.Get("Authorization") != "Bearer "+testServiceToken {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	switch {
	case strings.HasPrefix(r.URL.Path, "/v1/resolve/"):
		s.resolves.Add(1)
		key := strings.TrimPrefix(r.URL.Path, "/v1/resolve/")
		s.mu.Lock()
		res := s.installs[key]
		s.mu.Unlock()
		if res == nil {
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprint(w, `{"error":{"code":"not_installed","message":"not installed"}}`)
			return
		}
		b, _ := json.Marshal(res)
		etag := fmt.Sprintf(`"%x"`, len(b)) + res.ContentHash[7:15]
		if r.Header.Get("If-None-Match") == etag {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Header().Set("ETag", etag)
		w.Write(b)
	case strings.HasPrefix(r.URL.Path, "/v1/bundles/"):
		s.statusCalls.Add(1)
		n := s.statusBusy.Add(1)
		defer s.statusBusy.Add(-1)
		for m := s.statusMaxBusy.Load(); n > m && !s.statusMaxBusy.CompareAndSwap(m, n); m = s.statusMaxBusy.Load() {
		}
		if h := s.holdStatus.Load(); h != nil {
			<-*h
		}
		hash := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/v1/bundles/"), "/status")
		s.mu.Lock()
		st := s.statuses[hash+"/"+r.URL.Query().Get("extension")]
		s.mu.Unlock()
		if st == nil {
			st = &registryapi.BundleStatus{ContentHash: hash, Extension: r.URL.Query().Get("extension")}
		}
		json.NewEncoder(w).Encode(st)
	case r.URL.Path == "/v1/changes":
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		for {
			select {
			case <-r.Context().Done():
				return
			case ch := <-s.changes:
				registryapi.WriteChange(w, ch)
				w.(http.Flusher).Flush()
			}
		}
	default:
		w.WriteHeader(http.StatusNotFound)
	}
}

// testInstall is the install most tests use.
func testInstall() *registryapi.Resolved {
	return &registryapi.Resolved{
		InstallID: "inst-1", TenantID: testTenant,
		Extension:   registryapi.Ref{ID: "ext-1", Name: testExt},
		Version:     registryapi.VersionRef{ID: "ver-1", Version: "1.2.3"},
		ContentHash: testHash, Status: "enabled",
		Endpoints: []manifest.Endpoint{
			{Method: "GET", Path: "/agreements", Handler: "dist/handlers/list"},
			{Method: "GET", Path: "/agreements/:id", Handler: "dist/handlers/get"},
			{Method: "POST", Path: "/agreements/sync", Handler: "dist/handlers/sync", TimeoutMS: 1500},
			{Method: "PUT", Path: "/agreements/:id", Handler: "dist/handlers/put"},
		},
		Capabilities: []string{"storage.kv", "user.read"},
		Config:       json.RawMessage(`{"region":"emea"}`),
	}
}

// gateway is a provisioned Handler plus its doubles.
type gateway struct {
	h        *Handler
	runner   *stubRunner
	registry *stubRegistry
	cancel   context.CancelFunc
	dir      string
}

func writeFile(t testing.TB, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// newGateway provisions a Handler (JSON config as Caddy would) against a
// fresh stub runner and registry; mutate may adjust the config first.
func newGateway(t testing.TB, mutate func(h *Handler, g *gateway)) *gateway {
	t.Helper()
	g := &gateway{runner: newStubRunner(t), registry: newStubRegistry(t), dir: t.TempDir()}
	g.registry.setInstall(testTenant, testExt, testInstall())
	h := &Handler{
		Registry: &RegistryConfig{URL: g.registry.URL, TokenFile: writeFile(t, g.dir, "service.token", testServiceToken+"\n")},
		Runners:  &RunnersConfig{Addresses: []string{g.runner.Addr()}, TokenFile: writeFile(t, g.dir, "runner.token", " "+testRunnerToken+" \n")},
		Auth:     &AuthConfig{Mode: "jwt", SecretFile: writeFile(t, g.dir, "jwt.secret", testJWTSecret), Issuer: "psa", Audience: "extedge", Cookie: "psa_session"},
		Timeout:  caddy.Duration(2 * time.Second),
		UICache:  &UICacheConfig{Dir: filepath.Join(g.dir, "ui")},
		// Refusals are answered at once here: these tests check their
		// codes; pacing has its own (TestRefusalsArePaced*).
		RefusalDelay: -1,
	}
	if mutate != nil {
		mutate(h, g)
	}
	// Round-trip through JSON: what Caddy provisions is the JSON config.
	raw, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	g.h = new(Handler)
	if err := json.Unmarshal(raw, g.h); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	g.cancel = cancel
	if err := g.h.Provision(ctx); err != nil {
		t.Fatalf("provision: %v", err)
	}
	if err := g.h.Validate(); err != nil {
		t.Fatalf("validate: %v", err)
	}
	t.Cleanup(func() {
		g.h.Cleanup()
		cancel()
	})
	return g
}

// token mints an HS256 session token for claims (defaults filled in).
func token(t testing.TB, claims jwt.MapClaims) string {
	t.Helper()
	base := jwt.MapClaims{"iss": "psa", "aud": "extedge", "tenant": testTenant, "sub": "u-17",
		"email": "ann@example.com", "name": "Ann", "user_type": "internal",
		"exp": time.Now().Add(time.Hour).Unix()}
	for k, v := range claims {
		if v == nil {
			delete(base, k)
			continue
		}
		base[k] = v
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, base).SignedString([]byte(testJWTSecret))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

var nextNotCalled = caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
	w.WriteHeader(http.StatusTeapot)
	return nil
})

// do serves r and returns the recorded response.
func (g *gateway) do(r *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	if err := g.h.ServeHTTP(w, r, nextNotCalled); err != nil {
		panic(err)
	}
	return w
}

// get builds a request with the default token.
func (g *gateway) req(t testing.TB, method, path string, body string) *http.Request {
	var r *http.Request
	if body == "" {
		r = httptest.NewRequest(method, path, nil)
	} else {
		r = httptest.NewRequest(method, path, strings.NewReader(body))
	}
	r.Header.Set("Authorization", "Bearer "+token(t, nil))
	return r
}

// errorCode decodes a gateway error body and checks its invariants.
func errorCode(t testing.TB, w *httptest.ResponseRecorder) string {
	t.Helper()
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("error content-type = %q", ct)
	}
	if cc := w.Header().Get("Cache-Control"); cc != "no-store" {
		t.Errorf("error cache-control = %q", cc)
	}
	var eb struct {
		Error struct {
			Code, Message string
			RequestID     string `json:"request_id"`
		} `json:"error"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &eb); err != nil {
		t.Fatalf("error body %q: %v", w.Body.String(), err)
	}
	if eb.Error.RequestID == "" || eb.Error.Message == "" {
		t.Errorf("error body lacks request_id or message: %s", w.Body.String())
	}
	return eb.Error.Code
}
