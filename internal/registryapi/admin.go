package registryapi

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/extedge/extedge/internal/manifest"
)

// Admin API (SPEC §7.3): the JSON types registryd returns and extctl sends,
// and the client methods for them.

// SignatureHeader carries base64 of the SIGNATURE JSON on POST /v1/bundles.
const SignatureHeader = "X-Extedge-Signature"

// PublishResult is the reply of POST /v1/bundles (201 first time, 200 when
// the same name+version+hash was already published).
type PublishResult struct {
	Extension   ExtensionRef `json:"extension"`
	Version     VersionRef   `json:"version"`
	ContentHash string       `json:"content_hash"`
	// Created is true for 201 (not part of the body; set by the client).
	Created bool `json:"-"`
}

// ExtensionRef names an extension with its publisher.
type ExtensionRef struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	Publisher string `json:"publisher"`
}

// Deprecation marks an extension as deprecated.
type Deprecation struct {
	Reason string    `json:"reason"`
	At     time.Time `json:"at"`
}

// Extension is one catalog entry (GET /v1/extensions[/{name}]).
type Extension struct {
	ID            string       `json:"id"`
	Name          string       `json:"name"`
	Publisher     string       `json:"publisher"`
	LatestVersion string       `json:"latest_version,omitempty"`
	Deprecation   *Deprecation `json:"deprecation"`
	CreatedAt     time.Time    `json:"created_at"`
}

// Version is one published version (GET /v1/extensions/{name}/versions[/{v}]).
// Manifest and Signature are filled only for a single version.
type Version struct {
	ID           string              `json:"id"`
	Extension    string              `json:"extension"`
	Version      string              `json:"version"`
	ContentHash  string              `json:"content_hash"`
	Runtime      string              `json:"runtime"`
	Capabilities []string            `json:"capabilities"`
	Endpoints    []manifest.Endpoint `json:"endpoints"`
	UI           *UIRef              `json:"ui"`
	Size         int64               `json:"size"`
	Revoked      bool                `json:"revoked"`
	RevokedAt    *time.Time          `json:"revoked_at,omitempty"`
	RevokeReason string              `json:"revoke_reason,omitempty"`
	CreatedAt    time.Time           `json:"created_at"`
	Manifest     json.RawMessage     `json:"manifest,omitempty"`
	Signature    json.RawMessage     `json:"signature,omitempty"`
}

// ReasonRequest is the body of deprecate and revoke.
type ReasonRequest struct {
	Reason string `json:"reason"`
}

// InstallRequest is the body of PUT /v1/tenants/{tenant}/installs/{name}.
// A null (nil) list or config keeps the current value on update; an empty
// list clears it. Version empty means "keep" on update and "latest
// non-revoked" on a new install.
type InstallRequest struct {
	Version         string          `json:"version,omitempty"`
	GrantedCaps     []string        `json:"granted_caps"`
	Config          json.RawMessage `json:"config,omitempty"`
	EgressAllowlist []string        `json:"egress_allowlist"`
	Quotas          *Quotas         `json:"quotas,omitempty"`
	// InstanceReuse is platform-admin only, like Quotas; nil keeps it.
	InstanceReuse *InstanceReuse `json:"instance_reuse,omitempty"`
}

// Install is a tenant's install of an extension as the admin API shows it.
// Capabilities is the effective set (granted ∩ declared, plus the
// always-granted ones); secrets are listed by key only.
type Install struct {
	ID              string          `json:"id"`
	TenantID        string          `json:"tenant_id"`
	Extension       Ref             `json:"extension"`
	Version         VersionRef      `json:"version"`
	ContentHash     string          `json:"content_hash"`
	Status          string          `json:"status"`
	GrantedCaps     []string        `json:"granted_caps"`
	DeclaredCaps    []string        `json:"declared_caps"`
	Capabilities    []string        `json:"capabilities"`
	Config          json.RawMessage `json:"config"`
	EgressAllowlist []string        `json:"egress_allowlist"`
	Quotas          *Quotas         `json:"quotas,omitempty"`
	InstanceReuse   *InstanceReuse  `json:"instance_reuse,omitempty"`
	SecretKeys      []string        `json:"secret_keys"`
	CreatedAt       time.Time       `json:"created_at"`
	UpdatedAt       time.Time       `json:"updated_at"`
}

// Install statuses.
const (
	StatusEnabled  = "enabled"
	StatusDisabled = "disabled"
)

