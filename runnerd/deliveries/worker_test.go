package deliveries

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/extedge/extedge/internal/execapi"
	"github.com/extedge/extedge/internal/registryapi"
)

// fakeRegistry hands out queued deliveries and records reports.
type fakeRegistry struct {
	mu        sync.Mutex
	queue     []registryapi.LeasedDelivery
	down      int // lease calls to fail before answering
	leases    []registryapi.LeaseRequest
	completed []string
	failed    []registryapi.FailRequest
	reported  chan struct{}
	// completeErrs are answered by the first complete calls, in order.
	completeErrs []error
}

func (f *fakeRegistry) LeaseDeliveries(ctx context.Context, req registryapi.LeaseRequest) ([]registryapi.LeasedDelivery, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.leases = append(f.leases, req)
	if f.down > 0 {
		f.down--
		return nil, errors.New("connection refused")
	}
	n := min(req.Limit, len(f.queue))
	out := f.queue[:n]
	f.queue = f.queue[n:]
	return out, nil
}

func (f *fakeRegistry) CompleteDelivery(ctx context.Context, id, leaseID string) (*registryapi.DeliveryOutcome, error) {
	f.mu.Lock()
	f.completed = append(f.completed, id)
	var err error
	if len(f.completeErrs) > 0 {
		err, f.completeErrs = f.completeErrs[0], f.completeErrs[1:]
	}
	f.mu.Unlock()
	f.reported <- struct{}{}
	if err != nil {
		return nil, err
	}
	return &registryapi.DeliveryOutcome{ID: id, Status: registryapi.DeliverySucceeded, Attempts: 1}, nil
}

func (f *fakeRegistry) FailDelivery(ctx context.Context, id string, req registryapi.FailRequest) (*registryapi.DeliveryOutcome, error) {
	f.mu.Lock()
	f.failed = append(f.failed, req)
	f.mu.Unlock()
	f.reported <- struct{}{}
	st := registryapi.DeliveryPending
	if !*req.Retryable {
		st = registryapi.DeliveryDead
	}
	return &registryapi.DeliveryOutcome{ID: id, Status: st, Attempts: 1}, nil
}

type fakeResolver struct{}

func (fakeResolver) Resolve(ctx context.Context, tenant, ext string) (*registryapi.ResolvedInstall, error) {
	env := "sealed"
	return &registryapi.ResolvedInstall{Resolved: &registryapi.Resolved{InstallID: "inst-1", TenantID: tenant,
		Version: registryapi.VersionRef{ID: "ver-1"}, ContentHash: "sha256:00",
		Capabilities: []string{"storage.kv"}, Config: json.RawMessage(`{"region":"emea"}`), SecretEnvelope: &env}}, nil
}

// fakeExecutor answers with a fixed reply and keeps the envelopes.
type fakeExecutor struct {
	mu    sync.Mutex
	envs  []*execapi.Request
	dls   []time.Duration
	reply func(n int) (*execapi.Response, *execapi.Error)
}

func (f *fakeExecutor) Execute(ctx context.Context, env *execapi.Request) (*execapi.Response, *execapi.Error) {
	f.mu.Lock()
	f.envs = append(f.envs, env)
	dl, _ := ctx.Deadline()
	f.dls = append(f.dls, time.Until(dl))
	n := len(f.envs)
	f.mu.Unlock()
	return f.reply(n)
}

func delivery(id string) registryapi.LeasedDelivery {
	return registryapi.LeasedDelivery{ID: id, LeaseID: "lease-" + id, Attempt: 1, MaxAttempts: 8, TenantID: "tenant-a",
		InstallID: "inst-1", Extension: "com.acme.x", Handler: "dist/on_update",
		Event: registryapi.EventRef{ID: "ev-" + id, Topic: "agreement.updated", OccurredAt: time.Now(), Payload: json.RawMessage(`{"id":"42"}`)}}
}

