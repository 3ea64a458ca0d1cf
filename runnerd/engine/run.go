package engine

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/bytecodealliance/wasmtime-go/v39"

	"github.com/extedge/extedge/internal/execapi"
	"github.com/extedge/extedge/runnerd/hostapi"
)

// Limits are the hard limits of one call.
type Limits struct {
	// Timeout is the guest's deadline, counted from just before the
	// handler export is called. Default: 5s.
	Timeout time.Duration
	// InitTimeout bounds instantiation and _initialize, which are not
	// charged to Timeout. Default: 5s.
	InitTimeout time.Duration
	// MemoryBytes caps the instance's linear memory. Default: 64 MiB.
	MemoryBytes int64
	// Fuel is the handler's fuel budget when the engine meters fuel; 0 means
	// unmetered.
	Fuel uint64
	// MaxResponseBytes caps the guest's response JSON. Default: 8 MiB.
	MaxResponseBytes int
	// StartDemoted runs the call at the lowest thread priority from its
	// first instruction instead of after Config.DemoteAfter of CPU. The
	// server sets it for installs whose recent calls were demoted
	// (server.heavyInstalls), so a flood of long calls never runs its
	// first DemoteAfter at normal priority. Ignored when demotion is off.
	StartDemoted bool
}

// Defaults of Limits (SPEC §5.4).
const (
	DefaultTimeout          = 5 * time.Second
	DefaultInitTimeout      = 5 * time.Second
	DefaultMemoryBytes      = 64 << 20
	DefaultMaxResponseBytes = 8 << 20
)

func (l Limits) withDefaults() Limits {
	if l.Timeout <= 0 {
		l.Timeout = DefaultTimeout
	}
	if l.InitTimeout <= 0 {
		l.InitTimeout = DefaultInitTimeout
	}
	if l.MemoryBytes <= 0 {
		l.MemoryBytes = DefaultMemoryBytes
	}
	if l.MaxResponseBytes <= 0 {
		l.MaxResponseBytes = DefaultMaxResponseBytes
	}
	return l
}

// Stats describe one call, for execution records and metrics.
type Stats struct {
	// Instantiate is the time to create the instance and run _initialize.
	Instantiate time.Duration
	// Guest is the time spent in the handler export.
	Guest time.Duration
	// FuelUsed is the handler's fuel consumption (0 when unmetered).
	FuelUsed uint64
	// PeakMemoryBytes is the instance's final linear memory size (memory
	// only grows, so it is the peak).
	PeakMemoryBytes int64
	// CPU is the CPU time of the thread that ran the call (instantiation,
	// handler and host calls); 0 where the platform cannot measure it.
	CPU time.Duration
	// Demoted reports that the call used more than Config.DemoteAfter of
	// CPU and finished at the lowest thread priority.
	Demoted bool
	// Reused reports that a kept instance served the call (RunReused);
	// Instantiate is then only the ABI's alloc calls.
	Reused bool
}

// Result is a call's outcome. Response is set on success.
type Result struct {
	Response *execapi.Response
	Stats    Stats
	// Host is what the host capabilities produced in the call (logs,
	// egress bytes, metric samples, host calls), set whether or not the
	// call succeeded.
	Host hostapi.Report
}

// callState is the store data of one call.
type callState struct {
	inv      *hostapi.Invocation
	hostTrap func(msg string) *wasmtime.Trap
	// trapMsg is the reason of a trap raised by the host (bad pointers in
	// host calls); it replaces wasmtime's generic text in the error.
	trapMsg string
}

// Run calls export of m with the request JSON under lim, in a fresh
// instance, with inv as the host-call state, and finishes inv into
// Result.Host. A failure is an *execapi.Error carrying its §6.2 code; the
// Result is non-nil either way so that stats and the host report can be
// recorded.
func (e *Engine) Run(ctx context.Context, m *Module, export string, request []byte, lim Limits, inv *hostapi.Invocation) (*Result, error) {
	return e.call(ctx, nil, m, export, request, lim, inv)
}

