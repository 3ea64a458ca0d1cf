// Package deliveries runs event deliveries (SPEC §18) on a runner: it
// leases due deliveries from registryd, runs each subscription's handler
// through the runner's own execute path (the limits, capabilities,
// secrets and KV of an API call), and completes or fails each delivery.
//
// Runners pull. registryd keeps every delivery in Postgres and hands out
// leases (POST /v1/internal/deliveries/lease); a runner with free slots
// asks for at most that many, so work spreads by capacity without
// registryd knowing the runners, a runner that is busy or gone takes
// nothing, and nothing is held in a runner's memory that a lease expiry
// would not give back.
//
// Failure modes:
//   - The runner dies mid-delivery: the lease expires and the delivery is
//     leased again (by any runner), with the attempt counted. The guest
//     may have run: handlers should be idempotent on event.id.
//   - A handler runs long: the call's deadline is the lease's end minus a
//     margin (counted from when the lease was asked for, so clock skew
//     with registryd cannot stretch it), so a call never outlives its
//     lease; serve refuses a lease that cannot hold the handler timeout.
//   - registryd is down: leasing waits with registryapi.ReconnectBackoff
//     (jittered, so runners do not return in step); a complete or fail
//     that cannot be sent is retried the same way until the lease is
//     over, after which the delivery is redelivered (at least once).
//   - The lease was lost (409 lease_lost: it expired and another runner
//     took it): the result is dropped; the other runner's counts.
//   - The runner is at its concurrency cap: the call is retried here for
//     a short while before it fails (retryable), so API traffic and
//     deliveries share the same slots and per-tenant fairness.
package deliveries

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/extedge/extedge/internal/execapi"
	"github.com/extedge/extedge/internal/registryapi"
)

// Registry is registryd's delivery API (registryapi.Client).
type Registry interface {
	LeaseDeliveries(ctx context.Context, req registryapi.LeaseRequest) ([]registryapi.LeasedDelivery, error)
	CompleteDelivery(ctx context.Context, id, leaseID string) (*registryapi.DeliveryOutcome, error)
	FailDelivery(ctx context.Context, id string, req registryapi.FailRequest) (*registryapi.DeliveryOutcome, error)
}

// Resolver finds an install's current version, grants, config and sealed
// secrets (registryapi.Cache, shared with the bundle cache's change feed).
type Resolver interface {
	Resolve(ctx context.Context, tenant, ext string) (*registryapi.ResolvedInstall, error)
}

// Executor runs one envelope: the runner's server.Server.Execute, the
// same path POST /v1/execute takes.
type Executor interface {
	Execute(ctx context.Context, env *execapi.Request) (*execapi.Response, *execapi.Error)
}

// Config configures a Worker.
type Config struct {
	Registry Registry
	Resolver Resolver
	Executor Executor

	// Concurrency is the most deliveries in flight. Default: 4.
	Concurrency int
	// Lease is how long each leased delivery is held (5 s…1 h). Default: 60 s.
	Lease time.Duration
	// Margin is how long before the lease ends the call must be over, to
	// leave time to report. Default: 5 s.
	Margin time.Duration
	// Poll is how long the worker waits after an empty lease before it
	// asks again (±20 % jitter). Default: 1 s.
	Poll time.Duration

	// Registerer holds the metrics; nil registers none.
	Registerer prometheus.Registerer
	// Logger may be nil.
	Logger *zap.Logger
	// Now is the clock. Default: time.Now.
	Now func() time.Time
}

// MinLease and MaxLease bound Config.Lease, as registryd does.
const (
	MinLease = 5 * time.Second
	MaxLease = time.Hour
)

// Worker leases and runs deliveries until its Run's context ends.
type Worker struct {
	cfg     Config
	log     *zap.Logger
	metrics *metrics
}

