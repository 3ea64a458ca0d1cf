package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/extedge/extedge/internal/execapi"
	"github.com/extedge/extedge/internal/registryapi"
	"github.com/extedge/extedge/internal/testenv"
	"github.com/extedge/extedge/runnerd/engine"
	"github.com/extedge/extedge/runnerd/hostapi"
	hostlog "github.com/extedge/extedge/runnerd/hostapi/log"
	hostmetrics "github.com/extedge/extedge/runnerd/hostapi/metrics"
	"github.com/extedge/extedge/runnerd/runnertest/guests"
)

const testToken = "runner-secret-token"

// staticModules serves WAT guests compiled up front, one per content hash.
// It stands in for the bundle cache (tested in runnerd/cache), so these
// tests exercise the HTTP API and the engine only. A hash mapped to an
// error returns it, to drive bundle_unavailable, integrity_failed and
// internal through the API.
type staticModules struct {
	mods map[string]*engine.Module
	errs map[string]error
}

func (s *staticModules) Module(ctx context.Context, hash, ext, handler string) (*engine.Module, string, error) {
	if err, ok := s.errs[hash]; ok {
		return nil, "", err
	}
	m, ok := s.mods[hash]
	if !ok {
		return nil, "", &execapi.Error{Code: execapi.CodeBundleUnavailable, Message: "no such bundle"}
	}
	return m, "handler", nil
}

func (s *staticModules) Warmup(ctx context.Context, hash string) error {
	_, _, err := s.Module(ctx, hash, "", "")
	return err
}

func hashOf(name string) string {
	h := fmt.Sprintf("%x", []byte(name))
	return "sha256:" + (h + strings.Repeat("0", 64))[:64]
}

type fixture struct {
	srv    *Server
	client *http.Client
	base   string
	socket string
}

func newFixture(t *testing.T, mutate func(*Config)) *fixture {
	t.Helper()
	set, err := hostapi.NewSet(hostlog.Capability{}, hostmetrics.Capability{})
	if err != nil {
		t.Fatal(err)
	}
	eng, err := engine.New(engine.Config{Fuel: true}, set)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(eng.Close)
	src := &staticModules{mods: map[string]*engine.Module{}, errs: map[string]error{
		hashOf("unavailable"): &execapi.Error{Code: execapi.CodeBundleUnavailable, Message: "fetching bundle failed"},
		hashOf("tampered"):    &execapi.Error{Code: execapi.CodeIntegrityFailed, Message: "content hash mismatch"},
		hashOf("broken"):      errors.New("open /var/lib/secret/path: permission denied"),
	}}
	for _, g := range []string{"ok.wat", "echo.wat", "loop.wat", "membomb.wat", "recursion.wat", "nonzero.wat", "oob_response.wat", "log_flood.wat", "counter.wat"} {
		m, err := eng.Compile(guests.MustWasm(t, g, nil))
		if err != nil {
			t.Fatal(err)
		}
		src.mods[hashOf(g)] = m
	}
	metricReq := `{"name":"syncs","value":2,"kind":"counter","labels":{"result":"ok"}}`
	metricGuest := guests.HostCallWith(t, map[string]string{"IMPORT": "metrics.emit", "REPEAT": "3",
		"REQ": guests.Escape(metricReq), "REQLEN": fmt.Sprint(len(metricReq))})
	if m, err := eng.Compile(metricGuest); err == nil {
		src.mods[hashOf("metric")] = m
	} else {
		t.Fatal(err)
	}
	cfg := Config{Token: testToken, Engine: eng, Modules: src, QueueWait: 50 * time.Millisecond}
	if mutate != nil {
		mutate(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "runner.sock")
	l, err := Listen("unix://" + sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, s, []net.Listener{l}, ServeOptions{Drain: s.Drain, Grace: 5 * time.Second}) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return &fixture{srv: s, client: unixClient(sock), base: "http://runner", socket: sock}
}

func unixClient(sock string) *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
		MaxIdleConnsPerHost: 16,
	}}
}

func envelope(guest, tenant string) map[string]any {
	return map[string]any{
		"context": map[string]any{"request_id": "req-1", "tenant_id": tenant, "extension_id": "com.acme.test",
			"install_id": "inst-1", "version_id": "v1", "content_hash": hashOf(guest)},
		"http":         map[string]any{"method": "GET", "path": "/x", "query": map[string]string{}, "headers": map[string]string{}, "body_b64": nil},
		"endpoint":     map[string]any{"method": "GET", "path": "/x", "handler": "dist/handlers/x", "params": map[string]string{}},
		"limits":       map[string]any{"timeout_ms": 1000},
		"capabilities": []string{},
	}
}

