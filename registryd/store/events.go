package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/extedge/extedge/internal/manifest"
	"github.com/extedge/extedge/internal/registryapi"
	"github.com/extedge/extedge/internal/tenantid"
)

// Event validation failures are invalid_request with details.field naming
// the field, or payload_too_large for an oversized payload.
const CodePayloadTooLarge = "payload_too_large"

// fieldError is an invalid_request naming the offending field.
func fieldError(field, message string) *Error {
	return &Error{Code: CodeInvalidRequest, Message: message, Details: map[string]string{"field": field}}
}

// checkEvent applies the §18 rules to a POST /v1/events body. Each rule
// has one home: tenant ids in tenantid, topics in manifest (the same rule
// a subscription passed), ids and the payload bound in registryapi.
func checkEvent(ev *registryapi.Event) error {
	switch {
	case !registryapi.ValidEventID(ev.ID):
		return fieldError("id", "id must be 1 to 256 bytes of printable ASCII without spaces")
	case !tenantid.Valid(ev.TenantID):
		return fieldError("tenant_id", "invalid tenant_id (1 to 64 bytes of [A-Za-z0-9._-])")
	case !manifest.ValidTopic(ev.Topic):
		return fieldError("topic", "topic must match "+manifest.TopicRule+" (at most 256 bytes)")
	case ev.OccurredAt.IsZero():
		return fieldError("occurred_at", "occurred_at is required (RFC 3339)")
	}
	p := bytes.TrimSpace(ev.Payload)
	if len(p) == 0 {
		p = []byte("null")
	}
	if len(p) > registryapi.MaxEventPayload {
		return &Error{Code: CodePayloadTooLarge, Message: "payload is larger than 256 KiB",
			Details: map[string]any{"field": "payload", "limit": registryapi.MaxEventPayload}}
	}
	if !json.Valid(p) || !utf8.Valid(p) {
		return fieldError("payload", "payload must be a JSON value in UTF-8")
	}
	ev.Payload = p
	return nil
}

// PublishEvent stores an event and, in the same transaction, one pending
// delivery per enabled install of its tenant whose installed (non-revoked)
// version subscribes to its topic; disabled installs and other tenants get
// none. An id already stored for the tenant changes nothing: the first
// answer is returned with created false, whatever the repeat carries.
func (db *DB) PublishEvent(ctx context.Context, ev registryapi.Event, now time.Time, maxAttempts int) (res registryapi.PublishEventResult, created bool, err error) {
	if err := checkEvent(&ev); err != nil {
		return res, false, err
	}
	if maxAttempts < 1 {
		maxAttempts = DefaultDeliveryPolicy().MaxAttempts
	}
	res.ID = ev.ID
	err = db.inTenant(ctx, ev.TenantID, func(tx pgx.Tx) error {
		// DO NOTHING waits for a concurrent insert of the same id to
		// commit, so the loser reads the winner's row below.
		tag, err := tx.Exec(ctx, `INSERT INTO extension_event (tenant_id, id, topic, occurred_at, payload, deliveries, created_at)
			VALUES ($1, $2, $3, $4, $5, 0, $6) ON CONFLICT (tenant_id, id) DO NOTHING`,
			ev.TenantID, ev.ID, ev.Topic, ev.OccurredAt, []byte(ev.Payload), now)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return tx.QueryRow(ctx, `SELECT deliveries FROM extension_event WHERE tenant_id = $1 AND id = $2`,
				ev.TenantID, ev.ID).Scan(&res.Deliveries)
		}
		created = true
		tag, err = tx.Exec(ctx, `INSERT INTO extension_event_delivery (tenant_id, event_id, install_id, handler, max_attempts, next_attempt_at, created_at, updated_at)
			SELECT DISTINCT ON (i.id) $1, $2, i.id, s.handler, $4, $5, $5, $5
			FROM extension_event_subscription s
			JOIN tenant_extension_install i ON i.id = s.tenant_install_id
			JOIN extension_version v ON v.id = i.version_id
			WHERE s.tenant_id = $1 AND i.tenant_id = $1 AND s.event = $3
			  AND i.status = 'enabled' AND v.revoked_at IS NULL
			ORDER BY i.id, s.created_at`, ev.TenantID, ev.ID, ev.Topic, maxAttempts, now)
		if err != nil {
			return err
		}
		res.Deliveries = int(tag.RowsAffected())
		_, err = tx.Exec(ctx, `UPDATE extension_event SET deliveries = $3 WHERE tenant_id = $1 AND id = $2`,
			ev.TenantID, ev.ID, res.Deliveries)
		return err
	})
	if err != nil {
		return registryapi.PublishEventResult{}, false, err
	}
	return res, created, nil
}

