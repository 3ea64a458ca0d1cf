package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/extedge/extedge/internal/egress"
	"github.com/extedge/extedge/internal/manifest"
	"github.com/extedge/extedge/internal/registryapi"
)

// InstallInput is a PUT of an install. Nil fields keep the current value
// on update (and take defaults on a new install).
type InstallInput struct {
	Version         string
	GrantedCaps     *[]string
	Config          json.RawMessage
	EgressAllowlist *[]string
	Quotas          *registryapi.Quotas
	InstanceReuse   *registryapi.InstanceReuse
	// PlatformAdmin is set for platform admins only. The platform-owned
	// fields (Quotas, InstanceReuse) may be sent back unchanged by anyone,
	// but a different value from anyone else is CodeForbidden (see
	// platformOwned).
	PlatformAdmin bool
}

// platformOwned is the one rule for install fields that protect the
// platform from the tenant (quotas, instance reuse): a tenant admin may
// send the current value back, a change is forbidden. want and cur are
// compared as values, so every field of a struct counts and a new field
// is covered without touching this check.
func platformOwned[T comparable](field string, want, cur T, platformAdmin bool) error {
	if want != cur && !platformAdmin {
		return Errorf(CodeForbidden, "only a platform admin may change an install's %s", field)
	}
	return nil
}

// EffectiveCaps is granted ∩ declared, plus the always-granted
// capabilities, sorted.
func EffectiveCaps(granted, declared []string) []string {
	out := []string{}
	for _, c := range granted {
		if slices.Contains(declared, c) && !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	for _, c := range manifest.AlwaysGranted {
		if !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	sort.Strings(out)
	return out
}

type versionInfo struct {
	id, semver, hash string
	caps             []string
	events           []manifest.Event
	revoked          bool
}

func loadVersion(ctx context.Context, tx pgx.Tx, registryID, semver string) (*versionInfo, error) {
	var (
		v   versionInfo
		man []byte
	)
	err := tx.QueryRow(ctx, `SELECT id::text, semver, content_hash, capabilities, manifest, revoked_at IS NOT NULL FROM extension_version WHERE registry_id = $1 AND semver = $2`,
		registryID, semver).Scan(&v.id, &v.semver, &v.hash, &v.caps, &man, &v.revoked)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, Errorf(CodeNotFound, "version %s not found", semver)
	}
	if err != nil {
		return nil, err
	}
	var m struct {
		Events []manifest.Event `json:"events"`
	}
	_ = json.Unmarshal(man, &m)
	v.events = m.Events
	return &v, nil
}

// latestUsable returns the highest non-revoked version of an extension.
func latestUsable(ctx context.Context, tx pgx.Tx, registryID string) (string, error) {
	rows, err := tx.Query(ctx, `SELECT semver FROM extension_version WHERE registry_id = $1 AND revoked_at IS NULL`, registryID)
	if err != nil {
		return "", err
	}
	vs, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return "", err
	}
	best := ""
	for _, v := range vs {
		if best == "" || CompareSemver(v, best) > 0 {
			best = v
		}
	}
	if best == "" {
		return "", Errorf(CodeVersionRevoked, "the extension has no usable (non-revoked) version")
	}
	return best, nil
}

