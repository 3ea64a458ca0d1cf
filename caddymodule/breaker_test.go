package caddymodule

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/golang-jwt/jwt/v5"
	dto "github.com/prometheus/client_model/go"

	"github.com/extedge/extedge/caddymodule/breaker"
	"github.com/extedge/extedge/caddymodule/runnerpool"
	"github.com/extedge/extedge/internal/execapi"
)

// fakeClock is the handler's clock in breaker tests: it moves only when
// told.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// breakerCount reads the breaker_events_total counter of event.
func breakerCount(t *testing.T, event string) float64 {
	t.Helper()
	var m dto.Metric
	if err := breakerEvents.WithLabelValues(event).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// waitFor polls cond until it holds, failing after a deadline.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

const otherExt = "com.acme.other"

// breakerGateway is a gateway whose install of testExt answers what mode
// says (execapi codes, "ok", or "hold" to block until release is closed)
// and whose install of otherExt always answers. Installs have ids of
// their own so no other test's circuit is in the way.
type breakerGateway struct {
	*gateway
	clock   *fakeClock
	mode    atomic.Value // string
	release chan struct{}
	calls   atomic.Int64 // calls of testExt that reached the runner
}

func newBreakerGateway(t *testing.T, failures int, cooldown time.Duration) *breakerGateway {
	bg := &breakerGateway{clock: &fakeClock{now: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}, release: make(chan struct{})}
	bg.mode.Store("ok")
	bg.gateway = newGateway(t, func(h *Handler, g *gateway) {
		h.BreakerFailures = failures
		h.BreakerCooldown = caddy.Duration(cooldown)
	})
	t.Cleanup(func() { close(bg.release) })
	bg.h.now = bg.clock.Now
	inst := testInstall()
	inst.InstallID = "inst-breaker-" + t.Name()
	bg.registry.setInstall(testTenant, testExt, inst)
	other := testInstall()
	other.InstallID = "inst-breaker-other-" + t.Name()
	other.Extension.Name = otherExt
	bg.registry.setInstall(testTenant, otherExt, other)
	bg.runner.setRespond(func(req *execapi.Request) (int, any) {
		if req.Context.ExtensionID != testExt {
			return echoGuest(req)
		}
		bg.calls.Add(1)
		switch mode := bg.mode.Load().(string); mode {
		case "ok":
			return echoGuest(req)
		case "hold":
			<-bg.release
			return echoGuest(req)
		case "guest500":
			return 200, execapi.Response{Status: 500, Body: []byte("failed")}
		default:
			return runnerFails(mode)(req)
		}
	})
	return bg
}

func (bg *breakerGateway) call(t *testing.T, ext string) *httptest.ResponseRecorder {
	return bg.do(bg.req(t, "GET", "/api/ext/"+ext+"/agreements", ""))
}

// expect checks a response's status and, for errors, its code.
func expect(t *testing.T, w *httptest.ResponseRecorder, status int, code string) {
	t.Helper()
	if w.Code != status {
		t.Fatalf("status = %d, want %d (%s)", w.Code, status, w.Body.String())
	}
	if code != "" {
		if got := errorCode(t, w); got != code {
			t.Fatalf("code = %s, want %s", got, code)
		}
	}
}

// expectUnhealthy checks a 503 extension_unhealthy with Retry-After.
func expectUnhealthy(t *testing.T, w *httptest.ResponseRecorder, retryAfter string) {
	t.Helper()
	expect(t, w, http.StatusServiceUnavailable, codeExtensionUnhealthy)
	if got := w.Header().Get("Retry-After"); got != retryAfter {
		t.Fatalf("Retry-After = %q, want %q", got, retryAfter)
	}
}

// open makes the install of testExt fail n times with code.
func (bg *breakerGateway) open(t *testing.T, n int, code string) {
	t.Helper()
	bg.mode.Store(code)
	for i := 0; i < n; i++ {
		w := bg.call(t, testExt)
		if w.Code == http.StatusServiceUnavailable {
			t.Fatalf("failure %d of %d already refused: %s", i+1, n, w.Body.String())
		}
	}
}

func TestBreakerOpensAfterConsecutiveTimeouts(t *testing.T) {
	bg := newBreakerGateway(t, 3, 2500*time.Millisecond)
	opened := breakerCount(t, "opened")
	rejected := breakerCount(t, "rejected")

	bg.mode.Store(execapi.CodeTimeout)
	for i := 0; i < 3; i++ {
		expect(t, bg.call(t, testExt), http.StatusGatewayTimeout, codeTimeout)
	}
	expectUnhealthy(t, bg.call(t, testExt), "3") // 2.5s of cooldown left, rounded up
	if n := bg.calls.Load(); n != 3 {
		t.Fatalf("runner received %d calls of the install, want 3: an open breaker must not reach it", n)
	}
	expect(t, bg.call(t, otherExt), http.StatusOK, "")

	bg.clock.advance(2 * time.Second)
	expectUnhealthy(t, bg.call(t, testExt), "1")

	if d := breakerCount(t, "opened") - opened; d != 1 {
		t.Errorf("breaker openings counted %v, want 1", d)
	}
	if d := breakerCount(t, "rejected") - rejected; d != 2 {
		t.Errorf("rejected calls counted %v, want 2", d)
	}
}

func TestBreakerGoodProbeCloses(t *testing.T) {
	bg := newBreakerGateway(t, 3, 200*time.Millisecond)
	bg.open(t, 3, execapi.CodeTimeout)
	expectUnhealthy(t, bg.call(t, testExt), "1")
	bg.clock.advance(200 * time.Millisecond)

	// The probe is held in the runner; a call meanwhile is refused.
	bg.mode.Store("hold")
	probe := make(chan *httptest.ResponseRecorder, 1)
	before := bg.calls.Load()
	go func() { probe <- bg.call(t, testExt) }()
	waitFor(t, "the probe to reach the runner", func() bool { return bg.calls.Load() == before+1 })
	expectUnhealthy(t, bg.call(t, testExt), "1")
	if n := bg.calls.Load(); n != before+1 {
		t.Fatalf("%d calls reached the runner while half-open, want only the probe", n-before)
	}
	bg.mode.Store("ok")
	bg.release <- struct{}{}
	expect(t, <-probe, http.StatusOK, "")

	for i := 0; i < 3; i++ {
		expect(t, bg.call(t, testExt), http.StatusOK, "")
	}
}

func TestBreakerBadProbeReopens(t *testing.T) {
	bg := newBreakerGateway(t, 3, 200*time.Millisecond)
	opened := breakerCount(t, "opened")
	bg.open(t, 3, execapi.CodeTrap)
	bg.clock.advance(200 * time.Millisecond)

	expect(t, bg.call(t, testExt), http.StatusBadGateway, execapi.CodeTrap) // the probe
	expectUnhealthy(t, bg.call(t, testExt), "1")
	if d := breakerCount(t, "opened") - opened; d != 2 {
		t.Errorf("breaker openings counted %v, want 2 (open, reopen)", d)
	}

	bg.clock.advance(199 * time.Millisecond)
	expectUnhealthy(t, bg.call(t, testExt), "1")
	bg.clock.advance(time.Millisecond)
	bg.mode.Store("ok")
	expect(t, bg.call(t, testExt), http.StatusOK, "")
	expect(t, bg.call(t, testExt), http.StatusOK, "")
}

func TestBreakerCountsOnlyConsecutiveTimeoutsAndTraps(t *testing.T) {
	bg := newBreakerGateway(t, 3, time.Minute)
	// A guest 5xx and a handler error are answers: they reset the count.
	for _, answer := range []string{"guest500", execapi.CodeHandlerError, "guest500"} {
		bg.open(t, 2, execapi.CodeTimeout)
		bg.mode.Store(answer)
		if w := bg.call(t, testExt); w.Code != http.StatusInternalServerError && w.Code != http.StatusBadGateway {
			t.Fatalf("%s: status %d", answer, w.Code)
		}
	}
	// memory_limit and fuel_exhausted are traps too.
	for _, code := range []string{execapi.CodeMemoryLimit, execapi.CodeFuelExhausted, execapi.CodeTimeout} {
		bg.mode.Store(code)
		expect(t, bg.call(t, testExt), execapi.HTTPStatus(code), code)
	}
	expectUnhealthy(t, bg.call(t, testExt), "60")
}

func TestBreakerCountsTheGatewaysOwnTimeout(t *testing.T) {
	bg := newBreakerGateway(t, 1, time.Minute)
	bg.h.Timeout = caddy.Duration(time.Millisecond) // the gateway gives up after 1ms + deadlineGrace
	bg.mode.Store("hold")
	expect(t, bg.call(t, testExt), http.StatusGatewayTimeout, codeTimeout)
	expectUnhealthy(t, bg.call(t, testExt), "60")
}

func TestBreakerOffNeverOpens(t *testing.T) {
	bg := newBreakerGateway(t, -1, time.Minute)
	bg.mode.Store(execapi.CodeTrap)
	for i := 0; i < 30; i++ {
		expect(t, bg.call(t, testExt), http.StatusBadGateway, execapi.CodeTrap)
	}
}

func TestBreakerOutcome(t *testing.T) {
	fails := func(code string) *runnerpool.Result { return &runnerpool.Result{Err: &execapi.Error{Code: code}} }
	for _, tc := range []struct {
		name string
		res  *runnerpool.Result
		err  error
		want breaker.Outcome
	}{
		{"runner timeout is a failure", fails(execapi.CodeTimeout), nil, breaker.Failed},
		{"trap is a failure", fails(execapi.CodeTrap), nil, breaker.Failed},
		{"memory_limit is a failure", fails(execapi.CodeMemoryLimit), nil, breaker.Failed},
		{"fuel_exhausted is a failure", fails(execapi.CodeFuelExhausted), nil, breaker.Failed},
		{"the gateway's own deadline is a failure", nil, context.DeadlineExceeded, breaker.Failed},
		{"a guest answer is good", &runnerpool.Result{Response: &execapi.Response{Status: 200}}, nil, breaker.Good},
		{"a guest 5xx is good", &runnerpool.Result{Response: &execapi.Response{Status: 503}}, nil, breaker.Good},
		{"handler_error is good", fails(execapi.CodeHandlerError), nil, breaker.Good},
		{"a response over the limit is good", nil, runnerpool.ErrResponseTooLarge, breaker.Good},
		{"concurrency_limited is neutral", fails(execapi.CodeConcurrencyLimited), nil, breaker.Neutral},
		{"bad_handler is neutral", fails(execapi.CodeBadHandler), nil, breaker.Neutral},
		{"bundle_unavailable is neutral", fails(execapi.CodeBundleUnavailable), nil, breaker.Neutral},
		{"runner internal is neutral", fails(execapi.CodeInternal), nil, breaker.Neutral},
		{"no runner reachable is neutral", nil, runnerpool.ErrUnavailable, breaker.Neutral},
		{"a broken runner reply is neutral", nil, &runnerpool.BadReplyError{Err: errors.New("eof")}, breaker.Neutral},
		{"the client going away is neutral", nil, context.Canceled, breaker.Neutral},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := breakerOutcome(tc.res, tc.err); got != tc.want {
				t.Fatalf("breakerOutcome = %v, want %v", got, tc.want)
			}
		})
	}
}

