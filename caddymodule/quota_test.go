package caddymodule

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/extedge/extedge/internal/execapi"
	"github.com/extedge/extedge/internal/registryapi"
	"github.com/extedge/extedge/internal/testenv"
)

// Install quotas (§7.7, §17): the counters hold across gateway pods when
// rate_limit has a Redis, and fall back to each process's own when it
// fails. Two real Caddy processes sharing one Redis stand for two pods.

// quotaInstall is testInstall with its own install id and quotas.
func quotaInstall(id string, q registryapi.Quotas) *registryapi.Resolved {
	inst := testInstall()
	inst.InstallID = id
	inst.Quotas = &q
	return inst
}

// redisOnly is a rate_limit block that only names the Redis (no request
// limits), so every Redis round trip in these tests is a quota's.
func redisOnly(rds *testenv.RedisServer) string {
	return fmt.Sprintf("\t\trate_limit {\n\t\t\tredis %s\n\t\t}", rds.URL())
}

// quotaRefusal checks a quota_exceeded answer.
func quotaRefusal(t *testing.T, what string, resp *http.Response, body []byte) {
	t.Helper()
	if resp.StatusCode != 429 || !strings.Contains(string(body), `"quota_exceeded"`) || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("%s: %d %s Retry-After=%q, want 429 quota_exceeded with Retry-After", what, resp.StatusCode, body, resp.Header.Get("Retry-After"))
	}
}

func TestQuotaInvocationsHoldAcrossTwoGatewaysSharingRedis(t *testing.T) {
	rds := testenv.Redis(t)
	g := newGatewayFiles(t)
	g.registry.setInstall(testTenant, testExt, quotaInstall("inst-ipm", registryapi.Quotas{InvocationsPerMinute: 5}))
	r := startStubRunner(t, g.sockDir, "r0")
	c1 := testenv.Caddy(t, caddySite(g, []string{r.Addr()}, redisOnly(rds)))
	c2 := testenv.Caddy(t, caddySite(g, []string{r.Addr()}, redisOnly(rds)))
	ok := 0
	for i := 0; i < 10; i++ {
		base := []string{c1.URL, c2.URL}[i%2]
		resp, body, err := apiGet(t, base, "/api/ext/"+testExt+"/agreements", nil)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode == 200 {
			ok++
			continue
		}
		quotaRefusal(t, fmt.Sprintf("call %d", i), resp, body)
	}
	if ok != 5 {
		t.Fatalf("%d of 10 calls alternated across two gateways succeeded, want exactly 5 (invocations_per_minute 5)", ok)
	}
	m, err := c1.Admin("/metrics")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`extedge_ratelimit_decisions_total{backend="redis",decision="allow",scope="quota"}`,
		`extedge_ratelimit_decisions_total{backend="redis",decision="deny",scope="quota"}`} {
		if !strings.Contains(string(m), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(string(m), `backend="memory",decision="allow",scope="quota"`) {
		t.Error("a quota decision is labelled memory while Redis was up")
	}
}

func TestQuotaConcurrentCallsHoldAcrossTwoGatewaysSharingRedis(t *testing.T) {
	rds := testenv.Redis(t)
	g := newGatewayFiles(t)
	g.registry.setInstall(testTenant, testExt, quotaInstall("inst-conc", registryapi.Quotas{ConcurrentCalls: 2}))
	runner := newStubRunner(t)
	release := make(chan struct{})
	entered := make(chan struct{}, 4)
	var releaseOnce sync.Once
	unblock := func() { releaseOnce.Do(func() { close(release) }) }
	t.Cleanup(unblock)
	runner.setRespond(func(req *execapi.Request) (int, any) {
		entered <- struct{}{}
		<-release
		return echoGuest(req)
	})
	c1 := testenv.Caddy(t, caddySite(g, []string{runner.Addr()}, redisOnly(rds)))
	c2 := testenv.Caddy(t, caddySite(g, []string{runner.Addr()}, redisOnly(rds)))

	// One blocked call on each gateway holds both slots.
	var wg sync.WaitGroup
	held := make([]int, 2)
	for i, base := range []string{c1.URL, c2.URL} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, _, err := apiGet(t, base, "/api/ext/"+testExt+"/agreements", nil)
			if err != nil {
				t.Errorf("held call %d: %v", i, err)
				return
			}
			held[i] = resp.StatusCode
		}()
	}
	for i := 0; i < 2; i++ {
		select {
		case <-entered:
		case <-time.After(10 * time.Second):
			unblock()
			t.Fatal("the held calls did not reach the runner")
		}
	}
	for i, base := range []string{c1.URL, c2.URL} {
		resp, body, err := apiGet(t, base, "/api/ext/"+testExt+"/agreements", nil)
		if err != nil {
			unblock()
			t.Fatal(err)
		}
		quotaRefusal(t, fmt.Sprintf("a third concurrent call on gateway %d", i+1), resp, body)
	}
	unblock()
	wg.Wait()
	if held[0] != 200 || held[1] != 200 {
		t.Fatalf("held calls answered %v, want 200 200", held)
	}
	// Both leases ended with their calls.
	runner.setRespond(echoGuest)
	for _, base := range []string{c1.URL, c2.URL, c1.URL} {
		if resp, body, err := apiGet(t, base, "/api/ext/"+testExt+"/agreements", nil); err != nil || resp.StatusCode != 200 {
			t.Fatalf("after the held calls ended: %v %v %s", resp, err, body)
		}
	}
}

