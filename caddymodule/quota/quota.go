// Package quota enforces install quotas (SPEC §7.7, §8.2 step 6, §17):
// invocations per minute, concurrent calls and guest CPU milliseconds per
// minute, keyed by install id. Memory keeps the counters in this process;
// Redis keeps them in Redis, shared by every gateway pod, and falls back
// to Memory for a call when Redis fails.
//
// Both follow the same window rules:
//
//   - invocations_per_minute N: GCRA with a burst of N per minute — N calls
//     at once, then one more every minute/N.
//   - concurrent_calls N: calls admitted and not yet Done. In Redis each
//     call is a lease in a sorted set scored by its expiry (the call's
//     deadline), so the slots of a pod that dies mid-call come back when
//     those deadlines pass instead of leaking forever.
//   - cpu_ms_per_minute N: each call's guest CPU time is charged when the
//     call ends, to the current wall-clock minute (of the Redis server's
//     clock with Redis). A call is refused while
//     previous × (1 − f) + current ≥ N, f being the elapsed fraction of
//     the current minute: a sliding minute estimated from two fixed ones,
//     so there is no doubled burst at a minute boundary. Calls already
//     admitted are not stopped, so the charge can overshoot N by what
//     they use.
//
// A refused call consumes nothing: the checks run first and the counters
// change only when every quota admits the call.
package quota

import (
	"context"
	"math"
	"sync"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/extedge/extedge/caddymodule/ratelimit"
	"github.com/extedge/extedge/internal/registryapi"
)

// The quota names a refusal reports (registryapi.Quotas JSON names).
const (
	InvocationsPerMinute = "invocations_per_minute"
	ConcurrentCalls      = "concurrent_calls"
	CPUMsPerMinute       = "cpu_ms_per_minute"
)

// Decision is the outcome of one Admit.
type Decision struct {
	Allowed bool
	// Exceeded names the quota that refused the call; "" when allowed.
	Exceeded string
	// RetryAfter estimates when the refused call would be admitted.
	RetryAfter time.Duration
	// Backend is "memory" or "redis": who decided.
	Backend string
}

// Enforcer admits calls of an install under its quotas.
type Enforcer interface {
	// Admit decides one call of install. An admitted call holds a Lease
	// that must be ended with Done. hold bounds how long the call may
	// count against concurrent_calls should Done never come (a gateway
	// that died); Memory ignores it.
	Admit(ctx context.Context, install string, q registryapi.Quotas, hold time.Duration) (*Lease, Decision)
}

// Lease is an admitted call's share of its install's quotas.
type Lease struct {
	done func(cpu time.Duration)
}

// Done ends the call: it frees its concurrent_calls slot and charges cpu
// (the guest's CPU time, zero if it did not run) to cpu_ms_per_minute.
// Later calls do nothing; a nil Lease is fine.
func (l *Lease) Done(cpu time.Duration) {
	if l == nil || l.done == nil {
		return
	}
	done := l.done
	l.done = nil
	done(cpu)
}

func denied(backend, exceeded string, retry time.Duration) (*Lease, Decision) {
	return nil, Decision{Exceeded: exceeded, RetryAfter: retry, Backend: backend}
}

// concurrencyRetry is the Retry-After of a concurrent_calls refusal: how
// long the calls in flight take is unknown, and they are usually short.
const concurrencyRetry = time.Second

// minuteUS is the CPU window, in microseconds (the unit CPU is kept in).
const minuteUS = int64(time.Minute / time.Microsecond)

// cpuWindows is the CPU time (µs) charged in minute number minute (since
// the Unix epoch) and in the minute before it.
type cpuWindows struct {
	minute, cur, prev int64
}

// roll moves the windows to minute m; a clock that went back keeps them.
func (w *cpuWindows) roll(m int64) {
	switch {
	case m <= w.minute:
		return
	case m == w.minute+1:
		w.prev, w.cur = w.cur, 0
	default:
		w.prev, w.cur = 0, 0
	}
	w.minute = m
}

