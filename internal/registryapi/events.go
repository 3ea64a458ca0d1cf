package registryapi

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Events (SPEC §18): the body of POST /v1/events, the delivery protocol
// runners speak (lease, complete, fail) and the admin view of deliveries.

// MaxEventPayload bounds an event's payload: the JSON value as sent, in
// bytes (the same bound as a KV value, §7.6).
const MaxEventPayload = 256 << 10

// MaxEventIDLen bounds an event id, in bytes.
const MaxEventIDLen = 256

// ValidEventID reports whether id is an event id: 1 to MaxEventIDLen bytes
// of printable ASCII without spaces (UUIDs, ULIDs and "ticket:42" qualify),
// so it can stand in logs, URLs and the execution log unescaped.
func ValidEventID(id string) bool {
	if len(id) == 0 || len(id) > MaxEventIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] <= ' ' || id[i] > '~' {
			return false
		}
	}
	return true
}

// Event is the body of POST /v1/events.
type Event struct {
	ID         string          `json:"id"`
	TenantID   string          `json:"tenant_id"`
	Topic      string          `json:"topic"`
	OccurredAt time.Time       `json:"occurred_at"`
	Payload    json.RawMessage `json:"payload"`
}

// PublishEventResult is the reply of POST /v1/events: 202 the first time,
// 200 with the same body for a repeated id.
type PublishEventResult struct {
	ID         string `json:"id"`
	Deliveries int    `json:"deliveries"`
	// Created is true for 202 (not part of the body; set by the client).
	Created bool `json:"-"`
}

// Delivery statuses. A delivery is pending (waiting for next_attempt_at),
// leased (a runner holds it until lease_expires_at), succeeded, or dead
// (attempts exhausted or a permanent failure; an admin may retry it).
const (
	DeliveryPending   = "pending"
	DeliveryLeased    = "leased"
	DeliverySucceeded = "succeeded"
	DeliveryDead      = "dead"
)

// CodeLeaseLost is the 409 error code of complete and fail when the lease
// is no longer the delivery's (it expired and was leased again, or the
// delivery finished): the caller's result is not recorded.
const CodeLeaseLost = "lease_lost"

// EventRef is the event as a leased delivery carries it: what the guest
// request's "event" member holds (§18).
type EventRef struct {
	ID         string          `json:"id"`
	Topic      string          `json:"topic"`
	OccurredAt time.Time       `json:"occurred_at"`
	Payload    json.RawMessage `json:"payload"`
}

// LeaseRequest is the body of POST /v1/internal/deliveries/lease. Zero
// fields take the defaults.
type LeaseRequest struct {
	// Limit is the most deliveries to lease (1…100). Default: 10.
	Limit int `json:"limit,omitempty"`
	// LeaseSeconds is how long the runner holds them (5…3600). Default: 60.
	LeaseSeconds int `json:"lease_seconds,omitempty"`
}

// LeasedDelivery is one delivery handed to a runner. The runner resolves
// the install (GET /v1/resolve/{tenant_id}/{extension}) for its version,
// capabilities and secrets, runs handler with the event, and then
// completes or fails the delivery with lease_id before lease_expires_at.
type LeasedDelivery struct {
	ID             string    `json:"id"`
	LeaseID        string    `json:"lease_id"`
	LeaseExpiresAt time.Time `json:"lease_expires_at"`
	// Attempt counts this one: 1 on the first lease.
	Attempt     int      `json:"attempt"`
	MaxAttempts int      `json:"max_attempts"`
	TenantID    string   `json:"tenant_id"`
	InstallID   string   `json:"install_id"`
	Extension   string   `json:"extension"`
	Handler     string   `json:"handler"`
	Event       EventRef `json:"event"`
}

// LeaseResponse is the reply of POST /v1/internal/deliveries/lease; an
// empty list means nothing is due.
type LeaseResponse struct {
	Deliveries []LeasedDelivery `json:"deliveries"`
}

// CompleteRequest is the body of POST /v1/internal/deliveries/{id}/complete.
type CompleteRequest struct {
	LeaseID string `json:"lease_id"`
}