// DeliveryPolicy is how deliveries are retried.
type DeliveryPolicy struct {
	// MaxAttempts is the number of attempts before a delivery is dead.
	// Default: 8.
	MaxAttempts int
	// BaseBackoff is the delay after the first failed attempt; each
	// further failure doubles it. Default: 30s, so the seven delays of
	// the default eight attempts add up to about an hour (§18).
	BaseBackoff time.Duration
	// MaxBackoff caps one delay. Default: 1h.
	MaxBackoff time.Duration
	// Jitter spreads each delay uniformly by ±Jitter of itself, so
	// deliveries failing together do not come back together. Default:
	// 0.2; a negative value turns jitter off.
	Jitter float64
}

// DefaultDeliveryPolicy is §18's "8 attempts over about an hour".
func DefaultDeliveryPolicy() DeliveryPolicy {
	return DeliveryPolicy{MaxAttempts: 8, BaseBackoff: 30 * time.Second, MaxBackoff: time.Hour, Jitter: 0.2}
}

// WithDefaults fills zero fields from DefaultDeliveryPolicy.
func (p DeliveryPolicy) WithDefaults() DeliveryPolicy {
	d := DefaultDeliveryPolicy()
	if p.MaxAttempts <= 0 {
		p.MaxAttempts = d.MaxAttempts
	}
	if p.BaseBackoff <= 0 {
		p.BaseBackoff = d.BaseBackoff
	}
	if p.MaxBackoff <= 0 {
		p.MaxBackoff = d.MaxBackoff
	}
	switch {
	case p.Jitter < 0:
		p.Jitter = 0
	case p.Jitter == 0 || p.Jitter >= 1:
		p.Jitter = d.Jitter
	}
	return p
}

// Backoff is the delay after failed attempt n (1-based): BaseBackoff ×
// 2^(n-1), capped at MaxBackoff, scaled by 1 + Jitter × (2r − 1) for r
// uniform in [0, 1).
func (p DeliveryPolicy) Backoff(n int, r float64) time.Duration {
	d := p.BaseBackoff
	for i := 1; i < n && d < p.MaxBackoff; i++ {
		d *= 2
	}
	if d > p.MaxBackoff {
		d = p.MaxBackoff
	}
	return time.Duration(float64(d) * (1 + p.Jitter*(2*r-1)))
}

// Deliveries are leased, not handed out: the state machine is
//
//	pending --lease--> leased --complete--> succeeded
//	                   leased --fail (retryable, attempts left)--> pending (next_attempt_at = now + Backoff)
//	                   leased --fail (permanent, or no attempts left)--> dead
//	                   leased --lease expired, attempts left--> leased again by the next lease call
//	                   leased --lease expired, no attempts left--> dead
//	dead --retry (admin)--> pending with attempts 0
//
// We lease with FOR UPDATE SKIP LOCKED on our own table rather than run a
// job library such as River: the work is done by runners, not inside
// registryd, so what is needed is a lease handed over HTTP (id, lease id,
// deadline) that outlives the request, and an admin view of the same rows
// under the tenant's row-level security. River's jobs are worked by
// in-process workers, keep their own schema and migrations beside
// migrations/, and are not tenant-scoped; bridging them to an HTTP lease
// would have meant holding River jobs open across requests. The table
// gives at-least-once delivery (a row leaves the queue only on complete or
// death), exclusive leases (a row is claimed by one UPDATE of rows its
// transaction locked with SKIP LOCKED, and a new lease id voids the old
// one), and crash safety (every state is a committed row; an unfinished
// lease simply expires).
//
// Every time is the caller's clock (now), not the database's, so that one
// clock orders a replica's leases and the tests can move it; replicas are
// expected to run NTP, and skew only shifts when a lease expires.

// Lease bounds.
const (
	MaxLeaseBatch    = 100
	DefaultLeaseSize = 10
	MinLease         = 5 * time.Second
	MaxLease         = time.Hour
	DefaultLease     = time.Minute
)

// maxLastError bounds the failure reason kept per delivery.
const maxLastError = 1024