// cpuRetryAfter is when the sliding-minute load
// prev × (1 − elapsed/minute) + cur, with nothing more charged, drops
// below quota (all in µs); ok reports that it already is. Floats: the
// products exceed int64 for large charges, and Redis's Lua computes the
// same check in doubles.
func cpuRetryAfter(quota, cur, prev, elapsed int64) (retry time.Duration, ok bool) {
	q, c, p, e, w := float64(quota), float64(cur), float64(prev), float64(elapsed), float64(minuteUS)
	if p*(w-e)/w+c < q {
		return 0, true
	}
	var wait float64
	if c >= q {
		// This minute alone is over: wait for the next one, in which
		// this minute's share c × (1 − t/w) falls below q.
		wait = (w - e) + w*(1-q/c)
	} else {
		// The previous minute's fading share p × (1 − t/w) must fall
		// below q − c.
		wait = w*(1-(q-c)/p) - e
	}
	return time.Duration(math.Ceil(wait)) * time.Microsecond, false
}

// Memory enforces quotas in this process. At most maxKeys installs are
// tracked; the least recently used is forgotten first (a forgotten
// install starts afresh, which errs on the side of admitting).
type Memory struct {
	now      func() time.Time
	rate     *ratelimit.Memory
	installs *lru.Cache[string, *installCounters]
}

type installCounters struct {
	running atomic.Int64

	mu  sync.Mutex
	cpu cpuWindows
}

// DefaultMaxKeys bounds Memory when no size is given.
const DefaultMaxKeys = 100_000

// NewMemory returns an in-process Enforcer tracking at most maxKeys
// installs (0 means DefaultMaxKeys); now is the clock (nil: time.Now).
func NewMemory(maxKeys int, now func() time.Time) *Memory {
	if maxKeys <= 0 {
		maxKeys = DefaultMaxKeys
	}
	if now == nil {
		now = time.Now
	}
	c, _ := lru.New[string, *installCounters](maxKeys)
	return &Memory{now: now, rate: ratelimit.NewMemory(maxKeys, now), installs: c}
}

func (m *Memory) counters(install string) *installCounters {
	c, ok := m.installs.Get(install)
	if !ok {
		c = new(installCounters)
		if prev, found, _ := m.installs.PeekOrAdd(install, c); found {
			c = prev
		}
	}
	return c
}

// Admit implements Enforcer. It never fails.
func (m *Memory) Admit(ctx context.Context, install string, q registryapi.Quotas, _ time.Duration) (*Lease, Decision) {
	if q.IsZero() {
		return &Lease{}, Decision{Allowed: true, Backend: "memory"}
	}
	c := m.counters(install)
	if n := q.CPUMsPerMinute; n > 0 {
		now := m.now().UnixMicro()
		c.mu.Lock()
		c.cpu.roll(now / minuteUS)
		retry, ok := cpuRetryAfter(int64(n)*1000, c.cpu.cur, c.cpu.prev, now-c.cpu.minute*minuteUS)
		c.mu.Unlock()
		if !ok {
			return denied("memory", CPUMsPerMinute, retry)
		}
	}
	if n := q.ConcurrentCalls; n > 0 {
		if c.running.Add(1) > int64(n) {
			c.running.Add(-1)
			return denied("memory", ConcurrentCalls, concurrencyRetry)
		}
	}
	if n := q.InvocationsPerMinute; n > 0 {
		d, _ := m.rate.Allow(ctx, install, ratelimit.Rate{Events: n, Per: time.Minute, Burst: n})
		if !d.Allowed {
			if q.ConcurrentCalls > 0 {
				c.running.Add(-1)
			}
			return denied("memory", InvocationsPerMinute, d.RetryAfter)
		}
	}
	return &Lease{done: func(cpu time.Duration) {
		if q.ConcurrentCalls > 0 {
			c.running.Add(-1)
		}
		if q.CPUMsPerMinute > 0 {
			m.charge(c, cpu)
		}
	}}, Decision{Allowed: true, Backend: "memory"}
}

// charge adds cpu to the current minute of c.
func (m *Memory) charge(c *installCounters, cpu time.Duration) {
	if cpu <= 0 {
		return
	}
	now := m.now().UnixMicro()
	c.mu.Lock()
	c.cpu.roll(now / minuteUS)
	c.cpu.cur += cpu.Microseconds()
	c.mu.Unlock()
}

// running is the number of install's calls admitted and not yet Done
// (calls admitted without a concurrent_calls quota are not counted).
func (m *Memory) running(install string) int64 {
	c, ok := m.installs.Peek(install)
	if !ok {
		return 0
	}
	return c.running.Load()
}

var _ Enforcer = (*Memory)(nil)
