package store

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/extedge/extedge/internal/registryapi"
	"github.com/extedge/extedge/internal/tenantid"
)

// KV limits of §7.6 and the defaults of the per-install quotas.
const (
	MaxKVKeyBytes       = 256
	MaxKVNamespaceBytes = 128
	MaxKVValueBytes     = 256 << 10
	MinKVTTLSeconds     = 60
	MaxKVTTLSeconds     = 30 * 24 * 3600
	MaxKVListLimit      = 100

	DefaultKVMaxRecords = 10000
	DefaultKVMaxBytes   = 64 << 20
)

// KVQuota bounds one install's KV data. Zero fields mean the defaults.
type KVQuota struct {
	MaxRecords int64
	MaxBytes   int64
}

func (q KVQuota) withDefaults() KVQuota {
	if q.MaxRecords <= 0 {
		q.MaxRecords = DefaultKVMaxRecords
	}
	if q.MaxBytes <= 0 {
		q.MaxBytes = DefaultKVMaxBytes
	}
	return q
}

func kvInvalid(format string, args ...any) error {
	return Errorf(CodeValidationFailed, format, args...)
}

func checkKVName(what, s string, max int) error {
	if s == "" || len(s) > max {
		return kvInvalid("%s must be 1 to %d bytes", what, max)
	}
	if !utf8.ValidString(s) {
		return kvInvalid("%s must be valid UTF-8", what)
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return kvInvalid("%s must not contain control characters", what)
		}
	}
	return nil
}

func validUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < 36; i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
				return false
			}
		}
	}
	return true
}

// Storage performs one §7.6 KV operation for (req.TenantID, req.InstallID).
//
// Conditional writes: if_revision absent writes unconditionally; 0 means
// "the key must not exist" (create-only); n > 0 means "the current revision
// must be n". Any other state is revision_mismatch. Revisions start at 1 and
// grow by one per write; an expired record counts as absent, so it is
// recreated at revision 1. A put is committed before it is acknowledged.
func (db *DB) Storage(ctx context.Context, req registryapi.StorageRequest, quota KVQuota) (*registryapi.StorageResponse, error) {
	if !tenantid.Valid(req.TenantID) {
		return nil, kvInvalid("tenant_id is not a valid tenant id")
	}
	if !validUUID(req.InstallID) {
		return nil, kvInvalid("install_id is not a valid install id")
	}
	if err := checkKVName("namespace", req.Namespace, MaxKVNamespaceBytes); err != nil {
		return nil, err
	}
	if req.IfRevision != nil && *req.IfRevision < 0 {
		return nil, kvInvalid("if_revision must not be negative")
	}
	switch req.Op {
	case registryapi.StorageGet, registryapi.StoragePut, registryapi.StorageDelete:
		if err := checkKVName("key", req.Key, MaxKVKeyBytes); err != nil {
			return nil, err
		}
	case registryapi.StorageList:
	default:
		return nil, kvInvalid("unknown op %q (want get, put, delete or list)", req.Op)
	}
	switch req.Op {
	case registryapi.StorageGet:
		return db.kvGet(ctx, req)
	case registryapi.StoragePut:
		return db.kvPut(ctx, req, quota.withDefaults())
	case registryapi.StorageDelete:
		return db.kvDelete(ctx, req)
	default:
		return db.kvList(ctx, req)
	}
}

// kvGet is one round trip: the tenant setting and the read go in one batch.
func (db *DB) kvGet(ctx context.Context, req registryapi.StorageRequest) (*registryapi.StorageResponse, error) {
	b := &pgx.Batch{}
	queueTenant(b, req.TenantID)
	b.Queue(`SELECT value, revision, expires_at FROM extension_storage
		WHERE tenant_id = $1 AND install_id = $2 AND namespace = $3 AND key = $4 AND (expires_at IS NULL OR expires_at > now())`,
		req.TenantID, req.InstallID, req.Namespace, req.Key)
	br := db.Pool.SendBatch(ctx, b)
	defer br.Close()
	if _, err := br.Exec(); err != nil {
		return nil, wrap(err)
	}
	it := registryapi.StorageItem{Namespace: req.Namespace, Key: req.Key}
	var val []byte
	err := br.QueryRow().Scan(&val, &it.Revision, &it.ExpiresAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, Errorf(CodeNotFound, "key not found")
	}
	if err != nil {
		return nil, wrap(err)
	}
	if err := br.Close(); err != nil {
		return nil, wrap(err)
	}
	it.Value = val
	return &registryapi.StorageResponse{Item: &it}, nil
}

