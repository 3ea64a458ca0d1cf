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
	// codeBadRequest is answered when the client's request body cannot be
	// read (a broken chunked stream); the spelling is the runner's (§6.2).
	codeBadRequest = execapi.CodeBadRequest
	codeTimeout    = "timeout"
	// codeClientClosed is recorded when the client went away before the
	// answer; nobody reads the body, but metrics and the access log see it.
	codeClientClosed = "client_closed"
	codeRunnersBusy  = "runners_busy"
	// codeExtensionUnhealthy is answered while an install's circuit
	// breaker is open or probing (SPEC §17): 503 with Retry-After.
	codeExtensionUnhealthy = "extension_unhealthy"
	// codeRunnersUnavailable is answered when no runner could be reached at
	// all (every socket refused or is marked down): 503, retryable.
	codeRunnersUnavailable = "runners_unavailable"
	codeResponseTooLarge   = "response_too_large"
	// codeBadGateway is used when a runner answered something that is not a
	// valid reply (malformed JSON, unexpected status without an error body).
	codeBadGateway = "bad_gateway"
	// codeBundleUnavailable and codeIntegrityFailed are the runner's codes
	// (§6.2), which the gateway also answers itself on /ext-ui when it
	// prepares a UI tree.
	codeBundleUnavailable = execapi.CodeBundleUnavailable
	codeIntegrityFailed   = execapi.CodeIntegrityFailed
	codeNotFound          = "not_found"
	// codeDebugUnavailable is answered by the debug stream when no Redis is
	// configured.
	codeDebugUnavailable = "debug_unavailable"
	codeInternal         = "internal"
)

// statusClientClosed is nginx's "client closed request"; it is never
// written to a client that is still there, only recorded.
const statusClientClosed = 499

// errorEntry is what the client sees for a code: the HTTP status and the
// message used when the call site has nothing more specific to say.
type errorEntry struct {
	status  int
	message string
}

// errorTable is the one table of gateway codes to HTTP statuses and
// messages (SPEC §8.2 steps 1–10, §8.3, §8.4).
//
// Where copies of this table used to disagree, SPEC decides:
// bundle_unavailable was 503 on /ext-ui and 502 on /api/ext; SPEC gives the
// code one status, 502 (§6.2, passed through by §8.2 step 10), so it is
// 502 on both routes (§8.3's 503 is for the registry, registry_unavailable).
// A damaged UI cache entry is rebuilt in place (§8.3), so it no longer
// answers an error at all unless the rebuild fails.
var errorTable = map[string]errorEntry{
	codeExtensionNotFound:   {http.StatusNotFound, "no such extension"},
	codeUnauthenticated:     {http.StatusUnauthorized, "missing or invalid credentials"},
	codeForbidden:           {http.StatusForbidden, "forbidden"},
	codeRateLimited:         {http.StatusTooManyRequests, "too many requests"},
	codeNotInstalled:        {http.StatusNotFound, "the extension is not installed for this tenant"},
	codeRegistryUnavailable: {http.StatusServiceUnavailable, "the extension registry is unavailable"},
	codeEndpointNotFound:    {http.StatusNotFound, "no such endpoint"},
	codeMethodNotAllowed:    {http.StatusMethodNotAllowed, "method not allowed"},
	codeQuotaExceeded:       {http.StatusTooManyRequests, "the install's quota is exhausted"},
	codePayloadTooLarge:     {http.StatusRequestEntityTooLarge, "the request is too large"},
	codeBadRequest:          {http.StatusBadRequest, "the request body could not be read"},
	codeTimeout:             {http.StatusGatewayTimeout, "the extension handler did not answer in time"},
	codeClientClosed:        {statusClientClosed, "client closed request"},
	codeRunnersBusy:         {http.StatusServiceUnavailable, "all runners are busy, retry shortly"},
	codeExtensionUnhealthy:  {http.StatusServiceUnavailable, "the extension is failing, retry later"},
	codeRunnersUnavailable:  {http.StatusServiceUnavailable, "no extension runner is reachable"},
	codeResponseTooLarge:    {http.StatusBadGateway, "the extension's response is too large"},
	codeBadGateway:          {http.StatusBadGateway, "the extension runner failed"},
	codeBundleUnavailable:   {http.StatusBadGateway, "the extension bundle could not be fetched"},
	codeIntegrityFailed:     {http.StatusBadGateway, "the extension bundle failed verification"},
	codeNotFound:            {http.StatusNotFound, "not found"},
	codeDebugUnavailable:    {http.StatusServiceUnavailable, "the debug stream is unavailable"},
	codeInternal:            {http.StatusInternalServerError, "internal error"},
}

// statusRunnerFailed is the status of every runner code the gateway passes
// through unmapped (§8.2 step 10: "else 502 with the runner's code") —
// bad_request, unauthorized and internal included: they are the gateway's
// upstream failing, not the client's fault.
const statusRunnerFailed = http.StatusBadGateway

// runnerMessages are fixed, client-safe messages per runner code; the
// runner's own message may carry internals and stays in the log.
var runnerMessages = map[string]string{
	execapi.CodeHandlerError:      "the extension handler reported an error",
	execapi.CodeTrap:              "the extension handler crashed",
	execapi.CodeMemoryLimit:       "the extension handler exceeded its memory limit",
	execapi.CodeFuelExhausted:     "the extension handler exceeded its compute budget",
	execapi.CodeBadHandler:        "the extension module is invalid",
	execapi.CodeBundleUnavailable: errorTable[codeBundleUnavailable].message,
	execapi.CodeIntegrityFailed:   errorTable[codeIntegrityFailed].message,
}

// gatewayError is an error answered to the client with a code and status
// from errorTable (or a runner code, with statusRunnerFailed).
type gatewayError struct {
	code       string
	status     int
	message    string
	retryAfter time.Duration // > 0 adds Retry-After
	allow      string        // non-empty adds Allow (405)
}

func (e *gatewayError) Error() string { return e.code + ": " + e.message }

// newError returns a gatewayError with the table status of code; an empty
// message takes the table's. A code missing from the table is a bug (the
// table test lists every code); it answers 500 internal rather than leak.
func newError(code, message string) *gatewayError {
	e, ok := errorTable[code]
	if !ok {
		code, e = codeInternal, errorTable[codeInternal]
	}
	if message == "" {
		message = e.message
	}
	return &gatewayError{code: code, status: e.status, message: message}
}

// runnerError maps a runner's error reply to what the client sees (SPEC §8.2
// step 10): timeout → 504 timeout, concurrency_limited → 503 runners_busy with
// Retry-After, payload_too_large → 413, anything else → statusRunnerFailed
// with the runner's own code.
func runnerError(e *execapi.Error) *gatewayError {
	switch e.Code {
	case execapi.CodeTimeout:
		return newError(codeTimeout, "")
	case execapi.CodeConcurrencyLimited:
		ge := newError(codeRunnersBusy, "")
		ge.retryAfter = time.Second
		return ge
	case execapi.CodePayloadTooLarge:
		return newError(codePayloadTooLarge, "the request is larger than the runner accepts")
	}
	code := e.Code
	if code == "" {
		code = codeBadGateway
	}
	msg, ok := runnerMessages[code]
	if !ok {
		msg = errorTable[codeBadGateway].message
	}
	return &gatewayError{code: code, status: statusRunnerFailed, message: msg}
}

// errorBodyPrefix etc. build the JSON by hand: codes and request ids are
// plain tokens, messages are fixed strings, so escaping is done by
// appendJSONString for safety without reflection on the error path.
func writeError(w http.ResponseWriter, requestID string, ge *gatewayError) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", apiCSP)
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
