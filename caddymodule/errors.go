package caddymodule

import (
	"net/http"
	"strconv"
	"time"

	"github.com/extedge/extedge/internal/execapi"
)

// Gateway error codes (SPEC §8.2, §8.3, §8.4). Every error the gateway
// itself answers uses one of these codes, or a runner code passed through
// (see runnerError). Clients see the code, never a Go error string.
const (
	codeExtensionNotFound   = "extension_not_found"
	codeUnauthenticated     = "unauthenticated"
	codeForbidden           = "forbidden"
	codeRateLimited         = "rate_limited"
	codeNotInstalled        = "not_installed"
	codeRegistryUnavailable = "registry_unavailable"
	codeEndpointNotFound    = "endpoint_not_found"
	codeMethodNotAllowed    = "method_not_allowed"
	codeQuotaExceeded       = "quota_exceeded"
	codePayloadTooLarge     = "payload_too_large"
	codeTimeout             = "timeout"
	codeRunnersBusy         = "runners_busy"
	// codeRunnersUnavailable is answered when no runner could be reached at
	// all (every socket refused or is marked down): 503, retryable.
	codeRunnersUnavailable = "runners_unavailable"
	codeResponseTooLarge   = "response_too_large"
	// codeBadGateway is used when a runner answered something that is not a
	// valid reply (malformed JSON, unexpected status without an error body).
	codeBadGateway = "bad_gateway"
	codeNotFound   = "not_found"
	// codeDebugUnavailable is answered by the debug stream when no Redis is
	// configured.
	codeDebugUnavailable = "debug_unavailable"
	codeInternal         = "internal"
)

// statusByCode is the one table of gateway codes to HTTP statuses.
var statusByCode = map[string]int{
	codeExtensionNotFound:   http.StatusNotFound,
	codeUnauthenticated:     http.StatusUnauthorized,
	codeForbidden:           http.StatusForbidden,
	codeRateLimited:         http.StatusTooManyRequests,
	codeNotInstalled:        http.StatusNotFound,
	codeRegistryUnavailable: http.StatusServiceUnavailable,
	codeEndpointNotFound:    http.StatusNotFound,
	codeMethodNotAllowed:    http.StatusMethodNotAllowed,
	codeQuotaExceeded:       http.StatusTooManyRequests,
	codePayloadTooLarge:     http.StatusRequestEntityTooLarge,
	codeTimeout:             http.StatusGatewayTimeout,
	codeRunnersBusy:         http.StatusServiceUnavailable,
	codeRunnersUnavailable:  http.StatusServiceUnavailable,
	codeResponseTooLarge:    http.StatusBadGateway,
	codeBadGateway:          http.StatusBadGateway,
	codeNotFound:            http.StatusNotFound,
	codeDebugUnavailable:    http.StatusServiceUnavailable,
	codeInternal:            http.StatusInternalServerError,
}

// gatewayError is an error answered to the client with a code from
// statusByCode (or a runner code, with an explicit status).
type gatewayError struct {
	code       string
	status     int
	message    string
	retryAfter time.Duration // > 0 adds Retry-After
	allow      string        // non-empty adds Allow (405)
}

func (e *gatewayError) Error() string { return e.code + ": " + e.message }

// errorf returns a gatewayError with the table status of code.
func newError(code, message string) *gatewayError {
	st, ok := statusByCode[code]
	if !ok {
		st = http.StatusBadGateway
	}
	return &gatewayError{code: code, status: st, message: message}
}

// runnerError maps a runner's error reply to what the client sees (SPEC §8.2
// step 10): timeout → 504 timeout, concurrency_limited → 503 runners_busy with
// Retry-After, payload_too_large → 413, anything else → 502 with the runner's
// own code (bad_request, unauthorized and internal included: they are the
// gateway's upstream failing, not the client's fault).
func runnerError(e *execapi.Error) *gatewayError {
	switch e.Code {
	case execapi.CodeTimeout:
		return newError(codeTimeout, "the extension handler did not answer in time")
	case execapi.CodeConcurrencyLimited:
		ge := newError(codeRunnersBusy, "all runners are busy, retry shortly")
		ge.retryAfter = time.Second
		return ge
	case execapi.CodePayloadTooLarge:
		return newError(codePayloadTooLarge, "the request is larger than the runner accepts")
	}
	code := e.Code
	if code == "" {
		code = codeBadGateway
	}
	return &gatewayError{code: code, status: http.StatusBadGateway, message: runnerMessage(code)}
}

// runnerMessage is a fixed, client-safe message per runner code; the
// runner's own message may carry internals and stays in the log.
func runnerMessage(code string) string {
	switch code {
	case execapi.CodeHandlerError:
		return "the extension handler reported an error"
	case execapi.CodeTrap:
		return "the extension handler crashed"
	case execapi.CodeMemoryLimit:
		return "the extension handler exceeded its memory limit"
	case execapi.CodeFuelExhausted:
		return "the extension handler exceeded its compute budget"
	case execapi.CodeBadHandler:
		return "the extension module is invalid"
	case execapi.CodeBundleUnavailable:
		return "the extension bundle could not be fetched"
	case execapi.CodeIntegrityFailed:
		return "the extension bundle failed verification"
	}
	return "the extension runner failed"
}

// errorBodyPrefix etc. build the JSON by hand: codes and request ids are
// plain tokens, messages are fixed strings, so escaping is done by
// appendJSONString for safety without reflection on the error path.
func writeError(w http.ResponseWriter, requestID string, ge *gatewayError) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	if requestID != "" {
		h.Set("X-Request-Id", requestID)
	}
	if ge.retryAfter > 0 {
		secs := int64((ge.retryAfter + time.Second - 1) / time.Second)
		h.Set("Retry-After", strconv.FormatInt(secs, 10))
	}
	if ge.allow != "" {
		h.Set("Allow", ge.allow)
	}
	buf := make([]byte, 0, 128+len(ge.message))
	buf = append(buf, `{"error":{"code":`...)
	buf = appendJSONString(buf, ge.code)
	buf = append(buf, `,"message":`...)
	buf = appendJSONString(buf, ge.message)
	buf = append(buf, `,"request_id":`...)
	buf = appendJSONString(buf, requestID)
	buf = append(buf, "}}\n"...)
	h.Set("Content-Length", strconv.Itoa(len(buf)))
	w.WriteHeader(ge.status)
	_, _ = w.Write(buf)
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string literal.
func appendJSONString(buf []byte, s string) []byte {
	buf = append(buf, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			buf = append(buf, '\\', c)
		case c < 0x20 || c == '<' || c == '>' || c == '&':
			buf = append(buf, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		default:
			buf = append(buf, c)
		}
	}
	return append(buf, '"')
}