// tenantGateway is a gateway with two runners and installs of testExt
// for testTenant and tenant-b; calls to /agreements/hold are kept by the
// runner until release is closed.
type tenantGateway struct {
	*gateway
	first, second *stubRunner // in the rendezvous order of testHash
	release       chan struct{}
	releaseOnce   sync.Once
}

// newTenantGateway has the tenant queue off (calls over the cap are
// refused at once) unless tenantQueue is positive.
func newTenantGateway(t *testing.T, tenantConcurrency int, tenantQueue ...int) *tenantGateway {
	tg := &tenantGateway{release: make(chan struct{})}
	var extra *stubRunner
	tg.gateway = newGateway(t, func(h *Handler, g *gateway) {
		extra = newStubRunner(t)
		h.Runners.Addresses = append(h.Runners.Addresses, extra.Addr())
		h.TenantConcurrency = tenantConcurrency
		h.TenantQueue = -1
		if len(tenantQueue) > 0 {
			h.TenantQueue = tenantQueue[0]
			h.TenantQueueWait = caddy.Duration(10 * time.Second)
		}
	})
	t.Cleanup(tg.releaseHeld)
	inst := testInstall()
	inst.TenantID, inst.InstallID = "tenant-b", "inst-tenant-b"
	tg.registry.setInstall("tenant-b", testExt, inst)
	// Find which runner the hash goes to first.
	expect(t, tg.call(t, testTenant, false), http.StatusOK, "")
	tg.first, tg.second = tg.runner, extra
	if extra.Calls() == 1 {
		tg.first, tg.second = extra, tg.runner
	}
	return tg
}

