// Package registryapi is the contract of registryd's service API (SPEC §7.4,
// §7.6, §7.7): the JSON types and a small client used by the gateway, the
// runners and extctl, and the Cache of its answers (§7.5) that the gateway
// and the runners share. registryd implements the server side with the
// same types, so a spelling change breaks the compiler, not production.
package registryapi

import (
	"encoding/json"
	"time"

	"github.com/extedge/extedge/internal/manifest"
)

// Ref names a row by id and human name.
type Ref struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// VersionRef names an extension version.
type VersionRef struct {
	ID      string `json:"id"`
	Version string `json:"version"`
}

// UIRef is the part of a manifest's ui that resolve and the version read
// return: the entry the gateway serves, and the hooks and routes as
// published, from which a PSA builds its menus (SPEC §4, §7.4).
type UIRef struct {
	Entry  string             `json:"entry"`
	Hooks  *manifest.UIHooks  `json:"hooks,omitempty"`
	Routes []manifest.UIRoute `json:"routes,omitempty"`
}

// UIRefFromJSON decodes a stored manifest ui section; nil when there is
// none or it does not decode.
func UIRefFromJSON(raw []byte) *UIRef {
	var u manifest.UI
	if len(raw) == 0 || json.Unmarshal(raw, &u) != nil || u.Entry == "" {
		return nil
	}
	return &UIRef{Entry: u.Entry, Hooks: u.Hooks, Routes: u.Routes}
}

// Quotas are an install's optional limits, enforced by the gateway (§7.7,
// §17), across gateway pods when it has Redis. Zero means unlimited.
type Quotas struct {
	InvocationsPerMinute int `json:"invocations_per_minute,omitempty"`
	ConcurrentCalls      int `json:"concurrent_calls,omitempty"`
	// CPUMsPerMinute bounds the guest CPU time (as measured by the runner)
	// the install may use per minute.
	CPUMsPerMinute int `json:"cpu_ms_per_minute,omitempty"`
}

// IsZero reports quotas that limit nothing.
func (q *Quotas) IsZero() bool {
	return q == nil || (q.InvocationsPerMinute <= 0 && q.ConcurrentCalls <= 0 && q.CPUMsPerMinute <= 0)
}

// InstanceReuse is an install's opt-in to instance reuse (SPEC §6.5): the
// runner keeps the install's instance for its next calls instead of making
// a fresh one per call, so guest global state persists between calls of
// that install (never across installs). Off by default; only a platform
// admin may change it. In a PUT, `"instance_reuse": true` is short for
// `{"enabled": true}`.
type InstanceReuse struct {
	Enabled bool `json:"enabled"`
	// MaxCalls recycles an instance after this many calls. Default: 1000.
	MaxCalls int `json:"max_calls,omitempty"`
	// MaxAgeMS recycles an instance this long after it was made. Default:
	// 60000 (60 s).
	MaxAgeMS int64 `json:"max_age_ms,omitempty"`
}

// Defaults and upper bounds of InstanceReuse.
const (
	DefaultReuseMaxCalls = 1000
	DefaultReuseMaxAgeMS = 60_000
	MaxReuseMaxCalls     = 1_000_000
	MaxReuseMaxAgeMS     = 3_600_000
)

// UnmarshalJSON accepts a boolean as well as the object.
func (r *InstanceReuse) UnmarshalJSON(b []byte) error {
	var on bool
	if json.Unmarshal(b, &on) == nil {
		*r = InstanceReuse{Enabled: on}
		return nil
	}
	type plain InstanceReuse
	return json.Unmarshal(b, (*plain)(r))
}

// Normalized is r with what a disabled opt-in carries dropped: nil and
// {enabled:false,…} are the same setting (off).
func (r *InstanceReuse) Normalized() InstanceReuse {
	if r == nil || !r.Enabled {
		return InstanceReuse{}
	}
	return *r
}

// Resolved is GET /v1/resolve/{tenant}/{extension}.
type Resolved struct {
	InstallID       string              `json:"install_id"`
	TenantID        string              `json:"tenant_id"`
	Extension       Ref                 `json:"extension"`
	Version         VersionRef          `json:"version"`
	ContentHash     string              `json:"content_hash"`
	Status          string              `json:"status"`
	Endpoints       []manifest.Endpoint `json:"endpoints"`
	Capabilities    []string            `json:"capabilities"`
	Config          json.RawMessage     `json:"config"`
	EgressAllowlist []string            `json:"egress_allowlist"`
	UI              *UIRef              `json:"ui"`
	SecretEnvelope  *string             `json:"secret_envelope"`
	Quotas          *Quotas             `json:"quotas,omitempty"`
	// InstanceReuse is set only when the install opted in.
	InstanceReuse *InstanceReuse `json:"instance_reuse,omitempty"`
}

