package engine

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/extedge/extedge/internal/execapi"
	"github.com/extedge/extedge/runnerd/hostapi"
	"github.com/extedge/extedge/runnerd/runnertest/guests"
)

// counterCall runs one export of counter.wat (or any module) for owner
// key with reuse on (reuse != nil) or off, and returns the body.
func counterCall(t *testing.T, e *Engine, m *Module, reuse *Reuse, export string, lim Limits) (string, error) {
	t.Helper()
	inv := hostapi.NewInvocation(context.Background(), &execapi.Request{}, hostapi.Budgets{})
	var (
		res *Result
		err error
	)
	if reuse != nil {
		res, err = e.RunReused(context.Background(), *reuse, m, export, testRequest, lim, inv)
	} else {
		res, err = e.Run(context.Background(), m, export, testRequest, lim, inv)
	}
	if err != nil {
		return "", err
	}
	return string(res.Response.Body), nil
}

func mustCount(t *testing.T, e *Engine, m *Module, reuse *Reuse, want string) {
	t.Helper()
	got, err := counterCall(t, e, m, reuse, "handler", Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Fatalf("count = %s, want %s", got, want)
	}
}

func TestInstanceReuse(t *testing.T) {
	counter := guests.MustWasm(t, "counter.wat", nil)
	t.Run("state persists across calls of one install with reuse on", func(t *testing.T) {
		e := newEngine(t, Config{})
		m := compile(t, e, counter)
		a := &Reuse{Key: "tenant-a/install-1"}
		for _, want := range []string{"1", "2", "3", "4"} {
			mustCount(t, e, m, a, want)
		}
		if st := e.ReuseStats(); st.Hits != 3 || st.Misses != 1 || st.Idle != 1 {
			t.Fatalf("stats = %+v, want 3 hits, 1 miss, 1 idle", st)
		}
		inv := hostapi.NewInvocation(context.Background(), &execapi.Request{}, hostapi.Budgets{})
		res, err := e.RunReused(context.Background(), *a, m, "handler", testRequest, Limits{}, inv)
		if err != nil || !res.Stats.Reused || string(res.Response.Body) != "5" {
			t.Fatalf("fifth call: %v, reused %t, body %q", err, res.Stats.Reused, res.Response.Body)
		}
	})
	t.Run("state never crosses to another install", func(t *testing.T) {
		e := newEngine(t, Config{})
		m := compile(t, e, counter)
		a, b := &Reuse{Key: "tenant-a/install-1"}, &Reuse{Key: "tenant-b/install-2"}
		mustCount(t, e, m, a, "1")
		mustCount(t, e, m, a, "2")
		mustCount(t, e, m, b, "1")
		mustCount(t, e, m, a, "3")
		mustCount(t, e, m, b, "2")
		// The same tenant's other install is another owner too.
		mustCount(t, e, m, &Reuse{Key: "tenant-a/install-3"}, "1")
	})
	t.Run("a trap discards the instance: the next call sees fresh state", func(t *testing.T) {
		e := newEngine(t, Config{})
		m := compile(t, e, counter)
		a := &Reuse{Key: "a"}
		mustCount(t, e, m, a, "1")
		mustCount(t, e, m, a, "2")
		if _, err := counterCall(t, e, m, a, "trap", Limits{}); codeOf(err) != execapi.CodeTrap {
			t.Fatalf("err = %v, want trap", err)
		}
		mustCount(t, e, m, a, "1")
		if st := e.ReuseStats(); st.Discards != 1 {
			t.Fatalf("stats = %+v, want 1 discard", st)
		}
	})
	t.Run("a timeout, a handler error and a bad handler discard it too", func(t *testing.T) {
		e := newEngine(t, Config{})
		m := compile(t, e, counter)
		a := &Reuse{Key: "a"}
		for _, tt := range []struct{ export, code string }{
			{"loop", execapi.CodeTimeout},
			{"fail", execapi.CodeHandlerError},
		} {
			mustCount(t, e, m, a, "1")
			mustCount(t, e, m, a, "2")
			if _, err := counterCall(t, e, m, a, tt.export, Limits{Timeout: 50 * time.Millisecond}); codeOf(err) != tt.code {
				t.Fatalf("%s: err = %v, want %s", tt.export, err, tt.code)
			}
		}
		mustCount(t, e, m, a, "1")
		if st := e.ReuseStats(); st.Discards != 2 {
			t.Fatalf("stats = %+v, want 2 discards", st)
		}
	})
	t.Run("max_calls recycles the instance", func(t *testing.T) {
		e := newEngine(t, Config{})
		m := compile(t, e, counter)
		a := &Reuse{Key: "a", MaxCalls: 3}
		for _, want := range []string{"1", "2", "3", "1", "2", "3", "1"} {
			mustCount(t, e, m, a, want)
		}
		if st := e.ReuseStats(); st.Recycled != 2 {
			t.Fatalf("stats = %+v, want 2 recycled", st)
		}
	})
	t.Run("max_age recycles the instance", func(t *testing.T) {
		e := newEngine(t, Config{})
		m := compile(t, e, counter)
		var now atomic.Int64 // the engine's sweeper reads the clock too
		now.Store(time.Now().UnixNano())
		e.pool.mu.Lock()
		e.pool.now = func() time.Time { return time.Unix(0, now.Load()) }
		e.pool.mu.Unlock()
		a := &Reuse{Key: "a", MaxAge: time.Minute}
		mustCount(t, e, m, a, "1")
		mustCount(t, e, m, a, "2")
		now.Add(int64(time.Minute))
		mustCount(t, e, m, a, "1")
	})
	t.Run("reuse off is a fresh instance per call", func(t *testing.T) {
		e := newEngine(t, Config{})
		m := compile(t, e, counter)
		for range 3 {
			mustCount(t, e, m, nil, "1")
		}
		if st := e.ReuseStats(); st != (ReuseStats{}) {
			t.Fatalf("stats = %+v, want nothing pooled", st)
		}
	})
	t.Run("another memory cap does not take the instance", func(t *testing.T) {
		e := newEngine(t, Config{})
		m := compile(t, e, counter)
		a := &Reuse{Key: "a"}
		mustCount(t, e, m, a, "1")
		got, err := counterCall(t, e, m, a, "handler", Limits{MemoryBytes: 32 << 20})
		if err != nil || got != "1" {
			t.Fatalf("count = %q, %v, want a fresh instance (1)", got, err)
		}
		mustCount(t, e, m, a, "2")
	})
	t.Run("the idle pool is bounded in all, least recently used evicted", func(t *testing.T) {
		e := newEngine(t, Config{MaxIdleInstances: 2})
		m := compile(t, e, counter)
		a, b, c := &Reuse{Key: "a"}, &Reuse{Key: "b"}, &Reuse{Key: "c"}
		mustCount(t, e, m, a, "1")
		mustCount(t, e, m, b, "1")
		mustCount(t, e, m, a, "2") // a is now the most recently used
		mustCount(t, e, m, c, "1") // evicts b
		if st := e.ReuseStats(); st.Idle != 2 || st.Evicted != 1 {
			t.Fatalf("stats = %+v, want 2 idle, 1 evicted", st)
		}
		mustCount(t, e, m, a, "3")
		mustCount(t, e, m, b, "1")
	})
	t.Run("concurrent calls of one install each get their own instance, one call at a time", func(t *testing.T) {
		e := newEngine(t, Config{MaxIdlePerInstall: 2})
		m := compile(t, e, counter)
		a := &Reuse{Key: "a"}
		var wg sync.WaitGroup
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 20 {
					if _, err := counterCall(t, e, m, a, "handler", Limits{}); err != nil {
						t.Error(err)
					}
				}
			}()
		}
		wg.Wait()
		if st := e.ReuseStats(); st.Idle > 2 || st.Hits+st.Misses != 160 {
			t.Fatalf("stats = %+v, want at most 2 idle and 160 lookups", st)
		}
	})
	t.Run("closing the engine drops the idle instances", func(t *testing.T) {
		e := newEngine(t, Config{})
		m := compile(t, e, counter)
		mustCount(t, e, m, &Reuse{Key: "a"}, "1")
		e.Close()
		if st := e.ReuseStats(); st.Idle != 0 {
			t.Fatalf("stats = %+v after Close", st)
		}
	})
}

