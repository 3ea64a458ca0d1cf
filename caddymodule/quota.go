package caddymodule

import (
	"time"

	"github.com/extedge/extedge/caddymodule/quota"
)

// quotaState holds the in-memory install quota counters (§8.2 step 6) in
// a usage pool, so a config reload keeps counting. They enforce quotas
// when rate_limit has no Redis and are the fallback of the Redis
// counters (limiterState.quotas) when it has one.
type quotaState struct {
	memory *quota.Memory
}

func newQuotaState(now func() time.Time) *quotaState {
	return &quotaState{memory: quota.NewMemory(quota.DefaultMaxKeys, now)}
}

// Destruct implements caddy.Destructor.
func (q *quotaState) Destruct() error { return nil }

// quotaEnforcer is where install quotas are counted: Redis (shared by the
// gateway pods) when rate_limit has a redis URL, else this process.
func (st *sharedState) quotaEnforcer() quota.Enforcer {
	if st.limiter.quotas != nil {
		return st.limiter.quotas
	}
	return st.quotas.memory
}

// quotaLeaseSlack is added to a call's deadline for how long its
// concurrent_calls lease lives in Redis: the deadline starts after the
// request body is read, so the slack covers reading it. A call that
// outlives its lease (a very slow upload) stops counting early; a
// gateway that dies mid-call frees its slots when the leases expire.
const quotaLeaseSlack = 5 * time.Second