// New checks cfg and fills its defaults.
func New(cfg Config) (*Worker, error) {
	if cfg.Registry == nil || cfg.Resolver == nil || cfg.Executor == nil {
		return nil, errors.New("delivery worker needs a registry, a resolver and an executor")
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 4
	}
	if cfg.Lease == 0 {
		cfg.Lease = 60 * time.Second
	}
	if cfg.Lease < MinLease || cfg.Lease > MaxLease || cfg.Lease%time.Second != 0 {
		return nil, fmt.Errorf("lease %v: must be whole seconds from %v to %v", cfg.Lease, MinLease, MaxLease)
	}
	if cfg.Margin <= 0 {
		cfg.Margin = min(5*time.Second, cfg.Lease/4)
	}
	if cfg.Poll <= 0 {
		cfg.Poll = time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	return &Worker{cfg: cfg, log: cfg.Logger, metrics: m}, nil
}

// CallBudget is the longest a delivery's call may take: the lease less
// the margin. serve checks the handler timeout fits in it.
func (w *Worker) CallBudget() time.Duration { return w.cfg.Lease - w.cfg.Margin }

// Run leases and runs deliveries until ctx ends, then waits for the
// deliveries in flight (each bounded by its lease) and returns.
func (w *Worker) Run(ctx context.Context) {
	slots := make(chan struct{}, w.cfg.Concurrency)
	var inflight sync.WaitGroup
	defer inflight.Wait()
	// Deliveries in flight finish after ctx ends (a drain): their own
	// deadline is the lease's.
	runCtx := context.WithoutCancel(ctx)
	wait := registryapi.ReconnectBackoff()
	for {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return
		}
		free := 1
	fill:
		for free < w.cfg.Concurrency {
			select {
			case slots <- struct{}{}:
				free++
			default:
				break fill
			}
		}
		asked := w.cfg.Now()
		leased, err := w.cfg.Registry.LeaseDeliveries(ctx, registryapi.LeaseRequest{Limit: free, LeaseSeconds: int(w.cfg.Lease / time.Second)})
		if err != nil {
			release(slots, free)
			if ctx.Err() != nil {
				return
			}
			w.metrics.leaseErrors.Inc()
			d := wait.NextBackOff()
			w.log.Warn("leasing deliveries failed", zap.Error(err), zap.Duration("retry_in", d))
			if !sleep(ctx, d) {
				return
			}
			continue
		}
		wait.Reset()
		// The lease ends, as far as this runner can know, Lease after it
		// was asked for: registryd's lease_expires_at is later than that.
		leaseEnd := asked.Add(w.cfg.Lease)
		for _, d := range leased[:min(len(leased), free)] {
			inflight.Add(1)
			go func() {
				defer inflight.Done()
				defer func() { <-slots }()
				w.deliver(runCtx, d, leaseEnd)
			}()
		}
		release(slots, free-min(len(leased), free))
		if len(leased) == 0 && !sleep(ctx, jitter(w.cfg.Poll)) {
			return
		}
	}
}

func release(slots chan struct{}, n int) {
	for range n {
		<-slots
	}
}

