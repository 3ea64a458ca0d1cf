package api

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"

	"go.uber.org/zap"

	"github.com/extedge/extedge/registryd/store"
)

// API error codes not defined by the store or the pipeline.
const (
	codeUnauthorized       = "unauthorized"
	codeForbidden          = "forbidden"
	codeMethodNotAllowed   = "method_not_allowed"
	codeInternal           = "internal"
	codeSecretsUnavailable = "secrets_unavailable"
	codePayloadTooLarge    = store.CodePayloadTooLarge
)

// statusOf is the one table from error code to HTTP status.
var statusOf = map[string]int{
	"invalid_request":         http.StatusBadRequest,
	"invalid_bundle":          http.StatusBadRequest,
	"invalid_manifest":        http.StatusBadRequest,
	"capability_not_declared": http.StatusBadRequest,
	"validation_failed":       http.StatusBadRequest,
	codeUnauthorized:          http.StatusUnauthorized,
	codeForbidden:             http.StatusForbidden,
	"not_found":               http.StatusNotFound,
	"not_installed":           http.StatusNotFound,
	codeMethodNotAllowed:      http.StatusMethodNotAllowed,
	"version_exists":          http.StatusConflict,
	"version_revoked":         http.StatusConflict,
	"revision_mismatch":       http.StatusConflict,
	store.CodeLeaseLost:       http.StatusConflict,
	store.CodeDeliveryNotDead: http.StatusConflict,
	"bundle_too_large":        http.StatusRequestEntityTooLarge,
	codePayloadTooLarge:       http.StatusRequestEntityTooLarge,
	"signature_missing":       http.StatusUnprocessableEntity,
	"signature_invalid":       http.StatusUnprocessableEntity,
	"untrusted_key":           http.StatusUnprocessableEntity,
	"publisher_mismatch":      http.StatusUnprocessableEntity,
	"quota_exceeded":          http.StatusTooManyRequests,
	codeInternal:              http.StatusInternalServerError,
	"storage_unavailable":     http.StatusServiceUnavailable,
	"database_unavailable":    http.StatusServiceUnavailable,
	codeSecretsUnavailable:    http.StatusServiceUnavailable,
}

type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Details any    `json:"details,omitempty"`
}

// writeCode writes a {"error":{…}} reply.
func writeCode(w http.ResponseWriter, code, message string, details any) {
	status, ok := statusOf[code]
	if !ok {
		status = http.StatusInternalServerError
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(errorBody{Error: errorDetail{Code: code, Message: message, Details: details}})
}

// writeError maps err to a reply. Typed errors keep their code and
// message; anything else is logged and becomes a bare internal error, so
// Go error strings (which might carry SQL or paths) never reach clients.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var se *store.Error
	switch {
	case errors.As(err, &se):
		if se.Code == store.CodeDatabaseUnavailable {
			s.log.Warn("database unavailable", zap.String("route", r.Pattern), zap.Error(err))
		}
		writeCode(w, se.Code, se.Message, se.Details)
	case store.Unavailable(err):
		s.log.Warn("database unavailable", zap.String("route", r.Pattern), zap.Error(err))
		writeCode(w, store.CodeDatabaseUnavailable, "database unavailable", nil)
	default:
		s.log.Error("internal error", zap.String("route", r.Pattern), zap.Error(err))
		writeCode(w, codeInternal, "internal error", nil)
	}
}

// writeJSON writes v with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// maxJSONBody bounds admin JSON bodies.
const maxJSONBody = 1 << 20

// decodeJSON strictly decodes one JSON value from the body (unknown fields
// rejected, so typos surface). Failures are invalid_request (or
// payload_too_large).
func decodeJSON(w http.ResponseWriter, r *http.Request, max int64, v any) error {
	if r.ContentLength > max {
		return &store.Error{Code: codePayloadTooLarge, Message: "request body too large"}
	}
	ct := r.Header.Get("Content-Type")
	if ct != "" && !strings.HasPrefix(ct, "application/json") {
		return store.Errorf(store.CodeInvalidRequest, "content type must be application/json")
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, max))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return &store.Error{Code: codePayloadTooLarge, Message: "request body too large"}
		}
		if errors.Is(err, io.EOF) {
			return store.Errorf(store.CodeInvalidRequest, "request body is empty; a JSON object is required")
		}
		return store.Errorf(store.CodeInvalidRequest, "malformed JSON: %v", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return store.Errorf(store.CodeInvalidRequest, "malformed JSON: trailing data after the value")
	}
	return nil
}
