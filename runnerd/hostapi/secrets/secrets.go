// Package secrets is the secrets.get capability (SPEC §5.2, §7.6): it
// opens the install's sealed secret envelope from the execute request —
// at most once per call, and only when the guest asks — and returns one
// value. The envelope is bound to tenant, install and expiry, so one that
// was issued for another tenant or has expired does not open. Values never
// appear in logs or error messages.
package secrets

import (
	"time"

	"github.com/extedge/extedge/internal/secretbox"
	"github.com/extedge/extedge/runnerd/hostapi"
)

// Error codes of secrets.get.
const (
	CodeNotFound    = "not_found"
	CodeUnavailable = "secrets_unavailable"
)

// Capability provides secrets.get.
type Capability struct {
	keys *secretbox.Keys
	now  func() time.Time
}

// New returns the capability. keys may be nil (no --secrets-key-file):
// every call then answers secrets_unavailable. now may be nil (time.Now).
func New(keys *secretbox.Keys, now func() time.Time) *Capability {
	if now == nil {
		now = time.Now
	}
	return &Capability{keys: keys, now: now}
}

// Capability implements hostapi.Capability.
func (c *Capability) Capability() string { return "secrets.get" }

// Imports implements hostapi.Capability.
func (c *Capability) Imports() []hostapi.Import {
	return []hostapi.Import{{Name: "secrets.get", JSON: c.get}}
}

type openedKey struct{}

func (c *Capability) get(inv *hostapi.Invocation, raw []byte) (any, error) {
	var req struct {
		Key string `json:"key"`
	}
	if err := hostapi.DecodeRequest(raw, &req); err != nil {
		return nil, err
	}
	if req.Key == "" {
		return nil, hostapi.Errorf(hostapi.CodeInvalidRequest, "key is required")
	}
	v, err := inv.State(openedKey{}, func() (any, error) {
		env := inv.Envelope.SecretEnvelope
		if env == nil || *env == "" {
			return map[string]string{}, nil
		}
		if c.keys == nil {
			return nil, hostapi.Errorf(CodeUnavailable, "this runner holds no secrets key")
		}
		ctx := inv.Envelope.Context
		m, err := c.keys.OpenEnvelope(*env, ctx.TenantID, ctx.InstallID, c.now())
		if err != nil {
			// The reason (expired, wrong binding, tampered) is not secret,
			// but the envelope itself is never echoed.
			return nil, hostapi.Errorf(CodeUnavailable, "secret envelope does not open: %v", err)
		}
		return m, nil
	})
	if err != nil {
		return nil, err
	}
	val, ok := v.(map[string]string)[req.Key]
	if !ok {
		return nil, hostapi.Errorf(CodeNotFound, "no secret named %q", req.Key)
	}
	return map[string]string{"value": val}, nil
}

var _ hostapi.Capability = (*Capability)(nil)
