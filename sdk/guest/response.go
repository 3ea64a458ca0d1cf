package guest

import (
	"encoding/json"
	"errors"
)

// Response is what a handler returns; it is sent to the host as
// `{"status","headers","body_b64"}` (SPEC §5.1).
type Response struct {
	// Status is the HTTP status, 100–599. Zero means 200.
	Status int `json:"status"`
	// Headers are response headers; values are single strings.
	Headers map[string]string `json:"headers,omitempty"`
	// Body is the raw response body (base64 on the wire).
	Body []byte `json:"body_b64,omitempty"`
}

// WithHeader returns a copy of r with the header set.
func (r Response) WithHeader(name, value string) Response {
	h := make(map[string]string, len(r.Headers)+1)
	for k, v := range r.Headers {
		h[k] = v
	}
	h[name] = value
	r.Headers = h
	return r
}

// JSON returns a response with v encoded as JSON. If v cannot be encoded
// the response is a 500 `internal` error instead.
func JSON(status int, v any) Response {
	body, err := json.Marshal(v)
	if err != nil {
		return Error(500, CodeInternal, "encoding response: "+err.Error())
	}
	return Response{
		Status:  status,
		Headers: map[string]string{"content-type": "application/json"},
		Body:    body,
	}
}

// Text returns a plain-text response.
func Text(status int, s string) Response {
	return Response{
		Status:  status,
		Headers: map[string]string{"content-type": "text/plain; charset=utf-8"},
		Body:    []byte(s),
	}
}

// ErrorBody is the JSON shape of [Error] responses and of host error
// replies: `{"error":{"code":"…","message":"…"}}`.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail is the inner object of an [ErrorBody].
type ErrorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message,omitempty"`
}

// Error returns a JSON error response `{"error":{"code","message"}}`, the
// same shape the gateway uses for its own errors.
func Error(status int, code, message string) Response {
	return JSON(status, ErrorBody{Error: ErrorDetail{Code: code, Message: message}})
}

// statusByHostCode maps host error codes to the HTTP status [ErrorFrom]
// answers with.
var statusByHostCode = map[string]int{
	CodeNotFound:         404,
	CodeRevisionMismatch: 409,
	CodeQuotaExceeded:    429,
	CodeValidationFailed: 400,
	CodeCapabilityDenied: 403,
	CodeEgressDenied:     502,
	CodeInvalidURL:       502,
	CodeTimeout:          504,
	CodeTransport:        502,
	CodeTooLarge:         502,
	CodeHostCallLimit:    503,
	CodeInvalidHostReply: 502,
}

// ErrorFrom turns an error into a JSON error response. A [*HostError] keeps
// its code and message, with a status that fits the code (not_found → 404,
// revision_mismatch → 409, quota_exceeded → 429, validation_failed → 400,
// capability_denied → 403, timeout → 504, egress and transport codes → 502).
// Any other error is logged through [Log] and answered with a generic 500
// `internal`, so Go error strings do not leak to clients.
func ErrorFrom(err error) Response {
	var he *HostError
	if errors.As(err, &he) {
		status, ok := statusByHostCode[he.Code]
		if !ok {
			status = 500
		}
		return Error(status, he.Code, he.Message)
	}
	Log.Error("handler error: " + err.Error())
	return Error(500, CodeInternal, "internal error")
}
