package store

// Execution history (SPEC §21): an install's records from
// extension_execution_log in keyset pages, and its minutes of
// extension_quota_usage. Records are keyed by the extension's name
// (extension_id), so the history of a name survives a reinstall; each
// record names the install it ran in.
//
// A cursor is "c1." + base64url(started_at µs | id | check), 24 bytes. The
// check is a SHA-256 over the position, the tenant, the extension and the
// filters, so a cursor altered in transit, or replayed with other filters,
// is refused as invalid_request. It is not a secret: a cursor made up by
// hand can only pick a position in the caller's own, RLS-scoped history.

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/extedge/extedge/internal/registryapi"
)

// History page sizes.
const (
	DefaultExecutionPage = 100
	MaxExecutionPage     = 500
)

// MaxUsageRange bounds one usage query (a month of minutes).
const MaxUsageRange = 31 * 24 * time.Hour

// Filter value bounds.
const (
	maxOutcomeLen  = 64
	maxEndpointLen = 512
	maxRequestID   = 256
)

// ExecutionFilter selects an install's execution records; zero fields do
// not filter.
type ExecutionFilter struct {
	Since, Until time.Time
	Outcome      string
	Endpoint     string
	// Status is "404" or a class "4xx".
	Status    string
	RequestID string
	// Limit 0 is DefaultExecutionPage.
	Limit  int
	Cursor string
}

