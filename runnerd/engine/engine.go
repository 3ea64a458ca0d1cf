// Package engine runs Guest ABI v1 handlers (SPEC §5) in wasmtime with hard
// limits: one wasmtime engine per process, one epoch ticker for it, a fresh
// store and instance per call (or, for installs that opt in, one kept for
// the install's next calls: RunReused), a memory limiter, optional fuel, WASI without
// preopens, environment or arguments, and the host imports of a
// [hostapi.Set]. Every failure is classified into a §6.2 code and returned
// as an *execapi.Error.
package engine

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/bytecodealliance/wasmtime-go/v39"

	"github.com/extedge/extedge/runnerd/hostapi"
)

// WasmtimeVersion is the wasmtime-go release the runner is built with; it is
// part of the engine fingerprint that keys serialized modules on disk.
const WasmtimeVersion = "wasmtime-go/v39.0.1"

// Config is the process-wide engine configuration.
type Config struct {
	// EpochTick is how often the epoch ticker advances; deadlines are
	// rounded up to whole ticks. Default: 10ms.
	EpochTick time.Duration
	// Fuel turns on fuel metering for every call (it costs throughput even
	// when a call asks for no fuel limit). Default: off.
	Fuel bool
	// MaxWasmStack bounds the native stack wasm may use; deeper recursion
	// traps with a stack overflow. Default: 512 KiB.
	MaxWasmStack int
	// DemoteAfter is the CPU time after which a call's thread runs at the
	// lowest priority for the rest of the call (see onThread), so that
	// long calls yield the cores to short ones (SPEC §17). Negative
	// disables it. Default: DefaultDemoteAfter.
	DemoteAfter time.Duration
	// MaxIdleInstances bounds the instances kept for reuse (SPEC §6.5) in
	// the process; beyond it the least recently used is dropped. 0 means
	// DefaultMaxIdleInstances; negative keeps none.
	MaxIdleInstances int
	// MaxIdlePerInstall bounds the idle instances of one install and
	// module. 0 means DefaultMaxIdlePerInstall.
	MaxIdlePerInstall int
	// Pooling configures the pooling instance allocator (SPEC §6.5).
	// Default: on, DefaultPoolInstances slots of DefaultPoolMaxMemoryBytes.
	Pooling Pooling
}

// DefaultDemoteAfter is the default Config.DemoteAfter: well above a real
// handler call (a Go guest's fresh instance costs about 2 ms), well below
// a timeout.
const DefaultDemoteAfter = 10 * time.Millisecond

func (c Config) withDefaults() Config {
	if c.EpochTick <= 0 {
		c.EpochTick = 10 * time.Millisecond
	}
	if c.MaxWasmStack <= 0 {
		c.MaxWasmStack = 512 << 10
	}
	if c.DemoteAfter == 0 {
		c.DemoteAfter = DefaultDemoteAfter
	}
	if c.MaxIdleInstances == 0 {
		c.MaxIdleInstances = DefaultMaxIdleInstances
	}
	if c.MaxIdlePerInstall <= 0 {
		c.MaxIdlePerInstall = DefaultMaxIdlePerInstall
	}
	c.Pooling = c.Pooling.withDefaults()
	return c
}

// Engine is the process's wasmtime engine with its linker and epoch ticker.
// It is safe for concurrent use.
type Engine struct {
	cfg    Config
	wt     *wasmtime.Engine
	linker *wasmtime.Linker
	hosts  *hostapi.Set
	fp     string
	pool   *pool
	slots  slots // nil without pooling

	stop     chan struct{}
	stopOnce sync.Once
	done     sync.WaitGroup // the epoch ticker and the idle sweeper
}

// New creates the engine, links the host imports of hosts (and WASI) once,
// and starts the epoch ticker. Close stops it.
func New(cfg Config, hosts *hostapi.Set) (*Engine, error) {
	cfg = cfg.withDefaults()
	wc := wasmtime.NewConfig()
	wc.SetEpochInterruption(true)
	wc.SetConsumeFuel(cfg.Fuel)
	wc.SetMaxWasmStack(cfg.MaxWasmStack)
	if !cfg.Pooling.Off {
		setPooling(wc, cfg.Pooling)
	}
	e := &Engine{
		cfg:   cfg,
		wt:    wasmtime.NewEngineWithConfig(wc),
		hosts: hosts,
		pool:  newPool(cfg.MaxIdleInstances, cfg.MaxIdlePerInstall),
		stop:  make(chan struct{}),
	}
	if !cfg.Pooling.Off {
		e.slots = make(slots, cfg.Pooling.Instances)
	}
	e.fp = fingerprint(cfg)
	e.linker = wasmtime.NewLinker(e.wt)
	if err := e.linker.DefineWasi(); err != nil {
		return nil, fmt.Errorf("linking wasi: %v", err)
	}
	if err := e.linkHostImports(); err != nil {
		return nil, err
	}
	e.done.Add(2)
	go e.tick()
	go e.sweepIdle()
	return e, nil
}

// fingerprint identifies everything that makes a serialized module loadable:
// the wasmtime release, the flags that change generated code, and the
// target.
func fingerprint(cfg Config) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\nepoch=1\nfuel=%t\nstack=%d\n%s/%s\n",
		WasmtimeVersion, cfg.Fuel, cfg.MaxWasmStack, runtime.GOOS, runtime.GOARCH)
	return hex.EncodeToString(h.Sum(nil))[:32]
}

// Fingerprint identifies the engine's code generation settings; serialized
// modules are only valid for an engine with the same fingerprint.
func (e *Engine) Fingerprint() string { return e.fp }

// Pooling reports whether the pooling instance allocator is on.
func (e *Engine) Pooling() bool { return e.slots != nil }

// Fuel reports whether fuel metering is on.
func (e *Engine) Fuel() bool { return e.cfg.Fuel }

// EpochTick is the ticker period.
func (e *Engine) EpochTick() time.Duration { return e.cfg.EpochTick }

// DemoteAfter is the CPU time after which a call is demoted (0: never).
func (e *Engine) DemoteAfter() time.Duration { return e.cfg.DemoteAfter }

func (e *Engine) tick() {
	defer e.done.Done()
	t := time.NewTicker(e.cfg.EpochTick)
	defer t.Stop()
	for {
		select {
		case <-e.stop:
			return
		case <-t.C:
			e.wt.IncrementEpoch()
		}
	}
}

// sweepIdle drops idle instances past their max_age once a second, so an
// install that stopped calling (or stopped reusing) does not keep its
// instances until other installs' calls push them out.
func (e *Engine) sweepIdle() {
	defer e.done.Done()
	t := time.NewTicker(reuseSweepInterval)
	defer t.Stop()
	for {
		select {
		case <-e.stop:
			return
		case <-t.C:
			e.pool.sweep()
		}
	}
}

// ticks converts a duration into an epoch deadline that is never earlier
// than d: the ticker may advance right after the deadline is set, so one
// extra tick is added.
func (e *Engine) ticks(d time.Duration) uint64 {
	n := (d + e.cfg.EpochTick - 1) / e.cfg.EpochTick
	if n < 1 {
		n = 1
	}
	return uint64(n) + 1
}

// Close stops the epoch ticker and drops the idle instances. Calls still
// running are not interrupted by their deadline afterwards, so close only
// after draining.
func (e *Engine) Close() {
	e.stopOnce.Do(func() {
		close(e.stop)
		e.done.Wait()
		e.pool.close()
	})
}