// LeasedDelivery is a leased delivery with what the metrics want to know.
type LeasedDelivery struct {
	registryapi.LeasedDelivery
	// Lag is how long the delivery had been due (since next_attempt_at,
	// or since its previous lease expired) when it was leased.
	Lag time.Duration
	// Reclaimed is set when the previous lease of this delivery expired.
	Reclaimed bool
}

// LeaseResult is what one lease call did.
type LeaseResult struct {
	Leased []LeasedDelivery
	// Expired holds the attempts of each delivery whose lease expired
	// with no attempts left: those deliveries are now dead.
	Expired []int
}

// LeaseDeliveries leases up to limit due deliveries for leaseFor. It runs
// in the platform scope: a runner serves every tenant. Deliveries of
// disabled installs stay pending until the install is enabled again.
func (db *DB) LeaseDeliveries(ctx context.Context, now time.Time, limit int, leaseFor time.Duration) (LeaseResult, error) {
	var res LeaseResult
	err := db.inTenant(ctx, platformScope, func(tx pgx.Tx) error {
		// Expired leases without attempts left are dead. SKIP LOCKED
		// keeps concurrent lease calls from waiting on each other.
		dead, err := tx.Query(ctx, `WITH x AS (
				SELECT id FROM extension_event_delivery
				WHERE status = 'leased' AND lease_expires_at <= $1 AND attempts >= max_attempts
				FOR UPDATE SKIP LOCKED)
			UPDATE extension_event_delivery d SET status = 'dead', lease_id = NULL, lease_expires_at = NULL,
				last_error = 'lease expired on the last attempt', finished_at = $1, updated_at = $1
			FROM x WHERE d.id = x.id RETURNING d.attempts`, now)
		if err != nil {
			return err
		}
		if res.Expired, err = pgx.CollectRows(dead, pgx.RowTo[int]); err != nil {
			return err
		}
		// Expired leases first (their runner died; they have waited
		// longest), then due pending ones: two statements, so each walks
		// its partial index in order instead of sorting every due row.
		for _, candidates := range []string{leaseExpiredCandidates, leasePendingCandidates} {
			if len(res.Leased) >= limit {
				break
			}
			got, err := leaseBatch(ctx, tx, candidates, now, limit-len(res.Leased), leaseFor)
			if err != nil {
				return err
			}
			res.Leased = append(res.Leased, got...)
		}
		return nil
	})
	if err != nil {
		return LeaseResult{}, err
	}
	return res, nil
}

// The candidates of a lease: $1 is now, $2 the limit. Each is locked with
// SKIP LOCKED, so concurrent leases take disjoint rows without waiting.
const (
	leaseExpiredCandidates = `SELECT d.id, true AS reclaimed, d.lease_expires_at AS due_at
		FROM extension_event_delivery d JOIN tenant_extension_install i ON i.id = d.install_id
		WHERE d.status = 'leased' AND d.lease_expires_at <= $1 AND d.attempts < d.max_attempts AND i.status = 'enabled'
		ORDER BY d.lease_expires_at LIMIT $2 FOR UPDATE OF d SKIP LOCKED`
	leasePendingCandidates = `SELECT d.id, false AS reclaimed, d.next_attempt_at AS due_at
		FROM extension_event_delivery d JOIN tenant_extension_install i ON i.id = d.install_id
		WHERE d.status = 'pending' AND d.next_attempt_at <= $1 AND i.status = 'enabled'
		ORDER BY d.next_attempt_at LIMIT $2 FOR UPDATE OF d SKIP LOCKED`
)

