package guest

import (
	"encoding/json"
	"fmt"
	"time"
)

// KVStore is the install's key-value storage (capability storage.kv,
// SPEC §7.6). Records are scoped to the tenant and install by the host;
// the guest chooses namespaces and keys.
type KVStore struct{}

// KV is the install's key-value store.
var KV KVStore

// Item is one KV record.
type Item struct {
	Namespace string          `json:"namespace"`
	Key       string          `json:"key"`
	Value     json.RawMessage `json:"value,omitempty"`
	// Revision starts at 1 and grows by one per write.
	Revision int64 `json:"revision"`
	// ExpiresAt is set for records written with a TTL.
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
}

// Decode unmarshals the record's JSON value into v.
func (it Item) Decode(v any) error {
	if err := json.Unmarshal(it.Value, v); err != nil {
		return fmt.Errorf("decoding %s/%s: %w", it.Namespace, it.Key, err)
	}
	return nil
}

type kvRequest struct {
	Namespace  string          `json:"namespace"`
	Key        string          `json:"key,omitempty"`
	Value      json.RawMessage `json:"value,omitempty"`
	IfRevision *int64          `json:"if_revision,omitempty"`
	TTLSeconds int             `json:"ttl_seconds,omitempty"`
	Prefix     string          `json:"prefix,omitempty"`
	Cursor     string          `json:"cursor,omitempty"`
	Limit      int             `json:"limit,omitempty"`
}

type kvReply struct {
	Item       *Item  `json:"item,omitempty"`
	Deleted    bool   `json:"deleted,omitempty"`
	Items      []Item `json:"items,omitempty"`
	NextCursor string `json:"next_cursor,omitempty"`
}

// PutOption modifies a [KVStore.Put].
type PutOption func(*kvRequest)

// IfRevision makes the put conditional: it succeeds only if the record's
// current revision is rev; otherwise the error code is revision_mismatch.
// IfRevision(0) sends `"if_revision":0`, which means "create only" if the
// registry treats a missing record as revision 0 (SPEC §7.6 is silent).
func IfRevision(rev int64) PutOption {
	return func(r *kvRequest) { r.IfRevision = &rev }
}

// TTL makes the record expire after d (the host accepts 60 s … 30 days;
// rounded up to whole seconds).
func TTL(d time.Duration) PutOption {
	return func(r *kvRequest) { r.TTLSeconds = durationSeconds(d) }
}

// Get returns the record; a missing key is a not_found [*HostError].
func (KVStore) Get(namespace, key string) (Item, error) {
	var reply kvReply
	if err := call(importStorageGet, kvRequest{Namespace: namespace, Key: key}, &reply); err != nil {
		return Item{}, err
	}
	if reply.Item == nil {
		return Item{}, &HostError{Import: importStorageGet, Code: CodeNotFound, Message: "no item in reply"}
	}
	return *reply.Item, nil
}

// Put stores value (encoded as JSON; pass json.RawMessage for JSON you
// already have) and returns the new revision. Errors: revision_mismatch,
// quota_exceeded, validation_failed.
func (KVStore) Put(namespace, key string, value any, opts ...PutOption) (int64, error) {
	raw, err := json.Marshal(value)
	if err != nil {
		return 0, fmt.Errorf("storage.put: encoding value: %w", err)
	}
	req := kvRequest{Namespace: namespace, Key: key, Value: raw}
	for _, o := range opts {
		o(&req)
	}
	var reply kvReply
	if err := call(importStoragePut, req, &reply); err != nil {
		return 0, err
	}
	if reply.Item == nil {
		return 0, &HostError{Import: importStoragePut, Code: CodeInvalidHostReply, Message: "no item in reply"}
	}
	return reply.Item.Revision, nil
}

// Delete removes the record and reports whether the host deleted one. With
// ifRevision the delete only happens at that revision (else
// revision_mismatch); only the first value is used.
func (KVStore) Delete(namespace, key string, ifRevision ...int64) (bool, error) {
	req := kvRequest{Namespace: namespace, Key: key}
	if len(ifRevision) > 0 {
		req.IfRevision = &ifRevision[0]
	}
	var reply kvReply
	if err := call(importStorageDelete, req, &reply); err != nil {
		return false, err
	}
	return reply.Deleted, nil
}

// List returns up to limit records (host maximum 100; 0 = host default)
// whose keys start with prefix, in key order, and the cursor for the next
// page ("" at the end).
func (KVStore) List(namespace, prefix, cursor string, limit int) ([]Item, string, error) {
	var reply kvReply
	req := kvRequest{Namespace: namespace, Prefix: prefix, Cursor: cursor, Limit: limit}
	if err := call(importStorageList, req, &reply); err != nil {
		return nil, "", err
	}
	return reply.Items, reply.NextCursor, nil
}