// normalizeGrants normalises capability names and checks each against the
// version's declared set.
func normalizeGrants(in []string, declared []string) ([]string, error) {
	out := []string{}
	for _, c := range in {
		n, ok := manifest.NormalizeCapability(c)
		if !ok {
			return nil, &Error{Code: CodeInvalidRequest, Message: "unknown capability " + quote(c), Details: map[string]string{"capability": c}}
		}
		if !slices.Contains(declared, n) && !slices.Contains(manifest.AlwaysGranted, n) {
			return nil, &Error{Code: CodeCapNotDeclared, Message: "capability " + n + " is not declared by this version's manifest",
				Details: map[string]string{"capability": n}}
		}
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out, nil
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// checkEgressAllowlist normalises an install's egress allowlist and checks
// every entry with internal/egress, the parser runners apply to it on each
// http.fetch (SPEC §5.3), so an install that registryd accepts can never
// fail every fetch on an entry the runner refuses. A bad entry is
// validation_failed naming the entry and its index.
func checkEgressAllowlist(entries []string) ([]string, error) {
	out := make([]string, 0, len(entries))
	for i, raw := range entries {
		e := strings.ToLower(strings.TrimSpace(raw))
		if _, err := egress.ParseEntry(e); err != nil {
			return nil, &Error{Code: CodeValidationFailed,
				Message: fmt.Sprintf("egress_allowlist[%d]: %v", i, err),
				Details: map[string]any{"field": "egress_allowlist", "index": i, "entry": raw}}
		}
		out = append(out, e)
	}
	return out, nil
}

// PutInstall installs or updates an install and returns it.
func (db *DB) PutInstall(ctx context.Context, tenant, name string, in InstallInput) (*registryapi.Install, error) {
	var out *registryapi.Install
	err := db.inTenant(ctx, tenant, func(tx pgx.Tx) error {
		var registryID string
		err := tx.QueryRow(ctx, `SELECT id::text FROM extension_registry WHERE name = $1`, name).Scan(&registryID)
		if errors.Is(err, pgx.ErrNoRows) {
			return Errorf(CodeNotFound, "extension %s not found", name)
		}
		if err != nil {
			return err
		}
		var (
			exists                   bool
			curVersionID, curSemver  string
			curGranted, curEgress    []string
			curConfig, curQuotasJSON []byte
			curReuseJSON             []byte
		)
		err = tx.QueryRow(ctx, `SELECT i.version_id::text, v.semver, i.granted_caps, i.egress_allowlist, i.config, i.quotas, i.instance_reuse
			FROM tenant_extension_install i JOIN extension_version v ON v.id = i.version_id
			WHERE i.tenant_id = $1 AND i.registry_id = $2 FOR UPDATE OF i`, tenant, registryID).
			Scan(&curVersionID, &curSemver, &curGranted, &curEgress, &curConfig, &curQuotasJSON, &curReuseJSON)
		switch {
		case err == nil:
			exists = true
		case !errors.Is(err, pgx.ErrNoRows):
			return err
		}
		semver := in.Version
		if semver == "" {
			if exists {
				semver = curSemver
			} else if semver, err = latestUsable(ctx, tx, registryID); err != nil {
				return err
			}
		}
		v, err := loadVersion(ctx, tx, registryID, semver)
		if err != nil {
			return err
		}
		versionChanged := !exists || v.id != curVersionID
		if v.revoked && versionChanged {
			return Errorf(CodeVersionRevoked, "version %s of %s is revoked", semver, name)
		}
		granted := curGranted
		if in.GrantedCaps != nil {
			if granted, err = normalizeGrants(*in.GrantedCaps, v.caps); err != nil {
				return err
			}
		}
		if granted == nil {
			granted = []string{}
		}
		config := curConfig
		if in.Config != nil && !bytes.Equal(bytes.TrimSpace(in.Config), []byte("null")) {
			var obj map[string]json.RawMessage
			if json.Unmarshal(in.Config, &obj) != nil {
				return Errorf(CodeInvalidRequest, "config must be a JSON object")
			}
			config = in.Config
		}
		if config == nil {
			config = []byte("{}")
		}
		egress := curEgress
		if in.EgressAllowlist != nil {
			if egress, err = checkEgressAllowlist(*in.EgressAllowlist); err != nil {
				return err
			}
		}
		if egress == nil {
			egress = []string{}
		}
		quotas := curQuotasJSON
		if in.Quotas != nil {
			if err := checkQuotas(in.Quotas); err != nil {
				return err
			}
			var cur registryapi.Quotas
			if len(curQuotasJSON) > 0 {
				_ = json.Unmarshal(curQuotasJSON, &cur)
			}
			if err := platformOwned("quotas", *in.Quotas, cur, in.PlatformAdmin); err != nil {
				return err
			}
			quotas, _ = json.Marshal(in.Quotas)
		}
		reuse := curReuseJSON
		if in.InstanceReuse != nil {
			if err := checkInstanceReuse(in.InstanceReuse); err != nil {
				return err
			}
			var cur *registryapi.InstanceReuse
			if len(curReuseJSON) > 0 {
				cur = new(registryapi.InstanceReuse)
				_ = json.Unmarshal(curReuseJSON, cur)
			}
			want := in.InstanceReuse.Normalized()
			if err := platformOwned("instance_reuse", want, cur.Normalized(), in.PlatformAdmin); err != nil {
				return err
			}
			reuse = nil
			if want.Enabled {
				reuse, _ = json.Marshal(want)
			}
		}
		var installID string
		err = tx.QueryRow(ctx, `INSERT INTO tenant_extension_install (tenant_id, registry_id, version_id, granted_caps, config, egress_allowlist, quotas, instance_reuse)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
			ON CONFLICT (tenant_id, registry_id) DO UPDATE SET version_id = EXCLUDED.version_id, granted_caps = EXCLUDED.granted_caps,
				config = EXCLUDED.config, egress_allowlist = EXCLUDED.egress_allowlist, quotas = EXCLUDED.quotas,
				instance_reuse = EXCLUDED.instance_reuse,
				row_version = tenant_extension_install.row_version + 1, updated_at = now()
			RETURNING id::text`, tenant, registryID, v.id, granted, config, egress, nullJSON(quotas), nullJSON(reuse)).Scan(&installID)
		if err != nil {
			return err
		}
		if versionChanged {
			if err := replaceSubscriptions(ctx, tx, tenant, installID, v.events); err != nil {
				return err
			}
		}
		if err := addChange(ctx, tx, registryapi.ChangeInstall, tenant, name, v.hash); err != nil {
			return err
		}
		out, err = getInstall(ctx, tx, tenant, name)
		return err
	})
	return out, err
}

// Upper bounds of install quotas: far above any real install, low enough
// that the gateway's arithmetic (µs of CPU, GCRA intervals) cannot overflow.
const (
	maxInvocationsPerMinute = 10_000_000
	maxConcurrentCalls      = 100_000
	maxCPUMsPerMinute       = 60_000_000 // 1000 cores busy for the whole minute
)

// checkQuotas refuses negative or absurd quotas (invalid_request).
func checkQuotas(q *registryapi.Quotas) error {
	for _, f := range []struct {
		name     string
		val, max int
	}{
		{"invocations_per_minute", q.InvocationsPerMinute, maxInvocationsPerMinute},
		{"concurrent_calls", q.ConcurrentCalls, maxConcurrentCalls},
		{"cpu_ms_per_minute", q.CPUMsPerMinute, maxCPUMsPerMinute},
	} {
		if f.val < 0 {
			return Errorf(CodeInvalidRequest, "quotas must not be negative (%s)", f.name)
		}
		if f.val > f.max {
			return Errorf(CodeInvalidRequest, "quotas.%s must be at most %d", f.name, f.max)
		}
	}
	return nil
}

// checkInstanceReuse refuses negative or absurd recycling bounds
// (invalid_request).
func checkInstanceReuse(r *registryapi.InstanceReuse) error {
	switch {
	case r.MaxCalls < 0 || r.MaxAgeMS < 0:
		return Errorf(CodeInvalidRequest, "instance_reuse bounds must not be negative")
	case r.MaxCalls > registryapi.MaxReuseMaxCalls:
		return Errorf(CodeInvalidRequest, "instance_reuse.max_calls must be at most %d", registryapi.MaxReuseMaxCalls)
	case r.MaxAgeMS > registryapi.MaxReuseMaxAgeMS:
		return Errorf(CodeInvalidRequest, "instance_reuse.max_age_ms must be at most %d", registryapi.MaxReuseMaxAgeMS)
	}
	return nil
}

// reuseFromJSON decodes the instance_reuse column; nil when off.
func reuseFromJSON(raw []byte) *registryapi.InstanceReuse {
	if len(raw) == 0 {
		return nil
	}
	var r registryapi.InstanceReuse
	if json.Unmarshal(raw, &r) != nil || !r.Enabled {
		return nil
	}
	return &r
}

// replaceSubscriptions makes an install's event subscriptions follow its
// version's manifest events.
func replaceSubscriptions(ctx context.Context, tx pgx.Tx, tenant, installID string, events []manifest.Event) error {
	if _, err := tx.Exec(ctx, `DELETE FROM extension_event_subscription WHERE tenant_id = $1 AND tenant_install_id = $2`, tenant, installID); err != nil {
		return err
	}
	for _, e := range events {
		if _, err := tx.Exec(ctx, `INSERT INTO extension_event_subscription (tenant_id, tenant_install_id, event, handler) VALUES ($1, $2, $3, $4)`,
			tenant, installID, e.Topic, e.Handler); err != nil {
			return err
		}
	}
	return nil
}

const installSelect = `SELECT i.id::text, i.tenant_id, r.id::text, r.name, v.id::text, v.semver, v.content_hash, i.status,
	i.granted_caps, v.capabilities, i.config, i.egress_allowlist, i.quotas, i.instance_reuse, i.created_at, i.updated_at,
	coalesce((SELECT array_agg(s.key ORDER BY s.key) FROM tenant_extension_secret s WHERE s.tenant_id = i.tenant_id AND s.install_id = i.id), '{}')
	FROM tenant_extension_install i JOIN extension_registry r ON r.id = i.registry_id JOIN extension_version v ON v.id = i.version_id`

func scanInstall(row pgx.Row) (*registryapi.Install, error) {
	var (
		in     registryapi.Install
		config []byte
		quotas []byte
		reuse  []byte
	)
	err := row.Scan(&in.ID, &in.TenantID, &in.Extension.ID, &in.Extension.Name, &in.Version.ID, &in.Version.Version, &in.ContentHash, &in.Status,
		&in.GrantedCaps, &in.DeclaredCaps, &config, &in.EgressAllowlist, &quotas, &reuse, &in.CreatedAt, &in.UpdatedAt, &in.SecretKeys)
	if err != nil {
		return nil, err
	}
	in.Config = config
	if len(quotas) > 0 {
		in.Quotas = new(registryapi.Quotas)
		_ = json.Unmarshal(quotas, in.Quotas)
	}
	in.InstanceReuse = reuseFromJSON(reuse)
	in.Capabilities = EffectiveCaps(in.GrantedCaps, in.DeclaredCaps)
	return &in, nil
}

func getInstall(ctx context.Context, tx pgx.Tx, tenant, name string) (*registryapi.Install, error) {
	in, err := scanInstall(tx.QueryRow(ctx, installSelect+` WHERE i.tenant_id = $1 AND r.name = $2`, tenant, name))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, Errorf(CodeNotInstalled, "%s is not installed for this tenant", name)
	}
	return in, err
}

// GetInstall returns one install or not_installed.
func (db *DB) GetInstall(ctx context.Context, tenant, name string) (*registryapi.Install, error) {
	var out *registryapi.Install
	err := db.inTenant(ctx, tenant, func(tx pgx.Tx) error {
		var err error
		out, err = getInstall(ctx, tx, tenant, name)
		return err
	})
	return out, err
}

// ListInstalls returns a tenant's installs ordered by extension name.
func (db *DB) ListInstalls(ctx context.Context, tenant string) ([]registryapi.Install, error) {
	out := []registryapi.Install{}
	err := db.inTenant(ctx, tenant, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, installSelect+` WHERE i.tenant_id = $1 ORDER BY r.name`, tenant)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			in, err := scanInstall(rows)
			if err != nil {
				return err
			}
			out = append(out, *in)
		}
		return rows.Err()
	})
	return out, err
}

