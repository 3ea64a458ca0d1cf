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
	left := len(p.tenants.t)
	p.tenants.mu.Unlock()
	if left != 0 {
		t.Fatalf("%d tenant entries left with nothing in flight, want 0", left)
	}
}

func TestTenantConcurrencyRetriesBusyOnlyUnderTheCap(t *testing.T) {
	dir := sockDir(t)
	release := make(chan struct{})
	waitHeld := func() {}
	defer func() { close(release); waitHeld() }() // before the pool closes
	parent := t
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
		waitHeld = startHeld(parent, p, key, "tenant-a", 1) // released by the deferred close
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
	p.SetTenantLimits(1, 0, 0)
	if got := p.TenantConcurrency(); got != 1 {
		t.Fatalf("cap after SetTenantLimits(1, 0, 0) = %d", got)
	}
	p.SetTenantLimits(0, 0, 0)
	if got := p.TenantConcurrency(); got != 6 {
		t.Fatalf("cap after SetTenantLimits(0, 0, 0) = %d, want the default", got)
	}
	if n, wait := p.TenantQueue(); n != 0 || wait != 0 {
		t.Fatalf("queue with no wait = %d, %v; want off", n, wait)
	}
	p.SetTenantLimits(3, 0, time.Second)
	if n, wait := p.TenantQueue(); n != 3 || wait != time.Second {
		t.Fatalf("queue 0 with a wait = %d, %v; want as long as the cap (3), 1s", n, wait)
	}
	p.SetTenantLimits(3, -1, time.Second)
	if n, _ := p.TenantQueue(); n != 0 {
		t.Fatalf("negative queue = %d, want off", n)
	}
}

