package engine

// This file is the cgo shim that turns on wasmtime's pooling instance
// allocator and copy-on-write memory initialisation (SPEC §6.5), which
// wasmtime-go v39 does not expose in Go.
//
// How it reaches the config: wasmtime-go's Config is
//
//	type Config struct{ _ptr *C.wasm_config_t }
//
// with no accessor, and NewEngineWithConfig consumes that pointer, so the
// Engine must still come from wasmtime-go (its Linker, Store and Module
// only take a *wasmtime.Engine). The shim reads the pointer through
// unsafe: a *Config points at its only field. That is safe for v39.0.1
// because the struct has exactly one field, a pointer, which
// TestPoolingShimMatchesConfigLayout checks by reflection, so an upgrade
// that changes the layout fails a test rather than corrupting memory. The
// options are set before NewEngineWithConfig, while the Go Config (and
// with it the C config) is alive; runtime.KeepAlive holds it until then.
//
// The C functions are declared here, not included: wasmtime-go's headers
// are in its module directory, which this package's cgo flags cannot name,
// and the static libwasmtime that wasmtime-go links already defines them
// (it is built with WASMTIME_FEATURE_POOLING_ALLOCATOR).

/*
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct wasm_config_t wasm_config_t;
typedef struct wasmtime_pooling_allocation_config_t wasmtime_pooling_allocation_config_t;

extern wasmtime_pooling_allocation_config_t *wasmtime_pooling_allocation_config_new(void);
extern void wasmtime_pooling_allocation_config_delete(wasmtime_pooling_allocation_config_t *);
extern void wasmtime_pooling_allocation_config_total_core_instances_set(wasmtime_pooling_allocation_config_t *, uint32_t);
extern void wasmtime_pooling_allocation_config_total_memories_set(wasmtime_pooling_allocation_config_t *, uint32_t);
extern void wasmtime_pooling_allocation_config_total_tables_set(wasmtime_pooling_allocation_config_t *, uint32_t);
extern void wasmtime_pooling_allocation_config_total_stacks_set(wasmtime_pooling_allocation_config_t *, uint32_t);
extern void wasmtime_pooling_allocation_config_total_gc_heaps_set(wasmtime_pooling_allocation_config_t *, uint32_t);
extern void wasmtime_pooling_allocation_config_max_memories_per_module_set(wasmtime_pooling_allocation_config_t *, uint32_t);
extern void wasmtime_pooling_allocation_config_max_tables_per_module_set(wasmtime_pooling_allocation_config_t *, uint32_t);
extern void wasmtime_pooling_allocation_config_table_elements_set(wasmtime_pooling_allocation_config_t *, size_t);
extern void wasmtime_pooling_allocation_config_max_memory_size_set(wasmtime_pooling_allocation_config_t *, size_t);
extern void wasmtime_pooling_allocation_config_linear_memory_keep_resident_set(wasmtime_pooling_allocation_config_t *, size_t);
extern void wasmtime_pooling_allocation_config_table_keep_resident_set(wasmtime_pooling_allocation_config_t *, size_t);
extern void wasmtime_pooling_allocation_strategy_set(wasm_config_t *, const wasmtime_pooling_allocation_config_t *);
extern void wasmtime_config_memory_init_cow_set(wasm_config_t *, bool);

static void extedge_set_pooling(wasm_config_t *cfg, uint32_t instances, uint32_t tables_per_module,
		size_t table_elements, size_t max_memory_size, size_t keep_resident) {
	wasmtime_pooling_allocation_config_t *p = wasmtime_pooling_allocation_config_new();
	wasmtime_pooling_allocation_config_total_core_instances_set(p, instances);
	wasmtime_pooling_allocation_config_total_memories_set(p, instances);
	wasmtime_pooling_allocation_config_total_tables_set(p, instances * tables_per_module);
	// Async stacks and GC heaps default to 1000 slots each; the runner uses
	// neither, and 1000 stacks with guard pages are some 2000 mappings of
	// the process's vm.max_map_count (65530) per engine.
	wasmtime_pooling_allocation_config_total_stacks_set(p, 1);
	wasmtime_pooling_allocation_config_total_gc_heaps_set(p, 1);
	wasmtime_pooling_allocation_config_max_memories_per_module_set(p, 1);
	wasmtime_pooling_allocation_config_max_tables_per_module_set(p, tables_per_module);
	wasmtime_pooling_allocation_config_table_elements_set(p, table_elements);
	wasmtime_pooling_allocation_config_max_memory_size_set(p, max_memory_size);
	wasmtime_pooling_allocation_config_linear_memory_keep_resident_set(p, keep_resident);
	wasmtime_pooling_allocation_config_table_keep_resident_set(p, keep_resident);
	wasmtime_pooling_allocation_strategy_set(cfg, p);
	// The strategy copies the pooling config; it does not take ownership.
	wasmtime_pooling_allocation_config_delete(p);
	wasmtime_config_memory_init_cow_set(cfg, true);
}
*/
import "C"

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/bytecodealliance/wasmtime-go/v39"

	"github.com/extedge/extedge/internal/execapi"
)

