package store

import (
	"context"
	"encoding/json"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/extedge/extedge/internal/registryapi"
	"github.com/extedge/extedge/internal/tenantid"
)

// MaxExecutionBatch bounds the records of one POST /v1/internal/executions.
const MaxExecutionBatch = 5000

// usageKey is one row of extension_quota_usage.
type usageKey struct {
	extension string
	window    time.Time
}

type usageSum struct {
	invocations, errors   int64
	cpuMS, memMBMS, durMS float64
	egress                int64
}

// InsertExecutions stores execution records and adds them up per minute
// (date_trunc('minute', started_at)) into extension_quota_usage, all in one
// transaction: a batch is either fully counted or not at all. Records are
// grouped by tenant and each group runs under its own tenant setting. A
// record already stored (same tenant, request_id and started_at: a batch the
// runner resent) is skipped and not counted again.
func (db *DB) InsertExecutions(ctx context.Context, recs []registryapi.ExecutionRecord) error {
	if len(recs) > MaxExecutionBatch {
		return Errorf(CodeInvalidRequest, "batch has %d records, the maximum is %d", len(recs), MaxExecutionBatch)
	}
	byTenant := map[string][]registryapi.ExecutionRecord{}
	for i, r := range recs {
		switch {
		case !tenantid.Valid(r.TenantID):
			return Errorf(CodeInvalidRequest, "records[%d]: invalid tenant_id", i)
		case r.RequestID == "" || len(r.RequestID) > 256:
			return Errorf(CodeInvalidRequest, "records[%d]: request_id must be 1 to 256 bytes", i)
		case r.ExtensionID == "" || r.InstallID == "":
			return Errorf(CodeInvalidRequest, "records[%d]: extension_id and install_id are required", i)
		case r.StartedAt.IsZero():
			return Errorf(CodeInvalidRequest, "records[%d]: started_at is required", i)
		case r.Outcome == "":
			return Errorf(CodeInvalidRequest, "records[%d]: outcome is required", i)
		}
		byTenant[r.TenantID] = append(byTenant[r.TenantID], r)
	}
	tenants := make([]string, 0, len(byTenant))
	for t := range byTenant {
		tenants = append(tenants, t)
	}
	sort.Strings(tenants) // stable lock order across concurrent batches
	return db.inTx(ctx, func(tx pgx.Tx) error {
		for _, t := range tenants {
			if err := setTenant(ctx, tx, t); err != nil {
				return err
			}
			if err := insertTenantExecutions(ctx, tx, t, byTenant[t]); err != nil {
				return err
			}
		}
		return nil
	})
}

