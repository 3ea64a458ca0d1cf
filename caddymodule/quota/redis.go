package quota

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/extedge/extedge/internal/registryapi"
)

// Redis enforces quotas with counters in Redis, shared by every gateway
// pod: one atomic script per admission and one per Done (only for a call
// holding a concurrent_calls lease or charging CPU). When Redis fails,
// the call is decided by Fallback and OnFallback is told (for a log line);
// the next call tries Redis again. A lease taken from Redis whose Done
// fails expires at its hold, and its CPU is charged to Fallback.
type Redis struct {
	client     *redis.Client
	Fallback   *Memory
	OnFallback func(err error)
	// Timeout bounds one Redis round trip. Default 100ms: a slow Redis
	// must not become the gateway's latency.
	Timeout time.Duration

	fallbacks atomic.Int64
}

// KeyPrefix starts every key. An install's keys share the hash tag
// {install id}, so they stay in one slot should Redis be a cluster:
//
//	extedge:quota:{id}:rate   string, GCRA theoretical arrival time (µs); TTL: until it is in the past
//	extedge:quota:{id}:calls  sorted set of leases scored by expiry (µs); TTL: the last lease's expiry
//	extedge:quota:{id}:cpu    hash m (minute number), cur, prev (µs); TTL: 2 minutes after the last charge
const KeyPrefix = "extedge:quota:"

// NewRedis wraps a go-redis client; it does not dial.
func NewRedis(client *redis.Client, fallback *Memory) *Redis {
	return &Redis{client: client, Fallback: fallback}
}

// Fallbacks counts Redis failures (admissions and Dones) since start.
func (r *Redis) Fallbacks() int64 { return r.fallbacks.Load() }

func keys(install string) []string {
	p := KeyPrefix + "{" + install + "}:"
	return []string{p + "rate", p + "calls", p + "cpu"}
}

// The scripts take the time from Redis (TIME), so pods with skewed clocks
// agree on windows and lease expiries. Numbers are µs; Lua's doubles hold
// them exactly (< 2^53).

// admitScript checks every quota and, only if all admit, commits the call:
// the GCRA step and the concurrency lease. CPU is only read here.
//
// KEYS: rate, calls, cpu. ARGV: invocations_per_minute, concurrent_calls,
// cpu quota (µs), lease member, lease hold (µs); a zero quota is off.
// Reply: {0} admitted, {1, retry_us} invocations, {2} concurrency,
// {3, cur, prev, elapsed} cpu (the caller computes Retry-After).
var admitScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local W = 60000000
local ipm, conc, cpuq = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])

if cpuq > 0 then
  local m = math.floor(now / W)
  local v = redis.call('HMGET', KEYS[3], 'm', 'cur', 'prev')
  local wm, cur, prev = tonumber(v[1]) or m, tonumber(v[2]) or 0, tonumber(v[3]) or 0
  if m == wm + 1 then
    prev, cur = cur, 0
  elseif m > wm + 1 then
    prev, cur = 0, 0
  end
  local elapsed = now - m * W
  if prev * (W - elapsed) / W + cur >= cpuq then
    return {3, cur, prev, elapsed}
  end
end

if conc > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
  if redis.call('ZCARD', KEYS[2]) >= conc then
    return {2}
  end
end

local tat
if ipm > 0 then
  local interval = math.floor(W / ipm)
  tat = tonumber(redis.call('GET', KEYS[1])) or now
  if tat < now then tat = now end
  tat = tat + interval
  local over = tat - now - interval * ipm
  if over > 0 then
    return {1, over}
  end
end

if ipm > 0 then
  redis.call('SET', KEYS[1], string.format('%.0f', tat), 'PX', math.ceil((tat - now) / 1000))
end
if conc > 0 then
  redis.call('ZADD', KEYS[2], string.format('%.0f', now + tonumber(ARGV[5])), ARGV[4])
  local last = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')
  redis.call('PEXPIREAT', KEYS[2], math.ceil(tonumber(last[2]) / 1000) + 1)
