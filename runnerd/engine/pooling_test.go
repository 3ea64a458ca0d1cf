package engine

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bytecodealliance/wasmtime-go/v39"

	"github.com/extedge/extedge/internal/execapi"
	"github.com/extedge/extedge/runnerd/hostapi"
	"github.com/extedge/extedge/runnerd/runnertest/guests"
)

// TestPoolingShimMatchesConfigLayout guards the unsafe read in configPtr:
// wasmtime-go's Config must still be one pointer field and nothing else.
func TestPoolingShimMatchesConfigLayout(t *testing.T) {
	ct := reflect.TypeOf(wasmtime.Config{})
	if ct.NumField() != 1 || ct.Field(0).Type.Kind() != reflect.Pointer || ct.Field(0).Offset != 0 || ct.Size() != ct.Field(0).Type.Size() {
		t.Fatalf("wasmtime.Config layout changed (%d fields); configPtr in pooling.go must be revisited", ct.NumField())
	}
	if configPtr(wasmtime.NewConfig()) == nil {
		t.Fatal("configPtr of a new config is nil")
	}
}

// TestPoolingAllocatorIsWasmtimes shows the shim reached wasmtime: with
// one slot, a second live instance made behind the engine's slot count is
// refused by wasmtime's pool itself, and a closed store frees its slot.
func TestPoolingAllocatorIsWasmtimes(t *testing.T) {
	e := newEngine(t, Config{Pooling: Pooling{Instances: 1}})
	if !e.Pooling() {
		t.Fatal("pooling is off by default")
	}
	m := compile(t, e, guests.MustWasm(t, "ok.wat", nil))
	first := wasmtime.NewStore(e.wt)
	defer first.Close()
	if _, err := e.linker.Instantiate(first, m.wt); err != nil {
		t.Fatal(err)
	}
	second := wasmtime.NewStore(e.wt)
	_, err := e.linker.Instantiate(second, m.wt)
	second.Close()
	if !isPoolLimit(err) {
		t.Fatalf("second instance in a one-slot pool: err = %v, want wasmtime's pool limit", err)
	}
	first.Close()
	third := wasmtime.NewStore(e.wt)
	defer third.Close()
	if _, err := e.linker.Instantiate(third, m.wt); err != nil {
		t.Fatalf("after the first store closed: %v", err)
	}
}

// TestPoolingOffStillRuns: the on-demand allocator remains available.
func TestPoolingOffStillRuns(t *testing.T) {
	e := newEngine(t, Config{Pooling: Pooling{Off: true}})
	if e.Pooling() {
		t.Fatal("Pooling.Off left pooling on")
	}
	if _, _, err := run(t, e, guests.MustWasm(t, "ok.wat", nil), "handler", Limits{}); err != nil {
		t.Fatal(err)
	}
}

// TestMemoryLimitIsPerInstanceUnderPooling: the pool's slot size is only
// the ceiling; each call's own memory limit still applies to its instance,
// and a limit above the slot size is refused rather than silently lowered.
func TestMemoryLimitIsPerInstanceUnderPooling(t *testing.T) {
	e := newEngine(t, Config{Pooling: Pooling{Instances: 4, MaxMemoryBytes: 64 << 20}})
	bomb := guests.MustWasm(t, "membomb.wat", nil)
	for _, mib := range []int64{8, 32, 64} {
		res, _, err := run(t, e, bomb, "handler", Limits{MemoryBytes: mib << 20})
		if codeOf(err) != execapi.CodeMemoryLimit || !strings.Contains(err.Error(), fmt.Sprintf(" %d MiB", mib)) {
			t.Fatalf("%d MiB limit: err = %v", mib, err)
		}
		if res.Stats.PeakMemoryBytes > mib<<20 {
			t.Fatalf("%d MiB limit: peak %d bytes", mib, res.Stats.PeakMemoryBytes)
		}
	}
	_, _, err := run(t, e, bomb, "handler", Limits{MemoryBytes: 128 << 20})
	if codeOf(err) != execapi.CodeBadRequest || !strings.Contains(err.Error(), "64 MiB per instance") {
		t.Fatalf("limit above the slot size: err = %v", err)
	}
	if _, _, err := run(t, e, guests.MustWasm(t, "ok.wat", nil), "handler", Limits{MemoryBytes: 64 << 20}); err != nil {
		t.Fatalf("after the bombs: %v", err)
	}
}

