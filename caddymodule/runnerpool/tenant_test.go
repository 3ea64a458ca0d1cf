package runnerpool

import (
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/extedge/extedge/internal/execapi"
)

// tenantCall is an envelope of tenant for content hash key; hold marks it
// as one the test runner keeps until released.
func tenantCall(key, tenant string, hold bool) *execapi.Request {
	req := call(key)
	req.Context.TenantID = tenant
	if hold {
		req.HTTP.Path = "/hold"
	}
	return req
}

// holding answers a held call (path /hold) once release is closed and
// every other call with other.
func holding(release <-chan struct{}, other func(w http.ResponseWriter, r *http.Request)) func(w http.ResponseWriter, r *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		var req execapi.Request
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			w.WriteHeader(400)
			return
		}
		if req.HTTP.Path == "/hold" {
			<-release
			ok(w, r)
			return
		}
		other(w, r)
	}
}

// waitCalls polls until rn has received n calls.
func waitCalls(t *testing.T, rn *runner, n int64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for rn.calls.Load() < n {
		if time.Now().After(deadline) {
			t.Fatalf("runner received %d calls, want %d", rn.calls.Load(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// startHeld runs n held calls of tenant in the background; the returned
// wait blocks until they have all returned.
func startHeld(t *testing.T, p *Pool, key, tenant string, n int) (wait func()) {
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := p.Execute(context.Background(), tenantCall(key, tenant, true), 0)
			if err != nil || res.Err != nil {
				t.Errorf("held call: %+v, %v", res, err)
			}
		}()
	}
	return wg.Wait
}

func isBusy(res *Result, err error) bool {
	return err == nil && res != nil && res.Err != nil && res.Err.Code == execapi.CodeConcurrencyLimited
}

func TestTenantConcurrencyCapsCallsInFlight(t *testing.T) {
	release := make(chan struct{})
	rn := startRunner(t, sockDir(t), "a", holding(release, ok))
	p := newPool(t, Config{TenantConcurrency: 2}, rn)
	wait := startHeld(t, p, "k", "tenant-a", 2)
	waitCalls(t, rn, 2)

	res, err := p.Execute(context.Background(), tenantCall("k", "tenant-a", false), 0)
	if !isBusy(res, err) || res.Runner != "" {
		t.Fatalf("third call of tenant-a: %+v, %v; want concurrency_limited from no runner", res, err)
	}
	if got := rn.calls.Load(); got != 2 {
		t.Fatalf("runner received %d calls, want 2: a call over the cap must not reach it", got)
	}
	res, err = p.Execute(context.Background(), tenantCall("k", "tenant-b", false), 0)
	if err != nil || res.Err != nil || res.Response == nil {
		t.Fatalf("tenant-b while tenant-a is at its cap: %+v, %v; want an answer", res, err)
	}

	close(release)
	wait()
	res, err = p.Execute(context.Background(), tenantCall("k", "tenant-a", false), 0)
	if err != nil || res.Err != nil {
		t.Fatalf("tenant-a after its calls ended: %+v, %v; want an answer", res, err)
	}
	p.tenants.mu.Lock()
	left := len(p.tenants.n)
	p.tenants.mu.Unlock()
	if left != 0 {
		t.Fatalf("%d tenant entries left with nothing in flight, want 0", left)
	}
}

func TestTenantConcurrencyRetriesBusyOnlyUnderTheCap(t *testing.T) {
	dir := sockDir(t)
	release := make(chan struct{})
	defer close(release)
	a, b := startRunner(t, dir, "a", holding(release, busy)), startRunner(t, dir, "b", holding(release, busy))
	p := newPool(t, Config{TenantConcurrency: 2}, a, b)
	const key = "sha256:k"
	first, second := a, b
	if p.order(key, nil)[0].Address != "unix/"+a.sock {
		first, second = b, a
	}
	second.reply = ok

	t.Run("under the cap a busy answer is retried on the next runner", func(t *testing.T) {
		res, err := p.Execute(context.Background(), tenantCall(key, "tenant-a", false), 0)
		if err != nil || res.Err != nil || res.Runner != "unix/"+second.sock {
			t.Fatalf("got %+v, %v; want the second runner's answer", res, err)
		}
		if first.calls.Load() != 1 || second.calls.Load() != 1 {
			t.Fatalf("calls first=%d second=%d, want 1 and 1", first.calls.Load(), second.calls.Load())
		}
	})

	t.Run("at the cap a busy answer is not retried", func(t *testing.T) {
		startHeld(t, p, key, "tenant-a", 1) // released by the deferred close
		waitCalls(t, first, 2)
		res, err := p.Execute(context.Background(), tenantCall(key, "tenant-a", false), 0)
		if !isBusy(res, err) || res.Runner != "unix/"+first.sock {
			t.Fatalf("got %+v, %v; want the first runner's concurrency_limited", res, err)
		}
		if first.calls.Load() != 3 || second.calls.Load() != 1 {
			t.Fatalf("calls first=%d second=%d, want 3 and 1: the busy answer must not move to the second runner",
				first.calls.Load(), second.calls.Load())
		}
	})

	t.Run("another tenant under its cap is still retried", func(t *testing.T) {
		res, err := p.Execute(context.Background(), tenantCall(key, "tenant-b", false), 0)
		if err != nil || res.Err != nil || res.Runner != "unix/"+second.sock {
			t.Fatalf("got %+v, %v; want the second runner's answer", res, err)
		}
	})
}

func TestTenantConcurrencyIsSettableWithADefault(t *testing.T) {
	dir := sockDir(t)
	p := newPool(t, Config{}, startRunner(t, dir, "a", ok), startRunner(t, dir, "b", ok), startRunner(t, dir, "c", ok))
	if got := p.TenantConcurrency(); got != 6 {
		t.Fatalf("default cap = %d, want 2 × 3 runners", got)
	}
	p.SetTenantConcurrency(1)
	if got := p.TenantConcurrency(); got != 1 {
		t.Fatalf("cap after SetTenantConcurrency(1) = %d", got)
	}
	p.SetTenantConcurrency(0)
	if got := p.TenantConcurrency(); got != 6 {
		t.Fatalf("cap after SetTenantConcurrency(0) = %d, want the default", got)
	}
}
