package hostapi

import (
	"context"
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

// LogLine is one line the guest logged (log_* imports or WASI stdio).
type LogLine struct {
	Time      time.Time
	Level     string // info, warn, error
	Stream    string // log, stdout, stderr
	Message   string
	Truncated bool
}

// Invocation is the per-call state host imports share. It belongs to one
// goroutine (the one running the guest), so it needs no locking.
type Invocation struct {
	// Envelope is the execute request. Capabilities take tenant and install
	// from here, never from the guest.
	Envelope *execapi.Request
	// Budgets are this call's host-call budgets.
	Budgets Budgets

	ctx      context.Context
	cancel   context.CancelFunc
	deadline time.Time
	granted  map[string]bool
	state    map[any]any

	// HostCalls counts host calls (all imports, including denied ones).
	HostCalls int
	// LogBytes counts log bytes accepted so far.
	LogBytes int
	// LogsDropped counts log bytes refused because the budget was spent.
	LogsDropped int
	// Logs are the accepted log lines in order.
	Logs []LogLine
	// EgressBytes counts bytes sent and received by http.fetch.
	EgressBytes int64
	// Metrics are the guest's metrics.emit calls, for the runner to export.
	Metrics []Metric
}

// Metric is one metrics.emit call after validation.
type Metric struct {
	Name   string
	Kind   string
	Value  float64
	Labels map[string]string
}

// NewInvocation prepares the state of one call. ctx bounds the whole call
// (the gateway's deadline); Begin narrows it to the guest's deadline.
func NewInvocation(ctx context.Context, env *execapi.Request, b Budgets) *Invocation {
	inv := &Invocation{Envelope: env, Budgets: b.WithDefaults(), ctx: ctx, granted: map[string]bool{}}
	for _, c := range manifest.AlwaysGranted {
		inv.granted[c] = true
	}
	for _, c := range env.Capabilities {
		if n, ok := manifest.NormalizeCapability(c); ok {
			inv.granted[n] = true
		}
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

// State returns the per-invocation value of a capability stored under key,
// creating it with create on first use (e.g. the install's egress policy or
// the opened secrets). A create error is returned on every later call too.
func (inv *Invocation) State(key any, create func() (any, error)) (any, error) {
	if inv.state == nil {
		inv.state = map[any]any{}
	}
	if v, ok := inv.state[key]; ok {
		if e, ok := v.(stateErr); ok {
			return nil, e.err
		}
		return v, nil
	}
	v, err := create()
	if err != nil {
		inv.state[key] = stateErr{err}
		return nil, err
	}
	inv.state[key] = v
	return v, nil
}

type stateErr struct{ err error }

// admit counts a host call and checks the grant and the call budget.
func (inv *Invocation) admit(capability string) error {
	inv.HostCalls++
	if inv.HostCalls > inv.Budgets.MaxHostCalls {
		return Errorf(CodeLimitExceeded, "more than %d host calls in one invocation", inv.Budgets.MaxHostCalls)
	}
	if !inv.granted[capability] {
		return Errorf(CodeCapabilityDenied, "capability %s is not granted to this install", capability)
	}
	return nil
}

// AddLog records a log line within the byte budgets: the message is cut at
// a UTF-8 boundary to the per-line cap and to what is left of the
// per-invocation cap. It reports whether anything was kept.
func (inv *Invocation) AddLog(level, stream string, msg []byte) bool {
	left := inv.Budgets.MaxLogBytes - inv.LogBytes
	if left <= 0 {
		inv.LogsDropped += len(msg)
		return false
	}
	limit := min(inv.Budgets.MaxLogLineBytes, left)
	text, truncated := CutUTF8(msg, limit)
	if truncated {
		inv.LogsDropped += len(msg) - len(text)
	}
	inv.LogBytes += len(text)
	inv.Logs = append(inv.Logs, LogLine{Time: time.Now(), Level: level, Stream: stream, Message: string(text), Truncated: truncated})
	return true
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