// TestPoolExhaustionQueuesThenIsConcurrencyLimited runs more concurrent
// calls than there are slots: calls wait for a slot within their init
// deadline (all succeed, never more than the slots at once), and past it
// fail with concurrency_limited — never a crash or an internal error.
func TestPoolExhaustionQueuesThenIsConcurrencyLimited(t *testing.T) {
	const slotCount, calls = 2, 5
	e := newEngine(t, Config{Pooling: Pooling{Instances: slotCount}})
	m := compile(t, e, guests.MustWasm(t, "slow.wat", map[string]string{"MS": "150"}))
	runAll := func(lim Limits) (codes map[string]int, peak int32) {
		var (
			mu       sync.Mutex
			wg       sync.WaitGroup
			inFlight atomic.Int32
		)
		codes = map[string]int{}
		for i := 0; i < calls; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				inv := hostapi.NewInvocation(context.Background(), &execapi.Request{}, hostapi.Budgets{})
				_, err := e.Run(context.Background(), m, "handler", testRequest, lim, inv)
				mu.Lock()
				codes[codeOf(err)]++
				mu.Unlock()
			}()
		}
		// Sample the slots taken while the calls run.
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		for {
			select {
			case <-done:
				return codes, inFlight.Load()
			case <-time.After(5 * time.Millisecond):
				if n := int32(len(e.slots)); n > inFlight.Load() {
					inFlight.Store(n)
				}
			}
		}
	}
	codes, peak := runAll(Limits{InitTimeout: 10 * time.Second})
	if codes[""] != calls || peak > slotCount {
		t.Fatalf("with time to wait: outcomes %v, peak %d slots in use", codes, peak)
	}
	codes, _ = runAll(Limits{InitTimeout: 20 * time.Millisecond})
	if codes[""] < slotCount || codes[""]+codes[execapi.CodeConcurrencyLimited] != calls || codes[execapi.CodeConcurrencyLimited] == 0 {
		t.Fatalf("with a short init deadline: outcomes %v, want %d ok and the rest concurrency_limited", codes, slotCount)
	}
	if len(e.slots) != 0 {
		t.Fatalf("%d slots still taken after every call returned", len(e.slots))
	}
}

// TestIdleReusedInstancesGiveWayToFreshCalls: idle instances kept for
// reuse hold slots, and a fresh call that finds none free evicts one
// instead of waiting.
func TestIdleReusedInstancesGiveWayToFreshCalls(t *testing.T) {
	e := newEngine(t, Config{Pooling: Pooling{Instances: 2}})
	m := compile(t, e, guests.MustWasm(t, "ok.wat", nil))
	for _, key := range []string{"a", "b"} {
		inv := hostapi.NewInvocation(context.Background(), &execapi.Request{}, hostapi.Budgets{})
		if _, err := e.RunReused(context.Background(), Reuse{Key: key}, m, "handler", testRequest, Limits{}, inv); err != nil {
			t.Fatal(err)
		}
	}
	if st := e.ReuseStats(); st.Idle != 2 || len(e.slots) != 2 {
		t.Fatalf("idle %d, slots taken %d; want both slots held by idle instances", st.Idle, len(e.slots))
	}
	inv := hostapi.NewInvocation(context.Background(), &execapi.Request{}, hostapi.Budgets{})
	if _, err := e.Run(context.Background(), m, "handler", testRequest, Limits{InitTimeout: time.Millisecond}, inv); err != nil {
		t.Fatalf("fresh call with every slot idle: %v", err)
	}
	if st := e.ReuseStats(); st.Evicted != 1 || st.Idle != 1 {
		t.Fatalf("after the fresh call: %+v", st)
	}
}

// TestReusedSlotStartsClean: a fresh instance that gets a pool slot back,
// kept resident or not, sees none of the previous instance's memory.
func TestReusedSlotStartsClean(t *testing.T) {
	for _, keep := range []int64{-1, 1 << 20, 64 << 20} {
		e := newEngine(t, Config{Pooling: Pooling{Instances: 1, KeepResidentBytes: keep}})
		m := compile(t, e, guests.MustWasm(t, "dirty.wat", nil))
		for i := 0; i < 3; i++ {
			inv := hostapi.NewInvocation(context.Background(), &execapi.Request{}, hostapi.Budgets{})
			if _, err := e.Run(context.Background(), m, "handler", testRequest, Limits{}, inv); err != nil {
				t.Fatalf("keep resident %d, call %d: %v (a mark of the previous call?)", keep, i, err)
			}
		}
	}
	// The guest does notice its marks: a kept instance (reuse) finds them.
	e := newEngine(t, Config{Pooling: Pooling{Instances: 1}})
	m := compile(t, e, guests.MustWasm(t, "dirty.wat", nil))
	var err error
	for i := 0; i < 2; i++ {
		inv := hostapi.NewInvocation(context.Background(), &execapi.Request{}, hostapi.Budgets{})
		_, err = e.RunReused(context.Background(), Reuse{Key: "k"}, m, "handler", testRequest, Limits{}, inv)
	}
	if codeOf(err) != execapi.CodeHandlerError {
		t.Fatalf("second call in a kept instance: %v, want handler_error from the mark", err)
	}
}