// errRetryPut restarts a put that lost an insert race it can recover from.
var errRetryPut = errors.New("retry put")

func (db *DB) kvPut(ctx context.Context, req registryapi.StorageRequest, quota KVQuota) (*registryapi.StorageResponse, error) {
	if len(req.Value) == 0 || !json.Valid(req.Value) {
		return nil, kvInvalid("value must be valid JSON")
	}
	if len(req.Value) > MaxKVValueBytes {
		return nil, kvInvalid("value is larger than %d bytes", MaxKVValueBytes)
	}
	if req.TTLSeconds != 0 && (req.TTLSeconds < MinKVTTLSeconds || req.TTLSeconds > MaxKVTTLSeconds) {
		return nil, kvInvalid("ttl_seconds must be between %d and %d", MinKVTTLSeconds, MaxKVTTLSeconds)
	}
	cleaned := false
	for attempt := 0; ; attempt++ {
		resp, err := db.kvPutOnce(ctx, req, quota)
		switch {
		case errors.Is(err, errRetryPut) && attempt < 5:
			continue
		case isCode(err, CodeQuotaExceeded) && !cleaned:
			// Expired records still count until removed; remove this
			// install's and try once more.
			cleaned = true
			if cerr := db.purgeExpired(ctx, req.TenantID, req.InstallID); cerr != nil {
				return nil, cerr
			}
			continue
		}
		return resp, err
	}
}

func isCode(err error, code string) bool {
	var se *Error
	return errors.As(err, &se) && se.Code == code
}

