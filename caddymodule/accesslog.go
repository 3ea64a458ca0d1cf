package caddymodule

import (
	"net/http"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
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