// statusRange turns "404" or "4xx" into an inclusive range.
func statusRange(s string) (lo, hi int, ok bool) {
	if len(s) != 3 {
		return 0, 0, false
	}
	if s[1:] == "xx" && s[0] >= '1' && s[0] <= '5' {
		lo = int(s[0]-'0') * 100
		return lo, lo + 99, true
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 100 || n > 599 {
		return 0, 0, false
	}
	return n, n, true
}

// validOutcome: outcome codes are lowercase snake case (§6.2).
func validOutcome(s string) bool {
	if s == "" || len(s) > maxOutcomeLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

func (f ExecutionFilter) check() error {
	switch {
	case f.Limit < 0 || f.Limit > MaxExecutionPage:
		return fieldError("limit", fmt.Sprintf("limit must be 1 to %d", MaxExecutionPage))
	case !f.Since.IsZero() && !f.Until.IsZero() && !f.Since.Before(f.Until):
		return fieldError("until", "until must be after since")
	case f.Outcome != "" && !validOutcome(f.Outcome):
		return fieldError("outcome", `outcome must be "ok", "error" or an error code`)
	case len(f.Endpoint) > maxEndpointLen:
		return fieldError("endpoint", fmt.Sprintf("endpoint is longer than %d bytes", maxEndpointLen))
	case len(f.RequestID) > maxRequestID:
		return fieldError("request_id", fmt.Sprintf("request_id is longer than %d bytes", maxRequestID))
	}
	if f.Status != "" {
		if _, _, ok := statusRange(f.Status); !ok {
			return fieldError("status", `status must be an HTTP status (100 to 599) or a class such as "5xx"`)
		}
	}
	return nil
}

// position is where a page ends: the last record's started_at and id.
type position struct {
	startedAt time.Time
	id        int64
}

const cursorPrefix = "c1."

// cursorCheck binds a position to the query it came from.
func cursorCheck(tenant, name string, f ExecutionFilter, p position) []byte {
	h := sha256.New()
	for _, s := range []string{"extedge execution cursor v1", tenant, name,
		timeKey(f.Since), timeKey(f.Until), f.Outcome, f.Endpoint, f.Status, f.RequestID,
		strconv.FormatInt(p.startedAt.UnixMicro(), 10), strconv.FormatInt(p.id, 10)} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return h.Sum(nil)[:8]
}

func timeKey(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return strconv.FormatInt(t.UnixMicro(), 10)
}

func encodeCursor(tenant, name string, f ExecutionFilter, p position) string {
	b := make([]byte, 0, 24)
	b = binary.BigEndian.AppendUint64(b, uint64(p.startedAt.UnixMicro()))
	b = binary.BigEndian.AppendUint64(b, uint64(p.id))
	b = append(b, cursorCheck(tenant, name, f, p)...)
	return cursorPrefix + base64.RawURLEncoding.EncodeToString(b)
}

func decodeCursor(tenant, name string, f ExecutionFilter) (position, error) {
	bad := fieldError("cursor", "cursor is not valid for this query (take next_cursor of the previous page, with the same filters)")
	raw, ok := strings.CutPrefix(f.Cursor, cursorPrefix)
	if !ok {
		return position{}, bad
	}
	b, err := base64.RawURLEncoding.DecodeString(raw)
	if err != nil || len(b) != 24 {
		return position{}, bad
	}
	p := position{
		startedAt: time.UnixMicro(int64(binary.BigEndian.Uint64(b[:8]))).UTC(),
		id:        int64(binary.BigEndian.Uint64(b[8:16])),
	}
	want := cursorCheck(tenant, name, f, p)
	if string(want) != string(b[16:]) {
		return position{}, bad
	}
	return p, nil
}

// executionMetrics is the metrics column InsertExecutions writes.
type executionMetrics struct {
	DurationMS      float64 `json:"duration_ms"`
	CPUMS           float64 `json:"cpu_ms"`
	Fuel            uint64  `json:"fuel"`
	PeakMemoryBytes int64   `json:"peak_memory_bytes"`
	EgressBytes     int64   `json:"egress_bytes"`
}

// ListExecutions returns one page of the execution history of tenant's
// install of name, newest first (started_at, then id, descending, so the
// order is total and pages never overlap or skip).
func (db *DB) ListExecutions(ctx context.Context, tenant, name string, f ExecutionFilter) (*registryapi.ExecutionPage, error) {
	if err := f.check(); err != nil {
		return nil, err
	}
	limit := f.Limit
	if limit == 0 {
		limit = DefaultExecutionPage
	}
	var after *position
	if f.Cursor != "" {
		p, err := decodeCursor(tenant, name, f)
		if err != nil {
			return nil, err
		}
		after = &p
	}
	q := strings.Builder{}
	q.WriteString(`SELECT id, request_id, install_id, coalesce(version_id, ''), coalesce(content_hash, ''), coalesce(endpoint, ''),
		coalesce(event_id, ''), started_at, finished_at, status, coalesce(http_status, 0), metrics
		FROM extension_execution_log WHERE tenant_id = $1 AND extension_id = $2`)
	args := []any{tenant, name}
	cond := func(sql string, vals ...any) {
		for _, v := range vals {
			args = append(args, v)
			sql = strings.Replace(sql, "?", "$"+strconv.Itoa(len(args)), 1)
		}
		q.WriteString(" AND " + sql)
	}
	if !f.Since.IsZero() {
		cond("started_at >= ?", f.Since)
	}
	if !f.Until.IsZero() {
		cond("started_at < ?", f.Until)
	}
	switch f.Outcome {
	case "":
	case registryapi.OutcomeError:
		cond("status <> 'ok'")
	default:
		cond("status = ?", f.Outcome)
	}
	if f.Endpoint != "" {
		cond("endpoint = ?", f.Endpoint)
	}
	if f.Status != "" {
		lo, hi, _ := statusRange(f.Status)
		cond("http_status BETWEEN ? AND ?", lo, hi)
	}
	if f.RequestID != "" {
		cond("request_id = ?", f.RequestID)
	}
	if after != nil {
		cond("(started_at, id) < (?, ?)", after.startedAt, after.id)
	}
	args = append(args, limit+1)
	q.WriteString(" ORDER BY started_at DESC, id DESC LIMIT $" + strconv.Itoa(len(args)))

	page := &registryapi.ExecutionPage{Executions: []registryapi.Execution{}}
	var last position
	err := db.inTenant(ctx, tenant, func(tx pgx.Tx) error {
		if _, err := installID(ctx, tx, tenant, name); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, q.String(), args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var (
				x       registryapi.Execution
				id      int64
				metrics []byte
			)
			if err := rows.Scan(&id, &x.RequestID, &x.InstallID, &x.VersionID, &x.ContentHash, &x.Endpoint, &x.EventID,
				&x.StartedAt, &x.FinishedAt, &x.Outcome, &x.HTTPStatus, &metrics); err != nil {
				return err
			}
			if len(page.Executions) == limit {
				page.NextCursor = encodeCursor(tenant, name, f, last)
				break
			}
			var m executionMetrics
			_ = json.Unmarshal(metrics, &m)
			x.ID = strconv.FormatInt(id, 10)
			x.StartedAt, x.FinishedAt = x.StartedAt.UTC(), x.FinishedAt.UTC()
			x.DurationMS, x.CPUMS, x.Fuel, x.PeakMemoryBytes, x.EgressBytes = m.DurationMS, m.CPUMS, m.Fuel, m.PeakMemoryBytes, m.EgressBytes
			page.Executions = append(page.Executions, x)
			last = position{startedAt: x.StartedAt, id: id}
		}
		return rows.Err()
	})
	if err != nil {
		return nil, err
	}
	return page, nil
}

// InstallUsage returns the minutes in [from, to) in which tenant's install
// of name was called, oldest first, with their totals. from is rounded
// down to its minute, so the minute it falls in is included.
func (db *DB) InstallUsage(ctx context.Context, tenant, name string, from, to time.Time) (*registryapi.UsageReport, error) {
	from = from.UTC().Truncate(time.Minute)
	to = to.UTC()
	switch {
	case !from.Before(to):
		return nil, fieldError("to", "to must be after from")
	case to.Sub(from) > MaxUsageRange:
		return nil, fieldError("from", fmt.Sprintf("the range is at most %d days", int(MaxUsageRange.Hours()/24)))
	}
	out := &registryapi.UsageReport{TenantID: tenant, Extension: name, From: from, To: to, Minutes: []registryapi.UsageMinute{}}
	err := db.inTenant(ctx, tenant, func(tx pgx.Tx) error {
		if _, err := installID(ctx, tx, tenant, name); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT window_start, invocations, errors, cpu_ms, duration_ms, egress_bytes
			FROM extension_quota_usage WHERE tenant_id = $1 AND extension_id = $2 AND window_start >= $3 AND window_start < $4
			ORDER BY window_start`, tenant, name, from, to)
		if err != nil {
			return err
		}
		out.Minutes, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (registryapi.UsageMinute, error) {
			var u registryapi.UsageMinute
			err := r.Scan(&u.WindowStart, &u.Invocations, &u.Errors, &u.CPUMS, &u.DurationMS, &u.EgressBytes)
			u.WindowStart = u.WindowStart.UTC()
			return u, err
		})
		return err
	})
	if err != nil {
		return nil, err
	}
	if out.Minutes == nil {
		out.Minutes = []registryapi.UsageMinute{}
	}
	for _, m := range out.Minutes {
		out.Total.Invocations += m.Invocations
		out.Total.Errors += m.Errors
		out.Total.CPUMS += m.CPUMS
		out.Total.DurationMS += m.DurationMS
		out.Total.EgressBytes += m.EgressBytes
	}
	return out, nil
}
