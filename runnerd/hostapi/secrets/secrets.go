// Package secrets is the secrets.get capability (SPEC §5.2, §7.6): it
// opens the install's sealed secret envelope from the execute request —
// at most once per call, and only when the guest asks — and returns one
// value. It is the only unit the framework gives the envelope to
// ([hostapi.SecretsUnit]). The envelope is bound to tenant, install and expiry, so one that
// was issued for another tenant or has expired does not open. Values never
// appear in logs or error messages.
package secrets

import (
	"context"
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

// Capability implements hostapi.Unit.
func (c *Capability) Capability() string { return hostapi.SecretsCapability }

// Imports implements hostapi.Unit.
func (c *Capability) Imports() []hostapi.Import {
	return []hostapi.Import{{Name: "secrets.get", JSON: hostapi.JSONFunc(get)}}
}

// opened is the unit's state of one call: the envelope's values. An
// envelope that does not open fails Prepare, and the framework answers
// every secrets.get of the call with that error.
type opened struct {
	values map[string]string
}

// Prepare implements hostapi.Unit for a call without an envelope; the
// framework calls PrepareSecrets instead.
func (c *Capability) Prepare(call hostapi.CallInfo) (hostapi.State, error) {
	return c.PrepareSecrets(call, "")
}

// PrepareSecrets implements hostapi.SecretsUnit: it opens sealed for the
// call's tenant and install.
func (c *Capability) PrepareSecrets(call hostapi.CallInfo, sealed string) (hostapi.State, error) {
	if sealed == "" {
		return &opened{values: map[string]string{}}, nil
	}
	if c.keys == nil {
		return nil, hostapi.Errorf(CodeUnavailable, "this runner holds no secrets key")
	}
	m, err := c.keys.OpenEnvelope(sealed, call.Context.TenantID, call.Context.InstallID, c.now())
	if err != nil {
		// The reason (expired, wrong binding, tampered) is not secret,
		// but the envelope itself is never echoed.
		return nil, hostapi.Errorf(CodeUnavailable, "secret envelope does not open: %v", err)
	}
	return &opened{values: m}, nil
}

// Finish implements hostapi.Unit; secrets.get reports nothing.
func (c *Capability) Finish(hostapi.State, *hostapi.Report) {}

func get(_ context.Context, o *opened, raw []byte) (any, error) {
	var req struct {
		Key string `json:"key"`
	}
	if err := hostapi.DecodeRequest(raw, &req); err != nil {
		return nil, err
	}
	if req.Key == "" {
		return nil, hostapi.Errorf(hostapi.CodeInvalidRequest, "key is required")
	}
	val, ok := o.values[req.Key]
	if !ok {
		return nil, hostapi.Errorf(CodeNotFound, "no secret named %q", req.Key)
	}
	return map[string]string{"value": val}, nil
}

var _ hostapi.SecretsUnit = (*Capability)(nil)
