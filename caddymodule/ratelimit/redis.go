package ratelimit

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"
)

// Redis is a GCRA limiter whose state lives in Redis, shared by every
// gateway pod. When Redis fails, the decision comes from Fallback and
// OnFallback is told (for a log line); the next call tries Redis again.
type Redis struct {
	limiter    *redis_rate.Limiter
	Fallback   *Memory
	OnFallback func(err error)
	// Timeout bounds one Redis round trip. Default 100ms: a slow Redis
	// must not become the gateway's latency.
	Timeout time.Duration

	fallbacks atomic.Int64
}

// KeyPrefix is prepended (after redis_rate's own "rate:") to every key.
const KeyPrefix = "extedge:"

// NewRedis wraps a go-redis client; it does not dial.
func NewRedis(rdb *redis.Client, fallback *Memory) *Redis {
	return &Redis{limiter: redis_rate.NewLimiter(rdb), Fallback: fallback}
}

// Fallbacks counts decisions taken by the fallback since start.
func (l *Redis) Fallbacks() int64 { return l.fallbacks.Load() }

// Allow implements Limiter.
func (l *Redis) Allow(ctx context.Context, key string, rate Rate) (Decision, error) {
	if rate.IsZero() {
		return Decision{Allowed: true, Backend: "redis"}, nil
	}
	timeout := l.Timeout
	if timeout == 0 {
		timeout = 100 * time.Millisecond
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	res, err := l.limiter.Allow(ctx, KeyPrefix+key, redis_rate.Limit{
		Rate: rate.Events, Period: rate.Per, Burst: int(rate.burst()),
	})
	if err != nil {
		l.fallbacks.Add(1)
		if l.OnFallback != nil {
			l.OnFallback(err)
		}
		return l.Fallback.Allow(ctx, key, rate)
	}
	if res.Allowed > 0 {
		return Decision{Allowed: true, Backend: "redis"}, nil
	}
	ra := res.RetryAfter
	if ra < 0 {
		ra = 0
	}
	return Decision{RetryAfter: ra, Backend: "redis"}, nil
}