func insertTenantExecutions(ctx context.Context, tx pgx.Tx, tenant string, recs []registryapi.ExecutionRecord) error {
	b := &pgx.Batch{}
	for _, r := range recs {
		finished := r.FinishedAt
		if finished.IsZero() {
			finished = r.StartedAt.Add(time.Duration(r.DurationMS * float64(time.Millisecond)))
		}
		metrics, _ := json.Marshal(map[string]any{
			"duration_ms":       r.DurationMS,
			"cpu_ms":            r.CPUMS,
			"fuel":              r.Fuel,
			"peak_memory_bytes": r.PeakMemoryBytes,
			"egress_bytes":      r.EgressBytes,
		})
		var errCode *string
		if r.Outcome != "ok" {
			errCode = &r.Outcome
		}
		b.Queue(`INSERT INTO extension_execution_log (tenant_id, extension_id, install_id, version_id, content_hash, endpoint, request_id, event_id,
			started_at, finished_at, status, http_status, error_code, metrics)
			VALUES ($1, $2, $3, NULLIF($4, ''), NULLIF($5, ''), NULLIF($6, ''), $7, NULLIF($8, ''), $9, $10, $11, NULLIF($12, 0), $13, $14)
			ON CONFLICT (tenant_id, request_id, started_at) DO NOTHING`,
			tenant, r.ExtensionID, r.InstallID, r.VersionID, r.ContentHash, r.Endpoint, r.RequestID, r.EventID,
			r.StartedAt, finished, r.Outcome, r.HTTPStatus, errCode, metrics)
	}
	// Only records stored now are counted, so a resent batch is not
	// counted twice.
	br := tx.SendBatch(ctx, b)
	sums := map[usageKey]*usageSum{}
	for _, r := range recs {
		tag, err := br.Exec()
		if err != nil {
			br.Close()
			return err
		}
		if tag.RowsAffected() == 0 {
			continue
		}
		k := usageKey{extension: r.ExtensionID, window: r.StartedAt.UTC().Truncate(time.Minute)}
		s := sums[k]
		if s == nil {
			s = &usageSum{}
			sums[k] = s
		}
		s.invocations++
		if r.Outcome != "ok" {
			s.errors++
		}
		s.cpuMS += r.CPUMS
		s.durMS += r.DurationMS
		s.memMBMS += float64(r.PeakMemoryBytes) / (1 << 20) * r.DurationMS
		s.egress += r.EgressBytes
	}
	if err := br.Close(); err != nil {
		return err
	}
	keys := make([]usageKey, 0, len(sums))
	for k := range sums {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].extension != keys[j].extension {
			return keys[i].extension < keys[j].extension
		}
		return keys[i].window.Before(keys[j].window)
	})
	ub := &pgx.Batch{}
	for _, k := range keys {
		s := sums[k]
		ub.Queue(`INSERT INTO extension_quota_usage AS u (tenant_id, extension_id, window_start, cpu_ms, mem_mb_ms, invocations, errors, duration_ms, egress_bytes)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
			ON CONFLICT (tenant_id, extension_id, window_start) DO UPDATE SET
				cpu_ms = u.cpu_ms + EXCLUDED.cpu_ms, mem_mb_ms = u.mem_mb_ms + EXCLUDED.mem_mb_ms,
				invocations = u.invocations + EXCLUDED.invocations, errors = u.errors + EXCLUDED.errors,
				duration_ms = u.duration_ms + EXCLUDED.duration_ms, egress_bytes = u.egress_bytes + EXCLUDED.egress_bytes`,
			tenant, k.extension, k.window, s.cpuMS, s.memMBMS, s.invocations, s.errors, s.durMS, s.egress)
	}
	if ub.Len() == 0 {
		return nil
	}
	return tx.SendBatch(ctx, ub).Close()
}

// PurgeExecutionLog deletes execution records that started before cutoff
// (platform-scope retention job). Per-minute usage rows are kept.
func (db *DB) PurgeExecutionLog(ctx context.Context, cutoff time.Time) (int64, error) {
	var n int64
	err := db.inTenant(ctx, platformScope, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM extension_execution_log WHERE started_at < $1`, cutoff)
		n = tag.RowsAffected()
		return err
	})
	return n, err
}

// Usage is one minute of extension_quota_usage.
type Usage struct {
	ExtensionID string
	WindowStart time.Time
	Invocations int64
	Errors      int64
	CPUMS       float64
	DurationMS  float64
	EgressBytes int64
}

// UsageFor returns a tenant's per-minute usage rows, oldest first.
func (db *DB) UsageFor(ctx context.Context, tenant string) ([]Usage, error) {
	var out []Usage
	err := db.inTenant(ctx, tenant, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT extension_id, window_start, invocations, errors, cpu_ms, duration_ms, egress_bytes
			FROM extension_quota_usage WHERE tenant_id = $1 ORDER BY extension_id, window_start`, tenant)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (Usage, error) {
			var u Usage
			err := r.Scan(&u.ExtensionID, &u.WindowStart, &u.Invocations, &u.Errors, &u.CPUMS, &u.DurationMS, &u.EgressBytes)
			return u, err
		})
		return err
	})
	return out, err
}
