// Package execapi holds the wire contract between the gateway and runnerd
// (SPEC §6.2): the execute envelope, the guest's reply, and the error codes
// with their HTTP statuses. Both sides import it so the JSON spelling lives
// in exactly one place.
package execapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/extedge/extedge/internal/manifest"
)

// Paths of the runner's HTTP API.
const (
	PathExecute = "/v1/execute"
	PathWarmup  = "/v1/warmup"
	PathHealthz = "/healthz"
	PathReadyz  = "/readyz"
	PathMetrics = "/metrics"
)

// Context identifies the call: who is calling which installed version.
type Context struct {
	RequestID   string `json:"request_id"`
	TenantID    string `json:"tenant_id"`
	ExtensionID string `json:"extension_id"`
	InstallID   string `json:"install_id"`
	VersionID   string `json:"version_id"`
	ContentHash string `json:"content_hash"`
}

// HTTPRequest is the client request as the guest sees it. Query keeps the
// first value of each repeated key. Headers are lowercase names already
// filtered by the gateway's allowlist. Body is base64 on the wire (nil is
// JSON null).
type HTTPRequest struct {
	Method  string            `json:"method"`
	Path    string            `json:"path"`
	Query   map[string]string `json:"query"`
	Headers map[string]string `json:"headers"`
	Body    []byte            `json:"body_b64"`
}

// Endpoint is the manifest endpoint that matched, with its decoded params.
type Endpoint struct {
	Method  string            `json:"method"`
	Path    string            `json:"path"`
	Handler string            `json:"handler"`
	Params  map[string]string `json:"params"`
}

// Limits are the per-call limits the gateway asks for. Zero values mean the
// runner's defaults; the runner never raises a limit above its own maximum.
type Limits struct {
	// TimeoutMS is the guest's own deadline, counted from just before the
	// handler export is called (SPEC §5.4).
	TimeoutMS int    `json:"timeout_ms,omitempty"`
	MemoryMB  int    `json:"memory_mb,omitempty"`
	Fuel      uint64 `json:"fuel,omitempty"`
	// DeadlineMS is what was left of the whole call, as the gateway saw it
	// when it sent the envelope: queueing, bundle fetch, compilation and the
	// guest all fit in it, so the runner has answered before the gateway
	// gives up. It is relative (not a wall-clock time) so that clock skew
	// between hosts cannot shorten or stretch it; transit time makes the
	// runner's view slightly later, which the gateway's reply margin
	// absorbs. 0 means no deadline beyond the connection's.
	DeadlineMS int64 `json:"deadline_ms,omitempty"`
}

// Deadline returns ctx bounded by DeadlineMS counted from now, the
// moment the envelope arrived. This is the one place a runner call's
// overall deadline comes from.
func (l Limits) Deadline(ctx context.Context) (context.Context, context.CancelFunc) {
	if l.DeadlineMS <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, time.Duration(l.DeadlineMS)*time.Millisecond)
}

// SetDeadline records in l what is left of ctx's deadline minus margin
// (the time the runner's answer needs to travel back), at least 1 ms.
// Without a deadline on ctx it leaves l unchanged.
func (l *Limits) SetDeadline(ctx context.Context, margin time.Duration) {
	dl, ok := ctx.Deadline()
	if !ok {
		return
	}
	l.DeadlineMS = max(time.Until(dl)-margin, time.Millisecond).Milliseconds()
}

// User is the calling user, present only when the install has user.read.
type User struct {
	ID    string `json:"id,omitempty"`
	Email string `json:"email,omitempty"`
	Name  string `json:"name,omitempty"`
	Type  string `json:"type,omitempty"`
}

// InstanceReuse is present when the install opted into instance reuse
// (SPEC §6.5): the runner may then serve the call from an instance kept
// from an earlier call of the same install and module, and keep it for the
// next. Zero bounds mean the runner's defaults (1000 calls, 60 s).
type InstanceReuse struct {
	MaxCalls int   `json:"max_calls,omitempty"`
	MaxAgeMS int64 `json:"max_age_ms,omitempty"`
}

// Request is the body of POST /v1/execute.
type Request struct {
	Context         Context         `json:"context"`
	HTTP            HTTPRequest     `json:"http"`
	Endpoint        Endpoint        `json:"endpoint"`
	Limits          Limits          `json:"limits"`
	Config          json.RawMessage `json:"config,omitempty"`
	User            *User           `json:"user,omitempty"`
	Capabilities    []string        `json:"capabilities"`
	EgressAllowlist []string        `json:"egress_allowlist,omitempty"`
	SecretEnvelope  *string         `json:"secret_envelope"`
	// InstanceReuse is nil for the default, a fresh instance per call.
	InstanceReuse *InstanceReuse `json:"instance_reuse,omitempty"`
	// Event, when set, makes the call an event delivery (SPEC §18): the
	// guest sees it and null http and endpoint. Endpoint.Handler still
	// names the subscription's handler, which the runner looks up as for
	// any call.
	Event *Event `json:"event,omitempty"`
}