func runWorker(t *testing.T, reg *fakeRegistry, ex *fakeExecutor, reports int) {
	t.Helper()
	w, err := New(Config{Registry: reg, Resolver: fakeResolver{}, Executor: ex, Lease: 30 * time.Second, Poll: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.Run(ctx); close(done) }()
	for range reports {
		select {
		case <-reg.reported:
		case <-time.After(10 * time.Second):
			t.Fatal("no report")
		}
	}
	cancel()
	<-done
}

func TestResultsAreReported(t *testing.T) {
	cases := []struct {
		name      string
		resp      *execapi.Response
		eerr      *execapi.Error
		complete  bool
		retryable bool
	}{
		{"a 2xx guest status completes", &execapi.Response{Status: 204}, nil, true, false},
		{"a guest 500 fails retryable", &execapi.Response{Status: 500, Body: []byte(`{"error":"down"}`)}, nil, false, true},
		{"a guest 404 fails retryable", &execapi.Response{Status: 404}, nil, false, true},
		{"a trap fails retryable", nil, &execapi.Error{Code: execapi.CodeTrap, Message: "unreachable"}, false, true},
		{"a timeout fails retryable", nil, &execapi.Error{Code: execapi.CodeTimeout, Message: "deadline"}, false, true},
		{"bad_handler is dead at once", nil, &execapi.Error{Code: execapi.CodeBadHandler, Message: "no export"}, false, false},
		{"integrity_failed is dead at once", nil, &execapi.Error{Code: execapi.CodeIntegrityFailed, Message: "revoked"}, false, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			reg := &fakeRegistry{queue: []registryapi.LeasedDelivery{delivery("d1")}, reported: make(chan struct{}, 4)}
			ex := &fakeExecutor{reply: func(int) (*execapi.Response, *execapi.Error) { return tc.resp, tc.eerr }}
			runWorker(t, reg, ex, 1)
			if tc.complete {
				if len(reg.completed) != 1 || len(reg.failed) != 0 {
					t.Fatalf("completed %v failed %v", reg.completed, reg.failed)
				}
				return
			}
			if len(reg.failed) != 1 || *reg.failed[0].Retryable != tc.retryable || reg.failed[0].LeaseID != "lease-d1" || reg.failed[0].Error == "" {
				t.Fatalf("failed %+v", reg.failed)
			}
		})
	}
}

// TestEnvelopeIsAnAPICallOfTheInstall: the delivery runs with the
// install's version, grants, config and secrets, the subscription's
// handler and the event, and a deadline inside the lease.
func TestEnvelopeIsAnAPICallOfTheInstall(t *testing.T) {
	reg := &fakeRegistry{queue: []registryapi.LeasedDelivery{delivery("d1")}, reported: make(chan struct{}, 4)}
	ex := &fakeExecutor{reply: func(int) (*execapi.Response, *execapi.Error) { return &execapi.Response{Status: 200}, nil }}
	runWorker(t, reg, ex, 1)
	env := ex.envs[0]
	if env.Context.InstallID != "inst-1" || env.Context.VersionID != "ver-1" || env.Endpoint.Handler != "dist/on_update" ||
		env.SecretEnvelope == nil || string(env.Config) != `{"region":"emea"}` || env.Capabilities[0] != "storage.kv" {
		t.Fatalf("envelope %+v", env)
	}
	if env.Event == nil || env.Event.ID != "ev-d1" || env.Event.Topic != "agreement.updated" || string(env.Event.Payload) != `{"id":"42"}` {
		t.Fatalf("event %+v", env.Event)
	}
	if dl := ex.dls[0]; dl <= 0 || dl > 25*time.Second {
		t.Fatalf("call deadline %v, want within the 30 s lease less its 5 s margin", dl)
	}
	if reg.leases[0].LeaseSeconds != 30 {
		t.Fatalf("lease request %+v", reg.leases[0])
	}
}