// TestInstanceReuseCapturesStdioPerCall: a kept WASI instance keeps its
// pipes, and each call gets exactly what it printed.
func TestInstanceReuseCapturesStdioPerCall(t *testing.T) {
	e := newEngine(t, Config{})
	m := compile(t, e, guests.MustWasm(t, "wasi_print.wat", nil))
	for i := range 3 {
		inv := hostapi.NewInvocation(context.Background(), &execapi.Request{}, hostapi.Budgets{})
		res, err := e.RunReused(context.Background(), Reuse{Key: "a"}, m, "handler", testRequest, Limits{}, inv)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, l := range res.Host.Logs {
			got = append(got, l.Stream+":"+l.Message)
		}
		if want := "stdout:hello from stdout,stderr:oops on stderr"; strings.Join(got, ",") != want {
			t.Fatalf("call %d logs = %q, want %q", i, got, want)
		}
	}
	if st := e.ReuseStats(); st.Hits != 2 {
		t.Fatalf("stats = %+v, want 2 hits", st)
	}
}

// TestGuestFailuresWithReuse runs the §14 misbehaving guests with instance
// reuse on: each is classified as without reuse, twice in a row (the
// second call must not inherit a broken instance), and none is kept.
func TestGuestFailuresWithReuse(t *testing.T) {
	e := newEngine(t, Config{})
	short := Limits{Timeout: 200 * time.Millisecond, InitTimeout: 200 * time.Millisecond}
	for _, tt := range []struct {
		name, guest, export string
		lim                 Limits
		code                string
	}{
		{"infinite loop", "loop.wat", "", short, execapi.CodeTimeout},
		{"infinite loop in _initialize", "loop_init.wat", "", short, execapi.CodeTimeout},
		{"memory bomb", "membomb.wat", "", Limits{MemoryBytes: 16 << 20}, execapi.CodeMemoryLimit},
		{"initial memory over the cap", "bigmem.wat", "", Limits{}, execapi.CodeMemoryLimit},
		{"deep recursion", "recursion.wat", "", Limits{}, execapi.CodeTrap},
		{"unreachable", "unreachable.wat", "", Limits{}, execapi.CodeTrap},
		{"huge response", "huge_response.wat", "", Limits{}, execapi.CodeBadHandler},
		{"response pointer out of bounds", "oob_response.wat", "", Limits{}, execapi.CodeBadHandler},
		{"response length out of bounds", "oob_response_len.wat", "", Limits{}, execapi.CodeBadHandler},
		{"invalid status", "bad_status.wat", "", Limits{}, execapi.CodeBadHandler},
		{"invalid header", "bad_header.wat", "", Limits{}, execapi.CodeBadHandler},
		{"non-zero return", "nonzero.wat", "", Limits{}, execapi.CodeHandlerError},
		{"missing memory", "no_memory.wat", "", Limits{}, execapi.CodeBadHandler},
		{"alloc out of bounds", "alloc_oob.wat", "", Limits{}, execapi.CodeBadHandler},
		{"log call with a bad pointer", "log_oob.wat", "", Limits{}, execapi.CodeTrap},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m := compile(t, e, guests.MustWasm(t, tt.guest, nil))
			export := tt.export
			if export == "" {
				export = "handler"
			}
			before := e.ReuseStats()
			for i := range 2 {
				inv := hostapi.NewInvocation(context.Background(), &execapi.Request{}, hostapi.Budgets{})
				_, err := e.RunReused(context.Background(), Reuse{Key: "misbehaving/" + tt.guest}, m, export, testRequest, tt.lim, inv)
				if got := codeOf(err); got != tt.code {
					t.Fatalf("call %d: code = %q (%v), want %q", i, got, err, tt.code)
				}
			}
			after := e.ReuseStats()
			if after.Hits != before.Hits || after.Idle != 0 {
				t.Fatalf("a failed instance was reused or kept: before %+v, after %+v", before, after)
			}
		})
	}
}

