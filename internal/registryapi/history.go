package registryapi

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Execution history (SPEC §21): an install's execution records, newest
// first in cursor pages, and its per-minute usage.

// OutcomeError, as the outcome filter, matches every record whose outcome
// is not "ok".
const OutcomeError = "error"

// ExecutionQuery filters GET /v1/tenants/{t}/installs/{name}/executions.
// Zero fields do not filter.
type ExecutionQuery struct {
	// Since and Until bound started_at: since ≤ started_at < until.
	Since, Until time.Time
	// Outcome is "ok", one error code, or OutcomeError for every failure.
	Outcome string
	// Endpoint is the manifest endpoint, "GET /items/:id".
	Endpoint string
	// Status is the guest's HTTP status, "404", or a class, "5xx".
	Status string
	// RequestID is the gateway's request id.
	RequestID string
	// Limit is the page size; 0 takes the server's default.
	Limit int
	// Cursor is the NextCursor of the previous page, with the same filters.
	Cursor string
}

// Values is the query string of q.
func (q ExecutionQuery) Values() url.Values {
	v := url.Values{}
	if !q.Since.IsZero() {
		v.Set("since", q.Since.UTC().Format(time.RFC3339Nano))
	}
	if !q.Until.IsZero() {
		v.Set("until", q.Until.UTC().Format(time.RFC3339Nano))
	}
	for k, s := range map[string]string{"outcome": q.Outcome, "endpoint": q.Endpoint, "status": q.Status, "request_id": q.RequestID, "cursor": q.Cursor} {
		if s != "" {
			v.Set(k, s)
		}
	}
	if q.Limit != 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	return v
}

// Execution is one stored execution record as the history API shows it.
type Execution struct {
	ID              string    `json:"id"`
	RequestID       string    `json:"request_id"`
	InstallID       string    `json:"install_id"`
	VersionID       string    `json:"version_id,omitempty"`
	ContentHash     string    `json:"content_hash,omitempty"`
	Endpoint        string    `json:"endpoint,omitempty"`
	EventID         string    `json:"event_id,omitempty"`
	StartedAt       time.Time `json:"started_at"`
	FinishedAt      time.Time `json:"finished_at"`
	Outcome         string    `json:"outcome"`
	HTTPStatus      int       `json:"http_status,omitempty"`
	DurationMS      float64   `json:"duration_ms"`
	CPUMS           float64   `json:"cpu_ms"`
	Fuel            uint64    `json:"fuel,omitempty"`
	PeakMemoryBytes int64     `json:"peak_memory_bytes,omitempty"`
	EgressBytes     int64     `json:"egress_bytes"`
}

// ExecutionPage is the reply of GET …/executions: records newest first
// (started_at, then id, descending) and, when more match, the cursor of
// the next page.
type ExecutionPage struct {
	Executions []Execution `json:"executions"`
	NextCursor string      `json:"next_cursor,omitempty"`
}

// UsageMinute is one minute of an install's usage.
type UsageMinute struct {
	WindowStart time.Time `json:"window_start"`
	Invocations int64     `json:"invocations"`
	Errors      int64     `json:"errors"`
	CPUMS       float64   `json:"cpu_ms"`
	DurationMS  float64   `json:"duration_ms"`
	EgressBytes int64     `json:"egress_bytes"`
}

// UsageTotals adds up the minutes of a UsageReport.
type UsageTotals struct {
	Invocations int64   `json:"invocations"`
	Errors      int64   `json:"errors"`
	CPUMS       float64 `json:"cpu_ms"`
	DurationMS  float64 `json:"duration_ms"`
	EgressBytes int64   `json:"egress_bytes"`
}

// UsageReport is the reply of GET …/usage: the minutes in [from, to) that
// saw calls, oldest first, and their totals.
type UsageReport struct {
	TenantID  string        `json:"tenant_id"`
	Extension string        `json:"extension"`
	From      time.Time     `json:"from"`
	To        time.Time     `json:"to"`
	Minutes   []UsageMinute `json:"minutes"`
	Total     UsageTotals   `json:"total"`
}

// ListExecutions fetches one page of an install's execution history.
func (c *Client) ListExecutions(ctx context.Context, tenant, name string, q ExecutionQuery) (*ExecutionPage, error) {
	path := installPath(tenant, name) + "/executions"
	if v := q.Values(); len(v) > 0 {
		path += "?" + v.Encode()
	}
	var out ExecutionPage
	return &out, c.Do(ctx, http.MethodGet, path, nil, &out)
}

// Usage fetches an install's per-minute usage in [from, to); zero times
// take the server's defaults (the last hour).
func (c *Client) Usage(ctx context.Context, tenant, name string, from, to time.Time) (*UsageReport, error) {
	v := url.Values{}
	if !from.IsZero() {
		v.Set("from", from.UTC().Format(time.RFC3339Nano))
	}
	if !to.IsZero() {
		v.Set("to", to.UTC().Format(time.RFC3339Nano))
	}
	path := installPath(tenant, name) + "/usage"
	if len(v) > 0 {
		path += "?" + v.Encode()
	}
	var out UsageReport
	return &out, c.Do(ctx, http.MethodGet, path, nil, &out)
}
