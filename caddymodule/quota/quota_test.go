package quota

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/extedge/extedge/internal/registryapi"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time          { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// minuteStart is a whole minute since the epoch.
var minuteStart = time.Unix(1_700_000_040, 0)

func TestCPURetryAfter(t *testing.T) {
	const q = 100_000 // 100 ms in µs
	half := minuteUS / 2
	cases := []struct {
		name               string
		cur, prev, elapsed int64
		wantOK             bool
		wantRetry          time.Duration
	}{
		{"nothing charged admits", 0, 0, 0, true, 0},
		{"current minute under the quota admits", 99_999, 0, 0, true, 0},
		{"current minute at the quota waits into the next minute", q, 0, half, false, 30 * time.Second},
		{"current minute at twice the quota waits half of the next minute", 2 * q, 0, 0, false, time.Minute + 30*time.Second},
		{"previous minute fades with the elapsed fraction", 0, 2 * q, half, false, 0},
		{"previous minute's share below the rest admits", 0, 2 * q, half + 1, true, 0},
		{"previous minute at twice the quota at the start waits half a minute", 0, 2 * q, 0, false, 30 * time.Second},
		{"previous and current add up", q / 2, q, 0, false, 30 * time.Second},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			retry, ok := cpuRetryAfter(q, tc.cur, tc.prev, tc.elapsed)
			if ok != tc.wantOK || retry != tc.wantRetry {
				t.Fatalf("cpuRetryAfter = %v, %v; want %v, %v", retry, ok, tc.wantRetry, tc.wantOK)
			}
		})
	}
}