// sleep waits d or until ctx ends; false means ctx ended.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// jitter spreads d by ±20 %, so idle runners do not poll in step.
func jitter(d time.Duration) time.Duration {
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

// result is what one attempt came to.
type result struct {
	ok        bool
	retryable bool
	reason    string // last_error for registryd
	outcome   string // metrics label: ok, a runner error code, guest_status, resolve
}

// deliver runs one leased delivery and reports its result.
func (w *Worker) deliver(ctx context.Context, d registryapi.LeasedDelivery, leaseEnd time.Time) {
	start := w.cfg.Now()
	w.metrics.lag.Observe(max(start.Sub(d.Event.OccurredAt), 0).Seconds())
	callCtx, cancel := context.WithDeadline(ctx, leaseEnd.Add(-w.cfg.Margin))
	res := w.attempt(callCtx, d)
	cancel()
	if ce := w.log.Check(zapcore.DebugLevel, "delivery"); ce != nil {
		ce.Write(zap.String("delivery", d.ID), zap.String("tenant", d.TenantID), zap.String("extension", d.Extension),
			zap.String("topic", d.Event.Topic), zap.Int("attempt", d.Attempt), zap.String("outcome", res.outcome),
			zap.Duration("duration", w.cfg.Now().Sub(start)))
	}
	w.metrics.handled.WithLabelValues(res.outcome).Inc()
	w.report(ctx, d, res, leaseEnd)
}

// attempt resolves the install, builds the envelope and runs it.
func (w *Worker) attempt(ctx context.Context, d registryapi.LeasedDelivery) result {
	inst, err := w.cfg.Resolver.Resolve(ctx, d.TenantID, d.Extension)
	if err != nil {
		// Disabled installs are not leased and uninstalling deletes the
		// deliveries, so not_installed is a race: retry, as when the
		// registry cannot answer.
		return result{retryable: true, reason: "resolving the install: " + err.Error(), outcome: "resolve_failed"}
	}
	if inst.InstallID != d.InstallID {
		return result{reason: "the install was replaced since the event", outcome: "install_replaced"}
	}
	env := envelope(d, inst)
	resp, eerr := w.execute(ctx, env)
	return classify(resp, eerr)
}

// envelope is the execute request of a delivery: the install as an API
// call of it would carry (version, grants, allowlist, config, sealed
// secrets), the subscription's handler, the event, and the runner's
// default limits (a subscription has no timeout of its own).
func envelope(d registryapi.LeasedDelivery, inst *registryapi.ResolvedInstall) *execapi.Request {
	caps := inst.Capabilities
	if caps == nil {
		caps = []string{}
	}
	return &execapi.Request{
		Context: execapi.Context{
			RequestID:   "dlv-" + d.ID + "-" + strconv.Itoa(d.Attempt),
			TenantID:    d.TenantID,
			ExtensionID: d.Extension,
			InstallID:   inst.InstallID,
			VersionID:   inst.Version.ID,
			ContentHash: inst.ContentHash,
		},
		Endpoint:        execapi.Endpoint{Handler: d.Handler},
		Config:          inst.Config,
		Capabilities:    caps,
		EgressAllowlist: inst.EgressAllowlist,
		SecretEnvelope:  inst.SecretEnvelope,
		Event:           &execapi.Event{ID: d.Event.ID, Topic: d.Event.Topic, OccurredAt: d.Event.OccurredAt, Payload: d.Event.Payload},
	}
}

// execute runs env, waiting for a slot a little longer than an API call
// would: a delivery has time (its lease), and failing it would cost an
// attempt and a backoff.
func (w *Worker) execute(ctx context.Context, env *execapi.Request) (*execapi.Response, *execapi.Error) {
	wait := 50 * time.Millisecond
	for {
		resp, eerr := w.cfg.Executor.Execute(ctx, env)
		if eerr == nil || eerr.Code != execapi.CodeConcurrencyLimited {
			return resp, eerr
		}
		w.metrics.slotWaits.Inc()
		if !sleep(ctx, jitter(wait)) {
			return nil, eerr
		}
		wait = min(2*wait, time.Second)
	}
}

// permanent are the runner codes an attempt of the same delivery cannot
// change: the bundle or its handler is unusable, or the event does not
// fit the guest request.
var permanent = map[string]bool{
	execapi.CodeBadHandler:      true,
	execapi.CodeBadRequest:      true,
	execapi.CodeIntegrityFailed: true,
	execapi.CodePayloadTooLarge: true,
}

// classify maps a call's answer to a delivery result (SPEC §18): a 2xx
// guest status acknowledges; any other status, a trap, a timeout or a
// limit is retried; a broken handler is not.
func classify(resp *execapi.Response, eerr *execapi.Error) result {
	if eerr != nil {
		return result{retryable: !permanent[eerr.Code], reason: eerr.Code + ": " + eerr.Message, outcome: eerr.Code}
	}
	if resp.Status >= 200 && resp.Status < 300 {
		return result{ok: true, outcome: "ok"}
	}
	reason := "guest answered " + strconv.Itoa(resp.Status)
	if len(resp.Body) > 0 {
		reason += ": " + excerpt(resp.Body, 256)
	}
	return result{retryable: true, reason: reason, outcome: "guest_status"}
}

// excerpt is at most n bytes of b, cut at a UTF-8 boundary.
func excerpt(b []byte, n int) string {
	if len(b) <= n {
		return string(b)
	}
	for n > 0 && !utf8.RuneStart(b[n]) {
		n--
	}
	return string(b[:n]) + "…"
}

// report completes or fails the delivery. A report registryd does not
// answer is retried (jittered) until the lease is surely taken again;
// registryd still accepts it after the lease expired if nobody took it.
func (w *Worker) report(ctx context.Context, d registryapi.LeasedDelivery, res result, leaseEnd time.Time) {
	ctx, cancel := context.WithDeadline(ctx, leaseEnd.Add(w.cfg.Lease))
	defer cancel()
	op := func() (*registryapi.DeliveryOutcome, error) {
		if res.ok {
			return w.cfg.Registry.CompleteDelivery(ctx, d.ID, d.LeaseID)
		}
		retryable := res.retryable
		return w.cfg.Registry.FailDelivery(ctx, d.ID, registryapi.FailRequest{LeaseID: d.LeaseID, Retryable: &retryable, Error: res.reason})
	}
	wait := registryapi.ReconnectBackoff()
	for {
		out, err := op()
		var ae *registryapi.APIError
		switch {
		case err == nil:
			w.metrics.reported.WithLabelValues(out.Status).Inc()
			if out.Status == registryapi.DeliverySucceeded || out.Status == registryapi.DeliveryDead {
				w.metrics.attempts.WithLabelValues(out.Status).Observe(float64(out.Attempts))
			}
			if out.Status == registryapi.DeliveryDead {
				w.log.Warn("delivery dead", zap.String("delivery", d.ID), zap.String("tenant", d.TenantID),
					zap.String("extension", d.Extension), zap.Int("attempts", out.Attempts), zap.String("reason", res.reason))
			}
			return
		case errors.As(err, &ae) && ae.Status < 500:
			// lease_lost (another runner has it now) or not_found (the
			// install was removed): nothing left to report.
			w.metrics.reported.WithLabelValues(reportLabel(ae.Code)).Inc()
			w.log.Info("delivery result not recorded", zap.String("delivery", d.ID), zap.String("code", ae.Code))
			return
		}
		next := wait.NextBackOff()
		if dl, _ := ctx.Deadline(); w.cfg.Now().Add(next).After(dl) || !sleep(ctx, next) {
			w.metrics.reported.WithLabelValues("unreported").Inc()
			w.log.Warn("delivery result could not be reported; it will be redelivered", zap.String("delivery", d.ID), zap.Error(err))
			return
		}
	}
}

// reportLabel bounds the metrics label of a refused report.
func reportLabel(code string) string {
	if code == registryapi.CodeLeaseLost || code == "not_found" {
		return code
	}
	return "refused"
}

// Interface guards.
var (
	_ Registry = (*registryapi.Client)(nil)
	_ Resolver = (*registryapi.Cache)(nil)
)
