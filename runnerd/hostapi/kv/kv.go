// Package kv is the storage.kv capability (SPEC §5.2, §7.6): storage.get,
// storage.put, storage.delete and storage.list on records scoped to the
// calling install. Replies: get and put `{"item":{namespace,key,value,
// revision,expires_at?}}`, delete `{"deleted":bool}`, list
// `{"items":[…],"next_cursor":"…"}` ("" at the end). The runner keeps no data: every operation goes to
// registryd's internal storage API, with tenant and install taken from the
// call (hostapi.CallInfo), never from the guest.
package kv

import (
	"context"
	"encoding/json"
	"errors"
	"unicode/utf8"

	"github.com/extedge/extedge/internal/registryapi"
	"github.com/extedge/extedge/runnerd/hostapi"
)

// Store performs one storage operation; *registryapi.Client implements it.
type Store interface {
	Storage(ctx context.Context, req registryapi.StorageRequest) (*registryapi.StorageResponse, error)
}

// Limits of §7.6, checked here too so that obviously bad requests never
// cost a registry round trip.
const (
	MaxKeyBytes   = 256
	MaxValueBytes = 256 << 10
	MinTTLSeconds = 60
	MaxTTLSeconds = 30 * 24 * 3600
	MaxListLimit  = 100
)

// CodeUnavailable is returned when the registry cannot be reached.
const CodeUnavailable = "storage_unavailable"

// Capability provides the storage.* imports.
type Capability struct {
	store Store
}

// New returns the capability backed by store. A nil store (no registry
// configured) answers every call with storage_unavailable.
func New(store Store) *Capability { return &Capability{store: store} }

// Capability implements hostapi.Unit.
func (c *Capability) Capability() string { return "storage.kv" }

// scope is the unit's state of one call: the records it may reach.
type scope struct{ tenant, install string }

// Prepare implements hostapi.Unit.
func (c *Capability) Prepare(call hostapi.CallInfo) (hostapi.State, error) {
	return scope{tenant: call.Context.TenantID, install: call.Context.InstallID}, nil
}

// Finish implements hostapi.Unit; storage reports nothing.
func (c *Capability) Finish(hostapi.State, *hostapi.Report) {}

// Imports implements hostapi.Unit.
func (c *Capability) Imports() []hostapi.Import {
	return []hostapi.Import{
		{Name: "storage.get", JSON: c.op(registryapi.StorageGet)},
		{Name: "storage.put", JSON: c.op(registryapi.StoragePut)},
		{Name: "storage.delete", JSON: c.op(registryapi.StorageDelete)},
		{Name: "storage.list", JSON: c.op(registryapi.StorageList)},
	}
}

// request is the union of the guest's storage requests.
type request struct {
	Namespace  string          `json:"namespace"`
	Key        string          `json:"key,omitempty"`
	Value      json.RawMessage `json:"value,omitempty"`
	IfRevision *int64          `json:"if_revision,omitempty"`
	TTLSeconds int             `json:"ttl_seconds,omitempty"`
	Prefix     string          `json:"prefix,omitempty"`
	Cursor     string          `json:"cursor,omitempty"`
	Limit      int             `json:"limit,omitempty"`
}

func invalid(format string, args ...any) error {
	return hostapi.Errorf(registryapi.CodeValidationFailed, format, args...)
}

func (c *Capability) op(op string) func(context.Context, hostapi.State, []byte) (any, error) {
	return hostapi.JSONFunc(func(ctx context.Context, sc scope, raw []byte) (any, error) {
		var r request
		if err := hostapi.DecodeRequest(raw, &r); err != nil {
			return nil, err
		}
		if err := validate(op, &r); err != nil {
			return nil, err
		}
		if c.store == nil {
			return nil, hostapi.Errorf(CodeUnavailable, "no registry is configured for storage")
		}
		resp, err := c.store.Storage(ctx, registryapi.StorageRequest{
			TenantID: sc.tenant, InstallID: sc.install, Op: op,
			Namespace: r.Namespace, Key: r.Key, Value: r.Value, IfRevision: r.IfRevision,
			TTLSeconds: r.TTLSeconds, Prefix: r.Prefix, Cursor: r.Cursor, Limit: r.Limit,
		})
		if err != nil {
			return nil, storageErr(err)
		}
		// The reply is the registry's StorageResponse shape ({"item"},
		// {"deleted"}, {"items","next_cursor"}), which the Go guest SDK
		// decodes; it is rebuilt field by field so nothing else leaks.
		switch op {
		case registryapi.StorageGet, registryapi.StoragePut:
			if resp.Item == nil {
				return nil, hostapi.Errorf(registryapi.CodeNotFound, "no such key")
			}
			return registryapi.StorageResponse{Item: resp.Item}, nil
		case registryapi.StorageDelete:
			return map[string]bool{"deleted": resp.Deleted}, nil
		}
		items := resp.Items
		if items == nil {
			items = []registryapi.StorageItem{}
		}
		return map[string]any{"items": items, "next_cursor": resp.NextCursor}, nil
	})
}

func validate(op string, r *request) error {
	if r.Namespace == "" || len(r.Namespace) > MaxKeyBytes || !utf8.ValidString(r.Namespace) {
		return invalid("namespace must be 1-%d bytes of UTF-8", MaxKeyBytes)
	}
	if op != registryapi.StorageList {
		if r.Key == "" || len(r.Key) > MaxKeyBytes || !utf8.ValidString(r.Key) {
			return invalid("key must be 1-%d bytes of UTF-8", MaxKeyBytes)
		}
	}
	switch op {
	case registryapi.StoragePut:
		if len(r.Value) == 0 || !json.Valid(r.Value) {
			return invalid("value must be JSON")
		}
		if len(r.Value) > MaxValueBytes {
			return invalid("value is larger than %d bytes", MaxValueBytes)
		}
		if r.TTLSeconds != 0 && (r.TTLSeconds < MinTTLSeconds || r.TTLSeconds > MaxTTLSeconds) {
			return invalid("ttl_seconds must be %d-%d", MinTTLSeconds, MaxTTLSeconds)
		}
	case registryapi.StorageList:
		if r.Limit < 0 || r.Limit > MaxListLimit {
			return invalid("limit must be at most %d", MaxListLimit)
		}
	}
	return nil
}

// storageErr passes the registry's §7.6 codes through to the guest and
// hides everything else behind storage_unavailable.
func storageErr(err error) error {
	var ae *registryapi.APIError
	if errors.As(err, &ae) {
		switch ae.Code {
		case registryapi.CodeNotFound, registryapi.CodeRevisionMismatch, registryapi.CodeQuotaExceeded, registryapi.CodeValidationFailed:
			return hostapi.Errorf(ae.Code, "%s", ae.Message)
		}
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return hostapi.Errorf("timeout", "storage did not answer before the deadline")
	}
	return hostapi.Errorf(CodeUnavailable, "storage is unavailable")
}

var _ hostapi.Unit = (*Capability)(nil)
