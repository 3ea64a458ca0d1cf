package hostapi

import (
	"context"
	"sort"
	"time"

	"github.com/extedge/extedge/internal/execapi"
	"github.com/extedge/extedge/internal/manifest"
)

// Budgets bound what one invocation may do through host calls (SPEC §5.4).
type Budgets struct {
	// MaxHostCalls is the number of host calls per invocation. Default: 1000.
	MaxHostCalls int
	// MaxLogBytes is the number of log bytes per invocation (log calls and
	// captured stdout/stderr together). Default: 64 KiB.
	MaxLogBytes int
	// MaxLogLineBytes is the size of one log message; longer ones are cut
	// at a UTF-8 boundary and marked truncated. Default: 8 KiB.
	MaxLogLineBytes int
}

// Default budgets.
const (
	DefaultMaxHostCalls    = 1000
	DefaultMaxLogBytes     = 64 << 10
	DefaultMaxLogLineBytes = 8 << 10
)

// WithDefaults fills zero fields.
func (b Budgets) WithDefaults() Budgets {
	if b.MaxHostCalls <= 0 {
		b.MaxHostCalls = DefaultMaxHostCalls
	}
	if b.MaxLogBytes <= 0 {
		b.MaxLogBytes = DefaultMaxLogBytes
	}
	if b.MaxLogLineBytes <= 0 {
		b.MaxLogLineBytes = DefaultMaxLogLineBytes
	}
	return b
}

// Invocation is the framework's state of one call: the deadline, the
// grants, the host-call counter and the states of the units prepared so
// far. It holds nothing of any capability itself. It belongs to one
// goroutine (the one running the guest), so it needs no locking.
type Invocation struct {
	// Budgets are this call's host-call budgets.
	Budgets Budgets

	info     CallInfo
	sealed   string // the secret envelope, for the SecretsUnit only
	ctx      context.Context
	cancel   context.CancelFunc
	deadline time.Time
	granted  map[string]bool
	calls    int
	units    []prepared // by unit index in the Set; grown on demand
	finished bool
}

type prepared struct {
	unit  Unit
	state State
	err   error
	done  bool
}

// NewInvocation prepares the framework's state of one call. ctx bounds the
// whole call (the gateway's deadline); Begin narrows it to the guest's
// deadline.
func NewInvocation(ctx context.Context, env *execapi.Request, b Budgets) *Invocation {
	inv := &Invocation{Budgets: b.WithDefaults(), ctx: ctx, granted: map[string]bool{}}
	var granted []string
	for _, c := range manifest.KnownCapabilities {
		if env.Granted(c) {
			inv.granted[c] = true
			granted = append(granted, c)
		}
	}
	sort.Strings(granted)
	inv.info = CallInfo{
		Context:         env.Context,
		Granted:         granted,
		Config:          env.Config,
		EgressAllowlist: env.EgressAllowlist,
		Budgets:         inv.Budgets,
	}
	if env.SecretEnvelope != nil {
		inv.sealed = *env.SecretEnvelope
	}
	return inv
}

// Granted reports whether the install has capability c.
func (inv *Invocation) Granted(c string) bool { return inv.granted[c] }

// Begin starts the guest's clock: host calls from now on are bounded by
// deadline. The engine calls it just before the handler export; the returned
// function releases the context.
func (inv *Invocation) Begin(deadline time.Time) func() {
	inv.deadline = deadline
	inv.ctx, inv.cancel = context.WithDeadline(inv.ctx, deadline)
	return inv.cancel
}

// Context bounds host-call work: it ends at the guest's deadline once the
// guest runs, or with the request before that.
func (inv *Invocation) Context() context.Context { return inv.ctx }

// Deadline is the guest's deadline (zero before Begin).
func (inv *Invocation) Deadline() time.Time { return inv.deadline }

// admit counts a host call and checks the grant and the call budget.
func (inv *Invocation) admit(capability string) error {
	inv.calls++
	if inv.calls > inv.Budgets.MaxHostCalls {
		return Errorf(CodeLimitExceeded, "more than %d host calls in one invocation", inv.Budgets.MaxHostCalls)
	}
	if !inv.granted[capability] {
		return Errorf(CodeCapabilityDenied, "capability %s is not granted to this install", capability)
	}
	return nil
}

// prepare returns the state of unit i of s in this call, running its
// prepare step on first use. A prepare error is returned on every later
// use too.
func (inv *Invocation) prepare(s *Set, i int) (State, error) {
	if i >= len(inv.units) {
		inv.units = append(inv.units, make([]prepared, i+1-len(inv.units))...)
	}
	p := &inv.units[i]
	if !p.done {
		u := s.units[i]
		p.unit, p.done = u, true
		if su, ok := u.(SecretsUnit); ok {
			p.state, p.err = su.PrepareSecrets(inv.info, inv.sealed)
		} else {
			p.state, p.err = u.Prepare(inv.info)
		}
	}
	return p.state, p.err
}

// Finish runs the finish step of every unit prepared in this call and
// returns what they produced. The engine calls it once, after the guest's
// store is closed; later calls return an empty report.
func (inv *Invocation) Finish() Report {
	r := Report{HostCalls: inv.calls}
	if inv.finished {
		return r
	}
	inv.finished = true
	for _, p := range inv.units {
		if p.done && p.err == nil {
			p.unit.Finish(p.state, &r)
		}
	}
	return r
}

// CutUTF8 returns at most n bytes of b, cut so that no multi-byte UTF-8
// sequence is split, and whether anything was cut. Invalid bytes are kept
// as they are (the logger escapes them).
func CutUTF8(b []byte, n int) ([]byte, bool) {
	if len(b) <= n {
		return b, false
	}
	i := n
	// Step back over continuation bytes (10xxxxxx) to the start of the
	// sequence that straddles the cut, and drop that whole sequence.
	for i > 0 && i > n-4 && b[i]&0xC0 == 0x80 {
		i--
	}
	if i < n && i >= 0 && b[i]&0xC0 != 0xC0 {
		// Not a sequence start after all (invalid input): cut at n.
		i = n
	}
	return b[:i], true
}
