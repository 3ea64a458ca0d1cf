package guest

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Names of the host imports in module "alga" (SPEC §5.2).
const (
	importHTTPFetch     = "http.fetch"
	importStorageGet    = "storage.get"
	importStoragePut    = "storage.put"
	importStorageDelete = "storage.delete"
	importStorageList   = "storage.list"
	importSecretsGet    = "secrets.get"
	importMetricsEmit   = "metrics.emit"
	importLogInfo       = "log_info"
	importLogWarn       = "log_warn"
	importLogError      = "log_error"
)

// Error codes a host call can fail with (SPEC §5.2, §5.3, §7.6), plus the
// SDK's own codes for replies it cannot read.
const (
	// CodeCapabilityDenied: the install was not granted the capability.
	CodeCapabilityDenied = "capability_denied"
	// CodeEgressDenied: http.fetch to a host outside the allowlists, or to
	// a private address.
	CodeEgressDenied = "egress_denied"
	// CodeInvalidURL: http.fetch with a URL that does not parse.
	CodeInvalidURL = "invalid_url"
	// CodeTimeout: the fetch ran out of time.
	CodeTimeout = "timeout"
	// CodeTransport: connection or protocol failure during a fetch.
	CodeTransport = "transport"
	// CodeTooLarge: the fetched response exceeded the body cap.
	CodeTooLarge = "too_large"
	// CodeNotFound: no such KV record or secret.
	CodeNotFound = "not_found"
	// CodeRevisionMismatch: a conditional KV write lost the race.
	CodeRevisionMismatch = "revision_mismatch"
	// CodeQuotaExceeded: the install's KV record or byte quota is full.
	CodeQuotaExceeded = "quota_exceeded"
	// CodeValidationFailed: the host rejected the request's fields.
	CodeValidationFailed = "validation_failed"
	// CodeHostCallLimit: the runner's per-invocation host call cap was hit.
	// The runner may spell this differently; the SDK passes whatever code
	// it receives through unchanged.
	CodeHostCallLimit = "host_call_limit"
	// CodeInvalidHostReply (SDK): the host's reply was missing or not the
	// expected JSON.
	CodeInvalidHostReply = "invalid_host_reply"
	// CodeInternal is used by [ErrorFrom] for errors that are not host
	// errors.
	CodeInternal = "internal"
)

// HostError is a failed host call: the host returned 1 with
// `{"error":{"code","message"}}`.
type HostError struct {
	// Import is the host function that failed, e.g. "http.fetch".
	Import string
	// Code is the machine-readable error code (the Code* constants).
	Code string
	// Message is the host's human-readable explanation.
	Message string
}

func (e *HostError) Error() string {
	if e.Message == "" {
		return e.Import + ": " + e.Code
	}
	return e.Import + ": " + e.Code + ": " + e.Message
}

// IsCode reports whether err is (or wraps) a [*HostError] with the code.
func IsCode(err error, code string) bool {
	var he *HostError
	return errors.As(err, &he) && he.Code == code
}

// call performs one JSON host call: it encodes req, invokes the import,
// takes the reply the host wrote through alloc and decodes it into reply
// (which may be nil).
func call(name string, req, reply any) error {
	body, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("%s: encoding request: %w", name, err)
	}
	// The out area lives on the heap: the host writes it while Go code
	// (the alloc export) runs, which may grow and move this goroutine's
	// stack, but never moves heap objects.
	out := make([]byte, 8)
	status := callImport(name, body, out)
	ptr, n := binary.LittleEndian.Uint32(out[0:4]), binary.LittleEndian.Uint32(out[4:8])
	var raw []byte
	if ptr != 0 || n != 0 {
		var ok bool
		if raw, ok = mem.take(ptr, n); !ok {
			return &HostError{Import: name, Code: CodeInvalidHostReply,
				Message: fmt.Sprintf("reply at %#x+%d is outside guest memory", ptr, n)}
		}
	}
	if status != 0 {
		var eb ErrorBody
		if err := json.Unmarshal(raw, &eb); err != nil || eb.Error.Code == "" {
			return &HostError{Import: name, Code: CodeInvalidHostReply,
				Message: fmt.Sprintf("host returned %d without an error object", status)}
		}
		return &HostError{Import: name, Code: eb.Error.Code, Message: eb.Error.Message}
	}
	if reply == nil {
		return nil
	}
	if err := json.Unmarshal(raw, reply); err != nil {
		return &HostError{Import: name, Code: CodeInvalidHostReply, Message: "decoding reply: " + err.Error()}
	}
	return nil
}