// releaseHeld lets every held call answer.
func (tg *tenantGateway) releaseHeld() { tg.releaseOnce.Do(func() { close(tg.release) }) }

// holding answers /agreements/hold once release is closed and other
// calls with other.
func (tg *tenantGateway) holding(other func(*execapi.Request) (int, any)) func(*execapi.Request) (int, any) {
	return func(req *execapi.Request) (int, any) {
		if req.HTTP.Path == "/agreements/hold" {
			<-tg.release
			return echoGuest(req)
		}
		return other(req)
	}
}

func (tg *tenantGateway) call(t *testing.T, tenant string, hold bool) *httptest.ResponseRecorder {
	path := "/api/ext/" + testExt + "/agreements"
	if hold {
		path += "/hold"
	}
	r := httptest.NewRequest("GET", path, nil)
	r.Header.Set("Authorization", "Bearer "+token(t, jwt.MapClaims{"tenant": tenant}))
	return tg.do(r)
}

// hold starts n held calls of tenant and waits until rn has received
// want calls.
func (tg *tenantGateway) hold(t *testing.T, tenant string, n int, rn *stubRunner, want int64) {
	t.Helper()
	for i := 0; i < n; i++ {
		go tg.call(t, tenant, true)
	}
	waitFor(t, "the held calls to reach the runner", func() bool { return rn.Calls() >= want })
}

