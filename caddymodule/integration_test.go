package caddymodule

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/extedge/extedge/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// These tests run a real Caddy (./cmd/caddy with this module) against a
// stub registry (httptest, registryapi contract) and stub runner processes
// (./caddymodule/internal/stubrunner, the execapi contract over Unix
// sockets). runnerd and registryd were still being written when these
// tests were; the stubs are doubles of the wire contracts, not of gateway
// code, and real processes so they can be SIGKILLed.

// stubRunnerProc is a stubrunner child process.
type stubRunnerProc struct {
	Socket string
	cmd    *exec.Cmd
	done   chan struct{}
}

func startStubRunner(t testing.TB, dir, name string, args ...string) *stubRunnerProc {
	t.Helper()
	bin := testenv.Binary(t, "./caddymodule/internal/stubrunner")
	p := &stubRunnerProc{Socket: filepath.Join(dir, name+".sock"), done: make(chan struct{})}
	p.cmd = exec.Command(bin, append([]string{"--listen", "unix://" + p.Socket, "--token", testRunnerToken}, args...)...)
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	p.cmd.Stderr = os.Stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.cmd.Wait(); close(p.done) }()
	t.Cleanup(p.kill)
	hc := unixClient(p.Socket)
	testenv.WaitFor(t, 10*time.Second, func() error {
		resp, err := hc.Get("http://runner/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	})
	return p
}

// kill SIGKILLs the runner (no graceful drain) and waits for it.
func (p *stubRunnerProc) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

func (p *stubRunnerProc) Addr() string { return "unix/" + p.Socket }

// caddySite is the Caddyfile site body for the extedge handler.
func caddySite(g *gatewayFiles, runners []string, extra string) string {
	return fmt.Sprintf(`	extedge {
		registry %s {
			token_file %s
			max_stale 30s
		}
		runners %s {
			token_file %s
			health_interval 200ms
			fail_duration 2s
		}
		auth jwt {
			secret_file %s
			issuer psa
			audience extedge
		}
		ui_cache %s
%s
	}`, g.registry.URL, g.serviceToken, strings.Join(runners, " "), g.runnerToken, g.jwtSecret, g.uiDir, extra)
}

// gatewayFiles are the files and doubles a Caddy-hosted gateway needs.
type gatewayFiles struct {
	registry                             *stubRegistry
	dir                                  string
	serviceToken, runnerToken, jwtSecret string
	uiDir                                string
	sockDir                              string
}

func newGatewayFiles(t testing.TB) *gatewayFiles {
	g := &gatewayFiles{registry: newStubRegistry(t), dir: t.TempDir()}
	g.registry.setInstall(testTenant, testExt, testInstall())
	g.serviceToken = writeFile(t, g.dir, "service.token", testServiceToken)
	g.runnerToken = writeFile(t, g.dir, "runner.token", testRunnerToken)
	g.jwtSecret = writeFile(t, g.dir, "jwt.secret", testJWTSecret)
	g.uiDir = filepath.Join(g.dir, "ui")
	d, err := os.MkdirTemp("", "egi")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	g.sockDir = d
	return g
}

func apiGet(t testing.TB, base, path string, claims jwt.MapClaims) (*http.Response, []byte, error) {
	req, _ := http.NewRequest("GET", base+path, nil)
	req.Header.Set("Authorization", "Bearer "+token(t, claims))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, b, err
}

func TestCaddyServesExtensionAPI(t *testing.T) {
	g := newGatewayFiles(t)
	r := startStubRunner(t, g.sockDir, "r0")
	c := testenv.Caddy(t, caddySite(g, []string{r.Addr()}, ""))

	resp, body, err := apiGet(t, c.URL, "/api/ext/"+testExt+"/agreements", nil)
	if err != nil || resp.StatusCode != 200 || len(body) != 64 {
		t.Fatalf("call through Caddy: %v %v %q\n%s", resp, err, body, c.Log())
	}
	if resp.Header.Get("X-Request-Id") == "" || resp.Header.Get("Content-Type") != "text/plain" {
		t.Errorf("headers %v", resp.Header)
	}
	resp, body, _ = apiGet(t, c.URL, "/api/ext/"+testExt+"/nope", nil)
	if resp.StatusCode != 404 || !strings.Contains(string(body), `"endpoint_not_found"`) {
		t.Errorf("unknown endpoint: %d %s", resp.StatusCode, body)
	}

	st, err := c.Admin("/extedge/status")
	if err != nil {
		t.Fatalf("admin status: %v %s", err, st)
	}
	var status Status
	if err := json.Unmarshal(st, &status); err != nil || len(status.Runners) != 1 || !status.Runners[0].Healthy || status.LimiterMode[0] != "memory" {
		t.Fatalf("status = %s", st)
	}
	m, err := c.Admin("/metrics")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`extedge_requests_total{code="ok",route="api"}`, `extedge_requests_total{code="endpoint_not_found",route="api"}`,
		"extedge_runner_healthy", "extedge_request_duration_seconds_bucket"} {
		if !strings.Contains(string(m), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(string(m), testTenant) {
		t.Error("a tenant id appears in metrics")
	}
}

// load runs workers issuing GETs until stop is closed and returns the
// status counts (-1: the request failed at the transport level even after
// one retry). Like a browser (RFC 9112 §9.3.1), a worker retries an
// idempotent request once when the connection broke before any response:
// during a graceful reload the old server closes idle keep-alive
// connections, which races with a request just being sent on one — that
// happens below the handler and is what the retry rule is for. Retries are
// counted in *retries.
func load(t testing.TB, base string, workers int, stop <-chan struct{}, retries *atomic.Int64) func() map[int]int {
	tok := token(t, nil)
	var mu sync.Mutex
	counts := map[int]int{}
	var wg sync.WaitGroup
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			hc := &http.Client{Timeout: 10 * time.Second}
			get := func() (int, error) {
				req, _ := http.NewRequest("GET", base+"/api/ext/"+testExt+"/agreements", nil)
				req.Header.Set("Authorization", "Bearer "+tok)
				resp, err := hc.Do(req)
				if err != nil {
					return -1, err
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				return resp.StatusCode, nil
			}
			for {
				select {
				case <-stop:
					return
				default:
				}
				code, err := get()
				if err != nil {
					if retries != nil {
						retries.Add(1)
					}
					if code, err = get(); err != nil {
						t.Logf("load: %v", err)
					}
				}
				mu.Lock()
				counts[code]++
				mu.Unlock()
			}
		}()
	}
	return func() map[int]int {
		wg.Wait()
		return counts
	}
}

func TestConfigReloadUnderLoadDropsNothing(t *testing.T) {
	g := newGatewayFiles(t)
	r := startStubRunner(t, g.sockDir, "r0")
	// Four workers of one tenant on one runner: over the default
	// tenant_concurrency (2 × runners), which this test is not about.
	const extra = "\t\ttenant_concurrency 8\n"
	c := testenv.Caddy(t, caddySite(g, []string{r.Addr()}, extra+"\t\ttimeout 5s"))
	stop := make(chan struct{})
	var retries atomic.Int64
	wait := load(t, c.URL, 4, stop, &retries)
	for i := 0; i < 6; i++ {
		time.Sleep(150 * time.Millisecond)
		// Alternate a setting so each /load is a real new config.
		if err := c.Reload(caddySite(g, []string{r.Addr()}, extra+fmt.Sprintf("\t\ttimeout %ds", 5+i%2))); err != nil {
			close(stop)
			wait()
			t.Fatalf("reload %d: %v", i, err)
		}
	}
	time.Sleep(150 * time.Millisecond)
	close(stop)
	counts := wait()
	total := 0
	for _, n := range counts {
		total += n
	}
	if counts[200] != total || total < 50 {
		t.Fatalf("status counts during reloads: %v (want all %d to be 200)\n%s", counts, total, c.Log())
	}
	// The runner pool survived the reloads (usage pool): one pool, whose
	// counter saw every request.
	st, _ := c.Admin("/extedge/status")
	var status Status
	json.Unmarshal(st, &status)
	if len(status.Runners) != 1 || status.Runners[0].Requests < int64(total) {
		t.Fatalf("after reloads status = %s, want one runner pool that counted all %d calls", st, total)
	}
	if n := g.registry.resolves.Load(); len(status.Registries) != 1 || n != 1 {
		t.Fatalf("registry cache rebuilt across reloads: %d resolves; status %s", n, st)
	}
	t.Logf("%d requests across 6 reloads, all 200 (%d connection-level retries)", total, retries.Load())
}

func TestRunnerKilledMidLoadTrafficContinues(t *testing.T) {
	g := newGatewayFiles(t)
	r0 := startStubRunner(t, g.sockDir, "r0")
	r1 := startStubRunner(t, g.sockDir, "r1")
	c := testenv.Caddy(t, caddySite(g, []string{r0.Addr(), r1.Addr()}, ""))
	// Find the runner that owns the content hash: it is the one to kill.
	resp, _, err := apiGet(t, c.URL, "/api/ext/"+testExt+"/agreements", nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("warm-up: %v %v", resp, err)
	}
	var status Status
	st, _ := c.Admin("/extedge/status")
	json.Unmarshal(st, &status)
	victim, survivor := r0, r1
	for _, rs := range status.Runners {
		if rs.Requests > 0 && rs.Address == r1.Addr() {
			victim, survivor = r1, r0
		}
	}
	stop := make(chan struct{})
	wait := load(t, c.URL, 4, stop, nil)
	time.Sleep(300 * time.Millisecond)
	victim.kill()
	killedAt := time.Now()
	time.Sleep(700 * time.Millisecond)
	close(stop)
	counts := wait()
	failed := 0
	for code, n := range counts {
		if code != 200 {
			failed += n
			if code != 502 {
				t.Errorf("%d requests got %d, want only 502 for calls in flight at the kill", n, code)
			}
		}
	}
	if failed > 4 {
		t.Errorf("%d failed requests, want at most the 4 in flight when the runner died; counts %v", failed, counts)
	}
	// After the kill everything goes to the survivor.
	for i := 0; i < 20; i++ {
		resp, _, err := apiGet(t, c.URL, "/api/ext/"+testExt+"/agreements", nil)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("request %d after kill: %v %v", i, resp, err)
		}
	}
	st, _ = c.Admin("/extedge/status")
	json.Unmarshal(st, &status)
	for _, rs := range status.Runners {
		if rs.Address == survivor.Addr() && rs.Requests == 0 {
			t.Fatalf("survivor took no traffic: %s", st)
		}
		if rs.Address == victim.Addr() && rs.Healthy {
			t.Fatalf("killed runner still healthy: %s", st)
		}
	}
	t.Logf("counts %v; killed %s at %s", counts, victim.Addr(), killedAt.Format(time.StampMilli))
}

func TestRateLimitHoldsAcrossTwoGatewaysSharingRedis(t *testing.T) {
	rds := testenv.Redis(t)
	g := newGatewayFiles(t)
	r := startStubRunner(t, g.sockDir, "r0")
	rl := fmt.Sprintf("\t\trate_limit {\n\t\t\tper_tenant 3r/m burst 3\n\t\t\tredis %s\n\t\t}", rds.URL())
	c1 := testenv.Caddy(t, caddySite(g, []string{r.Addr()}, rl))
	c2 := testenv.Caddy(t, caddySite(g, []string{r.Addr()}, rl))
	var codes []int
	for i, base := range []string{c1.URL, c2.URL, c1.URL, c2.URL} {
		resp, body, err := apiGet(t, base, "/api/ext/"+testExt+"/agreements", nil)
		if err != nil {
			t.Fatal(err)
		}
		codes = append(codes, resp.StatusCode)
		if i == 3 {
			if resp.StatusCode != 429 || !strings.Contains(string(body), `"rate_limited"`) || resp.Header.Get("Retry-After") == "" {
				t.Fatalf("4th call across two gateways: %d %s Retry-After=%q", resp.StatusCode, body, resp.Header.Get("Retry-After"))
			}
		}
	}
	if codes[0] != 200 || codes[1] != 200 || codes[2] != 200 {
		t.Fatalf("codes %v, want 200 200 200 429", codes)
	}
	st, _ := c1.Admin("/extedge/status")
	if !strings.Contains(string(st), `"redis"`) {
		t.Errorf("limiter mode not redis: %s", st)
	}
}

func TestRedisDownFallsBackToMemoryLimits(t *testing.T) {
	rds := testenv.Redis(t)
	g := newGateway(t, func(h *Handler, gw *gateway) {
		h.RateLimit = &RateLimitConfig{PerTenant: &RateSpec{Requests: 1, Per: caddyMinute, Burst: 2}, Redis: rds.URL()}
	})
	rds.Stop()
	var codes []int
	for i := 0; i < 3; i++ {
		codes = append(codes, g.do(g.req(t, "GET", "/api/ext/"+testExt+"/agreements", "")).Code)
	}
	if codes[0] != 200 || codes[1] != 200 || codes[2] != 429 {
		t.Fatalf("codes with Redis down = %v, want in-memory limits 200 200 429", codes)
	}
	if g.h.state.limiter.redis.Fallbacks() == 0 {
		t.Fatal("fallback not counted")
	}
}

func TestRegistryDownServesCachedInstallsUntilStalenessBound(t *testing.T) {
	g := newGateway(t, func(h *Handler, gw *gateway) {
		h.Registry.CacheTTL = caddyMillis(50)
		h.Registry.MaxStale = caddyMillis(1500)
	})
	if w := g.do(g.req(t, "GET", "/api/ext/"+testExt+"/agreements", "")); w.Code != 200 {
		t.Fatalf("warm-up %d", w.Code)
	}
	g.registry.down.Store(true)
	downAt := time.Now()
	time.Sleep(100 * time.Millisecond) // past the TTL: every call now tries the registry
	if w := g.do(g.req(t, "GET", "/api/ext/"+testExt+"/agreements", "")); w.Code != 200 {
		t.Fatalf("cached install not served while the registry is down: %d %s", w.Code, w.Body.String())
	}
	var last int
	testenv.WaitFor(t, 5*time.Second, func() error {
		w := g.do(g.req(t, "GET", "/api/ext/"+testExt+"/agreements", ""))
		last = w.Code
		if w.Code == 200 {
			return errors.New("still served")
		}
		if code := errorCode(t, w); code != "registry_unavailable" {
			t.Fatalf("after the staleness bound: %d %s", w.Code, code)
		}
		return nil
	})
	if el := time.Since(downAt); el < 1400*time.Millisecond {
		t.Fatalf("failed closed after %v, before the 1.5s staleness bound (status %d)", el, last)
	}
	g.registry.down.Store(false)
	if w := g.do(g.req(t, "GET", "/api/ext/"+testExt+"/agreements", "")); w.Code != 200 {
		t.Fatalf("registry back, still failing: %d", w.Code)
	}
}

// unixClient is an HTTP client whose every connection goes to sock.
func unixClient(sock string) *http.Client {
	return &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
	}}
}