// Pooling configures wasmtime's pooling instance allocator: every slot an
// instance needs (its instance, memory and tables) is reserved once when
// the engine starts and reused, so making a fresh instance is mostly
// resetting a slot, and a memory's initial data is mapped copy-on-write
// from the compiled module instead of copied.
type Pooling struct {
	// Off uses wasmtime's on-demand allocator instead (a fresh mmap per
	// instance). Default: pooling on.
	Off bool
	// Instances is the number of instances that can exist at once: calls
	// in flight plus idle instances kept for reuse (SPEC §6.5). A call that
	// finds every slot taken first drops an idle instance, then waits for
	// a slot until its init deadline and fails with concurrency_limited.
	// Default: DefaultPoolInstances.
	Instances int
	// MaxMemoryBytes is the largest linear memory a slot holds; calls may
	// not ask for a higher memory limit (their own limit still applies
	// per instance through the store's limiter). It only reserves address
	// space: pages are committed as a guest touches them. Default:
	// DefaultPoolMaxMemoryBytes.
	MaxMemoryBytes int64
	// KeepResidentBytes is how much of a slot's memory (and table) stays
	// mapped when its instance ends, zeroed instead of returned to the
	// kernel, so the next instance does not fault those pages in again.
	// Go guests touch some megabytes on start: keeping 16 MiB made the Go
	// hello's fresh instance about a third cheaper (bench/runner
	// BenchmarkReportPooling). It costs up to that much RSS per warm slot.
	// Negative keeps none. Default: DefaultPoolKeepResidentBytes.
	KeepResidentBytes int64
}

// Defaults of Pooling.
const (
	DefaultPoolInstances         = 64
	DefaultPoolMaxMemoryBytes    = 256 << 20
	DefaultPoolKeepResidentBytes = 16 << 20
	// poolTablesPerModule matches the store limiter's table count.
	poolTablesPerModule = 4
	// poolTableElements bounds a table's size in a slot; Go guests have
	// one function table of some tens of thousands of entries.
	poolTableElements = 1 << 20
)

func (p Pooling) withDefaults() Pooling {
	if p.Instances <= 0 {
		p.Instances = DefaultPoolInstances
	}
	if p.MaxMemoryBytes <= 0 {
		p.MaxMemoryBytes = DefaultPoolMaxMemoryBytes
	}
	if p.KeepResidentBytes == 0 {
		p.KeepResidentBytes = DefaultPoolKeepResidentBytes
	}
	if p.KeepResidentBytes < 0 {
		p.KeepResidentBytes = 0
	}
	return p
}

// configPtr is the C config behind wc (see the file comment).
func configPtr(wc *wasmtime.Config) *C.wasm_config_t {
	return *(**C.wasm_config_t)(unsafe.Pointer(wc))
}

// setPooling turns on the pooling allocator and copy-on-write memory
// initialisation in wc, which must not have been used for an engine yet.
func setPooling(wc *wasmtime.Config, p Pooling) {
	ptr := configPtr(wc)
	if ptr == nil {
		panic("engine: pooling on a used wasmtime config")
	}
	C.extedge_set_pooling(ptr, C.uint32_t(p.Instances), C.uint32_t(poolTablesPerModule),
		C.size_t(poolTableElements), C.size_t(p.MaxMemoryBytes), C.size_t(p.KeepResidentBytes))
	runtime.KeepAlive(wc)
}

// slots counts the pool's instance slots, so that a call waits for one
// instead of failing in wasmtime when all are taken. nil (pooling off)
// admits every call.
type slots chan struct{}

// acquire takes a slot, first without waiting, then after asking the idle
// pool to give one back, then waiting until d has passed or ctx ends. The
// returned release gives it back once (it is safe to call again).
func (s slots) acquire(ctx context.Context, d time.Duration, evictIdle func() bool) (release func(), err error) {
	if s == nil {
		return func() {}, nil
	}
	var once sync.Once
	release = func() { once.Do(func() { <-s }) }
	select {
	case s <- struct{}{}:
		return release, nil
	default:
	}
	// Idle instances of reusing installs hold slots too; a fresh call is
	// worth more than a kept one.
	for evictIdle() {
		select {
		case s <- struct{}{}:
			return release, nil
		default:
		}
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case s <- struct{}{}:
		return release, nil
	case <-t.C:
	case <-ctx.Done():
	}
	return nil, errPoolExhausted(cap(s))
}

func errPoolExhausted(n int) *execapi.Error {
	return &execapi.Error{Code: execapi.CodeConcurrencyLimited, Message: fmt.Sprintf("all %d instance slots of the runner are in use", n)}
}

// isPoolLimit reports wasmtime's own refusal when a pool is full ("maximum
// concurrent instance limit of N reached" and the like), which the slot
// count should prevent but is classified as concurrency_limited if not.
func isPoolLimit(err error) bool {
	return err != nil && strings.Contains(err.Error(), "maximum concurrent")
}