// BundleStatus is GET /v1/bundles/{content_hash}/status?extension={name}.
type BundleStatus struct {
	ContentHash string `json:"content_hash"`
	Extension   string `json:"extension"`
	// Published is true when the hash is a version of that extension.
	Published bool   `json:"published"`
	Revoked   bool   `json:"revoked"`
	Version   string `json:"version,omitempty"`
	UI        *UIRef `json:"ui,omitempty"`
}

// Usable reports whether components may serve or run this hash.
func (s *BundleStatus) Usable() bool { return s.Published && !s.Revoked }

// Change event types of the /v1/changes feed.
const (
	ChangeInstall    = "install_changed"
	ChangeRevoked    = "version_revoked"
	ChangeDeprecated = "extension_deprecated"
)

// Change is one event of GET /v1/changes (SSE: `id:` is ID, `event:` is
// Type, `data:` is this JSON). Reconnect with Last-Event-ID to resume.
type Change struct {
	ID          int64  `json:"id"`
	Type        string `json:"type"`
	TenantID    string `json:"tenant_id,omitempty"`
	Extension   string `json:"extension,omitempty"`
	ContentHash string `json:"content_hash,omitempty"`
}

// Storage operations (§7.6).
const (
	StorageGet    = "get"
	StoragePut    = "put"
	StorageDelete = "delete"
	StorageList   = "list"
)

// StorageRequest is POST /v1/internal/storage. TenantID and InstallID scope
// the record; runners take them from the execute envelope, never from the
// guest.
type StorageRequest struct {
	TenantID   string          `json:"tenant_id"`
	InstallID  string          `json:"install_id"`
	Op         string          `json:"op"`
	Namespace  string          `json:"namespace"`
	Key        string          `json:"key,omitempty"`
	Value      json.RawMessage `json:"value,omitempty"`
	IfRevision *int64          `json:"if_revision,omitempty"`
	TTLSeconds int             `json:"ttl_seconds,omitempty"`
	Prefix     string          `json:"prefix,omitempty"`
	Cursor     string          `json:"cursor,omitempty"`
	Limit      int             `json:"limit,omitempty"`
}

// StorageItem is one KV record.
type StorageItem struct {
	Namespace string          `json:"namespace"`
	Key       string          `json:"key"`
	Value     json.RawMessage `json:"value,omitempty"`
	Revision  int64           `json:"revision"`
	ExpiresAt *time.Time      `json:"expires_at,omitempty"`
}

// StorageResponse is the reply: get and put fill Item, delete fills Deleted,
// list fills Items and NextCursor (empty at the end).
type StorageResponse struct {
	Item       *StorageItem  `json:"item,omitempty"`
	Deleted    bool          `json:"deleted,omitempty"`
	Items      []StorageItem `json:"items,omitempty"`
	NextCursor string        `json:"next_cursor,omitempty"`
}

// Storage error codes (§7.6).
const (
	CodeNotFound         = "not_found"
	CodeRevisionMismatch = "revision_mismatch"
	CodeQuotaExceeded    = "quota_exceeded"
	CodeValidationFailed = "validation_failed"
)

// ExecutionRecord is one call (§7.7). Outcome is "ok" or a §6.2 error code.
type ExecutionRecord struct {
	RequestID       string    `json:"request_id"`
	TenantID        string    `json:"tenant_id"`
	ExtensionID     string    `json:"extension_id"`
	InstallID       string    `json:"install_id"`
	VersionID       string    `json:"version_id"`
	ContentHash     string    `json:"content_hash"`
	Endpoint        string    `json:"endpoint"`
	EventID         string    `json:"event_id,omitempty"`
	StartedAt       time.Time `json:"started_at"`
	FinishedAt      time.Time `json:"finished_at"`
	Outcome         string    `json:"outcome"`
	HTTPStatus      int       `json:"http_status,omitempty"`
	DurationMS      float64   `json:"duration_ms"`
	CPUMS           float64   `json:"cpu_ms,omitempty"`
	Fuel            uint64    `json:"fuel,omitempty"`
	PeakMemoryBytes int64     `json:"peak_memory_bytes,omitempty"`
	EgressBytes     int64     `json:"egress_bytes,omitempty"`
}

// ExecutionBatch is POST /v1/internal/executions.
type ExecutionBatch struct {
	Records []ExecutionRecord `json:"records"`
}

// ErrorBody is every registryd error reply.
type ErrorBody struct {
	Error struct {
		Code    string          `json:"code"`
		Message string          `json:"message"`
		Details json.RawMessage `json:"details,omitempty"`
	} `json:"error"`
}
