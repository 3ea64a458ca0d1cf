// Package hostapi is the framework every host capability of the runner
// (SPEC §5.2) plugs into. A capability is one self-contained [Unit] — one
// package under runnerd/hostapi — and every unit goes through the same
// steps:
//
//   - link: the unit names the capability granting it and lists its
//     [Import]s; [NewSet] registers the units and the engine links each
//     import once per engine, with its underscore alias ("storage_get").
//   - prepare: per call, the first time the guest uses one of the unit's
//     imports, the framework calls [Unit.Prepare] with a [CallInfo] — the
//     slice of the execute envelope units may see (ids, grants, config,
//     egress allowlist, budgets). The returned [State] is handed to every
//     import of that unit for the rest of the call; a Prepare error becomes
//     the error reply of each of them. Units that are never used in a call
//     are never prepared.
//   - finish: after the call the framework calls [Unit.Finish] on every
//     prepared unit, which adds what the unit produced (log lines, egress
//     bytes, metric samples) to the call's [Report]; runnerd/server reads
//     the report for the runner log, the debug stream, metrics and the
//     execution record.
//
// The framework does what is the same for every import: it gates each call
// on the install's grants (capability_denied), counts host calls against
// the budget (limit_exceeded) and turns handler errors into the
// `{"error":{"code","message"}}` reply. Units never see guest memory (the
// engine copies requests out of the guest and replies into it) and never
// see the sealed secret envelope — except the one unit whose capability is
// secrets.get, which implements [SecretsUnit] and receives it in its
// prepare step. WASI stdout/stderr reach the one unit implementing
// [StdioUnit] (the log unit), so they share its budget.
//
// Adding a capability is one new folder under runnerd/hostapi with a type
// implementing Unit, and one argument to hostapi.NewSet in runnerd/serve.go.
package hostapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/extedge/extedge/internal/execapi"
	"github.com/extedge/extedge/internal/manifest"
)

// ImportModule is the wasm import module name of every host call.
const ImportModule = "alga"

// Kind is the wasm signature of an import.
type Kind int

const (
	// KindJSON is `(req_ptr i32, req_len i32, out_ptr i32) -> i32`: a JSON
	// request, a JSON reply written through the guest's alloc and out area,
	// 0 for success and 1 for an error reply.
	KindJSON Kind = iota
	// KindText is `(ptr i32, len i32)`: UTF-8 text in, nothing out.
	KindText
)

// State is a unit's per-call state, made by its Prepare step.
type State any

// Import is one host function.
type Import struct {
	// Name is the dotted import name, e.g. "storage.get". The framework also
	// links the underscore spelling ("storage_get") as an alias.
	Name string
	// JSON handles a KindJSON import with the unit's state of this call.
	// ctx ends at the guest's deadline. The returned value is JSON-encoded
	// as the reply; an error becomes an error reply (use *Error for a code
	// the guest can act on; any other error is reported as "internal").
	JSON func(ctx context.Context, st State, req []byte) (any, error)
	// Text handles a KindText import.
	Text func(st State, text []byte)
}

// JSONFunc adapts a handler that takes the unit's concrete state type.
func JSONFunc[S any](fn func(ctx context.Context, st S, req []byte) (any, error)) func(context.Context, State, []byte) (any, error) {
	return func(ctx context.Context, st State, req []byte) (any, error) { return fn(ctx, st.(S), req) }
}

// TextFunc adapts a text handler that takes the unit's concrete state type.
func TextFunc[S any](fn func(st S, text []byte)) func(State, []byte) {
	return func(st State, text []byte) { fn(st.(S), text) }
}

// Kind reports the import's signature.
func (im Import) Kind() Kind {
	if im.Text != nil {
		return KindText
	}
	return KindJSON
}