// Publish uploads a bundle (size bytes from bundle, -1 if unknown) with its
// detached SIGNATURE JSON (nil for none).
func (c *Client) Publish(ctx context.Context, bundle io.Reader, size int64, signatureJSON []byte) (*PublishResult, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+"/v1/bundles", bundle)
	if err != nil {
		return nil, err
	}
	if size >= 0 {
		req.ContentLength = size
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	if len(signatureJSON) > 0 {
		req.Header.Set(SignatureHeader, base64.StdEncoding.EncodeToString(signatureJSON))
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("registry POST /v1/bundles: %w", err)
	}
	defer closeBody(resp)
	var out PublishResult
	if err := decode(resp, &out); err != nil {
		return nil, err
	}
	out.Created = resp.StatusCode == http.StatusCreated
	return &out, nil
}

// ListExtensions lists the catalog.
func (c *Client) ListExtensions(ctx context.Context) ([]Extension, error) {
	var out []Extension
	return out, c.Do(ctx, http.MethodGet, "/v1/extensions", nil, &out)
}

// GetExtension fetches one catalog entry.
func (c *Client) GetExtension(ctx context.Context, name string) (*Extension, error) {
	var out Extension
	return &out, c.Do(ctx, http.MethodGet, "/v1/extensions/"+url.PathEscape(name), nil, &out)
}

// ListVersions lists an extension's versions, newest first.
func (c *Client) ListVersions(ctx context.Context, name string) ([]Version, error) {
	var out []Version
	return out, c.Do(ctx, http.MethodGet, "/v1/extensions/"+url.PathEscape(name)+"/versions", nil, &out)
}

// GetVersion fetches one version with its manifest.
func (c *Client) GetVersion(ctx context.Context, name, version string) (*Version, error) {
	var out Version
	return &out, c.Do(ctx, http.MethodGet, "/v1/extensions/"+url.PathEscape(name)+"/versions/"+url.PathEscape(version), nil, &out)
}

// Deprecate marks an extension deprecated.
func (c *Client) Deprecate(ctx context.Context, name, reason string) (*Extension, error) {
	var out Extension
	return &out, c.Do(ctx, http.MethodPost, "/v1/extensions/"+url.PathEscape(name)+"/deprecate", ReasonRequest{Reason: reason}, &out)
}

// Revoke revokes a version; resolve stops returning it and the change feed
// announces it.
func (c *Client) Revoke(ctx context.Context, name, version, reason string) (*Version, error) {
	var out Version
	return &out, c.Do(ctx, http.MethodPost, "/v1/extensions/"+url.PathEscape(name)+"/versions/"+url.PathEscape(version)+"/revoke", ReasonRequest{Reason: reason}, &out)
}

func installPath(tenant, name string) string {
	return "/v1/tenants/" + url.PathEscape(tenant) + "/installs/" + url.PathEscape(name)
}

// PutInstall installs or updates (upgrades, regrants, reconfigures) an extension.
func (c *Client) PutInstall(ctx context.Context, tenant, name string, req InstallRequest) (*Install, error) {
	var out Install
	return &out, c.Do(ctx, http.MethodPut, installPath(tenant, name), req, &out)
}

// GetInstall fetches one install.
func (c *Client) GetInstall(ctx context.Context, tenant, name string) (*Install, error) {
	var out Install
	return &out, c.Do(ctx, http.MethodGet, installPath(tenant, name), nil, &out)
}

// ListInstalls lists a tenant's installs.
func (c *Client) ListInstalls(ctx context.Context, tenant string) ([]Install, error) {
	var out []Install
	return out, c.Do(ctx, http.MethodGet, "/v1/tenants/"+url.PathEscape(tenant)+"/installs", nil, &out)
}

// Enable enables an install.
func (c *Client) Enable(ctx context.Context, tenant, name string) (*Install, error) {
	var out Install
	return &out, c.Do(ctx, http.MethodPost, installPath(tenant, name)+"/enable", nil, &out)
}

// Disable disables an install (resolve then answers not_installed).
func (c *Client) Disable(ctx context.Context, tenant, name string) (*Install, error) {
	var out Install
	return &out, c.Do(ctx, http.MethodPost, installPath(tenant, name)+"/disable", nil, &out)
}

// Uninstall removes an install with its secrets, KV data and subscriptions.
func (c *Client) Uninstall(ctx context.Context, tenant, name string) error {
	return c.Do(ctx, http.MethodDelete, installPath(tenant, name), nil, nil)
}

// PutSecrets sets secrets of an install (merged into the existing set; an
// empty value deletes that key). Values are write-only.
func (c *Client) PutSecrets(ctx context.Context, tenant, name string, secrets map[string]string) (*Install, error) {
	var out Install
	return &out, c.Do(ctx, http.MethodPut, installPath(tenant, name)+"/secrets", secrets, &out)
}