// TestConcurrencyLimitedWaitsForASlot: a runner at its cap retries the
// call rather than spend an attempt.
func TestConcurrencyLimitedWaitsForASlot(t *testing.T) {
	reg := &fakeRegistry{queue: []registryapi.LeasedDelivery{delivery("d1")}, reported: make(chan struct{}, 4)}
	ex := &fakeExecutor{reply: func(n int) (*execapi.Response, *execapi.Error) {
		if n < 3 {
			return nil, &execapi.Error{Code: execapi.CodeConcurrencyLimited}
		}
		return &execapi.Response{Status: 200}, nil
	}}
	runWorker(t, reg, ex, 1)
	if len(ex.envs) != 3 || len(reg.completed) != 1 {
		t.Fatalf("%d calls, completed %v", len(ex.envs), reg.completed)
	}
}

// TestRegistryDownBacksOff: failed lease requests are retried with the
// jittered reconnect backoff, and work resumes when registryd answers.
func TestRegistryDownBacksOff(t *testing.T) {
	reg := &fakeRegistry{down: 2, queue: []registryapi.LeasedDelivery{delivery("d1")}, reported: make(chan struct{}, 4)}
	ex := &fakeExecutor{reply: func(int) (*execapi.Response, *execapi.Error) { return &execapi.Response{Status: 200}, nil }}
	start := time.Now()
	runWorker(t, reg, ex, 1)
	if len(reg.completed) != 1 || len(reg.leases) < 3 {
		t.Fatalf("completed %v after %d lease calls", reg.completed, len(reg.leases))
	}
	if el := time.Since(start); el < 200*time.Millisecond {
		t.Fatalf("two failed leases retried within %v: no backoff", el)
	}
}

// TestLeasesNoMoreThanFreeSlots: a worker asks for at most its free
// slots, so a busy runner takes nothing others could run.
func TestLeasesNoMoreThanFreeSlots(t *testing.T) {
	var queue []registryapi.LeasedDelivery
	for _, id := range []string{"a", "b", "c", "d", "e", "f"} {
		queue = append(queue, delivery(id))
	}
	reg := &fakeRegistry{queue: queue, reported: make(chan struct{}, 8)}
	ex := &fakeExecutor{reply: func(int) (*execapi.Response, *execapi.Error) { return &execapi.Response{Status: 200}, nil }}
	runWorker(t, reg, ex, 6)
	for _, l := range reg.leases {
		if l.Limit < 1 || l.Limit > 4 {
			t.Fatalf("lease asked for %d with 4 slots", l.Limit)
		}
	}
}

func TestLeaseBounds(t *testing.T) {
	for _, l := range []time.Duration{time.Second, 2 * time.Hour, 5500 * time.Millisecond} {
		if _, err := New(Config{Registry: &fakeRegistry{}, Resolver: fakeResolver{}, Executor: &fakeExecutor{}, Lease: l}); err == nil {
			t.Errorf("lease %v accepted", l)
		}
	}
}

// TestReports: a report registryd could not take is sent again; one it
// refused because the lease was lost is not.
func TestReports(t *testing.T) {
	ok := func(int) (*execapi.Response, *execapi.Error) { return &execapi.Response{Status: 200}, nil }
	t.Run("a report registryd did not answer is retried", func(t *testing.T) {
		reg := &fakeRegistry{queue: []registryapi.LeasedDelivery{delivery("d1")}, reported: make(chan struct{}, 4),
			completeErrs: []error{errors.New("connection refused")}}
		runWorker(t, reg, &fakeExecutor{reply: ok}, 2)
		if len(reg.completed) != 2 {
			t.Fatalf("complete sent %d times, want 2", len(reg.completed))
		}
	})
	t.Run("lease_lost is not retried", func(t *testing.T) {
		reg := &fakeRegistry{queue: []registryapi.LeasedDelivery{delivery("d1")}, reported: make(chan struct{}, 4),
			completeErrs: []error{&registryapi.APIError{Status: 409, Code: registryapi.CodeLeaseLost}}}
		runWorker(t, reg, &fakeExecutor{reply: ok}, 1)
		time.Sleep(300 * time.Millisecond)
		reg.mu.Lock()
		defer reg.mu.Unlock()
		if len(reg.completed) != 1 {
			t.Fatalf("complete sent %d times, want 1", len(reg.completed))
		}
	})
}