// Event is the event a delivery hands the guest (SPEC §18).
type Event struct {
	ID         string          `json:"id"`
	Topic      string          `json:"topic"`
	OccurredAt time.Time       `json:"occurred_at"`
	Payload    json.RawMessage `json:"payload"`
}

// Capabilities the envelope logic itself looks at.
const (
	// CapUserRead lets the guest see the calling user (SPEC §5.1).
	CapUserRead = "user.read"
)

// UnmarshalJSON accepts `providers` as an alias of `capabilities` and
// normalises the list (SPEC §6.2) with [NormalizeCapabilities]. A
// capability this platform does not provide is a *CapabilityError.
func (r *Request) UnmarshalJSON(data []byte) error {
	type plain Request
	var aux struct {
		plain
		Providers []string `json:"providers"`
	}
	if err := json.Unmarshal(data, &aux); err != nil {
		return err
	}
	*r = Request(aux.plain)
	if r.Capabilities == nil {
		r.Capabilities = aux.Providers
	}
	caps, err := NormalizeCapabilities(r.Capabilities)
	if err != nil {
		return err
	}
	r.Capabilities = caps
	return nil
}

// CapabilityError names a capability this platform does not provide.
type CapabilityError struct {
	Capability string
}

func (e *CapabilityError) Error() string {
	return fmt.Sprintf("capability %q is not provided by this platform", e.Capability)
}

// NormalizeCapabilities returns caps in canonical form: the `cap:` prefix
// stripped, duplicates removed, first-seen order kept; nil stays nil. A
// capability outside manifest.KnownCapabilities is a *CapabilityError.
// The always-granted set (manifest.AlwaysGranted) is not added: [Granted]
// answers for it.
func NormalizeCapabilities(caps []string) ([]string, error) {
	if caps == nil {
		return nil, nil
	}
	out := make([]string, 0, len(caps))
	for _, c := range caps {
		n, ok := manifest.NormalizeCapability(c)
		if !ok {
			return nil, &CapabilityError{Capability: c}
		}
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out, nil
}

// Granted reports whether the call has capability c (a name without the
// `cap:` prefix): every call has the always-granted set, and the install's
// grants come with the envelope. Runner and gateway both decide here.
func (r *Request) Granted(c string) bool {
	if slices.Contains(manifest.AlwaysGranted, c) {
		return true
	}
	for _, g := range r.Capabilities {
		if n, _ := manifest.NormalizeCapability(g); n == c {
			return true
		}
	}
	return false
}

// Guest returns the request handed to the guest (SPEC §5.1): the user only
// when the install has user.read.
func (r *Request) Guest() GuestRequest {
	g := GuestRequest{Context: r.Context, HTTP: r.HTTP, Endpoint: r.Endpoint, Config: r.Config}
	if r.Granted(CapUserRead) {
		g.User = r.User
	}
	return g
}

// GuestJSON encodes the request handed to the guest: Guest for an API
// call, or for an event delivery the event with null http and endpoint
// (SPEC §18).
func (r *Request) GuestJSON() ([]byte, error) {
	if r.Event == nil {
		return json.Marshal(r.Guest())
	}
	g := r.Guest()
	return json.Marshal(eventGuestRequest{Context: g.Context, Config: g.Config, User: g.User, Event: r.Event})
}

// eventGuestRequest is the guest request of an event delivery.
type eventGuestRequest struct {
	Context  Context         `json:"context"`
	HTTP     *HTTPRequest    `json:"http"`
	Endpoint *Endpoint       `json:"endpoint"`
	Config   json.RawMessage `json:"config,omitempty"`
	User     *User           `json:"user,omitempty"`
	Event    *Event          `json:"event"`
}

// GuestRequest is the JSON handed to the guest (SPEC §5.1): the envelope
// without limits, capabilities, allowlist or secrets.
type GuestRequest struct {
	Context  Context         `json:"context"`
	HTTP     HTTPRequest     `json:"http"`
	Endpoint Endpoint        `json:"endpoint"`
	Config   json.RawMessage `json:"config,omitempty"`
	User     *User           `json:"user,omitempty"`
}

// Response is a successful execution: whatever status the guest chose.
type Response struct {
	Status  int               `json:"status"`
	Headers map[string]string `json:"headers"`
	Body    []byte            `json:"body_b64"`
}

// ContentTypeRawReply is the framed form of a successful execute reply: the
// reply's JSON without body_b64, one '\n', then the guest's body as is. A
// client asks for it with this media type in Accept; a runner that does not
// know it answers JSON as §6.2 says, and the client tells the two apart by
// the reply's Content-Type, so either side may be upgraded first. It saves
// the base64 and JSON string passes over the body on both sides (decoding
// a 4 MiB body from JSON took the gateway about 55 ms of CPU).
const ContentTypeRawReply = "application/vnd.extedge.reply"

// replyMeta is the first line of a framed reply.
type replyMeta struct {
	Status  int               `json:"status"`
	Headers map[string]string `json:"headers"`
}

// AcceptsRawReply reports whether an Accept header value asks for the
// framed reply.
func AcceptsRawReply(accept string) bool {
	return strings.Contains(accept, ContentTypeRawReply)
}

// AppendRawReply appends r's framed form to dst, except the body, which
// the caller writes after it (so the body is never copied).
func AppendRawReply(dst []byte, r *Response) ([]byte, error) {
	meta, err := json.Marshal(replyMeta{Status: r.Status, Headers: r.Headers})
	if err != nil {
		return dst, err
	}
	dst = append(dst, meta...)
	return append(dst, '\n'), nil
}

// ParseRawReply parses a framed reply. The returned Body aliases b.
// encoding/json never writes a raw newline, so the first one ends the
// metadata whatever bytes the body holds.
func ParseRawReply(b []byte) (*Response, error) {
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		return nil, errors.New("framed reply without a metadata line")
	}
	var m replyMeta
	if err := json.Unmarshal(b[:i], &m); err != nil {
		return nil, fmt.Errorf("framed reply metadata: %v", err)
	}
	return &Response{Status: m.Status, Headers: m.Headers, Body: b[i+1:]}, nil
}

