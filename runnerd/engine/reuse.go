package engine

import (
	"container/list"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bytecodealliance/wasmtime-go/v39"
)

// Reuse asks for instance reuse (SPEC §6.5): the call may be served by an
// instance kept from an earlier call with the same Key and module, and the
// instance is kept for the next one if the call succeeds. Guest global
// state (globals, linear memory) therefore persists between those calls;
// the request, its context, secrets and host-call state stay per call.
type Reuse struct {
	// Key names the owner of the instances: the tenant and install. An
	// instance never serves another key.
	Key string
	// MaxCalls recycles an instance after this many calls. Default:
	// DefaultReuseMaxCalls.
	MaxCalls int
	// MaxAge recycles an instance this long after it was made, whether
	// busy or idle. Default: DefaultReuseMaxAge.
	MaxAge time.Duration
}

// Defaults of Reuse and of the idle pool (Config).
const (
	DefaultReuseMaxCalls     = 1000
	DefaultReuseMaxAge       = 60 * time.Second
	DefaultMaxIdleInstances  = 32
	DefaultMaxIdlePerInstall = 4
	reuseSweepInterval       = time.Second
)

func (r Reuse) withDefaults() Reuse {
	if r.MaxCalls <= 0 {
		r.MaxCalls = DefaultReuseMaxCalls
	}
	if r.MaxAge <= 0 {
		r.MaxAge = DefaultReuseMaxAge
	}
	return r
}

// poolKey is what an idle instance may serve: the owner, the exact
// compiled module it was instantiated from, and the memory cap its store
// was made with (a store's limiter cannot change).
type poolKey struct {
	owner    string
	module   *Module
	memBytes int64
}

// instance is a store with its instance and the ABI exports a call needs.
type instance struct {
	store *wasmtime.Store
	inst  *wasmtime.Instance
	cs    *callState
	stdio *stdioCapture
	mem   *wasmtime.Memory
	alloc *wasmtime.Func

	key    poolKey
	born   time.Time
	calls  int
	maxAge time.Duration
	elem   *list.Element // in pool.lru while idle
	index  int           // in pool.idle[key] while idle
	// release gives the instance's pool slot back (nil without pooling).
	release func()
}

// close frees the store (and with it the instance and its memory), and
// then its pool slot.
func (in *instance) close() {
	in.store.Close()
	if in.release != nil {
		in.release()
	}
}

// ReuseStats counts what instance reuse did in this process. They carry no
// tenant or install: the pool is process-wide.
type ReuseStats struct {
	// Hits are calls served by a kept instance; Misses are reuse calls
	// that found none idle and made a fresh one.
	Hits, Misses uint64
	// Discards are instances dropped after a failed call (trap, timeout,
	// limit, handler error, bad handler).
	Discards uint64
	// Recycled are instances dropped after MaxCalls or MaxAge.
	Recycled uint64
	// Evicted are idle instances dropped to stay within the pool bounds
	// (least recently used first).
	Evicted uint64
	// Idle is the number of idle instances now.
	Idle int
}

// pool holds idle instances: at most maxPerKey per key and max in all,
// the least recently used evicted first.
type pool struct {
	max, maxPerKey int
	now            func() time.Time

	mu        sync.Mutex
	idle      map[poolKey][]*instance // most recently returned last
	lru       *list.List              // of *instance, most recently returned first
	lastSweep time.Time
	closed    bool

	hits, misses, discards, recycled, evicted atomic.Uint64
}

func newPool(max, maxPerKey int) *pool {
	return &pool{max: max, maxPerKey: maxPerKey, now: time.Now, idle: map[poolKey][]*instance{}, lru: list.New()}
}

// get takes the most recently returned idle instance of k, or nil.
func (p *pool) get(k poolKey) *instance {
	var drop []*instance
	defer func() { closeAll(drop) }()
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	drop = p.sweepLocked(now)
	for {
		ins := p.idle[k]
		if len(ins) == 0 {
			p.misses.Add(1)
			return nil
		}
		in := ins[len(ins)-1]
		p.removeLocked(in)
		if now.Sub(in.born) >= in.maxAge {
			p.recycled.Add(1)
			drop = append(drop, in)
			continue
		}
		p.hits.Add(1)
		return in
	}
}

