package runnerpool

import (
	"sync/atomic"

	lru "github.com/hashicorp/golang-lru/v2"
)

// DefaultTenantCostBytes is the response size that adds one unit to a
// call's weight (Config.TenantCostBytes).
const DefaultTenantCostBytes = 1 << 20

// callCosts predicts the weight of an install's next call from the size of
// its recent responses, the part of a call's cost the gateway pays itself
// (copying the body from the runner to the client) and the runner pays in
// Go code it cannot run at a low priority (encoding the reply). A call
// weighs 1 + mean/unit units of its tenant's TenantConcurrency, so a
// tenant whose calls answer 4 MiB each (5 units with the 1 MiB default
// and a cap of 4) runs them one at a time while small calls still run
// several at once: deficit round robin with bytes for packet sizes. The
// mean is an exponentially weighted one (each response counts half), so
// it follows a change in a few calls. The table is an LRU of installs,
// bounded like the breaker's; a forgotten install weighs 1 again.
type callCosts struct {
	unit atomic.Int64 // <= 0: every call weighs 1
	mean *lru.Cache[string, int64]
}

const maxCostInstalls = 100_000

func newCallCosts() *callCosts {
	mean, _ := lru.New[string, int64](maxCostInstalls) // errs only for a size <= 0
	c := &callCosts{mean: mean}
	c.unit.Store(DefaultTenantCostBytes)
	return c
}

// weight is the weight of install's next call.
func (c *callCosts) weight(install string) int64 {
	unit := c.unit.Load()
	if unit <= 0 || install == "" {
		return 1
	}
	m, _ := c.mean.Get(install)
	return 1 + m/unit
}

// observe records a response of n bytes of install.
func (c *callCosts) observe(install string, n int) {
	if c.unit.Load() <= 0 || install == "" {
		return
	}
	m, ok := c.mean.Get(install)
	if !ok {
		m = int64(n)
	} else {
		m = (m + int64(n)) / 2
	}
	c.mean.Add(install, m)
}