// TestInstanceReuseResetsLimitsPerCall: the fuel budget and the epoch
// deadline are set anew for every call of a kept instance.
func TestInstanceReuseResetsLimitsPerCall(t *testing.T) {
	t.Run("fuel", func(t *testing.T) {
		e := newEngine(t, Config{Fuel: true})
		m := compile(t, e, guests.MustWasm(t, "counter.wat", nil))
		a := &Reuse{Key: "a"}
		for range 5 {
			// Each call needs far less than the budget; were it not reset,
			// the calls would add up to more.
			if _, err := counterCall(t, e, m, a, "handler", Limits{Fuel: 2000}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := counterCall(t, e, m, a, "loop", Limits{Fuel: 100_000}); codeOf(err) != execapi.CodeFuelExhausted {
			t.Fatalf("err = %v, want fuel_exhausted", err)
		}
	})
	t.Run("deadline", func(t *testing.T) {
		e := newEngine(t, Config{})
		m := compile(t, e, guests.MustWasm(t, "counter.wat", nil))
		a := &Reuse{Key: "a"}
		mustCount(t, e, m, a, "1")
		time.Sleep(150 * time.Millisecond) // longer than the next call's timeout
		got, err := counterCall(t, e, m, a, "handler", Limits{Timeout: 100 * time.Millisecond})
		if err != nil || got != "2" {
			t.Fatalf("count = %q, %v, want 2 within a fresh deadline", got, err)
		}
		start := time.Now()
		if _, err := counterCall(t, e, m, a, "loop", Limits{Timeout: 100 * time.Millisecond}); codeOf(err) != execapi.CodeTimeout {
			t.Fatalf("err = %v, want timeout", err)
		}
		if el := time.Since(start); el > time.Second {
			t.Fatalf("loop in a kept instance stopped after %v", el)
		}
	})
}

// TestInstanceReuseStdioFloodAndDescriptors: a kept instance that floods
// stdout still answers within the log budget each call, and instances
// dropped by recycling, eviction or Close leave no descriptors behind.
func TestInstanceReuseStdioFloodAndDescriptors(t *testing.T) {
	e := newEngine(t, Config{MaxIdleInstances: 2})
	flood := compile(t, e, guests.MustWasm(t, "stdout_flood.wat", nil))
	for i := range 2 {
		inv := hostapi.NewInvocation(context.Background(), &execapi.Request{}, hostapi.Budgets{})
		res, err := e.RunReused(context.Background(), Reuse{Key: "flood"}, flood, "handler", testRequest, Limits{}, inv)
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		if res.Host.LogBytes == 0 || res.Host.LogBytes > hostapi.DefaultMaxLogBytes {
			t.Fatalf("call %d kept %d log bytes, want some, at most the budget", i, res.Host.LogBytes)
		}
	}
	m := compile(t, e, guests.MustWasm(t, "wasi_print.wat", nil))
	call := func(key string) {
		inv := hostapi.NewInvocation(context.Background(), &execapi.Request{}, hostapi.Budgets{})
		if _, err := e.RunReused(context.Background(), Reuse{Key: key, MaxCalls: 3}, m, "handler", testRequest, Limits{}, inv); err != nil {
			t.Fatal(err)
		}
	}
	call("warm")
	before := openFDs(t)
	for i := range 200 {
		call(string(rune('a' + (i/4)%5))) // five installs in turns through a pool of two
	}
	e.Close()
	if after := openFDs(t); after > before+4 {
		t.Fatalf("%d open descriptors after 200 reused calls and Close, %d before", after, before)
	}
	if st := e.ReuseStats(); st.Evicted == 0 || st.Recycled == 0 {
		t.Fatalf("stats = %+v, want evictions and recycling", st)
	}
}

// TestIdleInstancesPastTheirAgeAreSwept: without any further reuse call,
// the engine's sweeper drops an idle instance once its max_age passed.
func TestIdleInstancesPastTheirAgeAreSwept(t *testing.T) {
	e := newEngine(t, Config{})
	m := compile(t, e, guests.MustWasm(t, "counter.wat", nil))
	mustCount(t, e, m, &Reuse{Key: "a", MaxAge: 100 * time.Millisecond}, "1")
	deadline := time.Now().Add(5 * time.Second)
	for e.ReuseStats().Idle != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("stats = %+v: the idle instance was not swept", e.ReuseStats())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if st := e.ReuseStats(); st.Recycled != 1 {
		t.Fatalf("stats = %+v, want 1 recycled", st)
	}
}
