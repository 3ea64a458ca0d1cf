// Package hostapi is the framework every host capability of the runner
// (SPEC §5.2) plugs into. A capability is one self-contained unit — one
// package under runnerd/hostapi — that names the capability granting it and
// lists its imports; the framework links each import once per engine (with
// its underscore alias), gates it on the invocation's grants, counts host
// calls, and turns handler errors into the `{"error":{"code","message"}}`
// reply. Capabilities never see guest memory: the engine copies requests out
// of the guest and replies into it.
//
// Per-invocation state (deadline, counters, log lines, lazily opened
// secrets) lives in [Invocation]; per-install configuration arrives with
// every execute envelope, so "configure per install" happens lazily through
// [Invocation.State] the first time a capability needs it in a call.
package hostapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

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

// Import is one host function.
type Import struct {
	// Name is the dotted import name, e.g. "storage.get". The framework also
	// links the underscore spelling ("storage_get") as an alias.
	Name string
	// JSON handles a KindJSON import. The returned value is JSON-encoded as
	// the reply; an error becomes an error reply (use *Error for a code the
	// guest can act on; any other error is reported as "internal").
	JSON func(inv *Invocation, req []byte) (any, error)
	// Text handles a KindText import.
	Text func(inv *Invocation, text []byte)
}

// Kind reports the import's signature.
func (im Import) Kind() Kind {
	if im.Text != nil {
		return KindText
	}
	return KindJSON
}

// Capability is one host capability unit.
type Capability interface {
	// Capability is the capability name that grants the imports, e.g.
	// "http.fetch" (one of manifest.KnownCapabilities).
	Capability() string
	// Imports lists the host functions of the unit.
	Imports() []Import
}

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
}

// Set is the registered capabilities of one runner.
type Set struct {
	bound []Bound
}

// NewSet registers capabilities; two units providing the same import name
// or a unit naming an unknown capability is a programming error.
func NewSet(caps ...Capability) (*Set, error) {
	s := &Set{}
	seen := map[string]bool{}
	for _, c := range caps {
		name, ok := manifest.NormalizeCapability(c.Capability())
		if !ok {
			return nil, fmt.Errorf("capability %q is not a known capability", c.Capability())
		}
		for _, im := range c.Imports() {
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
			s.bound = append(s.bound, Bound{Import: im, Capability: name, Alias: alias})
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
	out, err := b.JSON(inv, req)
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
	b.Text(inv, text)
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