func expectBusy(t *testing.T, w *httptest.ResponseRecorder) {
	t.Helper()
	expect(t, w, http.StatusServiceUnavailable, codeRunnersBusy)
	if w.Header().Get("Retry-After") == "" {
		t.Fatal("runners_busy without Retry-After")
	}
}

func TestTenantConcurrencyCapsATenantsCallsInFlight(t *testing.T) {
	tg := newTenantGateway(t, 2)
	tg.first.setRespond(tg.holding(echoGuest))
	calls := tg.first.Calls()
	tg.hold(t, testTenant, 2, tg.first, calls+2)

	expectBusy(t, tg.call(t, testTenant, false))
	if n := tg.first.Calls() + tg.second.Calls(); n != calls+2+0 {
		t.Fatalf("runners received %d calls, want %d: a call over the cap must reach none", n, calls+2)
	}
	expect(t, tg.call(t, "tenant-b", false), http.StatusOK, "")
}

func TestTenantQueueHoldsACallOverTheCapUntilASlotFrees(t *testing.T) {
	tg := newTenantGateway(t, 2, 1)
	tg.first.setRespond(tg.holding(echoGuest))
	calls := tg.first.Calls()
	tg.hold(t, testTenant, 2, tg.first, calls+2)

	queued := make(chan *httptest.ResponseRecorder, 1)
	go func() { queued <- tg.call(t, testTenant, false) }()
	waitFor(t, "the call to queue", func() bool { return tg.h.state.runners.TenantQueueStats().Waiting == 1 })
	// A second call over the cap finds the one-place queue taken.
	expectBusy(t, tg.call(t, testTenant, false))
	select {
	case w := <-queued:
		t.Fatalf("the queued call answered %d before a slot freed", w.Code)
	default:
	}
	expect(t, tg.call(t, "tenant-b", false), http.StatusOK, "") // not behind testTenant's queue
	if n := tg.first.Calls() + tg.second.Calls(); n != calls+2+1 {
		t.Fatalf("runners received %d calls, want %d: queued and refused calls must reach none", n, calls+3)
	}

	tg.releaseHeld()
	select {
	case w := <-queued:
		expect(t, w, http.StatusOK, "")
	case <-time.After(5 * time.Second):
		t.Fatal("the queued call did not run once its tenant's slots freed")
	}
	if q := tg.h.state.runners.TenantQueueStats(); q.Admitted != 1 || q.Full != 1 || q.Waiting != 0 {
		t.Fatalf("queue stats = %+v, want one admitted, one refused as full, none waiting", q)
	}
}

func TestTenantConcurrencyRetriesBusyRunnersOnlyUnderTheCap(t *testing.T) {
	tg := newTenantGateway(t, 2)
	tg.first.setRespond(tg.holding(runnerFails(execapi.CodeConcurrencyLimited)))
	first, second := tg.first.Calls(), tg.second.Calls()

	// Alone, the tenant is under its cap: runner 1's refusal moves on.
	expect(t, tg.call(t, testTenant, false), http.StatusOK, "")
	if tg.first.Calls() != first+1 || tg.second.Calls() != second+1 {
		t.Fatalf("calls first=+%d second=+%d, want +1 and +1", tg.first.Calls()-first, tg.second.Calls()-second)
	}

	// With one call held, this one takes the last slot: at the cap, the
	// refusal is answered, not moved.
	tg.hold(t, testTenant, 1, tg.first, first+2)
	expectBusy(t, tg.call(t, testTenant, false))
	if tg.first.Calls() != first+3 || tg.second.Calls() != second+1 {
		t.Fatalf("calls first=+%d second=+%d, want +3 and +1: at the cap a busy runner's answer must not be retried",
			tg.first.Calls()-first, tg.second.Calls()-second)
	}
}

func TestTenantConcurrencyReloadAppliesTheNewCap(t *testing.T) {
	tg := newTenantGateway(t, 2)
	if got := tg.h.state.runners.TenantConcurrency(); got != 2 {
		t.Fatalf("cap = %d, want 2", got)
	}
	// A second config with the same runners shares the pool.
	raw, err := json.Marshal(tg.h)
	if err != nil {
		t.Fatal(err)
	}
	reloaded := new(Handler)
	if err := json.Unmarshal(raw, reloaded); err != nil {
		t.Fatal(err)
	}
	reloaded.TenantConcurrency = 0
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	if err := reloaded.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	defer reloaded.Cleanup()
	if reloaded.state.runners != tg.h.state.runners {
		t.Fatal("the reloaded config got a new runner pool")
	}
	if got := tg.h.state.runners.TenantConcurrency(); got != 4 {
		t.Fatalf("cap after reload = %d, want the default 2 × 2 runners", got)
	}
}