// put returns in after a successful call: it is kept unless it has served
// its calls or its time, or the pool is closed.
func (p *pool) put(in *instance, maxCalls int) {
	var drop []*instance
	defer func() { closeAll(drop) }()
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	drop = p.sweepLocked(now)
	if in.calls >= maxCalls || now.Sub(in.born) >= in.maxAge {
		p.recycled.Add(1)
		drop = append(drop, in)
		return
	}
	if p.closed || p.max <= 0 || p.maxPerKey <= 0 {
		p.evicted.Add(1)
		drop = append(drop, in)
		return
	}
	if ins := p.idle[in.key]; len(ins) >= p.maxPerKey {
		// The key's oldest idle instance makes room.
		old := ins[0]
		p.removeLocked(old)
		p.evicted.Add(1)
		drop = append(drop, old)
	}
	in.elem = p.lru.PushFront(in)
	in.index = len(p.idle[in.key])
	p.idle[in.key] = append(p.idle[in.key], in)
	for p.lru.Len() > p.max {
		old := p.lru.Back().Value.(*instance)
		p.removeLocked(old)
		p.evicted.Add(1)
		drop = append(drop, old)
	}
}

// evictOldest drops the least recently used idle instance, to free its
// pool slot for a fresh call; false when none is idle.
func (p *pool) evictOldest() bool {
	p.mu.Lock()
	e := p.lru.Back()
	if e == nil {
		p.mu.Unlock()
		return false
	}
	in := e.Value.(*instance)
	p.removeLocked(in)
	p.evicted.Add(1)
	p.mu.Unlock()
	closeAll([]*instance{in})
	return true
}

// discard counts an instance dropped after a failed call.
func (p *pool) discard() { p.discards.Add(1) }

func (p *pool) removeLocked(in *instance) {
	p.lru.Remove(in.elem)
	in.elem = nil
	ins := p.idle[in.key]
	i := in.index
	copy(ins[i:], ins[i+1:])
	ins[len(ins)-1] = nil
	ins = ins[:len(ins)-1]
	for j := i; j < len(ins); j++ {
		ins[j].index = j
	}
	if len(ins) == 0 {
		delete(p.idle, in.key)
	} else {
		p.idle[in.key] = ins
	}
}

// sweepLocked removes idle instances past their age, at most once per
// reuseSweepInterval (the engine's sweeper calls it every interval, pool
// use in between).
func (p *pool) sweepLocked(now time.Time) []*instance {
	if now.Sub(p.lastSweep) < reuseSweepInterval {
		return nil
	}
	p.lastSweep = now
	var drop []*instance
	for e := p.lru.Front(); e != nil; {
		next := e.Next()
		in := e.Value.(*instance)
		if now.Sub(in.born) >= in.maxAge {
			p.removeLocked(in)
			p.recycled.Add(1)
			drop = append(drop, in)
		}
		e = next
	}
	return drop
}

// sweep drops the idle instances past their age now.
func (p *pool) sweep() {
	p.mu.Lock()
	drop := p.sweepLocked(p.now())
	p.mu.Unlock()
	closeAll(drop)
}

// close drops every idle instance and keeps none from now on.
func (p *pool) close() {
	p.mu.Lock()
	p.closed = true
	var drop []*instance
	for p.lru.Len() > 0 {
		in := p.lru.Back().Value.(*instance)
		p.removeLocked(in)
		drop = append(drop, in)
	}
	p.mu.Unlock()
	closeAll(drop)
}

func (p *pool) stats() ReuseStats {
	p.mu.Lock()
	idle := p.lru.Len()
	p.mu.Unlock()
	return ReuseStats{Hits: p.hits.Load(), Misses: p.misses.Load(), Discards: p.discards.Load(),
		Recycled: p.recycled.Load(), Evicted: p.evicted.Load(), Idle: idle}
}

func closeAll(ins []*instance) {
	for _, in := range ins {
		in.close()
		if in.stdio != nil {
			in.stdio.closeAll()
		}
	}
}

// ReuseStats reports the instance reuse counters of this engine.
func (e *Engine) ReuseStats() ReuseStats { return e.pool.stats() }
