// Package breaker is the gateway's circuit breaker per install (SPEC
// §17): after Policy.Failures consecutive failed calls an install's
// circuit opens and its calls are refused for Policy.Cooldown; then one
// probe call is let through (half-open), and its outcome closes the
// circuit or opens it for another cooldown. What counts as a failure is
// the caller's to say (Outcome); this package keeps only the state
// machine, bounded to a fixed number of installs.
package breaker

import (
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
)

// Policy is when a circuit opens and for how long. It is passed on every
// call, not stored, so a config reload applies at once to state that
// outlives it.
type Policy struct {
	// Failures is the number of consecutive failures that opens a circuit;
	// zero or less disables the breaker (every call is allowed, nothing is
	// recorded).
	Failures int
	// Cooldown is how long an open circuit refuses calls before it lets a
	// probe through.
	Cooldown time.Duration
}

func (p Policy) enabled() bool { return p.Failures > 0 }

// Outcome is what a call said about the install's health.
type Outcome int

const (
	// Neutral calls say nothing (refused before the guest ran, the runner
	// or the client failed): they neither count nor reset the count, and a
	// neutral probe lets the next call probe instead.
	Neutral Outcome = iota
	// Good calls reset the count; a good probe closes the circuit.
	Good
	// Failed calls count towards opening; a failed probe reopens.
	Failed
)

// Ticket is what Allow hands to the call, for Record.
type Ticket struct {
	gen   uint64
	probe bool
}

// Probe reports whether the call is the half-open circuit's probe.
func (t Ticket) Probe() bool { return t.probe }

// Set holds the circuits of many installs. An install gets a circuit at
// its first failure; healthy installs cost nothing. At most maxKeys
// circuits are kept, least recently used first out: a forgotten circuit
// starts again closed, which fails open rather than refusing a healthy
// install. Safe for concurrent use.
type Set struct {
	mu       sync.Mutex
	circuits *simplelru.LRU[string, *circuit]
}

// circuit is one install's state: closed (openUntil zero), open (now
// before openUntil) or half-open (after it, probing while a probe is in
// flight). gen changes whenever the circuit opens or admits a probe, so
// the outcomes of calls admitted before are not counted again.
type circuit struct {
	failures  int
	openUntil time.Time
	probing   bool
	gen       uint64
}

// New returns a Set keeping at most maxKeys circuits (at least 1).
func New(maxKeys int) *Set {
	c, _ := simplelru.NewLRU[string, *circuit](max(maxKeys, 1), nil)
	return &Set{circuits: c}
}

// Destruct implements caddy.Destructor, for the usage pool that keeps a
// Set across config reloads.
func (s *Set) Destruct() error { return nil }

// Allow admits or refuses one call of key at now. A refused call gets
// retryAfter: what is left of the cooldown, or 0 while the probe is in
// flight (the caller picks its minimum). Every admitted call must end with
// Record, with the ticket.
func (s *Set) Allow(key string, p Policy, now time.Time) (t Ticket, retryAfter time.Duration, ok bool) {
	if !p.enabled() {
		return Ticket{}, 0, true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c, found := s.circuits.Get(key)
	switch {
	case !found || c.openUntil.IsZero():
		if found {
			t.gen = c.gen
		}
		return t, 0, true
	case now.Before(c.openUntil):
		return Ticket{}, c.openUntil.Sub(now), false
	case c.probing:
		return Ticket{}, 0, false
	}
	c.probing = true
	c.gen++
	return Ticket{gen: c.gen, probe: true}, 0, true
}

// Record takes the outcome of a call admitted with t. It reports whether
// the circuit opened because of it (first opening or a failed probe).
func (s *Set) Record(key string, t Ticket, o Outcome, p Policy, now time.Time) (opened bool) {
	if !p.enabled() {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c, found := s.circuits.Get(key)
	if !found {
		if o != Failed || t.gen != 0 {
			return false
		}
		c = new(circuit)
		s.circuits.Add(key, c)
	}
	if t.gen != c.gen || t.probe != c.probing {
		return false // admitted before the circuit last changed
	}
	if t.probe {
		c.probing = false
		switch o {
		case Good:
			c.failures, c.openUntil = 0, time.Time{}
		case Failed:
			c.open(now, p.Cooldown)
			return true
		}
		return false
	}
	switch o {
	case Good:
		c.failures = 0
	case Failed:
		c.failures++
		if c.failures >= p.Failures {
			c.open(now, p.Cooldown)
			return true
		}
	}
	return false
}

func (c *circuit) open(now time.Time, cooldown time.Duration) {
	c.failures = 0
	c.openUntil = now.Add(cooldown)
	c.gen++
}
