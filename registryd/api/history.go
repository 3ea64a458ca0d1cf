package api

import (
	"net/http"
	"strconv"
	"time"

	"github.com/extedge/extedge/registryd/store"
)

// defaultUsageRange is the usage range without ?from: the last hour.
const defaultUsageRange = time.Hour

// listExecutions is GET /v1/tenants/{tenant}/installs/{name}/executions
// (§21): ?since=&until= (RFC 3339), ?outcome=ok|error|<code>,
// ?endpoint=, ?status=404|5xx, ?request_id=, ?limit= 1…500 (default 100)
// and ?cursor= (next_cursor of the previous page).
func (s *Server) listExecutions(w http.ResponseWriter, r *http.Request) {
	tenant, name, ok := s.installParams(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	f := store.ExecutionFilter{Outcome: q.Get("outcome"), Endpoint: q.Get("endpoint"), Status: q.Get("status"),
		RequestID: q.Get("request_id"), Cursor: q.Get("cursor")}
	var err error
	if f.Since, ok = timeParam(w, q.Get("since"), "since"); !ok {
		return
	}
	if f.Until, ok = timeParam(w, q.Get("until"), "until"); !ok {
		return
	}
	if v := q.Get("limit"); v != "" {
		if f.Limit, err = strconv.Atoi(v); err != nil || f.Limit == 0 {
			writeCode(w, store.CodeInvalidRequest, "limit must be a number from 1 to "+strconv.Itoa(store.MaxExecutionPage), map[string]string{"field": "limit"})
			return
		}
	}
	out, err := s.cfg.DB.ListExecutions(r.Context(), tenant, name, f)
	s.reply(w, r, out, err)
}

// installUsage is GET /v1/tenants/{tenant}/installs/{name}/usage (§21):
// per-minute invocations, errors, CPU ms, duration and egress bytes in
// [?from, ?to) (RFC 3339; default the last hour up to now).
func (s *Server) installUsage(w http.ResponseWriter, r *http.Request) {
	tenant, name, ok := s.installParams(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	from, ok := timeParam(w, q.Get("from"), "from")
	if !ok {
		return
	}
	to, ok := timeParam(w, q.Get("to"), "to")
	if !ok {
		return
	}
	if to.IsZero() {
		to = s.now()
	}
	if from.IsZero() {
		from = to.Add(-defaultUsageRange)
	}
	out, err := s.cfg.DB.InstallUsage(r.Context(), tenant, name, from, to)
	s.reply(w, r, out, err)
}

// timeParam parses an optional RFC 3339 query parameter.
func timeParam(w http.ResponseWriter, v, field string) (time.Time, bool) {
	if v == "" {
		return time.Time{}, true
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		writeCode(w, store.CodeInvalidRequest, field+" must be an RFC 3339 time", map[string]string{"field": field})
		return time.Time{}, false
	}
	return t, true
}
