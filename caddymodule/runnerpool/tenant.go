package runnerpool

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// SetTenantLimits sets the per-tenant cap of calls in flight and the
// queue in front of it; concurrency <= 0 restores the default, 2 × the
// number of runners; queue 0 makes the queue as long as the cap, and a
// negative queue or a wait <= 0 turns it off. The pool
// outlives config reloads (it is keyed by the runners), so a reload that
// changes only these applies them here; calls already in flight keep their
// slots and calls already waiting keep their places.
func (p *Pool) SetTenantLimits(concurrency, queue int, wait time.Duration) {
	if concurrency <= 0 {
		concurrency = 2 * len(p.runners)
	}
	if queue == 0 {
		queue = concurrency
	}
	if queue < 0 || wait <= 0 {
		queue, wait = 0, 0
	}
	p.tenants.limit.Store(int64(concurrency))
	p.tenants.queue.Store(int64(queue))
	p.tenants.wait.Store(int64(wait))
}

// SetTenantCostBytes sets the response size that adds a unit to a call's
// weight (Config.TenantCostBytes): 0 restores the default, negative makes
// every call weigh 1.
func (p *Pool) SetTenantCostBytes(n int64) {
	if n == 0 {
		n = DefaultTenantCostBytes
	}
	p.costs.unit.Store(n)
}

// TenantConcurrency is the cap in force.
func (p *Pool) TenantConcurrency() int { return int(p.tenants.limit.Load()) }

// TenantQueue is the queue length and wait in force (0, 0 when off).
func (p *Pool) TenantQueue() (int, time.Duration) {
	return int(p.tenants.queue.Load()), time.Duration(p.tenants.wait.Load())
}

// tenantSlots counts each tenant's calls in flight and queues the calls
// waiting for one of its slots. A tenant's entry exists only while it has
// a call in flight or waiting, so the map never holds more entries than
// there are calls.
type tenantSlots struct {
	limit, queue, wait atomic.Int64
	mu                 sync.Mutex
	t                  map[string]*tenantQueue

	waiting                  atomic.Int64
	admitted, full, timedOut atomic.Uint64
}

// QueueStats counts the tenant queue's work since the pool started, over
// all tenants (no tenant is named: SPEC §16 keeps tenant ids out of
// metrics).
type QueueStats struct {
	Waiting  int64  `json:"waiting"`   // calls waiting now
	Admitted uint64 `json:"admitted"`  // calls that waited and got a slot
	Full     uint64 `json:"full"`      // calls refused because the queue was full (or off)
	TimedOut uint64 `json:"timed_out"` // calls refused after waiting (wait or context ended)
}

// TenantQueueStats reports the tenant queue's counts.
func (p *Pool) TenantQueueStats() QueueStats {
	t := &p.tenants
	return QueueStats{Waiting: t.waiting.Load(), Admitted: t.admitted.Load(), Full: t.full.Load(), TimedOut: t.timedOut.Load()}
}

type tenantQueue struct {
	running int64    // units held by calls in flight
	waiting []waiter // FIFO; slots go to waiting[0] first
}

// waiter is a call waiting in its tenant's queue for weight units.
type waiter struct {
	handed chan struct{} // closed when the units are the call's
	weight int64
}

// fits reports whether a call of weight may start: it fits under the cap,
// or the tenant has nothing in flight (a call heavier than the whole cap
// still runs, alone).
func (q *tenantQueue) fits(weight, limit int64) bool {
	return q.running == 0 || q.running+weight <= limit
}

// acquire takes weight units of tenant's cap for one call, waiting in the
// tenant's queue while they do not fit. It reports false when the queue is
// full or off, the wait ran out, or ctx ended first.
func (t *tenantSlots) acquire(ctx context.Context, tenant string, weight int64) bool {
	limit := t.limit.Load()
	t.mu.Lock()
	q := t.t[tenant]
	if q == nil {
		if t.t == nil {
			t.t = make(map[string]*tenantQueue)
		}
		q = &tenantQueue{}
		t.t[tenant] = q
	}
	if len(q.waiting) == 0 && q.fits(weight, limit) {
		q.running += weight
		t.mu.Unlock()
		return true
	}
	if int64(len(q.waiting)) >= t.queue.Load() {
		t.mu.Unlock()
		t.full.Add(1)
		return false // the tenant has calls in flight, so q stays
	}
	handed := make(chan struct{})
	q.waiting = append(q.waiting, waiter{handed: handed, weight: weight})
	t.mu.Unlock()
	t.waiting.Add(1)
	defer t.waiting.Add(-1)

	timer := time.NewTimer(time.Duration(t.wait.Load()))
	defer timer.Stop()
	select {
	case <-handed:
		t.admitted.Add(1)
		return true
	case <-timer.C:
	case <-ctx.Done():
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	select {
	case <-handed: // release handed the units over as the wait ended
		t.admitted.Add(1)
		return true
	default:
	}
	t.timedOut.Add(1)
	for i, w := range q.waiting {
		if w.handed == handed {
			q.waiting = append(q.waiting[:i], q.waiting[i+1:]...)
			break
		}
	}
	t.admit(q, limit) // a heavy call leaving the head may let lighter ones start
	t.forget(tenant, q)
	return false
}

// release returns weight units taken by acquire and starts the waiting
// calls that now fit, in order (the cap, which a reload may have lowered,
// is read now).
func (t *tenantSlots) release(tenant string, weight int64) {
	limit := t.limit.Load()
	t.mu.Lock()
	defer t.mu.Unlock()
	q := t.t[tenant]
	q.running -= weight
	t.admit(q, limit)
	t.forget(tenant, q)
}

// admit hands units to waiting calls from the head while they fit; t.mu
// is held.
func (t *tenantSlots) admit(q *tenantQueue, limit int64) {
	for len(q.waiting) > 0 && q.fits(q.waiting[0].weight, limit) {
		w := q.waiting[0]
		q.waiting = q.waiting[1:]
		q.running += w.weight
		close(w.handed)
	}
}

// forget drops an idle tenant's entry; t.mu is held.
func (t *tenantSlots) forget(tenant string, q *tenantQueue) {
	if q.running <= 0 && len(q.waiting) == 0 {
		delete(t.t, tenant)
	}
}

// belowLimit reports whether tenant has fewer calls in flight than the
// cap, counting a caller's own call that holds a slot, and none waiting.
func (t *tenantSlots) belowLimit(tenant string) bool {
	limit := t.limit.Load()
	t.mu.Lock()
	defer t.mu.Unlock()
	q := t.t[tenant]
	return q == nil || (q.running < limit && len(q.waiting) == 0)
}