func TestMemoryQuotas(t *testing.T) {
	ctx := context.Background()
	t.Run("no quotas admit everything", func(t *testing.T) {
		m := NewMemory(10, nil)
		for i := 0; i < 100; i++ {
			l, d := m.Admit(ctx, "i", registryapi.Quotas{}, time.Second)
			if !d.Allowed || l == nil {
				t.Fatalf("call %d refused: %+v", i, d)
			}
		}
	})
	t.Run("invocations_per_minute admits N at once, then one per minute/N", func(t *testing.T) {
		clk := &fakeClock{t: minuteStart}
		m := NewMemory(10, clk.Now)
		q := registryapi.Quotas{InvocationsPerMinute: 5}
		for i := 0; i < 5; i++ {
			l, d := m.Admit(ctx, "i", q, time.Second)
			if !d.Allowed {
				t.Fatalf("call %d refused: %+v", i, d)
			}
			l.Done(0)
		}
		_, d := m.Admit(ctx, "i", q, time.Second)
		if d.Allowed || d.Exceeded != InvocationsPerMinute || d.RetryAfter != 12*time.Second || d.Backend != "memory" {
			t.Fatalf("6th call: %+v, want invocations_per_minute with Retry-After 12s", d)
		}
		clk.Advance(12 * time.Second)
		if _, d := m.Admit(ctx, "i", q, time.Second); !d.Allowed {
			t.Fatalf("after minute/N: %+v", d)
		}
		if _, d := m.Admit(ctx, "other", q, time.Second); !d.Allowed {
			t.Fatalf("another install shares the quota: %+v", d)
		}
	})
	t.Run("concurrent_calls counts calls until Done", func(t *testing.T) {
		m := NewMemory(10, nil)
		q := registryapi.Quotas{ConcurrentCalls: 2}
		a, _ := m.Admit(ctx, "i", q, time.Second)
		b, _ := m.Admit(ctx, "i", q, time.Second)
		if _, d := m.Admit(ctx, "i", q, time.Second); d.Allowed || d.Exceeded != ConcurrentCalls {
			t.Fatalf("3rd concurrent call: %+v", d)
		}
		a.Done(0)
		a.Done(0) // a second Done frees nothing more
		c, d := m.Admit(ctx, "i", q, time.Second)
		if !d.Allowed {
			t.Fatalf("after one Done: %+v", d)
		}
		if _, d := m.Admit(ctx, "i", q, time.Second); d.Allowed {
			t.Fatal("a repeated Done freed a second slot")
		}
		b.Done(0)
		c.Done(0)
		if n := m.running("i"); n != 0 {
			t.Fatalf("running = %d after every Done", n)
		}
	})
	t.Run("a refused call consumes no invocation and no slot", func(t *testing.T) {
		m := NewMemory(10, nil)
		q := registryapi.Quotas{InvocationsPerMinute: 2, ConcurrentCalls: 1}
		a, _ := m.Admit(ctx, "i", q, time.Second)
		for i := 0; i < 3; i++ {
			if _, d := m.Admit(ctx, "i", q, time.Second); d.Exceeded != ConcurrentCalls {
				t.Fatalf("concurrent call: %+v", d)
			}
		}
		a.Done(0)
		b, d := m.Admit(ctx, "i", q, time.Second)
		if !d.Allowed {
			t.Fatalf("2nd invocation refused though refused calls were not counted: %+v", d)
		}
		b.Done(0)
		if _, d := m.Admit(ctx, "i", q, time.Second); d.Exceeded != InvocationsPerMinute {
			t.Fatalf("3rd invocation: %+v", d)
		}
		if n := m.running("i"); n != 0 {
			t.Fatalf("an invocation refusal kept its slot: running = %d", n)
		}
	})
	t.Run("cpu_ms_per_minute refuses once the charged CPU reaches it", func(t *testing.T) {
		clk := &fakeClock{t: minuteStart.Add(10 * time.Second)}
		m := NewMemory(10, clk.Now)
		q := registryapi.Quotas{CPUMsPerMinute: 100}
		for i := 0; i < 3; i++ {
			l, d := m.Admit(ctx, "i", q, time.Second)
			if !d.Allowed {
				t.Fatalf("call %d refused: %+v", i, d)
			}
			l.Done(40 * time.Millisecond)
		}
		_, d := m.Admit(ctx, "i", q, time.Second)
		if d.Allowed || d.Exceeded != CPUMsPerMinute {
			t.Fatalf("4th call after 120 ms of CPU: %+v", d)
		}
		// 120 ms this minute: wait 50 s to its end, then until 120 × (1 − t/60) < 100.
		if want := 60 * time.Second; d.RetryAfter != want {
			t.Fatalf("Retry-After %v, want %v", d.RetryAfter, want)
		}
		clk.Advance(50 * time.Second) // next minute starts: 120 ms fades from there
		if _, d := m.Admit(ctx, "i", q, time.Second); d.Allowed {
			t.Fatal("admitted at the minute boundary: the previous minute must still count")
		}
		clk.Advance(10*time.Second + time.Millisecond)
		if _, d := m.Admit(ctx, "i", q, time.Second); !d.Allowed {
			t.Fatalf("after the previous minute faded below the quota: %+v", d)
		}
		clk.Advance(2 * time.Minute)
		l, d := m.Admit(ctx, "i", q, time.Second)
		if !d.Allowed {
			t.Fatalf("two minutes later: %+v", d)
		}
		l.Done(0)
	})
	t.Run("the forgotten install starts afresh", func(t *testing.T) {
		m := NewMemory(1, nil)
		q := registryapi.Quotas{ConcurrentCalls: 1}
		m.Admit(ctx, "a", q, time.Second)
		m.Admit(ctx, "b", q, time.Second)
		if m.installs.Len() != 1 {
			t.Fatalf("tracked %d installs, bound 1", m.installs.Len())
		}
	})
}

func TestMemoryConcurrentCallsAreExact(t *testing.T) {
	m := NewMemory(10, nil)
	q := registryapi.Quotas{ConcurrentCalls: 3}
	var mu sync.Mutex
	var leases []*Lease
	var wg sync.WaitGroup
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if l, d := m.Admit(context.Background(), "i", q, time.Second); d.Allowed {
				mu.Lock()
				leases = append(leases, l)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(leases) != 3 {
		t.Fatalf("%d of 50 concurrent calls admitted, want 3", len(leases))
	}
}
