package guest

import (
	"encoding/json"
	"errors"
	"strconv"
	"strings"
)

// Request is the JSON the host hands to the guest for one call (SPEC §5.1).
type Request struct {
	// Context identifies the call and the installed version serving it.
	Context Context `json:"context"`
	// HTTP is the client request as the gateway forwarded it.
	HTTP HTTP `json:"http"`
	// Endpoint is the manifest endpoint that matched, with its params.
	Endpoint Endpoint `json:"endpoint"`
	// Config is the install's configuration object, verbatim.
	Config json.RawMessage `json:"config,omitempty"`
	// User is the calling user; nil unless the install has user.read.
	User *User `json:"user,omitempty"`
	// Event is set when the call delivers an event (SPEC §18); HTTP and
	// Endpoint are then empty. OnEvent handlers receive it.
	Event *Event `json:"event,omitempty"`
}

// Context identifies who is calling which installed version.
type Context struct {
	RequestID   string `json:"request_id"`
	TenantID    string `json:"tenant_id"`
	ExtensionID string `json:"extension_id"`
	InstallID   string `json:"install_id"`
	VersionID   string `json:"version_id"`
	ContentHash string `json:"content_hash"`
}

// HTTP is the client request. Query keeps the first value of each key;
// header names are lowercase. Body travels as base64 (body_b64) and is nil
// when the request had none.
type HTTP struct {
	Method  string            `json:"method"`
	Path    string            `json:"path"`
	Query   map[string]string `json:"query"`
	Headers map[string]string `json:"headers"`
	Body    []byte            `json:"body_b64"`
}

// Endpoint is the manifest endpoint the gateway matched. Handler is the
// manifest's `handler` value (`path[#export]`); Params holds the URL-decoded
// `:param` segments.
type Endpoint struct {
	Method  string            `json:"method"`
	Path    string            `json:"path"`
	Handler string            `json:"handler"`
	Params  map[string]string `json:"params"`
}

// User is the calling user (claims sub, email, name, user_type).
type User struct {
	ID    string `json:"id,omitempty"`
	Email string `json:"email,omitempty"`
	Name  string `json:"name,omitempty"`
	Type  string `json:"type,omitempty"`
}

// errEmptyBody is returned by DecodeJSON for a request without a body.
var errEmptyBody = errors.New("request body is empty")

// DecodeJSON unmarshals the request body into v.
func (r *Request) DecodeJSON(v any) error {
	if len(r.HTTP.Body) == 0 {
		return errEmptyBody
	}
	if err := json.Unmarshal(r.HTTP.Body, v); err != nil {
		return errors.New("decoding request body: " + err.Error())
	}
	return nil
}

// DecodeConfig unmarshals the install's configuration into v. A missing
// configuration leaves v untouched.
func (r *Request) DecodeConfig(v any) error {
	if len(r.Config) == 0 || string(r.Config) == "null" {
		return nil
	}
	if err := json.Unmarshal(r.Config, v); err != nil {
		return errors.New("decoding config: " + err.Error())
	}
	return nil
}

// Param returns the path parameter name (`:name` in the pattern), or "".
func (r *Request) Param(name string) string {
	return r.Endpoint.Params[name]
}

// Query returns the query parameter name, or "".
func (r *Request) Query(name string) string {
	return r.HTTP.Query[name]
}

// QueryInt returns the query parameter name as an int, or def when it is
// missing or not an integer.
func (r *Request) QueryInt(name string, def int) int {
	s, ok := r.HTTP.Query[name]
	if !ok {
		return def
	}
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		return def
	}
	return n
}

// Header returns the request header name (case-insensitive), or "".
func (r *Request) Header(name string) string {
	if v, ok := r.HTTP.Headers[name]; ok {
		return v
	}
	return r.HTTP.Headers[strings.ToLower(name)]
}
