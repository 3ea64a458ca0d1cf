package caddymodule

import (
	"context"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/extedge/extedge/caddymodule/ratelimit"
	"github.com/extedge/extedge/internal/registryapi"
)

// quotaState enforces install quotas (§7.7, §8.2 step 6): invocations per
// minute as a GCRA with a one-minute burst, and concurrent calls as a
// counter. Both are per gateway process: with N gateway pods an install
// may reach N times its quota, which is the documented trade-off for not
// adding a Redis round trip to every call.
type quotaState struct {
	rate    *ratelimit.Memory
	running *lru.Cache[string, *atomic.Int64]
}

// maxQuotaKeys bounds the installs tracked for quotas.
const maxQuotaKeys = 100_000

func newQuotaState(now func() time.Time) *quotaState {
	c, _ := lru.New[string, *atomic.Int64](maxQuotaKeys)
	return &quotaState{rate: ratelimit.NewMemory(maxQuotaKeys, now), running: c}
}

// Destruct implements caddy.Destructor.
func (q *quotaState) Destruct() error { return nil }

// acquire admits one call of install under quotas. On success the caller
// must call release when the call ends.
func (q *quotaState) acquire(installID string, quotas *registryapi.Quotas) (release func(), retryAfter time.Duration, ok bool) {
	if quotas == nil || (quotas.InvocationsPerMinute <= 0 && quotas.ConcurrentCalls <= 0) {
		return func() {}, 0, true
	}
	if n := quotas.ConcurrentCalls; n > 0 {
		ctr, found := q.running.Get(installID)
		if !found {
			ctr = new(atomic.Int64)
			if prev, had, _ := q.running.PeekOrAdd(installID, ctr); had {
				ctr = prev
			}
		}
		if ctr.Add(1) > int64(n) {
			ctr.Add(-1)
			return nil, time.Second, false
		}
		release = func() { ctr.Add(-1) }
	} else {
		release = func() {}
	}
	if n := quotas.InvocationsPerMinute; n > 0 {
		d, _ := q.rate.Allow(context.Background(), installID, ratelimit.Rate{Events: n, Per: time.Minute, Burst: n})
		if !d.Allowed {
			release()
			return nil, d.RetryAfter, false
		}
	}
	return release, 0, true
}