// HeaderCPU is the execute reply header carrying the guest's CPU time in
// whole microseconds, on every reply of a call whose guest ran (success or
// error); the gateway charges it to the install's cpu_ms_per_minute
// quota (SPEC §17). Canonical form, for direct map access.
const HeaderCPU = "X-Extedge-Cpu-Us"

// SetCPU records the guest's CPU time in h (HeaderCPU).
func SetCPU(h http.Header, cpu time.Duration) {
	h[HeaderCPU] = []string{strconv.FormatInt(cpu.Microseconds(), 10)}
}

// CPU reads the guest's CPU time from h (HeaderCPU): zero when the header
// is absent, malformed, negative or over an hour (no call runs that long).
func CPU(h http.Header) time.Duration {
	v := h[HeaderCPU]
	if len(v) == 0 {
		return 0
	}
	us, err := strconv.ParseInt(v[0], 10, 64)
	if err != nil || us < 0 || us > int64(time.Hour/time.Microsecond) {
		return 0
	}
	return time.Duration(us) * time.Microsecond
}

// Error is the error object of every failed call.
type Error struct {
	Code      string `json:"code"`
	Message   string `json:"message"`
	RequestID string `json:"request_id,omitempty"`
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// ErrorBody is the JSON body of a failed call.
type ErrorBody struct {
	Error Error `json:"error"`
}

// Runner error codes (SPEC §6.2).
const (
	CodeBadRequest         = "bad_request"
	CodeUnauthorized       = "unauthorized"
	CodePayloadTooLarge    = "payload_too_large"
	CodeConcurrencyLimited = "concurrency_limited"
	CodeBundleUnavailable  = "bundle_unavailable"
	CodeIntegrityFailed    = "integrity_failed"
	CodeBadHandler         = "bad_handler"
	CodeHandlerError       = "handler_error"
	CodeTrap               = "trap"
	CodeMemoryLimit        = "memory_limit"
	CodeFuelExhausted      = "fuel_exhausted"
	CodeTimeout            = "timeout"
	CodeInternal           = "internal"
)

var statusByCode = map[string]int{
	CodeBadRequest:         http.StatusBadRequest,
	CodeUnauthorized:       http.StatusUnauthorized,
	CodePayloadTooLarge:    http.StatusRequestEntityTooLarge,
	CodeConcurrencyLimited: http.StatusTooManyRequests,
	CodeBundleUnavailable:  http.StatusBadGateway,
	CodeIntegrityFailed:    http.StatusBadGateway,
	CodeBadHandler:         http.StatusBadGateway,
	CodeHandlerError:       http.StatusBadGateway,
	CodeTrap:               http.StatusBadGateway,
	CodeMemoryLimit:        http.StatusBadGateway,
	CodeFuelExhausted:      http.StatusBadGateway,
	CodeTimeout:            http.StatusGatewayTimeout,
	CodeInternal:           http.StatusInternalServerError,
}

// HTTPStatus returns the runner's HTTP status for an error code; unknown
// codes are internal errors.
func HTTPStatus(code string) int {
	if s, ok := statusByCode[code]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// Codes lists every runner error code, for tests and documentation.
func Codes() []string {
	return []string{CodeBadRequest, CodeUnauthorized, CodePayloadTooLarge,
		CodeConcurrencyLimited, CodeBundleUnavailable, CodeIntegrityFailed,
		CodeBadHandler, CodeHandlerError, CodeTrap, CodeMemoryLimit,
		CodeFuelExhausted, CodeTimeout, CodeInternal}
}

// WarmupRequest is the body of POST /v1/warmup.
type WarmupRequest struct {
	ContentHashes []string `json:"content_hashes"`
}