// RunReused is Run with instance reuse (SPEC §6.5): an idle instance of
// reuse.Key and m serves the call when there is one, and the instance is
// kept for the next call of reuse.Key when this one succeeds. Any failure
// (trap, timeout, memory or fuel limit, handler error, bad handler)
// discards it. Limits are applied to every call as in Run: the epoch
// deadline and the fuel are set anew, and the memory cap is part of what
// an idle instance must match.
func (e *Engine) RunReused(ctx context.Context, reuse Reuse, m *Module, export string, request []byte, lim Limits, inv *hostapi.Invocation) (*Result, error) {
	reuse = reuse.withDefaults()
	return e.call(ctx, &reuse, m, export, request, lim, inv)
}

func (e *Engine) call(ctx context.Context, reuse *Reuse, m *Module, export string, request []byte, lim Limits, inv *hostapi.Invocation) (*Result, error) {
	lim = lim.withDefaults()
	var (
		in             *instance
		res            *Result
		err            error
		kept           bool
		stdout, stderr []byte // of a kept instance's call
	)
	// A demoted call leaves SCHED_IDLE once its handler's time limit has
	// passed (counted from here, a little early by the start-up time), so
	// it can trap however busy the cores are.
	cpu, demoted := onThread(e.cfg.DemoteAfter, lim.StartDemoted, lim.Timeout, func() {
		res, in, err = e.run(ctx, reuse, m, export, request, lim, inv)
		if in == nil {
			return
		}
		failed := err != nil
		if err == errDeallocFailed {
			err = nil
		}
		if reuse != nil && !failed {
			kept = true
			if in.stdio != nil {
				stdout, stderr = in.stdio.endCall()
			}
			return
		}
		if reuse != nil {
			e.pool.discard()
		}
		in.close()
	})
	res.Stats.CPU, res.Stats.Demoted = cpu, demoted
	if in != nil && in.stdio != nil {
		stdio := in.stdio
		if kept {
			emit(e.hosts, inv, stdout, stderr)
		} else {
			// The store is closed now, so wasmtime's ends of the pipes are too.
			stdio.finish(e.hosts, inv)
			var ee *execapi.Error
			if errors.As(err, &ee) && ee.Code == execapi.CodeTrap && bytes.Contains(stdio.stderr.b, []byte(oomMarker)) {
				// Go's runtime reports a refused grow on stderr and exits.
				err = &execapi.Error{Code: execapi.CodeMemoryLimit, Message: fmt.Sprintf("guest exceeded its %d MiB memory limit", lim.MemoryBytes>>20)}
			}
		}
	}
	if kept {
		// Nothing of this call stays reachable from the idle instance but
		// the guest's own state.
		in.cs.inv, in.cs.trapMsg = nil, ""
		e.pool.put(in, reuse.MaxCalls)
	}
	res.Host = inv.Finish()
	return res, err
}

