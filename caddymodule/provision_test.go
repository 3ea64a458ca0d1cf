package caddymodule

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/extedge/extedge/internal/execapi"
	"github.com/extedge/extedge/internal/registryapi"
)

// countingListener accepts and counts connections.
func countingListener(t *testing.T, network, addr string) (net.Listener, *atomic.Int64) {
	ln, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	var n atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n.Add(1)
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return ln, &n
}

func TestProvisionDialsNothing(t *testing.T) {
	dir, _ := os.MkdirTemp("", "pv")
	defer os.RemoveAll(dir)
	reg, regN := countingListener(t, "tcp", "127.0.0.1:0")
	rds, rdsN := countingListener(t, "tcp", "127.0.0.1:0")
	_, runN := countingListener(t, "unix", filepath.Join(dir, "r.sock"))
	files := writeConfigFiles(t)
	h := &Handler{
		Registry:    &RegistryConfig{URL: "http://" + reg.Addr().String(), TokenFile: files.token},
		Runners:     &RunnersConfig{Addresses: []string{"unix/" + filepath.Join(dir, "r.sock")}, TokenFile: files.token},
		Auth:        &AuthConfig{Mode: "jwt", KeyFile: files.key},
		RateLimit:   &RateLimitConfig{PerTenant: &RateSpec{Requests: 1, Per: caddy.Duration(time.Second)}, Redis: "redis://" + rds.Addr().String()},
		BundleStore: "file:///nonexistent", TrustBundle: files.trust,
		UICache: &UICacheConfig{Dir: filepath.Join(dir, "ui")},
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	if err := h.Provision(ctx); err != nil {
		t.Fatalf("provision with no services: %v", err)
	}
	if err := h.Validate(); err != nil {
		t.Fatal(err)
	}
	h.Cleanup()
	time.Sleep(50 * time.Millisecond) // let any stray dial land before counting
	if regN.Load()+rdsN.Load()+runN.Load() != 0 {
		t.Fatalf("provision dialed: registry %d, redis %d, runner %d", regN.Load(), rdsN.Load(), runN.Load())
	}
	if _, err := os.Stat(filepath.Join(dir, "ui")); !os.IsNotExist(err) {
		t.Fatal("provision created the ui cache directory")
	}
}

func TestConcurrentCallQuota(t *testing.T) {
	g := newGateway(t, nil)
	inst := testInstall()
	inst.Quotas = &registryapi.Quotas{ConcurrentCalls: 1}
	g.registry.setInstall(testTenant, testExt, inst)
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	g.runner.setRespond(func(req *execapi.Request) (int, any) {
		entered <- struct{}{}
		<-release
		return echoGuest(req)
	})
	var wg sync.WaitGroup
	wg.Add(1)
	var first int
	go func() {
		defer wg.Done()
		first = g.do(g.req(t, "GET", "/api/ext/"+testExt+"/agreements", "")).Code
	}()
	<-entered
	w := g.do(g.req(t, "GET", "/api/ext/"+testExt+"/agreements", ""))
	close(release)
	wg.Wait()
	if w.Code != 429 || errorCode(t, w) != "quota_exceeded" || w.Header().Get("Retry-After") == "" {
		t.Fatalf("second concurrent call: %d %s", w.Code, w.Body.String())
	}
	if first != 200 {
		t.Fatalf("first call: %d", first)
	}
	// The slot is released when the call ends.
	g.runner.setRespond(echoGuest)
	if w := g.do(g.req(t, "GET", "/api/ext/"+testExt+"/agreements", "")); w.Code != 200 {
		t.Fatalf("after release: %d", w.Code)
	}
}

// TestTrustedHeaderSecretFileIsCheckedAtStart: a missing or short shared
// secret fails at provision (caddy validate), naming the file, instead of
// making every call 401.
func TestTrustedHeaderSecretFileIsCheckedAtStart(t *testing.T) {
	dir := t.TempDir()
	short := filepath.Join(dir, "short.secret")
	if err := os.WriteFile(short, []byte("tiny\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, file := range []string{filepath.Join(dir, "missing.secret"), short} {
		h := &Handler{
			Registry: &RegistryConfig{URL: "http://127.0.0.1:1"},
			Runners:  &RunnersConfig{Addresses: []string{"unix/" + filepath.Join(dir, "r.sock")}},
			Auth:     &AuthConfig{Mode: "trusted_header", SecretHeader: "X-Proxy-Secret", SecretHeaderFile: file},
		}
		ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
		err := h.Provision(ctx)
		cancel()
		if err == nil || !strings.Contains(err.Error(), filepath.Base(file)) {
			t.Errorf("provision with secret file %s: %v, want an error naming it", file, err)
		}
		h.Cleanup()
	}
}