// SetInstallStatus enables or disables an install.
func (db *DB) SetInstallStatus(ctx context.Context, tenant, name, status string) (*registryapi.Install, error) {
	var out *registryapi.Install
	err := db.inTenant(ctx, tenant, func(tx pgx.Tx) error {
		var hash string
		err := tx.QueryRow(ctx, `UPDATE tenant_extension_install i SET status = $3, row_version = row_version + 1, updated_at = now()
			FROM extension_registry r, extension_version v
			WHERE r.id = i.registry_id AND v.id = i.version_id AND i.tenant_id = $1 AND r.name = $2
			RETURNING v.content_hash`, tenant, name, status).Scan(&hash)
		if errors.Is(err, pgx.ErrNoRows) {
			return Errorf(CodeNotInstalled, "%s is not installed for this tenant", name)
		}
		if err != nil {
			return err
		}
		if err := addChange(ctx, tx, registryapi.ChangeInstall, tenant, name, hash); err != nil {
			return err
		}
		out, err = getInstall(ctx, tx, tenant, name)
		return err
	})
	return out, err
}

// DeleteInstall removes an install; its subscriptions, secrets and KV data
// go with it (ON DELETE CASCADE).
func (db *DB) DeleteInstall(ctx context.Context, tenant, name string) error {
	return db.inTenant(ctx, tenant, func(tx pgx.Tx) error {
		var hash string
		err := tx.QueryRow(ctx, `DELETE FROM tenant_extension_install i USING extension_registry r, extension_version v
			WHERE r.id = i.registry_id AND v.id = i.version_id AND i.tenant_id = $1 AND r.name = $2
			RETURNING v.content_hash`, tenant, name).Scan(&hash)
		if errors.Is(err, pgx.ErrNoRows) {
			return Errorf(CodeNotInstalled, "%s is not installed for this tenant", name)
		}
		if err != nil {
			return err
		}
		return addChange(ctx, tx, registryapi.ChangeInstall, tenant, name, hash)
	})
}