// CallInfo is what a unit may know about the call it is prepared for: the
// envelope without the guest's HTTP request, the user and the sealed
// secrets. Tenant and install come from here, never from the guest.
type CallInfo struct {
	// Context identifies the call (request, tenant, extension, install,
	// version, content hash).
	Context execapi.Context
	// Granted are the install's capabilities, normalised, always-granted
	// ones included.
	Granted []string
	// Config is the install's configuration (a JSON object or empty).
	Config json.RawMessage
	// EgressAllowlist is the install's own allowlist; empty means the
	// platform's list alone applies.
	EgressAllowlist []string
	// Budgets are this call's host-call budgets.
	Budgets Budgets
}

// Unit is one host capability.
type Unit interface {
	// Capability is the capability name that grants the imports, e.g.
	// "http.fetch" (one of manifest.KnownCapabilities).
	Capability() string
	// Imports lists the host functions of the unit.
	Imports() []Import
	// Prepare makes the unit's state for one call. It runs at most once per
	// call, before the first of the unit's imports that the guest is
	// granted; an error is the reply to every import of the unit in the
	// call.
	Prepare(call CallInfo) (State, error)
	// Finish adds what the unit produced in the call to r.
	Finish(st State, r *Report)
}

// SecretsCapability is the only capability whose unit may see the sealed
// secret envelope.
const SecretsCapability = "secrets.get"

// SecretsUnit is a unit that opens the call's sealed secret envelope. Only
// the unit of SecretsCapability may implement it; the framework calls
// PrepareSecrets instead of Prepare with the envelope ("" when the call
// has none).
type SecretsUnit interface {
	Unit
	PrepareSecrets(call CallInfo, sealed string) (State, error)
}

// StdioUnit is the unit that receives what the guest wrote to WASI stdout
// and stderr, one line at a time, after the guest has run. At most one
// unit may implement it. Stdio reports whether the line was kept; false
// means the budget is spent and later lines are not offered.
type StdioUnit interface {
	Unit
	Stdio(st State, stream string, line []byte) bool
}

// Report is what the host capabilities of one call produced; the units'
// Finish steps fill it and the runner reads it after the call.
type Report struct {
	// HostCalls counts host calls (all imports, including denied ones).
	HostCalls int
	// Logs are the accepted log lines in order (log unit).
	Logs []LogLine
	// LogBytes counts log bytes accepted.
	LogBytes int
	// LogsDropped counts log bytes refused because a budget was spent.
	LogsDropped int
	// EgressBytes counts bytes sent and received by http.fetch.
	EgressBytes int64
	// Metrics are the guest's metrics.emit samples, for the runner to
	// export.
	Metrics []Metric
}

// LogLine is one line the guest logged (log_* imports or WASI stdio).
type LogLine struct {
	Time      time.Time
	Level     string // info, warn, error
	Stream    string // log, stdout, stderr
	Message   string
	Truncated bool
}

// Metric is one metrics.emit sample after validation.
type Metric struct {
	Name   string
	Kind   string
	Value  float64
	Labels map[string]string // never MetricExtensionLabel
}

// MetricExtensionLabel is the label the runner adds to every guest metric
// (the calling extension's name, bounded per process); a guest may not set
// it.
const MetricExtensionLabel = "extension"

// Error is an error reply to the guest.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Errorf returns an *Error with a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Error codes produced by the framework itself.
const (
	CodeCapabilityDenied = "capability_denied"
	CodeLimitExceeded    = "limit_exceeded"
	CodeInvalidRequest   = "invalid_request"
	CodeInternal         = "internal"
)

// Bound is an import as the engine links it.
type Bound struct {
	Import
	// Capability grants the import.
	Capability string
	// Alias is the underscore spelling, linked with the same function
	// ("" when the name has no dot).
	Alias string

	unit int // index of the unit in the Set
}

// Set is the registered units of one runner.
type Set struct {
	units []Unit
	bound []Bound
	stdio int // index of the StdioUnit, -1 if none
}

