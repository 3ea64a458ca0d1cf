package server

import (
	"context"
	"sync"
	"time"
)

// limiter shares the process's execution slots fairly between tenants
// (SPEC §17). Each tenant has a FIFO queue; when a slot frees, it goes to
// the waiting tenant with the fewest calls running (the oldest waiter
// breaks ties), so a tenant that floods the runner gets its turn like any
// other and never more than its share while others wait. This is fair
// queuing with equal weights and unit cost per call; the CPU a long call
// burns is handled by the engine, which lowers the priority of its thread
// (engine.Config.DemoteAfter).
//
// Bounds: a tenant never runs more than perTenant calls at once, never
// queues more than maxQueue, and a call waits at most wait (or until its
// context ends); then it is refused with concurrency_limited. The tenant
// map holds only tenants with calls running or waiting.
type limiter struct {
	slots     int
	perTenant int
	maxQueue  int
	wait      time.Duration

	mu      sync.Mutex
	running int                     // slots taken
	queued  int                     // calls waiting
	seq     uint64                  // arrival order of waiters
	tenants map[string]*tenantQueue // tenants with calls running or waiting
}

type tenantQueue struct {
	id      string
	running int
	waiters []*waiter // FIFO
}

type waiter struct {
	seq     uint64
	ready   chan struct{} // closed when granted
	granted bool          // under limiter.mu
}

func newLimiter(slots, perTenant, maxQueue int, wait time.Duration) *limiter {
	return &limiter{slots: slots, perTenant: perTenant, maxQueue: maxQueue, wait: wait,
		tenants: map[string]*tenantQueue{}}
}

// acquire returns a release function once the call holds a slot, or nil
// when the tenant's queue is full, the wait ran out or ctx ended first.
// waited is how long the call queued.
func (l *limiter) acquire(ctx context.Context, tenant string) (release func(), waited time.Duration) {
	l.mu.Lock()
	tq := l.tenants[tenant]
	if tq == nil {
		tq = &tenantQueue{id: tenant}
		l.tenants[tenant] = tq
	}
	if l.running < l.slots && tq.running < l.perTenant && len(tq.waiters) == 0 {
		l.grant(tq)
		l.mu.Unlock()
		return l.releaser(tq), 0
	}
	if len(tq.waiters) >= l.maxQueue {
		l.forget(tq)
		l.mu.Unlock()
		return nil, 0
	}
	l.seq++
	w := &waiter{seq: l.seq, ready: make(chan struct{})}
	tq.waiters = append(tq.waiters, w)
	l.queued++
	l.mu.Unlock()

	start := time.Now()
	timer := time.NewTimer(l.wait)
	defer timer.Stop()
	select {
	case <-w.ready:
		return l.releaser(tq), time.Since(start)
	case <-timer.C:
	case <-ctx.Done():
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if w.granted { // granted while we gave up: keep it
		return l.releaser(tq), time.Since(start)
	}
	for i, x := range tq.waiters {
		if x == w {
			tq.waiters = append(tq.waiters[:i], tq.waiters[i+1:]...)
			break
		}
	}
	l.queued--
	l.forget(tq)
	return nil, time.Since(start)
}

// grant gives tq a slot. Callers hold mu.
func (l *limiter) grant(tq *tenantQueue) {
	l.running++
	tq.running++
}

func (l *limiter) releaser(tq *tenantQueue) func() {
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			defer l.mu.Unlock()
			l.running--
			tq.running--
			l.dispatch()
			l.forget(tq)
		})
	}
}

// dispatch hands free slots to waiters: each to the head of the queue of
// the tenant with the fewest running calls (under its cap), the oldest
// head first among equals. Callers hold mu.
func (l *limiter) dispatch() {
	for l.running < l.slots && l.queued > 0 {
		var next *tenantQueue
		for _, tq := range l.tenants {
			if len(tq.waiters) == 0 || tq.running >= l.perTenant {
				continue
			}
			if next == nil || tq.running < next.running ||
				tq.running == next.running && tq.waiters[0].seq < next.waiters[0].seq {
				next = tq
			}
		}
		if next == nil {
			return
		}
		w := next.waiters[0]
		next.waiters = next.waiters[1:]
		l.queued--
		l.grant(next)
		w.granted = true
		close(w.ready)
	}
}

// forget drops tq once it has nothing running or waiting. Callers hold mu.
func (l *limiter) forget(tq *tenantQueue) {
	if tq.running == 0 && len(tq.waiters) == 0 {
		delete(l.tenants, tq.id)
	}
}

// inFlight is the number of slots taken.
func (l *limiter) inFlight() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.running
}

// waiting is the number of calls queued for a slot.
func (l *limiter) waiting() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.queued
}

// trackedTenants is the size of the tenant map (for tests).
func (l *limiter) trackedTenants() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.tenants)
}
