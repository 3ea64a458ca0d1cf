package caddymodule

import (
	"net/http"
	"strings"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/extedge/extedge/internal/manifest"
)

// accessFields are what Caddy's access log carries for each /api/ext call
// (SPEC §21), added as Caddy's extra log fields: the request id, tenant,
// extension and outcome code (an errorTable code, a runner code, or "ok").
// Never tokens. Empty fields are left out.
type accessFields struct {
	requestID, tenant, extension, outcome string
}

// zapFields is the one list of access-log field names.
func (a accessFields) zapFields() []zap.Field {
	all := []zap.Field{
		zap.String("request_id", a.requestID),
		zap.String("tenant", a.tenant),
		zap.String("extension", a.extension),
		zap.String("outcome", a.outcome),
	}
	out := all[:0]
	for _, f := range all {
		if f.String != "" {
			out = append(out, f)
		}
	}
	return out
}

// record sets the fields on r's access log entry; outside Caddy's server
// (unit tests) there is none and record does nothing.
func (a accessFields) record(r *http.Request) {
	extra, ok := r.Context().Value(caddyhttp.ExtraLogFieldsCtxKey).(*caddyhttp.ExtraLogFields)
	if !ok {
		return
	}
	for _, f := range a.zapFields() {
		extra.Set(f)
	}
}

// apiExtension is the {extensionId} of an /api/ext path when it is a valid
// name (§8.2 step 1), else "" (an invalid one is client input, not logged).
func apiExtension(r *http.Request) string {
	p := r.URL.EscapedPath()
	if !strings.HasPrefix(p, prefixAPI) {
		return ""
	}
	ext, _, _ := strings.Cut(p[len(prefixAPI):], "/")
	if !manifest.ValidName(ext) {
		return ""
	}
	return ext
}