// SecretAAD is the additional data a secret value is sealed with at rest,
// binding the ciphertext to its row.
func SecretAAD(tenant, installID, key string) string {
	return "extedge-secret\x00" + tenant + "\x00" + installID + "\x00" + key
}

// PutSecrets merges secrets into an install: seal turns (installID, key,
// value) into the stored ciphertext; an empty value deletes the key.
func (db *DB) PutSecrets(ctx context.Context, tenant, name string, secrets map[string]string, seal func(installID, key, value string) string) (*registryapi.Install, error) {
	var out *registryapi.Install
	err := db.inTenant(ctx, tenant, func(tx pgx.Tx) error {
		var installID, hash string
		err := tx.QueryRow(ctx, `SELECT i.id::text, v.content_hash FROM tenant_extension_install i
			JOIN extension_registry r ON r.id = i.registry_id JOIN extension_version v ON v.id = i.version_id
			WHERE i.tenant_id = $1 AND r.name = $2 FOR UPDATE OF i`, tenant, name).Scan(&installID, &hash)
		if errors.Is(err, pgx.ErrNoRows) {
			return Errorf(CodeNotInstalled, "%s is not installed for this tenant", name)
		}
		if err != nil {
			return err
		}
		keys := make([]string, 0, len(secrets))
		for k := range secrets {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if secrets[k] == "" {
				_, err = tx.Exec(ctx, `DELETE FROM tenant_extension_secret WHERE tenant_id = $1 AND install_id = $2 AND key = $3`, tenant, installID, k)
			} else {
				_, err = tx.Exec(ctx, `INSERT INTO tenant_extension_secret (tenant_id, install_id, key, sealed) VALUES ($1, $2, $3, $4)
					ON CONFLICT (tenant_id, install_id, key) DO UPDATE SET sealed = EXCLUDED.sealed, updated_at = now()`,
					tenant, installID, k, seal(installID, k, secrets[k]))
			}
			if err != nil {
				return err
			}
		}
		if _, err := tx.Exec(ctx, `UPDATE tenant_extension_install SET secrets_revision = secrets_revision + 1, updated_at = now() WHERE tenant_id = $1 AND id = $2`,
			tenant, installID); err != nil {
			return err
		}
		if err := addChange(ctx, tx, registryapi.ChangeInstall, tenant, name, hash); err != nil {
			return err
		}
		out, err = getInstall(ctx, tx, tenant, name)
		return err
	})
	return out, err
}