// NewSet registers units; two units providing the same import name, a
// unit naming an unknown capability, a secrets consumer for another
// capability or two stdio consumers is a programming error.
func NewSet(units ...Unit) (*Set, error) {
	s := &Set{stdio: -1}
	seen := map[string]bool{}
	for i, u := range units {
		name, ok := manifest.NormalizeCapability(u.Capability())
		if !ok {
			return nil, fmt.Errorf("capability %q is not a known capability", u.Capability())
		}
		if _, ok := u.(SecretsUnit); ok && name != SecretsCapability {
			return nil, fmt.Errorf("unit of %s may not receive the secret envelope", name)
		}
		if _, ok := u.(StdioUnit); ok {
			if s.stdio >= 0 {
				return nil, fmt.Errorf("units of %s and %s both take stdio", s.units[s.stdio].Capability(), name)
			}
			s.stdio = i
		}
		s.units = append(s.units, u)
		for _, im := range u.Imports() {
			if (im.JSON == nil) == (im.Text == nil) {
				return nil, fmt.Errorf("import %q must have exactly one of JSON or Text", im.Name)
			}
			alias := strings.ReplaceAll(im.Name, ".", "_")
			names := []string{im.Name, alias}
			if alias == im.Name {
				alias, names = "", names[:1]
			}
			for _, n := range names {
				if seen[n] {
					return nil, fmt.Errorf("import %q registered twice", n)
				}
				seen[n] = true
			}
			s.bound = append(s.bound, Bound{Import: im, Capability: name, Alias: alias, unit: i})
		}
	}
	sort.Slice(s.bound, func(i, j int) bool { return s.bound[i].Name < s.bound[j].Name })
	return s, nil
}

// Imports returns the imports to link, sorted by name.
func (s *Set) Imports() []Bound { return s.bound }

// CallJSON runs a KindJSON import for the guest and returns the encoded
// reply and the status the guest sees (0 ok, 1 error). It never panics on
// guest input: denied capabilities and exhausted budgets are error replies.
func (s *Set) CallJSON(inv *Invocation, b *Bound, req []byte) ([]byte, int32) {
	if err := inv.admit(b.Capability); err != nil {
		return errorReply(err), 1
	}
	st, err := inv.prepare(s, b.unit)
	if err != nil {
		return errorReply(err), 1
	}
	out, err := b.JSON(inv.Context(), st, req)
	if err != nil {
		return errorReply(err), 1
	}
	reply, err := json.Marshal(out)
	if err != nil {
		return errorReply(fmt.Errorf("encoding reply: %v", err)), 1
	}
	return reply, 0
}

// CallText runs a KindText import. A denied or over-budget text call is
// dropped silently: the signature has no way to report it.
func (s *Set) CallText(inv *Invocation, b *Bound, text []byte) {
	if inv.admit(b.Capability) != nil {
		return
	}
	st, err := inv.prepare(s, b.unit)
	if err != nil {
		return
	}
	b.Text(st, text)
}

// Stdio hands one line of WASI output (stream "stdout" or "stderr") to the
// stdio unit and reports whether it was kept; without such a unit it is
// dropped. Stdio is not a host call: it is neither gated nor counted.
func (s *Set) Stdio(inv *Invocation, stream string, line []byte) bool {
	if s == nil || s.stdio < 0 {
		return false
	}
	st, err := inv.prepare(s, s.stdio)
	if err != nil {
		return false
	}
	return s.units[s.stdio].(StdioUnit).Stdio(st, stream, line)
}

func errorReply(err error) []byte {
	var he *Error
	if !errors.As(err, &he) {
		// Raw Go errors may carry internals (addresses, file names); the
		// guest sees a fixed message.
		he = &Error{Code: CodeInternal, Message: "host call failed"}
	}
	b, _ := json.Marshal(struct {
		Error *Error `json:"error"`
	}{he})
	return b
}

// DecodeRequest strictly decodes a JSON host-call request into v; a
// malformed request is an invalid_request error reply.
func DecodeRequest(req []byte, v any) error {
	dec := json.NewDecoder(strings.NewReader(string(req)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return Errorf(CodeInvalidRequest, "malformed request: %v", err)
	}
	if dec.More() {
		return Errorf(CodeInvalidRequest, "malformed request: trailing data")
	}
	return nil
}
