package server

import (
	"time"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/extedge/extedge/internal/lowprio"
)

// heavyInstalls remembers the installs whose last call used more CPU than
// the engine's DemoteAfter, so that their next calls start at the lowest
// thread priority (engine.Limits.StartDemoted) instead of running their
// first DemoteAfter of CPU at normal priority. A flood of long calls is
// then background work from its first instruction on, and the short calls
// of other tenants never share a core with it at equal priority: without
// this, each long call of a flooding install took DemoteAfter (10 ms) of
// normal-priority CPU, a slice of the cores at every call.
//
// An install is heavy for heavyFor after its last long call, and stops
// being heavy at its first call under the threshold, so a handler that was
// slow once (a cold cache) is not punished for long. The table holds at
// most heavyMax installs (LRU); one that falls out simply starts its next
// call at normal priority again. Keyed by install, never shared across
// installs: one install's long calls never demote another's.
type heavyInstalls struct {
	after time.Duration // the engine's DemoteAfter; 0 turns this off
	seen  *lru.Cache[string, time.Time]
	now   func() time.Time
}

const (
	heavyFor = 10 * time.Second
	heavyMax = 4096
)

func newHeavyInstalls(after time.Duration) *heavyInstalls {
	seen, _ := lru.New[string, time.Time](heavyMax) // only a non-positive size errs
	return &heavyInstalls{after: after, seen: seen, now: time.Now}
}

// startDemoted reports whether install's next call should start demoted.
func (h *heavyInstalls) startDemoted(install string) bool {
	if h.after <= 0 || install == "" {
		return false
	}
	at, ok := h.seen.Get(install)
	return ok && h.now().Sub(at) < heavyFor
}

// observe records a finished call of install that used cpu and answered
// replyBytes of body. A call is long when it used DemoteAfter of CPU or
// answered lowprio.Threshold bytes or more: moving a large body costs
// milliseconds of CPU around the guest (its memory faulted in, copied
// out, written to the socket) that the guest's own CPU time does not show.
func (h *heavyInstalls) observe(install string, cpu time.Duration, replyBytes int) {
	if h.after <= 0 || install == "" || cpu <= 0 {
		return
	}
	if cpu >= h.after || replyBytes >= lowprio.Threshold {
		h.seen.Add(install, h.now())
		return
	}
	h.seen.Remove(install)
}
