package ratelimit

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/extedge/extedge/internal/testenv"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time          { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func TestMemoryGCRA(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	m := NewMemory(10, clk.Now)
	rate := Rate{Events: 10, Per: time.Second, Burst: 3}
	ctx := context.Background()
	allow := func() Decision { d, _ := m.Allow(ctx, "k", rate); return d }

	t.Run("burst is allowed at once", func(t *testing.T) {
		for i := 0; i < 3; i++ {
			if !allow().Allowed {
				t.Fatalf("request %d of the burst denied", i+1)
			}
		}
	})
	t.Run("beyond the burst is denied with the time to the next slot", func(t *testing.T) {
		d := allow()
		if d.Allowed || d.RetryAfter != 100*time.Millisecond {
			t.Fatalf("got %+v, want denied with RetryAfter 100ms", d)
		}
	})
	t.Run("one emission interval later one more is allowed", func(t *testing.T) {
		clk.Advance(100 * time.Millisecond)
		if !allow().Allowed {
			t.Fatal("denied after one interval")
		}
		if allow().Allowed {
			t.Fatal("allowed two after one interval")
		}
	})
	t.Run("a full idle period restores the whole burst", func(t *testing.T) {
		clk.Advance(time.Second)
		for i := 0; i < 3; i++ {
			if !allow().Allowed {
				t.Fatalf("request %d denied after idle", i+1)
			}
		}
	})
	t.Run("keys are independent", func(t *testing.T) {
		if d, _ := m.Allow(ctx, "other", rate); !d.Allowed {
			t.Fatal("other key denied")
		}
	})
	t.Run("zero rate never limits", func(t *testing.T) {
		for i := 0; i < 100; i++ {
			if d, _ := m.Allow(ctx, "z", Rate{}); !d.Allowed {
				t.Fatal("zero rate denied")
			}
		}
	})
}

func TestMemoryBoundsKeys(t *testing.T) {
	m := NewMemory(100, nil)
	for i := 0; i < 10_000; i++ {
		m.Allow(context.Background(), fmt.Sprintf("tenant-%d", i), Rate{Events: 1, Per: time.Second, Burst: 1})
	}
	if m.Len() != 100 {
		t.Fatalf("tracked %d keys, want the bound 100", m.Len())
	}
}

func TestMemoryConcurrentExactness(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	m := NewMemory(0, clk.Now)
	rate := Rate{Events: 1, Per: time.Hour, Burst: 50}
	var wg sync.WaitGroup
	var mu sync.Mutex
	allowed := 0
	for i := 0; i < 200; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if d, _ := m.Allow(context.Background(), "k", rate); d.Allowed {
				mu.Lock()
				allowed++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if allowed != 50 {
		t.Fatalf("allowed %d of 200 concurrent, want exactly the burst 50", allowed)
	}
}

func TestRedisSharedAcrossLimiters(t *testing.T) {
	srv := testenv.Redis(t)
	opts, err := redis.ParseURL(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	c1, c2 := redis.NewClient(opts), redis.NewClient(opts)
	defer c1.Close()
	defer c2.Close()
	// Two limiters = two gateway pods.
	a, b := NewRedis(c1, NewMemory(0, nil)), NewRedis(c2, NewMemory(0, nil))
	rate := Rate{Events: 1, Per: time.Minute, Burst: 2}
	key := fmt.Sprintf("shared-%d", time.Now().UnixNano())
	ctx := context.Background()
	d1, _ := a.Allow(ctx, key, rate)
	d2, _ := b.Allow(ctx, key, rate)
	d3, _ := a.Allow(ctx, key, rate)
	if !d1.Allowed || !d2.Allowed || d3.Allowed {
		t.Fatalf("decisions %v %v %v, want allow, allow, deny across pods", d1.Allowed, d2.Allowed, d3.Allowed)
	}
	if d3.Backend != "redis" || d3.RetryAfter <= 0 {
		t.Fatalf("deny = %+v, want redis with RetryAfter", d3)
	}
}

func TestRedisFailureFallsBackToMemory(t *testing.T) {
	// A port nothing listens on: every Redis call fails fast.
	port := testenv.FreePort(t)
	c := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", port), MaxRetries: -1})
	defer c.Close()
	l := NewRedis(c, NewMemory(0, nil))
	var seen error
	l.OnFallback = func(err error) { seen = err }
	rate := Rate{Events: 1, Per: time.Minute, Burst: 1}
	d1, err1 := l.Allow(context.Background(), "k", rate)
	d2, _ := l.Allow(context.Background(), "k", rate)
	if err1 != nil || !d1.Allowed || d1.Backend != "memory" {
		t.Fatalf("first = %+v %v, want allowed by memory", d1, err1)
	}
	if d2.Allowed {
		t.Fatal("fallback does not limit")
	}
	if seen == nil || l.Fallbacks() != 2 {
		t.Fatalf("fallback not reported: %v, %d", seen, l.Fallbacks())
	}
}