// FailRequest is the body of POST /v1/internal/deliveries/{id}/fail.
type FailRequest struct {
	LeaseID string `json:"lease_id"`
	// Retryable false makes the delivery dead at once (the handler cannot
	// succeed, e.g. it does not exist). Absent means true.
	Retryable *bool `json:"retryable,omitempty"`
	// Error is a short reason kept as last_error (≤ 1 KiB kept).
	Error string `json:"error,omitempty"`
}

// DeliveryOutcome is the reply of complete, fail and retry: the delivery's
// status afterwards.
type DeliveryOutcome struct {
	ID            string     `json:"id"`
	Status        string     `json:"status"`
	Attempts      int        `json:"attempts"`
	NextAttemptAt *time.Time `json:"next_attempt_at,omitempty"`
}

// Delivery is one delivery as the admin API lists it.
type Delivery struct {
	ID             string     `json:"id"`
	EventID        string     `json:"event_id"`
	Topic          string     `json:"topic"`
	InstallID      string     `json:"install_id"`
	Extension      string     `json:"extension"`
	Handler        string     `json:"handler"`
	Status         string     `json:"status"`
	Attempts       int        `json:"attempts"`
	MaxAttempts    int        `json:"max_attempts"`
	NextAttemptAt  *time.Time `json:"next_attempt_at,omitempty"`
	LeaseExpiresAt *time.Time `json:"lease_expires_at,omitempty"`
	LastError      string     `json:"last_error,omitempty"`
	CreatedAt      time.Time  `json:"created_at"`
	UpdatedAt      time.Time  `json:"updated_at"`
	FinishedAt     *time.Time `json:"finished_at,omitempty"`
}

// PublishEvent posts an event.
func (c *Client) PublishEvent(ctx context.Context, ev Event) (*PublishEventResult, error) {
	resp, err := c.send(ctx, http.MethodPost, "/v1/events", ev, nil)
	if err != nil {
		return nil, err
	}
	defer closeBody(resp)
	var out PublishEventResult
	if err := decode(resp, &out); err != nil {
		return nil, err
	}
	out.Created = resp.StatusCode == http.StatusAccepted
	return &out, nil
}

// LeaseDeliveries leases due deliveries for this runner.
func (c *Client) LeaseDeliveries(ctx context.Context, req LeaseRequest) ([]LeasedDelivery, error) {
	var out LeaseResponse
	return out.Deliveries, c.Do(ctx, http.MethodPost, "/v1/internal/deliveries/lease", req, &out)
}

// CompleteDelivery acknowledges a leased delivery.
func (c *Client) CompleteDelivery(ctx context.Context, id, leaseID string) (*DeliveryOutcome, error) {
	var out DeliveryOutcome
	return &out, c.Do(ctx, http.MethodPost, "/v1/internal/deliveries/"+url.PathEscape(id)+"/complete", CompleteRequest{LeaseID: leaseID}, &out)
}

// FailDelivery reports a failed attempt of a leased delivery.
func (c *Client) FailDelivery(ctx context.Context, id string, req FailRequest) (*DeliveryOutcome, error) {
	var out DeliveryOutcome
	return &out, c.Do(ctx, http.MethodPost, "/v1/internal/deliveries/"+url.PathEscape(id)+"/fail", req, &out)
}

// ListDeliveries lists an install's deliveries, newest first; status ""
// lists all, limit 0 takes the server's default.
func (c *Client) ListDeliveries(ctx context.Context, tenant, name, status string, limit int) ([]Delivery, error) {
	q := url.Values{}
	if status != "" {
		q.Set("status", status)
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	path := installPath(tenant, name) + "/deliveries"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var out []Delivery
	return out, c.Do(ctx, http.MethodGet, path, nil, &out)
}

// RetryDelivery makes a dead delivery pending again with fresh attempts.
func (c *Client) RetryDelivery(ctx context.Context, tenant, name, id string) (*DeliveryOutcome, error) {
	var out DeliveryOutcome
	return &out, c.Do(ctx, http.MethodPost, installPath(tenant, name)+"/deliveries/"+url.PathEscape(id)+"/retry", nil, &out)
}