// leaseBatch leases up to limit of candidates and returns them with their
// events, oldest due first.
func leaseBatch(ctx context.Context, tx pgx.Tx, candidates string, now time.Time, limit int, leaseFor time.Duration) ([]LeasedDelivery, error) {
	rows, err := tx.Query(ctx, `WITH due AS (`+candidates+`),
		leased AS (
			UPDATE extension_event_delivery d SET status = 'leased', attempts = d.attempts + 1,
				lease_id = gen_random_uuid(), lease_expires_at = $3, updated_at = $1
			FROM due WHERE d.id = due.id
			RETURNING d.id, d.lease_id, d.lease_expires_at, d.attempts, d.max_attempts, d.tenant_id, d.install_id,
				d.handler, d.event_id, due.reclaimed, due.due_at)
		SELECT l.id::text, l.lease_id::text, l.lease_expires_at, l.attempts, l.max_attempts, l.tenant_id, l.install_id::text,
			r.name, l.handler, ev.id, ev.topic, ev.occurred_at, ev.payload, l.reclaimed, l.due_at
		FROM leased l
		JOIN extension_event ev ON ev.tenant_id = l.tenant_id AND ev.id = l.event_id
		JOIN tenant_extension_install i ON i.id = l.install_id
		JOIN extension_registry r ON r.id = i.registry_id
		ORDER BY l.due_at`, now, limit, now.Add(leaseFor))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []LeasedDelivery
	for rows.Next() {
		var (
			d       LeasedDelivery
			payload []byte
			dueAt   time.Time
		)
		if err := rows.Scan(&d.ID, &d.LeaseID, &d.LeaseExpiresAt, &d.Attempt, &d.MaxAttempts, &d.TenantID, &d.InstallID,
			&d.Extension, &d.Handler, &d.Event.ID, &d.Event.Topic, &d.Event.OccurredAt, &payload, &d.Reclaimed, &dueAt); err != nil {
			return nil, err
		}
		d.Event.Payload = payload
		d.Lag = now.Sub(dueAt)
		out = append(out, d)
	}
	return out, rows.Err()
}

// Delivery API codes.
const (
	// CodeLeaseLost: the lease id is not the delivery's current lease (it
	// expired and another runner holds the delivery, or it was finished).
	CodeLeaseLost = registryapi.CodeLeaseLost
	// CodeDeliveryNotDead: only dead deliveries may be retried.
	CodeDeliveryNotDead = "delivery_not_dead"
)

// leasedRow locks the delivery id held under leaseID, or explains why it
// is not (not_found, lease_lost).
func leasedRow(ctx context.Context, tx pgx.Tx, id, leaseID string) (attempts, maxAttempts int, err error) {
	if !validUUID(id) {
		return 0, 0, Errorf(CodeNotFound, "no such delivery")
	}
	if !validUUID(leaseID) {
		return 0, 0, fieldError("lease_id", "lease_id must be the lease id the lease call returned")
	}
	var (
		status string
		cur    *string
	)
	err = tx.QueryRow(ctx, `SELECT status, lease_id::text, attempts, max_attempts FROM extension_event_delivery WHERE id = $1 FOR UPDATE`, id).
		Scan(&status, &cur, &attempts, &maxAttempts)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, 0, Errorf(CodeNotFound, "no such delivery")
	}
	if err != nil {
		return 0, 0, err
	}
	if status != registryapi.DeliveryLeased || cur == nil || *cur != leaseID {
		return 0, 0, &Error{Code: CodeLeaseLost, Message: "this lease is no longer the delivery's (it expired and was leased again, or the delivery is finished)",
			Details: map[string]string{"status": status}}
	}
	return attempts, maxAttempts, nil
}

