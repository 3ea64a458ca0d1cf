package quota

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/extedge/extedge/internal/registryapi"
	"github.com/extedge/extedge/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// These tests run the Lua scripts against a real redis-server. Two Redis
// values over one client stand for two gateway pods.

func newRedisPair(t *testing.T) (a, b *Redis, rdb *redis.Client, srv *testenv.RedisServer) {
	t.Helper()
	srv = testenv.Redis(t)
	rdb = redis.NewClient(&redis.Options{Addr: srv.Addr(), ContextTimeoutEnabled: true})
	t.Cleanup(func() { rdb.Close() })
	a = NewRedis(rdb, NewMemory(10, nil))
	b = NewRedis(rdb, NewMemory(10, nil))
	a.Timeout, b.Timeout = time.Second, time.Second // a loaded CI machine is not a failing Redis
	return a, b, rdb, srv
}

func TestRedisScripts(t *testing.T) {
	ctx := context.Background()
	a, b, rdb, _ := newRedisPair(t)
	pods := []*Redis{a, b}

	t.Run("invocations_per_minute is shared by the pods", func(t *testing.T) {
		q := registryapi.Quotas{InvocationsPerMinute: 5}
		admitted := 0
		var last Decision
		for i := 0; i < 10; i++ {
			l, d := pods[i%2].Admit(ctx, "ipm", q, time.Second)
			if d.Backend != "redis" {
				t.Fatalf("call %d decided by %s", i, d.Backend)
			}
			if d.Allowed {
				admitted++
				l.Done(0)
			}
			last = d
		}
		if admitted != 5 {
			t.Fatalf("%d of 10 calls admitted across two pods, want 5", admitted)
		}
		if last.Exceeded != InvocationsPerMinute || last.RetryAfter <= 0 || last.RetryAfter > 12*time.Second {
			t.Fatalf("refusal %+v, want invocations_per_minute with 0 < Retry-After ≤ 12s", last)
		}
		ttl := rdb.PTTL(ctx, KeyPrefix+"{ipm}:rate").Val()
		if ttl <= 0 || ttl > 61*time.Second {
			t.Fatalf("rate key TTL %v, want until its arrival time (≤ 1 min)", ttl)
		}
	})

	t.Run("concurrent_calls leases are shared and end with Done", func(t *testing.T) {
		q := registryapi.Quotas{ConcurrentCalls: 2}
		l1, d1 := a.Admit(ctx, "conc", q, time.Minute)
		l2, d2 := b.Admit(ctx, "conc", q, time.Minute)
		if !d1.Allowed || !d2.Allowed {
			t.Fatalf("first two calls: %+v %+v", d1, d2)
		}
		if _, d := a.Admit(ctx, "conc", q, time.Minute); d.Allowed || d.Exceeded != ConcurrentCalls || d.Backend != "redis" {
			t.Fatalf("3rd call on pod a: %+v", d)
		}
		if n := rdb.ZCard(ctx, KeyPrefix+"{conc}:calls").Val(); n != 2 {
			t.Fatalf("%d leases in Redis, want 2", n)
		}
		if ttl := rdb.PTTL(ctx, KeyPrefix+"{conc}:calls").Val(); ttl <= 0 || ttl > time.Minute+time.Second {
			t.Fatalf("calls key TTL %v, want about the lease hold", ttl)
		}
		l2.Done(0)
		l3, d := a.Admit(ctx, "conc", q, time.Minute)
		if !d.Allowed {
			t.Fatalf("after pod b's Done: %+v", d)
		}
		l1.Done(0)
		l3.Done(0)
		if n := rdb.ZCard(ctx, KeyPrefix+"{conc}:calls").Val(); n != 0 {
			t.Fatalf("%d leases left after every Done", n)
		}
	})

	t.Run("a dead pod's lease expires at its hold", func(t *testing.T) {
		q := registryapi.Quotas{ConcurrentCalls: 1}
		if _, d := a.Admit(ctx, "dead", q, 200*time.Millisecond); !d.Allowed { // never Done: pod a "died"
			t.Fatalf("first call: %+v", d)
		}
		if _, d := b.Admit(ctx, "dead", q, time.Minute); d.Allowed {
			t.Fatal("second call admitted while the first lease is live")
		}
		testenv.WaitFor(t, 10*time.Second, func() error {
			l, d := b.Admit(ctx, "dead", q, time.Minute)
			if !d.Allowed {
				return errors.New("lease of the dead pod still counts")
			}
			l.Done(0)
			return nil
		})
	})

	t.Run("a refused call consumes no invocation and no lease", func(t *testing.T) {
		q := registryapi.Quotas{InvocationsPerMinute: 2, ConcurrentCalls: 1}
		l, _ := a.Admit(ctx, "refused", q, time.Minute)
		for i := 0; i < 3; i++ {
			if _, d := b.Admit(ctx, "refused", q, time.Minute); d.Exceeded != ConcurrentCalls {
				t.Fatalf("concurrent call: %+v", d)
			}
		}
		l.Done(0)
		l, d := b.Admit(ctx, "refused", q, time.Minute)
		if !d.Allowed {
			t.Fatalf("2nd invocation: %+v", d)
		}
		l.Done(0)
		if _, d := a.Admit(ctx, "refused", q, time.Minute); d.Exceeded != InvocationsPerMinute {
			t.Fatalf("3rd invocation: %+v", d)
		}
		if n := rdb.ZCard(ctx, KeyPrefix+"{refused}:calls").Val(); n != 0 {
			t.Fatalf("an invocation refusal left %d leases", n)
		}
	})

	t.Run("cpu_ms_per_minute charges are shared by the pods", func(t *testing.T) {
		q := registryapi.Quotas{CPUMsPerMinute: 100}
		for i := 0; i < 3; i++ {
			l, d := pods[i%2].Admit(ctx, "cpu", q, time.Second)
			if !d.Allowed {
				t.Fatalf("call %d: %+v", i, d)
			}
			l.Done(40 * time.Millisecond)
		}
		if cur := rdb.HGet(ctx, KeyPrefix+"{cpu}:cpu", "cur").Val(); cur != "120000" {
			t.Fatalf("charged %s µs, want 120000", cur)
		}
		if ttl := rdb.PTTL(ctx, KeyPrefix+"{cpu}:cpu").Val(); ttl <= 0 || ttl > 2*time.Minute {
			t.Fatalf("cpu key TTL %v, want ≤ 2 min", ttl)
		}
		_, d := b.Admit(ctx, "cpu", q, time.Second)
		if d.Allowed || d.Exceeded != CPUMsPerMinute || d.RetryAfter <= 0 || d.RetryAfter > 70*time.Second {
			t.Fatalf("4th call after 120 ms: %+v", d)
		}
	})

	// The window rule, driven by writing the hash as if charges had
	// landed in earlier minutes (the scripts take Redis's clock).
	redisMinute := func(t *testing.T) int64 {
		tm, err := rdb.Time(ctx).Result()
		if err != nil {
			t.Fatal(err)
		}
		return tm.UnixMicro() / minuteUS
	}
	window := func(t *testing.T, key string, minute, cur int64) {
		if err := rdb.HSet(ctx, KeyPrefix+"{"+key+"}:cpu", "m", minute, "cur", cur, "prev", 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	q := registryapi.Quotas{CPUMsPerMinute: 100}
	t.Run("the previous minute's charge still counts", func(t *testing.T) {
		// 10⁹ ms fades below 100 ms only in the last 6 µs of the minute.
		window(t, "prev", redisMinute(t)-1, 1e12)
		if _, d := a.Admit(ctx, "prev", q, time.Second); d.Allowed || d.Exceeded != CPUMsPerMinute {
			t.Fatalf("admitted despite the previous minute: %+v", d)
		}
	})
	t.Run("charges two minutes old are forgotten", func(t *testing.T) {
		window(t, "old", redisMinute(t)-2, 1e12)
		l, d := a.Admit(ctx, "old", q, time.Second)
		if !d.Allowed {
			t.Fatalf("refused for a charge two minutes old: %+v", d)
		}
		l.Done(time.Millisecond)
		v := rdb.HMGet(ctx, KeyPrefix+"{old}:cpu", "cur", "prev").Val()
		if v[0] != "1000" || v[1] != "0" {
			t.Fatalf("after a charge: cur, prev = %v, want 1000, 0", v)
		}
	})
	t.Run("a charge in a new minute moves the current one to previous", func(t *testing.T) {
		// The scripts read Redis's clock, so the test cannot hold it: an
		// attempt that straddles a minute boundary (a window of
		// milliseconds) is repeated; two in a row cannot happen.
		for attempt := 0; ; attempt++ {
			m := redisMinute(t)
			window(t, "roll", m-1, 5000)
			l, _ := a.Admit(ctx, "roll", registryapi.Quotas{CPUMsPerMinute: 1_000_000}, time.Second)
			l.Done(time.Millisecond)
			v := rdb.HMGet(ctx, KeyPrefix+"{roll}:cpu", "m", "cur", "prev").Val()
			if redisMinute(t) != m {
				if attempt > 0 {
					t.Fatal("two attempts straddled a minute boundary")
				}
				continue
			}
			if v[0] != strconv.FormatInt(m, 10) || v[1] != "1000" || v[2] != "5000" {
				t.Fatalf("m, cur, prev = %v, want %d, 1000, 5000", v, m)
			}
			break
		}
	})
	t.Run("installs do not share counters", func(t *testing.T) {
		for _, id := range []string{"x1", "x2"} {
			if _, d := a.Admit(ctx, id, registryapi.Quotas{ConcurrentCalls: 1}, time.Minute); !d.Allowed {
				t.Fatalf("install %s: %+v", id, d)
			}
		}
	})
}

func TestRedisScriptsConcurrentCallsAreExact(t *testing.T) {
	a, b, _, _ := newRedisPair(t)
	q := registryapi.Quotas{ConcurrentCalls: 3, InvocationsPerMinute: 1000}
	var mu sync.Mutex
	admitted := 0
	var wg sync.WaitGroup
	for i := 0; i < 40; i++ {
		wg.Add(1)
		go func(r *Redis) {
			defer wg.Done()
			if _, d := r.Admit(context.Background(), "i", q, time.Minute); d.Allowed {
				if d.Backend != "redis" {
					t.Errorf("decided by %s", d.Backend)
				}
				mu.Lock()
				admitted++
				mu.Unlock()
			}
		}([]*Redis{a, b}[i%2])
	}
	wg.Wait()
	if admitted != 3 {
		t.Fatalf("%d of 40 concurrent calls on two pods admitted, want 3", admitted)
	}
}

func TestRedisDownFallsBackToMemory(t *testing.T) {
	a, _, _, srv := newRedisPair(t)
	var mu sync.Mutex
	var errs []error
	a.OnFallback = func(err error) { mu.Lock(); errs = append(errs, err); mu.Unlock() }
	l, d := a.Admit(context.Background(), "i", registryapi.Quotas{ConcurrentCalls: 1}, time.Minute)
	if !d.Allowed || d.Backend != "redis" {
		t.Fatalf("with Redis up: %+v", d)
	}
	srv.Stop()
	l.Done(0) // the Redis lease cannot be dropped: it expires at its hold
	q := registryapi.Quotas{InvocationsPerMinute: 2, CPUMsPerMinute: 100}
	var got []Decision
	for i := 0; i < 3; i++ {
		l, d := a.Admit(context.Background(), "i", q, time.Minute)
		got = append(got, d)
		l.Done(0)
	}
	if !got[0].Allowed || !got[1].Allowed || got[2].Allowed || got[2].Exceeded != InvocationsPerMinute {
		t.Fatalf("with Redis down: %+v, want the in-memory quota to admit 2 and refuse the 3rd", got)
	}
	for _, d := range got {
		if d.Backend != "memory" {
			t.Fatalf("decided by %s with Redis down", d.Backend)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(errs) != 4 || a.Fallbacks() != 4 { // one Done, three admissions
		t.Fatalf("OnFallback told %d times, Fallbacks() = %d; want 4", len(errs), a.Fallbacks())
	}
}

func TestRedisDoneFailureChargesCPUInMemory(t *testing.T) {
	a, _, _, srv := newRedisPair(t)
	q := registryapi.Quotas{CPUMsPerMinute: 100}
	l, d := a.Admit(context.Background(), "i", q, time.Minute)
	if !d.Allowed || d.Backend != "redis" {
		t.Fatalf("with Redis up: %+v", d)
	}
	srv.Stop()
	l.Done(150 * time.Millisecond)
	if _, d := a.Admit(context.Background(), "i", q, time.Minute); d.Allowed || d.Backend != "memory" || d.Exceeded != CPUMsPerMinute {
		t.Fatalf("after a charge Redis could not take: %+v, want the in-memory fallback to refuse", d)
	}
}