func (db *DB) kvPutOnce(ctx context.Context, req registryapi.StorageRequest, quota KVQuota) (*registryapi.StorageResponse, error) {
	var item *registryapi.StorageItem
	err := db.inTenant(ctx, req.TenantID, func(tx pgx.Tx) error {
		// The install check and the locking read share a round trip.
		var (
			one      int
			rev      int64
			oldBytes int64
			expired  bool
			exists   = true
		)
		rb := &pgx.Batch{}
		rb.Queue(`SELECT 1 FROM tenant_extension_install WHERE tenant_id = $1 AND id = $2`, req.TenantID, req.InstallID)
		rb.Queue(`SELECT revision, value_bytes, coalesce(expires_at <= now(), false) FROM extension_storage
			WHERE tenant_id = $1 AND install_id = $2 AND namespace = $3 AND key = $4 FOR UPDATE`,
			req.TenantID, req.InstallID, req.Namespace, req.Key)
		err := func() error {
			br := tx.SendBatch(ctx, rb)
			defer br.Close()
			err := br.QueryRow().Scan(&one)
			if errors.Is(err, pgx.ErrNoRows) {
				return kvInvalid("install %s does not exist for this tenant", req.InstallID)
			}
			if err != nil {
				return err
			}
			err = br.QueryRow().Scan(&rev, &oldBytes, &expired)
			if errors.Is(err, pgx.ErrNoRows) {
				exists = false
			} else if err != nil {
				return err
			}
			return br.Close()
		}()
		if err != nil {
			return err
		}
		var dRecords, dBytes int64
		if exists && expired {
			// Lazy cleanup: an expired record is absent.
			if _, err := tx.Exec(ctx, `DELETE FROM extension_storage WHERE tenant_id = $1 AND install_id = $2 AND namespace = $3 AND key = $4`,
				req.TenantID, req.InstallID, req.Namespace, req.Key); err != nil {
				return err
			}
			exists, dRecords, dBytes = false, -1, -oldBytes
		}
		var expires *time.Time
		if req.TTLSeconds > 0 {
			t := db.now().Add(time.Duration(req.TTLSeconds) * time.Second).UTC().Truncate(time.Microsecond)
			expires = &t
		}
		size := int64(len(req.Value))
		// The write and the usage update share a round trip; a failed
		// check after it rolls both back.
		wb := &pgx.Batch{}
		if exists {
			if req.IfRevision != nil && *req.IfRevision != rev {
				return &Error{Code: CodeRevisionMismatch, Message: "revision mismatch", Details: map[string]int64{"revision": rev}}
			}
			rev++
			wb.Queue(`UPDATE extension_storage SET value = $5, value_bytes = $6, revision = $7, expires_at = $8, updated_at = now()
				WHERE tenant_id = $1 AND install_id = $2 AND namespace = $3 AND key = $4`,
				req.TenantID, req.InstallID, req.Namespace, req.Key, []byte(req.Value), size, rev, expires)
			dBytes += size - oldBytes
		} else {
			if req.IfRevision != nil && *req.IfRevision != 0 {
				return &Error{Code: CodeRevisionMismatch, Message: "revision mismatch: key does not exist", Details: map[string]int64{"revision": 0}}
			}
			rev = 1
			wb.Queue(`INSERT INTO extension_storage (tenant_id, install_id, namespace, key, value, value_bytes, revision, expires_at)
				VALUES ($1, $2, $3, $4, $5, $6, 1, $7) ON CONFLICT DO NOTHING`,
				req.TenantID, req.InstallID, req.Namespace, req.Key, []byte(req.Value), size, expires)
			dRecords++
			dBytes += size
		}
		usage := queueUsage(wb, req.TenantID, req.InstallID, dRecords, dBytes)
		err = func() error {
			br := tx.SendBatch(ctx, wb)
			defer br.Close()
			tag, err := br.Exec()
			if err != nil {
				return err
			}
			if !exists && tag.RowsAffected() == 0 {
				// A concurrent writer created the key first.
				if req.IfRevision != nil {
					return &Error{Code: CodeRevisionMismatch, Message: "revision mismatch: key was created concurrently"}
				}
				return errRetryPut
			}
			if usage {
				if err := scanUsage(br, dRecords, dBytes, quota); err != nil {
					return err
				}
			}
			return br.Close()
		}()
		if err != nil {
			return err
		}
		item = &registryapi.StorageItem{Namespace: req.Namespace, Key: req.Key, Value: req.Value, Revision: rev, ExpiresAt: expires}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &registryapi.StorageResponse{Item: item}, nil
}

// queueUsage queues the update of the install's usage row, if there is
// anything to add, and reports whether it did; scanUsage reads its result.
func queueUsage(b *pgx.Batch, tenant, install string, dRecords, dBytes int64) bool {
	if dRecords == 0 && dBytes == 0 {
		return false
	}
	b.Queue(`INSERT INTO extension_storage_usage AS u (tenant_id, install_id, records, bytes) VALUES ($1, $2, $3, $4)
		ON CONFLICT (tenant_id, install_id) DO UPDATE SET records = u.records + EXCLUDED.records, bytes = u.bytes + EXCLUDED.bytes
		RETURNING records, bytes`, tenant, install, dRecords, dBytes)
	return true
}

// scanUsage reads the usage row queueUsage updated and fails with
// quota_exceeded when a growing write passed a limit (the transaction then
// rolls back).
func scanUsage(br pgx.BatchResults, dRecords, dBytes int64, quota KVQuota) error {
	var records, bytes int64
	if err := br.QueryRow().Scan(&records, &bytes); err != nil {
		return err
	}
	if (dRecords > 0 && records > quota.MaxRecords) || (dBytes > 0 && bytes > quota.MaxBytes) {
		return &Error{Code: CodeQuotaExceeded, Message: "storage quota exceeded for this install",
			Details: map[string]int64{"max_records": quota.MaxRecords, "max_bytes": quota.MaxBytes}}
	}
	return nil
}

func (db *DB) kvDelete(ctx context.Context, req registryapi.StorageRequest) (*registryapi.StorageResponse, error) {
	err := db.inTenant(ctx, req.TenantID, func(tx pgx.Tx) error {
		var (
			rev     int64
			size    int64
			expired bool
		)
		err := tx.QueryRow(ctx, `SELECT revision, value_bytes, coalesce(expires_at <= now(), false) FROM extension_storage
			WHERE tenant_id = $1 AND install_id = $2 AND namespace = $3 AND key = $4 FOR UPDATE`,
			req.TenantID, req.InstallID, req.Namespace, req.Key).Scan(&rev, &size, &expired)
		if errors.Is(err, pgx.ErrNoRows) {
			return Errorf(CodeNotFound, "key not found")
		}
		if err != nil {
			return err
		}
		if expired {
			return Errorf(CodeNotFound, "key not found") // the janitor removes it
		}
		if req.IfRevision != nil && *req.IfRevision != rev {
			return &Error{Code: CodeRevisionMismatch, Message: "revision mismatch", Details: map[string]int64{"revision": rev}}
		}
		b := &pgx.Batch{}
		b.Queue(`DELETE FROM extension_storage WHERE tenant_id = $1 AND install_id = $2 AND namespace = $3 AND key = $4`,
			req.TenantID, req.InstallID, req.Namespace, req.Key)
		queueUsage(b, req.TenantID, req.InstallID, -1, -size)
		br := tx.SendBatch(ctx, b)
		defer br.Close()
		if _, err := br.Exec(); err != nil {
			return err
		}
		if err := scanUsage(br, -1, -size, KVQuota{}); err != nil {
			return err
		}
		return br.Close()
	})
	if err != nil {
		return nil, err
	}
	return &registryapi.StorageResponse{Deleted: true}, nil
}

func (db *DB) kvList(ctx context.Context, req registryapi.StorageRequest) (*registryapi.StorageResponse, error) {
	limit := req.Limit
	if limit == 0 {
		limit = MaxKVListLimit
	}
	if limit < 0 || limit > MaxKVListLimit {
		return nil, kvInvalid("limit must be between 1 and %d", MaxKVListLimit)
	}
	if len(req.Prefix) > MaxKVKeyBytes {
		return nil, kvInvalid("prefix is longer than %d bytes", MaxKVKeyBytes)
	}
	after := ""
	if req.Cursor != "" {
		b, err := base64.RawURLEncoding.DecodeString(req.Cursor)
		if err != nil || len(b) == 0 || len(b) > MaxKVKeyBytes {
			return nil, kvInvalid("cursor is not valid")
		}
		after = string(b)
	}
	// One round trip: the tenant setting and the read go in one batch.
	b := &pgx.Batch{}
	queueTenant(b, req.TenantID)
	b.Queue(`SELECT key, value, revision, expires_at FROM extension_storage
		WHERE tenant_id = $1 AND install_id = $2 AND namespace = $3 AND starts_with(key, $4) AND key COLLATE "C" > $5
		AND (expires_at IS NULL OR expires_at > now())
		ORDER BY key COLLATE "C" LIMIT $6`,
		req.TenantID, req.InstallID, req.Namespace, req.Prefix, after, limit+1)
	resp := &registryapi.StorageResponse{Items: []registryapi.StorageItem{}}
	err := func() error {
		br := db.Pool.SendBatch(ctx, b)
		defer br.Close()
		if _, err := br.Exec(); err != nil {
			return err
		}
		rows, err := br.Query()
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			it := registryapi.StorageItem{Namespace: req.Namespace}
			var val []byte
			if err := rows.Scan(&it.Key, &val, &it.Revision, &it.ExpiresAt); err != nil {
				return err
			}
			it.Value = val
			resp.Items = append(resp.Items, it)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		rows.Close()
		return br.Close()
	}()
	if err != nil {
		return nil, wrap(err)
	}
	if len(resp.Items) > limit {
		resp.Items = resp.Items[:limit]
		resp.NextCursor = base64.RawURLEncoding.EncodeToString([]byte(resp.Items[limit-1].Key))
	}
	return resp, nil
}

// purgeExpired removes one install's expired records.
func (db *DB) purgeExpired(ctx context.Context, tenant, install string) error {
	return db.inTenant(ctx, tenant, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, purgeSQL+` AND tenant_id = $1 AND install_id = $2`+purgeTail, tenant, install)
		return err
	})
}

const purgeSQL = `WITH d AS (DELETE FROM extension_storage WHERE expires_at <= now()`
const purgeTail = ` RETURNING tenant_id, install_id, value_bytes),
	agg AS (SELECT tenant_id, install_id, count(*) AS n, sum(value_bytes) AS b FROM d GROUP BY tenant_id, install_id)
	UPDATE extension_storage_usage u SET records = u.records - agg.n, bytes = u.bytes - agg.b
	FROM agg WHERE u.tenant_id = agg.tenant_id AND u.install_id = agg.install_id`

// PurgeExpiredKV removes every expired KV record (a platform-scope janitor
// job: it runs in platformScope).
func (db *DB) PurgeExpiredKV(ctx context.Context) (int64, error) {
	var tag pgconn.CommandTag
	err := db.inTenant(ctx, platformScope, func(tx pgx.Tx) error {
		var err error
		tag, err = tx.Exec(ctx, purgeSQL+purgeTail)
		return err
	})
	return tag.RowsAffected(), err
}