end
return {0}
`)

// doneScript ends a call: it drops its lease and charges its CPU to the
// current minute.
//
// KEYS: calls, cpu. ARGV: lease member ("" for none), cpu (µs, 0 for none).
var doneScript = redis.NewScript(`
if ARGV[1] ~= '' then
  redis.call('ZREM', KEYS[1], ARGV[1])
end
local us = tonumber(ARGV[2])
if us > 0 then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
  local m = math.floor(now / 60000000)
  local v = redis.call('HMGET', KEYS[2], 'm', 'cur', 'prev')
  local wm, cur, prev = tonumber(v[1]), tonumber(v[2]) or 0, tonumber(v[3]) or 0
  if wm == nil or m > wm + 1 then
    prev, cur = 0, 0
  elseif m == wm + 1 then
    prev, cur = cur, 0
  elseif m < wm then
    m = wm
  end
  redis.call('HSET', KEYS[2], 'm', string.format('%.0f', m), 'cur', string.format('%.0f', cur + us), 'prev', string.format('%.0f', prev))
  redis.call('PEXPIRE', KEYS[2], 120000)
end
return 0
`)

func (r *Redis) timeout() time.Duration {
	if r.Timeout > 0 {
		return r.Timeout
	}
	return 100 * time.Millisecond
}

func (r *Redis) fallback(err error) {
	r.fallbacks.Add(1)
	if r.OnFallback != nil {
		r.OnFallback(err)
	}
}

// Admit implements Enforcer. hold is the lease's lifetime in Redis.
func (r *Redis) Admit(ctx context.Context, install string, q registryapi.Quotas, hold time.Duration) (*Lease, Decision) {
	if q.IsZero() {
		return &Lease{}, Decision{Allowed: true, Backend: "redis"}
	}
	var member string
	if q.ConcurrentCalls > 0 {
		member = newLeaseID()
	}
	cpuQuota := int64(max(q.CPUMsPerMinute, 0)) * 1000
	// The client going away must not count as a Redis failure.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.timeout())
	defer cancel()
	res, err := admitScript.Run(rctx, r.client, keys(install),
		max(q.InvocationsPerMinute, 0), max(q.ConcurrentCalls, 0), cpuQuota, member, max(hold.Microseconds(), 1)).Int64Slice()
	if err == nil && len(res) == 0 {
		err = errBadReply
	}
	if err != nil {
		r.fallback(err)
		return r.Fallback.Admit(ctx, install, q, hold)
	}
	switch res[0] {
	case 0:
		return &Lease{done: func(cpu time.Duration) { r.done(install, member, q, cpu) }}, Decision{Allowed: true, Backend: "redis"}
	case 1:
		return denied("redis", InvocationsPerMinute, time.Duration(at(res, 1))*time.Microsecond)
	case 2:
		return denied("redis", ConcurrentCalls, concurrencyRetry)
	default:
		retry, _ := cpuRetryAfter(cpuQuota, at(res, 1), at(res, 2), at(res, 3))
		return denied("redis", CPUMsPerMinute, retry)
	}
}

func at(s []int64, i int) int64 {
	if i < len(s) {
		return s[i]
	}
	return 0
}

func (r *Redis) done(install, member string, q registryapi.Quotas, cpu time.Duration) {
	var us int64
	if q.CPUMsPerMinute > 0 && cpu > 0 {
		us = cpu.Microseconds()
	}
	if member == "" && us == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), r.timeout())
	defer cancel()
	k := keys(install)
	if err := doneScript.Run(ctx, r.client, k[1:], member, us).Err(); err != nil {
		r.fallback(err)
		if us > 0 {
			r.Fallback.charge(r.Fallback.counters(install), cpu)
		}
	}
}

var errBadReply = errors.New("empty reply from the quota script")

// newLeaseID is a random lease member: unique among an install's calls.
func newLeaseID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

var _ Enforcer = (*Redis)(nil)