// ResolveRow is what resolve needs: the reply minus the envelope, the
// inputs of the ETag, and the sealed secrets.
type ResolveRow struct {
	Resolved        registryapi.Resolved
	RowVersion      int64
	SecretsRevision int64
	UpdatedAt       time.Time
	// Secrets maps key to the at-rest ciphertext.
	Secrets map[string]string
}

// Resolve loads an enabled install of a non-revoked version, or
// not_installed. It costs one round trip: the tenant setting and the
// queries go in one batch, which Postgres runs as one implicit transaction.
func (db *DB) Resolve(ctx context.Context, tenant, name string) (*ResolveRow, error) {
	b := &pgx.Batch{}
	b.Queue("SELECT set_config('extedge.tenant', $1, true)", tenant)
	b.Queue(`SELECT i.id::text, r.id::text, v.id::text, v.semver, v.content_hash, i.status, v.endpoints, v.capabilities, i.granted_caps,
		i.config, i.egress_allowlist, v.ui, i.quotas, i.instance_reuse, i.row_version, i.secrets_revision, i.updated_at, v.revoked_at IS NOT NULL
		FROM tenant_extension_install i JOIN extension_registry r ON r.id = i.registry_id JOIN extension_version v ON v.id = i.version_id
		WHERE i.tenant_id = $1 AND r.name = $2`, tenant, name)
	b.Queue(`SELECT s.key, s.sealed FROM tenant_extension_secret s
		JOIN tenant_extension_install i ON i.id = s.install_id JOIN extension_registry r ON r.id = i.registry_id
		WHERE s.tenant_id = $1 AND i.tenant_id = $1 AND r.name = $2`, tenant, name)
	br := db.Pool.SendBatch(ctx, b)
	defer br.Close()
	if _, err := br.Exec(); err != nil {
		return nil, wrap(err)
	}
	var (
		row                 ResolveRow
		r                   = &row.Resolved
		endpoints, ui, quot []byte
		reuse               []byte
		declared, granted   []string
		config              []byte
		revoked             bool
	)
	err := br.QueryRow().Scan(&r.InstallID, &r.Extension.ID, &r.Version.ID, &r.Version.Version, &r.ContentHash, &r.Status, &endpoints, &declared, &granted,
		&config, &r.EgressAllowlist, &ui, &quot, &reuse, &row.RowVersion, &row.SecretsRevision, &row.UpdatedAt, &revoked)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, Errorf(CodeNotInstalled, "%s is not installed for this tenant", name)
	}
	if err != nil {
		return nil, wrap(err)
	}
	if r.Status != registryapi.StatusEnabled {
		return nil, Errorf(CodeNotInstalled, "%s is disabled for this tenant", name)
	}
	if revoked {
		return nil, Errorf(CodeNotInstalled, "the installed version of %s is revoked", name)
	}
	r.TenantID, r.Extension.Name = tenant, name
	r.Config = config
	_ = json.Unmarshal(endpoints, &r.Endpoints)
	if r.Endpoints == nil {
		r.Endpoints = []manifest.Endpoint{}
	}
	r.Capabilities = EffectiveCaps(granted, declared)
	r.UI = registryapi.UIRefFromJSON(ui)
	if len(quot) > 0 {
		r.Quotas = new(registryapi.Quotas)
		_ = json.Unmarshal(quot, r.Quotas)
	}
	r.InstanceReuse = reuseFromJSON(reuse)
	rows, err := br.Query()
	if err != nil {
		return nil, wrap(err)
	}
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			rows.Close()
			return nil, wrap(err)
		}
		if row.Secrets == nil {
			row.Secrets = map[string]string{}
		}
		row.Secrets[k] = v
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, wrap(err)
	}
	return &row, nil
}