func (f *fixture) post(t *testing.T, path, token string, body any) (int, []byte) {
	t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case []byte:
		r = bytes.NewReader(b)
	default:
		buf, _ := json.Marshal(b)
		r = bytes.NewReader(buf)
	}
	req, _ := http.NewRequest(http.MethodPost, f.base+path, r)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := f.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

func errCode(t *testing.T, body []byte) string {
	t.Helper()
	var eb execapi.ErrorBody
	if err := json.Unmarshal(body, &eb); err != nil {
		t.Fatalf("error body %q is not JSON: %v", body, err)
	}
	return eb.Error.Code
}

func TestExecuteErrorCodes(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.MaxRequestBytes = 4096 })
	with := func(guest string, edit func(map[string]any)) map[string]any {
		e := envelope(guest, "tenant-a")
		if edit != nil {
			edit(e)
		}
		return e
	}
	big := strings.Repeat("x", 5000)
	tests := []struct {
		name   string
		token  string
		body   any
		status int
		code   string
	}{
		{"missing token is unauthorized", "", with("ok.wat", nil), 401, execapi.CodeUnauthorized},
		{"wrong token is unauthorized", "runner-secret-tokem", with("ok.wat", nil), 401, execapi.CodeUnauthorized},
		{"malformed json is a bad request", testToken, []byte(`{"context":`), 400, execapi.CodeBadRequest},
		{"bad content hash is a bad request", testToken, with("ok.wat", func(e map[string]any) {
			e["context"].(map[string]any)["content_hash"] = "sha256:ABC"
		}), 400, execapi.CodeBadRequest},
		{"unknown capability is a bad request", testToken, with("ok.wat", func(e map[string]any) {
			e["capabilities"] = []string{"fs.write"}
		}), 400, execapi.CodeBadRequest},
		{"bad tenant id is a bad request", testToken, with("ok.wat", func(e map[string]any) {
			e["context"].(map[string]any)["tenant_id"] = "a/b"
		}), 400, execapi.CodeBadRequest},
		{"guest request over the limit is payload too large", testToken, with("ok.wat", func(e map[string]any) {
			e["http"].(map[string]any)["headers"] = map[string]string{"x-ext-big": big}
		}), 413, execapi.CodePayloadTooLarge},
		{"envelope over the limit is payload too large", testToken, []byte(`{"x":"` + strings.Repeat("y", 4096+1<<20) + `"}`), 413, execapi.CodePayloadTooLarge},
		{"unfetchable bundle is bundle unavailable", testToken, with("unavailable", nil), 502, execapi.CodeBundleUnavailable},
		{"tampered bundle is integrity failed", testToken, with("tampered", nil), 502, execapi.CodeIntegrityFailed},
		{"out-of-bounds response is a bad handler", testToken, with("oob_response.wat", nil), 502, execapi.CodeBadHandler},
		{"non-zero return is a handler error", testToken, with("nonzero.wat", nil), 502, execapi.CodeHandlerError},
		{"deep recursion is a trap", testToken, with("recursion.wat", nil), 502, execapi.CodeTrap},
		{"memory bomb is a memory limit", testToken, with("membomb.wat", func(e map[string]any) {
			e["limits"] = map[string]any{"memory_mb": 8}
		}), 502, execapi.CodeMemoryLimit},
		{"fuel running out is fuel exhausted", testToken, with("loop.wat", func(e map[string]any) {
			e["limits"] = map[string]any{"fuel": 100000}
		}), 502, execapi.CodeFuelExhausted},
		{"infinite loop is a timeout", testToken, with("loop.wat", func(e map[string]any) {
			e["limits"] = map[string]any{"timeout_ms": 100}
		}), 504, execapi.CodeTimeout},
		{"unexpected failure is internal without details", testToken, with("broken", nil), 500, execapi.CodeInternal},
	}
	for _, reuse := range []bool{false, true} {
		for _, tt := range tests {
			name := tt.name
			body := tt.body
			if reuse {
				// The same misbehaviour with instance reuse on (SPEC §6.5),
				// twice: a failed instance is never kept for the next call.
				name += " with instance reuse"
				if env, ok := body.(map[string]any); ok {
					withReuse := map[string]any{"instance_reuse": map[string]any{}}
					for k, v := range env {
						withReuse[k] = v
					}
					body = withReuse
				}
			}
			t.Run(name, func(t *testing.T) {
				for range 1 + btoi(reuse) {
					status, out := f.post(t, execapi.PathExecute, tt.token, body)
					if status != tt.status || errCode(t, out) != tt.code {
						t.Fatalf("got %d %s, want %d %s", status, out, tt.status, tt.code)
					}
					if strings.Contains(string(out), "/var/lib") {
						t.Errorf("error body leaks internals: %s", out)
					}
				}
			})
		}
	}
	if st := f.srv.cfg.Engine.ReuseStats(); st.Hits != 0 || st.Idle != 0 {
		t.Fatalf("a failed instance was reused or kept: %+v", st)
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestExecuteSuccess(t *testing.T) {
	f := newFixture(t, nil)
	status, body := f.post(t, execapi.PathExecute, testToken, envelope("ok.wat", "tenant-a"))
	if status != 200 {
		t.Fatalf("status %d: %s", status, body)
	}
	var resp execapi.Response
	if err := json.Unmarshal(body, &resp); err != nil {
		t.Fatal(err)
	}
	if resp.Status != 201 || string(resp.Body) != "hello" || resp.Headers["content-type"] != "text/plain" {
		t.Fatalf("response %+v", resp)
	}

	t.Run("a client that accepts the framed reply gets the same answer framed", func(t *testing.T) {
		buf, _ := json.Marshal(envelope("ok.wat", "tenant-a"))
		req, _ := http.NewRequest(http.MethodPost, f.base+execapi.PathExecute, bytes.NewReader(buf))
		req.Header.Set("Authorization", "Bearer "+testToken)
		req.Header.Set("Accept", execapi.ContentTypeRawReply+", application/json")
		r, err := f.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Body.Close()
		raw, _ := io.ReadAll(r.Body)
		if r.StatusCode != 200 || r.Header.Get("Content-Type") != execapi.ContentTypeRawReply {
			t.Fatalf("status %d, content type %q: %s", r.StatusCode, r.Header.Get("Content-Type"), raw)
		}
		framed, err := execapi.ParseRawReply(raw)
		if err != nil {
			t.Fatal(err)
		}
		if framed.Status != resp.Status || string(framed.Body) != string(resp.Body) || !reflect.DeepEqual(framed.Headers, resp.Headers) {
			t.Fatalf("framed %+v, JSON %+v", framed, resp)
		}
	})
	t.Run("guest sees the guest request without limits, grants or secrets", func(t *testing.T) {
		env := envelope("echo.wat", "tenant-a")
		env["secret_envelope"] = "ev1.sealed"
		env["egress_allowlist"] = []string{"api.vendor.com"}
		env["user"] = map[string]string{"id": "u-1"}
		status, body := f.post(t, execapi.PathExecute, testToken, env)
		if status != 200 {
			t.Fatalf("status %d: %s", status, body)
		}
		var resp execapi.Response
		_ = json.Unmarshal(body, &resp)
		var got []map[string]json.RawMessage
		if err := json.Unmarshal(resp.Body, &got); err != nil || len(got) != 1 {
			t.Fatalf("echo body %s", resp.Body)
		}
		for _, k := range []string{"limits", "capabilities", "egress_allowlist", "secret_envelope", "user"} {
			if _, ok := got[0][k]; ok {
				t.Errorf("guest request contains %q", k)
			}
		}
		for _, k := range []string{"context", "http", "endpoint"} {
			if _, ok := got[0][k]; !ok {
				t.Errorf("guest request lacks %q", k)
			}
		}
	})
	t.Run("user is passed only with user.read", func(t *testing.T) {
		env := envelope("echo.wat", "tenant-a")
		env["user"] = map[string]string{"id": "u-1"}
		env["providers"] = []string{"cap:user.read"}
		delete(env, "capabilities")
		_, body := f.post(t, execapi.PathExecute, testToken, env)
		var resp execapi.Response
		_ = json.Unmarshal(body, &resp)
		if !strings.Contains(string(resp.Body), `"user":{"id":"u-1"}`) {
			t.Fatalf("guest request lacks the user: %s", resp.Body)
		}
	})
}

func TestConcurrencyLimitedAfterBoundedWait(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.MaxConcurrency = 4; c.MaxConcurrencyPerTenant = 1 })
	loop := envelope("loop.wat", "tenant-a")
	loop["limits"] = map[string]any{"timeout_ms": 1000}
	started := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		close(started)
		f.post(t, execapi.PathExecute, testToken, loop)
	}()
	<-started
	// Wait until the loop holds the tenant's slot.
	deadline := time.Now().Add(2 * time.Second)
	for f.srv.limits.inFlight() == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	begin := time.Now()
	status, body := f.post(t, execapi.PathExecute, testToken, envelope("ok.wat", "tenant-a"))
	waited := time.Since(begin)
	if status != 429 || errCode(t, body) != execapi.CodeConcurrencyLimited {
		t.Fatalf("got %d %s, want 429 concurrency_limited", status, body)
	}
	if waited < 50*time.Millisecond {
		t.Errorf("refused after %v, before the 50ms bounded wait", waited)
	}
	wg.Wait()
	if n := f.srv.limits.trackedTenants(); n != 0 {
		t.Errorf("limiter still tracks %d tenants after all calls ended", n)
	}
}

