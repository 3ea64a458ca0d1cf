// Package lowprio runs bulk work — copying a large body between sockets —
// at the lowest CPU priority, so that it yields the cores to the short
// calls of other tenants instead of sharing them equally. It is the
// copying counterpart of the runner's demotion of long guest calls
// (runnerd/engine): a flood of 4 MiB answers cost the gateway and the
// runner several milliseconds of normal-priority CPU per call, which the
// quiet tenants on the same cores then lacked (bench/e2e
// TestNoisyNeighbours).
//
// The work runs on a fresh OS thread at nice 19 (SCHED_OTHER: the lowest
// weight, about 1.5% of a core against a busy nice-0 thread, but never
// starved the way SCHED_IDLE can be) and that thread ends with it, so no
// thread is ever handed back to the Go runtime at a priority it did not
// set; raising a priority again needs privileges these processes may not
// have. The hand-off costs a thread start, tens of microseconds: worth it
// for bodies of a mebibyte or more (Threshold), not for small ones.
package lowprio

// Threshold is the body size from which callers move a copy here.
const Threshold = 1 << 20

// Run runs f at the lowest priority and returns when it has returned.
// Where threads cannot be reprioritised (not Linux) f runs as is.
func Run(f func()) { run(f) }
