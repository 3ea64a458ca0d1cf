// Package ratelimit implements the gateway's request limits (SPEC §8.2
// step 3 and the install quotas of step 6) as GCRA: a key is allowed when
// its theoretical arrival time, advanced by one emission interval, stays
// within the burst tolerance. Memory keeps the state in a bounded LRU;
// Redis keeps it in Redis (github.com/go-redis/redis_rate, the same
// algorithm) so limits hold across gateway pods, and falls back to Memory
// when Redis fails.
package ratelimit

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
)

// Rate is Events per Per with a burst of Burst events.
type Rate struct {
	Events int
	Per    time.Duration
	Burst  int
}

// IsZero reports an unset rate (no limit).
func (r Rate) IsZero() bool { return r.Events <= 0 || r.Per <= 0 }

// String is "200r/s burst 400".
func (r Rate) String() string {
	unit := r.Per.String()
	switch r.Per {
	case time.Second:
		unit = "s"
	case time.Minute:
		unit = "m"
	case time.Hour:
		unit = "h"
	}
	return fmt.Sprintf("%dr/%s burst %d", r.Events, unit, r.Burst)
}

func (r Rate) interval() int64 { return int64(r.Per) / int64(r.Events) }

func (r Rate) burst() int64 {
	if r.Burst < 1 {
		return 1
	}
	return int64(r.Burst)
}

// Decision is the outcome of one Allow.
type Decision struct {
	Allowed bool
	// RetryAfter is how long until one more event would be allowed; zero
	// when allowed.
	RetryAfter time.Duration
	// Backend is "memory" or "redis": who decided.
	Backend string
}

// Limiter decides whether one more event for key fits rate.
type Limiter interface {
	Allow(ctx context.Context, key string, rate Rate) (Decision, error)
}

// Memory is an in-process GCRA limiter. At most MaxKeys keys are tracked;
// the least recently used key is forgotten first (a forgotten key starts
// with a full burst, which errs on the side of allowing).
type Memory struct {
	now   func() time.Time
	cells *lru.Cache[string, *cell]
}

type cell struct {
	tat atomic.Int64 // theoretical arrival time, unix nanoseconds
}

// DefaultMaxKeys bounds Memory when no size is given.
const DefaultMaxKeys = 100_000

// NewMemory returns a limiter tracking at most maxKeys keys (0 means
// DefaultMaxKeys); now is the clock (nil means time.Now).
func NewMemory(maxKeys int, now func() time.Time) *Memory {
	if maxKeys <= 0 {
		maxKeys = DefaultMaxKeys
	}
	if now == nil {
		now = time.Now
	}
	c, _ := lru.New[string, *cell](maxKeys)
	return &Memory{now: now, cells: c}
}

// Len is the number of tracked keys.
func (m *Memory) Len() int { return m.cells.Len() }

// Allow implements Limiter. It never fails.
func (m *Memory) Allow(_ context.Context, key string, rate Rate) (Decision, error) {
	if rate.IsZero() {
		return Decision{Allowed: true, Backend: "memory"}, nil
	}
	c, ok := m.cells.Get(key)
	if !ok {
		c = new(cell)
		if prev, found, _ := m.cells.PeekOrAdd(key, c); found {
			c = prev
		}
	}
	now := m.now().UnixNano()
	t := rate.interval()
	tolerance := t * rate.burst()
	for {
		tat := c.tat.Load()
		base := max(tat, now)
		newTAT := base + t
		if over := newTAT - now - tolerance; over > 0 {
			return Decision{RetryAfter: time.Duration(over), Backend: "memory"}, nil
		}
		if c.tat.CompareAndSwap(tat, newTAT) {
			return Decision{Allowed: true, Backend: "memory"}, nil
		}
	}
}