// newInstance makes a store and instance of m under lim and runs
// _initialize. The store is in the returned instance even on failure, for
// the caller to close.
func (e *Engine) newInstance(ctx context.Context, m *Module, lim Limits, inv *hostapi.Invocation) (*instance, error) {
	if e.slots != nil && lim.MemoryBytes > e.cfg.Pooling.MaxMemoryBytes {
		return nil, &execapi.Error{Code: execapi.CodeBadRequest, Message: fmt.Sprintf("memory limit of %d MiB is above the runner's %d MiB per instance", lim.MemoryBytes>>20, e.cfg.Pooling.MaxMemoryBytes>>20)}
	}
	release, err := e.slots.acquire(ctx, initTimeout(ctx, lim), e.pool.evictOldest)
	if err != nil {
		return nil, err
	}
	cs := &callState{inv: inv}
	cs.hostTrap = func(msg string) *wasmtime.Trap {
		if cs.trapMsg == "" {
			cs.trapMsg = msg
		}
		return wasmtime.NewTrap(msg)
	}
	in := &instance{cs: cs, store: wasmtime.NewStoreWithData(e.wt, cs), release: release}
	// One memory, a few tables (Go guests use one large function table),
	// and no more instances than the module itself.
	in.store.Limiter(lim.MemoryBytes, 1<<20, 4, 4, 1)
	if e.cfg.Fuel {
		_ = in.store.SetFuel(math.MaxInt64)
	}
	if m.wasi {
		if in.stdio, err = newStdio(in.store, inv.Budgets.MaxLogBytes); err != nil {
			return in, &execapi.Error{Code: execapi.CodeInternal, Message: "preparing wasi"}
		}
	}
	in.store.SetEpochDeadline(e.ticks(initTimeout(ctx, lim)))
	inst, err := e.linker.Instantiate(in.store, m.wt)
	if isPoolLimit(err) {
		return in, errPoolExhausted(cap(e.slots))
	}
	if err != nil {
		return in, cs.classify(err, phaseInstantiate, in.store, nil, lim)
	}
	in.inst = inst
	if m.init {
		if _, err := inst.GetFunc(in.store, "_initialize").Call(in.store); err != nil {
			return in, cs.classify(err, phaseInit, in.store, inst, lim)
		}
	}
	in.mem = inst.GetExport(in.store, "memory").Memory()
	in.alloc = inst.GetFunc(in.store, "alloc")
	return in, nil
}

// initTimeout is the deadline of instantiation, _initialize and the
// ABI's alloc calls: InitTimeout, within the caller's deadline.
func initTimeout(ctx context.Context, lim Limits) time.Duration {
	d := lim.InitTimeout
	if dl, ok := ctx.Deadline(); ok {
		d = max(min(d, time.Until(dl)), time.Millisecond)
	}
	return d
}