func TestLoopingTenantDoesNotBlockAnotherTenant(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.MaxConcurrency = 4; c.MaxConcurrencyPerTenant = 2 })
	loop := envelope("loop.wat", "tenant-a")
	loop["limits"] = map[string]any{"timeout_ms": 1500}
	var wg sync.WaitGroup
	codes := make(chan string, 6)
	for i := 0; i < 6; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, body := f.post(t, execapi.PathExecute, testToken, loop)
			codes <- errCode(t, body)
		}()
	}
	deadline := time.Now().Add(2 * time.Second)
	for f.srv.limits.inFlight() < 2 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	// Tenant B is served promptly while tenant A's loops hold their slots.
	for i := 0; i < 5; i++ {
		begin := time.Now()
		status, body := f.post(t, execapi.PathExecute, testToken, envelope("ok.wat", "tenant-b"))
		if status != 200 {
			t.Fatalf("tenant b got %d %s", status, body)
		}
		if el := time.Since(begin); el > 500*time.Millisecond {
			t.Fatalf("tenant b waited %v behind tenant a", el)
		}
	}
	wg.Wait()
	close(codes)
	count := map[string]int{}
	for c := range codes {
		count[c]++
	}
	if count[execapi.CodeTimeout] != 2 || count[execapi.CodeConcurrencyLimited] != 4 {
		t.Fatalf("tenant a outcomes %v, want 2 timeouts and 4 concurrency_limited", count)
	}
}