// CompleteDelivery marks a leased delivery succeeded. A lease that has
// expired but was not yet taken by another runner still completes: the
// work is done, and a redelivery would only repeat it.
func (db *DB) CompleteDelivery(ctx context.Context, id, leaseID string, now time.Time) (registryapi.DeliveryOutcome, error) {
	out := registryapi.DeliveryOutcome{ID: id, Status: registryapi.DeliverySucceeded}
	err := db.inTenant(ctx, platformScope, func(tx pgx.Tx) error {
		var err error
		if out.Attempts, _, err = leasedRow(ctx, tx, id, leaseID); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE extension_event_delivery SET status = 'succeeded', lease_id = NULL, lease_expires_at = NULL,
			finished_at = $2, updated_at = $2 WHERE id = $1`, id, now)
		return err
	})
	if err != nil {
		return registryapi.DeliveryOutcome{}, err
	}
	return out, nil
}

// FailDelivery records a failed attempt: the delivery is pending again
// after p.Backoff (r draws the jitter), or dead when the failure is not
// retryable or it was the last attempt.
func (db *DB) FailDelivery(ctx context.Context, id, leaseID string, retryable bool, reason string, now time.Time, p DeliveryPolicy, r float64) (registryapi.DeliveryOutcome, error) {
	out := registryapi.DeliveryOutcome{ID: id}
	reason = truncateUTF8(strings.ToValidUTF8(reason, "\uFFFD"), maxLastError)
	if reason == "" {
		reason = "handler failed"
	}
	err := db.inTenant(ctx, platformScope, func(tx pgx.Tx) error {
		attempts, maxAttempts, err := leasedRow(ctx, tx, id, leaseID)
		if err != nil {
			return err
		}
		out.Attempts = attempts
		if !retryable || attempts >= maxAttempts {
			out.Status = registryapi.DeliveryDead
			_, err = tx.Exec(ctx, `UPDATE extension_event_delivery SET status = 'dead', lease_id = NULL, lease_expires_at = NULL,
				last_error = $2, finished_at = $3, updated_at = $3 WHERE id = $1`, id, reason, now)
			return err
		}
		next := now.Add(p.Backoff(attempts, r))
		out.Status, out.NextAttemptAt = registryapi.DeliveryPending, &next
		_, err = tx.Exec(ctx, `UPDATE extension_event_delivery SET status = 'pending', lease_id = NULL, lease_expires_at = NULL,
			last_error = $2, next_attempt_at = $3, updated_at = $4 WHERE id = $1`, id, reason, next, now)
		return err
	})
	if err != nil {
		return registryapi.DeliveryOutcome{}, err
	}
	return out, nil
}

// truncateUTF8 cuts s to at most n bytes without splitting a character.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// Listing bounds.
const (
	DefaultDeliveryList = 100
	MaxDeliveryList     = 500
)

// deliveryStatuses are the values of ?status=.
var deliveryStatuses = []string{registryapi.DeliveryPending, registryapi.DeliveryLeased, registryapi.DeliverySucceeded, registryapi.DeliveryDead}

// ValidDeliveryStatus reports whether s is a delivery status.
func ValidDeliveryStatus(s string) bool { return slices.Contains(deliveryStatuses, s) }

// installID returns the id of tenant's install of name, or not_installed.
func installID(ctx context.Context, tx pgx.Tx, tenant, name string) (string, error) {
	var id string
	err := tx.QueryRow(ctx, `SELECT i.id::text FROM tenant_extension_install i JOIN extension_registry r ON r.id = i.registry_id
		WHERE i.tenant_id = $1 AND r.name = $2`, tenant, name).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", Errorf(CodeNotInstalled, "%s is not installed for this tenant", name)
	}
	return id, err
}

const deliverySelect = `SELECT d.id::text, d.event_id, ev.topic, d.install_id::text, d.handler, d.status, d.attempts, d.max_attempts,
	d.next_attempt_at, d.lease_expires_at, coalesce(d.last_error, ''), d.created_at, d.updated_at, d.finished_at
	FROM extension_event_delivery d JOIN extension_event ev ON ev.tenant_id = d.tenant_id AND ev.id = d.event_id`

func scanDelivery(row pgx.Row, extension string) (registryapi.Delivery, error) {
	var (
		d    registryapi.Delivery
		next time.Time
	)
	err := row.Scan(&d.ID, &d.EventID, &d.Topic, &d.InstallID, &d.Handler, &d.Status, &d.Attempts, &d.MaxAttempts,
		&next, &d.LeaseExpiresAt, &d.LastError, &d.CreatedAt, &d.UpdatedAt, &d.FinishedAt)
	if d.Status == registryapi.DeliveryPending {
		d.NextAttemptAt = &next
	}
	d.Extension = extension
	return d, err
}

// ListDeliveries lists the deliveries of tenant's install of name, newest
// first, optionally only those with status; limit 0 is the default.
func (db *DB) ListDeliveries(ctx context.Context, tenant, name, status string, limit int) ([]registryapi.Delivery, error) {
	if status != "" && !ValidDeliveryStatus(status) {
		return nil, fieldError("status", "status must be one of "+strings.Join(deliveryStatuses, ", "))
	}
	if limit == 0 {
		limit = DefaultDeliveryList
	}
	if limit < 1 || limit > MaxDeliveryList {
		return nil, fieldError("limit", fmt.Sprintf("limit must be 1 to %d", MaxDeliveryList))
	}
	out := []registryapi.Delivery{}
	err := db.inTenant(ctx, tenant, func(tx pgx.Tx) error {
		id, err := installID(ctx, tx, tenant, name)
		if err != nil {
			return err
		}
		rows, err := tx.Query(ctx, deliverySelect+` WHERE d.tenant_id = $1 AND d.install_id = $2 AND ($3 = '' OR d.status = $3)
			ORDER BY d.created_at DESC, d.id LIMIT $4`, tenant, id, status, limit)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			d, err := scanDelivery(rows, name)
			if err != nil {
				return err
			}
			out = append(out, d)
		}
		return rows.Err()
	})
	return out, err
}

// RetryDelivery makes a dead delivery of tenant's install of name pending
// now, with its attempts reset to zero (max_attempts more tries).
func (db *DB) RetryDelivery(ctx context.Context, tenant, name, id string, now time.Time) (registryapi.DeliveryOutcome, error) {
	out := registryapi.DeliveryOutcome{ID: id, Status: registryapi.DeliveryPending, NextAttemptAt: &now}
	err := db.inTenant(ctx, tenant, func(tx pgx.Tx) error {
		install, err := installID(ctx, tx, tenant, name)
		if err != nil {
			return err
		}
		if !validUUID(id) {
			return Errorf(CodeNotFound, "no such delivery")
		}
		var status string
		err = tx.QueryRow(ctx, `SELECT status FROM extension_event_delivery WHERE tenant_id = $1 AND install_id = $2 AND id = $3 FOR UPDATE`,
			tenant, install, id).Scan(&status)
		if errors.Is(err, pgx.ErrNoRows) {
			return Errorf(CodeNotFound, "no such delivery")
		}
		if err != nil {
			return err
		}
		if status != registryapi.DeliveryDead {
			return &Error{Code: CodeDeliveryNotDead, Message: "only a dead delivery can be retried", Details: map[string]string{"status": status}}
		}
		_, err = tx.Exec(ctx, `UPDATE extension_event_delivery SET status = 'pending', attempts = 0, next_attempt_at = $3,
			finished_at = NULL, updated_at = $3 WHERE tenant_id = $1 AND id = $2`, tenant, id, now)
		return err
	})
	if err != nil {
		return registryapi.DeliveryOutcome{}, err
	}
	return out, nil
}

// Backlog is the delivery queue as the metrics show it.
type Backlog struct {
	Due, Leased int64
	// OldestDue is the next_attempt_at of the oldest due pending
	// delivery; zero when none is due.
	OldestDue time.Time
}

// DeliveryBacklog counts due deliveries of enabled installs and leased
// deliveries across tenants (the partial indexes of 0004 keep both cheap).
func (db *DB) DeliveryBacklog(ctx context.Context, now time.Time) (Backlog, error) {
	var b Backlog
	err := db.inTenant(ctx, platformScope, func(tx pgx.Tx) error {
		var oldest *time.Time
		// A disabled install's deliveries wait on purpose: not backlog.
		if err := tx.QueryRow(ctx, `SELECT count(*), min(d.next_attempt_at) FROM extension_event_delivery d
			JOIN tenant_extension_install i ON i.id = d.install_id
			WHERE d.status = 'pending' AND d.next_attempt_at <= $1 AND i.status = 'enabled'`, now).Scan(&b.Due, &oldest); err != nil {
			return err
		}
		if oldest != nil {
			b.OldestDue = *oldest
		}
		return tx.QueryRow(ctx, `SELECT count(*) FROM extension_event_delivery WHERE status = 'leased'`).Scan(&b.Leased)
	})
	return b, err
}

// purgeBatch bounds one retention transaction.
const purgeBatch = 5000

// PurgeEvents deletes events published before cutoff whose deliveries are
// all finished (succeeded or dead), with those deliveries, in batches
// (platform-scope retention job). An event with a pending or leased
// delivery is kept whatever its age. Once deleted, its id may be
// published again as a new event.
func (db *DB) PurgeEvents(ctx context.Context, cutoff time.Time) (int64, error) {
	var total int64
	for {
		var n int64
		err := db.inTenant(ctx, platformScope, func(tx pgx.Tx) error {
			tag, err := tx.Exec(ctx, `DELETE FROM extension_event e USING (
					SELECT tenant_id, id FROM extension_event ev
					WHERE ev.created_at < $1 AND NOT EXISTS (
						SELECT 1 FROM extension_event_delivery d
						WHERE d.tenant_id = ev.tenant_id AND d.event_id = ev.id AND d.status IN ('pending', 'leased'))
					LIMIT $2) old
				WHERE e.tenant_id = old.tenant_id AND e.id = old.id`, cutoff, purgeBatch)
			n = tag.RowsAffected()
			return err
		})
		total += n
		if err != nil || n < purgeBatch {
			return total, err
		}
	}
}
