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

// Run calls export of m with the request JSON under lim, with inv as the
// host-call state, and finishes inv into Result.Host. A failure is an
// *execapi.Error carrying its §6.2 code; the Result is non-nil either way
// so that stats and the host report can be recorded.
func (e *Engine) Run(ctx context.Context, m *Module, export string, request []byte, lim Limits, inv *hostapi.Invocation) (*Result, error) {
	lim = lim.withDefaults()
	var (
		stdio *stdioCapture
		res   *Result
		err   error
	)
	// A demoted call leaves SCHED_IDLE once its handler's time limit has
	// passed (counted from here, a little early by the start-up time), so
	// it can trap however busy the cores are.
	cpu, demoted := onThread(e.cfg.DemoteAfter, lim.StartDemoted, lim.Timeout, func() {
		res, err = e.run(ctx, m, export, request, lim, inv, &stdio)
	})
	res.Stats.CPU, res.Stats.Demoted = cpu, demoted
	if stdio != nil {
		// The store is closed now, so wasmtime's ends of the pipes are too.
		stdio.finish(e.hosts, inv)
		var ee *execapi.Error
		if errors.As(err, &ee) && ee.Code == execapi.CodeTrap && bytes.Contains(stdio.stderr.b, []byte(oomMarker)) {
			// Go's runtime reports a refused grow on stderr and exits.
			err = &execapi.Error{Code: execapi.CodeMemoryLimit, Message: fmt.Sprintf("guest exceeded its %d MiB memory limit", lim.MemoryBytes>>20)}
		}
	}
	res.Host = inv.Finish()
	return res, err
}

func (e *Engine) run(ctx context.Context, m *Module, export string, request []byte, lim Limits, inv *hostapi.Invocation, stdioOut **stdioCapture) (*Result, error) {
	res := &Result{}
	if why := m.checkABI(export); why != "" {
		return res, badHandler("%s", why)
	}
	if err := ctx.Err(); err != nil {
		return res, &execapi.Error{Code: execapi.CodeTimeout, Message: "request ended before the guest started"}
	}
	cs := &callState{inv: inv}
	cs.hostTrap = func(msg string) *wasmtime.Trap {
		if cs.trapMsg == "" {
			cs.trapMsg = msg
		}
		return wasmtime.NewTrap(msg)
	}
	store := wasmtime.NewStoreWithData(e.wt, cs)
	defer store.Close()
	// One memory, a few tables (Go guests use one large function table),
	// and no more instances than the module itself.
	store.Limiter(lim.MemoryBytes, 1<<20, 4, 4, 1)
	if e.cfg.Fuel {
		_ = store.SetFuel(math.MaxInt64)
	}

	var stdio *stdioCapture
	if m.wasi {
		var err error
		if stdio, err = newStdio(store, inv.Budgets.MaxLogBytes); err != nil {
			return res, &execapi.Error{Code: execapi.CodeInternal, Message: "preparing wasi"}
		}
		*stdioOut = stdio
	}

	start := time.Now()
	initTimeout := lim.InitTimeout
	if dl, ok := ctx.Deadline(); ok {
		initTimeout = max(min(initTimeout, time.Until(dl)), time.Millisecond)
	}
	store.SetEpochDeadline(e.ticks(initTimeout))
	inst, err := e.linker.Instantiate(store, m.wt)
	if err != nil {
		return res, cs.classify(err, phaseInstantiate, store, nil, lim)
	}
	if m.init {
		if _, err := inst.GetFunc(store, "_initialize").Call(store); err != nil {
			return res, cs.classify(err, phaseInit, store, inst, lim)
		}
	}
	mem := inst.GetExport(store, "memory").Memory()
	alloc := inst.GetFunc(store, "alloc")
	reqPtr, err := callAlloc(store, alloc, len(request))
	if err != nil {
		return res, cs.classify(err, phaseAlloc, store, inst, lim)
	}
	dst, ok := guestBytes(mem.UnsafeData(store), reqPtr, int32(len(request)))
	if !ok {
		return res, badHandler("alloc returned an out-of-bounds pointer for the request")
	}
	copy(dst, request)
	outPtr, err := callAlloc(store, alloc, 8)
	if err != nil {
		return res, cs.classify(err, phaseAlloc, store, inst, lim)
	}
	if _, ok := guestBytes(mem.UnsafeData(store), outPtr, 8); !ok {
		return res, badHandler("alloc returned an out-of-bounds pointer for the out area")
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
		return res, cs.classify(err, phaseHandler, store, inst, lim)
	}
	if code, _ := ret.(int32); code != 0 {
		return res, &execapi.Error{Code: execapi.CodeHandlerError, Message: fmt.Sprintf("handler returned %d", code)}
	}

	out, ok := guestBytes(mem.UnsafeData(store), outPtr, 8)
	if !ok {
		return res, badHandler("out area is out of bounds")
	}
	respPtr := int32(binary.LittleEndian.Uint32(out[0:4]))
	respLen := binary.LittleEndian.Uint32(out[4:8])
	if uint64(respLen) > uint64(lim.MaxResponseBytes) {
		return res, badHandler("response is %d bytes, more than the %d-byte limit", respLen, lim.MaxResponseBytes)
	}
	raw, ok := guestBytes(mem.UnsafeData(store), respPtr, int32(respLen))
	if !ok {
		return res, badHandler("response pointer (%d, %d) is out of bounds", uint32(respPtr), respLen)
	}
	resp, herr := parseResponse(raw)
	if herr != nil {
		return res, herr
	}
	if m.dealloc {
		// Freeing is a courtesy to guests that check for leaks; the instance
		// is discarded anyway, so failures here do not fail the call.
		dealloc := inst.GetFunc(store, "dealloc")
		_, _ = dealloc.Call(store, reqPtr, int32(len(request)))
		_, _ = dealloc.Call(store, outPtr, int32(8))
		_, _ = dealloc.Call(store, respPtr, int32(respLen))
	}
	res.Response = resp
	return res, nil
}

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