// TestExecuteWithInstanceReuse: an envelope with instance_reuse is served
// by the install's kept instance (the counter guest counts on), another
// install or an envelope without it gets a fresh one, and /metrics counts
// hits and misses without any tenant label.
func TestExecuteWithInstanceReuse(t *testing.T) {
	f := newFixture(t, nil)
	call := func(tenant, install string, reuse any) string {
		t.Helper()
		env := envelope("counter.wat", tenant)
		env["context"].(map[string]any)["install_id"] = install
		if reuse != nil {
			env["instance_reuse"] = reuse
		}
		st, body := f.post(t, execapi.PathExecute, testToken, env)
		if st != 200 {
			t.Fatalf("status %d: %s", st, body)
		}
		var r execapi.Response
		if err := json.Unmarshal(body, &r); err != nil {
			t.Fatal(err)
		}
		return string(r.Body)
	}
	on := map[string]any{}
	for i, tt := range []struct {
		tenant, install string
		reuse           any
		want            string
	}{
		{"tenant-a", "inst-a", on, "1"},
		{"tenant-a", "inst-a", on, "2"},
		{"tenant-a", "inst-a", nil, "1"},    // no reuse: fresh
		{"tenant-b", "inst-a", on, "1"},     // same install id, other tenant
		{"tenant-a", "inst-other", on, "1"}, // other install
		{"tenant-a", "inst-a", on, "3"},     // still the kept one
		{"tenant-c", "inst-c", map[string]any{"max_calls": 2}, "1"},
		{"tenant-c", "inst-c", map[string]any{"max_calls": 2}, "2"},
		{"tenant-c", "inst-c", map[string]any{"max_calls": 2}, "1"}, // recycled
	} {
		if got := call(tt.tenant, tt.install, tt.reuse); got != tt.want {
			t.Fatalf("call %d (%s/%s): count %s, want %s", i, tt.tenant, tt.install, got, tt.want)
		}
	}
	resp, err := f.client.Get(f.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	text, _ := io.ReadAll(resp.Body)
	for _, want := range []string{"extedge_runner_reuse_hits_total 3", "extedge_runner_reuse_misses_total 5", "extedge_runner_reuse_recycled_total 1"} {
		if !strings.Contains(string(text), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if strings.Contains(string(text), "tenant-a") {
		t.Error("metrics carry a tenant id")
	}
}

func TestHealthReadyAndMetrics(t *testing.T) {
	ready := errors.New("cache dir not writable")
	var mu sync.Mutex
	f := newFixture(t, func(c *Config) {
		c.Ready = func() error { mu.Lock(); defer mu.Unlock(); return ready }
	})
	get := func(path string) (int, string) {
		resp, err := f.client.Get(f.base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if resp, err := f.client.Get(f.base + execapi.PathExecute); err != nil || resp.StatusCode != 405 || resp.Header.Get("Allow") != "POST" {
		t.Errorf("GET /v1/execute: %v %v", resp.StatusCode, err)
	}
	if st, _ := get("/nope"); st != 404 {
		t.Errorf("unknown path %d", st)
	}
	if st, _ := get("/healthz"); st != 200 {
		t.Errorf("healthz %d", st)
	}
	if st, _ := get("/readyz"); st != 503 {
		t.Errorf("readyz %d while not ready", st)
	}
	mu.Lock()
	ready = nil
	mu.Unlock()
	if st, _ := get("/readyz"); st != 200 {
		t.Errorf("readyz %d when ready", st)
	}
	f.post(t, execapi.PathExecute, testToken, envelope("ok.wat", "tenant-secret-id"))
	st, text := get("/metrics")
	if st != 200 || !strings.Contains(text, `extedge_runner_invocations_total{outcome="ok"} 1`) {
		t.Fatalf("metrics %d:\n%s", st, text)
	}
	if strings.Contains(text, "tenant-secret-id") {
		t.Error("metrics carry a tenant id")
	}
}

func TestWarmup(t *testing.T) {
	f := newFixture(t, nil)
	status, body := f.post(t, execapi.PathWarmup, testToken, execapi.WarmupRequest{ContentHashes: []string{hashOf("ok.wat")}})
	if status != 200 {
		t.Fatalf("warmup %d %s", status, body)
	}
	status, body = f.post(t, execapi.PathWarmup, testToken, execapi.WarmupRequest{ContentHashes: []string{hashOf("tampered")}})
	if status != 502 || !strings.Contains(string(body), execapi.CodeIntegrityFailed) {
		t.Fatalf("warmup of a tampered bundle: %d %s", status, body)
	}
	status, body = f.post(t, execapi.PathWarmup, testToken, execapi.WarmupRequest{ContentHashes: []string{"nope"}})
	if status != 400 || errCode(t, body) != execapi.CodeBadRequest {
		t.Fatalf("warmup of a bad hash: %d %s", status, body)
	}
	if status, body = f.post(t, execapi.PathWarmup, "", execapi.WarmupRequest{}); status != 401 {
		t.Fatalf("warmup without token: %d %s", status, body)
	}
}

func TestUnixSocket(t *testing.T) {
	dir := t.TempDir()
	t.Run("socket is created mode 0660", func(t *testing.T) {
		sock := filepath.Join(dir, "a.sock")
		l, err := Listen("unix://" + sock)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		fi, err := os.Stat(sock)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o660 {
			t.Fatalf("mode %v, want 0660", fi.Mode().Perm())
		}
	})
	t.Run("stale socket file is replaced", func(t *testing.T) {
		sock := filepath.Join(dir, "stale.sock")
		l, err := net.Listen("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		l.(*net.UnixListener).SetUnlinkOnClose(false)
		l.Close() // leaves the file behind, like a killed runner
		if _, err := os.Stat(sock); err != nil {
			t.Fatal("stale socket file not left behind")
		}
		l2, err := Listen("unix://" + sock)
		if err != nil {
			t.Fatalf("stale socket not replaced: %v", err)
		}
		l2.Close()
	})
	t.Run("socket in use is refused", func(t *testing.T) {
		sock := filepath.Join(dir, "live.sock")
		l, err := Listen("unix://" + sock)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		if _, err := Listen("unix://" + sock); err == nil {
			t.Fatal("second listener took over a live socket")
		}
	})
	t.Run("regular file is not removed", func(t *testing.T) {
		p := filepath.Join(dir, "file")
		os.WriteFile(p, []byte("data"), 0o600)
		if _, err := Listen("unix://" + p); err == nil {
			t.Fatal("listened over a regular file")
		}
		if b, _ := os.ReadFile(p); string(b) != "data" {
			t.Fatal("regular file was touched")
		}
	})
	t.Run("tcp listener serves too", func(t *testing.T) {
		l, err := Listen("tcp://127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		l.Close()
	})
	t.Run("relative path and unknown scheme are refused", func(t *testing.T) {
		for _, a := range []string{"unix://rel.sock", "http://x:1", "tcp://nohostport"} {
			if _, err := Listen(a); err == nil {
				t.Errorf("Listen(%q) succeeded", a)
			}
		}
	})
}

func TestDrainFinishesCallsInFlight(t *testing.T) {
	eng := logEngine(t, engine.Config{})
	m, _ := eng.Compile(guests.MustWasm(t, "loop.wat", nil))
	s, err := New(Config{Token: testToken, Engine: eng, Modules: &staticModules{mods: map[string]*engine.Module{hashOf("loop.wat"): m}}})
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "drain.sock")
	l, err := Listen("unix://" + sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, s, []net.Listener{l}, ServeOptions{Drain: s.Drain, Grace: 5 * time.Second}) }()
	f := &fixture{srv: s, client: unixClient(sock), base: "http://runner"}
	env := envelope("loop.wat", "tenant-a")
	env["limits"] = map[string]any{"timeout_ms": 300}
	got := make(chan int, 1)
	go func() {
		st, _ := f.post(t, execapi.PathExecute, testToken, env)
		got <- st
	}()
	deadline := time.Now().Add(2 * time.Second)
	for s.limits.inFlight() == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	cancel() // SIGTERM
	if st := <-got; st != 504 {
		t.Fatalf("call in flight during drain got %d, want its own 504 reply", st)
	}
	if err := <-done; err != nil {
		t.Fatalf("drain: %v", err)
	}
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Error("socket file left after drain")
	}
}

type recordSink struct {
	mu   sync.Mutex
	recs []registryapi.ExecutionRecord
}

func (r *recordSink) Add(rec registryapi.ExecutionRecord) {
	r.mu.Lock()
	r.recs = append(r.recs, rec)
	r.mu.Unlock()
}

type logSink struct {
	mu    sync.Mutex
	lines []hostapi.LogLine
	env   []*execapi.Request
}

func (l *logSink) Publish(env *execapi.Request, lines []hostapi.LogLine) {
	l.mu.Lock()
	l.lines = append(l.lines, lines...)
	l.env = append(l.env, env)
	l.mu.Unlock()
}

func TestTelemetry(t *testing.T) {
	recs, logs := &recordSink{}, &logSink{}
	f := newFixture(t, func(c *Config) { c.Records, c.Logs = recs, logs })
	f.post(t, execapi.PathExecute, testToken, envelope("ok.wat", "tenant-a"))
	f.post(t, execapi.PathExecute, testToken, envelope("log_flood.wat", "tenant-a"))
	f.post(t, execapi.PathExecute, testToken, envelope("nonzero.wat", "tenant-a"))
	f.post(t, execapi.PathExecute, testToken, envelope("metric", "tenant-a"))
	f.post(t, execapi.PathExecute, "", envelope("ok.wat", "tenant-a")) // unauthorized: no record
	bad := envelope("ok.wat", "tenant-a")
	bad["context"].(map[string]any)["content_hash"] = "nope"
	f.post(t, execapi.PathExecute, testToken, bad) // invalid: no record
	f.post(t, execapi.PathExecute, testToken, envelope("tampered", "tenant-a"))

	t.Run("every validated call leaves one execution record", func(t *testing.T) {
		if len(recs.recs) != 5 {
			t.Fatalf("%d records, want 5", len(recs.recs))
		}
		if recs.recs[4].Outcome != execapi.CodeIntegrityFailed {
			t.Fatalf("refused call recorded as %q", recs.recs[4].Outcome)
		}
		r := recs.recs[0]
		if r.Outcome != "ok" || r.HTTPStatus != 201 || r.TenantID != "tenant-a" || r.ContentHash != hashOf("ok.wat") ||
			r.RequestID != "req-1" || r.Endpoint != "GET /x" || r.PeakMemoryBytes == 0 || r.FinishedAt.Before(r.StartedAt) {
			t.Fatalf("record %+v", r)
		}
		if recs.recs[2].Outcome != execapi.CodeHandlerError {
			t.Fatalf("failed call recorded as %q", recs.recs[2].Outcome)
		}
	})
	t.Run("guest log lines reach the debug sink within the budget", func(t *testing.T) {
		total := 0
		for _, l := range logs.lines {
			total += len(l.Message)
		}
		if total != hostapi.DefaultMaxLogBytes || logs.env[0].Context.ExtensionID != "com.acme.test" {
			t.Fatalf("%d log bytes published", total)
		}
	})
	t.Run("guest metrics are exported with a prefix and no tenant label", func(t *testing.T) {
		resp, err := f.client.Get(f.base + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		text := string(b)
		if !strings.Contains(text, `extedge_guest_syncs_total{extension="com.acme.test",result="ok"} 6`) {
			t.Fatalf("guest counter missing:\n%s", text)
		}
		if strings.Contains(text, "tenant-a") {
			t.Fatal("metrics carry a tenant id")
		}
	})
}

func TestGuestMetricCardinalityIsCapped(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := newMetrics(reg, newLimiter(1, 1, 1, time.Millisecond), 100, nil)
	if err != nil {
		t.Fatal(err)
	}
	var samples []hostapi.Metric
	for i := 0; i < maxGuestSeriesPerVec+50; i++ {
		samples = append(samples, hostapi.Metric{Name: "hits", Kind: "counter", Value: 1, Labels: map[string]string{"id": fmt.Sprint(i)}})
	}
	samples = append(samples,
		hostapi.Metric{Name: "hits", Kind: "gauge", Value: 1, Labels: map[string]string{"id": "x"}}, // kind conflict
		hostapi.Metric{Name: "bad-name", Kind: "gauge", Value: 1},
		hostapi.Metric{Name: "other", Kind: "gauge", Value: 1, Labels: map[string]string{"__name__": "x"}},
		hostapi.Metric{Name: "other", Kind: "gauge", Value: 1, Labels: map[string]string{"extension": "com.evil.x"}}, // reserved
	)
	m.observeGuestMetrics("com.acme.test", samples)
	if n := len(m.guestVecs["extedge_guest_hits"].series); n != maxGuestSeriesPerVec {
		t.Fatalf("%d series, want the cap %d", n, maxGuestSeriesPerVec)
	}
	var dropped dto.Metric
	m.guestDropped.Write(&dropped)
	if got := dropped.GetCounter().GetValue(); got != 54 {
		t.Fatalf("dropped %v samples, want 54", got)
	}
}

// TestGuestMetricsExtensionLabelIsBounded: guest metrics carry the calling
// extension's name, for at most MaxMetricExtensions extensions per
// process; later extensions share "_other".
func TestGuestMetricsExtensionLabelIsBounded(t *testing.T) {
	const maxExt = 2
	f := newFixture(t, func(c *Config) { c.MaxMetricExtensions = maxExt })
	for _, ext := range []string{"com.acme.a", "com.acme.b", "com.acme.c", "com.acme.a", "com.acme.d"} {
		env := envelope("metric", "tenant-a")
		env["context"].(map[string]any)["extension_id"] = ext
		if st, body := f.post(t, execapi.PathExecute, testToken, env); st != 200 {
			t.Fatalf("%s: %d %s", ext, st, body)
		}
	}
	resp, err := f.client.Get(f.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	text := string(b)
	// Each call emits syncs 3 times by 2.
	for _, want := range []string{
		`extedge_guest_syncs_total{extension="com.acme.a",result="ok"} 12`,
		`extedge_guest_syncs_total{extension="com.acme.b",result="ok"} 6`,
		`extedge_guest_syncs_total{extension="_other",result="ok"} 12`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	values := regexp.MustCompile(`extedge_guest_syncs_total\{extension="([^"]+)"`).FindAllStringSubmatch(text, -1)
	if len(values) != maxExt+1 {
		t.Errorf("%d extension values %v, want %d names and _other", len(values), values, maxExt)
	}
	for _, ext := range []string{"com.acme.c", "com.acme.d"} {
		if strings.Contains(text, ext) {
			t.Errorf("%s has its own label beyond the cap", ext)
		}
	}
}

// TestDrainDelayKeepsServingAndClosesConnections: during DrainDelay the
// listener serves (on kept-alive and new connections alike), /readyz
// answers 503, and replies close their connection; after it the listener
// is gone.
func TestDrainDelayKeepsServingAndClosesConnections(t *testing.T) {
	eng := logEngine(t, engine.Config{})
	s, err := New(Config{Token: testToken, Engine: eng, Modules: &staticModules{}})
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "drain.sock")
	l, err := Listen("unix://" + sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	const delay = time.Second
	go func() {
		done <- Serve(ctx, s, []net.Listener{l}, ServeOptions{Drain: s.Drain, DrainDelay: delay, Grace: 5 * time.Second})
	}()
	client := unixClient(sock)
	get := func(path string) *http.Response {
		t.Helper()
		resp, err := client.Get("http://runner" + path)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	if r := get(execapi.PathReadyz); r.StatusCode != 200 || r.Close {
		t.Fatalf("before the drain: readyz %d, close %v", r.StatusCode, r.Close)
	}
	cancel()
	started := time.Now()
	testenv.WaitFor(t, time.Second, func() error {
		if r := get(execapi.PathReadyz); r.StatusCode != 503 {
			return fmt.Errorf("readyz %d", r.StatusCode)
		}
		return nil
	})
	if r := get(execapi.PathHealthz); r.StatusCode != 200 || !r.Close {
		t.Fatalf("during the drain delay: healthz %d, close %v; want 200 and Connection: close", r.StatusCode, r.Close)
	}
	if time.Since(started) >= delay {
		t.Fatal("checks outlasted the drain delay")
	}
	if err := <-done; err != nil {
		t.Fatalf("serve: %v", err)
	}
	if since := time.Since(started); since < delay {
		t.Fatalf("serve returned %v after the context ended, before the drain delay %v", since, delay)
	}
	if _, err := client.Get("http://runner" + execapi.PathHealthz); err == nil {
		t.Fatal("listener still accepting after the drain")
	}
}

// TestEventDeliveryThroughExecute: the delivery worker's in-process call
// with an event runs like an API call; the guest sees the event with
// null http and endpoint, and the record carries the event id.
func TestEventDeliveryThroughExecute(t *testing.T) {
	recs := &recordSink{}
	f := newFixture(t, func(c *Config) { c.Records = recs })
	env := &execapi.Request{
		Context:      execapi.Context{RequestID: "dlv-1-1", TenantID: "tenant-a", ExtensionID: "com.acme.test", InstallID: "inst-1", VersionID: "v1", ContentHash: hashOf("echo.wat")},
		Endpoint:     execapi.Endpoint{Handler: "dist/handlers/on_update"},
		Capabilities: []string{},
		Event:        &execapi.Event{ID: "ev-1", Topic: "agreement.updated", OccurredAt: time.Now(), Payload: json.RawMessage(`{"id":"42"}`)},
	}
	resp, eerr := f.srv.Execute(context.Background(), env)
	if eerr != nil {
		t.Fatal(eerr)
	}
	var seen []map[string]json.RawMessage
	if err := json.Unmarshal(resp.Body, &seen); err != nil || len(seen) != 1 {
		t.Fatalf("echo body %s: %v", resp.Body, err)
	}
	if string(seen[0]["http"]) != "null" || string(seen[0]["endpoint"]) != "null" || !strings.Contains(string(seen[0]["event"]), `"id":"ev-1"`) {
		t.Fatalf("guest saw %s", resp.Body)
	}
	if len(recs.recs) != 1 || recs.recs[0].EventID != "ev-1" || recs.recs[0].Endpoint != "event agreement.updated" {
		t.Fatalf("records %+v", recs.recs)
	}
}

// logEngine is an engine with the log capability only, closed when the
// test ends.
func logEngine(t *testing.T, cfg engine.Config) *engine.Engine {
	t.Helper()
	set, err := hostapi.NewSet(hostlog.Capability{})
	if err != nil {
		t.Fatal(err)
	}
	eng, err := engine.New(cfg, set)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(eng.Close)
	return eng
}
