package store

import (
	"bytes"
	"context"
	"encoding/json"
	"time"

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
	if !json.Valid(p) {
		return fieldError("payload", "payload must be a JSON value")
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
			ev.TenantID, ev.ID, ev.Topic, ev.OccurredAt, ev.Payload, now)
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
	// deliveries failing together do not come back together. Default: 0.2.
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
	if p.Jitter < 0 || p.Jitter >= 1 {
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
