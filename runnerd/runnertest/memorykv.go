package runnertest

import (
	"context"
	"sort"
	"strings"
	"sync"

	"github.com/extedge/extedge/internal/registryapi"
)

// MemoryKV is a kv.Store in memory with registryd's storage semantics
// (SPEC §7.6) as far as the guests under test need them: records scoped to
// (tenant, install), revisions from 1, if_revision with a missing record
// as revision 0, not_found and revision_mismatch errors, prefix lists.
// TTLs and quotas are not modelled.
type MemoryKV struct {
	mu   sync.Mutex
	recs map[string]registryapi.StorageItem // tenant \x00 install \x00 namespace \x00 key
}

// NewMemoryKV returns an empty store.
func NewMemoryKV() *MemoryKV { return &MemoryKV{recs: map[string]registryapi.StorageItem{}} }

func apiErr(status int, code, msg string) error {
	return &registryapi.APIError{Status: status, Code: code, Message: msg}
}

// Storage implements kv.Store.
func (s *MemoryKV) Storage(_ context.Context, req registryapi.StorageRequest) (*registryapi.StorageResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	scope := req.TenantID + "\x00" + req.InstallID + "\x00" + req.Namespace + "\x00"
	cur, exists := s.recs[scope+req.Key]
	var resp registryapi.StorageResponse
	switch req.Op {
	case registryapi.StorageGet:
		if !exists {
			return nil, apiErr(404, registryapi.CodeNotFound, "no such key")
		}
		resp.Item = &cur
	case registryapi.StoragePut:
		if req.IfRevision != nil && *req.IfRevision != cur.Revision {
			return nil, apiErr(409, registryapi.CodeRevisionMismatch, "revision differs")
		}
		it := registryapi.StorageItem{Namespace: req.Namespace, Key: req.Key, Value: req.Value, Revision: cur.Revision + 1}
		s.recs[scope+req.Key] = it
		resp.Item = &it
	case registryapi.StorageDelete:
		if req.IfRevision != nil && *req.IfRevision != cur.Revision {
			return nil, apiErr(409, registryapi.CodeRevisionMismatch, "revision differs")
		}
		delete(s.recs, scope+req.Key)
		resp.Deleted = exists
	case registryapi.StorageList:
		var keys []string
		for k := range s.recs {
			if strings.HasPrefix(k, scope+req.Prefix) && k > scope+req.Cursor {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		limit := req.Limit
		if limit <= 0 {
			limit = 100
		}
		for i, k := range keys {
			if i == limit {
				resp.NextCursor = resp.Items[i-1].Key
				break
			}
			resp.Items = append(resp.Items, s.recs[k])
		}
	default:
		return nil, apiErr(400, registryapi.CodeValidationFailed, "unknown op "+req.Op)
	}
	return &resp, nil
}
