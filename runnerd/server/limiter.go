package server

import (
	"context"
	"sync"
	"time"
)

// limiter caps concurrent calls per process and per tenant, with a bounded
// wait for a slot. A tenant's calls first take one of the tenant's slots and
// only then a process slot, so a tenant flooding the runner queues behind
// its own cap and cannot hold every process slot.
type limiter struct {
	global    chan struct{}
	perTenant int
	wait      time.Duration

	mu      sync.Mutex
	tenants map[string]*tenantSlots // only tenants with calls in flight or waiting
}

type tenantSlots struct {
	sem  chan struct{}
	refs int
}

func newLimiter(global, perTenant int, wait time.Duration) *limiter {
	return &limiter{
		global:    make(chan struct{}, global),
		perTenant: perTenant,
		wait:      wait,
		tenants:   map[string]*tenantSlots{},
	}
}

// acquire waits up to the bounded wait (or ctx) for a tenant slot and a
// process slot. It returns a release function, or nil when the caps are
// still reached.
func (l *limiter) acquire(ctx context.Context, tenant string) func() {
	timer := time.NewTimer(l.wait)
	defer timer.Stop()
	ts := l.tenant(tenant)
	select {
	case ts.sem <- struct{}{}:
	case <-timer.C:
		l.unref(tenant, ts)
		return nil
	case <-ctx.Done():
		l.unref(tenant, ts)
		return nil
	}
	select {
	case l.global <- struct{}{}:
	case <-timer.C:
		<-ts.sem
		l.unref(tenant, ts)
		return nil
	case <-ctx.Done():
		<-ts.sem
		l.unref(tenant, ts)
		return nil
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			<-l.global
			<-ts.sem
			l.unref(tenant, ts)
		})
	}
}

func (l *limiter) tenant(id string) *tenantSlots {
	l.mu.Lock()
	defer l.mu.Unlock()
	ts := l.tenants[id]
	if ts == nil {
		ts = &tenantSlots{sem: make(chan struct{}, l.perTenant)}
		l.tenants[id] = ts
	}
	ts.refs++
	return ts
}

// unref drops the tenant's entry once nobody uses it, so the map stays
// bounded by the calls in flight.
func (l *limiter) unref(id string, ts *tenantSlots) {
	l.mu.Lock()
	defer l.mu.Unlock()
	ts.refs--
	if ts.refs == 0 {
		delete(l.tenants, id)
	}
}

// inFlight is the number of process slots taken.
func (l *limiter) inFlight() int { return len(l.global) }

// trackedTenants is the size of the tenant map (for tests).
func (l *limiter) trackedTenants() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.tenants)
}
