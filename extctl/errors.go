package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/extedge/extedge/internal/signing"
)

// codedError is a local failure with a stable code for --json.
type codedError struct{ code, msg string }

func (e *codedError) Error() string { return e.msg }

// Codes of local failures in --json errors. Registry refusals keep the
// registry's code (SPEC §7.3) and verification failures signing's.
const (
	codeUsage                = "usage"
	codeUnknownCommand       = "unknown_command"
	codeFailed               = "failed" // any other local failure
	codeRegistryUnreachable  = "registry_unreachable"
	codeTimeout              = "timeout"
	codeInterrupted          = "interrupted"
	codeConfirmationRequired = "confirmation_required"
	codeAborted              = "aborted"
)

// errorCode classifies err for --json and picks the exit code: 2 for
// usage errors (bad flags, unknown commands), 1 for everything else.
func errorCode(err error) (code string, exit int) {
	var ue usageError
	var uc unknownCommandError
	var ge groupError
	var ae *apiError
	var ce *codedError
	switch {
	case errors.As(err, &uc):
		return codeUnknownCommand, 2
	case errors.As(err, &ue), errors.As(err, &ge):
		return codeUsage, 2
	case errors.As(err, &ae):
		return ae.Code, 1
	case errors.As(err, &ce):
		return ce.code, 1
	case signing.CodeOf(err) != "":
		return signing.CodeOf(err), 1
	}
	return codeFailed, 1
}

// jsonError is the --json form of a failure, on stderr.
type jsonError struct {
	Error jsonErrorBody `json:"error"`
}

type jsonErrorBody struct {
	Code    string          `json:"code"`
	Message string          `json:"message"`
	Details json.RawMessage `json:"details,omitempty"`
}

func writeJSONError(w io.Writer, code string, err error) {
	body := jsonErrorBody{Code: code, Message: oneLine(err.Error())}
	var ae *apiError
	if errors.As(err, &ae) {
		body.Message = oneLine(ae.Message)
		if body.Message == "" {
			body.Message = http.StatusText(ae.Status)
		}
		if len(ae.Details) > 0 && string(ae.Details) != "null" {
			body.Details = ae.Details
		}
	}
	b, mErr := json.Marshal(jsonError{body})
	if mErr != nil { // cannot happen: Details came from a JSON reply
		b = []byte(fmt.Sprintf(`{"error":{"code":%q,"message":%q}}`, code, body.Message))
	}
	w.Write(append(b, '\n'))
}

// wantsJSON reports whether the command line asks for --json (before any
// "--"), so that failures before or during flag parsing are JSON too.
func wantsJSON(args []string) bool {
	for _, a := range args {
		if a == "--" {
			return false
		}
		name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") || name != "json" {
			continue
		}
		if !hasVal {
			return true
		}
		b, err := strconv.ParseBool(val)
		return err == nil && b
	}
	return false
}