// FetchRequest is an outbound HTTP request made through the host
// (capability http.fetch, subject to the egress policy of SPEC §5.3).
type FetchRequest struct {
	// URL is absolute; https unless the allowlist entry says http://.
	URL string `json:"url"`
	// Method defaults to GET.
	Method string `json:"method,omitempty"`
	// Headers are sent as given.
	Headers map[string]string `json:"headers,omitempty"`
	// Body is the request body (base64 on the wire).
	Body []byte `json:"body_b64,omitempty"`
	// TimeoutMS bounds the fetch; the host also caps it at the
	// invocation's remaining time. Zero means the host's default.
	TimeoutMS int `json:"timeout_ms,omitempty"`
}

// FetchResponse is the upstream's reply. Any HTTP status is a successful
// fetch; only policy and transport failures are errors.
type FetchResponse struct {
	Status  int               `json:"status"`
	Headers map[string]string `json:"headers"`
	Body    []byte            `json:"body_b64"`
}

// DecodeJSON unmarshals the fetched body into v.
func (r *FetchResponse) DecodeJSON(v any) error {
	if err := json.Unmarshal(r.Body, v); err != nil {
		return fmt.Errorf("decoding fetch response: %w", err)
	}
	return nil
}

// Fetch performs an outbound HTTP request through the host. Errors are
// [*HostError]s with codes egress_denied, invalid_url, timeout, transport,
// too_large or capability_denied.
func Fetch(req FetchRequest) (*FetchResponse, error) {
	var resp FetchResponse
	if err := call(importHTTPFetch, req, &resp); err != nil {
		return nil, err
	}
	return &resp, nil
}

// Secret returns the install's secret key (capability secrets.get). A
// missing secret is a not_found [*HostError]. Never log the value.
func Secret(key string) (string, error) {
	var reply struct {
		Value string `json:"value"`
	}
	if err := call(importSecretsGet, struct {
		Key string `json:"key"`
	}{key}, &reply); err != nil {
		return "", err
	}
	return reply.Value, nil
}

// Metric kinds for [Metric].
const (
	Counter   = "counter"
	Gauge     = "gauge"
	Histogram = "histogram"
)

// Metric emits one sample: kind is [Counter], [Gauge] or [Histogram];
// labels may be nil.
func Metric(name string, value float64, kind string, labels map[string]string) error {
	return call(importMetricsEmit, struct {
		Name   string            `json:"name"`
		Value  float64           `json:"value"`
		Kind   string            `json:"kind"`
		Labels map[string]string `json:"labels,omitempty"`
	}{name, value, kind, labels}, nil)
}

// Logger writes to the runner's log and debug stream. Messages are UTF-8;
// the runner caps bytes per call and per invocation and drops the excess.
type Logger struct{}

// Log is the handler's logger.
var Log Logger

// Info logs msg at info level.
func (Logger) Info(msg string) { callLog(importLogInfo, msg) }

// Warn logs msg at warn level.
func (Logger) Warn(msg string) { callLog(importLogWarn, msg) }

// Error logs msg at error level.
func (Logger) Error(msg string) { callLog(importLogError, msg) }

// Infof logs a formatted message at info level.
func (Logger) Infof(format string, args ...any) { callLog(importLogInfo, fmt.Sprintf(format, args...)) }

// Warnf logs a formatted message at warn level.
func (Logger) Warnf(format string, args ...any) { callLog(importLogWarn, fmt.Sprintf(format, args...)) }

// Errorf logs a formatted message at error level.
func (Logger) Errorf(format string, args ...any) {
	callLog(importLogError, fmt.Sprintf(format, args...))
}

// durationSeconds rounds a TTL up to whole seconds.
func durationSeconds(d time.Duration) int {
	return int((d + time.Second - 1) / time.Second)
}