func TestQuotaCPUMsPerMinute(t *testing.T) {
	for _, backend := range []string{"memory", "redis"} {
		t.Run(backend, func(t *testing.T) {
			var rds *testenv.RedisServer
			if backend == "redis" {
				rds = testenv.Redis(t)
			}
			install := "inst-cpu-" + backend
			g := newGateway(t, func(h *Handler, g *gateway) {
				g.registry.setInstall(testTenant, testExt, quotaInstall(install, registryapi.Quotas{CPUMsPerMinute: 100}))
				if rds != nil {
					h.RateLimit = &RateLimitConfig{Redis: rds.URL()}
				}
			})
			g.runner.SetCPU(40 * time.Millisecond)
			for i := 1; i <= 3; i++ {
				if w := g.do(g.req(t, "GET", "/api/ext/"+testExt+"/agreements", "")); w.Code != 200 {
					t.Fatalf("call %d (%d ms charged before it): %d %s", i, (i-1)*40, w.Code, w.Body.String())
				}
			}
			w := g.do(g.req(t, "GET", "/api/ext/"+testExt+"/agreements", ""))
			if w.Code != 429 || errorCode(t, w) != "quota_exceeded" || w.Header().Get("Retry-After") == "" {
				t.Fatalf("4th call after 120 ms of guest CPU (quota 100 ms): %d %s Retry-After=%q", w.Code, w.Body.String(), w.Header().Get("Retry-After"))
			}
			if !strings.Contains(w.Body.String(), "cpu_ms_per_minute") {
				t.Errorf("refusal does not name the quota: %s", w.Body.String())
			}
			if rds != nil {
				if fb := g.h.state.limiter.quotas.Fallbacks(); fb != 0 {
					t.Fatalf("%d Redis fallbacks with Redis up", fb)
				}
			}
		})
	}
}

func TestQuotaRedisDownFallsBackToMemoryAndWarns(t *testing.T) {
	rds := testenv.Redis(t)
	g := newGatewayFiles(t)
	g.registry.setInstall(testTenant, testExt, quotaInstall("inst-down", registryapi.Quotas{InvocationsPerMinute: 2}))
	r := startStubRunner(t, g.sockDir, "r0")
	c := testenv.Caddy(t, caddySite(g, []string{r.Addr()}, redisOnly(rds)))
	rds.Stop()
	var codes []int
	for i := 0; i < 3; i++ {
		resp, body, err := apiGet(t, c.URL, "/api/ext/"+testExt+"/agreements", nil)
		if err != nil {
			t.Fatal(err)
		}
		codes = append(codes, resp.StatusCode)
		if i == 2 {
			quotaRefusal(t, "3rd call with Redis down", resp, body)
		}
	}
	if codes[0] != 200 || codes[1] != 200 {
		t.Fatalf("codes with Redis down = %v, want the in-memory quota's 200 200 429", codes)
	}
	const warn = "redis quota counters failed, using in-memory quotas"
	testenv.WaitFor(t, 5*time.Second, func() error {
		if !strings.Contains(c.Log(), warn) {
			return errors.New("no fallback warning in the Caddy log")
		}
		return nil
	})
	if n := strings.Count(c.Log(), warn); n != 1 {
		t.Errorf("%d fallback warnings for 3 calls, want 1 (at most one per 10 s)", n)
	}
	m, err := c.Admin("/metrics")
	if err != nil {
		t.Fatal(err)
	}
	if want := `extedge_ratelimit_decisions_total{backend="memory",decision="deny",scope="quota"}`; !strings.Contains(string(m), want) {
		t.Errorf("metrics lack %s", want)
	}
}