// run makes or takes an instance and calls export in it. The instance is
// returned (nil when none was made) for call to keep or close.
func (e *Engine) run(ctx context.Context, reuse *Reuse, m *Module, export string, request []byte, lim Limits, inv *hostapi.Invocation) (*Result, *instance, error) {
	res := &Result{}
	if why := m.checkABI(export); why != "" {
		return res, nil, badHandler("%s", why)
	}
	if err := ctx.Err(); err != nil {
		return res, nil, &execapi.Error{Code: execapi.CodeTimeout, Message: "request ended before the guest started"}
	}
	start := time.Now()
	var in *instance
	if reuse != nil {
		key := poolKey{owner: reuse.Key, module: m, memBytes: lim.MemoryBytes}
		if in = e.pool.get(key); in != nil {
			res.Stats.Reused = true
			in.cs.inv, in.cs.trapMsg = inv, ""
			if in.stdio != nil {
				in.stdio.beginCall(inv.Budgets.MaxLogBytes)
			}
			if e.cfg.Fuel {
				_ = in.store.SetFuel(math.MaxInt64)
			}
			in.store.SetEpochDeadline(e.ticks(initTimeout(ctx, lim)))
		} else {
			var err error
			if in, err = e.newInstance(ctx, m, lim, inv); err != nil {
				return res, in, err
			}
			in.key, in.maxAge, in.born = key, reuse.MaxAge, e.pool.now()
		}
	} else {
		var err error
		if in, err = e.newInstance(ctx, m, lim, inv); err != nil {
			return res, in, err
		}
	}
	in.calls++
	store, inst, cs, mem := in.store, in.inst, in.cs, in.mem
	reqPtr, err := callAlloc(store, in.alloc, len(request))
	if err != nil {
		return res, in, cs.classify(err, phaseAlloc, store, inst, lim)
	}
	dst, ok := guestBytes(mem.UnsafeData(store), reqPtr, int32(len(request)))
	if !ok {
		return res, in, badHandler("alloc returned an out-of-bounds pointer for the request")
	}
	copy(dst, request)
	outPtr, err := callAlloc(store, in.alloc, 8)
	if err != nil {
		return res, in, cs.classify(err, phaseAlloc, store, inst, lim)
	}
	if _, ok := guestBytes(mem.UnsafeData(store), outPtr, 8); !ok {
		return res, in, badHandler("alloc returned an out-of-bounds pointer for the out area")
	}
	res.Stats.Instantiate = time.Since(start)

	// The guest's clock starts here: compilation, queueing and
	// instantiation are not charged to it, but the caller's own deadline
	// still bounds the call.
	timeout := lim.Timeout
	if dl, ok := ctx.Deadline(); ok {
		if left := time.Until(dl); left < timeout {
			timeout = max(left, time.Millisecond)
		}
	}
	if e.cfg.Fuel && lim.Fuel > 0 {
		_ = store.SetFuel(lim.Fuel)
	}
	guestStart := time.Now()
	endHostCtx := inv.Begin(guestStart.Add(timeout))
	defer endHostCtx()
	store.SetEpochDeadline(e.ticks(timeout))
	ret, err := inst.GetFunc(store, export).Call(store, reqPtr, int32(len(request)), outPtr)
	res.Stats.Guest = time.Since(guestStart)
	if e.cfg.Fuel && lim.Fuel > 0 {
		if left, ferr := store.GetFuel(); ferr == nil && left <= lim.Fuel {
			res.Stats.FuelUsed = lim.Fuel - left
		}
	}
	res.Stats.PeakMemoryBytes = int64(mem.DataSize(store))
	if err != nil {
		return res, in, cs.classify(err, phaseHandler, store, inst, lim)
	}
	if code, _ := ret.(int32); code != 0 {
		return res, in, &execapi.Error{Code: execapi.CodeHandlerError, Message: fmt.Sprintf("handler returned %d", code)}
	}

	out, ok := guestBytes(mem.UnsafeData(store), outPtr, 8)
	if !ok {
		return res, in, badHandler("out area is out of bounds")
	}
	respPtr := int32(binary.LittleEndian.Uint32(out[0:4]))
	respLen := binary.LittleEndian.Uint32(out[4:8])
	if uint64(respLen) > uint64(lim.MaxResponseBytes) {
		return res, in, badHandler("response is %d bytes, more than the %d-byte limit", respLen, lim.MaxResponseBytes)
	}
	raw, ok := guestBytes(mem.UnsafeData(store), respPtr, int32(respLen))
	if !ok {
		return res, in, badHandler("response pointer (%d, %d) is out of bounds", uint32(respPtr), respLen)
	}
	resp, herr := parseResponse(raw)
	if herr != nil {
		return res, in, herr
	}
	if m.dealloc {
		// Freeing matters to a kept instance (its memory would only grow)
		// and is a courtesy to guests that check for leaks otherwise. A
		// failure here does not fail the call, but a kept instance that
		// cannot free is not trusted with the next one.
		dealloc := inst.GetFunc(store, "dealloc")
		_, err1 := dealloc.Call(store, reqPtr, int32(len(request)))
		_, err2 := dealloc.Call(store, outPtr, int32(8))
		_, err3 := dealloc.Call(store, respPtr, int32(respLen))
		if reuse != nil && (err1 != nil || err2 != nil || err3 != nil) {
			res.Response = resp
			return res, in, errDeallocFailed
		}
	}
	res.Response = resp
	return res, in, nil
}

// errDeallocFailed is run's report of a call that succeeded in a kept
// instance whose dealloc then failed: the reply stands, the instance goes.
var errDeallocFailed = errors.New("dealloc failed")

func callAlloc(store *wasmtime.Store, alloc *wasmtime.Func, n int) (int32, error) {
	v, err := alloc.Call(store, int32(n))
	if err != nil {
		return 0, err
	}
	p, ok := v.(int32)
	if !ok {
		return 0, badHandler("alloc returned no i32")
	}
	return p, nil
}

func badHandler(format string, args ...any) *execapi.Error {
	return &execapi.Error{Code: execapi.CodeBadHandler, Message: fmt.Sprintf(format, args...)}
}