// waitRunning polls until tenant holds n slots.
func waitRunning(t *testing.T, p *Pool, tenant string, n int64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		p.tenants.mu.Lock()
		var got int64
		if q := p.tenants.t[tenant]; q != nil {
			got = q.running
		}
		p.tenants.mu.Unlock()
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s holds %d slots, want %d", tenant, got, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// waitQueued polls until tenant has n calls waiting in its queue.
func waitQueued(t *testing.T, p *Pool, tenant string, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		p.tenants.mu.Lock()
		got := 0
		if q := p.tenants.t[tenant]; q != nil {
			got = len(q.waiting)
		}
		p.tenants.mu.Unlock()
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s has %d calls queued, want %d", tenant, got, n)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestTenantQueueHoldsCallsOverTheCapUntilASlotFrees(t *testing.T) {
	release := make(chan struct{})
	rn := startRunner(t, sockDir(t), "a", holding(release, ok))
	p := newPool(t, Config{TenantConcurrency: 1, TenantQueue: 2, TenantQueueWait: 10 * time.Second}, rn)
	wait := startHeld(t, p, "k", "tenant-a", 1)
	waitCalls(t, rn, 1)

	type answer struct {
		res *Result
		err error
	}
	queued := make(chan answer, 2)
	for i := 0; i < 2; i++ {
		go func() {
			res, err := p.Execute(context.Background(), tenantCall("k", "tenant-a", false), 0)
			queued <- answer{res, err}
		}()
	}
	waitQueued(t, p, "tenant-a", 2)
	if got := rn.calls.Load(); got != 1 {
		t.Fatalf("runner received %d calls while the tenant was at its cap, want 1", got)
	}

	res, err := p.Execute(context.Background(), tenantCall("k", "tenant-a", false), 0)
	if !isBusy(res, err) || res.Runner != "" {
		t.Fatalf("call with the queue full: %+v, %v; want concurrency_limited at once from no runner", res, err)
	}
	res, err = p.Execute(context.Background(), tenantCall("k", "tenant-b", false), 0)
	if err != nil || res.Err != nil {
		t.Fatalf("tenant-b while tenant-a queues: %+v, %v; want an answer, not a place behind tenant-a", res, err)
	}

	close(release)
	wait()
	for i := 0; i < 2; i++ {
		a := <-queued
		if a.err != nil || a.res.Err != nil || a.res.Response == nil {
			t.Fatalf("queued call %d: %+v, %v; want an answer once a slot freed", i, a.res, a.err)
		}
	}
	p.tenants.mu.Lock()
	left := len(p.tenants.t)
	p.tenants.mu.Unlock()
	if left != 0 {
		t.Fatalf("%d tenant entries left with nothing in flight or queued, want 0", left)
	}
	if got, want := p.TenantQueueStats(), (QueueStats{Admitted: 2, Full: 1}); got != want {
		t.Fatalf("queue stats = %+v, want %+v", got, want)
	}
}

func TestTenantQueueWaitEnds(t *testing.T) {
	t.Run("after TenantQueueWait", func(t *testing.T) {
		release := make(chan struct{})
		rn := startRunner(t, sockDir(t), "a", holding(release, ok))
		p := newPool(t, Config{TenantConcurrency: 1, TenantQueue: 4, TenantQueueWait: 50 * time.Millisecond}, rn)
		wait := startHeld(t, p, "k", "tenant-a", 1)
		defer wait()
		defer close(release)
		waitRunning(t, p, "tenant-a", 1)
		start := time.Now()
		res, err := p.Execute(context.Background(), tenantCall("k", "tenant-a", false), 0)
		if !isBusy(res, err) || res.Runner != "" {
			t.Fatalf("got %+v, %v; want concurrency_limited after the wait", res, err)
		}
		if waited := time.Since(start); waited < 50*time.Millisecond {
			t.Fatalf("refused after %v, want it to wait TenantQueueWait (50ms) first", waited)
		}
		waitQueued(t, p, "tenant-a", 0)
		if got, want := p.TenantQueueStats(), (QueueStats{TimedOut: 1}); got != want {
			t.Fatalf("queue stats = %+v, want %+v", got, want)
		}
	})

	t.Run("when the caller's context ends", func(t *testing.T) {
		release := make(chan struct{})
		rn := startRunner(t, sockDir(t), "a", holding(release, ok))
		p := newPool(t, Config{TenantConcurrency: 1, TenantQueue: 4, TenantQueueWait: time.Minute}, rn)
		wait := startHeld(t, p, "k", "tenant-a", 1)
		defer wait()
		defer close(release)
		waitRunning(t, p, "tenant-a", 1)
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		start := time.Now()
		res, err := p.Execute(ctx, tenantCall("k", "tenant-a", false), 0)
		if !isBusy(res, err) || time.Since(start) > 5*time.Second {
			t.Fatalf("got %+v, %v after %v; want concurrency_limited when the context ends", res, err, time.Since(start))
		}
		waitQueued(t, p, "tenant-a", 0)
	})
}

func TestTenantQueueOffRefusesAtOnce(t *testing.T) {
	release := make(chan struct{})
	rn := startRunner(t, sockDir(t), "a", holding(release, ok))
	p := newPool(t, Config{TenantConcurrency: 1, TenantQueue: 8, TenantQueueWait: 0}, rn)
	wait := startHeld(t, p, "k", "tenant-a", 1)
	defer wait()
	defer close(release)
	waitCalls(t, rn, 1)
	start := time.Now()
	res, err := p.Execute(context.Background(), tenantCall("k", "tenant-a", false), 0)
	if !isBusy(res, err) || time.Since(start) > time.Second {
		t.Fatalf("got %+v, %v after %v; want concurrency_limited at once with no wait", res, err, time.Since(start))
	}
}

func TestTenantCapWeighsCallsByTheirInstallsResponseSizes(t *testing.T) {
	release := make(chan struct{})
	big := func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(execapi.Response{Status: 200, Body: make([]byte, 3<<20)})
	}
	rn := startRunner(t, sockDir(t), "a", holding(release, big))
	p := newPool(t, Config{TenantConcurrency: 4, TenantQueue: -1}, rn)
	of := func(install string, hold bool) *execapi.Request {
		req := tenantCall("k", "tenant-a", hold)
		req.Context.InstallID = install
		return req
	}

	if w := p.costs.weight("inst-big"); w != 1 {
		t.Fatalf("an install never seen weighs %d, want 1", w)
	}
	if res, err := p.Execute(context.Background(), of("inst-big", false), 0); err != nil || res.Err != nil {
		t.Fatalf("3 MiB call: %+v, %v", res, err)
	}
	if w := p.costs.weight("inst-big"); w != 4 {
		t.Fatalf("after a 3 MiB answer the install weighs %d, want 1 + 3", w)
	}

	// One held call of the heavy install fills the tenant's cap of 4.
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if res, err := p.Execute(context.Background(), of("inst-big", true), 0); err != nil || res.Err != nil {
			t.Errorf("held call: %+v, %v", res, err)
		}
	}()
	defer wg.Wait()
	defer close(release)
	waitRunning(t, p, "tenant-a", 4)

	if res, err := p.Execute(context.Background(), of("inst-big", false), 0); !isBusy(res, err) || res.Runner != "" {
		t.Fatalf("second call of the heavy install: %+v, %v; want concurrency_limited, its tenant's cap is full", res, err)
	}
	if res, err := p.Execute(context.Background(), of("inst-small", false), 0); !isBusy(res, err) {
		t.Fatalf("a light call of the same tenant: %+v, %v; want concurrency_limited (4 + 1 > 4)", res, err)
	}
	other := of("inst-other", false)
	other.Context.TenantID = "tenant-b"
	if res, err := p.Execute(context.Background(), other, 0); err != nil || res.Err != nil {
		t.Fatalf("another tenant: %+v, %v; want an answer", res, err)
	}

	p.SetTenantCostBytes(-1)
	if w := p.costs.weight("inst-big"); w != 1 {
		t.Fatalf("with weighing off the heavy install weighs %d, want 1", w)
	}
}

func TestTenantQueueAdmitsInOrderAsUnitsFree(t *testing.T) {
	var s tenantSlots
	s.limit.Store(4)
	s.queue.Store(4)
	s.wait.Store(int64(10 * time.Second))
	if !s.acquire(context.Background(), "a", 3) {
		t.Fatal("first call refused")
	}
	got := make(chan int64, 2)
	go func() { s.acquire(context.Background(), "a", 4); got <- 4 }()
	waitFor := func(n int) {
		deadline := time.Now().Add(5 * time.Second)
		for {
			s.mu.Lock()
			l := len(s.t["a"].waiting)
			s.mu.Unlock()
			if l == n {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d waiting, want %d", l, n)
			}
			time.Sleep(time.Millisecond)
		}
	}
	waitFor(1)
	go func() { s.acquire(context.Background(), "a", 1); got <- 1 }()
	waitFor(2)
	// 3 + 1 would fit, but the light call waits behind the heavy one: FIFO.
	select {
	case w := <-got:
		t.Fatalf("call of weight %d started out of order", w)
	case <-time.After(20 * time.Millisecond):
	}
	s.release("a", 3)
	if w := <-got; w != 4 {
		t.Fatalf("first admitted weighs %d, want the head (4)", w)
	}
	s.release("a", 4)
	if w := <-got; w != 1 {
		t.Fatalf("second admitted weighs %d, want 1", w)
	}
	s.release("a", 1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.t) != 0 {
		t.Fatalf("%d tenant entries left, want 0", len(s.t))
	}
}
